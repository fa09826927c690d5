"""bench/api.py runs end to end on PostgreSQL + Redis, prints every figure and cleans up after itself.

A tiny run (``--quick``: a few thousand patrons, two-second phases); the numbers are not judged here,
only that each figure is printed, no request failed, and the database and Redis are left empty.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import redis
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.conftest import POSTGRES_URL
from tests.flows.test_bench_oidc import _arguments, _bench_redis_url

BENCH = Path(__file__).resolve().parents[2] / "bench" / "api.py"
FIGURES = (
    r"register: [\d,]+ patrons bulk-loaded",
    r"client credentials tokens: [\d,]+/s",
    r"lookups at the maximum rate: [\d,]+/s",
    r"lookups at half that rate: p50 [\d.]+ ms, p99 [\d.]+ ms at [\d,]+/s",
    r"minimal Flask app .*: [\d,]+/s",
    r"minimal Flask app at the lookups' half rate: p50 [\d.]+ ms, p99 [\d.]+ ms",
    r"client credentials tokens [\d,]+/s vs minimal Flask [\d,]+/s: ratio [\d.]+",
    r"lookups [\d,]+/s vs minimal Flask [\d,]+/s: ratio [\d.]+",
    r"worker CPU per answer: [\d.]+ ms a token, [\d.]+ ms a lookup, [\d.]+ ms a minimal-app answer",
    r"lookup latency at half the maximum rate: .*; target p99 < 10 ms: (met|NOT met)",
)


@pytest.mark.slow
def test_a_quick_run_prints_every_figure_and_cleans_up() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IDP_")}
    result = subprocess.run([sys.executable, str(BENCH), "--quick", *_arguments("postgres+redis")],
                            capture_output=True, text=True, timeout=300, env=env, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for figure in FIGURES:
        assert re.search(figure, result.stdout), f"missing {figure!r} in:\n{result.stdout}"
    assert "failure:" not in result.stdout and not re.search(r"[1-9]\d* failed", result.stdout), result.stdout
    name = re.search(r"database (idp_bench_oidc_\w+) dropped", result.stdout)
    assert name and "Redis database 15 flushed" in result.stdout, result.stdout
    engine = create_engine(make_url(POSTGRES_URL))
    with engine.connect() as connection:
        assert connection.scalar(text("SELECT count(*) FROM pg_database WHERE datname = :n"), {"n": name.group(1)}) == 0
    engine.dispose()
    with redis.Redis.from_url(_bench_redis_url()) as client:
        assert client.dbsize() == 0
