"""Server-side sessions in the state store (Redis in production, memory when embedded).

The cookie carries only a random session id; the data lives in the store under a hash of that
id, so a copy of the store does not yield cookies that work. Any worker or host reads the same
session, and ``regenerate`` gives a new id at login (no session fixation).
"""

from __future__ import annotations

import hashlib
import json
import secrets
from typing import Any

from flask import Flask, Request, Response
from flask.sessions import SessionInterface, SessionMixin
from werkzeug.datastructures import CallbackDict

from idp.state import StateStore

SESSION_TTL = 8 * 3600  # seconds of idle time before a login is forgotten
_PREFIX = "session:"


class ServerSession(CallbackDict[str, Any], SessionMixin):
    def __init__(self, initial: dict[str, Any] | None = None, sid: str | None = None, new: bool = False) -> None:
        def on_update(_: Any) -> None:
            self.modified = True

        super().__init__(initial or {}, on_update)
        self.sid = sid
        self.new = new
        self.modified = False
        self.regenerate_requested = False

    def __repr__(self) -> str:
        return "<ServerSession>"


def regenerate(session: SessionMixin) -> None:
    """Ask for a new session id when this response is saved (call it at every login)."""
    if isinstance(session, ServerSession):
        session.regenerate_requested = True
        session.modified = True


def _key(sid: str) -> str:
    return _PREFIX + hashlib.sha256(sid.encode()).hexdigest()


class StateSessionInterface(SessionInterface):
    def __init__(self, state: StateStore, ttl: int = SESSION_TTL) -> None:
        self.state = state
        self.ttl = ttl

    def open_session(self, app: Flask, request: Request) -> ServerSession:
        sid = request.cookies.get(self.get_cookie_name(app))
        if sid and len(sid) <= 128:
            raw = self.state.get(_key(sid))
            if raw is not None:
                return ServerSession(json.loads(raw), sid=sid)
        return ServerSession(new=True)

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        assert isinstance(session, ServerSession)
        name, domain, path = self.get_cookie_name(app), self.get_cookie_domain(app), self.get_cookie_path(app)
        if not session:
            if session.sid and session.modified:
                self.state.delete(_key(session.sid))
                response.delete_cookie(name, domain=domain, path=path)
            return
        # The old id's data goes and the new id's arrives in one round trip (a login's is busy).
        with self.state.batch() as batch:
            if session.regenerate_requested and session.sid:
                self.state.delete(_key(session.sid))
                session.sid = None
            if session.sid is None:
                session.sid = secrets.token_urlsafe(32)
            # Refresh on every request, so the idle timeout counts from the last one.
            self.state.put(_key(session.sid), json.dumps(dict(session)).encode(), self.ttl)
            batch.commit()
        response.set_cookie(name, session.sid, httponly=self.get_cookie_httponly(app),
                            secure=self.get_cookie_secure(app), samesite=self.get_cookie_samesite(app),
                            domain=domain, path=path)
        response.vary.add("Cookie")
