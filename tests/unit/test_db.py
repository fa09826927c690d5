"""Pooled PostgreSQL connections: pinged only after sitting idle, and replaced if dead."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.exc import OperationalError

from idp import db
from idp.registry.models import Library
from idp.services import Services
from tests.unit.factories import library

pytestmark = pytest.mark.backends  # pooled PostgreSQL connections; readers beside a writer


def _kill_pooled_connection(url: str, engine: object) -> None:
    with engine.connect() as connection:  # type: ignore[attr-defined]
        pid = connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    admin.dispose()


def test_an_idle_connection_that_died_is_replaced_before_use(postgres_database: str,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(db, "PING_IDLE_AFTER", 0.0)  # every pooled connection counts as idle
    engine = db.make_engine(postgres_database, pool_size=1)
    try:
        _kill_pooled_connection(postgres_database, engine)
        with engine.connect() as connection:
            assert connection.execute(text("SELECT 1")).scalar_one() == 1
    finally:
        engine.dispose()


def test_a_connection_in_steady_use_is_not_pinged(postgres_database: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The control: without the idle ping the same dead connection reaches the query and fails,
    which is what the ping above saved the request from (and the cost saved here)."""
    monkeypatch.setattr(db, "PING_IDLE_AFTER", 3600.0)
    engine = db.make_engine(postgres_database, pool_size=1)
    try:
        _kill_pooled_connection(postgres_database, engine)
        with pytest.raises(OperationalError), engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        with engine.connect() as connection:  # the pool was discarded: the next request works
            assert connection.execute(text("SELECT 1")).scalar_one() == 1
    finally:
        engine.dispose()


def test_a_hot_read_runs_beside_a_writer_without_waiting_for_its_lock(services: Services) -> None:
    """Services.read (the login page's federations) needs no transaction: on SQLite it must not
    queue behind a writer's lock, and on either backend it sees only what was committed."""
    isils = select(Library.isil).order_by(Library.isil)
    with services.registry("test") as reg:
        library(reg)  # an open write transaction: SQLite's write lock is taken
        started = time.monotonic()
        assert services.read(isils) == []
        assert time.monotonic() - started < 2  # SQLite's busy timeout is 5 s
    assert [row.isil for row in services.read(isils)] == ["NO-2030000"]
