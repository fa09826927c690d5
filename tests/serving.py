"""Real ``idp`` processes for the tests: the console script as an operator runs it, its own IDP_HOME
and port, always stopped afterwards. Shared by the tests of ``idp serve`` and ``idp demo`` and the
protocol flows run through them."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.cli.test_cli import fields

IDP = str(Path(sys.executable).parent / "idp")
# Only how long to wait at most: a server that answers sooner is used at once. Generous, because two
# workers (pytest -n 2) starting gunicorn, Chromium and pip builds on two cores can take 15 s and more.
STARTUP_SECONDS = 60


def idp_env(home: Path, *, mode: str = "development") -> dict[str, str]:
    # IDP_* from the outer shell would silently change what is tested; the rest (PATH...) is kept.
    env = {k: v for k, v in os.environ.items() if not k.startswith("IDP_")}
    env.update(IDP_MODE=mode, IDP_HOME=str(home), PYTHONUNBUFFERED="1")
    if mode == "development":
        env.update(IDP_ARGON2_TIME_COST="1", IDP_ARGON2_MEMORY_KIB="1024")
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_idp(*args: str, env: dict[str, str], timeout: float = 60, stdin: str | None = None
            ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([IDP, *args], env=env, input=stdin, capture_output=True, text=True, timeout=timeout,
                          check=False)


def idp_ok(*args: str, env: dict[str, str], stdin: str | None = None) -> dict[str, str]:
    """Run an operator command that must succeed; its ``key: value`` output."""
    result = run_idp(*args, env=env, stdin=stdin)
    assert result.returncode == 0, f"idp {' '.join(args)}: exit {result.returncode}\n{result.stderr}"
    return fields(result.stdout)


def production_env(home: Path, port: int, **settings: str) -> dict[str, str]:
    """Production mode as the README's "Running in production" sets it up, on a loopback issuer
    (plain http is allowed there): fresh secrets from ``idp keys new-secret``, signing keys, the
    SAML key and the schema. ``settings`` are further IDP_* variables (database, Redis...)."""
    env = idp_env(home, mode="production")
    env.update(IDP_ISSUER=f"http://127.0.0.1:{port}", **settings)
    # Independent steps run at once: each command spends most of its second starting up.
    with ThreadPoolExecutor(3) as pool:
        env["IDP_SECRET_KEY"], env["IDP_DATA_KEY"] = pool.map(
            lambda _: run_idp("keys", "new-secret", env=env).stdout.strip(), range(2))
        list(pool.map(lambda command: idp_ok(*command, env=env), [["keys", "rotate"], ["saml", "new-key"],
                                                                   ["db", "upgrade"]]))
    return env


def get(url: str) -> tuple[int, dict[str, str], str]:
    try:
        # English pages, as a browser set to English would get them (the default is bokmål).
        request = urllib.request.Request(url, headers={"Accept-Language": "en"})  # noqa: S310 - our own test server
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - as above
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read().decode()


@contextmanager
def running(args: list[str], env: dict[str, str], log: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """Start ``idp ARGS`` (which must serve on ``--port``), wait for /healthz, stop it afterwards."""
    port = args[args.index("--port") + 1]
    base = f"http://127.0.0.1:{port}"
    with log.open("wb") as out:
        # A session of its own so that gunicorn's workers go down with it, never left behind.
        process = subprocess.Popen([IDP, *args], env=env, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        try:
            wait_until_healthy(base, process, log)
            yield base, process
        finally:
            stop(process)


def wait_until_healthy(base: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the server exited with {process.returncode} before answering:\n{log.read_text()}")
        try:
            if get(f"{base}/healthz")[0] == 200:
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.2)
    pytest.fail(f"/healthz did not answer 200 within {STARTUP_SECONDS} s:\n{log.read_text()}")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)
