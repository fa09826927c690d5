"""The authorization endpoint's protocol steps (OpenID Connect Core 3.1.2), without the pages.

Reading a request (``parse_authentication_request``: an ``OidcError`` for its redirect URI or
``Unanswerable`` for the patron), what it asks for against the client's policy
(``claims_decision``), and issuing the code once the patron is logged in and has consented
(``settle_claims``, then ``issue_code``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from jwkest import JWKESTException
from oic.exception import PyoidcError
from pyop.exceptions import InvalidAuthenticationRequest

from idp import relying_parties
from idp.claims import Decision, claims_for_scopes, decide_for, parse_claims_parameter, release
from idp.oidc.errors import InvalidRequest, LoginRequired, from_pyop
from idp.oidc.flow import CodeGrant
from idp.oidc.provider import CODE_LIFETIME
from idp.registry.models import Patron, RelyingParty

if TYPE_CHECKING:
    from idp.oidc.provider import IdpProvider
    from idp.oidc.wiring import OidcParts
    from idp.registry.context import Registry

# Whatever parsing a hostile authentication request can raise in pyop, oic and pyjwkest
# (AssertionError on a request object, DecodeError on a bad ``claims``, ValueError on
# ``max_age=soon``, RecursionError on deep JSON): each must end as the protocol's error, never a
# 500 (OpenID Connect Core 3.1.2.6).
UNPARSEABLE: tuple[type[BaseException], ...] = (PyoidcError, JWKESTException, AssertionError, ValueError, TypeError,
                                                KeyError, RecursionError, UnicodeError)


def parse_authentication_request(provider: IdpProvider, params: Mapping[str, str]) -> Any:
    """pyop's parsed and validated request; raises OidcError or Unanswerable."""
    try:
        return provider.parse_authentication_request(urlencode(params))
    except InvalidAuthenticationRequest as exc:
        raise from_pyop(exc) from None
    except UNPARSEABLE as exc:
        raise InvalidRequest(f"the request could not be read ({type(exc).__name__})") from None


def registered_redirect(provider: IdpProvider, params: Mapping[str, Any]) -> bool:
    """Whether the request names a client and one of its registered redirect URIs: only there
    may an error go (pyop checks the message before the client)."""
    clients = provider.clients
    client_id, redirect_uri = params.get("client_id"), params.get("redirect_uri")
    return (isinstance(client_id, str) and client_id in clients
            and redirect_uri in clients[client_id]["redirect_uris"])


def claims_decision(rp: RelyingParty, parsed: Any) -> Decision:
    """What this request asks for (scopes and the claims parameter) against the client's policy."""
    claims = parsed.get("claims")
    asked = parse_claims_parameter(claims.to_dict() if hasattr(claims, "to_dict") else claims)
    return decide_for(rp, [*claims_for_scopes(parsed["scope"]), *asked.names], asked.essential)


def settle_claims(reg: Registry, client_id: str, patron_id: int, released: list[str]) -> dict[str, Any]:
    """The released claims' values, settled and recorded now, as the patron consented (the token
    endpoint hands them over); LoginRequired if the patron is gone since logging in."""
    if reg.session.get(Patron, patron_id) is None:
        raise LoginRequired("the patron must log in again")
    return release(reg, patron_id, relying_parties.get(reg, client_id), released, protocol="oidc").values


def issue_code(parts: OidcParts, parsed: Any, grant: CodeGrant, issuer: str) -> str:
    """The authorization response's URL: a new code for ``grant`` at the request's redirect URI,
    in its query, with our issuer (RFC 9207)."""
    response = parts.provider.authorize(parsed, str(grant.patron_id))
    parts.grants.remember(response["code"], grant, CODE_LIFETIME + 60)
    response["iss"] = issuer
    return str(response.request(parsed["redirect_uri"], False))
