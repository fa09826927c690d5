"""What the OIDC and SAML views share while a service waits for a patron: whether the one
session is good enough, the way to the login page and back, and the consent page and store."""

from __future__ import annotations

import time
from collections.abc import Sequence

from flask import Response, redirect, render_template, session, url_for
from flask.typing import ResponseReturnValue

from idp.assurance import rank
from idp.oidc.flow import Grants
from idp.web import services, stepup
from idp.web.facts import in_words


def session_meets(needed: str, *, since: int, fresh: bool, max_age: int | None = None) -> bool:
    """Whether the patron's session serves a request waiting since ``since``: logged in, no
    forced password change, at ``needed`` or above, logged in after ``since`` when ``fresh``
    (prompt=login, ForceAuthn), and no longer ago than ``max_age`` seconds when given."""
    if session.get("patron_id") is None or session.get("must_change"):
        return False
    if rank(session.get("acr", "pin")) < rank(needed):
        return False
    auth_time = int(session.get("auth_time", 0))
    if fresh and auth_time < since:
        return False
    if max_age is not None and time.time() - auth_time > max_age:
        return False
    return True


def authenticate_then(resume_endpoint: str, needed: str, *, since: int, fresh: bool,
                      max_age: int | None = None) -> Response:
    """Where a session that falls short goes: the second factor when only the level is short (logged
    in, recently enough), else the login page; back to ``resume_endpoint`` afterwards."""
    held = session.get("acr", "password")
    if stepup.wants_second_factor(needed) and session_meets(held, since=since, fresh=fresh, max_age=max_age):
        return stepup.step_up_then(resume_endpoint)
    return login_then(resume_endpoint)


def login_then(resume_endpoint: str) -> Response:
    """To the login page; back to ``resume_endpoint`` afterwards (the request waits in the session)."""
    return redirect(url_for("login.login_form", next=url_for(resume_endpoint)), 303)


def consent_store() -> Grants:
    """The one consent store (per patron, by client id) both protocols and My account use."""
    return Grants(services().state)


def consent_page(rp_name: str, released: Sequence[str], action_endpoint: str) -> ResponseReturnValue:
    return render_template("consent.html", rp_name=rp_name, facts=[in_words(name) for name in released],
                           action=url_for(action_endpoint))
