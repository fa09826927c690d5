"""Library systems: each library's own system (Bibliofil, Quria, Koha...) as an OAuth 2.0 client of
our provider, registered by the national library. One system serves one library; a consortium
system gets one client per library.

A system authenticates with a key from its JWKS (private_key_jwt, as Maskinporten does; the JWKS
given inline or at an https URL) or with a client secret (client_secret_basic), never both. The
secret is returned once when drawn and only its digest is kept. No Flask here.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable
from urllib.parse import urlsplit

from jwcrypto.common import JWException
from jwcrypto.jwk import JWK
from limits import parse_many
from sqlalchemy import select

from idp.errors import NotAllowed, NotFound, ValidationError
from idp.net import is_loopback
from idp.registry.client_secrets import digest_matches, new_client_id, new_secret
from idp.registry.context import Registry
from idp.registry.libraries import get_library
from idp.registry.models import LibrarySystem

MAX_NAME = 200
MAX_JWKS_URI = 2000
MAX_JWKS = 64 * 1024  # a handful of public keys; anything bigger is not a JWKS
MAX_ALLOWED_NETWORKS = 100
MAX_RATE_LIMIT = 200
PRIVATE_KEY_JWT, CLIENT_SECRET_BASIC = "private_key_jwt", "client_secret_basic"
_CLIENT_ID_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


# -- validation -------------------------------------------------------------------------------

def clean_name(name: str) -> str:
    name = " ".join(name.split()) if isinstance(name, str) else ""
    if not 1 <= len(name) <= MAX_NAME or not name.isprintable():
        raise ValidationError(f"A library system needs a name of 1 to {MAX_NAME} printable characters.")
    return name


def clean_jwks(text: str) -> str:
    """An inline JWKS of public keys, returned as compact JSON."""
    if not isinstance(text, str) or len(text) > MAX_JWKS:
        raise ValidationError(f"A JWKS is a JSON document of at most {MAX_JWKS // 1024} KiB.")
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValidationError(f"The JWKS is not valid JSON: {exc.msg} at line {exc.lineno}.") from None
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list) or not document["keys"]:
        raise ValidationError('A JWKS is a JSON object with a non-empty "keys" list.')
    for entry in document["keys"]:
        # One by one: a JWKSet quietly drops the keys it cannot read.
        try:
            key = JWK(**entry) if isinstance(entry, dict) else None
        except (JWException, ValueError, TypeError) as exc:
            raise ValidationError(f"The JWKS holds a key that is not a valid JWK ({type(exc).__name__}).") from None
        if key is None:
            raise ValidationError("Every entry of a JWKS's \"keys\" is a JSON object (a JWK).")
        if key.has_private or entry.get("kty") == "oct":
            # The system keeps its private key; a JWKS sent to us with one has leaked it.
            raise ValidationError("The JWKS holds a private or symmetric key: give only public keys "
                                  "(and make a new key pair).")
    return json.dumps(document, separators=(",", ":"), sort_keys=True)


def clean_jwks_uri(uri: str) -> str:
    if not isinstance(uri, str) or not 0 < len(uri) <= MAX_JWKS_URI or any(c.isspace() for c in uri):
        raise ValidationError(f"A JWKS URL is 1 to {MAX_JWKS_URI} characters without spaces.")
    try:
        parts = urlsplit(uri)
        host, _ = parts.hostname, parts.port
    except ValueError:
        raise ValidationError(f"JWKS URL {uri} has an invalid host or port.") from None
    if not host or parts.username is not None or parts.password is not None or parts.fragment:
        raise ValidationError(f"JWKS URL {uri} must be https://host/path, without user name or fragment.")
    if parts.scheme == "https" or (parts.scheme == "http" and is_loopback(host)):
        return uri
    raise ValidationError(f"JWKS URL {uri} must use https (http only on 127.0.0.1, [::1] or localhost).")


def clean_networks(networks: Iterable[str]) -> list[str]:
    """CIDRs (a bare address is one host), canonical and without repeats."""
    if isinstance(networks, str):
        raise ValidationError("The IP allow-list is a list of CIDRs, not one string.")
    cleaned: list[str] = []
    for given in networks:
        try:
            network = ipaddress.ip_network(given.strip() if isinstance(given, str) else given, strict=True)
        except ValueError:
            raise ValidationError(f"{given!r} is not a network: give a CIDR such as 192.0.2.0/24 or "
                                  "2001:db8::/32, with no host bits set after the prefix.") from None
        if str(network) not in cleaned:
            cleaned.append(str(network))
    if len(cleaned) > MAX_ALLOWED_NETWORKS:
        raise ValidationError(f"An IP allow-list holds at most {MAX_ALLOWED_NETWORKS} networks.")
    return cleaned


def clean_rate_limit(text: str) -> str:
    """A limit on API calls in flask-limiter's syntax ("3000 per minute;100000 per day")."""
    text = text.strip() if isinstance(text, str) else ""
    try:
        parsed = parse_many(text) if 0 < len(text) <= MAX_RATE_LIMIT and text.isprintable() else []
    except ValueError:
        parsed = []
    if not parsed or any(item.amount < 1 or item.multiples < 1 for item in parsed):
        raise ValidationError(f"A rate limit looks like '3000 per minute' or '3000 per minute;100000 per day' "
                              f"(at most {MAX_RATE_LIMIT} characters, at least 1 call per period).")
    return text


# -- the service ------------------------------------------------------------------------------

def auth_method(system: LibrarySystem) -> str:
    return CLIENT_SECRET_BASIC if system.secret_hash is not None else PRIVATE_KEY_JWT


def add(reg: Registry, isil: str, name: str, *, jwks: str | None = None, jwks_uri: str | None = None,
        allowed_ips: Iterable[str] = (), rate_limit: str | None = None) -> tuple[LibrarySystem, str | None]:
    """Register a library's system. Returns it with its client secret, which exists nowhere else
    afterwards (None for a JWKS client, which has none)."""
    if jwks is not None and jwks_uri is not None:
        raise ValidationError("Give the JWKS inline or by URL, not both.")
    library = get_library(reg, isil)
    now = reg.now()
    system = LibrarySystem(client_id=new_client_id(), library_id=library.id, name=clean_name(name),
                           jwks=clean_jwks(jwks) if jwks is not None else None,
                           jwks_uri=clean_jwks_uri(jwks_uri) if jwks_uri is not None else None,
                           allowed_ips=clean_networks(allowed_ips),
                           rate_limit=clean_rate_limit(rate_limit) if rate_limit is not None else None,
                           disabled=False, created_at=now, updated_at=now)
    secret = None
    if system.jwks is None and system.jwks_uri is None:
        secret, system.secret_hash = new_secret()
    reg.session.add(system)
    reg.session.flush()
    reg.audit("library_system.add", library_id=library.id, client_id=system.client_id,
              auth_method=auth_method(system), allowed_ips=list(system.allowed_ips), rate_limit=system.rate_limit)
    return system, secret


def set_rate_limit(reg: Registry, client_id: str, rate_limit: str | None) -> LibrarySystem:
    """Give a system its own limit on API calls, or (None) return it to IDP_API_LIMIT_PER_SYSTEM."""
    cleaned = clean_rate_limit(rate_limit) if rate_limit is not None else None
    system = get(reg, client_id)
    if system.rate_limit != cleaned:
        system.rate_limit, system.updated_at = cleaned, reg.now()
        reg.session.flush()
        reg.audit("library_system.rate_limit", library_id=system.library_id, client_id=system.client_id,
                  rate_limit=cleaned)
    return system


def get(reg: Registry, client_id: str) -> LibrarySystem:
    if not isinstance(client_id, str) or not 0 < len(client_id) <= 64 or not set(client_id) <= _CLIENT_ID_CHARS:
        # Not echoed: it may be anything a caller sent, of any length.
        raise NotFound("No library system has that client_id (client ids are letters, digits, - and _).")
    system = reg.session.scalar(select(LibrarySystem).where(LibrarySystem.client_id == client_id))
    if system is None:
        raise NotFound(f"No library system has client_id {client_id}.")
    return system


def list_all(reg: Registry, isil: str | None = None) -> list[LibrarySystem]:
    """Every library system (or one library's), by library and name."""
    query = select(LibrarySystem)
    if isil is not None:
        query = query.where(LibrarySystem.library_id == get_library(reg, isil).id)
    return list(reg.session.scalars(query.order_by(LibrarySystem.library_id, LibrarySystem.name,
                                                   LibrarySystem.id)))


def disable(reg: Registry, client_id: str) -> LibrarySystem:
    """Stop a system authenticating at once. Idempotent: scripts may repeat it."""
    return _set_disabled(reg, client_id, True)


def enable(reg: Registry, client_id: str) -> LibrarySystem:
    return _set_disabled(reg, client_id, False)


def _set_disabled(reg: Registry, client_id: str, disabled: bool) -> LibrarySystem:
    system = get(reg, client_id)
    if system.disabled != disabled:
        system.disabled, system.updated_at = disabled, reg.now()
        reg.session.flush()
        reg.audit("library_system.disable" if disabled else "library_system.enable",
                  library_id=system.library_id, client_id=system.client_id)
    return system


def rotate_secret(reg: Registry, client_id: str) -> tuple[LibrarySystem, str]:
    """A new secret for a client_secret_basic system; the old one stops working when this commits."""
    system = get(reg, client_id)
    if system.secret_hash is None:
        raise NotAllowed(f"Library system {system.client_id} authenticates with its JWKS (private_key_jwt): "
                         "it has no secret to rotate.")
    secret, system.secret_hash = new_secret()
    system.updated_at = reg.now()
    reg.session.flush()
    reg.audit("library_system.rotate_secret", library_id=system.library_id, client_id=system.client_id)
    return system, secret


def secret_matches(system: LibrarySystem | None, secret: str | None) -> bool:
    """Whether ``secret`` is this enabled system's client secret (same work on every path)."""
    usable = system is not None and not system.disabled
    return digest_matches(system.secret_hash if usable and system is not None else None, secret)


def address_allowed(system: LibrarySystem, address: str) -> bool:
    """Whether a call from ``address`` is inside the system's IP allow-list (an empty list allows all)."""
    return address_in(system.allowed_ips, address)


def address_in(allowed_ips: list[str] | None, address: str) -> bool:
    """``address_allowed`` for the allow-list as stored (the API's per-call check reads only the column)."""
    if not allowed_ips:
        return True
    try:
        caller = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(caller in ipaddress.ip_network(network) for network in allowed_ips)
