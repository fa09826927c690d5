"""RP-initiated logout cannot be forged by another site: a GET /logout/oidc that does not carry an
id_token_hint for the patron logged in here asks the patron before ending anything (OpenID Connect
RP-Initiated Logout 1.0, section 2). Driven by a browser-like requests session and authlib."""

from __future__ import annotations

import re

import pytest
import requests

from tests.flows.conftest import LiveIdp
from tests.flows.test_oidc_flow import (CALLBACK, PASSWORD, Browser, Client, callback_params, csrf, login_and_consent,
                                        register, rp_session, start)
from tests.unit.factories import library, patron


def logged_in(browser: Browser, live: LiveIdp) -> bool:
    return "You are logged in." in browser.http.get(f"{live.url}/", timeout=5).text


def browser_logged_in_at(live: LiveIdp, client: Client, card: str) -> tuple[Browser, str]:
    """A patron's browser logged in through ``client``; the id_token the client got."""
    browser = Browser(requests.Session())
    browser.http.headers["Accept-Language"] = "en"
    rp = rp_session(live, client)
    url, _, verifier = start(live, rp)
    code = callback_params(login_and_consent(browser, url, card))["code"]
    return browser, rp.fetch_token(f"{live.url}/token", code=code, code_verifier=verifier)["id_token"]


@pytest.fixture
def cards(live: LiveIdp) -> tuple[str, str]:
    with live.services.registry("test") as reg:
        library(reg)
        _, first = patron(reg, password=PASSWORD)
        _, second = patron(reg, nth=1, password=PASSWORD, email="other@example.org")
        return first.number, second.number


def logout(browser: Browser, live: LiveIdp, **params: str) -> requests.Response:
    # Sent from another site: a link or an <img> on any page the patron visits.
    return browser.http.get(f"{live.url}/logout/oidc", params=params, allow_redirects=False, timeout=5,
                            headers={"Referer": "https://evil.example/", "Sec-Fetch-Site": "cross-site"})


def answer(browser: Browser, live: LiveIdp, page: requests.Response, decision: str) -> requests.Response:
    action = re.search(r'<form method="post" action="([^"]+)"', page.text).group(1)
    return browser.http.post(requests.compat.urljoin(live.url, action), allow_redirects=False, timeout=5,
                             data={"decision": decision, "csrf_token": csrf(page.text)})


def test_a_cross_site_logout_without_a_hint_asks_and_logs_out_only_when_confirmed(live: LiveIdp,
                                                                                  cards: tuple[str, str]) -> None:
    browser, _ = browser_logged_in_at(live, register(live), cards[0])
    page = logout(browser, live)
    assert page.status_code == 200 and "Log out" in page.text and "Stay logged in" in page.text
    assert logged_in(browser, live), "a logout request nobody can tie to the patron must not end the session"

    stay = answer(browser, live, page, "stay")
    assert stay.is_redirect and logged_in(browser, live)

    confirmed = answer(browser, live, logout(browser, live), "logout")
    assert confirmed.status_code == 200 and "You are logged out" in confirmed.text
    assert not logged_in(browser, live)


def test_the_confirmation_needs_its_csrf_token(live: LiveIdp, cards: tuple[str, str]) -> None:
    browser, _ = browser_logged_in_at(live, register(live), cards[0])
    logout(browser, live)
    forged = browser.http.post(f"{live.url}/logout/oidc/confirm", data={"decision": "logout"}, timeout=5,
                               allow_redirects=False)
    assert forged.status_code == 400 and logged_in(browser, live)


def test_a_hint_for_another_patron_asks_too(live: LiveIdp, cards: tuple[str, str]) -> None:
    client = register(live)
    _, someone_elses = browser_logged_in_at(live, client, cards[1])
    browser, _ = browser_logged_in_at(live, client, cards[0])
    page = logout(browser, live, id_token_hint=someone_elses, post_logout_redirect_uri=CALLBACK, state="s")
    assert page.status_code == 200 and "Stay logged in" in page.text and logged_in(browser, live)
    # Confirmed, it goes back where the platform asked, as a logout with its hint does.
    done = answer(browser, live, page, "logout")
    assert done.is_redirect and done.headers["Location"] == f"{CALLBACK}?state=s" and not logged_in(browser, live)


def test_a_hint_for_a_browser_without_a_login_asks(live: LiveIdp, cards: tuple[str, str]) -> None:
    _, hint = browser_logged_in_at(live, register(live), cards[0])
    stranger = Browser(requests.Session())
    stranger.http.headers["Accept-Language"] = "en"
    page = logout(stranger, live, id_token_hint=hint)
    assert page.status_code == 200 and "Stay logged in" in page.text


def test_the_platforms_own_hint_logs_out_at_once(live: LiveIdp, cards: tuple[str, str]) -> None:
    client = register(live)
    browser, hint = browser_logged_in_at(live, client, cards[0])
    done = logout(browser, live, id_token_hint=hint, post_logout_redirect_uri=CALLBACK, state="bye")
    assert done.is_redirect and done.headers["Location"] == f"{CALLBACK}?state=bye"
    assert not logged_in(browser, live)
