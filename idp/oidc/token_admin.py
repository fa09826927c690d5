"""Token revocation (RFC 7009) and introspection (RFC 7662) for relying parties. No Flask here.

Both authenticate the client as the token endpoint does (idp.oidc.token_endpoint.authenticate).
Revocation takes public clients too, by their client_id (RFC 7009 section 2.1); introspection only
confidential ones, since its answer is for a client that can prove who it is.

A client reaches only its own tokens. Anything else (unknown, expired, revoked, another client's)
is revoked silently with nothing done (RFC 7009 section 2.2) and introspected as
``{"active": false}`` alone (RFC 7662 section 2.2), so neither endpoint tells whether a token
exists.

- Revoking a refresh token ends its grant's family (idp.oidc.flow.Grants.revoke_family): the
  refresh token and the access token issued with it, as a replay does.
- Revoking an access token ends that token only (RFC 7009 section 2.1 lets the server choose): it
  expires at once, and its refresh token still works, since the refresh token is the client's
  to revoke.

Library systems' client-credentials tokens are not served here (unauthorized_client): they live
five minutes, and the register API, their only resource server, checks them itself
(idp.oidc.client_credentials.LibraryClients.introspect).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from idp.oidc.errors import InvalidClient, InvalidRequest, OidcError
from idp.oidc.provider import CODE_FIELD, UNTIL_FIELD
from idp.oidc.token_endpoint import authenticate

if TYPE_CHECKING:
    from idp.oidc.wiring import OidcParts

ACCESS_TOKEN = "access_token"  # noqa: S105 - token type names (RFC 7009), not secrets
REFRESH_TOKEN = "refresh_token"  # noqa: S105
TOKEN_TYPES = (ACCESS_TOKEN, REFRESH_TOKEN)
INACTIVE: dict[str, Any] = {"active": False}


class UnsupportedTokenType(OidcError):
    """RFC 7009 section 2.2.1; we answer it for a token_type_hint we do not know."""

    code = "unsupported_token_type"


@dataclass(frozen=True)
class _Found:
    kind: str  # ACCESS_TOKEN or REFRESH_TOKEN
    # The access token's entry (for a refresh token, the access token issued with it): who and what.
    grant: dict[str, Any]
    exp: int


def revoke(parts: OidcParts, fields: Mapping[str, str], authorization: str | None,
           address: str | None = None) -> None:
    """Revoke the request's token if it is the authenticated client's; else do nothing."""
    client_id = authenticate(parts, fields, authorization, address)
    token, order = _request(fields)
    found = _find(parts, token, order, client_id)
    if found is None:
        return
    state = parts.provider.authz_state
    if found.kind == REFRESH_TOKEN:
        code = found.grant.get(CODE_FIELD)
        if code:
            parts.grants.revoke_family(code)
        else:
            state.revoke(None, token)
        return
    # An access token: expired now, kept so that its refresh token (linked to it) still refreshes.
    entry = dict(found.grant)
    entry["exp"] = int(time.time()) - 1
    state.access_tokens[token] = entry


def introspect(parts: OidcParts, fields: Mapping[str, str], authorization: str | None,
               address: str | None = None) -> dict[str, Any]:
    """RFC 7662 section 2.2's answer about the request's token, to a confidential client."""
    client_id = authenticate(parts, fields, authorization, address)
    if parts.provider.clients[client_id].get("public"):
        raise InvalidClient("token introspection is for confidential clients only")
    token, order = _request(fields)
    found = _find(parts, token, order, client_id)
    if found is None or found.exp < int(time.time()):
        return dict(INACTIVE)
    grant = found.grant
    answer = {"active": True, "scope": grant.get("scope"), "client_id": client_id, "sub": grant.get("sub"),
              "exp": found.exp, "iat": grant.get("iat")}
    if found.kind == ACCESS_TOKEN:
        answer["token_type"] = grant.get("token_type", "Bearer")
    return {key: value for key, value in answer.items() if value is not None}


def _request(fields: Mapping[str, str]) -> tuple[str, tuple[str, ...]]:
    """The token, and the stores to look in, the hinted one first (RFC 7009 section 2.1)."""
    token = fields.get("token")
    if not token:
        raise InvalidRequest("the token parameter is required")
    hint = fields.get("token_type_hint")
    if hint is None:
        return token, TOKEN_TYPES
    if hint not in TOKEN_TYPES:
        raise UnsupportedTokenType("token_type_hint must be access_token or refresh_token")
    return token, (hint, *(kind for kind in TOKEN_TYPES if kind != hint))


def _find(parts: OidcParts, token: str, order: tuple[str, ...], client_id: str) -> _Found | None:
    """The client's own token, live or not (None for anything else)."""
    state = parts.provider.authz_state
    for kind in order:
        found: _Found | None = None
        if kind == ACCESS_TOKEN:
            entry = state.access_tokens.get(token)
            found = _Found(kind, entry, int(entry.get("exp", 0))) if entry else None
        else:
            entry, grant = state.refresh_tokens.get_linked(token, "access_token", state.access_tokens)
            if entry is not None and grant is not None:
                # A refresh token ends at its own exp or with its login (idp.oidc.provider._UNTIL).
                until = min(int(entry.get("exp", 0)), int(grant.get(UNTIL_FIELD, entry.get("exp", 0))))
                found = _Found(kind, grant, until)
        if found is not None:
            return found if found.grant.get("client_id") == client_id else None
    return None
