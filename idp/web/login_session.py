"""The login session: a random id for one browser login, kept in the session as ``sid``.

Every OIDC grant issued while the patron is logged in is recorded under it (idp.oidc.flow), and
ending the login ends those grants' tokens too, as Keycloak's session-bound refresh tokens do
(no offline access is offered). It survives a step-up, which copies the session to a new id.
"""

from __future__ import annotations

import secrets

from flask import session

from idp.web import services

SID = "sid"


def login_session_id() -> str:
    """This login's id, made at its first use."""
    sid = session.get(SID)
    if not isinstance(sid, str):
        sid = session[SID] = secrets.token_urlsafe(24)
    return sid


def end_login_session() -> None:
    """Call wherever a login ends (logout, an upstream logout), before the session is cleared:
    the access and refresh tokens issued in it stop working at once."""
    sid = session.get(SID)
    if isinstance(sid, str):
        services().oidc.grants.revoke_session(sid)
