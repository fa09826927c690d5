"""The OIDC provider over real HTTP, driven by an independent relying party (authlib) and a
scripted browser (requests), as an e-book platform and its reader would use it."""

from __future__ import annotations

import json
import re
import time
import warnings
from base64 import urlsafe_b64decode
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session

from idp import relying_parties
from idp.oidc.provider import RegisteredClients
from tests.flows.conftest import LiveIdp
from tests.nin import person
from tests.unit.factories import ADULT_BORN, library, patron

with warnings.catch_warnings():
    # authlib.jose announces its move to joserfc at import; it is only the test's verifier.
    warnings.simplefilter("ignore", DeprecationWarning)
    from authlib.jose import JsonWebKey, jwt

PASSWORD = "correct horse battery"
CALLBACK = "http://127.0.0.1:8765/callback"


@dataclass
class Client:
    client_id: str
    secret: str | None


@dataclass
class Browser:
    """A patron's browser: keeps cookies, stops at the relying party's callback."""

    http: requests.Session

    def follow(self, url: str, **kwargs: object) -> requests.Response:
        response = self.http.get(url, allow_redirects=False, **kwargs)
        while response.is_redirect and not response.headers["Location"].startswith(CALLBACK):
            response = self.http.get(requests.compat.urljoin(response.url, response.headers["Location"]),
                                     allow_redirects=False)
        return response

    def post(self, url: str, data: dict[str, str]) -> requests.Response:
        response = self.http.post(url, data=data, allow_redirects=False)
        if response.is_redirect and not response.headers["Location"].startswith(CALLBACK):
            return self.follow(requests.compat.urljoin(url, response.headers["Location"]))
        return response


def csrf(html: str) -> str:
    match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html)
    assert match, "no CSRF token on the page"
    return match.group(1)


@pytest.fixture
def card(live: LiveIdp) -> str:
    with live.services.registry("test") as reg:
        library(reg)
        _, c = patron(reg, password=PASSWORD)
        return c.number


def register(live: LiveIdp, *, public: bool = False, dpa: date | None = date(2026, 1, 1), min_acr: str = "password",
             claims: list[str] | None = None, public_sub: bool = False, id_token_alg: str = "RS256") -> Client:
    with live.services.registry("test") as reg:
        rp, secret = relying_parties.add_oidc(reg, "Demo e-books", [CALLBACK], public=public, dpa_signed=dpa,
                                              min_acr=min_acr, claims=claims or ["valid_patron"],
                                              public_sub=public_sub, id_token_alg=id_token_alg)
        return Client(rp.client_id, secret)


def rp_session(live: LiveIdp, client: Client, scope: str = "openid patron", **kwargs: object) -> OAuth2Session:
    return OAuth2Session(client.client_id, client.secret, scope=scope, redirect_uri=CALLBACK,
                         token_endpoint_auth_method="client_secret_basic" if client.secret else "none",
                         code_challenge_method="S256", **kwargs)


def start(live: LiveIdp, rp: OAuth2Session, **params: str) -> tuple[str, str, str]:
    verifier = generate_token(48)
    url, state = rp.create_authorization_url(f"{live.url}/authorize", code_verifier=verifier,
                                             nonce=params.pop("nonce", "n-0S6"), **params)
    assert "code_challenge=" in url
    return url, state, verifier


def login_and_consent(browser: Browser, url: str, card: str, password: str = PASSWORD) -> requests.Response:
    page = browser.follow(url)
    assert page.status_code == 200 and 'name="username"' in page.text
    after_login = browser.post(page.url, {"username": card, "password": password, "csrf_token": csrf(page.text),
                                          "next": re.search(r'name="next"[^>]*value="([^"]*)"', page.text).group(1)})
    if after_login.status_code == 200 and 'name="decision"' in after_login.text:
        return browser.post(f"{url.split('/authorize')[0]}/authorize/consent",
                            {"decision": "allow", "csrf_token": csrf(after_login.text)})
    return after_login


def callback_params(response: requests.Response) -> dict[str, str]:
    assert response.is_redirect, (response.status_code, response.text[:500])
    location = response.headers["Location"]
    assert location.startswith(CALLBACK)
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def verify_id_token(live: LiveIdp, token: str, client: Client, nonce: str) -> dict[str, object]:
    keys = JsonWebKey.import_key_set(requests.get(f"{live.url}/jwks", timeout=5).json())
    claims = jwt.decode(token, keys, claims_options={"iss": {"essential": True, "value": live.url},
                                                     "aud": {"essential": True, "value": client.client_id},
                                                     "nonce": {"essential": True, "value": nonce}})
    claims.validate()
    return dict(claims)


def full_login(live: LiveIdp, client: Client, card: str, **params: str) -> tuple[OAuth2Session, dict, str]:
    rp = rp_session(live, client)
    url, state, verifier = start(live, rp, **params)
    params_back = callback_params(login_and_consent(Browser(requests.Session()), url, card))
    assert params_back["state"] == state and params_back["iss"] == live.url
    token = rp.fetch_token(f"{live.url}/token", code=params_back["code"], code_verifier=verifier)
    return rp, token, params_back["code"]


def new_code(live: LiveIdp, client: Client, card: str) -> tuple[OAuth2Session, str, str]:
    """A patron logs in and consents: the platform's session, the code it got and its PKCE verifier."""
    rp = rp_session(live, client)
    url, _, verifier = start(live, rp)
    return rp, callback_params(login_and_consent(Browser(requests.Session()), url, card))["code"], verifier


def token_request(live: LiveIdp, client: Client, **fields: str) -> requests.Response:
    """A token request the relying party library would not send (a replay, a stolen token), made by hand."""
    return requests.post(f"{live.url}/token", data=fields, auth=(client.client_id, client.secret), timeout=5)


def redeem(live: LiveIdp, client: Client, code: str, verifier: str) -> requests.Response:
    return token_request(live, client, grant_type="authorization_code", code=code, redirect_uri=CALLBACK,
                         code_verifier=verifier)


def userinfo_status(live: LiveIdp, access_token: str) -> int:
    return requests.get(f"{live.url}/userinfo", headers={"Authorization": f"Bearer {access_token}"},
                        timeout=5).status_code


# -- the happy paths ------------------------------------------------------------------------

def test_discovery_and_jwks_describe_a_code_flow_provider(live: LiveIdp) -> None:
    config = requests.get(f"{live.url}/.well-known/openid-configuration", timeout=5).json()
    assert config["issuer"] == live.url
    assert config["response_types_supported"] == ["code"]
    assert config["code_challenge_methods_supported"] == ["S256"]
    assert config["request_uri_parameter_supported"] is False
    assert config["authorization_response_iss_parameter_supported"] is True
    assert config["end_session_endpoint"] == f"{live.url}/logout/oidc"
    # Back-Channel Logout 1.0 section 2.1, Front-Channel Logout 1.0 section 3: both, with sid.
    for supported in ("backchannel_logout_supported", "backchannel_logout_session_supported",
                      "frontchannel_logout_supported", "frontchannel_logout_session_supported"):
        assert config[supported] is True, supported
    assert "password" in config["acr_values_supported"]
    keys = requests.get(config["jwks_uri"], timeout=5).json()["keys"]
    assert {k["alg"] for k in keys} == {"RS256", "ES256"} and len(keys) == 4
    assert not any("d" in k for k in keys)


@pytest.mark.backends
def test_a_patron_logs_in_and_the_platform_gets_verified_tokens(live: LiveIdp, card: str) -> None:
    client = register(live)
    rp, token, _ = full_login(live, client, card)
    claims = verify_id_token(live, token["id_token"], client, "n-0S6")
    assert claims["acr"] == "password" and claims["amr"] == ["pwd"]
    assert claims["valid_patron"] is True
    assert abs(int(claims["auth_time"]) - time.time()) < 60
    info = rp.get(f"{live.url}/userinfo").json()
    assert info == {"sub": claims["sub"], "valid_patron": True}
    # Neither the card, the name, the birth date nor the national id: timestamps may contain "1985" by chance.
    flat = str(claims)
    assert card not in flat and "Kari" not in flat and "1985-03-12" not in flat and person(ADULT_BORN) not in flat


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_id_tokens_are_signed_as_the_platform_was_registered(live: LiveIdp, card: str, alg: str) -> None:
    client = register(live, id_token_alg=alg)
    _, token, _ = full_login(live, client, card)
    header = json.loads(urlsafe_b64decode(token["id_token"].split(".")[0] + "=="))
    assert header["alg"] == alg
    kid = header["kid"]
    published = {key["kid"]: key for key in requests.get(f"{live.url}/jwks", timeout=5).json()["keys"]}
    assert published[kid]["alg"] == alg
    assert verify_id_token(live, token["id_token"], client, "n-0S6")["valid_patron"] is True


def test_a_public_client_must_use_pkce_and_gets_in_with_it(live: LiveIdp, card: str) -> None:
    client = register(live, public=True)
    rp = OAuth2Session(client.client_id, None, scope="openid patron", redirect_uri=CALLBACK)
    no_pkce, state = rp.create_authorization_url(f"{live.url}/authorize", nonce="n")
    refused = callback_params(Browser(requests.Session()).follow(no_pkce))
    assert refused["error"] == "invalid_request" and refused["state"] == state and refused["iss"] == live.url
    _, token, _ = full_login(live, client, card)
    assert verify_id_token(live, token["id_token"], client, "n-0S6")["valid_patron"] is True


def test_pairwise_subjects_differ_between_platforms_and_are_stable(live: LiveIdp, card: str) -> None:
    first, second = register(live), register(live)
    sub_a1 = verify_id_token(live, full_login(live, first, card)[1]["id_token"], first, "n-0S6")["sub"]
    sub_a2 = verify_id_token(live, full_login(live, first, card)[1]["id_token"], first, "n-0S6")["sub"]
    sub_b = verify_id_token(live, full_login(live, second, card)[1]["id_token"], second, "n-0S6")["sub"]
    assert sub_a1 == sub_a2 and sub_a1 != sub_b


def test_refresh_tokens_rotate(live: LiveIdp, card: str) -> None:
    client = register(live)
    rp, token, _ = full_login(live, client, card)
    first_refresh = token["refresh_token"]
    renewed = rp.refresh_token(f"{live.url}/token", refresh_token=first_refresh)
    assert renewed["refresh_token"] != first_refresh and renewed["access_token"] != token["access_token"]
    replay = token_request(live, client, grant_type="refresh_token", refresh_token=first_refresh)
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    assert userinfo_status(live, token["access_token"]) == 401


# -- what must fail, and how -------------------------------------------------------------------

def test_a_wrong_pkce_verifier_is_refused(live: LiveIdp, card: str) -> None:
    client = register(live)
    _, code, _ = new_code(live, client, card)
    response = redeem(live, client, code, generate_token(48))
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"  # RFC 7636 section 4.6


@pytest.mark.backends
def test_a_reused_code_is_refused_and_revokes_what_it_issued(live: LiveIdp, card: str) -> None:
    client = register(live)
    rp, code, verifier = new_code(live, client, card)
    token = rp.fetch_token(f"{live.url}/token", code=code, code_verifier=verifier)
    again = redeem(live, client, code, verifier)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    assert userinfo_status(live, token["access_token"]) == 401
    refreshed = token_request(live, client, grant_type="refresh_token", refresh_token=token["refresh_token"])
    assert refreshed.status_code == 400


def test_a_redirect_uri_that_is_not_registered_gets_a_page_not_a_redirect(live: LiveIdp) -> None:
    client = register(live)
    rp = OAuth2Session(client.client_id, client.secret, scope="openid", redirect_uri=CALLBACK + "/evil")
    url, _ = rp.create_authorization_url(f"{live.url}/authorize", nonce="n")
    response = requests.get(url, allow_redirects=False, headers={"Accept-Language": "en"}, timeout=5)
    assert response.status_code == 400 and "not registered" in response.text
    assert "Location" not in response.headers


def test_an_unknown_client_gets_a_page(live: LiveIdp) -> None:
    response = requests.get(f"{live.url}/authorize", params={"client_id": "nobody", "response_type": "code",
                                                             "scope": "openid", "redirect_uri": CALLBACK},
                            allow_redirects=False, headers={"Accept-Language": "en"}, timeout=5)
    assert response.status_code == 400 and "not registered" in response.text


def test_a_platform_without_a_dpa_logs_nobody_in(live: LiveIdp, card: str) -> None:
    client = register(live, dpa=None)
    url, state, _ = start(live, rp_session(live, client))
    page = requests.get(url, allow_redirects=False, headers={"Accept-Language": "en"}, timeout=5)
    assert page.status_code == 403 and "not yet approved" in page.text
    back = re.search(r'href="([^"]+)"', page.text.split("Nothing about you")[1]).group(1).replace("&amp;", "&")
    params = {k: v[0] for k, v in parse_qs(urlsplit(back).query).items()}
    assert back.startswith(CALLBACK) and params["error"] == "access_denied" and params["state"] == state


def test_a_disabled_platform_cannot_exchange_codes(live: LiveIdp, card: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The token endpoint keeps client records for RegisteredClients.TTL seconds (README): a
    disabled partner is refused once that window has passed, and the codes it holds are useless."""
    monkeypatch.setattr(RegisteredClients, "TTL", 0.5)
    client = register(live)
    _, code, verifier = new_code(live, client, card)
    with live.services.registry("test") as reg:
        relying_parties.disable(reg, client.client_id)
    time.sleep(RegisteredClients.TTL + 0.1)
    response = redeem(live, client, code, verifier)
    assert response.status_code == 401 and response.json()["error"] == "invalid_client"
    assert response.headers["WWW-Authenticate"].startswith("Basic")


def test_wrong_client_secret_and_a_colon_in_basic_auth(live: LiveIdp) -> None:
    client = register(live)
    for auth in ((client.client_id, "wrong"), (client.client_id, "a:b:c"), ("nobody", "x")):
        response = requests.post(f"{live.url}/token", data={"grant_type": "authorization_code", "code": "x",
                                                              "redirect_uri": CALLBACK}, auth=auth, timeout=5)
        assert response.status_code == 401 and response.json()["error"] == "invalid_client"


def test_step_up_beyond_mfa_fails_with_the_protocol_error(live: LiveIdp, card: str) -> None:
    # mfa is within reach (password + TOTP, tests/flows/test_stepup.py); without ID-porten nothing above it is.
    client = register(live, min_acr="idporten-loa-substantial")
    url, state, _ = start(live, rp_session(live, client))
    params = callback_params(requests.get(url, allow_redirects=False, timeout=5))
    assert params["error"] == "unmet_authentication_requirements" and params["state"] == state
    asked = register(live)
    url, _, _ = start(live, rp_session(live, asked), acr_values="idporten-loa-high")
    assert callback_params(requests.get(url, allow_redirects=False, timeout=5))["error"] == \
        "unmet_authentication_requirements"


def test_prompt_none_without_a_session_says_login_required(live: LiveIdp) -> None:
    client = register(live)
    url, _, _ = start(live, rp_session(live, client), prompt="none")
    assert callback_params(requests.get(url, allow_redirects=False, timeout=5))["error"] == "login_required"


def test_single_sign_on_and_declined_consent(live: LiveIdp, card: str) -> None:
    first, second = register(live), register(live)
    browser = Browser(requests.Session())
    url, _, _ = start(live, rp_session(live, first))
    assert "code" in callback_params(login_and_consent(browser, url, card))
    url, state, _ = start(live, rp_session(live, second))
    consent_page = browser.follow(url)  # no second password: straight to consent
    assert consent_page.status_code == 200 and 'name="decision"' in consent_page.text
    declined = browser.post(f"{live.url}/authorize/consent",
                            {"decision": "deny", "csrf_token": csrf(consent_page.text)})
    params = callback_params(declined)
    assert params["error"] == "access_denied" and params["state"] == state


def test_token_endpoint_answers_bad_requests_in_rfc6749_json(live: LiveIdp) -> None:
    client = register(live)
    response = requests.post(f"{live.url}/token", json={"grant_type": "authorization_code"}, timeout=5)
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"
    response = requests.post(f"{live.url}/token", data={"grant_type": "password", "username": "x"},
                             auth=(client.client_id, client.secret), timeout=5)
    assert response.status_code == 400 and response.json()["error"] == "unsupported_grant_type"
    assert requests.get(f"{live.url}/token/nope", timeout=5).headers["Content-Type"].startswith("application/json")


def test_consent_is_remembered_and_revocable(live: LiveIdp, card: str) -> None:
    client = register(live)
    browser = Browser(requests.Session())
    url, _, _ = start(live, rp_session(live, client))
    callback_params(login_and_consent(browser, url, card))
    url, _, _ = start(live, rp_session(live, client))
    assert "code" in callback_params(browser.follow(url))  # remembered: no consent page this time
    page = browser.http.get(f"{live.url}/account/services", headers={"Accept-Language": "en"})
    assert "Demo e-books" in page.text and "that you hold a valid library card" in page.text
    browser.http.post(f"{live.url}/account/services/{client.client_id}/revoke", data={"csrf_token": csrf(page.text)})
    after = browser.http.get(f"{live.url}/account/services", headers={"Accept-Language": "en"}).text
    consents, history = after.split('<h2>Who learned what</h2>')
    assert "Demo e-books" not in consents
    # What the platform already learned stays on record: two logins, the fact by name, no value.
    assert history.count("<td>Demo e-books</td>") == 2 and "that you hold a valid library card" in history
    url, _, _ = start(live, rp_session(live, client))
    again = browser.follow(url)
    assert again.status_code == 200 and 'name="decision"' in again.text


def test_brute_force_on_the_way_to_a_platform_locks_the_card(live: LiveIdp, card: str) -> None:
    client = register(live)
    url, _, _ = start(live, rp_session(live, client))
    browser = Browser(requests.Session())
    page = browser.follow(url)
    for attempt in range(10):
        response = browser.http.post(page.url, data={"username": card, "password": f"guess number {attempt}",
                                                     "csrf_token": csrf(page.text)}, allow_redirects=False)
        assert response.status_code == 401
    locked = browser.http.post(page.url, data={"username": card, "password": PASSWORD,
                                               "csrf_token": csrf(page.text)}, allow_redirects=False,
                               headers={"Accept": "text/html"})
    assert locked.status_code == 429 and int(locked.headers["Retry-After"]) > 0


def test_a_must_change_password_is_changed_before_the_platform_gets_a_code(live: LiveIdp) -> None:
    with live.services.registry("test") as reg:
        library(reg)
        _, c = patron(reg, password="12/04/1992", password_must_change=True)
    client = register(live)
    url, state, _ = start(live, rp_session(live, client))
    browser = Browser(requests.Session())
    page = browser.follow(url)
    change = browser.post(page.url, {"username": c.number, "password": "12/04/1992", "csrf_token": csrf(page.text),
                                     "next": "/authorize/resume"})
    assert change.status_code == 200 and "/password/change" in change.url
    consent = browser.post(change.url, {"current": "12/04/1992", "new": "a fresh passphrase",
                                        "confirm": "a fresh passphrase", "csrf_token": csrf(change.text),
                                        "next": "/authorize/resume"})
    assert 'name="decision"' in consent.text
    done = browser.post(f"{live.url}/authorize/consent", {"decision": "allow", "csrf_token": csrf(consent.text)})
    assert callback_params(done)["state"] == state


def test_client_secret_post_works_too(live: LiveIdp, card: str) -> None:
    client = register(live)
    rp = OAuth2Session(client.client_id, client.secret, scope="openid patron", redirect_uri=CALLBACK,
                       token_endpoint_auth_method="client_secret_post", code_challenge_method="S256")
    url, _, verifier = start(live, rp)
    code = callback_params(login_and_consent(Browser(requests.Session()), url, card))["code"]
    token = rp.fetch_token(f"{live.url}/token", code=code, code_verifier=verifier)
    assert verify_id_token(live, token["id_token"], client, "n-0S6")["valid_patron"] is True


def test_a_malformed_request_never_redirects_to_an_unregistered_address(live: LiveIdp) -> None:
    client = register(live)
    # No scope: the message is checked (and found wanting) before the client and its redirect URI.
    for params in ({"client_id": client.client_id, "redirect_uri": "https://evil.example/cb", "response_type": "code"},
                   {"client_id": "nobody", "redirect_uri": "https://evil.example/cb", "response_type": "code"}):
        response = requests.get(f"{live.url}/authorize", params=params, allow_redirects=False, timeout=5)
        assert response.status_code == 400 and "Location" not in response.headers
    registered = requests.get(f"{live.url}/authorize", params={"client_id": client.client_id, "response_type": "code",
                                                               "redirect_uri": CALLBACK},
                              allow_redirects=False, timeout=5)
    assert callback_params(registered)["error"] == "invalid_request"


def test_forms_may_end_at_the_platform_while_its_login_is_under_way(live: LiveIdp, card: str) -> None:
    client = register(live)
    url, _, _ = start(live, rp_session(live, client))
    browser = Browser(requests.Session())
    page = browser.follow(url)
    assert "form-action 'self' http://127.0.0.1:8765;" in page.headers["Content-Security-Policy"]
    plain = requests.get(f"{live.url}/login", timeout=5)
    assert "form-action 'self';" in plain.headers["Content-Security-Policy"]


def test_a_refresh_token_works_only_for_its_own_client(live: LiveIdp, card: str) -> None:
    owner, other = register(live), register(live)
    _, token, _ = full_login(live, owner, card)
    stolen = token_request(live, other, grant_type="refresh_token", refresh_token=token["refresh_token"])
    assert stolen.status_code == 400 and stolen.json()["error"] == "invalid_grant"
    mine = token_request(live, owner, grant_type="refresh_token", refresh_token=token["refresh_token"])
    assert mine.status_code == 200 and mine.json()["refresh_token"] != token["refresh_token"]


def test_a_refresh_refused_for_its_scope_leaves_the_refresh_token_usable(live: LiveIdp, card: str) -> None:
    client = register(live)
    rp, token, _ = full_login(live, client, card)
    wider = token_request(live, client, grant_type="refresh_token", scope="openid email",
                          refresh_token=token["refresh_token"])
    assert wider.status_code == 400 and wider.json()["error"] == "invalid_scope"
    renewed = rp.refresh_token(f"{live.url}/token", refresh_token=token["refresh_token"])
    assert renewed["refresh_token"] != token["refresh_token"]


class _RoundTrips:
    """Counts the state store's calls: each raw operation is one round trip to Redis."""

    OPERATIONS = ("_raw_get", "_raw_get_linked", "_raw_take", "_raw_put", "_raw_delete", "_raw_incr", "_apply")

    def __init__(self, state: object, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[str] = []
        for name in self.OPERATIONS:
            original = getattr(state, name)
            monkeypatch.setattr(state, name, self._counted(name, original))

    def _counted(self, name: str, original: Callable[..., object]) -> Callable[..., object]:
        def counted(*args: object, **kwargs: object) -> object:
            self.calls.append(name)
            return original(*args, **kwargs)
        return counted


@pytest.mark.backends
def test_a_code_exchange_and_a_refresh_each_make_two_round_trips_to_the_state_store(
        live: LiveIdp, card: str, monkeypatch: pytest.MonkeyPatch) -> None:
    rp, code, verifier = new_code(live, register(live), card)
    trips = _RoundTrips(live.services.state, monkeypatch)
    token = rp.fetch_token(f"{live.url}/token", code=code, code_verifier=verifier)
    assert trips.calls == ["_raw_incr", "_apply"]  # claim the code with its reads, then write
    trips.calls.clear()
    rp.refresh_token(f"{live.url}/token", refresh_token=token["refresh_token"])
    assert trips.calls == ["_raw_get_linked", "_apply"]  # the token with its grant, then rotate


@pytest.mark.backends
def test_a_replayed_code_revokes_the_tokens_its_grant_has_after_refreshes(live: LiveIdp, card: str) -> None:
    client = register(live)
    rp, code, verifier = new_code(live, client, card)
    first = rp.fetch_token(f"{live.url}/token", code=code, code_verifier=verifier)
    second = rp.refresh_token(f"{live.url}/token", refresh_token=first["refresh_token"])
    latest = rp.refresh_token(f"{live.url}/token", refresh_token=second["refresh_token"])
    other = full_login(live, client, card)[1]  # another grant of the same patron and platform
    assert userinfo_status(live, latest["access_token"]) == 200
    replay = redeem(live, client, code, verifier)
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    assert userinfo_status(live, latest["access_token"]) == 401
    refreshed = token_request(live, client, grant_type="refresh_token", refresh_token=latest["refresh_token"])
    assert refreshed.status_code == 400 and refreshed.json()["error"] == "invalid_grant"
    assert userinfo_status(live, other["access_token"]) == 200  # only that grant's tokens
