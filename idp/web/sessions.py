"""Server-side sessions in the state store (Redis in production, memory when embedded).

The cookie carries only a random session id; the data lives in the store under a hash of that
id, so a copy of the store does not yield cookies that work. Any worker or host reads the same
session, and ``regenerate`` gives a new id at login (no session fixation).

A password change or reset ends the patron's other sessions: every login is tied to the patron's
*session generation* (``join_patron_sessions``), a random value under ``patron-sessions:<id>``
that the change replaces (idp.auth.patron_sessions, which the CLI calls too). A session read with
an older generation is empty from then on, and the same round trip that reads the session reads
the generation.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from typing import Any

from flask import Flask, Request, Response, flash
from flask.sessions import SessionInterface, SessionMixin
from flask_babel import gettext as _
from werkzeug.datastructures import CallbackDict

from idp.auth.patron_sessions import GENERATIONS as _GENERATIONS
from idp.auth.patron_sessions import SESSION_TTL, current_generation, end_patron_sessions
from idp.state import StateStore
from idp.web import services

_PREFIX = "session:"
OF_PATRON = "sessions_of"  # the patron whose session generation this login belongs to (str: a state key's end)
GENERATION = "session_generation"  # that generation when it logged in; None while the patron had none


class ServerSession(CallbackDict[str, Any], SessionMixin):
    def __init__(self, initial: dict[str, Any] | None = None, sid: str | None = None, new: bool = False) -> None:
        def on_update(_: Any) -> None:
            self.modified = True

        super().__init__(initial or {}, on_update)
        self.sid = sid
        self.new = new
        self.modified = False
        self.regenerate_requested = False
        # Set when the store could not be read: the first before-request hook raises it (idp.web.outage).
        self.outage: Exception | None = None

    def __repr__(self) -> str:
        return "<ServerSession>"


def regenerate(session: SessionMixin) -> None:
    """Ask for a new session id when this response is saved (call it at every login)."""
    if isinstance(session, ServerSession):
        session.regenerate_requested = True
        session.modified = True


def _key(sid: str) -> str:
    return _PREFIX + hashlib.sha256(sid.encode()).hexdigest()


def join_patron_sessions(session: SessionMixin, patron_id: int) -> None:
    """Call where a login completes: a later password change or reset of the patron ends this session."""
    session[OF_PATRON] = str(patron_id)
    session[GENERATION] = current_generation(services().state, patron_id)


def password_changed(session: SessionMixin, patron_id: int) -> None:
    """After a password change or reset of ``patron_id``: end the patron's other sessions and the refresh
    tokens issued in them, keep this session if it is the patron's, and tell the patron (a flashed message)."""
    mine = session.get("patron_id") == patron_id
    svc = services()
    generation = end_patron_sessions(svc.state, svc.oidc.grants, patron_id,
                                     keep_sid=session.get("sid") if mine else None)
    if mine:
        session[OF_PATRON], session[GENERATION] = str(patron_id), generation
    flash(_("You have been logged out everywhere else; services you logged in to must ask you to log in again."))


def _ended(data: dict[str, Any], generation: bytes | None) -> bool:
    return generation is not None and data.get(OF_PATRON) is not None and generation.decode() != data.get(GENERATION)


class StateSessionInterface(SessionInterface):
    def __init__(self, state: StateStore, ttl: int = SESSION_TTL) -> None:
        self.state = state
        self.ttl = ttl

    def open_session(self, app: Flask, request: Request) -> ServerSession:
        sid = request.cookies.get(self.get_cookie_name(app))
        if sid and len(sid) <= 128:
            raw, generation = self.state.get_linked(_key(sid), (OF_PATRON, _GENERATIONS))
            if raw is not None:
                data = json.loads(raw)
                if not _ended(data, generation):
                    return ServerSession(data, sid=sid)
                ended = ServerSession(sid=sid)  # saved empty: the store forgets it, the cookie goes
                ended.modified = True
                return ended
        return ServerSession(new=True)

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        assert isinstance(session, ServerSession)  # noqa: S101 - open_session makes only these
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
