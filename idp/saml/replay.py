"""Replay protection: each SP's request ID is accepted once while the request could be fresh."""

from __future__ import annotations

import hashlib

from idp.state import StateStore


class SeenRequests:
    def __init__(self, state: StateStore, ttl: int) -> None:
        self._state = state
        self._ttl = ttl  # as long as a request's IssueInstant is accepted, so no replay outlives it

    def __repr__(self) -> str:
        return "<SeenRequests>"

    def first_time(self, entity_id: str, message_id: str) -> bool:
        """True once per (SP, ID), even when two copies arrive at the same moment on two workers."""
        digest = hashlib.sha256(f"{entity_id}\x1f{message_id}".encode()).hexdigest()
        return self._state.incr(f"saml:seen:{digest}", self._ttl) == 1
