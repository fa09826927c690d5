"""Back-channel logout through ``idp serve`` as an operator runs it: production mode on PostgreSQL +
Redis, two gunicorn workers, each with its own delivery thread. Logouts queued in the register (by
another process, as the orchestration's commit would) reach the relying party's endpoint once each,
as logout tokens that verify against the served JWKS, although both workers poll the same queue.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
import requests

from idp.oidc.backchannel import POLL_SECONDS, enqueue
from idp.services import build_services
from idp.settings import load_settings
from tests.conftest import fresh_postgres_database
from tests.serving import free_port, idp_ok, production_env, running
from tests.unit.test_backchannel import Endpoint, serve, verified_with

pytestmark = pytest.mark.slow

LOGOUTS = 12


def test_two_served_workers_deliver_each_queued_logout_once(tmp_path: Path, redis_url: str) -> None:
    port = free_port()
    with fresh_postgres_database("idp_serve_bc") as database, serve(Endpoint(delay=0.05)) as rp_endpoint:
        env = production_env(tmp_path, port, IDP_DATABASE_URL=database, IDP_REDIS_URL=redis_url,
                             IDP_REDIS_PREFIX=f"idp-test-bc-{uuid.uuid4().hex[:12]}:")
        client_id = idp_ok("rp", "add-oidc", "Film platform", "--redirect-uri", "https://film.example/cb",
                           "--backchannel-logout-uri", rp_endpoint.url(), "--dpa-signed", "2026-01-01",
                           env=env)["client_id"]
        serving = ["serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "2"]
        with running(serving, env, tmp_path / "serve.log") as (base, process):
            services = build_services(load_settings(env))
            try:
                with services.registry("test") as reg:
                    for n in range(LOGOUTS):
                        enqueue(reg, client_id=client_id, sub=f"sub-{n}", sid=f"sid-{n}")
            finally:
                services.close()
            deadline = time.monotonic() + 3 * POLL_SECONDS + 10
            while len(rp_endpoint.tokens()) < LOGOUTS and time.monotonic() < deadline:
                time.sleep(0.1)
            time.sleep(POLL_SECONDS + 1)  # another round of both workers' polls: nothing sent again
            jwks = requests.get(f"{base}/jwks", timeout=5).json()
        assert process.returncode == 0, (tmp_path / "serve.log").read_text()

    received = [verified_with(jwks, token, client_id, issuer=base) for token in rp_endpoint.tokens()]
    assert sorted(claims["sid"] for _, claims in received) == sorted(f"sid-{n}" for n in range(LOGOUTS))
    assert all(header["typ"] == "logout+jwt" for header, _ in received)
