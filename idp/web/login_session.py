"""The login session: a random id for one browser login, kept in the session as ``sid``.

Every OIDC grant issued while the patron is logged in is recorded under it (idp.oidc.flow), as is
every SAML assertion (idp.single_logout), and ending the login ends those grants' tokens too, as
Keycloak's session-bound refresh tokens do (no offline access is offered). It survives a step-up,
which copies the session to a new id.
"""

from __future__ import annotations

import secrets

from flask import session

from idp.single_logout import Ended
from idp.web import services

SID = "sid"


def login_session_id() -> str:
    """This login's id, made at its first use."""
    sid = session.get(SID)
    if not isinstance(sid, str):
        sid = session[SID] = secrets.token_urlsafe(24)
    return sid


def end_login_session(sid: str | None = None, *, initiator: str | None = None) -> Ended:
    """Call wherever a login ends (logout, an upstream logout), before the session is cleared; or
    with the ``sid`` of a login ended elsewhere. The access and refresh tokens issued in it stop
    working at once, and the services it reached are told (idp.single_logout): the front-channel
    work is returned for the browser, if the browser is there to do it."""
    if sid is None:
        current = session.get(SID)
        sid = current if isinstance(current, str) else None
    if sid is None:
        return Ended()
    return services().single_logout.end(sid, initiator=initiator)
