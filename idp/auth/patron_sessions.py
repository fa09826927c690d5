"""Ending every session of a patron at once (a password change or reset): no Flask, so the web
pages and the CLI (``idp register set-secret``) call the same code.

Every login is tied to the patron's *session generation*, a random value under
``patron-sessions:<id>`` in the state store (idp.web.sessions keeps it with each session); a new
generation ends every session that holds an older one, and the OIDC grants issued in them end too.
"""

from __future__ import annotations

import secrets
from typing import Protocol

from idp.state import StateStore

SESSION_TTL = 8 * 3600  # seconds of idle time before a login is forgotten
GENERATIONS = "patron-sessions:"


class PatronGrants(Protocol):
    """The OIDC grants (idp.oidc.flow.Grants): only what ending a patron's sessions needs."""

    def revoke_patron(self, patron_id: int, keep_sid: str | None = None) -> None: ...


def generation_key(patron_id: int) -> str:
    return GENERATIONS + str(patron_id)


def current_generation(state: StateStore, patron_id: int) -> str | None:
    """The generation a login of ``patron_id`` joins now (None while the patron has none)."""
    current = state.get(generation_key(patron_id))
    return current.decode() if current is not None else None


def end_patron_sessions(state: StateStore, grants: PatronGrants, patron_id: int, keep_sid: str | None = None) -> str:
    """End every session of ``patron_id`` and the OIDC grants issued in them, but those of login session
    ``keep_sid``; returns the new generation, for a session to keep.

    The generation lives as long as an idle session: a session older than it either makes a request
    in that time (and finds itself ended) or expires by itself.
    """
    generation = secrets.token_urlsafe(16)
    state.put(generation_key(patron_id), generation.encode(), SESSION_TTL)
    grants.revoke_patron(patron_id, keep_sid=keep_sid)
    return generation
