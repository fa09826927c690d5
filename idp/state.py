"""Short-lived state (sessions, codes, counters): Redis in production, memory when embedded.

Everything a request needs between two steps lives here, never in a worker's own memory, so
any worker or host can continue what another one started. The in-memory store is for the
embedded single-process default and the tests.
"""

from __future__ import annotations

import threading
import time
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


class RedisState:
    def __init__(self, url: str, prefix: str = "idp:") -> None:
        self._redis = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self._prefix = prefix

    def __repr__(self) -> str:
        return "<RedisState>"

    def put(self, key: str, value: bytes, ttl: int) -> None:
        self._redis.set(self._prefix + key, value, ex=ttl)

    def get(self, key: str) -> bytes | None:
        return self._redis.get(self._prefix + key)  # type: ignore[return-value]

    def take(self, key: str) -> bytes | None:
        return self._redis.getdel(self._prefix + key)  # type: ignore[return-value]

    def delete(self, key: str) -> None:
        self._redis.delete(self._prefix + key)

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


class MemoryState:
    def __init__(self) -> None:
        self._data: dict[str, tuple[bytes | int, float]] = {}
        self._lock = threading.Lock()

    def _live(self, key: str) -> tuple[bytes | int, float] | None:
        item = self._data.get(key)
        if item is not None and item[1] <= time.monotonic():
            del self._data[key]
            return None
        return item

    def put(self, key: str, value: bytes, ttl: int) -> None:
        with self._lock:
            self._data[key] = (value, time.monotonic() + ttl)

    def get(self, key: str) -> bytes | None:
        with self._lock:
            item = self._live(key)
        return item[0] if item and isinstance(item[0], bytes) else None

    def take(self, key: str) -> bytes | None:
        with self._lock:
            item = self._live(key)
            self._data.pop(key, None)
        return item[0] if item and isinstance(item[0], bytes) else None

    def delete(self, key: str) -> None:
        with self._lock:
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
