"""Serve the IdP on a loopback port with extra settings (e.g. an upstream provider to use)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from werkzeug.serving import make_server

from idp import create_app
from idp.services import Services, build_services
from idp.settings import Settings
from tests.conftest import FakeClock
from tests.flows.conftest import LiveIdp


@contextmanager
def serve_idp(settings: Settings, services: Services, clock: FakeClock, port: int,
              **updates: Any) -> Iterator[LiveIdp]:
    """As the ``live`` fixture, on a chosen port, with ``updates`` applied to the settings.

    The register's clock is the test's: ages (a child turning 15) are computed on a known day.
    """
    issuer = f"http://127.0.0.1:{port}"
    # Validated again, as the app would be configured in earnest: a bad combination fails here.
    merged = Settings(**{**settings.model_dump(), "issuer": issuer, **updates})
    live_services = build_services(merged)
    live_services.state = services.state
    live_services.clock = clock
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
