"""The real ``idp serve`` under hostile input and an outage of its stores, as an operator runs it."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
from sqlalchemy.engine import make_url

from tests.conftest import fresh_postgres_database
from tests.serving import free_port, get, idp_env, idp_ok, running

pytestmark = pytest.mark.slow


def test_crlf_in_request_values_forges_no_line_in_the_server_log(tmp_path: Path) -> None:
    env = idp_env(tmp_path)
    idp_ok("db", "upgrade", env=env)
    log = tmp_path / "serve.log"
    forged = "\r\nFAKE LOG LINE: admin logged in"
    with running(["serve", "--port", str(free_port()), "--workers", "1"], env, log) as (base, _):
        query = urllib.parse.urlencode({"client_id": "nobody" + forged, "redirect_uri": "https://x" + forged,
                                        "response_type": "code", "scope": "openid"})
        assert get(f"{base}/authorize?{query}")[0] == 400
        assert get(f"{base}/nowhere{urllib.parse.quote(forged)}")[0] == 404  # the access log's path
    output = log.read_text()
    assert output.count("FAKE LOG LINE") >= 2, f"the test needs log lines carrying the values:\n{output}"
    assert [line for line in output.splitlines() if line.lstrip().startswith("FAKE")] == [], output


# -- an outage of Redis ---------------------------------------------------------------------------

CALLBACK = "http://127.0.0.1:8765/callback"
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


@contextmanager
def private_redis(port: int) -> Iterator[subprocess.Popen[bytes]]:
    """A Redis of the test's own (the shared one must stay up for everyone else), stopped afterwards."""
    process = subprocess.Popen([REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                "--appendonly", "no", "--daemonize", "no"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                if redis.Redis(port=port, socket_connect_timeout=0.5).ping():
                    break
            except redis.RedisError:
                if time.monotonic() > deadline:
                    pytest.fail(f"redis-server did not answer on port {port}")
                time.sleep(0.05)
        yield process
    finally:
        process.terminate()
        process.wait(timeout=10)


def call(method: str, url: str, http: requests.Session | None = None, **kwargs: Any) -> requests.Response:
    return (http or requests.Session()).request(method, url, allow_redirects=False, timeout=15,
                                               headers={"Accept-Language": "en", **kwargs.pop("headers", {})},
                                               **kwargs)


def assert_unavailable(response: requests.Response) -> None:
    assert response.status_code == 503, (response.status_code, response.text[:300])
    assert response.headers["Retry-After"] == "30"


def assert_machine_endpoints_unavailable(base: str, auth: tuple[str, str]) -> None:
    """The token, revocation and introspection endpoints and the verify API answer their protocol's 503."""
    token = call("POST", f"{base}/token", data={"grant_type": "authorization_code", "code": "x",
                                                 "redirect_uri": CALLBACK}, auth=auth)
    assert_unavailable(token)
    assert token.json()["error"] == "temporarily_unavailable"
    for path in ("/revoke", "/introspect"):  # RFC 7009 and 7662: the token endpoint's errors
        answer = call("POST", f"{base}{path}", data={"token": "x"}, auth=auth)
        assert_unavailable(answer)
        assert answer.json()["error"] == "temporarily_unavailable"
    verify = call("POST", f"{base}/api/v1/verify", json={"card_number": "N000000001", "password": "x"}, auth=auth)
    assert_unavailable(verify)
    assert verify.json()["error"] == "temporarily_unavailable" and verify.json()["message"]


def outage_lines(log: Path, store: str) -> list[str]:
    return [line for line in log.read_text().splitlines() if f"{store} unavailable" in line]


def test_an_outage_of_redis_answers_503_in_each_protocols_format_and_service_resumes(tmp_path: Path) -> None:
    redis_port, port = free_port(), free_port()
    with fresh_postgres_database("idp_outage") as database_url, private_redis(redis_port) as store:
        env = idp_env(tmp_path)
        env.update(IDP_DATABASE_URL=database_url, IDP_REDIS_URL=f"redis://127.0.0.1:{redis_port}/0",
                   IDP_ISSUER=f"http://127.0.0.1:{port}")
        idp_ok("db", "upgrade", env=env)
        client = idp_ok("rp", "add-oidc", "Demo e-books", "--redirect-uri", CALLBACK, "--dpa-signed", "2026-01-01",
                        env=env)
        auth = (client["client_id"], client["client_secret"])
        authorize = {"client_id": client["client_id"], "redirect_uri": CALLBACK, "response_type": "code",
                     "scope": "openid", "state": "s1", "code_challenge_method": "S256",
                     "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"}
        log = tmp_path / "serve.log"
        with running(["serve", "--port", str(port), "--workers", "1"], env, log) as (base, _):
            returning = requests.Session()  # a patron who was here before: a session cookie
            assert call("GET", f"{base}/login", returning).status_code == 200 and returning.cookies

            store.terminate()
            store.wait(timeout=10)
            before = len(outage_lines(log, "Redis"))
            for http in (None, returning):
                page = call("GET", f"{base}/login", http)
                assert_unavailable(page)
                assert "text/html" in page.headers["Content-Type"] and "briefly unavailable" in page.text
                back = call("GET", f"{base}/authorize", http, params=authorize)
                assert back.status_code == 303, (back.status_code, back.text[:300])
                error = urllib.parse.parse_qs(urllib.parse.urlsplit(back.headers["Location"]).query)
                assert back.headers["Location"].startswith(CALLBACK)
                assert error["error"] == ["temporarily_unavailable"] and error["state"] == ["s1"]
            # A SAML service provider's browser gets the page (SAML has no error to send without the session).
            saml = call("GET", f"{base}/saml/sso/resume", returning)
            assert_unavailable(saml)
            assert "text/html" in saml.headers["Content-Type"] and "briefly unavailable" in saml.text
            assert_machine_endpoints_unavailable(base, auth)
            health = call("GET", f"{base}/healthz")
            assert_unavailable(health)
            assert health.json()["checks"]["state"] == "unreachable"
            # One line for each failed request (login and authorize twice, SAML, token, revoke, introspect,
            # verify), no traceback.
            assert len(outage_lines(log, "Redis")) - before == 9, log.read_text()
            assert "Traceback" not in log.read_text()

            with private_redis(redis_port):
                assert call("GET", f"{base}/login", returning).status_code == 200
                assert call("GET", f"{base}/healthz").status_code == 200


# -- an outage of PostgreSQL ----------------------------------------------------------------------

class TcpProxy:
    """A loopback port in front of the shared PostgreSQL that the test can cut and restore (the
    server itself serves everyone's tests): cutting closes the port and every connection through it."""

    def __init__(self, port: int, target: tuple[str, int]) -> None:
        self.port, self.target = port, target
        self._listener: socket.socket | None = None
        self._open: list[socket.socket] = []

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        assert self._listener is not None
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread; close alone would not
        self._listener.close()
        for sock in self._open:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        self._open.clear()

    def _accept(self, listener: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while True:
                near, _ = listener.accept()
                far = socket.create_connection(self.target)
                self._open += [near, far]
                for source, sink in ((near, far), (far, near)):
                    threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)


def test_an_outage_of_postgresql_answers_503_and_service_resumes(tmp_path: Path) -> None:
    port = free_port()
    with fresh_postgres_database("idp_outage") as direct_url:
        url = make_url(direct_url)
        proxy = TcpProxy(free_port(), (url.host or "127.0.0.1", url.port or 5432))
        proxy.start()
        env = idp_env(tmp_path)
        env.update(IDP_DATABASE_URL=url.set(port=proxy.port).render_as_string(hide_password=False),
                   IDP_ISSUER=f"http://127.0.0.1:{port}")
        idp_ok("db", "upgrade", env=env)
        client = idp_ok("rp", "add-oidc", "Demo e-books", "--redirect-uri", CALLBACK, "--dpa-signed", "2026-01-01",
                        env=env)
        auth = (client["client_id"], client["client_secret"])
        log = tmp_path / "serve.log"
        try:
            with running(["serve", "--port", str(port), "--workers", "1"], env, log) as (base, _):
                assert call("GET", f"{base}/login").status_code == 200
                proxy.cut()
                page = call("GET", f"{base}/login")
                assert_unavailable(page)
                assert "text/html" in page.headers["Content-Type"] and "briefly unavailable" in page.text
                # No client record to check the redirect URI against: the patron gets the page, no redirect.
                authorize = call("GET", f"{base}/authorize", params={
                    "client_id": client["client_id"], "redirect_uri": CALLBACK, "response_type": "code",
                    "scope": "openid"})
                assert_unavailable(authorize)
                assert "Location" not in authorize.headers
                assert_machine_endpoints_unavailable(base, auth)
                health = call("GET", f"{base}/healthz")
                assert_unavailable(health)
                assert health.json()["checks"]["database"] == "unreachable"
                assert len(outage_lines(log, "database")) == 6, log.read_text()  # + revoke, introspect
                assert "Traceback" not in log.read_text()

                proxy.start()
                deadline = time.monotonic() + 10
                while call("GET", f"{base}/login").status_code != 200:
                    assert time.monotonic() < deadline, log.read_text()
                    time.sleep(0.2)
        finally:
            proxy.cut()
