"""Short-lived state (sessions, codes, counters): Redis in production, memory when embedded.

Everything a request needs between two steps lives here, never in a worker's own memory, so
any worker or host can continue what another one started. The in-memory store is for the
embedded single-process default and the tests.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar
from typing import Protocol

import redis


class StateStore(Protocol):
    def put(self, key: str, value: bytes, ttl: int) -> None: ...
    def get(self, key: str) -> bytes | None: ...
    def take(self, key: str) -> bytes | None:
        """Get and delete in one step: what single-use codes need."""
    def delete(self, key: str) -> None: ...
    def incr(self, key: str, ttl: int) -> int:
        """Add one; the window (ttl) starts with the first increment."""
    def ping(self) -> bool: ...
    def batch(self) -> AbstractContextManager[Batch]: ...


_active: ContextVar[Batch | None] = ContextVar("idp_state_batch", default=None)


class Batch:
    """One request's reads and writes, gathered so that the store sees few round trips.

    Inside ``store.batch()``, a key read twice is fetched once, and puts and deletes wait in a
    buffer that ``commit()`` sends in one pipeline; leaving the block without ``commit()`` drops
    them, so a request that fails half-way writes nothing. ``take`` and ``incr`` never wait:
    they are what make codes and tokens single-use, so they go to the store at once.
    """

    def __init__(self) -> None:
        self.memo: dict[str, bytes | None] = {}
        self.puts: dict[str, tuple[bytes, int]] = {}
        self.deletes: set[str] = set()
        self.committed = False

    def commit(self) -> None:
        self.committed = True


class _Batching:
    """The batch logic both stores share; each supplies the four raw operations."""

    def _raw_get(self, key: str) -> bytes | None: raise NotImplementedError
    def _raw_take(self, key: str) -> bytes | None: raise NotImplementedError
    def _raw_put(self, key: str, value: bytes, ttl: int) -> None: raise NotImplementedError
    def _raw_delete(self, key: str) -> None: raise NotImplementedError
    def _apply(self, puts: dict[str, tuple[bytes, int]], deletes: set[str]) -> None: raise NotImplementedError

    @contextmanager
    def batch(self) -> Iterator[Batch]:
        if _active.get() is not None:
            raise RuntimeError("state batches do not nest")
        unit = Batch()
        token = _active.set(unit)
        try:
            yield unit
        finally:
            _active.reset(token)
        if unit.committed and (unit.puts or unit.deletes):
            self._apply(unit.puts, unit.deletes)

    def get(self, key: str) -> bytes | None:
        unit = _active.get()
        if unit is None:
            return self._raw_get(key)
        if key not in unit.memo:
            unit.memo[key] = self._raw_get(key)
        return unit.memo[key]

    def put(self, key: str, value: bytes, ttl: int) -> None:
        unit = _active.get()
        if unit is None:
            return self._raw_put(key, value, ttl)
        unit.memo[key] = value
        unit.puts[key] = (value, ttl)
        unit.deletes.discard(key)

    def delete(self, key: str) -> None:
        unit = _active.get()
        if unit is None:
            return self._raw_delete(key)
        unit.memo[key] = None
        unit.puts.pop(key, None)
        unit.deletes.add(key)

    def take(self, key: str) -> bytes | None:
        unit = _active.get()
        if unit is None:
            return self._raw_take(key)
        if key in unit.puts:  # written in this batch, never stored: taking it is local
            value, _ = unit.puts.pop(key)
            unit.memo[key] = None
            return value
        if key in unit.deletes:
            return None
        value = self._raw_take(key)
        unit.memo[key] = None
        return value


class RedisState(_Batching):
    def __init__(self, url: str, prefix: str = "idp:") -> None:
        self._redis = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self._prefix = prefix

    def __repr__(self) -> str:
        return "<RedisState>"

    def _raw_put(self, key: str, value: bytes, ttl: int) -> None:
        self._redis.set(self._prefix + key, value, ex=ttl)

    def _raw_get(self, key: str) -> bytes | None:
        return self._redis.get(self._prefix + key)  # type: ignore[return-value]

    def _raw_take(self, key: str) -> bytes | None:
        return self._redis.getdel(self._prefix + key)  # type: ignore[return-value]

    def _raw_delete(self, key: str) -> None:
        self._redis.delete(self._prefix + key)

    def _apply(self, puts: dict[str, tuple[bytes, int]], deletes: set[str]) -> None:
        pipe = self._redis.pipeline(transaction=True)  # all of a request's writes, or none
        for key, (value, ttl) in puts.items():
            pipe.set(self._prefix + key, value, ex=ttl)
        if deletes:
            pipe.delete(*(self._prefix + key for key in deletes))
        pipe.execute()

    def incr(self, key: str, ttl: int) -> int:
        pipe = self._redis.pipeline()
        pipe.incr(self._prefix + key)
        pipe.expire(self._prefix + key, ttl, nx=True)
        count, _ = pipe.execute()
        return int(count)

    def ping(self) -> bool:
        try:
            return bool(self._redis.ping())
        except redis.RedisError:
            return False

    def close(self) -> None:
        self._redis.close()


class MemoryState(_Batching):
    def __init__(self) -> None:
        self._data: dict[str, tuple[bytes | int, float]] = {}
        self._lock = threading.Lock()

    def _live(self, key: str) -> tuple[bytes | int, float] | None:
        item = self._data.get(key)
        if item is not None and item[1] <= time.monotonic():
            del self._data[key]
            return None
        return item

    def _raw_put(self, key: str, value: bytes, ttl: int) -> None:
        self._apply({key: (value, ttl)}, set())

    def _raw_get(self, key: str) -> bytes | None:
        with self._lock:
            item = self._live(key)
        return item[0] if item and isinstance(item[0], bytes) else None

    def _raw_take(self, key: str) -> bytes | None:
        with self._lock:
            item = self._live(key)
            self._data.pop(key, None)
        return item[0] if item and isinstance(item[0], bytes) else None

    def _raw_delete(self, key: str) -> None:
        self._apply({}, {key})

    def _apply(self, puts: dict[str, tuple[bytes, int]], deletes: set[str]) -> None:
        with self._lock:
            now = time.monotonic()
            for key, (value, ttl) in puts.items():
                self._data[key] = (value, now + ttl)
            for key in deletes:
                self._data.pop(key, None)

    def incr(self, key: str, ttl: int) -> int:
        with self._lock:
            item = self._live(key)
            count = (int(item[0]) if item else 0) + 1
            self._data[key] = (count, item[1] if item else time.monotonic() + ttl)
        return count

    def ping(self) -> bool:
        return True

    def close(self) -> None:
        pass


def make_state(redis_url: str | None) -> RedisState | MemoryState:
    return RedisState(redis_url) if redis_url else MemoryState()
