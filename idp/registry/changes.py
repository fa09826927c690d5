"""The change feed: what changed for a library's patrons, so its own system keeps its copy current and
erases what the register erased.

The register's functions write an event in the transaction of the change itself (``record``), one per
library the patron is a member of at that moment; a library system reads its events in order with
``list_changes``. Events hold ids and a kind, never personal data, and are kept 90 days
(``erase_old_changes``, run by the daily purge).

Order and "at least once": events are read in the order of the transaction that wrote them
(PostgreSQL's transaction id, then the event id). On PostgreSQL the feed shows only events of
transactions older than every transaction of this database still running, so a slow commit can never
be passed by the cursor; SQLite has one writer at a time, so its ids commit in order anyway. The price: while a
transaction runs, events of later ones wait for it (``settled``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import BigInteger, Text, cast, delete, func, insert, select, text, tuple_

from idp.errors import IdpError, ValidationError
from idp.registry.context import Registry
from idp.registry.models import CHANGE_KINDS, ChangeEvent, Patron

RETENTION = timedelta(days=90)
MAX_LIMIT = 1000
_LAST_ID = 2**63 - 1
_LAST_SECOND = int(datetime(9999, 12, 31, tzinfo=UTC).timestamp())  # datetime's own limit
_INSERT = insert(ChangeEvent.__table__)


class CursorExpired(IdpError):
    """The cursor is older than the feed's retention: events after it may be gone."""

    code = "cursor_expired"
    http_status = 410


@dataclass(frozen=True)
class Cursor:
    """Where a reader stands: after the event (txid, id); ``as_of`` is when that position was current."""

    txid: int
    id: int
    as_of: datetime

    def encode(self) -> str:
        return f"{self.txid}.{self.id}.{int(self.as_of.timestamp())}"

    @classmethod
    def parse(cls, text: str) -> Cursor:
        parts = text.split(".")
        if len(parts) != 3 or not all(p.isascii() and p.isdigit() and len(p) <= 19 for p in parts):
            raise ValidationError("That is not a cursor this feed gave out; start again without one.")
        txid, event_id, seconds = (int(p) for p in parts)
        if max(txid, event_id) > _LAST_ID or seconds > _LAST_SECOND:
            raise ValidationError("That is not a cursor this feed gave out; start again without one.")
        return cls(txid, event_id, datetime.fromtimestamp(seconds, UTC))


@dataclass(frozen=True)
class Change:
    cursor: str
    patron_id: int
    kind: str
    at: datetime


@dataclass(frozen=True)
class ChangePage:
    changes: list[Change]
    next: str


def record(reg: Registry, patron_id: int, library_ids: Iterable[int], kind: str) -> None:
    """Write ``kind`` for ``patron_id`` to each library's feed, in the caller's transaction."""
    if kind not in CHANGE_KINDS:
        raise ValueError(f"unknown change kind {kind!r}")
    now = reg.now()
    for library_id in sorted(set(library_ids)):
        reg.session.execute(_INSERT.values(txid=_current_txid(reg)),
                            {"library_id": library_id, "patron_id": patron_id, "kind": kind, "at": now})


def record_for_members(reg: Registry, patron: Patron, kind: str) -> None:
    """``record`` for every library the patron is a member of now."""
    record(reg, patron.id, (m.library_id for m in patron.memberships), kind)


def list_changes(reg: Registry, library_id: int, after: str | None, limit: int) -> ChangePage:
    """The library's events after the cursor (from the oldest kept without one), oldest first.

    Raises CursorExpired for a cursor older than the retention (the reader resynchronises) and
    ValidationError for one this feed never gave out.
    """
    if not 1 <= limit <= MAX_LIMIT:
        raise ValidationError(f"limit is a whole number from 1 to {MAX_LIMIT}.")
    now = reg.now()
    start = Cursor.parse(after) if after is not None else Cursor(0, 0, now)
    if start.as_of < now - RETENTION:
        raise CursorExpired("This cursor is older than the 90 days the feed keeps: events after it may have been "
                            "erased. Resynchronise this library's patrons, then read the feed again without a cursor.")
    horizon = _horizon(reg)
    query = (select(ChangeEvent).where(ChangeEvent.library_id == library_id,
                                       tuple_(ChangeEvent.txid, ChangeEvent.id) > tuple_(start.txid, start.id))
             .order_by(ChangeEvent.txid, ChangeEvent.id).limit(limit))
    if horizon is not None:
        query = query.where(ChangeEvent.txid < horizon)
    events = list(reg.session.scalars(query))
    found = [Change(Cursor(e.txid, e.id, e.at).encode(), e.patron_id, e.kind, e.at) for e in events]
    if len(events) == limit:
        return ChangePage(found, found[-1].cursor)
    # All of this library's events up to the horizon were read: the next read starts there, and the
    # cursor stays current even for a library whose patrons do not change for months.
    position = max((start.txid, start.id), _watermark(reg, horizon))
    return ChangePage(found, Cursor(*position, as_of=now).encode())


def settled(reg: Registry) -> bool:
    """Every committed event can be read now: no running transaction holds the horizon back.

    On PostgreSQL the horizon is the database's oldest running writer, so a long transaction (a bulk
    import's batch, say) delays the feed while it runs; nothing is lost."""
    horizon = _horizon(reg)
    if horizon is None:
        return True
    last = reg.session.scalar(select(func.max(ChangeEvent.txid)))
    return last is None or int(last) < horizon


def erase_old_changes(reg: Registry, *, dry_run: bool = False) -> int:
    """Erase events older than the retention; the number erased (or that would be)."""
    cutoff = reg.now() - RETENTION
    if dry_run:
        return int(reg.session.scalar(select(func.count()).where(ChangeEvent.at < cutoff)) or 0)
    erased = reg.session.execute(delete(ChangeEvent).where(ChangeEvent.at < cutoff))
    return int(getattr(erased, "rowcount", 0) or 0)


def _postgres(reg: Registry) -> bool:
    return reg.session.get_bind().dialect.name == "postgresql"


def _current_txid(reg: Registry) -> Any:
    return cast(cast(func.pg_current_xact_id(), Text), BigInteger) if _postgres(reg) else 0


_SNAPSHOT = text("SELECT pg_snapshot_xmin(s)::text::bigint, pg_snapshot_xmax(s)::text::bigint "
                 "FROM pg_current_snapshot() AS s")
# This database's sessions: the transaction id of each running writer (32 bits: pg_stat_activity shows xid,
# not xid8), and whether the session is another role's that this one may not see into.
_RUNNING = text("SELECT backend_xid::text::bigint, query = '<insufficient privilege>' FROM pg_stat_activity "
                "WHERE datname = current_database()")


def _horizon(reg: Registry) -> int | None:
    """PostgreSQL: the oldest transaction of this database still running (every transaction before it has
    ended), or the next one to start. Only this database counts: another database's long transaction on
    the same server does not hold the feed back.

    Read in this order: the next id first, then the running writers afresh (pg_stat_activity is cached
    per transaction otherwise). A writer that got its id after the first read has an id at or above it.
    If a session of another role hides its transaction id, the whole server's oldest counts instead."""
    if not _postgres(reg):
        return None
    oldest_anywhere, next_id = (int(v) for v in reg.session.execute(_SNAPSHOT).one())
    reg.session.execute(text("SELECT pg_stat_clear_snapshot()"))
    sessions = reg.session.execute(_RUNNING).all()
    if any(hidden for _, hidden in sessions):
        return oldest_anywhere
    return min([next_id, *(_widen(int(xid), next_id) for xid, _ in sessions if xid is not None)])


def _widen(xid: int, near: int) -> int:
    """A 32-bit transaction id as the 64-bit one (xid8) of the transaction running now, ``near`` the next."""
    full = (near & ~0xFFFFFFFF) | xid
    return full - 2**32 if full > near else full


def _watermark(reg: Registry, horizon: int | None) -> tuple[int, int]:
    """The position after every event that can be read now (of any library)."""
    if horizon is not None:
        return horizon - 1, _LAST_ID
    return 0, int(reg.session.scalar(select(func.max(ChangeEvent.id))) or 0)


__all__ = ["RETENTION", "Change", "ChangePage", "Cursor", "CursorExpired", "erase_old_changes", "list_changes",
           "record", "record_for_members", "settled"]
