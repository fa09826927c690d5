"""A patron in a real browser (Debian's Chromium, driven by Playwright) goes from the demo e-book
platform (demo/ebook) to the IdP's pages and back, as a newcomer does after ``make demo``.

The IdP is the ``live`` server (embedded backend); the platform runs in-process on another loopback
port, registered exactly as ``idp demo`` registers it. Fields are found by their labels, as a
screen reader finds them. Never ``playwright install``: the browser is the system's Chromium,
which .ci/run installs with apt; without it these tests skip here and fail in CI.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Locator, Page, expect
from werkzeug.serving import make_server

from demo.ebook.app import PlatformConfig
from demo.ebook.app import create_app as create_platform
from idp.demo import ensure_platform
from idp.registry import consents
from tests.flows.conftest import CHROMIUM, CHROMIUM_ARGS, LiveIdp, free_port  # noqa: F401 - as before
from tests.unit.factories import library, patron

pytestmark = pytest.mark.slow

PASSWORD = "correct horse battery"
PIN = "2468"
NEW_PASSWORD = "a much better passphrase"
LOGIN_FAILED = "Login failed. Check the card number and password and try again."
STEP_TIMEOUT_MS = 15_000  # a first request may wait for argon2 and the platform's discovery fetch


@dataclass
class Platform:
    url: str
    client_id: str


# -- fixtures -----------------------------------------------------------------------------------

# ``browser`` (one Chromium for the run) is in tests/flows/conftest.py, shared with every browser module.


def new_context(browser: Browser, locale: str) -> BrowserContext:
    context = browser.new_context(locale=locale)
    context.set_default_timeout(STEP_TIMEOUT_MS)
    # What the browser refused (a CSP violation, say) is otherwise invisible: print it, so a
    # failing test's captured output shows it.
    context.on("console", lambda message: print(f"browser console {message.type}: {message.text}")
               if message.type in {"error", "warning"} else None)
    return context


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    """A fresh browser profile (no cookies) whose language is English."""
    ctx = new_context(browser, "en-GB")
    try:
        yield ctx
    finally:
        ctx.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()


@pytest.fixture
def platform(live: LiveIdp) -> Iterator[Platform]:
    """The demo platform, registered as `idp demo` registers it, served on its own loopback port."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    with live.services.registry("test") as reg:
        client, _ = ensure_platform(reg, None, base_url)
    app = create_platform(PlatformConfig(issuer=live.url, client_id=client.client_id,
                                         client_secret=client.client_secret, base_url=base_url))
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Platform(base_url, client.client_id)
    finally:
        server.shutdown()
        thread.join(5)


def add_patron(live: LiveIdp, **fields: object) -> str:
    with live.services.registry("test") as reg:
        library(reg)
        _, card = patron(reg, **fields)
        return card.number


@pytest.fixture
def card(live: LiveIdp) -> str:
    return add_patron(live, password=PASSWORD, pin=PIN)


# -- steps a patron takes -----------------------------------------------------------------------

def start_at_platform(page: Page, platform: Platform, live: LiveIdp) -> None:
    """Home page, "Log in": the browser ends on the IdP's login form."""
    page.goto(f"{platform.url}/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Demo e-book platform (development only)")
    page.get_by_role("button", name="Log in with your library card").click()
    expect(page).to_have_url(re.compile(rf"^{re.escape(live.url)}/login\b"))


def log_in(page: Page, card: str, secret: str, *, button: str = "Log in") -> None:
    page.get_by_label("Card number").fill(card)
    page.get_by_label("Password", exact=True).fill(secret)
    page.get_by_role("button", name=button, exact=True).click()


def consent(page: Page) -> None:
    expect(page.locator("#facts")).to_contain_text("that you hold a valid library card")
    page.get_by_role("button", name="Share and continue").click()


def claim(page: Page, table: str, name: str) -> Locator:
    """The value cell of one claim in the platform's table (id-token or userinfo)."""
    row = page.locator(f"#{table} tbody tr").filter(has=page.get_by_role("rowheader", name=name, exact=True))
    return row.locator("td.value")


def expect_logged_in_at_platform(page: Page, platform: Platform) -> None:
    expect(page).to_have_url(f"{platform.url}/account")
    expect(claim(page, "id-token", "valid_patron")).to_have_text("true")
    expect(claim(page, "id-token", "acr")).to_have_text("password")
    expect(claim(page, "userinfo", "valid_patron")).to_have_text("true")


# -- the tests ----------------------------------------------------------------------------------

def test_a_patron_logs_in_to_the_demo_platform(page: Page, platform: Platform, live: LiveIdp, card: str,
                                               tmp_path: Path) -> None:
    start_at_platform(page, platform, live)
    log_in(page, card, PASSWORD)
    expect(page.get_by_role("heading", level=1)).to_contain_text("Demo e-book platform (development only)")
    consent(page)

    expect_logged_in_at_platform(page, platform)
    expect(claim(page, "id-token", "amr")).to_have_text('["pwd"]')
    expect(claim(page, "id-token", "aud")).to_have_text(platform.client_id)
    expect(claim(page, "id-token", "iss")).to_have_text(live.url)
    sub = claim(page, "id-token", "sub").inner_text()
    expect(claim(page, "userinfo", "sub")).to_have_text(sub)
    expect(page.locator("#minimum")).to_contain_text("never sees your name, birth date or address")
    # The platform learned a pseudonym and one fact: not the card number, name or birth date.
    learned = page.locator("main").inner_text()
    # Timestamps on the page may hold "1985" by chance: look for the birth date itself.
    assert card not in learned and "Kari" not in learned and "1985-03-12" not in learned and card not in sub

    shot = tmp_path / "demo-platform-account.png"
    page.screenshot(path=str(shot), full_page=True)
    data = shot.read_bytes()
    assert len(data) > 1000 and data.startswith(b"\x89PNG\r\n\x1a\n"), shot
    print(f"screenshot of the platform's account page: {shot}")


def test_a_patron_who_agreed_before_goes_from_the_login_form_straight_back(page: Page, platform: Platform,
                                                                           live: LiveIdp) -> None:
    with live.services.registry("test") as reg:
        library(reg)
        kari, card = patron(reg, password=PASSWORD)
        patron_id, number = kari.id, card.number
    with live.services.registry("test") as reg:
        consents.give_consent(reg, patron_id, platform.client_id, ["valid_patron"])
    start_at_platform(page, platform, live)
    log_in(page, number, PASSWORD)
    expect_logged_in_at_platform(page, platform)


def test_a_wrong_password_says_only_that_the_login_failed(page: Page, platform: Platform, live: LiveIdp,
                                                          card: str) -> None:
    start_at_platform(page, platform, live)
    log_in(page, card, "not the password")
    expect(page.get_by_role("alert")).to_have_text(LOGIN_FAILED)
    expect(page.get_by_label("Password", exact=True)).to_have_value("")
    expect(page.get_by_label("Card number")).to_have_value(card)

    # An unknown card gets the very same words: the page does not tell which cards exist.
    log_in(page, "N000000999", "not the password")
    expect(page.get_by_role("alert")).to_have_text(LOGIN_FAILED)
    expect(page.get_by_label("Password", exact=True)).to_have_value("")

    # The login for the platform is still under way: the right password carries on to its consent.
    log_in(page, card, PASSWORD)
    expect(page.locator("#facts")).to_contain_text("that you hold a valid library card")


def test_a_pin_on_the_web_is_explained(page: Page, platform: Platform, live: LiveIdp, card: str) -> None:
    start_at_platform(page, platform, live)
    log_in(page, card, PIN)
    help_text = page.locator("#pin-help")
    expect(help_text).to_have_attribute("role", "alert")
    expect(help_text).to_contain_text("A PIN cannot be used to log in on the web")
    expect(page.get_by_label("Password", exact=True)).to_have_value("")
    expect(page.get_by_text(LOGIN_FAILED)).to_have_count(0)


def test_a_flagged_password_is_changed_before_returning_to_the_platform(page: Page, platform: Platform,
                                                                        live: LiveIdp) -> None:
    card = add_patron(live, password=PASSWORD, password_must_change=True)
    start_at_platform(page, platform, live)
    log_in(page, card, PASSWORD)

    expect(page).to_have_url(re.compile(rf"^{re.escape(live.url)}/password/change\b"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Choose a new password")
    expect(page.get_by_role("status")).to_contain_text("must be changed before you continue")
    page.get_by_label("Current password", exact=True).fill(PASSWORD)
    page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
    page.get_by_label("Repeat the new password", exact=True).fill(NEW_PASSWORD)
    page.get_by_role("button", name="Save the new password").click()

    consent(page)
    expect_logged_in_at_platform(page, platform)


def test_the_login_page_is_in_bokmal_until_the_patron_picks_english(browser: Browser, platform: Platform,
                                                                   live: LiveIdp, card: str) -> None:
    context = new_context(browser, "nb-NO")
    try:
        page = context.new_page()
        start_at_platform(page, platform, live)
        expect(page.locator("html")).to_have_attribute("lang", "nb")
        expect(page.get_by_role("button", name="Logg inn", exact=True)).to_be_visible()
        expect(page.get_by_label("Lånenummer")).to_be_visible()

        page.get_by_role("link", name="English").click()
        expect(page.locator("html")).to_have_attribute("lang", "en")
        expect(page.get_by_role("button", name="Log in", exact=True)).to_be_visible()
        expect(page.get_by_role("button", name="Logg inn", exact=True)).to_have_count(0)

        # Still the same login for the platform, and the choice holds on the next page.
        log_in(page, card, PASSWORD)
        expect(page.locator("html")).to_have_attribute("lang", "en")
        expect(page.locator("#facts")).to_contain_text("that you hold a valid library card")
    finally:
        context.close()


def test_logging_out_at_the_platform_ends_the_library_login(page: Page, context: BrowserContext,
                                                            platform: Platform, live: LiveIdp, card: str) -> None:
    start_at_platform(page, platform, live)
    log_in(page, card, PASSWORD)
    consent(page)
    expect_logged_in_at_platform(page, platform)

    # Single sign-on: with only the platform's own session gone, "Log in" needs no password.
    context.clear_cookies(name="demo_ebook_session")
    page.goto(f"{platform.url}/")
    page.get_by_role("button", name="Log in with your library card").click()
    expect_logged_in_at_platform(page, platform)

    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(re.compile(rf"^{re.escape(platform.url)}/\?state="))
    expect(page.locator("#logged-out")).to_have_text("You are logged out of the platform and of the library login.")

    start_at_platform(page, platform, live)  # the login form again, not straight back
    expect(page.get_by_label("Card number")).to_be_visible()
