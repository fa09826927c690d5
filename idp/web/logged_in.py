"""The one place the Flask session holds a login: read it, complete one, step it up, end it.

Every login method calls ``complete_login``: a fresh session id (no session fixation) that keeps
only the language, the protocol requests waiting for this login and the login session id, the
login itself (idp.auth.logins.LoggedIn), and the tie to the patron's session generation, so a
later password change ends it (idp.web.sessions).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from flask import session

from idp.auth.logins import LoggedIn, Upstream
from idp.web import login_methods
from idp.web.login_session import SID
from idp.web.waiting import SESSION_KEYS as PENDING_KEYS
from idp.web.sessions import join_patron_sessions, regenerate

# A new login in the same browser keeps its login session (SID): the logout ends what both issued.
CARRIED_OVER_LOGIN = ("lang", *PENDING_KEYS.values(), SID)


def current_login() -> LoggedIn | None:
    return LoggedIn.from_fields(session, login_methods.upstream_names())


def fresh_session() -> None:
    """A new session id with nothing from before but the carried-over keys (at a login, or a verified person)."""
    kept = {key: session[key] for key in CARRIED_OVER_LOGIN if key in session}
    session.clear()
    regenerate(session)
    session.update(kept)


def complete_login(patron_id: int, acr: str, amr: Sequence[str], auth_time: int | None = None, *,
                   must_change: bool = False, upstream: Upstream | None = None) -> LoggedIn:
    """Log ``patron_id`` in (``auth_time``: when they authenticated, now if not given)."""
    fresh_session()
    sid = session.get(SID)
    login = LoggedIn(patron_id=patron_id, acr=acr, amr=tuple(amr),
                     auth_time=int(auth_time if auth_time is not None else time.time()), must_change=must_change,
                     upstream=upstream, login_session=sid if isinstance(sid, str) else None)
    session.update(login.to_fields())
    join_patron_sessions(session, patron_id)
    return login


def step_up(login: LoggedIn, acr: str, method: str) -> LoggedIn:
    """A second factor on top of ``login``: a new session id, the same login session, a higher level."""
    regenerate(session)
    raised = login.stepped_up(acr, method, int(time.time()))
    session.update(raised.to_fields())
    return raised


def step_down(login: LoggedIn, acr: str, method: str, fallback: str) -> LoggedIn:
    """The login no longer rests on ``method`` (its second factor was removed): the same session, a lower level."""
    lowered = login.stepped_down(acr, method, fallback)
    session.update(lowered.to_fields())
    return lowered

