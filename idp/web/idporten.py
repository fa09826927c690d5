"""ID-porten login, self-registration and a guardian's card for a child: thin views over
idp.auth.idporten (the OIDC client) and the register.

The started login (state, nonce, PKCE verifier) waits in the server-side session and is taken
out at the callback, so it works once. A verified person without a library card waits there
too, with the identity number encrypted under the data key, until they register (30 minutes
at most). Logging out of the IdP also ends the ID-porten session, and ID-porten's
front-channel logout (an iframe, which carries no cookie) ends ours: it marks the ID-porten
session id as ended in the state store, and the next request of a session holding that id
finds it logged out.
"""

from __future__ import annotations

import base64
import json
import logging
import secrets
import time
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Flask, Response, abort, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from wtforms import HiddenField, SelectField, StringField
from wtforms.validators import DataRequired, Length, Regexp

from idp.assurance import HIGHEST_AVAILABLE, LEVELS, WEB_MINIMUM, rank
from idp.auth.idporten import (HIGH, IdPortenClient, IdPortenError, IdPortenIdentity, PendingLogin,
                               is_idporten_level, level_for_need, sid_key)
from idp.errors import Conflict, IdpError, InvalidNationalId, NotAllowed
from idp.i18n import DEFAULT
from idp.oidc.flow import FAMILY_TTL
from idp.registry import guardians, libraries, patrons, upstream
from idp.registry.models import Patron
from idp.registry.national_id import parse_national_id
from idp.settings import Settings
from idp.web import services
from idp.web.forms import PatronForm
from idp.web.login import CARRIED_OVER_LOGIN, safe_next
from idp.web.login_session import end_login_session, login_session_id
from idp.web.security import allow_form_target
from idp.web.sessions import SESSION_TTL, join_patron_sessions, regenerate

log = logging.getLogger("idp.web.idporten")
bp = Blueprint("idporten", __name__)

EXTENSION = "idp-idporten"
STARTED = "idporten_login"     # a login sent to ID-porten, until it comes back (single use)
PERSON = "idporten_person"     # a verified person with no card yet, until they register
UPSTREAM = "idporten"          # this session's ID-porten login: for logging out there too
PENDING_OIDC = "oidc_pending"  # idp.web.oidc.PENDING (by name: importing it here would be circular)
PENDING_SAML = "saml_pending"  # idp.web.saml.PENDING, the same
REGISTRATION_TTL = 1800
LOGOUT_TTL = 600
_SEAL_PERSON = b"idporten/session/person"
_SEAL_HINT = b"idporten/session/id-token"


# -- wiring -----------------------------------------------------------------------------------

def install(app: Flask, settings: Settings) -> None:
    """Create the ID-porten client when it is configured; the routes answer 404 otherwise."""
    if settings.idporten_enabled:
        assert settings.idporten_issuer and settings.idporten_client_id and settings.idporten_client_secret
        app.extensions[EXTENSION] = IdPortenClient(
            settings.idporten_issuer, settings.idporten_client_id,
            settings.idporten_client_secret.get_secret_value(), redirect_uri=_our_url(settings, "/idporten/callback"))
    app.register_blueprint(bp)
    app.before_request(_upstream_session_ended)


def _our_url(settings: Settings, path: str) -> str:
    """Addresses registered at ID-porten are built from the issuer, never from the request's Host."""
    return settings.issuer + path


def client() -> IdPortenClient | None:
    from flask import current_app

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

def waiting_requests() -> list[dict[str, Any]]:
    """The requests waiting for this login: an OIDC relying party's, a SAML service provider's."""
    waiting = []
    oidc = session.get(PENDING_OIDC)
    if isinstance(oidc, dict):
        waiting.append({"needed": oidc.get("needed"), "fresh": bool(oidc.get("fresh"))
                        or "max_age" in (oidc.get("params") or {})})
    saml = session.get(PENDING_SAML)
    if isinstance(saml, dict) and isinstance(saml.get("request"), dict):
        waiting.append({"needed": saml["request"].get("needed"), "fresh": bool(saml["request"].get("force_authn"))})
    return waiting


def needed_level() -> str:
    """The level the waiting service needs (the highest, should two wait), else the web minimum."""
    levels = [w["needed"] for w in waiting_requests() if w["needed"] in LEVELS]
    return max(levels, key=rank) if levels else WEB_MINIMUM


def login_options() -> dict[str, Any]:
    """The ways to log in that can reach the level the waiting service needs (for templates/login.html)."""
    needed = needed_level()
    federations = [{"name": fed.name, "display_name": fed.display_name}
                   for fed in upstream.federation_choices(services().read) if rank(needed) <= rank(fed.top_level)]
    return {
        "needed": needed,
        "password": rank(needed) <= rank(HIGHEST_AVAILABLE),
        "idporten": client() is not None and rank(needed) <= rank(HIGH),
        "idporten_only": client() is not None and is_idporten_level(needed),
        "federations": federations,
    }


@bp.app_context_processor
def _template_helpers() -> dict[str, Any]:
    return {"upstream_login_options": login_options}


# -- login ------------------------------------------------------------------------------------

@bp.get("/idporten/login")
def start() -> ResponseReturnValue:
    """Send the browser to ID-porten, at the level the waiting service needs (substantial or high)."""
    idporten = _client()
    target = safe_next(request.args.get("next"))
    # A service asking for a fresh login (prompt=login, max_age, ForceAuthn) gets one at ID-porten too.
    fresh = any(w["fresh"] for w in waiting_requests())
    try:
        url, started = idporten.begin(level_for_need(needed_level()), ui_locales=str(get_locale() or DEFAULT),
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
        return _failure(IdPortenError("state", "no login was started in this browser, or it was already used"))
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
        return redirect(url_for("idporten.register"), 303)
    _log_in(patron_id, identity.acr, identity.amr, _auth_time(identity, stored), identity.sid, identity.id_token)
    return redirect(target, 303)


def _auth_time(identity: IdPortenIdentity, stored: dict[str, Any]) -> int:
    """ID-porten's auth_time; after prompt=login, at least the moment we sent the browser there
    (ID-porten authenticated after it), so a few seconds of clock skew cannot undo a fresh login."""
    if stored.get("fresh"):
        return max(identity.auth_time, int(stored.get("started", 0)))
    return identity.auth_time


def _log_in(patron_id: int, acr: str, amr: list[str], auth_time: int, sid: str | None, id_token: str | None) -> None:
    kept = {key: session[key] for key in CARRIED_OVER_LOGIN if key in session}
    session.clear()
    regenerate(session)
    session.update(kept)
    session.update(patron_id=patron_id, acr=acr, amr=list(amr), auth_time=int(auth_time), must_change=False)
    join_patron_sessions(session, patron_id)
    upstream_state: dict[str, Any] = {"sid": sid_key(sid) if sid else None}
    if sid:  # ID-porten's front-channel logout, which carries no cookie, finds this login's tokens by it
        services().state.put(_login_of(sid), login_session_id().encode(), FAMILY_TTL)
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
    session[UPSTREAM] = upstream_state


def _remember_person(identity: IdPortenIdentity, target: str, auth_time: int) -> None:
    kept = {key: session[key] for key in CARRIED_OVER_LOGIN if key in session}
    session.clear()
    regenerate(session)
    session.update(kept)
    session[PERSON] = {"nid": _seal(identity.national_id.value, _SEAL_PERSON), "acr": identity.acr,
                       "amr": identity.amr, "auth_time": auth_time, "sid": identity.sid,
                       "hint": _seal(identity.id_token, _SEAL_HINT), "until": int(time.time()) + REGISTRATION_TTL,
                       "next": target}


def _person() -> tuple[dict[str, Any], str] | None:
    person = session.get(PERSON)
    if not isinstance(person, dict) or int(person.get("until", 0)) < time.time():
        session.pop(PERSON, None)
        return None
    nid = _unseal(person.get("nid"), _SEAL_PERSON)
    return (person, nid) if nid else None


_MESSAGES = {
    "unavailable": _l("ID-porten cannot be reached just now. Try again in a few minutes."),
    "refused": _l("The login at ID-porten was cancelled or did not succeed. You are not logged in."),
    "state": _l("This ID-porten login has expired or was already completed. Start the login again."),
    "token": _l("ID-porten did not confirm this login. Start the login again."),
    "acr": _l("ID-porten confirmed who you are at a lower security level than this service requires. Log in "
              "again and choose a method with a higher level, such as BankID."),
    "pid": _l("ID-porten did not give a Norwegian identity number we can use, so you cannot log in this way."),
}
_UNVERIFIED = _l("The answer from ID-porten could not be verified, so you are not logged in. Start the login again.")
_DETAILS = {
    "signature": _l("Its signature is not valid."),
    "issuer": _l("It was not issued by ID-porten."),
    "audience": _l("It was issued for another service."),
    "expired": _l("It has expired."),
    "nonce": _l("It does not belong to this login."),
}


def _failure(exc: IdPortenError, retry: str | None = None) -> ResponseReturnValue:
    # The kind only: the message is ours and harmless, but the log needs no more than the kind.
    log.warning("ID-porten login failed: %s", exc.kind)
    status = {"unavailable": 502, "acr": 403}.get(exc.kind, 400)
    message = _MESSAGES.get(exc.kind, _UNVERIFIED)
    detail = _DETAILS.get(exc.kind)
    again = url_for("idporten.start", next=retry) if retry and client() is not None else None
    return render_template("idporten_error.html", status=status, message=message, detail=detail, kind=exc.kind,
                           again=again), status


def _page_error(message: str, status: int) -> ResponseReturnValue:
    return render_template("error.html", status=status, message=message), status


# -- self-registration --------------------------------------------------------------------------

class RegistrationForm(PatronForm):
    name = StringField(_l("Full name"), validators=[DataRequired(), Length(max=200)])
    home_library = SelectField(_l("Home library"), validators=[DataRequired()], validate_choice=True)
    email = StringField(_l("E-mail address"), validators=[
        DataRequired(), Length(max=254),
        Regexp(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$", message=_l("Enter an e-mail address like name@example.no."))])
    phone = StringField(_l("Mobile phone number"), validators=[
        DataRequired(), Length(max=32),
        Regexp(r"^\+?[\d\s()-]{5,24}$", message=_l("Enter a phone number of 5 to 15 digits, like +47 912 34 567."))])


class ChildForm(PatronForm):
    national_id = StringField(_l("The child's national identity number (11 digits)"),
                              validators=[DataRequired(), Length(max=40)])
    name = StringField(_l("The child's full name"), validators=[DataRequired(), Length(max=200)])
    home_library = SelectField(_l("Home library"), validators=[DataRequired()], validate_choice=True)
    next = HiddenField()


def _library_choices() -> list[tuple[str, str]]:
    with services().registry("web") as reg:
        return [(lib.isil, lib.name) for lib in libraries.libraries_issuing_digital_cards(reg)]


def _register_message(exc: IdpError) -> str:
    """Domain errors in the patron's language where we know them; the register's own words otherwise."""
    if isinstance(exc, InvalidNationalId):
        return _("This is not a valid Norwegian national identity number (fødselsnummer or D-nummer).")
    if isinstance(exc, Conflict):
        return _("This person already has a library card in the national register.")
    if isinstance(exc, NotAllowed) and "Under 15" in exc.message:
        return _("You are under 15: a parent or guardian creates your library card. They log in with ID-porten "
                 "and choose \"Create a card for a child\".")
    if isinstance(exc, NotAllowed) and "From 15" in exc.message:
        return _("From 15 a child registers alone, with their own ID-porten login.")
    return exc.message


@bp.route("/register", methods=["GET", "POST"])
def register() -> ResponseReturnValue:
    """A person ID-porten vouched for, with no card yet, chooses a home library and gives e-mail and phone."""
    if client() is None:
        abort(404)
    if session.get("patron_id") is not None:
        return render_template("register_done.html", card=None, already=True, next=url_for("pages.landing"))
    found = _person()
    if found is None:
        return render_template("register_start.html")
    person, nid = found
    form = RegistrationForm()
    form.home_library.choices = _library_choices()
    if request.method == "GET" or not form.validate_on_submit():
        status = 400 if request.method == "POST" else 200
        return render_template("register.html", form=form), status
    try:
        with services().registry("idporten") as reg:
            patron, card = guardians.register_self(reg, patrons.NewPatron(
                name=form.name.data or "", home_library=form.home_library.data or "", national_id=nid,
                email=form.email.data, phone=form.phone.data))
            patron_id, number = patron.id, card.number
    except IdpError as exc:
        # The transaction rolled back: nothing of the attempt is stored.
        return render_template("register.html", form=form, error=_register_message(exc)), exc.http_status
    target = safe_next(person.get("next"))
    _log_in(patron_id, person["acr"], person.get("amr") or [], int(person.get("auth_time", time.time())),
            person.get("sid"), _unseal(person.get("hint"), _SEAL_HINT))
    return render_template("register_done.html", card=number, already=False, next=target)


def _guardian_logged_in_with_idporten() -> int | None:
    patron_id = session.get("patron_id")
    if patron_id is None or UPSTREAM not in session or not is_idporten_level(session.get("acr")):
        return None
    return int(patron_id)


@bp.route("/register/child", methods=["GET", "POST"])
def register_child() -> ResponseReturnValue:
    """A guardian logged in with ID-porten creates a card for a child under 15."""
    if client() is None:
        abort(404)
    guardian_id = _guardian_logged_in_with_idporten()
    if guardian_id is None:
        return render_template("register_child_login.html",
                               login_url=url_for("idporten.start", next=url_for("idporten.register_child")))
    form = ChildForm()
    form.home_library.choices = _library_choices()
    if request.method == "GET":
        with services().registry("web") as reg:
            guardian = reg.session.get(Patron, guardian_id)
            home = guardian.home_library.isil if guardian is not None else None
        if home in {isil for isil, _name in form.home_library.choices}:
            form.home_library.data = home
        return render_template("register_child.html", form=form)
    if not form.validate_on_submit():
        return render_template("register_child.html", form=form), 400
    try:
        parse_national_id(form.national_id.data or "")
        with services().registry("idporten") as reg:
            guardian = reg.session.get(Patron, guardian_id)
            if guardian is None:
                session.clear()
                return redirect(url_for("login.login_form"), 303)
            _child, card = guardians.register_child(reg, guardian, patrons.NewPatron(
                name=form.name.data or "", home_library=form.home_library.data or "",
                national_id=form.national_id.data))
            number = card.number
    except IdpError as exc:
        return render_template("register_child.html", form=form, error=_register_message(exc)), exc.http_status
    return render_template("register_child_done.html", card=number)


# -- logout -------------------------------------------------------------------------------------

def upstream_logout(after: str | None) -> Response | None:
    """Call before clearing the session at logout: if it logged in with ID-porten, the redirect that
    ends the ID-porten session too and then comes back to ``after`` (a path here, or a relying
    party's registered post-logout URI). None when there is nothing to end upstream."""
    idporten = client()
    state_in_session = session.get(UPSTREAM) or (session.get(PERSON) if isinstance(session.get(PERSON), dict) else None)
    if idporten is None or not isinstance(state_in_session, dict):
        return None
    hint = _unseal(state_in_session.get("hint"), _SEAL_HINT)
    state = secrets.token_urlsafe(24)
    try:
        url = idporten.end_session_url(hint, _our_url(services().settings, "/idporten/logged-out"), state)
    except IdPortenError as exc:
        log.warning("could not end the ID-porten session: %s", exc.kind)
        return None
    if url is None:
        return None
    services().state.put(f"idporten:logout:{state}", json.dumps({"after": after}).encode(), LOGOUT_TTL)
    return redirect(url, 303)


@bp.get("/idporten/logged-out")
def logged_out() -> ResponseReturnValue:
    """ID-porten sends the browser back here after its logout."""
    state = request.args.get("state", "")
    raw = services().state.take(f"idporten:logout:{state}") if 0 < len(state) <= 64 else None
    after = json.loads(raw).get("after") if raw else None
    session.clear()
    if isinstance(after, str) and after and after != url_for("pages.landing"):
        return redirect(after, 303)
    return render_template("logged_out.html")


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
        services().oidc.grants.revoke_session(login.decode())  # the tokens issued in that login end now
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
    upstream_state = session.get(UPSTREAM)
    if not isinstance(upstream_state, dict):
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


__all__ = ["bp", "client", "install", "login_options", "upstream_logout"]
