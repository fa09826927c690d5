"""Token revocation (RFC 7009) and introspection (RFC 7662), and the id_token a refresh returns
(OpenID Connect Core section 12.2), driven by an independent client (authlib) over HTTP."""

from __future__ import annotations

import time
import warnings
from types import SimpleNamespace

import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session

from idp.oidc import token_admin
from tests.flows.conftest import LiveIdp
from tests.flows.test_client_credentials import add_system, fetch, secret_session
from tests.flows.test_client_credentials import introspect as library_introspect
from tests.flows.test_oidc_flow import Client, card, full_login, register, userinfo_status  # noqa: F401 (fixture)
from tests.flows.test_token_lifecycle import new_browser, refresh, tokens_in

with warnings.catch_warnings():
    # authlib.jose announces its move to joserfc at import; it is only the test's verifier.
    warnings.simplefilter("ignore", DeprecationWarning)
    from authlib.jose import JsonWebKey, jwt


def introspect(live: LiveIdp, client: Client, token: str, **fields: str) -> requests.Response:
    return requests.post(f"{live.url}/introspect", data={"token": token, **fields},
                         auth=(client.client_id, client.secret or ""), timeout=5)


def revoke(live: LiveIdp, client: Client, token: str, **fields: str) -> requests.Response:
    if client.secret is None:  # a public client names itself (RFC 7009 section 2.1)
        return requests.post(f"{live.url}/revoke", data={"token": token, "client_id": client.client_id, **fields},
                             timeout=5)
    return requests.post(f"{live.url}/revoke", data={"token": token, **fields},
                         auth=(client.client_id, client.secret), timeout=5)


def session_of(client: Client) -> OAuth2Session:
    return OAuth2Session(client.client_id, client.secret, token_endpoint_auth_method="client_secret_basic")


# -- discovery ----------------------------------------------------------------------------------

def test_discovery_names_both_endpoints_and_how_clients_authenticate_there(live: LiveIdp) -> None:
    config = requests.get(f"{live.url}/.well-known/openid-configuration", timeout=5).json()
    assert config["revocation_endpoint"] == f"{live.url}/revoke"
    assert config["introspection_endpoint"] == f"{live.url}/introspect"
    assert "none" in config["revocation_endpoint_auth_methods_supported"]  # public clients revoke too
    assert "none" not in config["introspection_endpoint_auth_methods_supported"]
    assert "client_secret_basic" in config["introspection_endpoint_auth_methods_supported"]


# -- introspection --------------------------------------------------------------------------------

@pytest.mark.backends
def test_a_client_introspects_its_own_live_tokens(live: LiveIdp, card: str) -> None:
    client = register(live)
    tokens = tokens_in(new_browser(), live, client, card)
    answer = session_of(client).introspect_token(f"{live.url}/introspect", token=tokens["access_token"])
    assert answer.status_code == 200 and answer.headers["Cache-Control"] == "no-store"
    body = answer.json()
    assert body["active"] is True and body["client_id"] == client.client_id
    assert body["token_type"] == "Bearer" and "patron" in body["scope"].split()
    assert body["iat"] <= time.time() < body["exp"]
    _, token, _ = full_login(live, client, card)  # the sub in its id_token is the one this client knows
    id_sub = jwt.decode(token["id_token"], JsonWebKey.import_key_set(
        requests.get(f"{live.url}/jwks", timeout=5).json()))["sub"]
    assert introspect(live, client, token["access_token"]).json()["sub"] == id_sub
    # Nothing personal beyond RFC 7662's fields.
    assert set(body) <= {"active", "scope", "client_id", "sub", "exp", "iat", "token_type"}
    refreshing = introspect(live, client, tokens["refresh_token"], token_type_hint="refresh_token").json()
    assert refreshing["active"] is True and refreshing["client_id"] == client.client_id


@pytest.mark.backends
def test_anything_but_the_clients_own_live_token_is_inactive_and_nothing_more(live: LiveIdp, card: str) -> None:
    client, other = register(live), register(live)
    tokens = tokens_in(new_browser(), live, client, card)
    for token in ("no-such-token", "x" * 5000, tokens["access_token"] + "x", "\u00e6\x00"):  # unknown, malformed
        answer = introspect(live, client, token)
        assert answer.status_code == 200 and answer.json() == {"active": False}, token[:20]
    for token in (tokens["access_token"], tokens["refresh_token"]):  # another client's
        assert introspect(live, other, token).json() == {"active": False}
    assert introspect(live, client, tokens["access_token"]).json()["active"] is True  # ... still live


def test_an_expired_access_token_is_inactive(live: LiveIdp, card: str, monkeypatch: pytest.MonkeyPatch) -> None:
    client = register(live)
    tokens = tokens_in(new_browser(), live, client, card)
    later = time.time() + 3601  # an access token lives an hour (docs/oidc.md)
    monkeypatch.setattr(token_admin, "time", SimpleNamespace(time=lambda: later))
    assert introspect(live, client, tokens["access_token"]).json() == {"active": False}
    assert introspect(live, client, tokens["refresh_token"]).json()["active"] is True  # refresh lives on


def test_introspection_refuses_public_clients_and_bad_credentials(live: LiveIdp) -> None:
    public, client = register(live, public=True), register(live)
    refused = requests.post(f"{live.url}/introspect", data={"token": "t", "client_id": public.client_id}, timeout=5)
    assert refused.status_code == 401 and refused.json()["error"] == "invalid_client"
    assert refused.headers["WWW-Authenticate"].startswith("Basic")
    wrong = requests.post(f"{live.url}/introspect", data={"token": "t"}, auth=(client.client_id, "wrong"), timeout=5)
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
    nobody = requests.post(f"{live.url}/introspect", data={"token": "t"}, timeout=5)
    assert nobody.status_code == 401 and "WWW-Authenticate" in nobody.headers


def test_malformed_requests_get_rfc6749_errors(live: LiveIdp) -> None:
    client = register(live)
    for path in ("/introspect", "/revoke"):
        missing = requests.post(f"{live.url}{path}", data={}, auth=(client.client_id, client.secret), timeout=5)
        assert missing.status_code == 400 and missing.json()["error"] == "invalid_request"
        as_json = requests.post(f"{live.url}{path}", json={"token": "t"}, auth=(client.client_id, client.secret),
                                timeout=5)
        assert as_json.status_code == 400 and as_json.json()["error"] == "invalid_request"
        hint = requests.post(f"{live.url}{path}", data={"token": "t", "token_type_hint": "id_token"},
                             auth=(client.client_id, client.secret), timeout=5)
        assert hint.status_code == 400 and hint.json()["error"] == "unsupported_token_type"


# -- revocation -----------------------------------------------------------------------------------

@pytest.mark.backends
@pytest.mark.parametrize("public", [True, False], ids=["public-client", "confidential-client"])
def test_a_revoked_refresh_token_ends_its_grant(live: LiveIdp, card: str, public: bool) -> None:
    client, watcher = register(live, public=public), register(live)
    tokens = tokens_in(new_browser(), live, client, card)
    other = tokens_in(new_browser(), live, client, card)  # another login's grant stays
    if public:
        answer = revoke(live, client, tokens["refresh_token"], token_type_hint="refresh_token")
    else:
        answer = session_of(client).revoke_token(f"{live.url}/revoke", token=tokens["refresh_token"],
                                                 token_type_hint="refresh_token")
    assert answer.status_code == 200
    refused = refresh(live, client, tokens["refresh_token"])
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
    assert userinfo_status(live, tokens["access_token"]) == 401
    if not public:
        assert introspect(live, client, tokens["access_token"]).json() == {"active": False}
    assert introspect(live, watcher, other["access_token"]).json() == {"active": False}
    assert userinfo_status(live, other["access_token"]) == 200


@pytest.mark.backends
def test_a_revoked_access_token_ends_but_its_refresh_token_still_works(live: LiveIdp, card: str) -> None:
    client = register(live)
    tokens = tokens_in(new_browser(), live, client, card)
    # A wrong hint only orders the search (RFC 7009 section 2.1): the access token is found anyway.
    assert revoke(live, client, tokens["access_token"], token_type_hint="refresh_token").status_code == 200
    assert userinfo_status(live, tokens["access_token"]) == 401
    assert introspect(live, client, tokens["access_token"]).json() == {"active": False}
    assert refresh(live, client, tokens["refresh_token"]).status_code == 200


@pytest.mark.backends
def test_an_unknown_or_another_clients_token_is_revoked_with_nothing_done(live: LiveIdp, card: str) -> None:
    client, other = register(live), register(live)
    tokens = tokens_in(new_browser(), live, client, card)
    for token in ("no-such-token", tokens["refresh_token"], tokens["access_token"]):
        answer = revoke(live, other, token)
        assert answer.status_code == 200 and answer.content == b""
    assert userinfo_status(live, tokens["access_token"]) == 200
    assert refresh(live, client, tokens["refresh_token"]).status_code == 200


def test_revocation_refuses_bad_credentials(live: LiveIdp) -> None:
    client = register(live)
    wrong = requests.post(f"{live.url}/revoke", data={"token": "t"}, auth=(client.client_id, "wrong"), timeout=5)
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
    assert wrong.headers["WWW-Authenticate"].startswith("Basic")
    unnamed = requests.post(f"{live.url}/revoke", data={"token": "t", "client_id": client.client_id}, timeout=5)
    assert unnamed.status_code == 401  # a confidential client must prove itself


# -- refresh and id_token -------------------------------------------------------------------------

@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_a_refresh_returns_an_id_token_of_the_same_login_without_nonce(live: LiveIdp, card: str, alg: str) -> None:
    client = register(live, id_token_alg=alg)
    rp, token, _ = full_login(live, client, card)
    keys = JsonWebKey.import_key_set(requests.get(f"{live.url}/jwks", timeout=5).json())
    first = jwt.decode(token["id_token"], keys)
    time.sleep(1.1)  # so that a new iat, and any auth_time made up anew, would differ
    renewed = rp.refresh_token(f"{live.url}/token", refresh_token=token["refresh_token"])
    again = rp.refresh_token(f"{live.url}/token", refresh_token=renewed["refresh_token"])  # after rotations too
    for answer in (renewed, again):
        claims = jwt.decode(answer["id_token"], keys, claims_options={
            "iss": {"essential": True, "value": live.url}, "aud": {"essential": True, "value": client.client_id}})
        claims.validate()
        assert claims.header["alg"] == alg
        assert (claims["sub"], claims["acr"], claims["auth_time"]) == (first["sub"], first["acr"], first["auth_time"])
        assert "nonce" not in claims and claims["iat"] > first["iat"]


# -- library systems ------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/introspect", "/revoke"])
def test_library_systems_are_refused_even_for_their_own_tokens(live: LiveIdp, path: str) -> None:
    """docs/oidc.md: the register API checks a library system's token itself; these are relying parties' endpoints."""
    system = add_system(live, secret=True)
    token = fetch(live, secret_session(system))["access_token"]
    answer = requests.post(f"{live.url}{path}", data={"token": token}, auth=(system.client_id, system.secret),
                           timeout=5)
    assert answer.status_code == 400 and answer.json()["error"] == "unauthorized_client"
    assert library_introspect(live, token) is not None  # and the token was left alone
