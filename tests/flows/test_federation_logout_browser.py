"""Single logout with a university in a real browser (Debian's Chromium, driven by Playwright):
the logout button's form is answered by a redirect to the university's SingleLogoutService, which
Chromium allows only when our Content-Security-Policy's form-action lists the university; the
university's answer brings the browser back to our "You are logged out" page. Never
``playwright install``: the browser is the system's Chromium (see test_browser.py).
"""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.fakes.university import FakeUniversity
from tests.flows.conftest import LiveIdp
# Fixtures (browser itself comes from tests/flows/conftest.py: one Chromium per run).
from tests.flows.test_browser import context, page  # noqa: F401
from tests.flows.test_federation_flow import NIN_CODE, giulia, unimore, university  # noqa: F401

pytestmark = pytest.mark.slow


def test_a_member_logs_out_of_the_university_too(page: Page, live: LiveIdp, university: FakeUniversity,
                                                 giulia: int) -> None:
    university.attributes["schacPersonalUniqueCode"] = [NIN_CODE]
    page.goto(f"{live.url}/login")
    page.get_by_role("link", name="Log in with UniMoRe account").click()
    expect(page.get_by_text("You are logged in.")).to_be_visible()
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("You are logged out")
    assert page.url == f"{live.url}/logged-out"  # through the university's logout and back
    assert university.logouts and university.logouts[-1]["session_indexes"] == [university.issued[-1]["session_index"]]
    page.goto(f"{live.url}/")
    expect(page.get_by_text("You are logged in.")).to_have_count(0)
