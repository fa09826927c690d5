"""bench/oidc.py runs end to end, prints its figures and cleans up after itself.

A tiny run (``--quick``) on each backend: the numbers are not judged here, only that every figure
is printed and nothing is left behind. The PostgreSQL + Redis run uses Redis logical database 15
of the test Redis server, which the benchmark empties with FLUSHDB before and after.
"""

from __future__ import annotations

import base64
import importlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.conftest import BACKENDS, POSTGRES_URL, REDIS_URL, unavailable

BENCH = Path(__file__).resolve().parents[2] / "bench" / "oidc.py"
# One line per figure, each starting with a number and a unit, and the note that the verify
# phase ran with the partner's limit raised.
FIGURES = (
    r"bare argon2id verify: [\d.]+/s",
    r"password logins: [\d.]+/s per worker",
    r"bare argon2 around this phase: [\d.]+/s just before, [\d.]+/s just after",
    r"login/argon2 ratio: [\d.]+ \(target >= 0\.9: (met|NOT met)\)",
    r"verify API: [\d.]+/s per worker",
    r"verify/argon2 ratio: [\d.]+ \(target >= 0\.9: (met|NOT met)\)",
    r"per-partner limit \(IDP_VERIFY_LIMIT_PER_CLIENT, default [^)]+\): set to .+ in the IdP's environment",
    r"token endpoint, code exchange \(RS256 id_token\): [\d.]+/s per worker",
    r"token endpoint, code exchange \(ES256 id_token\): [\d.]+/s per worker",
    r"token endpoint, refresh: [\d.]+/s per worker",
    r"minimal Flask app .*: [\d,]+/s",
    r"logins [\d.]+/s vs bare argon2 [\d.]+/s: ratio [\d.]+, target >= 0\.9: (met|NOT met)",
    r"verify API [\d.]+/s vs bare argon2 [\d.]+/s: ratio [\d.]+, target >= 0\.9: (met|NOT met)",
    r"code exchange \(RS256 id_token\) [\d.]+/s vs minimal Flask [\d,]+/s: ratio [\d.]+, target >= 0\.5: (met|NOT met)",
    r"code exchange \(ES256 id_token\) [\d.]+/s vs minimal Flask [\d,]+/s: ratio [\d.]+, target >= 0\.5: (met|NOT met)",
    r"worker CPU per answer: [\d.]+ ms, of which one argon2 verify is [\d.]+ ms",
    r"refresh [\d.]+/s vs minimal Flask [\d,]+/s: ratio [\d.]+, target >= 0\.5: (met|NOT met)",
    r"stack floor \(bench/floor_app\.py\), code exchange \(RS256 id_token\): [\d,]+/s",
    r"stack floor \(bench/floor_app\.py\), code exchange \(ES256 id_token\): [\d,]+/s",
    r"stack floor \(bench/floor_app\.py\), refresh: [\d,]+/s",
)
# Each token request's summary line is followed by its comparison with the stack floor.
FLOOR_SUMMARY = r"stack floor [\d,]+/s: the IdP does [\d.]+ of it; the floor itself is [\d.]+ of the minimal app"


def _bench_redis_url() -> str:
    parts = urlsplit(REDIS_URL)
    return urlunsplit(parts._replace(path="/15"))


def _arguments(backend: str) -> list[str]:
    if backend == "embedded":
        return ["--database-url", "sqlite", "--redis-url", "memory"]
    try:
        engine = create_engine(make_url(POSTGRES_URL))
        with engine.connect():
            pass
        engine.dispose()
    except Exception as exc:  # noqa: BLE001
        unavailable(f"PostgreSQL at {POSTGRES_URL}", exc)
    try:
        with redis.Redis.from_url(_bench_redis_url(), socket_connect_timeout=2) as client:
            client.ping()
    except redis.RedisError as exc:
        unavailable(f"Redis at {_bench_redis_url()}", exc)
    return ["--database-url", POSTGRES_URL, "--redis-url", _bench_redis_url()]


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_a_quick_run_prints_every_figure_and_cleans_up(backend: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IDP_")}
    result = subprocess.run([sys.executable, str(BENCH), "--quick", *_arguments(backend)], capture_output=True,
                            text=True, timeout=300, env=env, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for figure in FIGURES:
        assert re.search(figure, result.stdout), f"missing {figure!r} in:\n{result.stdout}"
    assert len(re.findall(FLOOR_SUMMARY, result.stdout)) == 3, result.stdout
    assert "failure:" not in result.stdout, result.stdout
    if backend != "embedded":
        name = re.search(r"database (idp_bench_oidc_\w+) dropped", result.stdout)
        assert name and "Redis database 15 flushed" in result.stdout, result.stdout
        engine = create_engine(make_url(POSTGRES_URL))
        with engine.connect() as connection:
            assert connection.scalar(text("SELECT count(*) FROM pg_database WHERE datname = :n"),
                                     {"n": name.group(1)}) == 0
        engine.dispose()
        with redis.Redis.from_url(_bench_redis_url()) as client:
            assert client.dbsize() == 0


def _floor_app() -> ModuleType:
    """bench/floor_app.py as a module (the bench directory is not a package)."""
    sys.path.insert(0, str(BENCH.parent))
    try:
        return importlib.import_module("floor_app")
    finally:
        sys.path.remove(str(BENCH.parent))


def test_the_floor_app_answers_only_its_client_and_signs_only_exchanges() -> None:
    floor_app = _floor_app()
    client = floor_app.create_app(floor_app.MemoryStore()).test_client()
    auth = (floor_app.CLIENT_ID, floor_app.CLIENT_SECRET)
    exchange = {"grant_type": "authorization_code", "code": "c" * 43, "redirect_uri": "http://127.0.0.1:9/callback"}
    for alg in ("ES256", "RS256"):
        body = client.post(f"/token/exchange/{alg}", data=exchange, auth=auth).get_json()
        header = json.loads(base64.urlsafe_b64decode(body["id_token"].split(".")[0] + "=="))
        assert header["alg"] == alg and body["refresh_token"] and body["access_token"]
    refreshed = client.post("/token/refresh", data={"grant_type": "refresh_token", "refresh_token": "r" * 43},
                            auth=auth).get_json()
    assert "id_token" not in refreshed and refreshed["refresh_token"]
    assert client.post("/token/refresh", data={"grant_type": "refresh_token", "refresh_token": "r"},
                       auth=(floor_app.CLIENT_ID, "wrong")).status_code == 401
    assert client.post("/token/exchange/HS256", data=exchange, auth=auth).status_code == 404


def test_the_floor_app_keeps_its_entry_when_it_drops_tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    floor_app = _floor_app()
    monkeypatch.setattr(floor_app.MemoryStore, "MAX_TOKENS", 5)
    client = floor_app.create_app(floor_app.MemoryStore()).test_client()
    refresh = {"grant_type": "refresh_token", "refresh_token": "r" * 43}
    statuses = {client.post("/token/refresh", data=refresh, auth=(floor_app.CLIENT_ID, floor_app.CLIENT_SECRET)
                            ).status_code for _ in range(10)}
    assert statuses == {200}
    assert client.post("/token/refresh", data=refresh, headers={"Authorization": "Basic %%%"}).status_code == 401
