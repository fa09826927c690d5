"""The token and userinfo endpoints' protocol core, called as a blueprint would, without Flask.

Each rule is written as its RFC says it: RFC 6749 4.1.2 and 5.2, RFC 9700 4.14.2, RFC 6750 3.1.
"""

from __future__ import annotations

import base64
from datetime import date
from typing import Any

import pytest

from idp import relying_parties
from idp.oidc import errors
from idp.oidc.authorization import issue_code, parse_authentication_request
from idp.oidc.flow import CodeGrant
from idp.oidc.token_endpoint import token_response
from idp.oidc.userinfo import bearer_access
from idp.services import Services

CALLBACK = "https://rp.example/cb"


def _client(services: Services) -> tuple[str, str]:
    with services.registry("test") as reg:
        rp, secret = relying_parties.add_oidc(reg, "Demo e-books", [CALLBACK], claims=["valid_patron"],
                                              dpa_signed=date(2026, 1, 1))
        return rp.client_id, secret


def _basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def _code(services: Services, client_id: str) -> str:
    parsed = parse_authentication_request(services.oidc.provider, {
        "client_id": client_id, "redirect_uri": CALLBACK, "response_type": "code", "scope": "openid"})
    location = issue_code(services.oidc, parsed, CodeGrant(
        patron_id=1, client_id=client_id, acr="password", amr=["pwd"], auth_time=0, claims=[], values={}),
        services.settings.issuer)
    return location.split("code=")[1].split("&")[0]


def _exchange(services: Services, client: tuple[str, str], code: str) -> dict[str, Any]:
    return token_response(services.oidc, services.state, {
        "grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK}, _basic(*client))


def _refresh(services: Services, client: tuple[str, str], refresh_token: str) -> dict[str, Any]:
    return token_response(services.oidc, services.state, {
        "grant_type": "refresh_token", "refresh_token": refresh_token}, _basic(*client))


def _is_live(services: Services, access_token: str) -> bool:
    try:
        bearer_access(services.oidc, {}, f"Bearer {access_token}")
    except errors.InvalidToken:
        return False
    return True


def test_a_code_used_twice_is_refused_and_its_tokens_revoked(services: Services) -> None:
    client = _client(services)
    code = _code(services, client[0])
    first = _exchange(services, client, code)
    assert first["token_type"] == "Bearer" and _is_live(services, first["access_token"])
    # RFC 6749 4.1.2: "If an authorization code is used more than once, the authorization server
    # MUST deny the request and SHOULD revoke (when possible) all tokens previously issued based
    # on that authorization code."
    with pytest.raises(errors.InvalidGrant):
        _exchange(services, client, code)
    assert not _is_live(services, first["access_token"])


def test_a_wrong_secret_is_invalid_client_answered_401(services: Services) -> None:
    client_id, _ = _client(services)
    code = _code(services, client_id)
    # RFC 6749 5.2: invalid_client; Basic was used, so 401 (see test_oidc_errors for the challenge).
    with pytest.raises(errors.InvalidClient) as refused:
        _exchange(services, (client_id, "not-the-secret"), code)
    assert refused.value.http_status == 401


def test_an_unsupported_grant_type_is_named_so(services: Services) -> None:
    client = _client(services)
    # RFC 6749 5.2: unsupported_grant_type, "The authorization grant type is not supported".
    with pytest.raises(errors.UnsupportedGrantType):
        token_response(services.oidc, services.state, {"grant_type": "password", "username": "x", "password": "y"},
                       _basic(*client))


def test_a_replayed_refresh_token_revokes_its_grant(services: Services) -> None:
    client = _client(services)
    first = _exchange(services, client, _code(services, client[0]))
    rotated = _refresh(services, client, first["refresh_token"])
    assert rotated["refresh_token"] != first["refresh_token"] and _is_live(services, rotated["access_token"])
    # RFC 9700 4.14.2: with rotation, a refresh token used again means the grant is compromised:
    # the request is refused and the active refresh token (and its access token) revoked.
    with pytest.raises(errors.InvalidGrant):
        _refresh(services, client, first["refresh_token"])
    assert not _is_live(services, rotated["access_token"])
    with pytest.raises(errors.InvalidGrant):
        _refresh(services, client, rotated["refresh_token"])


def test_userinfo_without_a_token_is_a_bare_bearer_challenge(services: Services) -> None:
    # RFC 6750 3.1: no authentication information at all, so no error code in the challenge; 401.
    with pytest.raises(errors.MissingBearerToken) as refused:
        bearer_access(services.oidc, {}, None)
    assert refused.value.http_status == 401
