"""The token endpoint's grants (RFC 6749 sections 4.1.3 and 6): code exchange and refresh.

Given the form's fields and the Authorization header, ``token_response`` returns the token
response's body (RFC 6749 section 5.1) or raises an ``idp.oidc.errors.OidcError``. The client is
authenticated first, so that a code is only spent by the client it was issued to. Every state
write of one request goes out in one batch, and only if the answer is a success.

The client credentials grant is library systems' (idp.oidc.client_credentials): routed there
before pyop sees the request, and refused (unauthorized_client) to a relying party, as the other
grants are to a library system.

A replay revokes a grant's family (idp.oidc.flow): a code used twice (RFC 6749 section 4.1.2)
and a refresh token a rotation already spent (RFC 9700 section 4.14.2).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pyop.exceptions import InvalidClientAuthentication, InvalidSubjectIdentifier, OAuthError

from idp.oidc import client_credentials
from idp.oidc.errors import InvalidGrant, UnauthorizedClient, from_pyop
from idp.oidc.flow import describe
from idp.oidc.provider import UnknownRefreshToken
from idp.state import Batch, Conflict, StateStore

if TYPE_CHECKING:
    from idp.oidc.wiring import OidcParts


class _Replay(Exception):
    """A used code or a spent refresh token presented again: its family is to be revoked."""

    def __init__(self, family: str, description: str) -> None:
        super().__init__(description)
        self.family, self.description = family, description


def token_response(parts: OidcParts, state: StateStore, fields: Mapping[str, str],
                   authorization: str | None, address: str | None = None) -> dict[str, Any]:
    """The token response for a token request's form ``fields`` and Authorization header, sent
    from ``address`` (checked against a library system's IP allow-list)."""
    libraries = parts.library_clients
    if fields.get("grant_type") == client_credentials.GRANT_TYPE:
        if libraries.is_library_system(fields, authorization):
            return libraries.token_response(fields, authorization, address)
        _authenticate(parts, fields, authorization)  # invalid_client, unless a relying party authenticates
        raise UnauthorizedClient("the client_credentials grant is for library systems only")
    client_id = authenticate(parts, fields, authorization, address)
    try:
        # Every store write of this request goes out in one round trip, and only if it succeeds.
        with state.batch() as batch:
            return _grant(parts, client_id, fields, batch)
    except _Replay as replay:
        # Revoked outside the batch: each step at once, in the order Grants.revoke_family needs.
        parts.grants.revoke_family(replay.family)
        raise InvalidGrant(replay.description) from None


def authenticate(parts: OidcParts, fields: Mapping[str, str], authorization: str | None,
                 address: str | None) -> str:
    """The relying party a request authenticates (also at revocation and introspection); a library
    system that authenticates is refused with unauthorized_client, anyone else invalid_client."""
    try:
        return parts.provider.authenticate_client(fields, authorization)
    except InvalidClientAuthentication as exc:
        if parts.library_clients.authenticates(fields, authorization, address):
            raise UnauthorizedClient("a library system may use the client_credentials grant only, not "
                                     "the endpoints of relying parties") from None
        raise from_pyop(exc) from None


def _authenticate(parts: OidcParts, fields: Mapping[str, str], authorization: str | None) -> str:
    try:
        return parts.provider.authenticate_client(fields, authorization)
    except InvalidClientAuthentication as exc:
        raise from_pyop(exc) from None


def _grant(parts: OidcParts, client_id: str, fields: Mapping[str, str], batch: Batch) -> dict[str, Any]:
    """The grant's new tokens; ``batch`` is committed only for an answer that changes state."""
    extra: dict[str, Any] | None = None
    code = fields.get("code") if fields.get("grant_type") == "authorization_code" else None
    if code is not None:
        extra = _code_grant_claims(parts, client_id, code)
    try:
        result = parts.provider.handle_authenticated_token_request(client_id, fields, extra)
    except UnknownRefreshToken as exc:
        _refuse_spent(parts, fields)
        raise from_pyop(exc) from None
    except (OAuthError, KeyError, InvalidSubjectIdentifier) as exc:
        raise from_pyop(exc) from None
    # The grant's current tokens, which a replay of its code revokes: its first ones, then each rotation's.
    grant_code = code or parts.provider.authz_state.code_of(result.get("access_token"))
    if grant_code is not None:
        parts.grants.record_tokens(grant_code, result.get("access_token"), result.get("refresh_token"),
                                   replacing=None if code else fields["refresh_token"])
    try:
        batch.commit()
    except Conflict:
        if code is None and grant_code is not None:
            # The loser of two refreshes with one token at once presented a token spent by then: a
            # replay like any other, since nothing tells a client's double submit from a thief's.
            raise _Replay(grant_code, "this refresh token was used by another request just now: its grant "
                          "is revoked") from None
        raise InvalidGrant("the grant was revoked by another request just now") from None
    return dict(result.to_dict())


def _code_grant_claims(parts: OidcParts, client_id: str, code: str) -> dict[str, Any]:
    """Spend ``code`` for ``client_id``; the id_token's extra claims its grant settled at issue."""
    first = parts.grants.claim(code, client_id, prefetch=parts.provider.code_state_keys(code))
    family = parts.grants.family(code)
    # Another client's code (or none): refused before it counts as a use, so nothing is spent or revoked.
    if family is None or family.client_id != client_id:
        raise InvalidGrant("unknown or expired authorization code")
    if not first:
        raise _Replay(code, "this authorization code was already used")
    grant = parts.grants.grant(code)
    if grant is None:
        raise InvalidGrant("unknown or expired authorization code")
    parts.provider.index_subject(grant.patron_id, client_id)
    # The claim values were settled when the code was issued (idp.oidc.flow.CodeGrant).
    return {**describe(grant), **grant.values}


def _refuse_spent(parts: OidcParts, fields: Mapping[str, str]) -> None:
    """A refresh token a rotation already spent: raises _Replay for its family (else returns)."""
    presented = fields.get("refresh_token") if fields.get("grant_type") == "refresh_token" else None
    family = parts.grants.spent_family(presented) if presented else None
    if family is not None:
        raise _Replay(family, "this refresh token was already used: its grant is revoked")
