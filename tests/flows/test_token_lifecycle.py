"""How tokens end: replays (of codes and of spent refresh tokens), codes presented by the wrong
client, logouts and withdrawn consent, seen by independent clients (authlib, requests) over HTTP."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import pytest
import requests
from authlib.common.security import generate_token

from idp.oidc import provider
from idp.state import Batch
from tests.flows.conftest import LiveIdp
from tests.flows.test_stepup import consent as stepup_consent
from tests.flows.test_stepup import english_browser, enrol, kari, next_code, second_factor  # noqa: F401 (fixture)
from tests.flows.test_oidc_flow import (CALLBACK, Browser, Client, callback_params, card, csrf,  # noqa: F401 (fixture)
                                        login_and_consent, register, rp_session, start, userinfo_status)

pytestmark = pytest.mark.backends  # token families, replays and logout races in the state store


def token_request(live: LiveIdp, client: Client, **fields: str) -> requests.Response:
    """A token request made by hand, authenticated as the client would (HTTP Basic, or its id alone if public)."""
    if client.secret is None:
        return requests.post(f"{live.url}/token", data={**fields, "client_id": client.client_id}, timeout=5)
    return requests.post(f"{live.url}/token", data=fields, auth=(client.client_id, client.secret), timeout=5)


def refresh(live: LiveIdp, client: Client, refresh_token: str) -> requests.Response:
    return token_request(live, client, grant_type="refresh_token", refresh_token=refresh_token)


def redeem(live: LiveIdp, client: Client, code: str, verifier: str) -> requests.Response:
    return token_request(live, client, grant_type="authorization_code", code=code, redirect_uri=CALLBACK,
                         code_verifier=verifier)


def code_in(browser: Browser, live: LiveIdp, client: Client, card: str) -> tuple[str, str]:
    """The patron, in ``browser``, logs in (unless already) and consents: the code and its PKCE verifier."""
    url, _, verifier = start(live, rp_session(live, client))
    response = browser.follow(url)
    if 'name="username"' in response.text:
        response = login_and_consent(browser, url, card)
    elif 'name="decision"' in response.text:  # logged in already: a new service asks for consent
        response = browser.post(f"{live.url}/authorize/consent",
                                {"decision": "allow", "csrf_token": csrf(response.text)})
    return callback_params(response)["code"], verifier


def tokens_in(browser: Browser, live: LiveIdp, client: Client, card: str) -> dict[str, str]:
    code, verifier = code_in(browser, live, client, card)
    response = redeem(live, client, code, verifier)
    assert response.status_code == 200, response.text
    return response.json()


def alive(live: LiveIdp, client: Client, tokens: dict[str, str]) -> bool:
    """The access token opens userinfo and the refresh token still refreshes (which rotates it: use once)."""
    return userinfo_status(live, tokens["access_token"]) == 200 and \
        refresh(live, client, tokens["refresh_token"]).status_code == 200


def dead(live: LiveIdp, client: Client, tokens: dict[str, str]) -> bool:
    refused = refresh(live, client, tokens["refresh_token"])
    return userinfo_status(live, tokens["access_token"]) == 401 and refused.status_code == 400 and \
        refused.json()["error"] == "invalid_grant"


def new_browser() -> Browser:
    return Browser(requests.Session())


# -- replays --------------------------------------------------------------------------------------

@pytest.mark.parametrize("public", [True, False], ids=["public-pkce-client", "confidential-client"])
def test_a_replayed_refresh_token_revokes_its_whole_family(live: LiveIdp, card: str, public: bool) -> None:
    client = register(live, public=public)
    first = tokens_in(new_browser(), live, client, card)
    second = refresh(live, client, first["refresh_token"]).json()
    newest = refresh(live, client, second["refresh_token"]).json()
    other = tokens_in(new_browser(), live, client, card)  # another login of the same patron at the same service
    assert userinfo_status(live, newest["access_token"]) == 200

    replay = refresh(live, client, first["refresh_token"])  # spent two rotations ago
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    assert dead(live, client, newest)  # the thief's (or the client's) newest tokens end too
    assert alive(live, client, other)


def test_of_two_refreshes_with_one_token_at_once_the_loser_revokes_the_family(
        live: LiveIdp, card: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing tells a client's double submit from a thief racing it (RFC 9700 section 4.14.2): one
    refresh wins, the other finds the token spent and ends the family, the winner's tokens too."""
    client = register(live)
    tokens = tokens_in(new_browser(), live, client, card)
    both_ready = threading.Barrier(2, timeout=10)
    original = Batch.commit

    def commit_together(self: Batch) -> None:
        if self.consumes:  # the two rotations, not the revocation that follows
            both_ready.wait()
        original(self)

    monkeypatch.setattr(Batch, "commit", commit_together)
    answers: list[requests.Response] = []
    threads = [threading.Thread(target=lambda: answers.append(refresh(live, client, tokens["refresh_token"])))
               for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    monkeypatch.setattr(Batch, "commit", original)
    assert sorted(a.status_code for a in answers) == [200, 400]
    won = next(a.json() for a in answers if a.status_code == 200)
    assert next(a.json() for a in answers if a.status_code == 400)["error"] == "invalid_grant"
    assert dead(live, client, won)


def test_a_family_ends_thirty_days_after_its_login_however_often_it_was_refreshed(
        live: LiveIdp, card: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """So that a login's tokens never outlive what indexes them for a logout or a password change."""
    days = 24 * 3600  # README: "a grant ends 30 days after its login however often it is refreshed"
    client = register(live)
    tokens = refresh(live, client, tokens_in(new_browser(), live, client, card)["refresh_token"]).json()
    now = {"at": time.time() + 29 * days}
    # The provider's clock only: pyop's own would find the refresh token itself expired.
    monkeypatch.setattr(provider, "time", SimpleNamespace(monotonic=time.monotonic, time=lambda: now["at"]))
    still = refresh(live, client, tokens["refresh_token"])
    assert still.status_code == 200, still.text
    now["at"] = time.time() + 30 * days + 60
    refused = refresh(live, client, still.json()["refresh_token"])
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"


def test_a_code_presented_by_another_client_is_refused_and_not_spent(live: LiveIdp, card: str) -> None:
    rightful, other = register(live), register(live)
    code, verifier = code_in(new_browser(), live, rightful, card)
    stolen = redeem(live, other, code, verifier)
    assert stolen.status_code == 400 and stolen.json()["error"] == "invalid_grant"
    mine = redeem(live, rightful, code, verifier)
    assert mine.status_code == 200
    again = redeem(live, other, code, verifier)  # the spent code, by the other client: no replay of the rightful one's
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    assert alive(live, rightful, mine.json())


def test_a_wrong_pkce_verifier_answers_invalid_grant(live: LiveIdp, card: str) -> None:
    for client in (register(live, public=True), register(live)):
        code, _ = code_in(new_browser(), live, client, card)
        response = redeem(live, client, code, generate_token(48))
        assert response.status_code == 400 and response.json()["error"] == "invalid_grant"


# -- logout ends what the login issued --------------------------------------------------------------

def log_out(browser: Browser, live: LiveIdp) -> None:
    landing = browser.http.get(f"{live.url}/", timeout=5)
    assert browser.http.post(f"{live.url}/logout", data={"csrf_token": csrf(landing.text)}, timeout=5).ok


def test_logging_out_ends_the_tokens_issued_in_that_login_only(live: LiveIdp, card: str) -> None:
    first, second = register(live), register(live)
    laptop, phone = new_browser(), new_browser()
    at_first, at_second = tokens_in(laptop, live, first, card), tokens_in(laptop, live, second, card)
    on_phone = tokens_in(phone, live, first, card)
    log_out(laptop, live)
    assert dead(live, first, at_first) and dead(live, second, at_second)
    assert alive(live, first, on_phone)  # the same patron's other login goes on


def test_a_code_issued_before_the_logout_cannot_be_exchanged_after_it(live: LiveIdp, card: str) -> None:
    client = register(live)
    browser = new_browser()
    code, verifier = code_in(browser, live, client, card)
    log_out(browser, live)
    response = redeem(live, client, code, verifier)
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"


def test_a_rotated_family_still_ends_with_its_login(live: LiveIdp, card: str) -> None:
    client = register(live)
    browser = new_browser()
    tokens = tokens_in(browser, live, client, card)
    rotated = refresh(live, client, tokens["refresh_token"]).json()
    log_out(browser, live)
    assert dead(live, client, rotated)


def test_a_step_up_keeps_the_login_so_its_logout_ends_the_tokens_from_before_and_after_it(
        live: LiveIdp, kari: tuple[str, int]) -> None:
    """A step-up gives the session a new id (idp.web.stepup), but it is the same login."""
    card, patron_id = kari
    app = enrol(live, patron_id)
    browser = english_browser()
    plain, strict = register(live), register(live, min_acr="mfa")
    before = tokens_in(browser, live, plain, card)
    url, _, verifier = start(live, rp_session(live, strict))
    done = stepup_consent(browser, live, second_factor(browser, browser.follow(url), next_code(app)))
    after = redeem(live, strict, callback_params(done)["code"], verifier).json()
    log_out(browser, live)
    assert dead(live, plain, before) and dead(live, strict, after)


def test_logging_in_again_in_the_same_browser_keeps_one_login_for_the_logout(live: LiveIdp, card: str) -> None:
    """A service asking for a fresh login (prompt=login) replaces the session, not the browser's login."""
    first, second = register(live), register(live)
    browser = new_browser()
    before = tokens_in(browser, live, first, card)
    time.sleep(1.1)  # a login in an earlier second than the request: prompt=login must ask again
    url, _, verifier = start(live, rp_session(live, second), prompt="login")
    again = redeem(live, second, callback_params(login_and_consent(browser, url, card))["code"], verifier).json()
    log_out(browser, live)
    assert dead(live, first, before) and dead(live, second, again)


def logout_before_the_next_token_commit(browser: Browser, live: LiveIdp, monkeypatch: pytest.MonkeyPatch) -> None:
    """The patron logs out after the next token request has read its grant, before it writes."""
    original = Batch.commit

    def commit(self: Batch) -> None:
        if self.consumes:
            monkeypatch.setattr(Batch, "commit", original)
            other = threading.Thread(target=log_out, args=(browser, live))  # a request of its own
            other.start()
            other.join(timeout=20)
        original(self)

    monkeypatch.setattr(Batch, "commit", commit)


def test_a_refresh_under_way_at_the_logout_brings_nothing_back(live: LiveIdp, card: str,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    client = register(live)
    browser = new_browser()
    tokens = tokens_in(browser, live, client, card)
    logout_before_the_next_token_commit(browser, live, monkeypatch)
    late = refresh(live, client, tokens["refresh_token"])
    assert late.status_code == 400 and late.json()["error"] == "invalid_grant"
    assert userinfo_status(live, tokens["access_token"]) == 401


def test_a_code_exchange_under_way_at_the_logout_brings_nothing_back(live: LiveIdp, card: str,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    client = register(live)
    browser = new_browser()
    code, verifier = code_in(browser, live, client, card)
    logout_before_the_next_token_commit(browser, live, monkeypatch)
    late = redeem(live, client, code, verifier)
    assert late.status_code == 400 and late.json()["error"] == "invalid_grant"


def test_a_relying_partys_logout_ends_the_tokens_of_that_login(live: LiveIdp, card: str) -> None:
    client = register(live)
    browser, other_browser = new_browser(), new_browser()
    tokens = tokens_in(browser, live, client, card)
    elsewhere = tokens_in(other_browser, live, client, card)
    # The platform sends the browser to the end_session_endpoint with its id_token.
    done = browser.follow(f"{live.url}/logout/oidc?" + requests.compat.urlencode(
        {"id_token_hint": tokens["id_token"], "post_logout_redirect_uri": CALLBACK, "state": "bye"}))
    assert done.headers["Location"] == f"{CALLBACK}?state=bye"
    assert dead(live, client, tokens)
    assert alive(live, client, elsewhere)


# -- the calls other parts make (password change, reset): Flask-free, on the grants -----------------

def test_revoking_a_patrons_families_can_keep_one_login(live: LiveIdp, card: str) -> None:
    client = register(live)
    here, there = new_browser(), new_browser()
    code, verifier = code_in(here, live, client, card)
    kept = redeem(live, client, code, verifier).json()
    ended = tokens_in(there, live, client, card)
    grants = live.services.oidc.grants
    family = grants.family(code)
    assert family is not None and family.sid
    grants.revoke_patron(family.patron_id, keep_sid=family.sid)
    assert dead(live, client, ended) and alive(live, client, kept)


# -- withdrawn consent ------------------------------------------------------------------------------

def test_withdrawing_consent_ends_that_services_tokens_at_once(live: LiveIdp, card: str) -> None:
    withdrawn, kept = register(live), register(live)
    browser = new_browser()
    tokens, others = tokens_in(browser, live, withdrawn, card), tokens_in(browser, live, kept, card)
    page = browser.http.get(f"{live.url}/account/services", timeout=5)
    browser.http.post(f"{live.url}/account/services/{withdrawn.client_id}/revoke",
                      data={"csrf_token": csrf(page.text)}, timeout=5)
    assert dead(live, withdrawn, tokens)
    assert alive(live, kept, others)
