"""A real IdP on a loopback port, for tests that speak HTTP to it with independent clients."""

from __future__ import annotations

import socket
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import sync_playwright
from werkzeug.serving import make_server

from idp import create_app
from idp.services import Services, build_services
from idp.settings import Settings
from tests.conftest import REQUIRE_SERVICES, FakeClock


# One Chromium for the whole run, shared by every browser test module: Playwright's sync API runs
# one event loop per thread, so a second session-scoped browser (a module's own copy of this
# fixture, even an imported one) fails with "using Playwright Sync API inside the asyncio loop".
# Modules must therefore take ``browser`` from here, never define or import it.
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-background-networking", "--disable-gpu",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """The system's Chromium (never `playwright install`); skipped here without it, failed in CI."""
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing (apt-get install chromium; never `playwright install`)"
        if REQUIRE_SERVICES:
            pytest.fail(f"{message}; CI requires it (see .ci/run)", pytrace=False)
        pytest.skip(f"{message}; the browser tests are skipped here but required in CI")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LiveIdp:
    url: str
    services: Services


@pytest.fixture
def live(settings: Settings, services: Services, clock: FakeClock) -> Iterator[LiveIdp]:
    """The app served over HTTP by werkzeug in a thread, sharing the test's database and state."""
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    live_services = build_services(settings.model_copy(update={"issuer": issuer}))
    live_services.state = services.state  # same Redis prefix (or memory) as the test's own services
    app = create_app(services=live_services, config={"RATELIMIT_KEY_PREFIX": f"idp-test-{uuid.uuid4().hex}"})
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield LiveIdp(issuer, live_services)
    finally:
        server.shutdown()
        thread.join(5)
        live_services.engine.dispose()
