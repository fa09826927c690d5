"""The client credentials grant (RFC 6749 section 4.4) for library systems, and its access tokens.

A library system (idp.registry.library_systems) authenticates at the token endpoint with
client_secret_basic or private_key_jwt (RFC 7523 sections 2.2 and 3, verified by jwcrypto) and gets
an opaque access token bound to its library, for ACCESS_TOKEN_LIFETIME seconds. The state store
keeps the token's SHA-256 digest as its key, never the token. ``LibraryClients.introspect`` is what
the API asks about a bearer token. No Flask here.

Revocation: ``introspect`` looks the system up in the register at every call and refuses a disabled
one (or one moved to another library). Deleting tokens at ``idp library-system disable`` instead
would need an index of every live token, kept by a CLI process that has no state store of its own,
and a token issued while the disable commits would slip past it; a look-up cannot miss one, for an
indexed read the API makes anyway.

Scopes: a request without ``scope`` gets DEFAULT_SCOPE, the least of them (RFC 6749 section 3.3
allows a default); nothing grants more than the request names.

JWKS: inline, or fetched from the system's URL and cached briefly (idp.oidc.remote_jwks).
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from jwcrypto.common import JWException
from jwcrypto.jwk import JWKSet
from jwcrypto.jws import JWS
from jwcrypto.jwt import JWT
from pyop.exceptions import InvalidClientAuthentication
from sqlalchemy import Executable, Row, bindparam, select

from idp.errors import NotAllowed, NotFound
from idp.oidc.errors import InvalidClient, InvalidScope
from idp.oidc.provider import basic_credentials
from idp.oidc.remote_jwks import RemoteJwks
from idp.registry import library_systems
from idp.registry.context import Registry
from idp.registry.models import LibrarySystem
from idp.state import StateStore

GRANT_TYPE = "client_credentials"
SCOPES = ("register.read", "register.write", "cards", "series")
DEFAULT_SCOPE = "register.read"
ACCESS_TOKEN_LIFETIME = 300
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
# Asymmetric only: "none" proves nothing, and an HS* key would be a secret we hold.
ASSERTION_ALGS = ("RS256", "ES256", "PS256")
# An assertion is for one request now: its exp at most this far ahead (Maskinporten allows 120 s).
MAX_ASSERTION_LIFETIME = 300
# jwcrypto accepts an exp this far past (clock skew): a jti is remembered that much longer.
_LEEWAY = 60
_MAX_ASSERTION = 8 * 1024
_MAX_TOKEN = 512


@dataclass(frozen=True)
class LibraryAccess:
    """What a live access token allows: which system, for which library, to do what, until when."""

    client_id: str
    library_id: int
    isil: str
    scopes: tuple[str, ...]
    expires_at: int  # epoch seconds, by the register's clock
    # The system's own limit on API calls (None: the default); read from the register at each introspection.
    rate_limit: str | None = None


@dataclass(frozen=True)
class _Presented:
    client_id: str
    secret: str | None = None  # client_secret_basic
    assertion: str | None = None  # private_key_jwt


def advertise(configuration: MutableMapping[str, Any]) -> None:
    """Add the grant and its client authentication to the discovery document."""
    configuration["grant_types_supported"] = [*configuration["grant_types_supported"], GRANT_TYPE]
    configuration["token_endpoint_auth_methods_supported"] = [
        *configuration["token_endpoint_auth_methods_supported"], library_systems.PRIVATE_KEY_JWT]
    configuration["token_endpoint_auth_signing_alg_values_supported"] = list(ASSERTION_ALGS)


def requested_scopes(scope: str | None) -> tuple[str, ...]:
    """The scopes a request names (DEFAULT_SCOPE when it names none), in SCOPES order."""
    named = set((scope or DEFAULT_SCOPE).split())
    unknown = named - set(SCOPES)
    if unknown or len(scope or "") > 200:
        raise InvalidScope(f"unknown scope; a library system may ask for: {' '.join(SCOPES)}")
    return tuple(s for s in SCOPES if s in named)


class LibraryClients:
    """Library systems at the token endpoint, and the tokens they were given."""

    def __init__(self, registry: Callable[[str], AbstractContextManager[Registry]], state: StateStore,
                 clock: Callable[[], datetime], audiences: tuple[str, ...],
                 read: Callable[[Executable, Mapping[str, Any]], Sequence[Row[Any]]]) -> None:
        # audiences: an assertion's aud is our issuer or our token endpoint (RFC 7523 section 3).
        # read: one statement outside any transaction (Services.read), for the per-call token check.
        self._registry, self._state, self._clock, self._audiences = registry, state, clock, audiences
        self._read = read
        self._remote_jwks = RemoteJwks(state)

    # -- the token endpoint -----------------------------------------------------------------------
    def is_library_system(self, fields: Mapping[str, str], authorization: str | None) -> bool:
        """Whether the client a token request names is a library system (authenticated or not)."""
        try:
            presented = _presented(fields, authorization)
        except InvalidClient:
            return False
        with self._registry("oidc") as reg:
            return _find(reg, presented.client_id) is not None

    def authenticates(self, fields: Mapping[str, str], authorization: str | None, address: str | None) -> bool:
        """Whether the request authenticates a library system (for refusing it another grant)."""
        try:
            with self._registry("oidc") as reg:
                self._authenticate(reg, fields, authorization, address)
        except InvalidClient:
            return False
        return True

    def token_response(self, fields: Mapping[str, str], authorization: str | None,
                       address: str | None) -> dict[str, Any]:
        """The client credentials grant: a library system's new access token (RFC 6749 section 4.4.3)."""
        with self._registry("oidc") as reg:
            system, isil = self._authenticate(reg, fields, authorization, address)
            scopes = requested_scopes(fields.get("scope"))
            token, access = self.issue(system.client_id, system.library_id, isil, scopes)
            reg.audit("library_system.token", library_id=system.library_id, client_id=system.client_id,
                      scope=list(scopes), auth_method=library_systems.auth_method(system))
        return {"access_token": token, "token_type": "Bearer", "expires_in": ACCESS_TOKEN_LIFETIME,
                "scope": " ".join(access.scopes)}

    # -- the tokens -------------------------------------------------------------------------------
    def issue(self, client_id: str, library_id: int, isil: str, scopes: tuple[str, ...]) -> tuple[str, LibraryAccess]:
        """A new opaque access token and what it allows; only its digest is stored."""
        token = secrets.token_urlsafe(32)
        access = LibraryAccess(client_id, library_id, isil, scopes, self._now() + ACCESS_TOKEN_LIFETIME)
        kept = {name: value for name, value in access.__dict__.items() if name != "rate_limit"}
        self._state.put(_token_key(token), json.dumps(kept).encode(), ACCESS_TOKEN_LIFETIME)
        return token, access

    def introspect(self, token: str, address: str | None = None) -> LibraryAccess | None:
        """What a bearer token allows now, or None: unknown, expired, or its system disabled since.

        With ``address``, the caller's address must be in the system's allow-list (NotAllowed if not):
        a token carried off a library's network is no use elsewhere."""
        if not isinstance(token, str) or not 0 < len(token) <= _MAX_TOKEN:
            return None
        raw = self._state.get(_token_key(token))
        if raw is None:
            return None
        entry = json.loads(raw)
        access = LibraryAccess(**{**entry, "scopes": tuple(entry["scopes"])})
        if access.expires_at <= self._now():
            return None
        # One plain read, no ORM and no transaction: every API call pays for it, and it must see a
        # system disabled a moment ago (so no cache either).
        rows = self._read(_SYSTEM_NOW, {"client_id": access.client_id})
        if not rows or rows[0].disabled or rows[0].library_id != access.library_id:
            return None
        if address is not None and not library_systems.address_in(rows[0].allowed_ips, address):
            raise NotAllowed("This library system may not call from this address (its allow-list).")
        return replace(access, rate_limit=rows[0].rate_limit)

    # -- client authentication ----------------------------------------------------------------------
    def _authenticate(self, reg: Registry, fields: Mapping[str, str], authorization: str | None,
                      address: str | None) -> tuple[LibrarySystem, str]:
        presented = _presented(fields, authorization)
        found = _find(reg, presented.client_id)
        system = found[0] if found is not None else None
        if presented.assertion is None:
            # Compared even for an unknown client, so timing does not tell which client ids exist.
            if not library_systems.secret_matches(system, presented.secret):
                raise InvalidClient("client authentication failed")
        elif system is None or system.disabled:
            raise InvalidClient("client authentication failed")
        else:
            self._verify_assertion(system, presented.assertion)
        assert found is not None and system is not None  # noqa: S101 - both checks above refuse None
        if not library_systems.address_allowed(system, address or ""):
            raise InvalidClient("this client may not call from this address")
        return system, found[1]

    def _verify_assertion(self, system: LibrarySystem, assertion: str) -> None:
        """An RFC 7523 client assertion signed by a key of the system's JWKS, used once."""
        client_id = system.client_id
        if system.jwks is not None:
            keys = JWKSet.from_json(system.jwks)
        elif system.jwks_uri is not None:
            kid = _unverified_header(assertion).get("kid")
            keys = self._remote_jwks.keys(client_id, system.jwks_uri, kid if isinstance(kid, str) else None)
        else:
            raise InvalidClient("this client authenticates with its client secret (client_secret_basic)")
        try:
            verified = JWT(jwt=assertion, key=keys, algs=list(ASSERTION_ALGS),
                           expected_type="JWS", check_claims={"iss": client_id, "sub": client_id,
                                                              "aud": list(self._audiences), "exp": None, "jti": None})
            claims = json.loads(verified.claims)
        except (JWException, ValueError, TypeError) as exc:
            raise InvalidClient(f"the client assertion is not valid ({type(exc).__name__})") from None
        exp, jti, now = claims.get("exp"), claims.get("jti"), int(time.time())  # jwcrypto's clock
        if not isinstance(exp, int) or exp > now + MAX_ASSERTION_LIFETIME:
            raise InvalidClient(f"the client assertion's exp must be at most {MAX_ASSERTION_LIFETIME} seconds ahead")
        if not isinstance(jti, str) or not 0 < len(jti) <= 256:
            raise InvalidClient("the client assertion needs a jti")
        # Remembered until the assertion could no longer be accepted anyway (RFC 7523 section 3, item 7).
        digest = hashlib.sha256(jti.encode()).hexdigest()
        if self._state.incr(f"cc:jti:{client_id}:{digest}", max(exp - now + _LEEWAY, 1)) != 1:
            raise InvalidClient("this client assertion was used already (its jti is spent)")

    def _now(self) -> int:
        return int(self._clock().timestamp())


def _presented(fields: Mapping[str, str], authorization: str | None) -> _Presented:
    """The client and its credentials: HTTP Basic or a client assertion, never both."""
    assertion = fields.get("client_assertion")
    if "client_secret" in fields:
        raise InvalidClient("use HTTP Basic (client_secret_basic) or a client assertion (private_key_jwt)")
    if authorization:
        if assertion is not None:
            raise InvalidClient("use one client authentication method")
        try:
            client_id, secret = basic_credentials(authorization)
        except InvalidClientAuthentication as exc:
            raise InvalidClient(str(exc)) from None
        presented = _Presented(client_id, secret=secret)
    elif assertion is not None:
        if fields.get("client_assertion_type") != ASSERTION_TYPE:
            raise InvalidClient(f"client_assertion_type must be {ASSERTION_TYPE}")
        presented = _Presented(_unverified_issuer(assertion), assertion=assertion)
    else:
        raise InvalidClient("client authentication is missing")
    if fields.get("client_id") not in (None, presented.client_id):
        raise InvalidClient("client_id differs from the authenticated client")
    return presented


def _unverified(assertion: str) -> JWS:
    if len(assertion) > _MAX_ASSERTION:
        raise InvalidClient("the client assertion is too long")
    try:
        jws = JWS()
        jws.deserialize(assertion)
    except (JWException, ValueError, TypeError, KeyError, AttributeError):
        raise InvalidClient("the client assertion is not a JWT") from None
    return jws


def _unverified_header(assertion: str) -> dict[str, Any]:
    """The assertion's JOSE header, to pick the key that will verify it (nothing is trusted yet)."""
    header = _unverified(assertion).jose_header
    return header if isinstance(header, dict) else {}


def _unverified_issuer(assertion: str) -> str:
    """Who an assertion says it is from, to find the keys that will verify it (nothing is trusted yet)."""
    jws = _unverified(assertion)
    try:
        issuer = json.loads(jws.objects["payload"]).get("iss")
    except (JWException, ValueError, TypeError, KeyError, AttributeError):
        raise InvalidClient("the client assertion is not a JWT") from None
    if not isinstance(issuer, str):
        raise InvalidClient("the client assertion has no iss")
    return issuer


def _find(reg: Registry, client_id: str) -> tuple[LibrarySystem, str] | None:
    """The system (detached, read-only) and its library's ISIL, or None."""
    try:
        system = library_systems.get(reg, client_id)
    except NotFound:
        return None
    isil = system.library.isil
    reg.session.expunge(system)
    return system, isil


_SYSTEM_NOW = select(LibrarySystem.disabled, LibrarySystem.library_id, LibrarySystem.allowed_ips,
                     LibrarySystem.rate_limit).where(LibrarySystem.client_id == bindparam("client_id"))


def _token_key(token: str) -> str:
    # A digest, not the token: a copy of the store gives no usable token.
    return "cc:at:" + hashlib.sha256(token.encode()).hexdigest()
