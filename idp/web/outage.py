"""Redis or the database down: every request answers 503 (idp.web.errors), none a 500 with a traceback.

A view's outage reaches the app's error handlers; what fails outside a view does not. So the
session is opened without raising (the first before-request hook raises the outage instead, where
the handlers see it), a failed session save turns the response into the handler's answer, and
Flask's log of an exception outside a view becomes one line. Service resumes by itself: redis-py
and SQLAlchemy's pool connect again on the next request.
"""

from __future__ import annotations

import types
from typing import Any

from flask import Flask, Request, Response, session
from flask.sessions import SessionMixin

from idp.web.errors import OUTAGE_ERRORS, is_outage, log_outage
from idp.web.sessions import ServerSession, StateSessionInterface

# The headers an answer to an outage sets; a failed save replaces these of the response it spoils.
_ANSWER_HEADERS = ("Content-Type", "Location", "Retry-After", "Cache-Control")


class OutageAwareFlask(Flask):
    def log_exception(self, exc_info: tuple[type, BaseException, types.TracebackType]
                      | tuple[None, None, None]) -> None:
        if exc_info[1] is not None and is_outage(exc_info[1]):
            log_outage(exc_info[1])  # one line; the 500 handler then answers 503 (idp.web.errors)
            return
        super().log_exception(exc_info)


class OutageAwareSessions(StateSessionInterface):
    """The state store's sessions; an outage while reading or saving one is answered, not raised."""

    def open_session(self, app: Flask, request: Request) -> ServerSession:
        try:
            return super().open_session(app, request)
        except OUTAGE_ERRORS as exc:
            if not is_outage(exc):
                raise
            unavailable = ServerSession(new=True)
            unavailable.outage = exc  # raised by raise_session_outage
            return unavailable

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        if getattr(session, "outage", None) is not None:
            return  # the store was down when the request came: its answer is already the outage's
        try:
            super().save_session(app, session, response)
        except OUTAGE_ERRORS as exc:
            if not is_outage(exc):
                raise
            # The page or redirect is void without its session: answer as if the view had raised.
            _become(response, app.make_response(app.handle_user_exception(exc)))


def raise_session_outage() -> None:
    """The first before-request hook: a session the store could not give ends the request here."""
    outage: Any = getattr(session, "outage", None)
    if outage is not None:
        raise outage


def _become(response: Response, answer: Response) -> None:
    response.status_code = answer.status_code
    response.set_data(answer.get_data())
    for name in _ANSWER_HEADERS:
        if name in answer.headers:
            response.headers[name] = answer.headers[name]
        else:
            response.headers.pop(name, None)


def install(app: Flask) -> None:
    app.before_request_funcs.setdefault(None, []).insert(0, raise_session_outage)
