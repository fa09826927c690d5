"""Engine and transactions. SQLite is the embedded default, PostgreSQL the production store."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session, sessionmaker


def make_engine(url: str, **kwargs: object) -> Engine:
    # Statement parameters carry names, e-mails and ciphertexts: keep them out of exception
    # messages and logs.
    kwargs.setdefault("hide_parameters", True)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        # pysqlite's own transaction handling is off (isolation_level=None) so that every
        # transaction starts with BEGIN IMMEDIATE: it takes the write lock up front, instead of
        # failing with "database is locked" when a reader later tries to write after another
        # writer committed. SQLite is the single-process embedded default; that is fine there.
        engine = create_engine(url, connect_args={"isolation_level": None}, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _begin_immediate)
        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        # Plain postgresql:// means psycopg 3 here, the driver we install.
        url = str(parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False))
    engine = create_engine(url, **kwargs)
    _ping_when_idle(engine)
    return engine


# A connection used within this many seconds is handed out without a ping.
PING_IDLE_AFTER = 10.0


def _ping_when_idle(engine: Engine) -> None:
    """Ping a pooled connection before use only if it has been idle a while.

    SQLAlchemy's pool_pre_ping costs a round trip on every checkout, about as much as the query
    a login or token request came for. A connection in steady use is known to be alive; one that
    sat idle (a quiet night, a database restart, a firewall dropping idle sessions) is pinged,
    and a dead one is replaced before the request sees it. After a database restart a busy worker
    may still fail one request per worker: SQLAlchemy then discards the whole pool.
    """

    def stamp(_dbapi_connection: Any, record: Any, *_: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    def ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("idle_since")
        if since is not None and time.monotonic() - since < PING_IDLE_AFTER:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:  # any failure means: do not hand this one out
            raise DisconnectionError("a pooled connection did not answer its ping") from exc

    event.listen(engine, "connect", stamp)
    event.listen(engine, "checkin", stamp)
    event.listen(engine, "checkout", ping_if_idle)


def _begin_immediate(connection: Connection) -> None:
    # Services.read runs single statements in autocommit: those need no transaction, let alone the lock.
    if connection.get_execution_options().get("isolation_level") != "AUTOCOMMIT":
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # Foreign keys are off by default in SQLite; WAL lets readers run beside the one writer.
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit when the block succeeds, roll everything back when it raises."""
    with factory() as session, session.begin():
        yield session
