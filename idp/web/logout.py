"""Single logout in the browser: one way out for every logout, whoever asks for it.

Our logout button, an OIDC relying party's RP-initiated logout and a SAML service provider's
LogoutRequest all call ``log_out``. It ends the login session everywhere it reached
(idp.single_logout: tokens revoked, back-channel logout tokens queued) and clears the browser's
session at once, so the patron is logged out here whatever happens next. Then the browser:

1. goes through the upstream logout (ID-porten, a federation) when the login came from one;
2. visits, in hidden frames on ``/logout/progress/<run>``, each front-channel logout URI and each
   SAML service provider's SingleLogoutService (a LogoutRequest per frame), for at most
   ``FRONTCHANNEL_TIMEOUT`` seconds: a service that does not answer holds nobody up;
3. ends at ``/logout/finish/<run>``: the answer to whoever asked (a SAML LogoutResponse, with
   ``PartialLogout`` when a service provider did not confirm; a relying party's registered
   post-logout URI; or our logged-out page, naming the services that did not confirm).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Blueprint, Flask, redirect, render_template, session, url_for
from flask.typing import ResponseReturnValue

from idp.relying_parties import PROTOCOL_SAML
from idp.single_logout import FrontChannel, LogoutRun, SingleLogout
from idp.web import login_methods, services
from idp.web.logged_in import current_login
from idp.web.login_session import end_login_session
from idp.web.security import allow_frame_source

bp = Blueprint("logout", __name__)

# Seconds the logout page waits for the services in its frames before it goes on without them.
FRONTCHANNEL_TIMEOUT = 5

# How a run's answer is given, by the key of its ``finish``: {"target": URL or None} is answered
# here, a protocol registers its own (idp.web.saml: {"saml": the LogoutRequest to answer}).
Finisher = Callable[[LogoutRun, set[int]], ResponseReturnValue]
_FINISHERS: dict[str, Finisher] = {}


def finisher(kind: str) -> Callable[[Finisher], Finisher]:
    def register(function: Finisher) -> Finisher:
        _FINISHERS[kind] = function
        return function
    return register


def install(app: Flask) -> None:
    app.register_blueprint(bp)


def _single_logout() -> SingleLogout:
    return services().single_logout


def log_out(*, finish: dict[str, Any], initiator: str | None = None) -> ResponseReturnValue:
    """End the browser's login everywhere and answer with ``finish`` once the browser has been
    through the front-channel work and the upstream logout (see the module's docstring).
    ``initiator``: the client_id of the service that asked, which is not called back."""
    runs = _single_logout().runs
    ended = end_login_session(initiator=initiator)
    run = LogoutRun(id=runs.new_id(), frontchannel=list(ended.frontchannel), finish=finish)
    # The upstream logout first (it may be a page that posts, which cannot wait for later), then
    # the front-channel frames, then the answer. Read before the session is cleared: it needs the login.
    after = url_for("logout.progress" if run.frontchannel else "logout.finish", run=run.id)
    upstream = login_methods.upstream_logout(current_login(), after)
    session.clear()
    if upstream is None and not run.frontchannel:
        return _answer(run, set())
    runs.save(run)
    return upstream if upstream is not None else redirect(after, 303)


@bp.get("/logged-out")
def logged_out() -> ResponseReturnValue:
    return render_template("logged_out.html")


@bp.get("/logout/progress/<run>")
def progress(run: str) -> ResponseReturnValue:
    found = _single_logout().runs.get(run)
    if found is None:
        return render_template("logged_out.html")  # already finished, or expired: logged out either way
    frames = [(entry, _frame_url(found, i, entry)) for i, entry in enumerate(found.frontchannel)]
    for entry in found.frontchannel:
        allow_frame_source(entry.reaches)
    return render_template("logout_progress.html", frames=frames, timeout=FRONTCHANNEL_TIMEOUT,
                           next_url=url_for("logout.finish", run=found.id))


def _frame_url(run: LogoutRun, index: int, entry: FrontChannel) -> str:
    # An OIDC relying party's own front-channel URI; for a SAML service provider, our page that
    # sends it a LogoutRequest (idp.web.saml).
    if entry.protocol == PROTOCOL_SAML:
        return url_for("saml.slo_send", run=run.id, index=index)
    return entry.reaches


@bp.get("/logout/finish/<run>")
def finish(run: str) -> ResponseReturnValue:
    runs = _single_logout().runs
    found = runs.take(run)
    if found is None:
        return render_template("logged_out.html")
    return _answer(found, runs.confirmed(found))


def _answer(run: LogoutRun, confirmed: set[int]) -> ResponseReturnValue:
    for kind, function in _FINISHERS.items():
        if kind in run.finish:
            return function(run, confirmed)
    target, missing = run.finish.get("target"), unconfirmed(run, confirmed)
    # A relying party's post-logout URI is where it asked the browser to go (RP-Initiated Logout);
    # a page of ours gives way to the logged-out page when a service may still have the patron in.
    if target and not (missing and target.startswith("/")):
        return redirect(target, 303)
    return render_template("logged_out.html", unconfirmed=missing)


def unconfirmed(run: LogoutRun, confirmed: set[int]) -> list[str]:
    """The names of the SAML service providers of ``run`` that did not confirm their logout."""
    return [run.frontchannel[i].name for i in run.saml_indexes() if i not in confirmed]

