"""Two-step login in a real browser (Debian's Chromium via Playwright, embedded backend): the TOTP
enrolment page at My account, and the step-up prompt on the way to a service that needs ``mfa``.

Fields, the QR code and buttons are found by their roles and labels, as a screen reader finds
them. The one-time code that opens the enrolment page comes from the development outbox (the
live IdP runs in development mode without an SMTP host). Never ``playwright install``.
"""

from __future__ import annotations

import email
import email.policy
import re
import time

import pyotp
import pytest
from playwright.sync_api import Page, expect

from sqlalchemy import select

from idp import relying_parties
from idp.auth import totp
from idp.registry.models import Patron
from tests.flows.conftest import LiveIdp
from tests.flows.test_browser import (PASSWORD, Platform, add_patron, claim, consent, log_in,
                                      start_at_platform)
from tests.flows.test_browser import context, page, platform  # noqa: F401 - fixtures (browser: conftest)
from tests.unit.test_otp_delivery import one_time_code_in
from tests.unit.test_totp import STEP_SECONDS

pytestmark = pytest.mark.slow


def outbox_code(live: LiveIdp, before: set[str]) -> str:
    outbox = live.services.settings.home / "var" / "outbox"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        new = [p for p in sorted(outbox.glob("*.eml")) if p.name not in before] if outbox.is_dir() else []
        if new:
            message = email.message_from_bytes(new[-1].read_bytes().split(b"\n", 1)[1], policy=email.policy.default)
            return one_time_code_in(message.get_content())  # type: ignore[union-attr]
        time.sleep(0.05)
    raise AssertionError("no mail in the development outbox")


def outbox_names(live: LiveIdp) -> set[str]:
    outbox = live.services.settings.home / "var" / "outbox"
    return {p.name for p in outbox.glob("*")} if outbox.is_dir() else set()


def test_the_totp_enrolment_page(page: Page, live: LiveIdp) -> None:
    card = add_patron(live, password=PASSWORD)
    page.goto(f"{live.url}/login?next=/account")
    log_in(page, card, PASSWORD)
    expect(page.get_by_role("heading", level=1)).to_have_text("My account")
    page.get_by_role("link", name="Two-step login").click()
    expect(page.locator("#totp-state")).to_have_text("Two-step login is off.")
    page.get_by_role("link", name="Set up two-step login").click()

    # First a one-time code, by e-mail or SMS: the choice is a labelled group of radio buttons.
    expect(page.get_by_role("group", name="Where should we send the code?")).to_be_visible()
    expect(page.get_by_role("radio", name=re.compile(r"^E-mail to k"))).to_be_checked()
    before = outbox_names(live)
    page.get_by_role("button", name="Send the code").click()
    expect(page.get_by_role("status")).to_contain_text("We have sent a one-time code to k")
    page.get_by_label("One-time code").fill(outbox_code(live, before))
    page.get_by_role("button", name="Confirm the code").click()

    # The enrolment page: a QR code with a text alternative, and the key to type by hand.
    expect(page.get_by_role("heading", level=1)).to_have_text("Set up two-step login")
    qr = page.get_by_role("img", name=re.compile("QR code for adding your library login"))
    expect(qr).to_be_visible()
    assert qr.locator("svg").bounding_box()["width"] > 100  # type: ignore[index]
    key = page.locator("#totp-key")
    expect(key).to_be_visible()
    expect(key).to_have_text(re.compile(r"^([A-Z2-7]{4} ){7}[A-Z2-7]{4}$"))
    expect(page.get_by_text("30 seconds either way")).to_be_visible()

    app = pyotp.TOTP(key.inner_text().replace(" ", ""))
    page.get_by_label("Code from the app").fill("000000" if app.now() != "000000" else "111111")
    page.get_by_role("button", name="Turn on two-step login").click()
    expect(page.get_by_role("alert")).to_contain_text("That code does not match")
    page.get_by_label("Code from the app").fill(app.now())
    page.get_by_role("button", name="Turn on two-step login").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("Your recovery codes")
    expect(page.locator("#recovery-codes li")).to_have_count(10)
    page.get_by_role("link", name="I have kept my recovery codes: continue").click()
    expect(page.get_by_role("status")).to_have_text("Two-step login is set up.")
    expect(page.locator("#totp-state")).to_have_text("on")


def test_the_step_up_prompt_on_the_way_to_a_service(page: Page, platform: Platform,
                                                    live: LiveIdp) -> None:
    card = add_patron(live, password=PASSWORD)
    with live.services.registry("test") as reg:
        relying_parties.get(reg, platform.client_id).min_acr = "mfa"
        patron_id = reg.session.scalars(select(Patron.id)).one()
        enrolment = totp.start_enrolment(reg, live.services.state, patron_id, account=card, issuer="test")
    app = pyotp.TOTP(enrolment.secret)
    with live.services.registry("test") as reg:
        assert totp.confirm_enrolment(reg, live.services.state, patron_id, app.now()) is not None

    start_at_platform(page, platform, live)
    expect(page.locator("#mfa-help")).to_contain_text("This service requires two-step login")
    log_in(page, card, PASSWORD)

    expect(page).to_have_url(re.compile(rf"^{re.escape(live.url)}/login/second-factor\b"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Two-step login")
    expect(page.locator("#stepup-why")).to_contain_text("asks for more than a password")
    code_field = page.get_by_label("Code from your authenticator app")
    expect(code_field).to_have_attribute("autocomplete", "one-time-code")
    expect(code_field).to_have_attribute("inputmode", "numeric")
    code_field.fill(app.now())  # the code that confirmed the enrolment: used already
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("alert")).to_contain_text("used already")
    page.get_by_label("Code from your authenticator app").fill(app.at(time.time() + STEP_SECONDS))
    page.get_by_role("button", name="Continue").click()

    consent(page)
    expect(page).to_have_url(f"{platform.url}/account")
    expect(claim(page, "id-token", "acr")).to_have_text("mfa")
    expect(claim(page, "id-token", "amr")).to_have_text(re.compile(r'^\["pwd", ?"otp"\]$'))
