"""A reset link followed in a real browser (Debian's Chromium): the token never reaches a server.

The librarian runs ``idp patron reset-password`` against the live IdP's register; the e-mail goes
through a real SMTP server on loopback; the browser opens the link from it. Every request line the
server receives is taken from its own access log (werkzeug logs each raw request line, query
string included, as a default nginx log would), and none may hold the token.
"""

from __future__ import annotations

import logging
import re

import pytest
from playwright.sync_api import Browser, expect

from idp.registry import cards, patrons
from tests.cli.test_cli import Idp, add_patron, succeeded
from tests.cli.test_cli import cli_env, idp, oslo  # noqa: F401 - fixtures
from tests.cli.test_reset_password import NEW_PASSWORD, OLD_PASSWORD, reset_link, smtp_env
from tests.flows.conftest import LiveIdp
from tests.unit.test_otp_delivery import SmtpSink
from tests.unit.test_otp_delivery import smtp_sink  # noqa: F401 - fixture

pytestmark = pytest.mark.slow


def test_the_reset_link_works_in_a_browser_and_its_token_reaches_no_access_log(
        browser: Browser, live: LiveIdp, idp: Idp, oslo: object, smtp_sink: SmtpSink,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="werkzeug")
    card = add_patron(idp, password=OLD_PASSWORD)
    succeeded(idp("patron", "reset-password", card, env={**smtp_env(smtp_sink), "IDP_ISSUER": live.url}))
    page_url, token = reset_link(smtp_sink)
    assert page_url == f"{live.url}/password/reset"

    context = browser.new_context(locale="en-GB")
    try:
        page = context.new_page()
        page.goto(f"{page_url}#{token}")
        expect(page.get_by_label("New password", exact=True)).to_be_visible()
        assert token not in page.url and "#" not in page.url  # gone from the address bar (and history)
        page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
        page.get_by_label("Repeat the new password", exact=True).fill(NEW_PASSWORD)
        page.get_by_role("button", name="Save the new password").click()
        expect(page.locator("#reset-done")).to_contain_text("Your new password is saved")
        history = page.evaluate("history.length")
        for _ in range(history):  # no entry the patron can go back to holds the token
            assert token not in page.url
            page.go_back()
    finally:
        context.close()

    request_lines = [r.getMessage() for r in caplog.records if r.name == "werkzeug"]
    # The log is really captured: the code's POST is in it (werkzeug may colour the line).
    assert any(re.search(r'POST /password/reset HTTP/1\.1\S*" 303', line) for line in request_lines), request_lines
    assert not [line for line in request_lines if token in line]
    with live.services.registry("test") as reg:
        on_file = cards.find_secret_on_file(reg, card, "password")
        assert patrons.check_secret(reg, on_file, NEW_PASSWORD).ok
        assert not patrons.check_secret(reg, on_file, OLD_PASSWORD).ok
