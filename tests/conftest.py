"""Fixtures shared by the whole suite.

Two backends: the embedded default (SQLite + in-memory state) and the production pair
(PostgreSQL + Redis). A test that takes the register (``backend``, ``settings``, ``services``,
``reg``) runs on the embedded default only, unless it is marked ``@pytest.mark.backends`` (a
function, or a module's ``pytestmark``): then it runs once on each (``pytest_generate_tests``
below). ``IDP_TEST_ALL_BACKENDS=1`` runs every such test on both, as the suite did before.

Which tests run on both, and why (the rule: the backend must be able to change the outcome):
- the register where our SQL meets the dialect: constraints and partial unique indexes, the
  card-series overlap guard and its races, concurrent and COPY bulk imports, locks, timestamps
  and dates compared in SQL (tests/unit: patrons, series, bulk_import, memberships, guardians,
  purge, claims_release, secret_address; flows/test_federation_registry; a few storage
  round-trips in unit/test_relying_parties), and the pooled connections (unit/test_db);
- the migrations (unit/test_migrations) and the notice queue that claims rows with
  ``SKIP LOCKED`` (unit/test_notifications);
- the state store, Redis Lua scripts against process memory (unit/test_state), and what is
  built on it: one-time codes and TOTP replay guards (unit/test_otp, unit/test_totp), refresh
  races (unit/test_refresh_race), token families, replays and logouts racing requests
  (flows/test_token_lifecycle), the session index that ends other sessions
  (flows/test_password_sessions), single logout's single-use requests and logout marks
  (flows/test_federation_logout), and in flows/test_oidc_flow the round trips counted, a whole
  login and the code replays;
- the rate limits (flask-limiter's Redis storage against memory) and a second worker sharing the
  store, in web/test_login and web/test_verify_api; the health check's report (web/test_pages);
  the CLI ending sessions through Redis (cli/test_reset_password);
- real processes: ``idp serve`` with two workers on PostgreSQL + Redis (flows/test_served_oidc,
  its own ``served`` parameter) and the OIDC benchmark (flows/test_bench_oidc, its own).
Everything else (validation, pages, protocol details, the CLI's wording, SAML, browsers and
accessibility) runs on the embedded default only: it reaches the database through the same
register code, which the tests above already check on both backends.

When PostgreSQL or Redis cannot be reached the second run is skipped with a visible reason on a
developer's machine, and FAILS in CI (``CI`` set) or with ``IDP_TEST_REQUIRE_SERVICES=1``: it is
never skipped silently.

Parallel runs (pytest-xdist, ``-n 2``) are safe: each worker migrates a PostgreSQL database of its
own (``postgres_database``), every test gets its own Redis key prefix, rate-limit prefix, SQLite
file, temporary directory and free ports; the few tests that need a Redis logical database of
their own (11, 14, 15) are one test each, on one backend.
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
ALL_BACKENDS = bool(os.environ.get("IDP_TEST_ALL_BACKENDS"))


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


def _parametrised_by_the_test(metafunc: pytest.Metafunc) -> bool:
    """A test that lists the backends itself (@pytest.mark.parametrize("backend", ...))."""
    for mark in metafunc.definition.iter_markers("parametrize"):
        names = mark.args[0] if mark.args else mark.kwargs.get("argnames", ())
        if isinstance(names, str):
            names = [n.strip() for n in names.split(",")]
        if "backend" in names:
            return True
    return False


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Both backends for tests marked ``backends``; the embedded default for the rest."""
    if "backend" not in metafunc.fixturenames or _parametrised_by_the_test(metafunc):
        return
    both = ALL_BACKENDS or metafunc.definition.get_closest_marker("backends") is not None
    metafunc.parametrize("backend", BACKENDS if both else BACKENDS[:1], indirect=True)


@pytest.fixture
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


# Emptying the register before each PostgreSQL test. A TRUNCATE of every table (what this was)
# costs ~38 ms on PostgreSQL 15 here even when the tables are empty: it gives each of the 16
# tables and 41 indexes a new file. DELETE in foreign-key order (children first) in one round trip,
# plus putting the used sequences back to their start (what RESTART IDENTITY did), costs ~2 ms.
_EMPTY_THE_REGISTER = "; ".join(
    [f"DELETE FROM {t.name}" for t in reversed(Base.metadata.sorted_tables)]  # noqa: S608 - our own table names
    + ["SELECT setval(quote_ident(schemaname) || '.' || quote_ident(sequencename), start_value, false) "
       "FROM pg_sequences WHERE schemaname = current_schema() AND last_value IS NOT NULL"])


def _wipe_postgres(services: Services) -> None:
    with services.engine.begin() as connection:
        connection.exec_driver_sql(_EMPTY_THE_REGISTER)


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
