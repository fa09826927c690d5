"""ID-porten upstream over real HTTP: the IdP is the client of a faithful fake ID-porten
(tests/fakes/idporten.py), an independent relying party (authlib) asks the IdP for a level, and
a scripted browser (requests) goes between them, as a patron's browser would.

Covered: a known patron's login reflected in acr/amr; self-registration of an unknown person
(a digital card from the chosen library, from 15 only); a guardian creating a child's card;
every broken id_token refused with a clear page and nothing stored; logout ending the ID-porten
session too; ID-porten's front-channel logout ending ours.
"""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from sqlalchemy import func, select

from authlib.jose import JsonWebKey, jwt

from idp import relying_parties
from idp.registry.models import AuditEvent, BackchannelLogout, Card, Guardianship, Membership, Patron
from idp.registry import patrons as patrons_svc
from idp.services import Services
from idp.settings import Settings
from tests.conftest import FakeClock
from tests.fakes.idporten import HIGH, SUBSTANTIAL, FakeIdPorten, running_idporten
from tests.fakes.live import serve_idp
from tests.flows.conftest import LiveIdp, free_port
from tests.flows.test_oidc_flow import (CALLBACK, Browser, Client, callback_params, csrf, register, rp_session,
                                        start, verify_id_token)
from tests.flows.test_oidc_flow import register as register_rp
from tests.nin import person
from tests.unit.factories import ADULT_BORN, library, patron
from tests.flows.test_saml_flow import FILM
from tests.flows.test_saml_flow import register as register_sp
from tests.saml.sps import Browser as SamlBrowser
from tests.saml.sps import OneLoginSp

PASSWORD = "correct horse battery"
TODAY = date(2026, 11, 23)  # the register's clock in these tests (tests.conftest.clock), in Oslo
FIFTEEN_TODAY = date(2011, 11, 23)
FIFTEEN_TOMORROW = date(2011, 11, 24)
CHILD_BORN = date(2016, 6, 1)
REGISTRATION_WAIT = 30 * 60  # README: the verified number waits "for 30 minutes at most"


# -- fixtures -----------------------------------------------------------------------------------

@pytest.fixture
def idporten() -> Iterator[FakeIdPorten]:
    with running_idporten() as fake:
        yield fake


@pytest.fixture
def live(settings: Settings, services: Services, clock: FakeClock, idporten: FakeIdPorten) -> Iterator[LiveIdp]:
    """The IdP on loopback, registered at the fake ID-porten as its client."""
    port = free_port()
    client = idporten.register(f"http://127.0.0.1:{port}/idporten/callback",
                               f"http://127.0.0.1:{port}/idporten/logged-out")
    with serve_idp(settings, services, clock, port, idporten_issuer=idporten.url,
                   idporten_client_id=client.client_id, idporten_client_secret=client.secret) as live_idp:
        yield live_idp


@pytest.fixture
def oslo(live: LiveIdp) -> None:
    with live.services.registry("test") as reg:
        library(reg)
        library(reg, "NO-4601000", "Bergen")


@pytest.fixture
def kari(live: LiveIdp, oslo: None) -> int:
    with live.services.registry("test") as reg:
        p, _ = patron(reg, password=PASSWORD)
        return p.id


def browser() -> Browser:
    http = requests.Session()
    http.headers["Accept-Language"] = "en"
    return Browser(http)


def idporten_link(page: requests.Response) -> str:
    match = re.search(r'id="idporten-login" href="([^"]+)"', page.text)
    assert match, "no ID-porten button on the page"
    return requests.compat.urljoin(page.url, html.unescape(match.group(1)))


def consent_if_asked(b: Browser, live: LiveIdp, page: requests.Response) -> requests.Response:
    if page.status_code == 200 and 'name="decision"' in page.text:
        return b.post(f"{live.url}/authorize/consent", {"decision": "allow", "csrf_token": csrf(page.text)})
    return page


def rp_login_with_idporten(live: LiveIdp, client: Client, b: Browser | None = None,
                           **params: str) -> tuple[Browser, requests.Response, object, str]:
    """The relying party sends the browser to the IdP; the login page offers ID-porten; click it."""
    b = b or browser()
    rp = rp_session(live, client)
    url, _state, verifier = start(live, rp, **params)
    login_page = b.follow(url)
    assert login_page.status_code == 200, login_page.text[:300]
    return b, b.follow(idporten_link(login_page)), rp, verifier


def logged_in(b: Browser, live: LiveIdp) -> bool:
    return "You are logged in." in b.http.get(f"{live.url}/", timeout=5).text


# -- a known patron -----------------------------------------------------------------------------

def test_a_patron_logs_in_with_idporten_and_the_service_sees_its_level(live: LiveIdp, idporten: FakeIdPorten,
                                                                       kari: int) -> None:
    idporten.person = person(ADULT_BORN)
    client = register(live, min_acr=SUBSTANTIAL)
    b = browser()
    rp = rp_session(live, client)
    url, state, verifier = start(live, rp)
    login_page = b.follow(url)
    # The service needs ID-porten: the password form cannot reach that level, so it is not offered.
    assert login_page.status_code == 200 and 'name="password"' not in login_page.text
    assert "This service requires a login with ID-porten." in login_page.text
    after = consent_if_asked(b, live, b.follow(idporten_link(login_page)))
    back = callback_params(after)
    assert back["state"] == state

    asked = idporten.authorize_requests[-1]
    assert asked["acr_values"] == SUBSTANTIAL and asked["code_challenge_method"] == "S256"
    assert asked["scope"] == "openid" and asked["nonce"] and asked["state"]
    assert asked["redirect_uri"] == f"{live.url}/idporten/callback"
    assert idporten.token_requests[-1]["code_verifier"]  # PKCE: the fake checked it against the challenge

    token = rp.fetch_token(f"{live.url}/token", code=back["code"], code_verifier=verifier)
    claims = verify_id_token(live, token["id_token"], client, "n-0S6")
    assert claims["acr"] == SUBSTANTIAL and claims["amr"] == ["TestID"]
    assert person(ADULT_BORN) not in str(claims)
    with live.services.registry("test") as reg:
        assert reg.session.scalar(select(func.count()).select_from(AuditEvent)
                                  .where(AuditEvent.action == "login.idporten", AuditEvent.patron_id == kari)) == 1


def test_a_service_needing_level_high_gets_it_asked_for_and_reflected(live: LiveIdp, idporten: FakeIdPorten,
                                                                      kari: int) -> None:
    idporten.person = person(ADULT_BORN)
    idporten.amr = ["BankID"]
    client = register(live, min_acr=HIGH)
    b, page, rp, verifier = rp_login_with_idporten(live, client)
    back = callback_params(consent_if_asked(b, live, page))
    assert idporten.authorize_requests[-1]["acr_values"] == HIGH
    claims = verify_id_token(live, rp.fetch_token(f"{live.url}/token", code=back["code"], code_verifier=verifier)
                             ["id_token"], client, "n-0S6")
    assert claims["acr"] == HIGH and claims["amr"] == ["BankID"]


def test_a_saml_service_needing_level_high_is_sent_to_log_in_with_idporten(live: LiveIdp, clock: FakeClock) -> None:
    clock.now = datetime.now(UTC)  # the SP stamps its AuthnRequest with the wall clock; we check its age
    sp = OneLoginSp(live.url, "film.example")
    register_sp(live, sp, FILM, min_acr=HIGH)
    url, _ = sp.login_url()
    page = SamlBrowser(live.url).go(url)
    # Not refused (NoAuthnContext) as without ID-porten: the login page, where only ID-porten reaches the level.
    assert page.status_code == 200 and 'id="idporten-login"' in page.text
    assert "This service requires a login with ID-porten." in page.text and "SAMLResponse" not in page.text


def logged_in_with_password(live: LiveIdp, patron_id: int) -> Browser:
    """A browser logged in on the login page with the patron's card and password (level password)."""
    b = browser()
    with live.services.registry("test") as reg:
        number = next(c.number for c in reg.session.get(Patron, patron_id).cards)
    page = b.http.get(f"{live.url}/login", timeout=5)
    b.post(f"{live.url}/login", {"username": number, "password": PASSWORD, "csrf_token": csrf(page.text), "next": ""})
    return b


def test_a_password_session_steps_up_to_idporten_for_a_service_that_needs_it(live: LiveIdp, idporten: FakeIdPorten,
                                                                             kari: int) -> None:
    idporten.person = person(ADULT_BORN)
    b = logged_in_with_password(live, kari)
    assert logged_in(b, live)
    client = register(live, min_acr=SUBSTANTIAL)
    b, page, rp, verifier = rp_login_with_idporten(live, client, b)
    back = callback_params(consent_if_asked(b, live, page))
    claims = verify_id_token(live, rp.fetch_token(f"{live.url}/token", code=back["code"], code_verifier=verifier)
                             ["id_token"], client, "n-0S6")
    assert claims["acr"] == SUBSTANTIAL


def test_a_service_asking_for_a_fresh_login_gets_one_at_idporten(live: LiveIdp, idporten: FakeIdPorten,
                                                                  kari: int) -> None:
    idporten.person = person(ADULT_BORN)
    client = register(live, min_acr=SUBSTANTIAL)
    b, page, rp, verifier = rp_login_with_idporten(live, client, prompt="login")
    assert idporten.authorize_requests[-1]["prompt"] == "login"
    back = callback_params(consent_if_asked(b, live, page))
    claims = verify_id_token(live, rp.fetch_token(f"{live.url}/token", code=back["code"], code_verifier=verifier)
                             ["id_token"], client, "n-0S6")
    assert claims["acr"] == SUBSTANTIAL
    # Without prompt=login, ID-porten's single sign-on may answer: no prompt is sent.
    _b2, _page2, _, _ = rp_login_with_idporten(live, client)
    assert "prompt" not in idporten.authorize_requests[-1]


def test_the_login_page_offers_idporten_beside_the_password(live: LiveIdp, oslo: None) -> None:
    page = browser().http.get(f"{live.url}/login", timeout=5)
    assert 'name="password"' in page.text and "Log in with ID-porten" in page.text
    assert "Get one with ID-porten" in page.text and "Create a card for a child" in page.text


def test_a_service_needing_more_than_a_password_is_refused_without_idporten(settings: Settings, services: Services,
                                                                            clock: FakeClock) -> None:
    with serve_idp(settings, services, clock, free_port()) as plain:
        client = register_rp(plain, min_acr=HIGH)
        url, state, _ = start(plain, rp_session(plain, client))
        back = callback_params(requests.get(url, allow_redirects=False, timeout=5))
        assert back["error"] == "unmet_authentication_requirements" and back["state"] == state
        page = requests.get(f"{plain.url}/login", timeout=5, headers={"Accept-Language": "en"})
        assert 'id="idporten-login"' not in page.text and "Get one with ID-porten" not in page.text
        assert requests.get(f"{plain.url}/idporten/login", timeout=5).status_code == 404
        assert requests.get(f"{plain.url}/register", timeout=5).status_code == 404


# -- what must be refused -------------------------------------------------------------------------

BROKEN = {
    "bad_signature": "Its signature is not valid.",
    "wrong_nonce": "It does not belong to this login.",
    "wrong_audience": "It was issued for another service.",
    "wrong_issuer": "It was not issued by ID-porten.",
    "expired": "It has expired.",
    "unknown_kid": "Its signature is not valid.",
}


@pytest.mark.parametrize("flaw", list(BROKEN))
def test_a_broken_id_token_is_refused_with_a_clear_page(live: LiveIdp, idporten: FakeIdPorten, kari: int,
                                                        flaw: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    idporten.person = person(ADULT_BORN)
    setattr(idporten, flaw, True)
    client = register(live, min_acr=SUBSTANTIAL)
    b, page, _, _ = rp_login_with_idporten(live, client)
    assert page.status_code == 400, page.text[:300]
    assert "The answer from ID-porten could not be verified, so you are not logged in." in page.text
    assert BROKEN[flaw] in page.text
    assert 'role="alert"' in page.text and "Try again with ID-porten" in page.text
    assert not logged_in(b, live)
    # Nothing about the person on the page or in the logs.
    assert person(ADULT_BORN) not in page.text and person(ADULT_BORN) not in caplog.text
    with live.services.registry("test") as reg:
        assert reg.session.scalar(select(func.count()).select_from(AuditEvent)
                                  .where(AuditEvent.action == "login.idporten")) == 0


def test_a_lower_level_than_asked_is_refused(live: LiveIdp, idporten: FakeIdPorten, kari: int) -> None:
    idporten.person = person(ADULT_BORN)
    idporten.acr = SUBSTANTIAL  # asked for high, answered substantial
    client = register(live, min_acr=HIGH)
    b, page, _, _ = rp_login_with_idporten(live, client)
    assert page.status_code == 403
    assert "at a lower security level than this service requires" in page.text
    assert not logged_in(b, live)


def test_a_cancelled_login_at_idporten_says_so(live: LiveIdp, idporten: FakeIdPorten, kari: int) -> None:
    idporten.cancel = True
    page = browser().follow(f"{live.url}/idporten/login")
    assert page.status_code == 400 and "was cancelled or did not succeed" in page.text


def test_a_replayed_callback_is_refused(live: LiveIdp, idporten: FakeIdPorten, kari: int) -> None:
    idporten.person = person(ADULT_BORN)
    b = browser()
    to_idporten = b.http.get(f"{live.url}/idporten/login", allow_redirects=False, timeout=5)
    back = b.http.get(to_idporten.headers["Location"], allow_redirects=False, timeout=5).headers["Location"]
    first = b.http.get(back, allow_redirects=False, timeout=5)
    assert first.status_code == 303 and logged_in(b, live)
    again = b.http.get(back, allow_redirects=False, timeout=5)
    assert again.status_code == 400 and "expired or was already completed" in again.text
    # And a callback in a browser that never started a login is refused the same way.
    assert browser().http.get(back, timeout=5).status_code == 400


def test_idporten_unreachable_gives_a_clear_page(settings: Settings, services: Services, clock: FakeClock) -> None:
    nobody = f"http://127.0.0.1:{free_port()}"
    with serve_idp(settings, services, clock, free_port(), idporten_issuer=nobody, idporten_client_id="c",
                   idporten_client_secret="s") as idp:
        page = requests.get(f"{idp.url}/idporten/login", timeout=15, headers={"Accept-Language": "en"})
        assert page.status_code == 502 and "ID-porten cannot be reached just now" in page.text


# -- self-registration ---------------------------------------------------------------------------

def register_form(page: requests.Response) -> dict[str, str]:
    assert page.status_code == 200 and 'name="home_library"' in page.text, page.text[:500]
    return {"csrf_token": csrf(page.text)}


def test_an_unknown_person_registers_and_continues_to_the_service(live: LiveIdp, idporten: FakeIdPorten,
                                                                  oslo: None) -> None:
    newcomer = person(date(1990, 5, 17))
    idporten.person = newcomer
    client = register(live, min_acr=SUBSTANTIAL)
    b, page, rp, verifier = rp_login_with_idporten(live, client)
    assert page.url.endswith("/register")
    assert "You have no library card in the national register yet." in page.text
    assert newcomer not in page.text
    assert "Bergen" in page.text and "Oslo" in page.text
    form = register_form(page)

    refused = b.http.post(page.url, data={**form, "name": "Nora Ny", "home_library": "NO-4601000",
                                          "email": "not-an-address", "phone": "+47 912 34 567"}, timeout=5)
    assert refused.status_code == 400 and "Enter an e-mail address like name@example.no." in refused.text
    with live.services.registry("test") as reg:
        assert patrons_svc.find_by_national_id(reg, newcomer) is None

    done = b.http.post(page.url, data={**form, "name": "Nora Ny", "home_library": "NO-4601000",
                                       "email": "nora@example.org", "phone": "+47 912 34 567"}, timeout=5)
    assert done.status_code == 200, done.text[:500]
    number = re.search(r'id="card-number">([^<]+)<', done.text).group(1)
    with live.services.registry("test") as reg:
        nora = patrons_svc.find_by_national_id(reg, newcomer)
        assert nora is not None and nora.email == "nora@example.org" and nora.phone == "+4791234567"
        assert nora.home_library.isil == "NO-4601000" and nora.local_library_id is None
        assert [(c.number, c.kind) for c in nora.cards] == [(number, "digital")]
        assert [m.library.isil for m in nora.memberships] == ["NO-4601000"]
        assert nora.birth_date == date(1990, 5, 17)
    # Registered and logged in at ID-porten's level: on to the service.
    continue_to = html.unescape(re.search(r'id="continue" href="([^"]+)"', done.text).group(1))
    back = callback_params(consent_if_asked(b, live, b.follow(requests.compat.urljoin(live.url, continue_to))))
    claims = verify_id_token(live, rp.fetch_token(f"{live.url}/token", code=back["code"], code_verifier=verifier)
                             ["id_token"], client, "n-0S6")
    assert claims["acr"] == SUBSTANTIAL and claims["valid_patron"] is True


def test_a_fifteen_year_old_registers_alone(live: LiveIdp, idporten: FakeIdPorten, oslo: None) -> None:
    idporten.person = person(FIFTEEN_TODAY)
    b = browser()
    page = b.follow(f"{live.url}/idporten/login?next=/register")
    done = b.http.post(page.url, data={**register_form(page), "name": "Emil", "home_library": "NO-2030000",
                                       "email": "emil@example.org", "phone": "91234567"}, timeout=5)
    assert done.status_code == 200 and "Your library card is ready" in done.text
    with live.services.registry("test") as reg:
        assert patrons_svc.find_by_national_id(reg, person(FIFTEEN_TODAY)) is not None


def test_under_fifteen_a_guardian_must_create_the_card(live: LiveIdp, idporten: FakeIdPorten, oslo: None) -> None:
    idporten.person = person(FIFTEEN_TOMORROW)
    b = browser()
    page = b.follow(f"{live.url}/idporten/login")
    refused = b.http.post(page.url, data={**register_form(page), "name": "Emil", "home_library": "NO-2030000",
                                          "email": "emil@example.org", "phone": "91234567"}, timeout=5)
    assert refused.status_code == 403
    assert "You are under 15: a parent or guardian creates your library card." in refused.text
    with live.services.registry("test") as reg:
        assert reg.session.scalar(select(func.count()).select_from(Patron)) == 0
        assert reg.session.scalar(select(func.count()).select_from(Card)) == 0


@pytest.mark.parametrize(("later", "waits"), [(REGISTRATION_WAIT - 5, True), (REGISTRATION_WAIT + 5, False)],
                         ids=["within-30-minutes", "after-30-minutes"])
def test_a_verified_person_has_30_minutes_to_register(live: LiveIdp, idporten: FakeIdPorten, oslo: None,
                                                      clock: FakeClock, later: int, waits: bool) -> None:
    idporten.person = person(ADULT_BORN)
    b = browser()
    assert 'name="home_library"' in b.follow(f"{live.url}/idporten/login?next=/register").text
    clock.advance(seconds=later)  # the services' clock times the wait
    page = b.http.get(f"{live.url}/register", timeout=5)
    assert ('name="home_library"' in page.text) is waits


def test_registering_needs_idporten_first(live: LiveIdp, oslo: None) -> None:
    page = browser().http.get(f"{live.url}/register", timeout=5)
    assert page.status_code == 200 and "Register with ID-porten" in page.text and 'name="home_library"' not in page.text
    forged = browser().http.post(f"{live.url}/register", data={"name": "X", "home_library": "NO-2030000"}, timeout=5)
    assert forged.status_code == 400  # no CSRF token, and no verified person: nothing happens
    with live.services.registry("test") as reg:
        assert reg.session.scalar(select(func.count()).select_from(Patron)) == 0


# -- a guardian's card for a child -------------------------------------------------------------------

def guardian_page(live: LiveIdp, idporten: FakeIdPorten) -> tuple[Browser, requests.Response]:
    idporten.person = person(ADULT_BORN)
    b = browser()
    gate = b.http.get(f"{live.url}/register/child", timeout=5)
    assert "Log in with ID-porten first." in gate.text
    login = html.unescape(re.search(r'class="button" href="([^"]+)"', gate.text).group(1))
    page = b.follow(requests.compat.urljoin(live.url, login))
    assert page.url.endswith("/register/child") and 'name="national_id"' in page.text
    return b, page


def test_a_guardian_logged_in_with_idporten_creates_a_childs_card(live: LiveIdp, idporten: FakeIdPorten,
                                                                  kari: int) -> None:
    b, page = guardian_page(live, idporten)
    assert 'value="NO-2030000" selected' in page.text  # the guardian's home library is the default
    done = b.http.post(page.url, data={"csrf_token": csrf(page.text), "national_id": person(CHILD_BORN),
                                       "name": "Emma Nordmann", "home_library": "NO-2030000"}, timeout=5)
    assert done.status_code == 200 and "The child's library card is ready" in done.text
    number = re.search(r'id="card-number">([^<]+)<', done.text).group(1)
    with live.services.registry("test") as reg:
        emma = patrons_svc.find_by_national_id(reg, person(CHILD_BORN))
        assert emma is not None and emma.cards[0].number == number and emma.cards[0].kind == "digital"
        assert reg.session.scalar(select(Guardianship).where(Guardianship.child_id == emma.id)).guardian_id == kari


def test_a_fifteen_year_old_gets_no_card_from_a_guardian(live: LiveIdp, idporten: FakeIdPorten, kari: int) -> None:
    b, page = guardian_page(live, idporten)
    refused = b.http.post(page.url, data={"csrf_token": csrf(page.text), "national_id": person(FIFTEEN_TODAY),
                                          "name": "Emil", "home_library": "NO-2030000"}, timeout=5)
    assert refused.status_code == 403 and "From 15 a child registers alone" in refused.text
    bad = b.http.post(page.url, data={"csrf_token": csrf(page.text), "national_id": "12345678901",
                                      "name": "Emil", "home_library": "NO-2030000"}, timeout=5)
    assert bad.status_code == 400 and "not a valid Norwegian national identity number" in bad.text
    with live.services.registry("test") as reg:
        assert reg.session.scalar(select(func.count()).select_from(Patron)) == 1
        assert reg.session.scalar(select(func.count()).select_from(Guardianship)) == 0
        assert reg.session.scalar(select(func.count()).select_from(Membership)) == 1


def test_a_password_login_is_not_enough_to_create_a_childs_card(live: LiveIdp, kari: int) -> None:
    b = browser()
    with live.services.registry("test") as reg:
        number = reg.session.get(Patron, kari).cards[0].number
    page = b.http.get(f"{live.url}/login", timeout=5)
    b.post(f"{live.url}/login", {"username": number, "password": PASSWORD, "csrf_token": csrf(page.text), "next": ""})
    gate = b.http.get(f"{live.url}/register/child", timeout=5)
    assert "Log in with ID-porten first." in gate.text and 'name="national_id"' not in gate.text


# -- logout ------------------------------------------------------------------------------------------

def log_in_with_idporten(live: LiveIdp, idporten: FakeIdPorten) -> Browser:
    idporten.person = person(ADULT_BORN)
    b = browser()
    b.follow(f"{live.url}/idporten/login")
    assert logged_in(b, live)
    return b


def test_logging_out_also_ends_the_idporten_session(live: LiveIdp, idporten: FakeIdPorten, kari: int) -> None:
    b = log_in_with_idporten(live, idporten)
    landing = b.http.get(f"{live.url}/", timeout=5)
    # The logout form leads on to ID-porten's logout: the page lets its forms end there.
    assert idporten.url in landing.headers["Content-Security-Policy"]
    out = b.post(f"{live.url}/logout", {"csrf_token": csrf(landing.text)})
    assert out.status_code == 200 and "You are logged out" in out.text
    sent = idporten.logouts[-1]
    assert sent["post_logout_redirect_uri"] == f"{live.url}/idporten/logged-out" and sent["id_token_hint"]
    assert not logged_in(b, live)


def test_a_relying_partys_logout_goes_through_idporten_and_back(live: LiveIdp, idporten: FakeIdPorten,
                                                                kari: int) -> None:
    idporten.person = person(ADULT_BORN)
    client = register(live, min_acr=SUBSTANTIAL)
    b, page, rp, verifier = rp_login_with_idporten(live, client)
    back = callback_params(consent_if_asked(b, live, page))
    id_token = rp.fetch_token(f"{live.url}/token", code=back["code"], code_verifier=verifier)["id_token"]
    done = b.follow(f"{live.url}/logout/oidc?" + requests.compat.urlencode(
        {"id_token_hint": id_token, "post_logout_redirect_uri": CALLBACK, "state": "bye"}))
    assert done.is_redirect and done.headers["Location"] == f"{CALLBACK}?state=bye"
    assert len(idporten.logouts) == 1 and not logged_in(b, live)


def test_idportens_front_channel_logout_ends_our_session(live: LiveIdp, idporten: FakeIdPorten, kari: int) -> None:
    b = log_in_with_idporten(live, idporten)
    sid = idporten.sessions[-1]
    wrong = requests.get(f"{live.url}/idporten/logout/frontchannel", params={"iss": "https://evil.example", "sid": sid},
                         timeout=5)
    assert wrong.status_code == 400 and logged_in(b, live)
    # The iframe on ID-porten's logout page: no cookie of ours comes with it.
    framed = requests.get(f"{live.url}/idporten/logout/frontchannel", params={"iss": idporten.url, "sid": sid},
                          timeout=5)
    assert framed.status_code == 200
    assert f"frame-ancestors {idporten.url}" in framed.headers["Content-Security-Policy"]
    assert not logged_in(b, live)


def test_idportens_front_channel_logout_tells_back_channel_relying_parties(live: LiveIdp, idporten: FakeIdPorten,
                                                                          kari: int) -> None:
    idporten.person = person(ADULT_BORN)
    client = register(live, min_acr=SUBSTANTIAL)
    with live.services.registry("test") as reg:
        relying_parties.update_oidc_logout(reg, client.client_id, backchannel_logout_uri="https://film.example/bc")
    b, page, rp, verifier = rp_login_with_idporten(live, client)
    back = callback_params(consent_if_asked(b, live, page))
    id_token = rp.fetch_token(f"{live.url}/token", code=back["code"], code_verifier=verifier)["id_token"]
    sid = jwt.decode(id_token, JsonWebKey.import_key_set(requests.get(f"{live.url}/jwks", timeout=5).json()))["sid"]
    framed = requests.get(f"{live.url}/idporten/logout/frontchannel",
                          params={"iss": idporten.url, "sid": idporten.sessions[-1]}, timeout=5)
    assert framed.status_code == 200
    with live.services.registry("test") as reg:
        owed = reg.session.scalars(select(BackchannelLogout)).all()
        assert [(row.client_id, row.sid) for row in owed] == [(client.client_id, sid)]


def test_no_identity_number_reaches_a_page_or_a_log(live: LiveIdp, idporten: FakeIdPorten, oslo: None,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    idporten.person = person(date(1990, 5, 17))
    b = browser()
    pages = [b.follow(f"{live.url}/idporten/login")]
    pages.append(b.http.post(pages[0].url, data={**register_form(pages[0]), "name": "Nora", "home_library":
                                                 "NO-2030000", "email": "nora@example.org", "phone": "91234567"},
                             timeout=5))
    pages.append(b.http.get(f"{live.url}/", timeout=5))
    for page in pages:
        assert person(date(1990, 5, 17)) not in page.text
    assert person(date(1990, 5, 17)) not in caplog.text and "nora@example.org" not in caplog.text
    # The session store holds it encrypted only, and only until the registration is done.
    raw = b.http.cookies.get("idp_session")
    assert raw is not None


def test_the_started_login_is_in_the_session_not_in_the_url(live: LiveIdp, idporten: FakeIdPorten) -> None:
    to_idporten = browser().http.get(f"{live.url}/idporten/login?next=/account/services", allow_redirects=False,
                                     timeout=5)
    query = parse_qs(urlsplit(to_idporten.headers["Location"]).query)
    assert to_idporten.status_code == 303
    assert "code_verifier" not in query and query["code_challenge_method"] == ["S256"]
    assert len(query["state"][0]) >= 43 and len(query["nonce"][0]) >= 43


def test_idportens_front_channel_logout_ends_the_tokens_issued_in_that_login(live: LiveIdp, idporten: FakeIdPorten,
                                                                             kari: int) -> None:
    idporten.person = person(ADULT_BORN)
    client = register(live, min_acr=SUBSTANTIAL)
    b, page, rp, verifier = rp_login_with_idporten(live, client)
    back = callback_params(consent_if_asked(b, live, page))
    tokens = rp.fetch_token(f"{live.url}/token", code=back["code"], code_verifier=verifier)
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert requests.get(f"{live.url}/userinfo", headers=bearer, timeout=5).status_code == 200
    # The iframe on ID-porten's logout page: no cookie, and the browser need never come back.
    framed = requests.get(f"{live.url}/idporten/logout/frontchannel",
                          params={"iss": idporten.url, "sid": idporten.sessions[-1]}, timeout=5)
    assert framed.status_code == 200
    assert requests.get(f"{live.url}/userinfo", headers=bearer, timeout=5).status_code == 401
    refreshed = requests.post(f"{live.url}/token", data={"grant_type": "refresh_token",
                                                         "refresh_token": tokens["refresh_token"]},
                              auth=(client.client_id, client.secret), timeout=5)
    assert refreshed.status_code == 400 and refreshed.json()["error"] == "invalid_grant"
