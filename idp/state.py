"""Short-lived state (sessions, codes, counters): Redis in production, memory when embedded.

Everything a request needs between two steps lives here, never in a worker's own memory, so
any worker or host can continue what another one started. The in-memory store is for the
embedded single-process default and the tests.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar
from typing import Protocol, cast

import redis


class Conflict(Exception):
    """A batch's commit found a key it consumes already gone: another request used it first.
    Nothing of the batch was written."""


class StateStore(Protocol):
    def put(self, key: str, value: bytes, ttl: int) -> None: ...
    def get(self, key: str) -> bytes | None: ...
    def get_linked(self, key: str, link: tuple[str, str]) -> tuple[bytes | None, bytes | None]:
        """The JSON entry at ``key`` and the entry it names, key ``link[1]`` followed by the
        entry's field ``link[0]``: both in one round trip (None for what is absent)."""
    def take(self, key: str) -> bytes | None:
        """Get and delete in one step: what single-use codes need."""
    def delete(self, key: str) -> None: ...
    def consume(self, key: str) -> None:
        """Inside a batch: delete ``key`` when the batch commits, and commit nothing at all
        (Conflict) if it is gone by then. What single-use tokens need, without spending one on a
        request that fails before its commit."""
    def incr(self, key: str, ttl: int, prefetch: Sequence[str] = ()) -> int:
        """Add one; the window (ttl) starts with the first increment. Inside a batch, the keys
        in ``prefetch`` are read in the same round trip and later gets answer from the batch."""
    def index_add(self, key: str, member: str, ttl: int) -> None:
        """Add ``member`` to the set at ``key`` for ``ttl`` seconds, each member with its own
        lifetime (so a set that keeps growing never keeps its old members). At once, even in a batch."""
    def index_members(self, key: str) -> list[str]:
        """The members of the set at ``key`` that have not expired (read at once, even in a batch)."""
    def ping(self) -> bool: ...
    def batch(self) -> AbstractContextManager[Batch]: ...


_active: ContextVar[Batch | None] = ContextVar("idp_state_batch", default=None)


class Batch:
    """One request's reads and writes, gathered so that the store sees few round trips.

    Inside ``store.batch()``, a key read twice is fetched once, and puts, deletes and consumed
    keys wait in a buffer that ``commit()`` sends in one atomic round trip; leaving the block
    without ``commit()`` drops them, so a request that fails half-way writes nothing. ``take``
    and ``incr`` never wait: they go to the store at once.
    """

    def __init__(self, apply: Callable[[Batch], bool]) -> None:
        self.memo: dict[str, bytes | None] = {}
        self.puts: dict[str, tuple[bytes, int]] = {}
        self.deletes: set[str] = set()
        self.consumes: set[str] = set()
        self.committed = False
        self._apply = apply

    def commit(self) -> None:
        """Write everything now; raises Conflict, having written nothing, if a consumed key is gone."""
        self.writable()
        if (self.puts or self.deletes or self.consumes) and not self._apply(self):
            raise Conflict("a key this batch consumes was used by another request")
        self.committed = True

    def writable(self) -> Batch:
        """This batch, if it still takes writes (it does until its commit)."""
        if self.committed:
            raise RuntimeError("this state batch was committed already")
        return self


class _Batching:
    """The batch logic both stores share; each supplies the raw operations."""

    def _raw_get(self, key: str) -> bytes | None: raise NotImplementedError
    def _raw_get_linked(self, key: str, link: tuple[str, str]) -> tuple[bytes | None, bytes | None]:
        raise NotImplementedError
    def _raw_take(self, key: str) -> bytes | None: raise NotImplementedError
    def _raw_put(self, key: str, value: bytes, ttl: int) -> None: raise NotImplementedError
    def _raw_delete(self, key: str) -> None: raise NotImplementedError
    def _raw_incr(self, key: str, ttl: int, reads: list[str]) -> tuple[int, list[bytes | None]]:
        raise NotImplementedError
    def _apply(self, unit: Batch) -> bool:
        """Write a batch atomically: False, writing nothing, if one of its consumed keys is gone."""
        raise NotImplementedError

    @contextmanager
    def batch(self) -> Iterator[Batch]:
        if _active.get() is not None:
            raise RuntimeError("state batches do not nest")
        unit = Batch(self._apply)
        token = _active.set(unit)
        try:
            yield unit
        finally:
            _active.reset(token)

    def get(self, key: str) -> bytes | None:
        unit = _active.get()
        if unit is None:
            return self._raw_get(key)
        if key not in unit.memo:
            unit.memo[key] = self._raw_get(key)
        return unit.memo[key]

    def get_linked(self, key: str, link: tuple[str, str]) -> tuple[bytes | None, bytes | None]:
        unit = _active.get()
        value, linked = self._raw_get_linked(key, link)
        if unit is not None:
            unit.memo[key] = value
            target = _link_target(value, link) if value is not None else None
            if target is not None:
                unit.memo[target] = linked
        return value, linked

    def put(self, key: str, value: bytes, ttl: int) -> None:
        unit = _active.get()
        if unit is None:
            return self._raw_put(key, value, ttl)
        unit.writable().memo[key] = value
        unit.puts[key] = (value, ttl)
        unit.deletes.discard(key)

    def delete(self, key: str) -> None:
        unit = _active.get()
        if unit is None:
            return self._raw_delete(key)
        unit.writable().memo[key] = None
        unit.puts.pop(key, None)
        unit.deletes.add(key)

    def consume(self, key: str) -> None:
        unit = _active.get()
        if unit is None:
            raise RuntimeError("consume works inside a state batch")
        # The request goes on reading what it holds (the memo) until the commit deletes it.
        unit.writable().consumes.add(key)
        unit.puts.pop(key, None)
        unit.deletes.discard(key)

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
        taken = self._raw_take(key)
        unit.memo[key] = None
        return taken

    def incr(self, key: str, ttl: int, prefetch: Sequence[str] = ()) -> int:
        unit = _active.get()
        reads = [k for k in dict.fromkeys(prefetch) if k not in unit.memo] if unit is not None else []
        count, values = self._raw_incr(key, ttl, reads)
        if unit is not None:
            unit.memo.update(zip(reads, values, strict=True))  # one value per key read
        return count


class RedisState(_Batching):
    def __init__(self, url: str, prefix: str = "idp:") -> None:
        self._redis = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self._prefix = prefix
        self._get_linked = self._redis.register_script(_GET_LINKED)
        self._commit = self._redis.register_script(_COMMIT)
        self._incr = self._redis.register_script(_INCR)
        self._index_add = self._redis.register_script(_INDEX_ADD)

    def __repr__(self) -> str:
        return "<RedisState>"

    def _raw_put(self, key: str, value: bytes, ttl: int) -> None:
        self._redis.set(self._prefix + key, value, ex=ttl)

    def _raw_get(self, key: str) -> bytes | None:
        return self._redis.get(self._prefix + key)  # type: ignore[return-value]

    def _raw_get_linked(self, key: str, link: tuple[str, str]) -> tuple[bytes | None, bytes | None]:
        value, linked = self._get_linked(keys=[self._prefix + key], args=[link[0], self._prefix + link[1]])
        return value, linked

    def _raw_take(self, key: str) -> bytes | None:
        return self._redis.getdel(self._prefix + key)  # type: ignore[return-value]

    def _raw_delete(self, key: str) -> None:
        self._redis.delete(self._prefix + key)

    def _apply(self, unit: Batch) -> bool:
        # One script call, atomic like MULTI/EXEC but a single command for redis-py to pack and parse.
        p, puts = self._prefix, list(unit.puts.items())
        keys = [p + k for k in (*unit.consumes, *(k for k, _ in puts), *unit.deletes)]
        args: list[bytes | int] = [len(unit.consumes), len(puts), *(v for _, (v, _) in puts),
                                   *(ttl for _, (_, ttl) in puts)]
        return bool(self._commit(keys=keys, args=args))

    def _raw_incr(self, key: str, ttl: int, reads: list[str]) -> tuple[int, list[bytes | None]]:
        p = self._prefix
        count, *fetched = self._incr(keys=[p + key, *(p + k for k in reads)], args=[ttl])
        return int(count), fetched

    def index_add(self, key: str, member: str, ttl: int) -> None:
        self._index_add(keys=[self._prefix + key], args=[member, ttl, time.time()])

    def index_members(self, key: str) -> list[str]:
        found = self._redis.zrangebyscore(self._prefix + key, time.time(), "+inf")
        return [m.decode() for m in found]  # type: ignore[union-attr]

    def keys_starting(self, start: str) -> Iterator[str]:
        """The keys beginning with ``start`` (SCAN, never KEYS: a big server is not blocked)."""
        for found in self._redis.scan_iter(match=_glob_escape(self._prefix + start) + "*", count=1000):
            yield found.decode().removeprefix(self._prefix)

    def ping(self) -> bool:
        try:
            return bool(self._redis.ping())
        except redis.RedisError:
            return False

    def close(self) -> None:
        self._redis.close()


class MemoryState(_Batching):
    def __init__(self) -> None:
        # Values: bytes, a counter, or an index (member -> when it expires, time.monotonic()).
        self._data: dict[str, tuple[bytes | int | dict[str, float], float]] = {}
        self._lock = threading.Lock()

    def _live(self, key: str) -> tuple[bytes | int | dict[str, float], float] | None:
        item = self._data.get(key)
        if item is not None and item[1] <= time.monotonic():
            del self._data[key]
            return None
        return item

    def _bytes(self, key: str) -> bytes | None:
        item = self._live(key)
        return item[0] if item and isinstance(item[0], bytes) else None

    def _raw_put(self, key: str, value: bytes, ttl: int) -> None:
        with self._lock:
            self._data[key] = (value, time.monotonic() + ttl)

    def _raw_get(self, key: str) -> bytes | None:
        with self._lock:
            return self._bytes(key)

    def _raw_get_linked(self, key: str, link: tuple[str, str]) -> tuple[bytes | None, bytes | None]:
        with self._lock:
            value = self._bytes(key)
            target = _link_target(value, link) if value is not None else None
            return value, self._bytes(target) if target is not None else None

    def _raw_take(self, key: str) -> bytes | None:
        with self._lock:
            value = self._bytes(key)
            self._data.pop(key, None)
        return value

    def _raw_delete(self, key: str) -> None:
        with self._lock:
            self._data.pop(key, None)

    def _apply(self, unit: Batch) -> bool:
        with self._lock:
            if any(self._live(key) is None for key in unit.consumes):
                return False
            now = time.monotonic()
            for key in unit.consumes | unit.deletes:
                self._data.pop(key, None)
            for key, (value, ttl) in unit.puts.items():
                self._data[key] = (value, now + ttl)
            return True

    def _raw_incr(self, key: str, ttl: int, reads: list[str]) -> tuple[int, list[bytes | None]]:
        with self._lock:
            item = self._live(key)
            # A counter's key holds a count (or the bytes of one put there), never an index.
            count = (int(cast("int | bytes", item[0])) if item else 0) + 1
            self._data[key] = (count, item[1] if item else time.monotonic() + ttl)
            return count, [self._bytes(k) for k in reads]

    def index_add(self, key: str, member: str, ttl: int) -> None:
        with self._lock:
            item = self._live(key)
            now = time.monotonic()
            members = {m: until for m, until in item[0].items() if until > now} \
                if item and isinstance(item[0], dict) else {}
            members[member] = now + ttl
            self._data[key] = (members, max(members.values()))

    def index_members(self, key: str) -> list[str]:
        with self._lock:
            item = self._live(key)
            now = time.monotonic()
            return [m for m, until in item[0].items() if until > now] if item and isinstance(item[0], dict) else []

    def keys_starting(self, start: str) -> Iterator[str]:
        with self._lock:
            found = [key for key in self._data if key.startswith(start)]
        yield from (key for key in found if self._bytes(key) is not None)

    def ping(self) -> bool:
        return True

    def close(self) -> None:
        pass


def _link_target(raw: bytes, link: tuple[str, str]) -> str | None:
    try:
        entry = json.loads(raw)
    except ValueError:
        return None
    linked = entry.get(link[0]) if isinstance(entry, dict) else None
    return link[1] + linked if isinstance(linked, str) else None


# get_linked in Redis, by the rules of _link_target. The linked key is computed inside the script,
# which a single Redis server allows (a cluster would not).
_GET_LINKED = """
local value = redis.call('GET', KEYS[1])
if not value then return {false, false} end
local ok, entry = pcall(cjson.decode, value)
if not ok or type(entry) ~= 'table' or type(entry[ARGV[1]]) ~= 'string' then return {value, false} end
return {value, redis.call('GET', ARGV[2] .. entry[ARGV[1]])}
"""

# A batch's commit: KEYS = consumed keys, then put keys, then deleted keys; ARGV = the number of
# consumed keys, the number of puts, the put values, then their lifetimes in seconds.
_COMMIT = """
local consumed, puts = tonumber(ARGV[1]), tonumber(ARGV[2])
for i = 1, consumed do
  if redis.call('EXISTS', KEYS[i]) == 0 then return 0 end
end
for i = 1, consumed do redis.call('DEL', KEYS[i]) end
for i = 1, puts do redis.call('SET', KEYS[consumed + i], ARGV[2 + i], 'EX', ARGV[2 + puts + i]) end
for i = consumed + puts + 1, #KEYS do redis.call('DEL', KEYS[i]) end
return 1
"""


# incr: KEYS = the counter, then the keys to read; ARGV = the window in seconds. Atomic, so a
# counter never exists without its expiry; one command for redis-py to pack and parse.
_INCR = """
local count = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[1], 'NX')
local out = {count}
for i = 2, #KEYS do out[i] = redis.call('GET', KEYS[i]) end
return out
"""

# index_add: KEYS = the index (a sorted set scored by expiry); ARGV = the member, its lifetime in
# seconds, the time now. Expired members go; the set lives as long as its longest-lived member.
_INDEX_ADD = """
local now, ttl = tonumber(ARGV[3]), tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
if redis.call('TTL', KEYS[1]) < ttl then redis.call('EXPIRE', KEYS[1], ttl) end
return 1
"""


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def make_state(redis_url: str | None, prefix: str = "idp:") -> RedisState | MemoryState:
    """``prefix`` begins every Redis key, so that deployments sharing one server never meet."""
    return RedisState(redis_url, prefix) if redis_url else MemoryState()
