"""The fake ID-porten of `make demo` (demo/idporten, DEVELOPMENT ONLY): the IdP logs in through it
exactly as through ID-porten, every page it shows says DEVELOPMENT ONLY, and it refuses to run
outside development mode."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
import requests
from werkzeug.serving import make_server

from demo.idporten.app import ConfigError, FakeConfig, create_app
from idp.devtools import idporten as dev_idporten
from idp.errors import ConfigError as IdpConfigError
from idp.services import Services
from idp.settings import Settings, load_settings
from tests.conftest import FakeClock
from tests.fakes.live import serve_idp
from tests.flows.conftest import LiveIdp, free_port
from tests.nin import person
from tests.unit.factories import ADULT_BORN, library, patron

CHECKOUT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


@pytest.fixture
def demo_pair(settings: Settings, services: Services, clock: FakeClock) -> Iterator[tuple[LiveIdp, str]]:
    idp_port, fake_port = free_port(), free_port()
    config = FakeConfig(issuer=f"http://127.0.0.1:{fake_port}", client_id="patron-idp-demo", client_secret="s3cret",
                        redirect_uris=(f"http://127.0.0.1:{idp_port}/idporten/callback",),
                        logout_uris=(f"http://127.0.0.1:{idp_port}/idporten/logged-out",),
                        people=({"pid": person(ADULT_BORN), "label": "Kari (demo)"},))
    server = make_server("127.0.0.1", fake_port, create_app(config), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with serve_idp(settings, services, clock, idp_port, idporten_issuer=config.issuer,
                       idporten_client_id=config.client_id, idporten_client_secret=config.client_secret) as live:
            yield live, config.issuer
    finally:
        server.shutdown()
        thread.join(5)


def test_the_idp_logs_in_through_the_demo_fake(demo_pair: tuple[LiveIdp, str]) -> None:
    live, fake = demo_pair
    with live.services.registry("test") as reg:
        library(reg)
        patron(reg)
    http = requests.Session()
    http.headers["Accept-Language"] = "en"
    page = http.get(f"{live.url}/idporten/login", timeout=10)
    assert page.url.startswith(f"{fake}/authorize") and page.status_code == 200
    assert "DEVELOPMENT ONLY" in page.text and "Kari (demo)" in page.text
    ticket = re.search(r'name="ticket" value="([^"]+)"', page.text).group(1)
    done = http.post(f"{fake}/authorize", data={"ticket": ticket, "pid": person(ADULT_BORN), "acr":
                                                "idporten-loa-high", "decision": "login"}, timeout=10)
    assert done.url == f"{live.url}/" and "You are logged in." in done.text
    # And logging out goes through the fake's logout and back.
    out = http.post(f"{live.url}/logout", data={"csrf_token": re.search(
        r'name="csrf_token" value="([^"]+)"', done.text).group(1)}, timeout=10)
    assert "You are logged out" in out.text


def test_every_page_of_the_fake_says_development_only(demo_pair: tuple[LiveIdp, str]) -> None:
    _, fake = demo_pair
    for path in ("/", "/authorize?client_id=nobody", "/logout"):
        page = requests.get(f"{fake}{path}", timeout=5)
        assert "DEVELOPMENT ONLY" in page.text and page.headers["X-Development-Only"] == "fake ID-porten"
    assert requests.get(f"{fake}/.well-known/openid-configuration", timeout=5).json()["development_only"] is True


def test_the_fake_refuses_to_run_outside_development() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IDP_", "DEMO_"))}
    env.update(PYTHONPATH=str(CHECKOUT), DEMO_IDPORTEN_ISSUER="http://127.0.0.1:5999", DEMO_IDPORTEN_CLIENT_ID="c",
               DEMO_IDPORTEN_CLIENT_SECRET="s", DEMO_IDPORTEN_REDIRECT_URIS="http://127.0.0.1:5000/idporten/callback")
    refused = subprocess.run([sys.executable, "-m", "demo.idporten.app"], env={**env, "IDP_MODE": "production"},
                             capture_output=True, text=True, timeout=30, cwd=CHECKOUT)
    assert refused.returncode == 2 and "runs only with IDP_MODE=development" in refused.stderr
    with pytest.raises(ConfigError, match="loopback"):
        FakeConfig(issuer="https://idporten.example", client_id="c", client_secret="s", redirect_uris=("x",))


def test_the_idp_never_points_production_at_the_fake(tmp_path: Path) -> None:
    production = load_settings({}, home=str(tmp_path), secret_key="x" * 32, data_key="A" * 43)
    fake = dev_idporten.DevIdPorten("http://127.0.0.1:5002", "c", "s")
    with pytest.raises(IdpConfigError):
        dev_idporten.settings_for(production, fake)
    with pytest.raises(IdpConfigError):
        dev_idporten.start(production)
    # Nor can an operator: production refuses a plain-http ID-porten, loopback or not.
    with pytest.raises(IdpConfigError, match="IDP_IDPORTEN_ISSUER must use https in production"):
        load_settings({}, home=str(tmp_path), secret_key="x" * 32, data_key="A" * 43,
                      idporten_issuer="http://127.0.0.1:5002", idporten_client_id="c", idporten_client_secret="s")


def test_idp_demo_starts_the_fake_as_a_process(settings: Settings, tmp_path: Path) -> None:
    port = free_port()
    fake = dev_idporten.start(settings, port)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                discovery = requests.get(f"{fake.issuer}/.well-known/openid-configuration", timeout=2).json()
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline, "the fake ID-porten did not start"
                time.sleep(0.2)
        assert discovery["issuer"] == fake.issuer and discovery["development_only"] is True
        pointed = dev_idporten.settings_for(settings, fake)
        assert pointed.idporten_issuer == fake.issuer and pointed.idporten_enabled
        assert pointed.idporten_client_secret is not None
        assert pointed.idporten_client_secret.get_secret_value() == fake.client_secret
        labels = [p["label"] for p in dev_idporten.people(date(2026, 11, 23))]
        assert any("has a library card" in label for label in labels)
    finally:
        dev_idporten.stop(fake)
    assert fake.process is not None and fake.process.poll() is not None
