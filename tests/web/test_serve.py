"""The server over real HTTP, started the way a newcomer or an operator starts it: ``idp`` commands.

Each test gets its own IDP_HOME and port, runs the installed console script as a subprocess
and always stops what it started.
"""

from __future__ import annotations

import json
import re
import socket
import time
from pathlib import Path

import pytest
import requests

from tests.cli.test_cli import error_line
from tests.serving import free_port, get, idp_env, run_idp, running

pytestmark = pytest.mark.slow


def test_demo_then_serve_answers_over_http(tmp_path: Path) -> None:
    env = idp_env(tmp_path)
    seeded = run_idp("demo", "--no-serve", env=env)
    assert seeded.returncode == 0, seeded.stderr
    # A newcomer needs a card number to log in with, next to the person it belongs to.
    assert re.search(r"^\s+N\d{9}\s+Kari, adult", seeded.stdout, re.MULTILINE), seeded.stdout

    log = tmp_path / "serve.log"
    with running(["serve", "--port", str(free_port()), "--workers", "1"], env, log) as (base, process):
        status, headers, body = get(f"{base}/")
        assert status == 200 and headers["Content-Type"].startswith("text/html")
        assert "<h1>Library login</h1>" in body
        assert headers["X-Frame-Options"] == "DENY" and "Content-Security-Policy" in headers

        status, headers, body = get(f"{base}/healthz")
        assert status == 200 and headers["Content-Type"] == "application/json"
        assert json.loads(body) == {"status": "ok", "checks": {"database": "ok", "state": "memory"}}

        # Query strings carry codes and tokens on real logins: the access log must leave them out.
        assert get(f"{base}/?code=one-time-code-4711")[0] == 200
    assert process.returncode == 0, f"SIGTERM should shut down cleanly:\n{log.read_text()}"
    output = log.read_text()
    assert '"GET /healthz" 200' in output, "the access log should record requests"
    assert "one-time-code-4711" not in output


def test_a_slow_client_does_not_hold_up_the_worker_for_everyone_else(tmp_path: Path) -> None:
    """One worker, and a client that sends half its headers and waits: with the default threads the
    worker still answers others at once (a sync worker would wait out its 30 s timeout)."""
    env = idp_env(tmp_path)
    assert run_idp("demo", "--no-serve", env=env).returncode == 0
    port = free_port()
    with (running(["serve", "--port", str(port), "--workers", "1"], env, tmp_path / "serve.log") as (base, _),
          socket.create_connection(("127.0.0.1", port)) as slow):
        slow.sendall(b"GET /login HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept-Language: e")  # headers unfinished
        time.sleep(0.3)  # the worker has taken the slow connection by now
        started = time.monotonic()
        status, _, body = get(f"{base}/healthz")
        assert status == 200 and json.loads(body)["status"] == "ok"
        assert time.monotonic() - started < 3


def test_serve_refuses_a_thread_count_of_no_use(tmp_path: Path) -> None:
    result = run_idp("serve", "--threads", "0", env=idp_env(tmp_path), timeout=30)
    assert result.returncode != 0 and "--threads" in result.stderr and "0" in result.stderr


def test_demo_prints_the_demo_patrons_and_serves(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "demo.log"
    # The fake ID-porten on a free port: its default (5002) is one per machine, and workers run side by side.
    with running(["demo", "--port", str(port), "--no-platform", "--idporten-port", str(free_port())], idp_env(tmp_path),
                 log) as (base, _):
        status, _, body = get(f"{base}/healthz")
        assert status == 200 and json.loads(body)["status"] == "ok"
    output = log.read_text()
    for who in ("Kari, adult", "Ola, secret address", "Emma, child of Kari", "Giulia, local BiblioMo card"):
        assert who in output, f"{who!r} missing from the demo output:\n{output}"
    assert f"serving on http://127.0.0.1:{port}" in output


def test_serve_in_production_without_secrets_refuses_in_one_line(tmp_path: Path) -> None:
    started = time.monotonic()
    result = run_idp("serve", "--port", str(free_port()), env=idp_env(tmp_path, mode="production"), timeout=20)
    assert result.returncode != 0
    assert time.monotonic() - started < 15, "a refusal should be immediate"
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "IDP_SECRET_KEY" in lines[0], result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_serve_on_an_unmigrated_database_says_to_upgrade(tmp_path: Path) -> None:
    result = run_idp("serve", "--port", str(free_port()), env=idp_env(tmp_path), timeout=20)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "idp db upgrade" in lines[0], result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_serve_without_redis_refuses_a_second_worker_in_one_line(tmp_path: Path) -> None:
    """Without IDP_REDIS_URL each worker would keep its own sessions and codes: a login started in
    one would fail in the other, so more than one worker is refused before anything starts."""
    result = run_idp("serve", "--port", str(free_port()), "--workers", "2", env=idp_env(tmp_path), timeout=20)
    line = error_line(result.returncode, result.stdout, result.stderr)
    assert "IDP_REDIS_URL" in line and "--workers" in line


FORWARDED = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "idp.example", "X-Forwarded-For": "192.0.2.7"}


@pytest.mark.parametrize(("hops", "scheme_and_host", "client"), [(0, "http://127.0.0.1:{port}", "127.0.0.1"),
                                                                  (1, "https://idp.example", "192.0.2.7")])
def test_idp_proxy_hops_alone_decides_whether_forwarded_headers_count(
        tmp_path: Path, hops: int, scheme_and_host: str, client: str) -> None:
    """A request from 127.0.0.1 (where a proxy would be) claiming https, another host and another
    client: with no proxy configured nothing of it counts, with one proxy all of it does."""
    env = {**idp_env(tmp_path), "IDP_PROXY_HOPS": str(hops)}
    assert run_idp("db", "upgrade", env=env).returncode == 0
    port = free_port()
    log = tmp_path / "serve.log"
    with running(["serve", "--port", str(port)], env, log) as (base, _):
        # A doubled slash is answered with a redirect to the canonical URL, which Werkzeug builds from
        # the scheme and host the app sees.
        response = requests.get(f"{base}/.well-known//openid-configuration", headers=FORWARDED,
                                allow_redirects=False, timeout=5)
    expected = scheme_and_host.format(port=port) + "/.well-known/openid-configuration"
    assert response.status_code == 308 and response.headers["Location"] == expected
    logged = [line for line in log.read_text().splitlines() if "/.well-known//openid-configuration" in line]
    assert len(logged) == 1 and logged[0].startswith(f'{client} "GET '), logged
