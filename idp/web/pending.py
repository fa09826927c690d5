"""What the OIDC and SAML views share while a service waits for a patron: whether the one
session is good enough, the way to the login page and back, and the consent page and store."""

from __future__ import annotations

import time
from contextlib import suppress
from collections.abc import Sequence

from flask import redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from werkzeug.wrappers import Response

from idp.assurance import rank
from idp.auth.logins import LoggedIn, PendingRequest
from idp.registry import consents
from idp.web import services, stepup
from idp.web.facts import in_words
from idp.web.logged_in import current_login


def _meets(login: LoggedIn | None, needed: str, *, since: int, fresh: bool, max_age: int | None) -> bool:
    """Logged in, no forced password change, at ``needed`` or above, logged in after ``since`` when
    ``fresh`` (prompt=login, ForceAuthn), and no longer ago than ``max_age`` seconds when given."""
    if login is None or login.must_change:
        return False
    if rank(login.acr) < rank(needed):
        return False
    if fresh and login.auth_time < since:
        return False
    return max_age is None or time.time() - login.auth_time <= max_age


def session_meets(request: PendingRequest) -> bool:
    """Whether the patron's session serves ``request``, waiting since ``request.since``."""
    return _meets(current_login(), request.needed, since=request.since, fresh=request.fresh,
                  max_age=request.max_age)


def authenticate_then(request: PendingRequest) -> Response:
    """Where a session that falls short goes: the second factor when only the level is short (logged
    in, recently enough), else the login page; back to the request's resume endpoint afterwards."""
    login = current_login()
    if login is not None and stepup.wants_second_factor(request.needed) and _meets(
            login, login.acr, since=request.since, fresh=request.fresh, max_age=request.max_age):
        return stepup.step_up_then(request.resume)
    return login_then(request.resume)


def login_then(resume_endpoint: str) -> Response:
    """To the login page; back to ``resume_endpoint`` afterwards (the request waits in the session)."""
    return redirect(url_for("login.login_form", next=url_for(resume_endpoint)), 303)


def has_consent(patron_id: int, client_id: str, released: Sequence[str]) -> bool:
    """Whether the patron agreed to every released claim for this service (OIDC or SAML alike)."""
    with services().registry("web") as reg:
        return consents.has_consent(reg, patron_id, client_id, released)


def give_consent(patron_id: int, client_id: str, released: Sequence[str]) -> None:
    """Store the consent the patron just gave (register data: it outlives sessions and Redis). A patron
    deleted meanwhile stores nothing: the answer that follows finds them gone and refuses."""
    with services().registry("web") as reg, suppress(LookupError):
        consents.give_consent(reg, patron_id, client_id, released)


def consent_page(rp_name: str, released: Sequence[str], action_endpoint: str) -> ResponseReturnValue:
    return render_template("consent.html", rp_name=rp_name, facts=[in_words(name) for name in released],
                           action=url_for(action_endpoint))
