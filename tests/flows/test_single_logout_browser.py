"""The logout page in Debian's Chromium when a service provider never answers: the page waits its
few seconds, goes on by itself, and the patron reads which service did not confirm. Both pages are
checked by axe-core.

The service provider's SingleLogoutService is an https host nobody serves, so its frame never
reports back, as with a service that is down.
"""

from __future__ import annotations

import time
from datetime import date

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, expect

from idp.saml import registry as sp_registry
from tests.flows.conftest import LiveIdp
from tests.flows.test_oidc_flow import card  # noqa: F401 (fixture)
from tests.saml.sps import Browser as ScriptedBrowser
from tests.saml.sps import OneLoginSp, post_form

pytestmark = pytest.mark.slow

# The logout page's wait for services that do not answer (docs/logout.md).
WAIT = 5


def test_a_service_that_never_answers_is_named_after_the_wait(live: LiveIdp, card: str, browser: Browser) -> None:
    sp = OneLoginSp(live.url, "books.example")
    with live.services.registry("test") as reg:
        (added,) = sp_registry.add(reg, sp.metadata(), claims=["valid_patron"], dpa_signed=date(2026, 1, 1))
        added.name = "E-books"
    scripted = ScriptedBrowser(live.url)
    url, request_id = sp.login_url()
    assert sp.acs(post_form(scripted.through(scripted.go(url), card).text), request_id).is_authenticated()

    context = browser.new_context(locale="en")
    try:
        # The same browser session: the login the SP was given is the one Chromium now ends.
        context.add_cookies([{"name": c.name, "value": c.value or "", "url": live.url} for c in scripted.http.cookies])
        page = context.new_page()
        page.goto(f"{live.url}/")
        page.get_by_role("button", name="Log out").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Logging out")
        started = time.monotonic()
        expect(page.get_by_role("listitem")).to_have_text(["E-books"])
        results = Axe().run(page)
        assert results.violations_count == 0, results.generate_report()

        expect(page.get_by_role("heading", level=1)).to_have_text("You are logged out", timeout=(WAIT + 10) * 1000)
        waited = time.monotonic() - started
        assert WAIT - 1 <= waited <= WAIT + 5, f"went on after {waited:.1f} s"
        expect(page.get_by_role("alert")).to_contain_text("did not confirm")
        expect(page.get_by_role("alert").get_by_role("listitem")).to_have_text(["E-books"])
        results = Axe().run(page)
        assert results.violations_count == 0, results.generate_report()
    finally:
        context.close()
