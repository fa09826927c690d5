"""The register API's browsable page (/api/v1/docs) in Debian's Chromium, checked by axe-core (issue 15,
"Conventions"): a library-system developer using a screen reader reads it as well as anyone.

axe-core comes inside the axe-playwright-python wheel (no CDN, no npm); ``browser`` is the suite's one
Chromium (tests/flows/conftest.py).
"""

from __future__ import annotations

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, expect

from tests.flows.conftest import LiveIdp

pytestmark = pytest.mark.slow


def test_the_api_page_has_no_accessibility_violations(live: LiveIdp, browser: Browser) -> None:
    context = browser.new_context(locale="en")
    try:
        page = context.new_page()
        page.goto(f"{live.url}/api/v1/docs")
        expect(page.get_by_role("heading", level=1)).to_be_visible()
        expect(page.locator("section[aria-labelledby^='op-']").first).to_be_visible()
        results = Axe().run(page)
        assert results.violations_count == 0, results.generate_report()
        # The same check finds what it should: an image without text, a page without language or title.
        page.set_content('<html><body><img src="card.png"></body></html>')
        assert Axe().run(page).violations_count >= 2
    finally:
        context.close()
