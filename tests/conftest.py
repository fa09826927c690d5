"""Fixtures shared by the whole suite.

Every test that touches the register runs twice: on the embedded default (SQLite + in-memory
state) and on the production pair (PostgreSQL + Redis). When PostgreSQL or Redis cannot be
reached the second run is skipped with a visible reason on a developer's machine, and FAILS in
CI (``CI`` set) or with ``IDP_TEST_REQUIRE_SERVICES=1``: it is never skipped silently.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from idp import migrate
from idp.db import make_engine
from idp.keys import KeyRing
from idp.registry.context import Registry
from idp.registry.models import Base
from idp.services import Services, build_services
from idp.settings import Settings, load_settings

POSTGRES_URL = os.environ.get("IDP_TEST_POSTGRES_URL", "postgresql+psycopg://127.0.0.1:5432/test")
REDIS_URL = os.environ.get("IDP_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
REQUIRE_SERVICES = bool(os.environ.get("CI") or os.environ.get("IDP_TEST_REQUIRE_SERVICES"))
BACKENDS = ["embedded", "postgres+redis"]


def unavailable(what: str, error: Exception) -> None:
    message = f"{what} unreachable ({type(error).__name__}: {error})"
    if REQUIRE_SERVICES:
        pytest.fail(f"{message}; CI requires it (start it, see .ci/run)", pytrace=False)
    pytest.skip(f"{message}; this backend is skipped here but required in CI")


@dataclass
class FakeClock:
    """A controllable clock for rules that depend on time (3-year purge, children turning 15)."""

    now: datetime

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@contextmanager
def fresh_postgres_database(prefix: str) -> Iterator[str]:
    """Create a database of our own on the test server; yield its URL; drop it afterwards."""
    admin_url = make_url(POSTGRES_URL)
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    try:
        admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001
        unavailable(f"PostgreSQL at {admin_url.render_as_string()}", exc)
    try:
        yield admin_url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A fresh database for this test run, migrated once, dropped at the end."""
    with fresh_postgres_database("idp_test") as url:
        engine = make_engine(url)
        migrate.upgrade(engine)
        engine.dispose()
        yield url


@pytest.fixture(scope="session")
def redis_url() -> str:
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        unavailable(f"Redis at {REDIS_URL}", exc)
    return REDIS_URL


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file that each test copies (migrating per test would be slow)."""
    path = tmp_path_factory.mktemp("template") / "idp.sqlite3"
    engine = make_engine(f"sqlite:///{path}")
    migrate.upgrade(engine)
    engine.dispose()
    return path


@pytest.fixture(scope="session")
def shared_keys_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Signing keys made once per run: RSA-3072 generation per test would cost a second each."""
    keys_dir = tmp_path_factory.mktemp("keys")
    KeyRing.ensure(keys_dir)
    return keys_dir


def _test_settings(tmp_path: Path, **overrides: object) -> Settings:
    return load_settings({}, mode="development", home=str(tmp_path), argon2_time_cost=1,
                         argon2_memory_kib=1024, **overrides)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def settings(backend: str, tmp_path: Path, request: pytest.FixtureRequest, sqlite_template: Path,
             shared_keys_dir: Path) -> Settings:
    if backend == "embedded":
        db_file = tmp_path / "var" / "idp.sqlite3"
        db_file.parent.mkdir(parents=True, exist_ok=True)
        db_file.write_bytes(sqlite_template.read_bytes())
        return _test_settings(tmp_path, keys_dir=str(shared_keys_dir))
    database_url = request.getfixturevalue("postgres_database")
    return _test_settings(tmp_path, database_url=database_url, redis_url=request.getfixturevalue("redis_url"),
                          keys_dir=str(shared_keys_dir))


def _wipe_postgres(services: Services) -> None:
    tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
    with services.engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 11, 23, 12, 0, tzinfo=UTC))


@pytest.fixture
def services(settings: Settings, clock: FakeClock) -> Iterator[Services]:
    svc = build_services(settings)
    svc.clock = clock
    if svc.engine.dialect.name == "postgresql":
        _wipe_postgres(svc)
    if settings.redis_url:
        svc.state = type(svc.state)(settings.redis_url, prefix=f"idp-test:{uuid.uuid4().hex}:")
    yield svc
    svc.close()


@pytest.fixture
def reg(services: Services) -> Iterator[Registry]:
    """One register transaction for the test, committed at the end (as a request would)."""
    with services.registry("test") as registry:
        yield registry
