"""The ID-porten login method: thin views over idp.auth.idporten (the OIDC client).

The started login (state, nonce, PKCE verifier) waits in the server-side session and is taken
out at the callback, so it works once. A verified person without a library card waits there
too, with the identity number encrypted under the data key, until they register (30 minutes
at most; the pages are idp.web.idporten_register). Logging out of the IdP also ends the
ID-porten session, and ID-porten's front-channel logout (an iframe, which carries no cookie)
ends ours: it marks the ID-porten session id as ended in the state store, and the next request
of a session holding that id finds it logged out.
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Flask, Response, abort, current_app, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_babel import get_locale
from werkzeug.wrappers import Response as WerkzeugResponse
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from idp.assurance import rank
from idp.auth.idporten import (HIGH, LEVELS, IdPortenClient, IdPortenError, IdPortenFailure, IdPortenIdentity,
                               PendingLogin, is_idporten_level, level_for_need, sid_key)
from idp.auth.logins import LoggedIn, Upstream
from idp.errors import IdpError
from idp.i18n import DEFAULT
from idp.oidc.flow import FAMILY_TTL
from idp.registry import patrons
from idp.settings import Settings
from idp.web import clock_seconds, login_methods, services, waiting
from idp.web import upstream_logout as upstream_logout_state
from idp.web.logged_in import complete_login, current_login, fresh_session
from idp.web.login import safe_next
from idp.web.login_methods import Button, Link, LoginMethod, Notice, Offer
from idp.web.login_session import end_login_session, login_session_id
from idp.web.security import allow_form_target
from idp.web.sessions import SESSION_TTL

log = logging.getLogger("idp.web.idporten")
bp = Blueprint("idporten", __name__)

EXTENSION = "idp-idporten"
STARTED = "idporten_login"     # a login sent to ID-porten, until it comes back (single use)
PERSON = "idporten_person"     # a verified person with no card yet, until they register
UPSTREAM = "idporten"          # the method's name: a login's ID-porten state, for logging out there too
REGISTRATION_TTL = 1800
_SEAL_PERSON = b"idporten/session/person"
_SEAL_HINT = b"idporten/session/id-token"


# -- wiring -----------------------------------------------------------------------------------

def install(app: Flask, settings: Settings) -> None:
    """Create the ID-porten client when it is configured; the routes answer 404 otherwise."""
    if settings.idporten_enabled:
        assert settings.idporten_issuer and settings.idporten_client_id and settings.idporten_client_secret  # noqa: S101 - idporten_enabled means all three
        app.extensions[EXTENSION] = IdPortenClient(
            settings.idporten_issuer, settings.idporten_client_id,
            settings.idporten_client_secret.get_secret_value(), redirect_uri=_our_url(settings, "/idporten/callback"))
    app.register_blueprint(bp)
    app.before_request(_upstream_session_ended)
    login_methods.register(app, METHOD)


def _our_url(settings: Settings, path: str) -> str:
    """Addresses registered at ID-porten are built from the issuer, never from the request's Host."""
    return settings.issuer + path


def client() -> IdPortenClient | None:
    return current_app.extensions.get(EXTENSION)


def _client() -> IdPortenClient:
    found = client()
    if found is None:
        abort(404)
    return found


def _seal(value: str, context: bytes) -> str:
    return base64.b64encode(services().cipher.encrypt(value, context=context)).decode("ascii")


def _unseal(value: Any, context: bytes) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        return services().cipher.decrypt(base64.b64decode(value), context=context)
    except (IdpError, ValueError):
        return None


# -- what the login page offers -------------------------------------------------------------------

def _levels() -> tuple[str, ...]:
    return LEVELS if client() is not None else ()


def _offer(needed: str, next_url: str) -> Offer | None:
    """The ID-porten button when it can reach ``needed``; a notice when nothing else can; the registration links."""
    if client() is None or rank(needed) > rank(HIGH):
        return None
    only = is_idporten_level(needed)
    return Offer(buttons=(Button(_("Log in with ID-porten"), url_for("idporten.start", next=next_url),
                                 id="idporten-login", instead=_("Log in with ID-porten instead")),),
                 notice=Notice("level-help", _("This service requires a login with ID-porten.")) if only else None,
                 links=() if only else (
                     Link(_("No library card? Get one with ID-porten"), url_for("idporten_register.register")),
                     Link(_("Create a card for a child"), url_for("idporten_register.register_child"))))


# -- login ------------------------------------------------------------------------------------

@bp.get("/idporten/login")
def start() -> ResponseReturnValue:
    """Send the browser to ID-porten, at the level the waiting service needs (substantial or high)."""
    idporten = _client()
    target = safe_next(request.args.get("next"))
    # A service asking for a fresh login (prompt=login, max_age, ForceAuthn) gets one at ID-porten too.
    fresh = waiting.wants_fresh_upstream()
    try:
        url, started = idporten.begin(level_for_need(waiting.needed_level()), ui_locales=str(get_locale() or DEFAULT),
                                      prompt="login" if fresh else None)
    except IdPortenError as exc:
        return _failure(exc)
    session[STARTED] = {**started.to_dict(), "next": target, "fresh": fresh}
    return redirect(url, 303)


@bp.get("/idporten/callback")
def callback() -> ResponseReturnValue:
    idporten = _client()
    stored = session.pop(STARTED, None)
    if not isinstance(stored, dict):
        return _failure(IdPortenError(IdPortenFailure.STATE,
                                      "no login was started in this browser, or it was already used"))
    target = safe_next(stored.get("next"))
    try:
        identity = idporten.complete(PendingLogin.from_dict(stored), request.args)
    except IdPortenError as exc:
        return _failure(exc, retry=target)
    with services().registry("idporten") as reg:
        patron = patrons.find_by_national_id(reg, identity.national_id.value)
        if patron is not None and patron.status == "active":
            patrons.record_activity(reg, patron)
            reg.audit("login.idporten", patron_id=patron.id, acr=identity.acr)
        patron_id, active = (patron.id, patron.status == "active") if patron is not None else (None, False)
    if patron_id is not None and not active:
        return _page_error(_("This library card is blocked. Ask your library."), 403)
    if patron_id is None:
        # Nobody in the register has this identity number yet: they may register (from 15).
        _remember_person(identity, target, _auth_time(identity, stored))
        return redirect(url_for("idporten_register.register"), 303)
    log_in(patron_id, identity.acr, identity.amr, _auth_time(identity, stored), identity.sid, identity.id_token)
    return redirect(target, 303)


def _auth_time(identity: IdPortenIdentity, stored: dict[str, Any]) -> int:
    """ID-porten's auth_time; after prompt=login, at least the moment we sent the browser there
    (ID-porten authenticated after it), so a few seconds of clock skew cannot undo a fresh login."""
    if stored.get("fresh"):
        return max(identity.auth_time, int(stored.get("started", 0)))
    return identity.auth_time


def log_in(patron_id: int, acr: str, amr: list[str], auth_time: int, sid: str | None, id_token: str | None) -> None:
    """Complete a login through ID-porten, keeping what logging out there needs."""
    complete_login(patron_id, acr, amr, int(auth_time), upstream=Upstream(UPSTREAM, _upstream_state(sid, id_token)))
    if sid:  # ID-porten's front-channel logout, which carries no cookie, finds this login's tokens by it
        services().state.put(_login_of(sid), login_session_id().encode(), FAMILY_TTL)


def _upstream_state(sid: str | None, id_token: str | None) -> dict[str, Any]:
    upstream_state: dict[str, Any] = {"sid": sid_key(sid) if sid else None}
    idporten = client()
    if id_token and idporten is not None:
        upstream_state["hint"] = _seal(id_token, _SEAL_HINT)
        try:
            endpoint = idporten.metadata().end_session_endpoint
        except IdPortenError:
            endpoint = None
        if endpoint:
            parts = urlsplit(endpoint)
            upstream_state["logout_origin"] = f"{parts.scheme}://{parts.netloc}"
    return upstream_state


def _remember_person(identity: IdPortenIdentity, target: str, auth_time: int) -> None:
    fresh_session()
    session[PERSON] = {"nid": _seal(identity.national_id.value, _SEAL_PERSON), "acr": identity.acr,
                       "amr": identity.amr, "auth_time": auth_time, "sid": identity.sid,
                       "hint": _seal(identity.id_token, _SEAL_HINT), "until": clock_seconds() + REGISTRATION_TTL,
                       "next": target}


def waiting_person() -> tuple[dict[str, Any], str] | None:
    """The person ID-porten vouched for who has no card yet (their stored login, identity number), if any."""
    person = session.get(PERSON)
    if not isinstance(person, dict) or int(person.get("until", 0)) < clock_seconds():
        session.pop(PERSON, None)
        return None
    nid = _unseal(person.get("nid"), _SEAL_PERSON)
    return (person, nid) if nid else None


def log_in_waiting_person(person: Mapping[str, Any], patron_id: int) -> None:
    """The verified person registered as ``patron_id``: log them in with the ID-porten login they waited with."""
    log_in(patron_id, person["acr"], person.get("amr") or [], int(person.get("auth_time", time.time())),
           person.get("sid"), _unseal(person.get("hint"), _SEAL_HINT))


_MESSAGES: Mapping[IdPortenFailure, Callable[[], str]] = {
    IdPortenFailure.UNAVAILABLE: lambda: _("ID-porten cannot be reached just now. Try again in a few minutes."),
    IdPortenFailure.REFUSED: lambda: _("The login at ID-porten was cancelled or did not succeed. You are not "
                                       "logged in."),
    IdPortenFailure.STATE: lambda: _("This ID-porten login has expired or was already completed. Start the login "
                                     "again."),
    IdPortenFailure.TOKEN: lambda: _("ID-porten did not confirm this login. Start the login again."),
    IdPortenFailure.ACR: lambda: _("ID-porten confirmed who you are at a lower security level than this service "
                                   "requires. Log in again and choose a method with a higher level, such as BankID."),
    IdPortenFailure.PID: lambda: _("ID-porten did not give a Norwegian identity number we can use, so you cannot "
                                   "log in this way."),
}
_UNVERIFIED = _l("The answer from ID-porten could not be verified, so you are not logged in. Start the login again.")
_DETAILS: Mapping[IdPortenFailure, Callable[[], str]] = {
    IdPortenFailure.SIGNATURE: lambda: _("Its signature is not valid."),
    IdPortenFailure.ISSUER: lambda: _("It was not issued by ID-porten."),
    IdPortenFailure.AUDIENCE: lambda: _("It was issued for another service."),
    IdPortenFailure.EXPIRED: lambda: _("It has expired."),
    IdPortenFailure.NONCE: lambda: _("It does not belong to this login."),
}
_STATUS = {IdPortenFailure.UNAVAILABLE: 502, IdPortenFailure.ACR: 403}  # else 400


def _failure(exc: IdPortenError, retry: str | None = None) -> ResponseReturnValue:
    # The kind only: the message is ours and harmless, but the log needs no more than the kind.
    log.warning("ID-porten login failed: %s", exc.kind.value)
    status = _STATUS.get(exc.kind, 400)
    message = _MESSAGES[exc.kind]() if exc.kind in _MESSAGES else _UNVERIFIED
    detail = _DETAILS[exc.kind]() if exc.kind in _DETAILS else None
    again = url_for("idporten.start", next=retry) if retry and client() is not None else None
    return render_template("idporten_error.html", status=status, message=message, detail=detail,
                           kind=exc.kind.value, again=again), status


def _page_error(message: str, status: int) -> ResponseReturnValue:
    return render_template("error.html", status=status, message=message), status


# -- logout -------------------------------------------------------------------------------------

def upstream_logout(login: LoggedIn | None, after: str | None) -> WerkzeugResponse | None:
    """Called before the session is cleared at logout: if it logged in with ID-porten (or a verified
    person waits to register), the redirect that ends the ID-porten session too and then comes back to
    ``after`` (the logout's last step here, idp.web.logout). None when there is nothing to end upstream."""
    idporten = client()
    if login is not None and login.upstream is not None and login.upstream.method == UPSTREAM:
        state_in_session = login.upstream.state
    else:
        state_in_session = session.get(PERSON)
    if idporten is None or not isinstance(state_in_session, dict):
        return None
    hint = _unseal(state_in_session.get("hint"), _SEAL_HINT)
    state = upstream_logout_state.away(UPSTREAM, after)
    try:
        url = idporten.end_session_url(hint, _our_url(services().settings, "/idporten/logged-out"), state)
    except IdPortenError as exc:
        log.warning("could not end the ID-porten session: %s", exc.kind.value)
        return None
    if url is None:
        return None
    return redirect(url, 303)


@bp.get("/idporten/logged-out")
def logged_out() -> ResponseReturnValue:
    """ID-porten sends the browser back here after its logout."""
    kept = upstream_logout_state.back(UPSTREAM, request.args.get("state"))
    return upstream_logout_state.go_on(kept.get("after") if kept else None)


@bp.get("/idporten/logout/frontchannel")
def frontchannel_logout() -> ResponseReturnValue:
    """ID-porten's front-channel logout (OpenID Connect Front-Channel Logout, loaded in an iframe)."""
    idporten = _client()
    sid = idporten.frontchannel_sid(request.args)
    if sid is None:
        return Response("", status=400)
    services().state.put(sid_key(sid), b"1", SESSION_TTL)
    login = services().state.take(_login_of(sid))
    if login is not None:
        # The tokens issued in that login end now, and back-channel relying parties are told (no
        # browser of ours is here to do front-channel work: ID-porten framed this page).
        end_login_session(login.decode())
    session.clear()  # a cookie, should the browser have sent one
    response = Response("", status=200)
    ancestors = " ".join(idporten.allowed_frame_ancestors())
    response.headers["Content-Security-Policy"] = f"default-src 'none'; frame-ancestors {ancestors}"
    return response


def _login_of(sid: str) -> str:
    """Where our login session id for ID-porten session ``sid`` is kept (idp.web.login_session)."""
    return "idporten:login-of:" + sid_key(sid)


def _upstream_session_ended() -> ResponseReturnValue | None:
    """Before each request: a session whose ID-porten session was ended there is logged out here."""
    login = current_login()
    upstream_state = login.upstream.state if login is not None and login.upstream is not None else None
    if login is None or login.upstream is None or login.upstream.method != UPSTREAM or \
            not isinstance(upstream_state, dict):
        return None
    sid = upstream_state.get("sid")
    if sid and services().state.get(sid) is not None:
        end_login_session()
        session.clear()
        return None
    if upstream_state.get("logout_origin"):
        # Logging out here goes on to ID-porten's logout: let this page's forms end there.
        allow_form_target(str(upstream_state["logout_origin"]))
    return None


METHOD = LoginMethod(UPSTREAM, levels=_levels, offer=_offer, logout=upstream_logout, upstream=True)

__all__ = ["METHOD", "bp", "client", "install", "log_in", "log_in_waiting_person", "waiting_person"]
