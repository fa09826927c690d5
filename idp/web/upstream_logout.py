"""What the login methods that log out upstream (ID-porten, the federations) share: while the browser
is away at the upstream's logout, where it goes afterwards (``after``: the logout's last step here,
idp.web.logout, which answers whoever asked for the logout) waits in the state store under a random
key that travels as the upstream's ``state`` or ``RelayState``. The key is taken out when the
browser comes back, so it works once, and lasts ten minutes.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from flask import redirect, render_template, session, url_for
from flask.typing import ResponseReturnValue

from idp.web import services

LOGOUT_TTL = 600
MAX_KEY = 64


def _key(method: str, token: str) -> str:
    return f"{method}:logout:{token}"


def away(method: str, after: str | None, *, token: str | None = None, **kept: Any) -> str:
    """Keep ``after`` (and ``kept``, JSON) for the way back from ``method``'s upstream logout, under
    ``token`` (new and random unless given); returns the token to send along."""
    token = token or secrets.token_urlsafe(24)
    services().state.put(_key(method, token), json.dumps({**kept, "after": after}).encode(), LOGOUT_TTL)
    return token


def back(method: str, token: str | None) -> dict[str, Any] | None:
    """What ``away`` kept under ``token`` (taken out: single use); None when unknown, used or expired."""
    if not token or len(token) > MAX_KEY:
        return None
    raw = services().state.take(_key(method, token))
    try:
        data = json.loads(raw) if raw else None
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def go_on(after: Any) -> ResponseReturnValue:
    """The end of a logout: on to ``after``, or our logged-out page when it is the landing page or nothing."""
    session.clear()
    if isinstance(after, str) and after and after != url_for("pages.landing"):
        return redirect(after, 303)
    return render_template("logged_out.html")


__all__ = ["LOGOUT_TTL", "away", "back", "go_on"]
