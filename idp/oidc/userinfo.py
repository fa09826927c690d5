"""The userinfo endpoint (OpenID Connect Core 5.3): the bearer check, then the claims released.

``bearer_access`` reads the access token (RFC 6750 section 2.1 header or 2.2 form body) and
raises a ``BearerError`` for a missing, unknown or expired one; ``userinfo_claims`` answers with
what the client's policy releases now, never more than the patron consented to.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pyop.access_token import extract_bearer_token_from_http_request
from pyop.exceptions import BearerTokenError, InvalidAccessToken

from idp import relying_parties
from idp.claims import claims_for_scopes, decide_for, parse_claims_parameter, release
from idp.oidc.errors import InvalidToken, from_pyop
from idp.registry import consents
from idp.registry.models import Patron

if TYPE_CHECKING:
    from idp.oidc.wiring import OidcParts
    from idp.registry.context import Registry


@dataclass(frozen=True)
class Access:
    """What a live access token lets its client read."""

    sub: str
    patron_id: int | None  # None: the subject names nobody (any more)
    client_id: str
    scopes: list[str]
    claims_parameter: Any  # the authorization request's ``claims``, if it had one


def bearer_access(parts: OidcParts, form: Mapping[str, str], authorization: str | None) -> Access:
    """The access the request's Bearer token gives; raises a BearerError if it gives none."""
    authz_state = parts.provider.authz_state
    try:
        bearer = extract_bearer_token_from_http_request(dict(form), authorization)
        info = authz_state.introspect_access_token(bearer)
    except (BearerTokenError, InvalidAccessToken) as exc:
        raise from_pyop(exc) from None
    if not info["active"]:
        raise InvalidToken("the access token has expired")
    auth_request = authz_state.get_authorization_request_for_access_token(bearer)
    return Access(sub=info["sub"], patron_id=parts.subjects.patron_for(info["sub"]), client_id=info["client_id"],
                  scopes=info["scope"].split(), claims_parameter=auth_request.get("claims"))


def userinfo_claims(reg: Registry, parts: OidcParts, access: Access) -> dict[str, Any]:
    """The userinfo response: ``sub`` and the claims released to the client for this token."""
    patron = reg.session.get(Patron, access.patron_id) if access.patron_id is not None else None
    if patron is None:
        raise InvalidToken("the patron behind this token no longer exists")
    rp = relying_parties.get(reg, access.client_id)
    asked = parse_claims_parameter(access.claims_parameter)
    decision = decide_for(rp, [*claims_for_scopes(access.scopes), *asked.names])
    # Never more than the patron agreed to, even if the policy has grown since.
    agreed = consents.agreed(reg, patron.id, access.client_id)
    wanted = [name for name in decision.released if name in agreed]
    return {"sub": access.sub, **release(reg, patron.id, rp, wanted, protocol="oidc").values}
