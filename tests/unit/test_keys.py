"""Signing keys: current + next per algorithm, rotation, the JWKS, the key file.

Every signature is checked with authlib, a JOSE implementation independent of the jwcrypto that
signs, the way a relying party would check it: pick the key by the header's kid from the JWKS.
"""

from __future__ import annotations

import base64
import errno
import json
import logging
import os
import shutil
import stat
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from idp.cli import main
from idp.errors import ConfigError, ValidationError
from idp.keys import KEYS_FILE, KeyRing, rotate

with warnings.catch_warnings():
    # authlib >= 1.7 deprecates authlib.jose in favour of joserfc, warning once at import. Its
    # deprecate module installs an "always" filter for that warning when first imported, so it
    # is imported first and the one known warning silenced here, for this import only.
    import authlib.deprecate

    warnings.simplefilter("ignore", authlib.deprecate.AuthlibDeprecationWarning)
    from authlib.jose import JsonWebKey, JsonWebToken
    from authlib.jose.errors import BadSignatureError

ALGS = ["ES256", "RS256"]
# RFC 7517/7518 members of a private key; written out here rather than imported from the code under test.
PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}
CLAIMS = {"iss": "https://login.example.no", "sub": "pairwise-1", "aud": "rp-1", "valid_patron": True}
# Production keys are RSA-3072 (checked through the CLI); 2048 keeps the other tests fast.
FAST_RSA = 2048


def verify(token: str, jwks: Mapping[str, Any], alg: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Claims and header of ``token`` as an RP checks it: only ``alg``, the key picked by kid."""
    claims = JsonWebToken([alg]).decode(token, JsonWebKey.import_key_set(dict(jwks)))
    return dict(claims), dict(claims.header)


def kids(jwks: Mapping[str, Any]) -> set[str]:
    return {key["kid"] for key in jwks["keys"]}


def key_file(keys_dir: Path) -> Path:
    return keys_dir / KEYS_FILE


@pytest.fixture
def keys_dir(tmp_path: Path) -> Path:
    return tmp_path / "keys"


@pytest.fixture(scope="session")
def generated_keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One key file made by `rotate`, copied by each test: generating RSA keys per test is slow."""
    keys_dir = tmp_path_factory.mktemp("generated") / "keys"
    rotate(keys_dir, rsa_bits=FAST_RSA)
    return key_file(keys_dir)


@pytest.fixture
def ring(keys_dir: Path, generated_keys: Path) -> KeyRing:
    keys_dir.mkdir(mode=0o700)
    shutil.copy2(generated_keys, key_file(keys_dir))
    return KeyRing.load(keys_dir)


# --- signing -----------------------------------------------------------------------------------


@pytest.mark.parametrize("alg", ALGS)
def test_a_token_verifies_against_the_published_jwks_and_names_the_current_kid(ring: KeyRing, alg: str) -> None:
    claims, header = verify(ring.sign(CLAIMS, alg=alg), ring.public_jwks(), alg)
    assert claims == CLAIMS
    assert header == {"alg": alg, "kid": ring.current_kid(alg), "typ": "JWT"}


@pytest.mark.parametrize("alg", ALGS)
def test_the_signature_is_made_by_the_current_key_not_just_labelled_with_its_kid(ring: KeyRing, alg: str) -> None:
    # The next key relabelled with the current kid must not verify the token.
    token = ring.sign(CLAIMS, alg=alg)
    next_key = next(k for k in ring.public_jwks()["keys"] if k["kid"] == ring.next_kid(alg))
    impostor = {"keys": [{**next_key, "kid": ring.current_kid(alg)}]}
    with pytest.raises(BadSignatureError):
        verify(token, impostor, alg)


def test_rs256_is_the_default_algorithm(ring: KeyRing) -> None:
    _, header = verify(ring.sign(CLAIMS), ring.public_jwks(), "RS256")
    assert header["kid"] == ring.current_kid("RS256")


@pytest.mark.parametrize("alg", ["HS256", "none", "ES384", "rs256"])
def test_an_unsupported_algorithm_is_refused_clearly(ring: KeyRing, alg: str) -> None:
    with pytest.raises(ValidationError, match=r"unsupported signing algorithm.*ES256, RS256"):
        ring.sign(CLAIMS, alg=alg)
    with pytest.raises(ValidationError, match="unsupported signing algorithm"):
        ring.current_kid(alg)


# --- the published JWKS ------------------------------------------------------------------------


def test_the_jwks_holds_the_current_and_the_next_key_of_each_algorithm(ring: KeyRing) -> None:
    jwks = ring.public_jwks()
    assert ring.algorithms == ("ES256", "RS256")
    expected = {ring.current_kid(a) for a in ALGS} | {ring.next_kid(a) for a in ALGS}
    assert len(jwks["keys"]) == 4 and kids(jwks) == expected
    by_kid = {k["kid"]: k for k in jwks["keys"]}
    for alg, kty in (("ES256", "EC"), ("RS256", "RSA")):
        for kid in (ring.current_kid(alg), ring.next_kid(alg)):
            assert by_kid[kid]["alg"] == alg and by_kid[kid]["use"] == "sig" and by_kid[kid]["kty"] == kty
    assert by_kid[ring.current_kid("ES256")]["crv"] == "P-256"


def test_the_jwks_has_no_private_member_in_any_key(ring: KeyRing) -> None:
    for key in ring.public_jwks()["keys"]:
        assert not PRIVATE_MEMBERS & key.keys(), key["kid"]
        assert JsonWebKey.import_key(key).public_only, key["kid"]


def test_each_kid_is_the_rfc7638_thumbprint_of_its_key(ring: KeyRing) -> None:
    for key in ring.public_jwks()["keys"]:
        assert JsonWebKey.import_key(key).thumbprint() == key["kid"]


def test_changing_the_returned_jwks_does_not_change_what_is_published(ring: KeyRing) -> None:
    jwks = ring.public_jwks()
    jwks["keys"][0]["kid"] = "forged"
    jwks["keys"].clear()
    assert len(ring.public_jwks()["keys"]) == 4


# --- rotation ----------------------------------------------------------------------------------


def test_rotate_promotes_next_to_current_and_drops_the_old_current(keys_dir: Path, ring: KeyRing) -> None:
    before = ring.public_jwks()
    old = {a: (ring.current_kid(a), ring.next_kid(a)) for a in ALGS}
    rotated = rotate(keys_dir, rsa_bits=FAST_RSA)
    after = rotated.public_jwks()
    for alg, (old_current, old_next) in old.items():
        assert rotated.current_kid(alg) == old_next
        assert rotated.next_kid(alg) not in kids(before)
        assert old_current not in kids(after)


@pytest.mark.parametrize("alg", ALGS)
def test_the_key_that_signs_after_rotation_was_published_before_it(keys_dir: Path, ring: KeyRing, alg: str) -> None:
    # The overlap: an RP that cached the JWKS before the rotation verifies tokens made after it.
    cached_by_rp = ring.public_jwks()
    token = rotate(keys_dir, rsa_bits=FAST_RSA).sign(CLAIMS, alg=alg)
    claims, header = verify(token, cached_by_rp, alg)
    assert claims == CLAIMS and header["kid"] in kids(cached_by_rp)


@pytest.mark.parametrize("alg", ALGS)
def test_a_token_of_the_old_current_key_no_longer_verifies_after_rotation(keys_dir: Path, ring: KeyRing,
                                                                          alg: str) -> None:
    token = ring.sign(CLAIMS, alg=alg)
    fresh_jwks = rotate(keys_dir, rsa_bits=FAST_RSA).public_jwks()
    with pytest.raises(ValueError, match=r"(?i)key not found"):
        verify(token, fresh_jwks, alg)


def test_rotate_on_an_empty_directory_creates_both_keys(keys_dir: Path) -> None:
    assert not keys_dir.exists()
    ring = rotate(keys_dir, rsa_bits=FAST_RSA)
    assert stat.S_IMODE(keys_dir.stat().st_mode) == 0o700
    for alg in ALGS:
        assert ring.current_kid(alg) != ring.next_kid(alg)
    assert KeyRing.load(keys_dir).public_jwks() == ring.public_jwks()


def test_a_running_ring_signs_with_the_new_key_after_another_process_rotates(keys_dir: Path,
                                                                              ring: KeyRing) -> None:
    # Workers load the ring once; `idp keys rotate` runs in another process.
    promoted = ring.next_kid("ES256")
    rotate(keys_dir, rsa_bits=FAST_RSA)
    _, header = verify(ring.sign(CLAIMS, alg="ES256"), ring.public_jwks(), "ES256")
    assert header["kid"] == promoted == ring.current_kid("ES256")


def test_a_running_ring_keeps_its_keys_when_the_file_is_damaged(keys_dir: Path, ring: KeyRing,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    jwks = ring.public_jwks()
    key_file(keys_dir).write_text("{ damaged")
    with caplog.at_level(logging.ERROR, logger="idp.keys"):
        tokens = [ring.sign(CLAIMS, alg="RS256") for _ in range(3)]
    for token in tokens:
        verify(token, jwks, "RS256")
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and str(key_file(keys_dir)) in errors[0].getMessage()


def test_ensure_creates_keys_once_and_then_only_loads_them(keys_dir: Path) -> None:
    first = KeyRing.ensure(keys_dir, rsa_bits=FAST_RSA)
    second = KeyRing.ensure(keys_dir, rsa_bits=FAST_RSA)
    assert second.public_jwks() == first.public_jwks()


# --- the key file --------------------------------------------------------------------------------


def test_the_key_file_is_private_to_its_owner_even_under_a_lax_umask(keys_dir: Path) -> None:
    previous = os.umask(0)
    try:
        rotate(keys_dir, rsa_bits=FAST_RSA)
    finally:
        os.umask(previous)
    assert stat.S_IMODE(key_file(keys_dir).stat().st_mode) == 0o600


def test_the_key_file_holds_private_keys_and_is_not_a_jwk_set(keys_dir: Path, ring: KeyRing) -> None:
    doc = json.loads(key_file(keys_dir).read_text())
    # Not shaped like a JWKS, so it can never be served or taken for the public document.
    assert "keys" not in doc
    with pytest.raises(ValueError, match=r"(?i)invalid key set"):
        JsonWebKey.import_key_set(doc)
    stored = {role["kid"]: role for pair in doc["algorithms"].values() for role in pair.values()}
    assert stored.keys() == kids(ring.public_jwks())
    assert all("d" in key for key in stored.values())
    assert doc["rotated_at"]


def test_a_missing_key_file_names_the_file_and_the_command(keys_dir: Path) -> None:
    keys_dir.mkdir()
    with pytest.raises(ConfigError) as caught:
        KeyRing.load(keys_dir)
    assert str(key_file(keys_dir)) in caught.value.message
    assert "idp keys rotate" in caught.value.message


def _kid_not_thumbprint(doc: dict[str, Any]) -> None:
    doc["algorithms"]["RS256"]["current"]["kid"] = doc["algorithms"]["RS256"]["next"]["kid"]


def _public_only(doc: dict[str, Any]) -> None:
    key = doc["algorithms"]["ES256"]["next"]
    del key["d"]


def _wrong_curve_for_alg(doc: dict[str, Any]) -> None:
    doc["algorithms"]["RS256"]["next"] = doc["algorithms"]["ES256"]["next"] | {"alg": "RS256"}


def _unknown_alg(doc: dict[str, Any]) -> None:
    doc["algorithms"]["HS256"] = {"current": {"kty": "oct", "k": "c2VjcmV0"}, "next": {}}


def _missing_alg(doc: dict[str, Any]) -> None:
    del doc["algorithms"]["ES256"]


def _not_a_key(doc: dict[str, Any]) -> None:
    doc["algorithms"]["RS256"]["current"]["n"] = "not base64 !"


@pytest.mark.parametrize("damage", [_kid_not_thumbprint, _public_only, _wrong_curve_for_alg, _unknown_alg,
                                    _missing_alg, _not_a_key])
def test_a_key_file_with_wrong_contents_is_refused_without_quoting_keys(keys_dir: Path, ring: KeyRing,
                                                                        damage: Any) -> None:
    doc = json.loads(key_file(keys_dir).read_text())
    secret = doc["algorithms"]["RS256"]["current"]["d"]
    damage(doc)
    key_file(keys_dir).write_text(json.dumps(doc))
    with pytest.raises(ConfigError) as caught:
        KeyRing.load(keys_dir)
    message = caught.value.message
    assert str(key_file(keys_dir)) in message and "idp keys rotate" in message
    assert secret not in message and secret[:8] not in message


@pytest.mark.parametrize("text", ["", "{", "not json", "[]", '{"format": 2}', "null"])
def test_a_corrupt_key_file_names_the_file_and_the_command(keys_dir: Path, ring: KeyRing, text: str) -> None:
    key_file(keys_dir).write_text(text)
    with pytest.raises(ConfigError) as caught:
        KeyRing.load(keys_dir)
    assert str(key_file(keys_dir)) in caught.value.message
    assert "idp keys rotate" in caught.value.message


def test_rotate_replaces_a_corrupt_file_with_new_keys(keys_dir: Path, ring: KeyRing) -> None:
    old_kids = kids(ring.public_jwks())
    key_file(keys_dir).write_text("{ damaged")
    fresh = rotate(keys_dir, rsa_bits=FAST_RSA)
    assert not kids(fresh.public_jwks()) & old_kids
    assert KeyRing.load(keys_dir).public_jwks() == fresh.public_jwks()


def _half_written_dump(obj: Any, fh: Any, **kwargs: Any) -> None:
    fh.write(json.dumps(obj, **kwargs)[:100])
    raise OSError(errno.ENOSPC, "No space left on device")


def _replace_fails(src: Any, dst: Any) -> None:
    raise OSError(errno.EIO, "Input/output error")


@pytest.fixture(params=[("json.dump", _half_written_dump), ("os.replace", _replace_fails)],
                ids=["disk-full-while-writing", "rename-fails"])
def failing_write(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    target, replacement = request.param
    monkeypatch.setattr(target, replacement)
    yield


def test_a_rotation_that_fails_midway_leaves_the_old_file_intact(keys_dir: Path, ring: KeyRing,
                                                                failing_write: None) -> None:
    before = key_file(keys_dir).read_bytes()
    with pytest.raises(ConfigError, match="previous keys are unchanged"):
        rotate(keys_dir, rsa_bits=FAST_RSA)
    assert key_file(keys_dir).read_bytes() == before
    assert sorted(p.name for p in keys_dir.iterdir()) == [KEYS_FILE]  # no temporary file left behind
    assert KeyRing.load(keys_dir).public_jwks() == ring.public_jwks()


# --- the CLI -------------------------------------------------------------------------------------


@pytest.fixture
def idp(tmp_path: Path) -> Any:
    """`idp` as an operator runs it on a development home with nothing in it yet."""
    env: dict[str, str | None] = {name: None for name in os.environ if name.startswith("IDP_")}
    env |= {"IDP_MODE": "development", "IDP_HOME": str(tmp_path / "home")}
    runner = CliRunner()

    def run(*args: str) -> Result:
        return runner.invoke(main, list(args), env=env, catch_exceptions=False)
    return run


def printed_kids(result: Result) -> dict[str, str]:
    assert result.exit_code == 0, f"exit {result.exit_code}\nstderr: {result.stderr}"
    assert result.stderr == ""
    lines = dict(line.split(": ", 1) for line in result.stdout.splitlines())
    assert list(lines) == ["current_ES256", "next_ES256", "current_RS256", "next_RS256"]
    return lines


def test_cli_rotate_twice_promotes_next_and_prints_the_kids(idp: Any, tmp_path: Path) -> None:
    first = printed_kids(idp("keys", "rotate"))
    second = printed_kids(idp("keys", "rotate"))
    for alg in ALGS:
        assert second[f"current_{alg}"] == first[f"next_{alg}"]
        assert second[f"next_{alg}"] not in first.values()
    published = KeyRing.load(tmp_path / "home" / "keys").public_jwks()
    assert kids(published) == set(second.values())
    rsa = [k for k in published["keys"] if k["kty"] == "RSA"]
    assert {len(base64.urlsafe_b64decode(k["n"] + "==")) * 8 for k in rsa} == {3072}


def test_cli_show_prints_the_kids_and_changes_nothing(idp: Any, tmp_path: Path) -> None:
    rotated = printed_kids(idp("keys", "rotate"))
    before = (tmp_path / "home" / "keys" / KEYS_FILE).read_bytes()
    assert printed_kids(idp("keys", "show")) == rotated
    assert (tmp_path / "home" / "keys" / KEYS_FILE).read_bytes() == before


def test_cli_show_without_keys_fails_with_one_error_line(idp: Any, tmp_path: Path) -> None:
    result = idp("keys", "show")
    assert result.exit_code == 1 and result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "idp keys rotate" in lines[0] and KEYS_FILE in lines[0]
    assert not (tmp_path / "home" / "keys" / KEYS_FILE).exists()
