"""pyop's token databases as mappings over the state store (Redis or memory).

pyop reads and writes authorization codes, access tokens and refresh tokens through plain
mappings. Each entry here is JSON in the state store with a lifetime, so every worker sees the
same codes and tokens and nothing outlives its use.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, MutableMapping
from typing import Any

from idp.state import StateStore


class StateMapping(MutableMapping[str, Any]):
    def __init__(self, state: StateStore, prefix: str, ttl: int) -> None:
        self._state, self._prefix, self._ttl = state, prefix, ttl

    def __getitem__(self, key: str) -> Any:
        raw = self._state.get(self._prefix + key) if _plausible(key) else None
        if raw is None:
            raise KeyError(key)
        return json.loads(raw)

    def take(self, key: str) -> Any:
        """Remove and return the entry in one step (None if absent): only one caller can win it."""
        raw = self._state.take(self._prefix + key) if _plausible(key) else None
        return json.loads(raw) if raw is not None else None

    def get_linked(self, key: str, field: str, other: StateMapping) -> tuple[Any, Any]:
        """The entry and the entry of ``other`` named by its ``field``, in one round trip (None for
        what is absent)."""
        if not _plausible(key):
            return None, None
        found = self._state.get_linked(self._prefix + key, (field, other._prefix))
        return tuple(json.loads(raw) if raw is not None else None for raw in found)  # type: ignore[return-value]

    def consume(self, key: str) -> None:
        """Delete the entry when the state batch commits, which then writes nothing unless the
        entry is still there (StateStore.consume)."""
        self._state.consume(self._prefix + key)

    def state_key(self, key: str) -> str:
        """The state store's key for ``key``: what a prefetch names."""
        return self._prefix + key

    def __setitem__(self, key: str, value: Any) -> None:
        self._state.put(self._prefix + key, json.dumps(value).encode(), self._ttl)

    def __delitem__(self, key: str) -> None:
        self._state.delete(self._prefix + key)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and _plausible(key) and self._state.get(self._prefix + key) is not None

    def __iter__(self) -> Iterator[str]:
        # pyop only scans these to log a user out, which idp.oidc.provider does by index instead.
        raise NotImplementedError("token stores are not enumerable")

    def __len__(self) -> int:
        raise NotImplementedError("token stores are not enumerable")

    def __repr__(self) -> str:
        return f"<StateMapping {self._prefix}>"


def _plausible(key: object) -> bool:
    # Keys come from requests: anything absurd is absent without asking the store.
    return isinstance(key, str) and len(key) <= 512
