"""Token signing keys: a *current* and a *next* key per algorithm, held with jwcrypto.

Relying parties cache our JWKS. Publishing the next key alongside the current one means that
when ``idp keys rotate`` promotes it, every RP that refreshed its cache since the previous
rotation already knows the key that now signs, so rotation needs no flag day. Tokens are always
signed with the current key; the old current key leaves the JWKS at rotation (id_tokens are
verified on receipt, so none should still be in flight). Rotate no more often than RPs refresh
their JWKS cache.

All signing goes through jwcrypto: pyop's own ES256 (pyjwkest) draws its ECDSA nonce from
Python's ``random`` and can leak the key. Should pyop ever need a pyjwkest key object, build it
from the key's ``export_private(as_dict=True)`` with ``jwkest.jwk.RSAKey``/``ECKey``, never via
``keyrep()``, which silently breaks EC private keys.

The private keys live only in ``<keys_dir>/signing-keys.json`` (mode 0600), which is replaced
atomically on every write, so readers see either the old or the new file, never a torn one::

    {"format": 1, "rotated_at": "2026-11-23T12:00:00+00:00",
     "algorithms": {"ES256": {"current": <private JWK>, "next": <private JWK>},
                    "RS256": {"current": <private JWK>, "next": <private JWK>}}}

Each JWK carries ``kid`` (its RFC 7638 thumbprint), ``alg`` and ``use: sig``. A jwcrypto JWKSet
is unordered, so keys are always picked by role and ``kid``, never by position.

A running server notices a rotation by itself: every call checks the file's identity (a cheap
``stat``; ``os.replace`` gives it a new inode and mtime) and reloads it when it changed. That
keeps all workers and hosts sharing the file consistent without a restart.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO, cast

from cryptography.hazmat.primitives.asymmetric import rsa
from jwcrypto.jwk import JWK
from jwcrypto.jws import JWS

from idp.errors import ConfigError, ValidationError
from idp.registry.dates import utcnow

log = logging.getLogger(__name__)

KEYS_FILE = "signing-keys.json"
FORMAT = 1
ALGORITHMS = ("ES256", "RS256")
DEFAULT_ALG = "RS256"
# 3072 bits matches P-256's 128-bit security level; signing costs about 1 ms, which a login
# never notices. Keys of at least 2048 bits are accepted when loading.
RSA_BITS = 3072
MIN_RSA_BITS = 2048
# Members that only a private (or symmetric) JWK has; none may ever reach the public JWKS.
PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_ROLES = ("current", "next")


@dataclass(frozen=True)
class _Pair:
    current: JWK
    next: JWK


@dataclass(frozen=True)
class _Keys:
    """One consistent reading of the file, swapped as a whole so a sign never mixes two files."""

    pairs: Mapping[str, _Pair]
    rotated_at: datetime
    jwks: tuple[dict[str, Any], ...]


class KeyRing:
    """The signing keys in ``keys_dir``: signs tokens with the current key and publishes the JWKS."""

    def __init__(self, path: Path, keys: _Keys, identity: tuple[int, ...] | None) -> None:
        self._path = path
        self._keys = keys
        self._identity = identity
        self._lock = threading.Lock()

    def __repr__(self) -> str:  # never the key material
        return f"<KeyRing {self._path}>"

    @classmethod
    def load(cls, keys_dir: Path) -> KeyRing:
        """The keys in ``keys_dir``; ConfigError naming the file if it is missing or corrupt."""
        path = Path(keys_dir) / KEYS_FILE
        identity = _identity(path)
        return cls(path, _read(path), identity)

    @classmethod
    def ensure(cls, keys_dir: Path, *, rsa_bits: int = RSA_BITS) -> KeyRing:
        """Development only: load the keys, creating them first when there are none yet."""
        if not (Path(keys_dir) / KEYS_FILE).exists():
            return rotate(keys_dir, rsa_bits=rsa_bits)
        return cls.load(keys_dir)

    @property
    def path(self) -> Path:
        return self._path

    @property
    def algorithms(self) -> tuple[str, ...]:
        return tuple(self._fresh().pairs)

    @property
    def rotated_at(self) -> datetime:
        return self._fresh().rotated_at

    def current_kid(self, alg: str = DEFAULT_ALG) -> str:
        return str(self._pair(self._fresh(), alg).current["kid"])

    def next_kid(self, alg: str = DEFAULT_ALG) -> str:
        return str(self._pair(self._fresh(), alg).next["kid"])

    def sign(self, claims: Mapping[str, Any], alg: str = DEFAULT_ALG, *, typ: str = "JWT") -> str:
        """A compact JWS (a JWT) of ``claims``, signed with the current key for ``alg``. ``typ`` is the
        header's type: "JWT", or an explicit one such as "logout+jwt" so that one kind of token cannot
        be passed off as another (RFC 8725 section 3.11)."""
        key = self._pair(self._fresh(), alg).current
        token = JWS(json.dumps(dict(claims), separators=(",", ":"), ensure_ascii=False).encode())
        token.add_signature(key, alg=alg, protected={"alg": alg, "kid": key["kid"], "typ": typ})
        return str(token.serialize(compact=True))

    def public_jwks(self) -> dict[str, Any]:
        """The JWK Set to serve: current and next key of each algorithm, public members only."""
        return {"keys": [dict(key) for key in self._fresh().jwks]}

    def _pair(self, keys: _Keys, alg: str) -> _Pair:
        try:
            return keys.pairs[alg]
        except KeyError:
            raise ValidationError(f"unsupported signing algorithm {alg!r}; "
                                  f"supported: {', '.join(keys.pairs)}") from None

    def _fresh(self) -> _Keys:
        """The keys as the file now holds them, reloading after a rotation by another process."""
        identity = _identity(self._path)
        if identity == self._identity:
            return self._keys
        with self._lock:
            if identity != self._identity:
                try:
                    self._keys = _read(self._path)
                    log.info("reloaded signing keys from %s", self._path)
                except ConfigError as exc:
                    # Keep signing with the keys we have: refusing every login would be worse,
                    # and the operator sees this error (and `idp keys show` fails the same way).
                    log.error("keeping the signing keys loaded earlier: %s", exc.message)
                # Set only after the new keys are in place, so other threads wait for them rather
                # than sign with a key the file no longer publishes; a broken file is reported once.
                self._identity = identity
            return self._keys


def rotate(keys_dir: Path, *, rsa_bits: int = RSA_BITS) -> KeyRing:
    """Promote each next key to current and add a fresh next key; create both when there are none.

    A missing or corrupt file is replaced with new keys: nothing in it could be trusted anyway.
    """
    keys_dir = Path(keys_dir)
    path = keys_dir / KEYS_FILE
    try:
        old: Mapping[str, _Pair] = _read(path).pairs
    except _Missing:
        old = {}
    except _Corrupt as exc:
        log.warning("replacing a corrupt key file with new keys: %s", exc.message)
        old = {}
    pairs = {}
    for alg in ALGORITHMS:
        current = old[alg].next if alg in old else _new_key(alg, rsa_bits)
        pairs[alg] = _Pair(current=current, next=_new_key(alg, rsa_bits))
    doc = {
        "format": FORMAT,
        "rotated_at": utcnow().isoformat(timespec="seconds"),
        "algorithms": {alg: {role: getattr(pair, role).export_private(as_dict=True) for role in _ROLES}
                       for alg, pair in pairs.items()},
    }
    _write(path, doc)
    return KeyRing.load(keys_dir)


# -- reading ----------------------------------------------------------------------------------

class _Missing(ConfigError):
    pass


class _Corrupt(ConfigError):
    pass


def _identity(path: Path) -> tuple[int, ...] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_ino, st.st_dev, st.st_mtime_ns, st.st_ctime_ns, st.st_size


def _read(path: Path) -> _Keys:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise _Missing(f"no signing keys: {path} does not exist; create them with: idp keys rotate") from None
    except OSError as exc:
        raise ConfigError(f"cannot read the signing keys in {path}: {exc.strerror} "
                          "(check its owner and permissions)") from None
    try:
        return _parse(json.loads(text))
    except Exception as exc:  # noqa: BLE001 - whatever a damaged file makes jwcrypto or json raise
        # Never the exception text: it may quote the file, which holds private keys.
        reason = exc.args[0] if isinstance(exc, _Invalid) else f"{type(exc).__name__} while parsing"
        raise _Corrupt(f"the signing key file {path} is corrupt ({reason}); restore it from a backup, "
                       "or replace it with new keys: idp keys rotate") from None


class _Invalid(ValueError):
    """A reason safe to show: it names what is wrong, never a key's value."""


def _parse(doc: Any) -> _Keys:
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise _Invalid(f"not a format {FORMAT} key file")
    algorithms = doc.get("algorithms")
    if not isinstance(algorithms, dict) or sorted(algorithms) != sorted(ALGORITHMS):
        raise _Invalid(f"it must hold keys for exactly {', '.join(ALGORITHMS)}")
    pairs = {alg: _parse_pair(alg, algorithms[alg]) for alg in ALGORITHMS}
    rotated_at = datetime.fromisoformat(doc["rotated_at"])
    jwks = tuple(_public(getattr(pair, role)) for pair in pairs.values() for role in _ROLES)
    return _Keys(pairs=pairs, rotated_at=rotated_at, jwks=jwks)


def _parse_pair(alg: str, entry: Any) -> _Pair:
    if not isinstance(entry, dict):
        raise _Invalid(f"{alg} is not an object")
    keys = [_parse_key(alg, role, entry.get(role)) for role in _ROLES]
    if keys[0]["kid"] == keys[1]["kid"]:
        raise _Invalid(f"{alg} current and next are the same key")
    return _Pair(current=keys[0], next=keys[1])


def _parse_key(alg: str, role: str, data: Any) -> JWK:
    where = f"{alg} {role} key"
    if not isinstance(data, dict):
        raise _Invalid(f"{where} is missing")
    key = JWK(**data)
    if not key.has_private:
        raise _Invalid(f"{where} has no private part")
    if alg == "ES256" and (key.get("kty"), key.get("crv")) != ("EC", "P-256"):
        raise _Invalid(f"{where} is not an EC P-256 key")
    if alg == "RS256":
        if key.get("kty") != "RSA":
            raise _Invalid(f"{where} is not an RSA key")
        # An RSA key with a private part (both checked above) signs with an RSAPrivateKey.
        if cast(rsa.RSAPrivateKey, key.get_op_key("sign")).key_size < MIN_RSA_BITS:
            raise _Invalid(f"{where} is shorter than {MIN_RSA_BITS} bits")
    if key.get("alg") != alg or key.get("use") != "sig":
        raise _Invalid(f"{where} must have alg {alg} and use sig")
    # RPs and our own selection trust the kid: it must name this very key.
    if key.get("kid") != key.thumbprint():
        raise _Invalid(f"{where} has a kid that is not its RFC 7638 thumbprint")
    return key


def _public(key: JWK) -> dict[str, Any]:
    public = key.export_public(as_dict=True)
    leaked = PRIVATE_MEMBERS & public.keys()
    if leaked:  # jwcrypto's job; checked because a leak here would publish the private key
        raise _Invalid(f"the public view of key {key['kid']} has private members")
    return dict(public)


# -- writing ----------------------------------------------------------------------------------

def _new_key(alg: str, rsa_bits: int) -> JWK:
    if alg == "ES256":
        generated = JWK.generate(kty="EC", crv="P-256")
    elif alg == "RS256":
        if rsa_bits < MIN_RSA_BITS:
            raise ValidationError(f"RSA keys must have at least {MIN_RSA_BITS} bits")
        generated = JWK.generate(kty="RSA", size=rsa_bits)
    else:
        raise ValidationError(f"unsupported signing algorithm {alg!r}")
    return JWK(**generated.export_private(as_dict=True), kid=generated.thumbprint(), alg=alg, use="sig")


def _write(path: Path, doc: dict[str, Any]) -> None:
    def dump(fh: TextIO) -> None:
        json.dump(doc, fh, indent=2, sort_keys=True)
        fh.write("\n")

    write_private_file(path, dump, what="the signing keys", kept="the previous keys are unchanged")


def write_private_file(path: Path, write: Callable[[TextIO], None], *, what: str, kept: str) -> None:
    """Replace ``path`` atomically with what ``write`` writes, readable by the owner only (0600).

    A crash or full disk leaves the previous file untouched. ``what`` and ``kept`` word the
    ConfigError an operator sees, never the content. The SAML signing key is written this way too.
    """
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # mkstemp creates the file 0600 from the start, so the keys are never readable by others.
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise ConfigError(f"cannot write {what} to {path.parent}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise ConfigError(f"cannot write {what} to {path}: {exc.strerror}; {kept}") from None
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    # Makes the rename itself durable; without it a power cut could bring back the old file.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
