"""A password change or reset ends the patron's other sessions and the refresh tokens issued in them.

Two browsers (requests sessions) log the same patron in to a platform (authlib as the relying
party), each getting its own refresh token. The password is then changed in one of them (My
account, /password/change, a reset link) or reset from a third browser: the other browser is logged
out at its next request and its refresh token answers invalid_grant; the changing browser stays
logged in, its refresh token still works, and the page tells the patron.
"""

from __future__ import annotations

import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session

from idp.auth import recovery_link
from idp.registry.models import Patron
from tests.flows.conftest import LiveIdp
from tests.flows.test_oidc_flow import (PASSWORD, Browser, Client, callback_params, csrf, login_and_consent, register,
                                        rp_session, start, token_request)
from tests.unit.factories import library, patron
from tests.unit.test_otp import Recorder, install_recorder

pytestmark = pytest.mark.backends  # the session index (Redis Lua vs memory) ends other sessions

NEW_PASSWORD = "a fresh passphrase here"
MESSAGE = "You have been logged out everywhere else; services you logged in to must ask you to log in again."


def new_browser() -> Browser:
    http = requests.Session()
    http.headers["Accept-Language"] = "en"
    return Browser(http)


def log_in_at_platform(live: LiveIdp, client: Client, browser: Browser, card: str) -> dict:
    """The patron logs in to the platform in ``browser``; the platform's tokens (with a refresh token)."""
    rp: OAuth2Session = rp_session(live, client)
    url, _, verifier = start(live, rp)
    code = callback_params(login_and_consent(browser, url, card))["code"]
    token = rp.fetch_token(f"{live.url}/token", code=code, code_verifier=verifier)
    assert token["refresh_token"]
    return token


def logged_in(live: LiveIdp, browser: Browser) -> bool:
    response = browser.http.get(f"{live.url}/account", allow_redirects=False)
    assert response.status_code in {200, 303}
    return response.status_code == 200


def refresh_status(live: LiveIdp, client: Client, token: dict) -> tuple[int, str | None]:
    response = token_request(live, client, grant_type="refresh_token", refresh_token=token["refresh_token"])
    return response.status_code, response.json().get("error")


def at_my_account(live: LiveIdp, browser: Browser, outbox: Recorder, card: str) -> requests.Response:
    page = browser.follow(f"{live.url}/account/password")
    page = browser.post(f"{live.url}/account/code/send", {"action": "password", "channel": "email",
                                                          "csrf_token": csrf(page.text)})
    page = browser.post(f"{live.url}/account/code/check", {"action": "password", "code": outbox.last().code,
                                                           "csrf_token": csrf(page.text)})
    return browser.post(f"{live.url}/account/password", {"current": PASSWORD, "new": NEW_PASSWORD,
                                                         "confirm": NEW_PASSWORD, "csrf_token": csrf(page.text)})


def at_password_change(live: LiveIdp, browser: Browser, outbox: Recorder, card: str) -> requests.Response:
    page = browser.follow(f"{live.url}/password/change")
    return browser.post(f"{live.url}/password/change", {"current": PASSWORD, "new": NEW_PASSWORD,
                                                        "confirm": NEW_PASSWORD, "csrf_token": csrf(page.text)})


def with_reset_link(live: LiveIdp, browser: Browser, outbox: Recorder, card: str) -> requests.Response:
    with live.services.registry("test") as reg:
        kari = reg.session.query(Patron).one()
        recovery_link.send_reset_link(live.services, reg, kari, lang="en")
    token = outbox.last().text.split("paste this code:\n")[1].split("\n")[0]
    page = browser.follow(f"{live.url}/password/reset")
    page = browser.post(f"{live.url}/password/reset", {"code": token, "csrf_token": csrf(page.text)})
    return browser.post(f"{live.url}/password/reset", {"new": NEW_PASSWORD, "confirm": NEW_PASSWORD,
                                                       "csrf_token": csrf(page.text)})


CHANGES = {"My account": at_my_account, "/password/change": at_password_change, "a reset link": with_reset_link}


@pytest.fixture
def card(live: LiveIdp) -> str:
    with live.services.registry("test") as reg:
        library(reg)
        _, c = patron(reg, password=PASSWORD, email="kari@example.org")
        return c.number


@pytest.mark.parametrize("how", CHANGES)
def test_a_password_change_ends_the_other_sessions_and_their_refresh_tokens(live: LiveIdp, card: str,
                                                                            how: str) -> None:
    outbox = install_recorder(live.services)
    client = register(live)
    mine, other = new_browser(), new_browser()
    my_token, other_token = (log_in_at_platform(live, client, browser, card) for browser in (mine, other))

    shown = CHANGES[how](live, mine, outbox, card)
    assert shown.status_code == 200 and MESSAGE in shown.text

    assert not logged_in(live, other)
    assert refresh_status(live, client, other_token) == (400, "invalid_grant")
    assert logged_in(live, mine)
    assert refresh_status(live, client, my_token)[0] == 200
    assert MESSAGE not in mine.follow(f"{live.url}/account").text  # told once


def test_a_reset_from_a_browser_not_logged_in_ends_every_session(live: LiveIdp, card: str) -> None:
    outbox = install_recorder(live.services)
    client = register(live)
    first, second = new_browser(), new_browser()
    tokens = [log_in_at_platform(live, client, browser, card) for browser in (first, second)]

    shown = with_reset_link(live, new_browser(), outbox, card)
    assert shown.status_code == 200 and MESSAGE in shown.text

    assert not logged_in(live, first) and not logged_in(live, second)
    assert [refresh_status(live, client, token) for token in tokens] == [(400, "invalid_grant")] * 2


def test_a_login_after_the_change_is_not_ended_by_it(live: LiveIdp, card: str) -> None:
    install_recorder(live.services)
    client = register(live)
    changer = new_browser()
    log_in_at_platform(live, client, changer, card)
    at_password_change(live, changer, Recorder(), card)
    later = new_browser()
    page = later.follow(f"{live.url}/login")
    later.post(f"{live.url}/login", {"username": card, "password": NEW_PASSWORD, "csrf_token": csrf(page.text)})
    assert logged_in(live, later) and logged_in(live, changer)
