"""Single logout across protocols, step by step over real HTTP (the app in a thread), with
python3-saml service providers and authlib relying parties.

A scripted browser (requests) runs no scripts: it does what the logout page's frames do by
fetching their addresses, and presses Continue. The real browser's run, and the back-channel
delivery through ``idp serve``, are in test_single_logout_served.py.
"""

from __future__ import annotations

import base64
import re
import zlib
from datetime import date
from html import unescape
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from authlib.jose import JsonWebKey, jwt

from idp import relying_parties
from idp.saml import registry as sp_registry
from tests.flows.conftest import LiveIdp
from tests.flows.test_oidc_flow import Browser as OidcBrowser
from tests.flows.test_oidc_flow import (callback_params, card, login_and_consent, rp_session,  # noqa: F401 (fixture)
                                        start, verify_id_token)
from tests.flows.test_oidc_flow import register as register_oidc
from tests.saml.sps import Browser, OneLoginSp, post_form

pytestmark = pytest.mark.backends  # what a login reached and each logout's run live in the state store

PARTIAL_LOGOUT = "urn:oasis:names:tc:SAML:2.0:status:PartialLogout"
UNKNOWN_PRINCIPAL = "urn:oasis:names:tc:SAML:2.0:status:UnknownPrincipal"
SUCCESS = "urn:oasis:names:tc:SAML:2.0:status:Success"


def add_sp(live: LiveIdp, host: str, name: str) -> OneLoginSp:
    sp = OneLoginSp(live.url, host)
    with live.services.registry("test") as reg:
        (added,) = sp_registry.add(reg, sp.metadata(), claims=["valid_patron"], dpa_signed=date(2026, 1, 1))
        added.name = name
    return sp


def sso(sp: OneLoginSp, browser: Browser, card: str) -> Any:
    url, request_id = sp.login_url()
    auth = sp.acs(post_form(browser.through(browser.go(url), card).text), request_id)
    assert auth.is_authenticated(), auth.get_errors()
    return auth


def logout_at(sp: OneLoginSp, auth: Any, browser: Browser, **override: str) -> requests.Response:
    """The SP sends the browser to our SLO with its LogoutRequest (signed, Redirect binding)."""
    return browser.go(sp.logout_url(override.get("name_id", auth.get_nameid()), auth.get_nameid_format(),
                                    override.get("session_index", auth.get_session_index())))


def logged_in(live: LiveIdp, browser: Browser) -> bool:
    """Whether an OIDC login in this browser goes through without the password."""
    client = register_oidc(live)
    url, _, _ = start(live, rp_session(live, client))
    return 'name="username"' not in browser.go(url).text


def frames(page: requests.Response) -> list[str]:
    """The addresses the logout page's frames load (its script sets them from data-src)."""
    return [unescape(u) for u in re.findall(r'data-src="([^"]+)"', page.text)]


def press_continue(browser: Browser, page: requests.Response) -> requests.Response:
    found = re.search(r'<a href="([^"]+)" id="logout-next">', page.text)
    assert found, page.text[:2000]
    return browser.go(requests.compat.urljoin(page.url, unescape(found.group(1))))


def status_codes(location: str) -> list[str]:
    """The status codes (top level first) of a LogoutResponse sent by Redirect."""
    query = parse_qs(urlsplit(location).query)
    xml = zlib.decompress(base64.b64decode(query["SAMLResponse"][0]), -15).decode()
    return re.findall(r'StatusCode Value="([^"]+)"', xml)


# -- a LogoutRequest must name what its SP was given ------------------------------------------

def test_a_logout_request_naming_another_subject_ends_nothing(live: LiveIdp, card: str) -> None:
    sp = add_sp(live, "film.example", "Film platform")
    browser = Browser(live.url)
    auth = sso(sp, browser, card)
    answer = logout_at(sp, auth, browser, name_id="someone-else")
    assert answer.is_redirect
    assert status_codes(answer.headers["Location"])[1:] == [UNKNOWN_PRINCIPAL]
    assert logged_in(live, browser)


def test_a_logout_request_with_a_session_index_not_ours_ends_nothing(live: LiveIdp, card: str) -> None:
    sp = add_sp(live, "film.example", "Film platform")
    browser = Browser(live.url)
    auth = sso(sp, browser, card)
    answer = logout_at(sp, auth, browser, session_index="_not-this-session")
    assert status_codes(answer.headers["Location"])[1:] == [UNKNOWN_PRINCIPAL]
    assert logged_in(live, browser)


def test_a_logout_request_from_an_sp_this_login_never_reached_ends_nothing(live: LiveIdp, card: str) -> None:
    film, books = add_sp(live, "film.example", "Film platform"), add_sp(live, "books.example", "E-books")
    browser = Browser(live.url)
    auth = sso(film, browser, card)
    # E-books knows the patron's pairwise NameID at E-books (say, from an earlier login): still not this session's.
    answer = browser.go(books.logout_url(auth.get_nameid(), auth.get_nameid_format(), auth.get_session_index()))
    assert status_codes(answer.headers["Location"])[1:] == [UNKNOWN_PRINCIPAL]
    assert logged_in(live, browser)


# -- the other services of the login ----------------------------------------------------------

def test_the_other_service_providers_get_a_logout_request_and_their_answers_count(live: LiveIdp, card: str) -> None:
    film, books = add_sp(live, "film.example", "Film platform"), add_sp(live, "books.example", "E-books")
    browser = Browser(live.url)
    film_auth, books_auth = sso(film, browser, card), sso(books, browser, card)
    page = logout_at(film, film_auth, browser)
    assert page.status_code == 200 and "E-books" in page.text
    assert "frame-src 'self' https://books.example" in page.headers["Content-Security-Policy"]
    (frame,) = frames(page)
    sent = browser.go(requests.compat.urljoin(page.url, frame))
    assert sent.is_redirect and sent.headers["Location"].startswith("https://books.example/saml/sls?")
    answer = books.answer_logout({k: v[0] for k, v in parse_qs(urlsplit(sent.headers["Location"]).query).items()})
    assert answer.errors == []
    assert answer.name_id == books_auth.get_nameid() and answer.session_indexes == [books_auth.get_session_index()]
    assert answer.response_url is not None
    done = browser.go(answer.response_url)  # back in the frame, at our SLO
    assert done.status_code == 200 and done.headers["X-Frame-Options"] == "SAMEORIGIN"
    assert "frame-ancestors 'self'" in done.headers["Content-Security-Policy"]
    final = press_continue(browser, page)
    assert final.is_redirect and final.headers["Location"].startswith("https://film.example/saml/sls?")
    assert status_codes(final.headers["Location"]) == [SUCCESS]  # everyone confirmed: no PartialLogout
    assert film.sls(final.headers["Location"]) == []
    assert not logged_in(live, browser)


def test_a_service_provider_that_does_not_answer_leaves_a_partial_logout(live: LiveIdp, card: str) -> None:
    film, books = add_sp(live, "film.example", "Film platform"), add_sp(live, "books.example", "E-books")
    browser = Browser(live.url)
    film_auth = sso(film, browser, card)
    sso(books, browser, card)
    page = logout_at(film, film_auth, browser)
    assert frames(page)
    assert not logged_in(live, browser)  # logged out here at once, before any frame has answered
    final = press_continue(browser, page)  # E-books never answered (the page's timeout went by)
    assert status_codes(final.headers["Location"]) == [SUCCESS, PARTIAL_LOGOUT]
    assert film.sls(final.headers["Location"]) == []  # python3-saml: a valid, signed LogoutResponse


def test_our_logout_names_the_service_providers_that_did_not_confirm(live: LiveIdp, card: str) -> None:
    books = add_sp(live, "books.example", "E-books")
    browser = Browser(live.url)
    sso(books, browser, card)
    landing = browser.go(f"{live.url}/")
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', landing.text)
    assert token
    page = browser.post(f"{live.url}/logout", {"csrf_token": token.group(1)})
    assert page.status_code == 200 and frames(page)
    final = press_continue(browser, page)
    assert final.status_code == 200 and "You are logged out" in final.text
    assert "did not confirm" in final.text and "E-books" in final.text
    # The run is spent: its page cannot be replayed into a second answer.
    assert "did not confirm" not in press_continue(browser, page).text


def test_a_logout_page_of_an_ended_run_says_logged_out(live: LiveIdp) -> None:
    page = requests.get(f"{live.url}/logout/progress/not-a-run", headers={"Accept-Language": "en"}, timeout=5)
    assert page.status_code == 200 and "You are logged out" in page.text
    sent = requests.get(f"{live.url}/saml/slo/send/not-a-run/0", timeout=5, allow_redirects=False)
    assert sent.status_code == 404


# -- OIDC: the sid claim and front-channel logout ---------------------------------------------

def test_front_channel_relying_parties_are_framed_with_iss_and_their_sid(live: LiveIdp, card: str) -> None:
    client = register_oidc(live)
    origin = "http://127.0.0.1:8765"  # its redirect URI's (Front-Channel Logout 1.0 section 2)
    with live.services.registry("test") as reg:
        relying_parties.update_oidc_logout(reg, client.client_id,
                                           frontchannel_logout_uri=f"{origin}/logout?from=idp")
    http = requests.Session()
    rp = rp_session(live, client)
    url, _, verifier = start(live, rp)
    back = callback_params(login_and_consent(OidcBrowser(http), url, card))
    tokens = rp.fetch_token(f"{live.url}/token", code=back["code"], code_verifier=verifier)
    claims = verify_id_token(live, tokens["id_token"], client, "n-0S6")
    assert isinstance(claims["sid"], str) and len(claims["sid"]) >= 16
    refreshed = rp.refresh_token(f"{live.url}/token", refresh_token=tokens["refresh_token"])
    keys = JsonWebKey.import_key_set(requests.get(f"{live.url}/jwks", timeout=5).json())
    assert jwt.decode(refreshed["id_token"], keys)["sid"] == claims["sid"]  # a refresh keeps the session's sid

    browser = Browser(live.url, http=http)
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', browser.go(f"{live.url}/").text)
    assert token
    page = browser.post(f"{live.url}/logout", {"csrf_token": token.group(1)})
    (frame,) = frames(page)
    parts = urlsplit(frame)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == f"{origin}/logout"
    assert parse_qs(parts.query) == {"from": ["idp"], "iss": [live.url], "sid": [claims["sid"]]}
    assert f"frame-src 'self' {origin}" in page.headers["Content-Security-Policy"]


def test_each_relying_party_gets_its_own_sid_for_one_login(live: LiveIdp, card: str) -> None:
    first, second = register_oidc(live), register_oidc(live)
    http = requests.Session()
    sids = []
    for client in (first, second):
        rp = rp_session(live, client)
        url, _, verifier = start(live, rp)
        if sids:  # logged in already: the second platform asks only for consent
            browser = OidcBrowser(http)
            page = browser.follow(url)
            token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page.text)
            assert token, page.text[:1000]
            back = callback_params(browser.post(f"{live.url}/authorize/consent",
                                                {"decision": "allow", "csrf_token": token.group(1)}))
        else:
            back = callback_params(login_and_consent(OidcBrowser(http), url, card))
        tokens = rp.fetch_token(f"{live.url}/token", code=back["code"], code_verifier=verifier)
        sids.append(verify_id_token(live, tokens["id_token"], client, "n-0S6")["sid"])
    assert sids[0] != sids[1]  # as pairwise as the subjects: the two cannot tie their patrons together
