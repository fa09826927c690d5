"""pyop, wired to the register and made safe where it is not (see STYLE.md's notes on pyop).

What is ours rather than pyop's, and why:
- id_tokens are signed by the key ring with jwcrypto (pyop's ES256 leaks keys) and the JWKS is
  the ring's current + next keys;
- clients live in the database with hashed secrets and are authenticated here in constant time
  (pyop compares plain text and crashes on a ':' in a Basic secret);
- subjects are derived (pairwise per relying party) instead of stored, and found by an index
  instead of a scan over every user;
- refresh tokens rotate: each refresh returns a new one, and the presented one is consumed by
  the same atomic write that stores the new ones, so it works once, for its own client only, and
  no longer than REFRESH_TOKEN_LIFETIME after the login it started from (idp.oidc.flow keeps the
  grants' families and revokes them);
- a code exchange answers invalid_grant for a code of another client, a wrong redirect URI or a
  wrong PKCE verifier (RFC 6749 section 5.2, RFC 7636 section 4.6), and never logs the code;
- an http issuer is accepted for loopback hosts only (development, tests), never elsewhere.
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from oic.exception import MessageException
from oic.oic.message import AccessTokenResponse, RefreshAccessTokenRequest
from pyop.authz_state import AuthorizationState
from pyop.exceptions import (InvalidAuthenticationRequest, InvalidClientAuthentication, InvalidRefreshToken,
                             InvalidSubjectIdentifier, InvalidTokenRequest)
from pyop.message import AccessTokenRequest, AuthorizationRequest
from pyop.provider import Provider

from idp.assurance import LEVELS
from idp.claims.vocabulary import CLAIMS_SUPPORTED
from idp.errors import ConfigError
from idp.keys import KeyRing
from idp.net import is_loopback
from idp.oidc.storage import StateMapping
from idp.subjects import PUBLIC_SECTOR, Subjects
from idp.state import StateStore

CODE_LIFETIME = 120
ACCESS_TOKEN_LIFETIME = 3600
REFRESH_TOKEN_LIFETIME = 30 * 24 * 3600
ID_TOKEN_LIFETIME = 600
# age_over_NN scopes (01-99) are accepted too; they are not listed one by one.
SCOPES = ["openid", "patron", "library", "profile", "email"]

# (client_id, secret or None) -> the client's metadata if it authenticates, else None.
Authenticator = Callable[[str, str | None], Mapping[str, Any] | None]


class _ClaimsAreOurs:
    """pyop's userinfo seam, deliberately empty: claims come from idp.claims under the
    relying party's policy, never from pyop, which has no notion of per-client release."""

    def __getitem__(self, user_id: str) -> dict[str, Any]:
        return {}

    def get_claims_for(self, user_id: str | None, requested_claims: Any, userinfo: Any = None) -> dict[str, Any]:
        return {}


# Each access token names the code its grant started from, carried over at every refresh, so
# that a replayed code revokes the tokens its grant has now, not only the first ones
# (RFC 6749 section 4.1.2); pyop's introspection does not pass the field on.
_CODE = "idp_code"
# ... and when that grant's family ends (epoch seconds): a refresh never carries it beyond
# REFRESH_TOKEN_LIFETIME after the code exchange, so the family indexes (idp.oidc.flow) outlive it.
_UNTIL = "idp_until"
# ... and the login the grant came from (acr, amr, auth_time): a refresh's id_token repeats them
# (OpenID Connect Core section 12.2), however many rotations later.
_LOGIN = "idp_login"
# The fields idp.oidc.token_admin reads to find a grant's family and end.
CODE_FIELD, UNTIL_FIELD = _CODE, _UNTIL
# A refreshed id_token carries the login's claims again, the login session's sid among them (Front-
# and Back-Channel Logout 1.0 name it).
LOGIN_CLAIMS = ("acr", "amr", "auth_time", "sid")


class UnknownRefreshToken(InvalidRefreshToken):
    """Not a live refresh token: never issued, revoked, or spent by a rotation (a replay, which
    the token endpoint answers by revoking the token's family, RFC 9700 section 4.14.2)."""


class _Unused:
    """pyop insists on a subject-identifier factory; ours are derived in RegisterAuthorizationState."""


class RegisterAuthorizationState(AuthorizationState):
    def __init__(self, state: StateStore, subjects: Subjects) -> None:
        super().__init__(
            _Unused(),
            authorization_code_db=StateMapping(state, "oidc:code:", CODE_LIFETIME + 60),
            # Kept as long as a refresh token may point at them; their own 'exp' says when they stop working.
            access_token_db=StateMapping(state, "oidc:at:", REFRESH_TOKEN_LIFETIME),
            refresh_token_db=StateMapping(state, "oidc:rt:", REFRESH_TOKEN_LIFETIME),
            authorization_code_lifetime=CODE_LIFETIME, access_token_lifetime=ACCESS_TOKEN_LIFETIME,
            refresh_token_lifetime=REFRESH_TOKEN_LIFETIME,
            # A threshold beyond the lifetime makes pyop issue a new refresh token on every refresh.
            refresh_token_threshold=REFRESH_TOKEN_LIFETIME + 1)
        self.subjects = subjects

    def get_subject_identifier(self, subject_type: str, user_id: str, sector_identifier: str | None = None) -> str:
        sector = PUBLIC_SECTOR if subject_type == "public" else sector_identifier
        if not sector:
            raise ValueError("a pairwise subject needs a sector")
        return self.subjects.subject(int(user_id), sector)

    def get_user_id_for_subject_identifier(self, subject_identifier: str) -> str:
        patron_id = self.subjects.patron_for(subject_identifier)
        if patron_id is None:
            raise InvalidSubjectIdentifier("unknown subject")
        return str(patron_id)

    def use_refresh_token(self, refresh_token: str, scope: Any = None, *, client_id: str | None = None) -> Any:
        """pyop's refresh with rotation, made safe: the token works once, only for the client it
        was issued to (RFC 6749 section 6), and not after its grant was revoked.

        Runs inside a state batch. The token is consumed by the batch's commit, which writes the
        new tokens only if it is still there: of two requests presenting it at once exactly one
        commits (the other gets Conflict), and a request refused before its commit (a scope
        beyond the grant, say) leaves the token as it was.
        """
        if client_id is None:
            raise InvalidRefreshToken("a refresh must name the client presenting the token")
        entry, previous = self.refresh_tokens.get_linked(refresh_token, "access_token", self.access_tokens)
        if entry is None:
            raise UnknownRefreshToken("unknown or already used refresh token")
        if previous is None:
            # Revoked (logout or a replayed code) while the refresh token was still out there.
            raise InvalidRefreshToken("the grant behind this refresh token was revoked")
        if previous.get("client_id") != client_id:
            raise InvalidRefreshToken("this refresh token was issued to another client")
        now = int(time.time())
        if previous.get(_UNTIL, now) < now:
            raise InvalidRefreshToken("the login behind this refresh token is too old: log in again")
        # pyop reads both entries again; the batch answers from what was just read.
        access_token, new_refresh_token = super().use_refresh_token(refresh_token, scope)
        self.refresh_tokens.consume(refresh_token)
        del self.access_tokens[entry["access_token"]]
        if _CODE in previous:
            self._mark_code(access_token.value, previous[_CODE], previous.get(_UNTIL), previous.get(_LOGIN))
        return access_token, new_refresh_token

    def exchange_code_for_token(self, authorization_code: str) -> Any:
        access_token = super().exchange_code_for_token(authorization_code)
        # pyop marks the code used; ours goes with the batch's commit, which writes nothing if the
        # code is gone by then (its family revoked meanwhile, idp.oidc.flow.Grants.revoke_family).
        self.authorization_codes.consume(authorization_code)
        self._mark_code(access_token.value, authorization_code, int(time.time()) + REFRESH_TOKEN_LIFETIME)
        return access_token

    def code_of(self, access_token: str) -> str | None:
        """The authorization code a grant started from, for the tokens it has now (see _CODE)."""
        entry = self.access_tokens.get(access_token)
        return entry.get(_CODE) if entry else None

    def login_of(self, access_token: str) -> dict[str, Any] | None:
        """The login (acr, amr, auth_time, sid) behind a grant's token (see _LOGIN)."""
        entry = self.access_tokens.get(access_token)
        return entry.get(_LOGIN) if entry else None

    def mark_login(self, access_token: str, login: Mapping[str, Any]) -> None:
        """Remember the login behind a code exchange's first access token (carried over at each refresh)."""
        entry = self.access_tokens[access_token]
        entry[_LOGIN] = {claim: login[claim] for claim in LOGIN_CLAIMS if claim in login}
        self.access_tokens[access_token] = entry

    def _mark_code(self, access_token: str, code: str, until: int | None,
                   login: Mapping[str, Any] | None = None) -> None:
        # Written in the same batch as the token itself: no round trip of its own.
        entry = self.access_tokens[access_token]
        entry[_CODE] = code
        if until is not None:
            entry[_UNTIL] = until
        if login is not None:
            entry[_LOGIN] = dict(login)
        self.access_tokens[access_token] = entry

    def revoke(self, access_token: str | None, refresh_token: str | None) -> None:
        for store, value in ((self.access_tokens, access_token), (self.refresh_tokens, refresh_token)):
            if value:
                store.pop(value, None)

    def forget_code(self, code: str) -> None:
        """Delete a code not yet exchanged: its exchange then fails, or conflicts if under way."""
        del self.authorization_codes[code]  # one delete, present or not


def _at_hash(access_token: str) -> str:
    digest = hashlib.sha256(access_token.encode()).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode()


def _construction_issuer(issuer: str) -> str:
    """oic refuses a non-https issuer; loopback http is allowed for development, nothing else."""
    parts = urlsplit(issuer)
    if parts.scheme == "https":
        return issuer
    if parts.scheme == "http" and is_loopback(parts.hostname):
        return "https" + issuer[len("http"):]
    raise ConfigError("IDP_ISSUER must be https (http is accepted for 127.0.0.1/localhost only)")


@dataclass(frozen=True)
class ClientEntry:
    """A client as pyop sees it (``metadata``) and the registry row it came from (``record``,
    detached and read-only) for the checks that are ours: secret, DPA, disabled."""

    metadata: Mapping[str, Any]
    record: Any


class RegisteredClients(Mapping[str, Mapping[str, Any]]):
    """Client metadata in pyop's shape, read from the relying-party registry.

    pyop consults it several times per request, and every token request authenticates its
    client, so answers are kept for ``TTL`` seconds per worker: an operator's change (disable,
    rotate-secret, DPA) reaches the token endpoint within that time. The authorization endpoint,
    where a patron is logged in to a partner, always reads the database.
    """

    TTL = 5.0

    def __init__(self, lookup: Callable[[str], ClientEntry | None]) -> None:
        self._lookup = lookup
        self._cache: dict[str, tuple[float, ClientEntry | None]] = {}

    def entry(self, client_id: object) -> ClientEntry | None:
        if not isinstance(client_id, str) or len(client_id) > 100:
            return None
        now = time.monotonic()
        hit = self._cache.get(client_id)
        if hit is not None and hit[0] > now:
            return hit[1]
        found = self._lookup(client_id)
        if len(self._cache) > 10_000:  # bounded: unknown ids sent by anyone must not grow it forever
            self._cache.clear()
        self._cache[client_id] = (now + self.TTL, found)
        return found

    def forget(self) -> None:
        self._cache.clear()

    def __getitem__(self, client_id: str) -> Mapping[str, Any]:
        found = self.entry(client_id)
        if found is None:
            raise KeyError(client_id)
        return found.metadata

    def __contains__(self, client_id: object) -> bool:
        return self.entry(client_id) is not None

    def __iter__(self) -> Iterator[str]:
        raise NotImplementedError("clients are looked up, not listed")

    def __len__(self) -> int:
        raise NotImplementedError("clients are looked up, not listed")


def _pkce_rules(provider: Provider, request: AuthorizationRequest) -> None:
    client = provider.clients[request["client_id"]]
    method = request.get("code_challenge_method")
    if "code_challenge" in request and method != "S256":
        raise InvalidAuthenticationRequest("PKCE must use code_challenge_method=S256", request,
                                           oauth_error="invalid_request")
    if client.get("public") and "code_challenge" not in request:
        raise InvalidAuthenticationRequest("PKCE (S256) is required for this client", request,
                                           oauth_error="invalid_request")


def _code_flow_only(provider: Provider, request: AuthorizationRequest) -> None:
    if request["response_type"] != ["code"]:
        raise InvalidAuthenticationRequest("only response_type=code is supported", request,
                                           oauth_error="unsupported_response_type")


class IdpProvider(Provider):
    def __init__(self, *, issuer: str, keyring: KeyRing, clients: RegisteredClients,
                 authz_state: RegisterAuthorizationState, authenticate: Authenticator) -> None:
        base = issuer.rstrip("/")
        configuration = {
            "issuer": _construction_issuer(base),
            "authorization_endpoint": f"{base}/authorize",
            "token_endpoint": f"{base}/token",
            "userinfo_endpoint": f"{base}/userinfo",
            "jwks_uri": f"{base}/jwks",
            "end_session_endpoint": f"{base}/logout/oidc",
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "subject_types_supported": ["pairwise", "public"],
            "id_token_signing_alg_values_supported": list(keyring.algorithms),
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
            "revocation_endpoint": f"{base}/revoke",  # RFC 7009, RFC 8414
            "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
            "introspection_endpoint": f"{base}/introspect",  # RFC 7662: confidential clients only
            "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "code_challenge_methods_supported": ["S256"],
            "scopes_supported": list(SCOPES),
            "claims_parameter_supported": True,
            "request_parameter_supported": False,
            "request_uri_parameter_supported": False,
            "authorization_response_iss_parameter_supported": True,
            "acr_values_supported": list(LEVELS),
            "claims_supported": ["sub", "acr", "amr", "auth_time", *CLAIMS_SUPPORTED],
            "ui_locales_supported": ["nb", "en"],
            # OIDC single logout: logout tokens and front-channel pages, both carrying iss and sid.
            "backchannel_logout_supported": True,
            "backchannel_logout_session_supported": True,
            "frontchannel_logout_supported": True,
            "frontchannel_logout_session_supported": True,
        }
        super().__init__(None, configuration, authz_state, clients, _ClaimsAreOurs(),
                         id_token_lifetime=ID_TOKEN_LIFETIME)
        self.configuration_information["issuer"] = base
        self.keyring = keyring
        self._authenticate = authenticate
        self.authentication_request_validators.append(lambda request: _code_flow_only(self, request))
        self.authentication_request_validators.append(lambda request: _pkce_rules(self, request))

    @property
    def jwks(self) -> dict[str, Any]:
        return self.keyring.public_jwks()

    def _create_subject_identifier(self, user_id: str, client_id: str, redirect_uri: str) -> str:
        # Pairwise per relying party (its client_id is the sector), public only where policy says.
        return self.authz_state.get_subject_identifier(self.clients[client_id].get("subject_type", "pairwise"),
                                                       user_id, client_id)

    def _create_signed_id_token(self, client_id: str, sub: str, user_claims: Any = None, nonce: str | None = None,
                                authorization_code: str | None = None, access_token_value: str | None = None,
                                extra_id_token_claims: Any = None) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {"iss": self.configuration_information["issuer"], "sub": sub, "aud": client_id,
                                  "iat": now, "exp": now + self.id_token_lifetime}
        claims.update(user_claims or {})
        claims.update(extra_id_token_claims or {})
        if nonce:
            claims["nonce"] = nonce
        if access_token_value:
            claims["at_hash"] = _at_hash(access_token_value)
        alg = self.clients[client_id].get("id_token_signed_response_alg", "RS256")
        return self.keyring.sign(claims, alg)

    def authenticate_client(self, fields: Mapping[str, str], authorization: str | None) -> str:
        """The authenticated client's id, from the token request's fields and Authorization
        header; raises InvalidClientAuthentication (idp.oidc.token_endpoint asks first, so that a code is
        only spent by the client it was issued to)."""
        client_id, secret = _client_credentials(fields, authorization)
        if self._authenticate(client_id, secret) is None:
            raise InvalidClientAuthentication("client authentication failed")
        return client_id

    def handle_authenticated_token_request(self, client_id: str, fields: Mapping[str, str],
                                           extra_id_token_claims: Mapping[str, Any] | None = None) -> Any:
        """pyop's handle_token_request for a client token_endpoint authenticated already (before a code
        is spent), and with the refresh token bound to its client, which pyop omits."""
        token_request = {**fields, "client_id": client_id}
        grant_type = token_request.get("grant_type")
        if grant_type == "authorization_code":
            extra = dict(extra_id_token_claims or {})
            response = self._do_code_exchange(token_request, extra)
            self.authz_state.mark_login(response["access_token"], extra)
            return response
        if grant_type == "refresh_token":
            return self._do_token_refresh(token_request)
        if grant_type is None:
            raise InvalidTokenRequest("grant_type missing", token_request)
        raise InvalidTokenRequest(f"grant_type {grant_type!r} is not supported", token_request,
                                  oauth_error="unsupported_grant_type")

    def _verify_code_exchange_req(self, token_request: AccessTokenRequest,
                                  authentication_request: AuthorizationRequest) -> None:
        """pyop's checks, each answering invalid_grant (RFC 6749 section 5.2, RFC 7636 section 4.6),
        where pyop answers invalid_request for a wrong verifier and logs the code of a wrong client."""
        if token_request["client_id"] != authentication_request["client_id"]:
            raise InvalidTokenRequest("unknown or expired authorization code", token_request,
                                      oauth_error="invalid_grant")
        if token_request.get("redirect_uri") != authentication_request["redirect_uri"]:
            raise InvalidTokenRequest("redirect_uri differs from the authorization request's", token_request,
                                      oauth_error="invalid_grant")
        if "code_challenge" in authentication_request and not self._PKCE_verify(token_request,
                                                                                authentication_request):
            raise InvalidTokenRequest("the code_verifier does not match the code_challenge", token_request,
                                      oauth_error="invalid_grant")

    def _do_token_refresh(self, request: Mapping[str, str]) -> AccessTokenResponse:
        """pyop's refresh, handing the authenticated client to use_refresh_token (pyop's omits it),
        with a new id_token (OpenID Connect Core section 12.2; pyop gives none): the grant's sub,
        acr, amr and auth_time, no nonce, no other claims (userinfo has them), signed with the
        relying party's algorithm as at the login."""
        token_request = RefreshAccessTokenRequest().from_dict(request)
        try:
            token_request.verify()
        except MessageException as exc:
            raise InvalidTokenRequest(str(exc), token_request) from exc
        access_token, refresh_token = self.authz_state.use_refresh_token(
            token_request["refresh_token"], scope=token_request.get("scope"), client_id=request["client_id"])
        response = AccessTokenResponse()
        self._add_access_token_to_response(response, access_token)
        if refresh_token:
            response["refresh_token"] = refresh_token
        login = self.authz_state.login_of(access_token.value)
        if login is not None:  # None: a grant from before logins were remembered with it
            sub = self.authz_state.access_tokens[access_token.value]["sub"]
            response["id_token"] = self._create_signed_id_token(
                request["client_id"], sub, extra_id_token_claims=login, access_token_value=access_token.value)
        return response

    def code_state_keys(self, code: str) -> list[str]:
        """The state keys a code exchange reads, for fetching them in one round trip."""
        return [self.authz_state.authorization_codes.state_key(code)]

    def index_subject(self, patron_id: int, client_id: str) -> None:
        """Index the patron's subject at this client now: a code exchange then looks the patron
        up in its own batch instead of the store (and the index lives on with the new tokens)."""
        self._create_subject_identifier(str(patron_id), client_id, "")

    def _verify_client_authentication(self, request_body: str, http_headers: Mapping[str, str] | None = None
                                      ) -> dict[str, str]:
        """pyop's hook, for any pyop path that authenticates a client from a raw body."""
        token_request = dict(parse_qsl(request_body))
        token_request["client_id"] = self.authenticate_client(token_request, (http_headers or {}).get("Authorization"))
        return token_request


def _client_credentials(token_request: Mapping[str, str], header: str | None) -> tuple[str, str | None]:
    """client_secret_basic, client_secret_post or none (public clients), never two at once."""
    if header:
        if "client_secret" in token_request:
            raise InvalidClientAuthentication("use one client authentication method: HTTP Basic")
        client_id, secret = basic_credentials(header)
        if token_request.get("client_id") not in (None, client_id):
            raise InvalidClientAuthentication("client_id differs from the authenticated client")
        return client_id, secret
    named = token_request.get("client_id")
    if not named:
        raise InvalidClientAuthentication("client authentication is missing")
    return named, token_request.get("client_secret")


def basic_credentials(header: str) -> tuple[str, str]:
    """(client_id, secret) from an HTTP Basic Authorization header, form-decoded (RFC 6749 2.3.1)."""
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        raise InvalidClientAuthentication("use HTTP Basic client authentication")
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        raise InvalidClientAuthentication("malformed HTTP Basic credentials") from None
    client_id, sep, secret = decoded.partition(":")  # a ':' inside the secret is fine (RFC 7617)
    if not sep:
        raise InvalidClientAuthentication("malformed HTTP Basic credentials")
    return unquote(client_id), unquote(secret)
