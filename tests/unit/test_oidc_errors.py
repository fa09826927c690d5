"""The OIDC error model answers as the RFCs say, each rule written here as the RFC states it.

RFC 6749 5.2 (token endpoint errors), RFC 6750 3 and 3.1 (bearer challenges), RFC 6749 4.1.2.1
and 3.1.2 (errors at the redirect URI), RFC 9207 2 (iss in the authorization response).
"""

from __future__ import annotations

import json
import re
from urllib.parse import parse_qs, urlsplit

import pytest
from pyop.exceptions import (BearerTokenError, InvalidAccessToken, InvalidAuthenticationRequest,
                             InvalidClientAuthentication, InvalidRefreshToken, InvalidRedirectURI, InvalidScope,
                             InvalidTokenRequest, UnknownClientId)
from pyop.message import AuthorizationRequest

from idp.oidc import errors
from idp.oidc.errors import Reason, Unanswerable, from_pyop

ISSUER = "https://idp.example"


def _challenge(header: str) -> tuple[str, dict[str, str]]:
    """An RFC 7235 challenge: its scheme and its auth-params (quoted-string values)."""
    scheme, _, rest = header.partition(" ")
    return scheme, dict(re.findall(r'([A-Za-z_]+)="([^"]*)"', rest))


# -- RFC 6749 section 5.2: the token endpoint ----------------------------------------------------

@pytest.mark.parametrize("error_class, code", [
    (errors.InvalidRequest, "invalid_request"), (errors.InvalidGrant, "invalid_grant"),
    (errors.UnauthorizedClient, "unauthorized_client"), (errors.UnsupportedGrantType, "unsupported_grant_type"),
    (errors.InvalidScope, "invalid_scope")])
def test_a_token_error_is_400_with_error_and_description_in_json(error_class: type[errors.OidcError],
                                                                  code: str) -> None:
    # "The authorization server responds with an HTTP 400 (Bad Request) status code (unless
    # specified otherwise) and includes the following parameters ... error ... error_description"
    error = error_class("what went wrong")
    assert error.http_status == 400
    assert json.loads(json.dumps(error.body())) == {"error": code, "error_description": "what went wrong"}


def test_invalid_client_after_http_basic_is_401_with_a_basic_challenge() -> None:
    # "If the client attempted to authenticate via the Authorization request header field, the
    # authorization server MUST respond with an HTTP 401 (Unauthorized) status code and include
    # the WWW-Authenticate response header field matching the authentication scheme used by the client."
    error = from_pyop(InvalidClientAuthentication("client authentication failed"))
    assert isinstance(error, errors.OidcError)
    assert error.http_status == 401 and error.body()["error"] == "invalid_client"
    scheme, params = _challenge(error.headers()["WWW-Authenticate"])
    assert scheme == "Basic" and "realm" in params  # RFC 7617 2: the realm is required


def test_token_errors_are_not_cached() -> None:
    # RFC 6749 5.1: responses carrying credentials are "Cache-Control: no-store"; our errors at the
    # token endpoint likewise, so that a proxy never replays one for another client.
    for error in (errors.InvalidGrant("x"), errors.InvalidClient("x"), errors.InvalidRequest("x")):
        assert error.headers()["Cache-Control"] == "no-store"


@pytest.mark.parametrize("raised, code", [
    (InvalidRefreshToken("unknown or already used refresh token"), "invalid_grant"),
    (InvalidScope("Requested scope includes non-granted value"), "invalid_scope"),
    (InvalidTokenRequest("grant_type 'password' is not supported", {}, oauth_error="unsupported_grant_type"),
     "unsupported_grant_type"),
    (InvalidTokenRequest("grant_type missing", {}), "invalid_request"),
    (KeyError("oidc:at:gone"), "invalid_grant")])
def test_pyop_token_errors_keep_their_code(raised: Exception, code: str) -> None:
    error = from_pyop(raised)
    assert isinstance(error, errors.OidcError) and error.http_status == 400 and error.code == code


# -- RFC 6750 section 3: the bearer endpoints (userinfo) -----------------------------------------

def test_an_unknown_access_token_is_401_with_a_bearer_invalid_token_challenge() -> None:
    # 3.1: invalid_token "The resource SHOULD respond with the HTTP 401 (Unauthorized) status code."
    # 3: the challenge uses the "Bearer" scheme and carries error="invalid_token".
    error = from_pyop(InvalidAccessToken("s3cr3t-token-value unknown"))
    assert isinstance(error, errors.OidcError) and error.http_status == 401
    scheme, params = _challenge(error.headers()["WWW-Authenticate"])
    assert scheme == "Bearer" and params["error"] == "invalid_token"
    # pyop's message repeats the token; ours never does.
    assert "s3cr3t-token-value" not in json.dumps(error.body()) + error.headers()["WWW-Authenticate"]


def test_a_request_without_a_token_gets_a_challenge_without_an_error_code() -> None:
    # 3.1: "If the request lacks any authentication information ... the resource server SHOULD NOT
    # include an error code or other error information." 3: the challenge still says Bearer.
    error = from_pyop(BearerTokenError("Bearer Token could not be found in the request"))
    assert isinstance(error, errors.OidcError) and error.http_status == 401
    scheme, params = _challenge(error.headers()["WWW-Authenticate"])
    assert scheme == "Bearer" and "error" not in params and "realm" in params


# -- RFC 6749 section 4.1.2.1: errors at the redirect URI ----------------------------------------

def test_an_authorization_error_goes_in_the_redirect_uri_query_with_state_and_iss() -> None:
    url = errors.AccessDenied("the patron declined").redirect_url(
        "https://rp.example/cb?tenant=7", state="a b&c", issuer=ISSUER)
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    assert (parts.scheme, parts.netloc, parts.path, parts.fragment) == ("https", "rp.example", "/cb", "")
    # 3.1.2: "MUST retain that (query) component when adding additional query parameters".
    assert query["tenant"] == ["7"]
    # 4.1.2.1: error, error_description, and state "if a state parameter was present ... the exact value".
    assert query["error"] == ["access_denied"] and query["error_description"] == ["the patron declined"]
    assert query["state"] == ["a b&c"]
    # RFC 9207 2: iss, the authorization server's issuer identifier.
    assert query["iss"] == [ISSUER]


def test_no_state_in_the_error_when_the_request_had_none() -> None:
    url = errors.LoginRequired("the patron must log in").redirect_url("https://rp.example/cb", state=None,
                                                                     issuer=ISSUER)
    query = parse_qs(urlsplit(url).query)
    assert query["error"] == ["login_required"] and "state" not in query


def _request(**fields: str) -> AuthorizationRequest:
    return AuthorizationRequest(client_id="rp", **fields)


@pytest.mark.parametrize("raised", [
    UnknownClientId("unknown client", _request(redirect_uri="https://rp.example/cb", response_type="code")),
    InvalidRedirectURI("not registered", _request(redirect_uri="https://evil.example/", response_type="code"))])
def test_an_unknown_client_or_redirect_uri_is_never_redirected_to(raised: Exception) -> None:
    # 4.1.2.1: "If the request fails due to a missing, invalid, or mismatching redirection URI, or
    # if the client identifier is missing or invalid, the authorization server SHOULD inform the
    # resource owner of the error and MUST NOT automatically redirect the user-agent".
    error = from_pyop(raised)
    assert isinstance(error, Unanswerable) and error.reason is Reason.UNKNOWN_CLIENT


def test_an_invalid_request_to_a_known_redirect_uri_keeps_its_code() -> None:
    raised = InvalidAuthenticationRequest("only response_type=code is supported",
                                          _request(redirect_uri="https://rp.example/cb", response_type="token"),
                                          oauth_error="unsupported_response_type")
    error = from_pyop(raised)
    assert isinstance(error, errors.OidcError) and error.code == "unsupported_response_type"
