"""Malformed input gets the protocol's error answer, never a 500: over real HTTP, with requests.

An authorization request whose client and redirect URI are registered gets an error redirect
(OpenID Connect Core 3.1.2.6); the verify API answers 400 JSON with a message.
"""

from __future__ import annotations

import base64
import json

import pytest
import requests

from tests.flows.conftest import LiveIdp
from tests.flows.test_oidc_flow import CALLBACK, callback_params, register

# A signed request object as a client would send it (its content does not matter: we support none).
REQUEST_OBJECT = "eyJhbGciOiJub25lIn0.eyJpc3MiOiJ4In0."


def authorize(live: LiveIdp, query: str) -> requests.Response:
    """GET /authorize with a raw query string (``requests`` would re-encode what we want malformed)."""
    return requests.get(f"{live.url}/authorize?{query}", allow_redirects=False, timeout=5,
                        headers={"Accept-Language": "en"})


def base_query(client_id: str) -> str:
    return (f"client_id={client_id}&redirect_uri={requests.utils.quote(CALLBACK, safe='')}&response_type=code"
            "&scope=openid&state=st8&nonce=n&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
            "&code_challenge_method=S256")


@pytest.mark.parametrize(("extra", "error"), [
    (f"request={REQUEST_OBJECT}", "request_not_supported"),
    ("request_uri=https%3A%2F%2Fevil.example%2Frequest.jwt", "request_uri_not_supported"),
    ("registration=%7B%7D", "registration_not_supported"),
    ("claims=%7Bnot-json", "invalid_request"),
    ("claims=%5B1%2C2%5D", "invalid_request"),  # valid JSON, not an object
    ("claims=%22text%22", "invalid_request"),
    ("claims=%7B%22userinfo%22%3A5%7D", None),  # an object whose member is no object: ignored or refused
    ("max_age=soon", "invalid_request"),
    ("max_age=-5", "invalid_request"),
    ("max_age=%D9%A3", "invalid_request"),  # an Arabic-Indic three: int() reads it, the spec means ASCII digits
    ("max_age=99999999999999999999999999", None),
    ("prompt=sometimes", None),
    ("prompt=none%20login", "invalid_request"),
    ("response_type=token", None),
    ("code_challenge_method=plain", "invalid_request"),
    ("display=hologram", None),
    ("id_token_hint=not-a-token", None),
    ("acr_values=%00%01", None),
    ("state=%FF%FE", None),  # not UTF-8
    ("nonce=%C3%28", None),
    ("scope=openid&scope=profile", None),  # repeated parameter
    ("redirect_uri=https%3A%2F%2Fevil.example%2Fcb", "page"),  # a repeated redirect_uri never adds a target
])
def test_a_malformed_authorization_request_gets_the_protocol_error(live: LiveIdp, extra: str,
                                                                   error: str | None) -> None:
    client = register(live)
    response = authorize(live, f"{base_query(client.client_id)}&{extra}")
    assert response.status_code < 500, response.text[:300]
    if error == "page":
        assert response.status_code in (200, 400) and "evil.example" not in response.headers.get("Location", "")
    elif error is not None:
        assert callback_params(response)["error"] == error
    elif response.is_redirect and response.headers["Location"].startswith(CALLBACK):
        assert set(callback_params(response)) >= {"error", "state"} or "code" not in callback_params(response)


@pytest.mark.parametrize("query", [
    "client_id=%FF&redirect_uri=%FF&response_type=code&scope=openid",
    "claims=%7Bnot-json&client_id=nobody&response_type=code&scope=openid",
    f"request={REQUEST_OBJECT}&client_id=nobody&response_type=code&scope=openid&redirect_uri=https%3A%2F%2Fx",
    "client_id[]=x&redirect_uri=" + "a" * 5000,
    "max_age=x&client_id=nobody&response_type=code&scope=openid",
])
def test_a_malformed_request_without_a_registered_redirect_gets_the_error_page(live: LiveIdp, query: str) -> None:
    response = authorize(live, query)
    assert response.status_code == 400 and "Location" not in response.headers
    assert "text/html" in response.headers["Content-Type"]


def _partner_auth(live: LiveIdp) -> tuple[str, str]:
    client = register(live)
    return client.client_id, client.secret or ""


@pytest.mark.parametrize("body", [
    b"[" * 5000 + b"]" * 5000,
    b'{"card_number": ' + b"[" * 5000 + b"]" * 5000 + b', "password": "x"}',
    b'{"card_number": "N000001001", "password": "x", "age_over": [' + b"9" * 5000 + b"]}",
    b'{"card_number": "\xff\xfe", "password": "x"}',
    b"\xff\xfe\x00",
    b"null",
    b'"text"',
    b"[]",
    b"",
])
def test_a_malformed_verify_body_gets_400_json(live: LiveIdp, body: bytes) -> None:
    response = requests.post(f"{live.url}/api/v1/verify", data=body, auth=_partner_auth(live), timeout=10,
                             headers={"Content-Type": "application/json"})
    assert response.status_code == 400, response.text[:300]
    assert response.headers["Content-Type"] == "application/json" and response.json()["message"]


def test_a_deeply_nested_claims_parameter_is_refused_not_crashed_on(live: LiveIdp) -> None:
    client = register(live)
    deep = requests.utils.quote("[" * 3000 + "]" * 3000, safe="")
    response = authorize(live, f"{base_query(client.client_id)}&claims={deep}")
    assert response.status_code < 500
    assert callback_params(response)["error"] == "invalid_request"


def test_a_basic_header_that_is_not_base64_gets_401_json(live: LiveIdp) -> None:
    for header in ("Basic %%%", "Basic " + base64.b64encode(b"\xff\xfe:\xff").decode(), "Bearer x", "Basic"):
        response = requests.post(f"{live.url}/api/v1/verify", data=json.dumps({}), timeout=5,
                                 headers={"Content-Type": "application/json", "Authorization": header})
        assert response.status_code == 401 and response.json()["error"] == "invalid_client"


@pytest.mark.parametrize(("body", "authorization"), [
    ("grant_type=authorization_code&code=%FF%FE&redirect_uri=%FF", None),
    ("grant_type=authorization_code&grant_type=refresh_token&code=x", None),
    ("grant_type=refresh_token&refresh_token=" + "[" * 3000, None),
    ("grant_type=authorization_code&code=x", "Basic !!!not-base64"),
    ("grant_type=authorization_code&code=x", "Basic " + base64.b64encode(b"\xff\xfe:\xff").decode()),
    ("grant_type=authorization_code&code=x", "Basic " + base64.b64encode(b"no-colon").decode()),
    ("grant_type=authorization_code&code=x", "Bearer x\x01y"),
])
def test_a_malformed_token_request_gets_rfc6749_json(live: LiveIdp, body: str, authorization: str | None) -> None:
    client = register(live)
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if authorization is not None:
        headers["Authorization"] = authorization
    response = requests.post(f"{live.url}/token", data=body.encode("latin-1"), timeout=5, headers=headers,
                             auth=None if authorization else (client.client_id, client.secret))
    assert response.status_code in (400, 401), response.text[:300]
    assert response.json()["error"] in ("invalid_request", "invalid_client", "invalid_grant", "unsupported_grant_type")


@pytest.mark.parametrize("query", ["id_token_hint=not.a.token", "id_token_hint=%FF%FE", "id_token_hint=" + "a." * 3000,
                                   "post_logout_redirect_uri=%0D%0A&state=%FF"])
def test_a_malformed_logout_request_gets_a_page(live: LiveIdp, query: str) -> None:
    response = requests.get(f"{live.url}/logout/oidc?{query}", allow_redirects=False, timeout=5)
    assert response.status_code in (200, 400) and "text/html" in response.headers["Content-Type"]


@pytest.mark.parametrize("authorization", ["Bearer", "Bearer \x7f", "Basic x", "Bearer " + "a" * 9000])
def test_a_malformed_userinfo_request_gets_a_bearer_error(live: LiveIdp, authorization: str) -> None:
    response = requests.get(f"{live.url}/userinfo", headers={"Authorization": authorization}, timeout=5)
    assert response.status_code in (400, 401) and "WWW-Authenticate" in response.headers
