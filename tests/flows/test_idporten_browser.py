"""ID-porten login and self-registration in a real browser (Debian's Chromium, driven by
Playwright): from the demo e-book platform to the IdP's login page, through the fake ID-porten
(tests/fakes/idporten.py), and back with acr ``idporten-loa-substantial``.

Fields are found by their labels and buttons and links by their names, as a screen reader finds
them. Never ``playwright install``: the browser is the system's Chromium (see test_browser.py).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date

import pytest
from playwright.sync_api import Browser, Page, expect

from idp.registry import patrons as patrons_svc
from idp.services import Services
from idp.settings import Settings
from tests.conftest import FakeClock
from tests.fakes.idporten import FakeIdPorten, running_idporten
from tests.fakes.live import serve_idp
from tests.flows.conftest import LiveIdp, free_port
# Fixtures (browser itself comes from tests/flows/conftest.py: one Chromium per run).
from tests.flows.test_browser import (Platform, claim, consent, context, new_context,  # noqa: F401
                                      page, platform, start_at_platform)
from tests.nin import person
from tests.unit.factories import ADULT_BORN, library, patron

pytestmark = pytest.mark.slow

NEWCOMER_BORN = date(1990, 5, 17)


@pytest.fixture
def idporten() -> Iterator[FakeIdPorten]:
    with running_idporten() as fake:
        yield fake


@pytest.fixture
def live(settings: Settings, services: Services, clock: FakeClock, idporten: FakeIdPorten) -> Iterator[LiveIdp]:
    port = free_port()
    client = idporten.register(f"http://127.0.0.1:{port}/idporten/callback",
                               f"http://127.0.0.1:{port}/idporten/logged-out")
    with serve_idp(settings, services, clock, port, idporten_issuer=idporten.url,
                   idporten_client_id=client.client_id, idporten_client_secret=client.secret) as live_idp:
        with live_idp.services.registry("test") as reg:
            library(reg, name="Oslo public library")
            library(reg, "NO-4601000", "Bergen public library")
        yield live_idp


def expect_idporten_level_at_platform(page: Page, platform: Platform) -> None:
    expect(page).to_have_url(f"{platform.url}/account")
    expect(claim(page, "id-token", "valid_patron")).to_have_text("true")
    expect(claim(page, "id-token", "acr")).to_have_text("idporten-loa-substantial")
    expect(claim(page, "id-token", "amr")).to_have_text('["TestID"]')


def test_a_patron_logs_in_with_idporten_from_the_platform(page: Page, platform: Platform, live: LiveIdp,
                                                          idporten: FakeIdPorten) -> None:
    with live.services.registry("test") as reg:
        patron(reg)
    idporten.person = person(ADULT_BORN)
    start_at_platform(page, platform, live)
    page.get_by_role("link", name="Log in with ID-porten").click()
    consent(page)
    expect_idporten_level_at_platform(page, platform)


def test_a_newcomer_registers_with_idporten_and_goes_on_to_the_platform(page: Page, platform: Platform,
                                                                        live: LiveIdp, idporten: FakeIdPorten) -> None:
    idporten.person = person(NEWCOMER_BORN)
    start_at_platform(page, platform, live)
    page.get_by_role("link", name="Log in with ID-porten").click()

    expect(page).to_have_url(f"{live.url}/register")
    expect(page.get_by_role("heading", level=1)).to_have_text("Get your library card")
    expect(page.get_by_role("status")).to_contain_text("ID-porten has confirmed who you are.")
    # A mistake is shown by the field, and what was typed stays.
    page.get_by_label("Full name").fill("Nora Ny")
    page.get_by_label("Home library").select_option(label="Bergen public library")
    page.get_by_label("E-mail address").fill("nora-at-example.org")
    page.get_by_label("Mobile phone number").fill("+47 912 34 567")
    page.get_by_role("button", name="Create my library card").click()
    expect(page.locator("#email-error")).to_have_text("Enter an e-mail address like name@example.no.")
    expect(page.get_by_label("E-mail address")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("Full name")).to_have_value("Nora Ny")

    page.get_by_label("E-mail address").fill("nora@example.org")
    page.get_by_role("button", name="Create my library card").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Your library card is ready")
    number = page.locator("#card-number").inner_text()
    assert re.fullmatch(r"N\d{9}", number)
    page.get_by_role("link", name="Continue").click()
    consent(page)
    expect_idporten_level_at_platform(page, platform)
    with live.services.registry("test") as reg:
        nora = patrons_svc.find_by_national_id(reg, person(NEWCOMER_BORN))
        assert nora is not None and nora.cards[0].number == number and nora.home_library.isil == "NO-4601000"


def test_a_broken_answer_from_idporten_shows_a_clear_page(page: Page, platform: Platform, live: LiveIdp,
                                                          idporten: FakeIdPorten) -> None:
    idporten.person = person(ADULT_BORN)
    idporten.bad_signature = True
    start_at_platform(page, platform, live)
    page.get_by_role("link", name="Log in with ID-porten").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("The ID-porten login did not succeed")
    expect(page.get_by_role("alert")).to_contain_text("could not be verified, so you are not logged in")
    expect(page.get_by_role("alert")).to_contain_text("Its signature is not valid.")
    expect(page.get_by_role("link", name="Try again with ID-porten")).to_be_visible()


def test_the_registration_page_is_in_bokmal(browser: Browser, platform: Platform, live: LiveIdp,
                                            idporten: FakeIdPorten) -> None:
    idporten.person = person(NEWCOMER_BORN)
    ctx = new_context(browser, "nb-NO")
    try:
        nb_page = ctx.new_page()
        start_at_platform_nb(nb_page, platform, live)
        nb_page.get_by_role("link", name="Logg inn med ID-porten").click()
        expect(nb_page.locator("html")).to_have_attribute("lang", "nb")
        expect(nb_page.get_by_role("heading", level=1)).to_have_text("Få bibliotekkortet ditt")
        for label in ("Fullt navn", "Hjemmebibliotek", "E-postadresse", "Mobilnummer"):
            expect(nb_page.get_by_label(label)).to_be_visible()
        expect(nb_page.get_by_role("button", name="Opprett bibliotekkortet mitt")).to_be_visible()
    finally:
        ctx.close()


def start_at_platform_nb(page: Page, platform: Platform, live: LiveIdp) -> None:
    page.goto(f"{platform.url}/")
    page.get_by_role("button", name="Log in with your library card").click()
    expect(page).to_have_url(re.compile(rf"^{re.escape(live.url)}/login\b"))
