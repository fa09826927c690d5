"""When a card's login is locked after too many wrong guesses, as the desk may see it.

The lock itself is the rate limiter's (idp.web.limits: 10 wrong guesses a day per account); the
limiter's own keys are its internals, so at the moment it locks an account the web layer records
here until when, and the register API reads it for a librarian ("locked until 14:05").
"""

from __future__ import annotations

from datetime import UTC, datetime

from idp.state import StateStore


def _key(patron_id: int) -> str:
    return f"login-locked:{patron_id}"


def record_lock(state: StateStore, patron_id: int, until: int, now: int) -> None:
    """The patron's logins are refused until ``until`` (epoch seconds); kept as long as the lock lasts."""
    if until > now:
        state.put(_key(patron_id), str(until).encode(), until - now)


def locked_until(state: StateStore, patron_id: int, now: int) -> datetime | None:
    """Until when the patron's logins are refused, or None when they are not. ``now`` in epoch seconds by
    the same clock as the rate limiter's (the system's, not the register's injectable one)."""
    raw = state.get(_key(patron_id))
    if raw is None or int(raw) <= now:
        return None
    return datetime.fromtimestamp(int(raw), UTC)
