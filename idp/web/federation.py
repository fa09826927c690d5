"""Log in with a university's or municipality's account (UniMoRe-style): thin views over
idp.auth.federation (our SAML service provider) and idp.registry.upstream (the links).

The university's answer arrives as a cross-site POST (HTTP-POST binding), which carries no
session cookie (``SameSite=Lax``). So the request we sent is kept in the state store under its
ID (taken out, single-use, by the answer), and the verified answer waits there, encrypted, for
two minutes under a random token, while the browser is sent on to ``/federation/complete``: a
top-level GET that does carry the cookie, and that only the session that started the login
can finish (no one can push their university login into another person's browser).

A first login links the account to a patron: automatically when the university sends a
national identity number that a national account holds, otherwise the member names their card
and proves it with the card's password, and then a one-time code goes to the e-mail address or
phone registered for it (idp.auth.otp). The password comes first so that typing someone else's
card number sends them nothing; an unknown card gets the same page after the same work, and
wrong passwords count towards the card's 10 a day, shared with the login page (idp.web.limits).

Logging out of a federation login ends it at the university too, when its metadata has a
SingleLogoutService: the login kept the assertion's NameID and SessionIndex (sealed, in the
session's upstream state), the logout sends them in a signed LogoutRequest, and the signed
LogoutResponse comes back to ``/federation/slo`` (a cross-site POST or a GET: neither needs our
cookie, since the logout cleared the session already), which sends the browser on to where the
logout was going (idp.web.upstream_logout keeps that, under the RelayState).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import secrets
import time
from dataclasses import asdict
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from flask import (Blueprint, Flask, Response, current_app, make_response, redirect, render_template, request, session,
                   url_for)
from flask.typing import ResponseReturnValue
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy.exc import SQLAlchemyError
from wtforms import StringField
from werkzeug.wrappers import Response as WerkzeugResponse
from wtforms.validators import DataRequired, Length

from idp.assurance import rank
from idp.auth import otp
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT

from idp.auth.federation import (REQUEST_TTL, FederationError, FederationFailure, FederationLogin, FederationSp,
                                 IncomingLogout, LogoutMessage, ServiceProvider, UpstreamSession, card_owner,
                                 finish_login, in_response_to, logout_request_issuer, logout_response_to,
                                 resolve_login, withhold_pysaml2_values)
from idp.auth.patron_sessions import SESSION_TTL
from idp.auth.logins import LoggedIn, Upstream
from idp.auth.password import looks_like_pin
from idp.errors import Conflict, IdpError, NotAllowed, NotFound
from idp.oidc.flow import FAMILY_TTL
from idp.registry import upstream
from idp.registry.models import Patron
from idp.registry.national_id import parse_national_id
from idp.settings import Settings
from idp.single_logout import LogoutRun
from idp.web import clock_seconds, login_methods, services, waiting
from idp.web import upstream_logout as logout_state
from idp.web.forms import LoginForm, PatronForm
from idp.web import logout
from idp.web.logged_in import complete_login, current_login
from idp.web.logout import log_out
from idp.web.login_session import SID, end_login_session, login_session_id
from idp.web.login import safe_next
from idp.web.login_methods import Button, LoginMethod, Offer
from idp.web.security import allow_form_target

log = logging.getLogger("idp.web.federation")
bp = Blueprint("federation", __name__, url_prefix="/federation")

EXTENSION = "idp-federation-sp"
STARTED = "federation_login"   # the login sent to a federation: request ID, federation, where to go after
LINKING = "federation_link"    # a verified account that is linked to no patron yet
UPSTREAM = "federation"        # the method's name: a login's federation, in the session
RESULT_TTL = 120
# A logout the university asked for ends with our LogoutResponse to it (idp.web.logout's finish).
FEDERATION_ANSWER = "federation_logout_response"
SEEN_TTL = REQUEST_TTL + 120  # a federation's LogoutRequest ID, remembered longer than its IssueInstant is accepted
LINK_TTL = 900
_SEAL_RESULT = b"federation/result"
_SEAL_LINK = b"federation/link"
_SEAL_SESSION = b"federation/session/name-id"


def install(app: Flask, settings: Settings) -> None:
    withhold_pysaml2_values()
    app.register_blueprint(bp)
    app.before_request(_upstream_session)
    login_methods.register(app, METHOD)
    _warn_unverified(app.extensions["idp"].read)


def _warn_unverified(read: Callable[..., Any]) -> None:
    """At start: a warning for each federation whose metadata is used without a signature check."""
    try:
        names = upstream.unverified_federations(read)
    except SQLAlchemyError as exc:  # no database yet, or an old schema: the start's own checks say so
        log.warning("federations not checked for metadata certificates: %s", type(exc).__name__)
        return
    for name in names:
        log.warning("%s", upstream.UNVERIFIED_WARNING.format(name=name))


def _levels() -> tuple[str, ...]:
    return tuple(fed.top_level for fed in upstream.federation_choices(services().read))


def _offer(needed: str, next_url: str) -> Offer | None:
    """A button for each federation whose top level reaches ``needed``."""
    buttons = tuple(Button(_("Log in with %(federation)s account", federation=fed.display_name),
                           url_for("federation.start", name=fed.name, next=next_url))
                    for fed in upstream.federation_choices(services().read) if rank(needed) <= rank(fed.top_level))
    return Offer(buttons=buttons) if buttons else None


def _sp() -> FederationSp:
    """Built on first use: a server with no federations needs no service-provider key."""
    sp = current_app.extensions.get(EXTENSION)
    if sp is None:
        try:
            sp = FederationSp(ServiceProvider.for_settings(services().settings))
        except FederationError as exc:
            log.error("federation service provider: %s", exc)  # for the operator: names the key or setting
            raise
        current_app.extensions[EXTENSION] = sp
    return sp


def _seal(data: dict[str, Any], context: bytes) -> str:
    return base64.b64encode(services().cipher.encrypt(json.dumps(data), context=context)).decode("ascii")


def _unseal(value: Any, context: bytes) -> dict[str, Any] | None:
    if not isinstance(value, (str, bytes)):
        return None
    try:
        data = json.loads(services().cipher.decrypt(base64.b64decode(value), context=context))
    except (IdpError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _login_to_dict(login: FederationLogin) -> dict[str, Any]:
    return {"federation": login.federation, "subject": login.subject, "values": login.values, "level": login.level,
            "amr": login.amr, "nid": login.national_id.value if login.national_id else None,
            "auth_time": login.auth_time, "session": login.session.to_dict() if login.session else None}


def _login_from_dict(data: dict[str, Any]) -> FederationLogin:
    return FederationLogin(federation=str(data["federation"]), subject=str(data["subject"]),
                           national_id=parse_national_id(data["nid"]) if data.get("nid") else None,
                           values=dict(data.get("values") or {}), level=str(data["level"]),
                           amr=list(data.get("amr") or []), auth_time=data.get("auth_time"),
                           session=UpstreamSession.from_dict(data.get("session")))


_MESSAGES: Mapping[FederationFailure, Callable[[], str]] = {
    FederationFailure.UNKNOWN: lambda: _("This login is not available. Choose another way to log in."),
    FederationFailure.CONFIG: lambda: _("Logging in this way does not work just now. Try again later, or choose "
                                        "another way to log in."),
    FederationFailure.STATE: lambda: _("This login has expired or was already completed. Start the login again."),
    FederationFailure.STATUS: lambda: _("Your university or municipality did not log you in. You are not logged "
                                        "in here."),
    FederationFailure.ATTRIBUTE: lambda: _("Your university or municipality did not tell us who you are, so you "
                                           "cannot log in this way. Ask them, or choose another way to log in."),
}
_UNVERIFIED = _l("The answer from your university or municipality could not be verified, so you are not logged in. "
                 "Start the login again.")
_STATUS = {FederationFailure.CONFIG: 503, FederationFailure.UNKNOWN: 404}  # else 400
_NO_RETRY = {FederationFailure.UNKNOWN, FederationFailure.CONFIG}  # starting again would fail the same way


def _failure(exc: FederationError, federation: str | None = None) -> ResponseReturnValue:
    log.warning("federation login failed: %s", exc.kind.value)
    status = _STATUS.get(exc.kind, 400)
    again = url_for("federation.start", name=federation) if federation and exc.kind not in _NO_RETRY else None
    message = _MESSAGES[exc.kind]() if exc.kind in _MESSAGES else _UNVERIFIED
    return render_template("federation_error.html", status=status, message=message, kind=exc.kind.value,
                           again=again), status


# -- our metadata ---------------------------------------------------------------------------------

@bp.get("/metadata.xml")
def metadata() -> ResponseReturnValue:
    """Our service provider's metadata, for the federations' operators."""
    try:
        xml = _sp().metadata_xml()
    except FederationError as exc:
        return _failure(exc)
    return Response(xml, mimetype="application/samlmetadata+xml",
                    headers={"Cache-Control": "public, max-age=3600"})


# -- the login --------------------------------------------------------------------------------------

@bp.get("/<name>/login")
def start(name: str) -> ResponseReturnValue:
    with services().registry("web") as reg:
        try:
            federation = upstream.get_federation(reg, name)
        except NotFound:
            federation = None
        if federation is None or not federation.enabled:
            return _failure(FederationError(FederationFailure.UNKNOWN, "no such federation"))
        # A service asking for a fresh login (prompt=login, max_age, ForceAuthn) gets one upstream too.
        fresh = waiting.wants_fresh_upstream()
        try:
            url, request_id = _sp().begin(federation, force_authn=fresh)
        except FederationError as exc:
            return _failure(exc)
        federation_name = federation.name
    services().state.put(f"federation:request:{request_id}", json.dumps({"federation": federation_name}).encode(),
                         REQUEST_TTL)
    session[STARTED] = {"request_id": request_id, "federation": federation_name,
                        "next": safe_next(request.args.get("next")), "started": int(time.time()), "fresh": fresh}
    return redirect(url, 303)


@bp.post("/acs")
def acs() -> ResponseReturnValue:
    """The assertion consumer service: the university's answer, posted by the browser (no cookie)."""
    saml_response = request.form.get("SAMLResponse", "")
    request_id = in_response_to(saml_response)
    record = services().state.take(f"federation:request:{request_id}") if request_id else None
    if record is None or request_id is None:
        return _failure(FederationError(FederationFailure.STATE,
                                        "an answer to no request of ours, or one already used"))
    name = json.loads(record)["federation"]
    with services().registry("web") as reg:
        try:
            federation = upstream.get_federation(reg, name)
        except NotFound:
            return _failure(FederationError(FederationFailure.UNKNOWN, "the federation was removed"))
        try:
            login = _sp().verify(federation, saml_response, request_id)
        except FederationError as exc:
            return _failure(exc, name)
    token = secrets.token_urlsafe(32)
    services().state.put(f"federation:result:{token}",
                         _seal({"request_id": request_id, "login": _login_to_dict(login)}, _SEAL_RESULT).encode(),
                         RESULT_TTL)
    return redirect(url_for("federation.complete", result=token), 303)


@bp.get("/complete")
def complete() -> ResponseReturnValue:
    token = request.args.get("result", "")
    raw = services().state.take(f"federation:result:{token}") if 0 < len(token) <= 64 else None
    result = _unseal(raw, _SEAL_RESULT) if raw else None
    started = session.get(STARTED)
    if result is None or not isinstance(started, dict) or started.get("request_id") != result.get("request_id"):
        # Not this browser's login (or it was finished already): nothing is done with it.
        return _failure(FederationError(FederationFailure.STATE, "the answer does not belong to this browser's login"))
    session.pop(STARTED, None)
    login = _login_from_dict(result["login"])
    target = safe_next(started.get("next"))
    try:
        with services().registry("federation") as reg:
            patron_id = resolve_login(reg, login)
    except NotAllowed:
        return render_template("error.html", status=403,
                               message=_("This library card is blocked. Ask your library.")), 403
    if patron_id is None:
        session[LINKING] = {"login": _seal(_login_to_dict(login), _SEAL_LINK), "next": target,
                            "until": clock_seconds() + LINK_TTL, "started": started.get("started", 0),
                            "fresh": bool(started.get("fresh"))}
        return redirect(url_for("federation.link"), 303)
    _log_in(patron_id, login, started)
    return redirect(target, 303)


def _log_in(patron_id: int, login: FederationLogin, started: dict[str, Any]) -> None:
    # When the member authenticated (AuthnInstant), never later than now; after ForceAuthn at least
    # when we sent the browser there, so clock skew cannot undo a fresh login.
    auth_time = min(login.auth_time or int(time.time()), int(time.time()))
    if started.get("fresh"):
        auth_time = max(auth_time, int(started.get("started", 0)))
    # A university password is a password: acr "password" unless its AuthnContext says more.
    complete_login(patron_id, login.level, login.amr, auth_time, upstream=Upstream(UPSTREAM, _upstream_state(login)))
    if login.session is not None:
        # The university's own logout, which may come without our cookie, finds this login by it.
        entry = json.dumps({"sid": login_session_id(), "index": login.session.session_index})
        services().state.index_add(_logins_key(login.federation, login.session.name_id), entry, FAMILY_TTL)


def _upstream_state(login: FederationLogin) -> dict[str, Any]:
    """What logging out at the federation needs: its name, the sealed NameID and SessionIndex, and
    the origin of its SingleLogoutService (the logout form's redirect goes there: see the CSP)."""
    state: dict[str, Any] = {"federation": login.federation}
    if login.session is None:
        return state
    state["slo"] = _seal(login.session.to_dict(), _SEAL_SESSION)
    state["ended"] = _ended_key(login.federation, login.session.name_id)
    state["since"] = int(time.time())  # a logout marked later ends this login; one marked before does not
    try:
        with services().registry("web") as reg:
            service = _sp().logout_service(upstream.get_federation(reg, login.federation))
    except (FederationError, NotFound):
        service = None
    if service is not None:
        parts = urlsplit(service[1])
        state["logout_origin"] = f"{parts.scheme}://{parts.netloc}"
    return state


def _hashed(prefix: str, *parts: str) -> str:
    return prefix + hashlib.sha256("\0".join(parts).encode()).hexdigest()


def _logins_key(federation: str, name_id: str) -> str:
    """Our login sessions that came from ``name_id``'s session at the federation (hashed, as above)."""
    return _hashed("federation:logins-of:", federation, name_id)


def _ended_key(federation: str, name_id: str) -> str:
    """Where a federation's logout of ``name_id`` is marked (hashed: the NameID may identify the member)."""
    return _hashed("federation:ended:", federation, name_id)


def _upstream_session() -> None:
    """Before each request, for a federation login: ended here if its federation's IdP logged the
    member out there (its LogoutRequest came without our cookie: a cross-site POST); otherwise its
    logout form may lead on to the federation's SingleLogoutService (the CSP's form-action)."""
    login = current_login()
    state = login.upstream.state if login is not None and login.upstream is not None else None
    if login is None or login.upstream is None or login.upstream.method != UPSTREAM or not isinstance(state, dict):
        return
    ended = services().state.get(str(state["ended"])) if state.get("ended") else None
    if ended is not None:
        kept = UpstreamSession.from_dict(_unseal(state.get("slo"), _SEAL_SESSION))
        mark = json.loads(ended)
        indexes, at = mark.get("indexes") or [], int(mark.get("at", 0))
        if at >= int(state.get("since", 0)) and (kept is None or not indexes or kept.session_index is None
                                                  or kept.session_index in indexes):
            end_login_session()
            session.clear()
            return
    if state.get("logout_origin"):
        allow_form_target(str(state["logout_origin"]))


# -- single logout --------------------------------------------------------------------------------------

def _logout_request_key(request_id: str) -> str:
    return f"federation:logout-request:{request_id}"


def upstream_logout(login: LoggedIn | None, after: str | None) -> WerkzeugResponse | None:
    """Called before the session is cleared at logout: for a federation login whose federation has a
    SingleLogoutService, the signed LogoutRequest (a redirect, or an auto-posted form) that ends the
    member's session there too and then comes back to ``after`` through /federation/slo. None when
    there is nothing to end upstream (no SLO service, no NameID kept, or a session from before)."""
    if login is None or login.upstream is None or login.upstream.method != UPSTREAM:
        return None
    state = login.upstream.state
    if not isinstance(state, dict):
        return None  # a session from before single logout: the federation's name only
    kept = UpstreamSession.from_dict(_unseal(state.get("slo"), _SEAL_SESSION))
    name = state.get("federation")
    if kept is None or not isinstance(name, str):
        return None
    relay_state = secrets.token_urlsafe(24)
    try:
        with services().registry("web") as reg:
            message = _sp().logout_request(upstream.get_federation(reg, name), kept, relay_state)
    except (FederationError, NotFound) as exc:
        log.warning("federation %s: no single logout (%s)", name, type(exc).__name__)
        return None
    if message is None:
        return None
    logout_state.away(UPSTREAM, after, token=relay_state)
    services().state.put(_logout_request_key(message.request_id),
                         json.dumps({"federation": name, "relay": relay_state}).encode(), logout_state.LOGOUT_TTL)
    return make_response(_send(message, name))


@bp.route("/slo", methods=["GET", "POST"])
def slo() -> ResponseReturnValue:
    """Our SingleLogoutService (HTTP-Redirect and HTTP-POST): the federation's LogoutResponse."""
    fields: Mapping[str, str] = request.form if request.method == "POST" else request.args
    binding = BINDING_HTTP_POST if request.method == "POST" else BINDING_HTTP_REDIRECT
    raw_query = request.query_string if request.method == "GET" else None
    if "SAMLResponse" in fields:
        return _logout_answer(binding, fields.get("SAMLResponse", ""), raw_query)
    if "SAMLRequest" in fields:
        return _logout_asked(binding, fields.get("SAMLRequest", ""), raw_query, fields.get("RelayState"))
    log.warning("federation logout refused: neither a LogoutResponse nor a LogoutRequest")
    return _logout_unconfirmed()


def _logout_answer(binding: str, message: str, raw_query: bytes | None) -> ResponseReturnValue:
    request_id = logout_response_to(binding, message)
    record = services().state.take(_logout_request_key(request_id)) if request_id else None
    if record is None or request_id is None:
        log.warning("federation logout answer refused: %s", FederationFailure.STATE.value)
        return _logout_unconfirmed()
    sent = json.loads(record)
    name = str(sent.get("federation"))
    kept = logout_state.back(UPSTREAM, sent.get("relay"))
    try:
        with services().registry("web") as reg:
            success = _sp().verify_logout_response(upstream.get_federation(reg, name), binding, message, raw_query,
                                                   request_id)
    except NotFound:
        log.warning("federation logout answer refused: %s", FederationFailure.UNKNOWN.value)
        return _logout_unconfirmed()
    except FederationError as exc:
        log.warning("federation %s: logout answer refused: %s", name, exc.kind.value)
        return _logout_unconfirmed()
    if not success:
        # Logged out here all the same: the member goes on, and the operator learns the university did not.
        log.warning("federation %s: the logout there did not succeed (non-Success status)", name)
    return logout_state.go_on(kept.get("after") if kept else None)


def _logout_asked(binding: str, message: str, raw_query: bytes | None, relay_state: str | None) -> ResponseReturnValue:
    """The federation's IdP ends the member's session there and asks us to end ours: verified, once;
    the login it names ends (in this browser at once, in any other at its next request), and the IdP
    gets a signed LogoutResponse."""
    issuer = logout_request_issuer(binding, message)
    if relay_state is not None and (len(relay_state) > 80 or not relay_state.isprintable()):
        relay_state = None  # SAML bindings: at most 80 bytes; anything else is not passed back
    try:
        with services().registry("web") as reg:
            federation = upstream.federation_for_entity(reg, issuer) if issuer else None
            if federation is None:
                raise FederationError(FederationFailure.UNKNOWN, "a logout request from no federation of ours")
            name = federation.name
            incoming = _sp().accept_logout_request(federation, binding, message, raw_query)
            if services().state.incr(_hashed("federation:logout-seen:", name, incoming.request_id), SEEN_TTL) > 1:
                raise FederationError(FederationFailure.STATE, "a logout request already used")
            answer = _sp().logout_response(federation, incoming.request_id, relay_state)
    except FederationError as exc:
        log.warning("federation logout request refused: %s", exc.kind.value)
        return render_template("error.html", status=400,
                               message=_("This logout request could not be verified. Nothing was changed.")), 400
    log.info("federation %s: logged out at its request", name)
    if _end_named(name, incoming):
        # This browser's login: ended everywhere it reached before the university gets its answer.
        return log_out(finish={FEDERATION_ANSWER: {"name": name, "answer": asdict(answer)}})
    return _send(answer, name)


@logout.finisher(FEDERATION_ANSWER)
def _answer_after_logout(run: LogoutRun, confirmed: set[int]) -> ResponseReturnValue:
    kept = run.finish[FEDERATION_ANSWER]
    return _send(LogoutMessage(**kept["answer"]), str(kept["name"]))


def _end_named(name: str, incoming: IncomingLogout) -> bool:
    """Mark the member's login through ``name`` ended (a browser holding it is logged out at its next
    request, its tokens at once); True when this browser holds it, to be logged out now."""
    value = incoming.name_id.text.strip() if incoming.name_id is not None and incoming.name_id.text else ""
    services().state.put(_ended_key(name, value), json.dumps({"indexes": list(incoming.session_indexes),
                                                              "at": int(time.time())}).encode(), SESSION_TTL)
    # Any other browser's login from that session ends now where it can without its browser: its
    # tokens stop working and back-channel relying parties are told (this browser's: by log_out).
    own = session.get(SID)
    for raw in services().state.index_members(_logins_key(name, value)):
        entry = json.loads(raw)
        if entry.get("sid") != own and (not incoming.session_indexes or entry.get("index") in incoming.session_indexes):
            end_login_session(str(entry["sid"]))
    login = current_login()
    state = login.upstream.state if login is not None and login.upstream is not None else None
    if login is None or login.upstream is None or login.upstream.method != UPSTREAM or not isinstance(state, dict) \
            or state.get("federation") != name:
        return False
    kept = UpstreamSession.from_dict(_unseal(state.get("slo"), _SEAL_SESSION))
    if kept is not None and incoming.names(kept):
        session[UPSTREAM] = {"federation": name}  # it asked: no LogoutRequest goes back to it
        return True
    return False


def _send(message: LogoutMessage, name: str) -> ResponseReturnValue:
    if message.fields is None:
        return redirect(message.url, 303)
    allow_form_target(message.url)
    return render_template("saml_post.html", form=message, rp_name=_display_name(name))


def _logout_unconfirmed() -> ResponseReturnValue:
    """A logout answer we cannot trust (or none): a page of ours, and no further redirect."""
    return render_template("federation_logged_out.html"), 400


# -- linking a first login to a card -------------------------------------------------------------------

class CodeForm(PatronForm):
    code = StringField(_l("One-time code"), validators=[DataRequired(message=_l("Enter the code we sent you.")),
                                                         Length(max=16)])


def _linking() -> tuple[dict[str, Any], FederationLogin] | None:
    pending = session.get(LINKING)
    if not isinstance(pending, dict) or int(pending.get("until", 0)) < clock_seconds():
        session.pop(LINKING, None)
        return None
    data = _unseal(pending.get("login"), _SEAL_LINK)
    return (pending, _login_from_dict(data)) if data else None


def _display_name(name: str) -> str:
    with services().registry("web") as reg:
        try:
            return upstream.get_federation(reg, name).display_name
        except NotFound:
            return name


def _purpose(federation: str) -> str:
    return f"link:{federation}"


def _link_page(form: LoginForm, login: FederationLogin, status: int = 200, **extra: Any) -> ResponseReturnValue:
    return render_template("federation_link.html", form=form, federation=_display_name(login.federation),
                           **extra), status


@bp.get("/link")
def link() -> ResponseReturnValue:
    """The first login with this account: which library card is yours? Its number and password."""
    found = _linking()
    if found is None:
        return _failure(FederationError(FederationFailure.STATE, "no account waits to be linked"))
    return _link_page(LoginForm(), found[1])


@bp.post("/link")
def link_submit() -> ResponseReturnValue:
    """The card and its password; then a code goes to the card's e-mail address or phone."""
    found = _linking()
    if found is None:
        return _failure(FederationError(FederationFailure.STATE, "no account waits to be linked"))
    pending, login = found
    # The login page's form and field names: password managers fill it, idp.web.limits reads the card.
    form = LoginForm()
    if not form.validate_on_submit():
        return _link_page(form, login, 400, error=_("Enter your card number and password."))
    if looks_like_pin(form.password.data or ""):
        return _link_page(form, login, 400, pin_help=True)  # nothing checked, so not a guess
    with services().registry("federation") as reg:
        patron_id = card_owner(reg, form.username.data or "", form.password.data or "")
    if patron_id is None:
        # One answer, after the same work, for an unknown card, a wrong password and a blocked card;
        # a 401 counts towards the card's wrong guesses.
        return _link_page(form, login, 401,
                          error=_("The card number or password is not right. Check them and try again."))
    return _send_code(pending, login, patron_id, form)


def _send_code(pending: dict[str, Any], login: FederationLogin, patron_id: int, form: LoginForm) -> ResponseReturnValue:
    """The card's holder proved the password: a code to their e-mail address (else phone)."""
    channels = otp.channels_for(services(), patron_id)
    if not channels:
        return _link_page(form, login, 400, error=_("No e-mail address or phone number is registered for this card, "
                                                    "so we cannot send you a code. Ask your library to add one."))
    try:
        issued = otp.issue_code(services(), patron_id=patron_id, purpose=_purpose(login.federation),
                                channel=channels[0], lang=str(get_locale() or "nb"))
    except otp.TooManyCodes:
        return _link_page(form, login, 429, error=_("Too many codes have been sent in the last hour. Wait a while "
                                                    "before asking for another."))
    except (otp.DeliveryError, otp.NoDestination, NotFound):
        log.warning("could not send a linking code")
        return _link_page(form, login, 503, error=_("We could not send the code just now. Try again in a few "
                                                    "minutes, or choose the other way if you have one."))
    pending.update(patron_id=patron_id, challenge=issued.challenge, masked=issued.masked, spent=False)
    session[LINKING] = pending
    return redirect(url_for("federation.link_code"), 303)


@bp.route("/link/code", methods=["GET", "POST"])
def link_code() -> ResponseReturnValue:
    found = _linking()
    if found is None:
        return _failure(FederationError(FederationFailure.STATE, "no account waits to be linked"))
    pending, login = found
    patron_id, challenge = pending.get("patron_id"), pending.get("challenge")
    if patron_id is None or not challenge:
        return redirect(url_for("federation.link"), 303)  # no code sent: the card and its password first
    form = CodeForm()
    sent = {"address": pending.get("masked", ""), "minutes": max(1, services().settings.otp_code_ttl // 60)}
    if request.method == "GET" or not form.validate_on_submit():
        return render_template("federation_link_code.html", form=form, **sent), (
            400 if request.method == "POST" else 200)
    if pending.get("spent"):
        outcome = otp.CodeOutcome.TOO_MANY_TRIES  # void after too many tries, whatever is typed next
    else:
        outcome = otp.use_code(services(), challenge=challenge, code=form.code.data or "", patron_id=int(patron_id),
                               purpose=_purpose(login.federation)).outcome
        if outcome is otp.CodeOutcome.TOO_MANY_TRIES:
            pending["spent"] = True
            session[LINKING] = pending
    if outcome is not otp.CodeOutcome.OK:
        message = {otp.CodeOutcome.WRONG: _("That code is not right. Check it and try again."),
                   otp.CodeOutcome.EXPIRED: _("That code has expired or was already used. Ask for a new one."),
                   otp.CodeOutcome.TOO_MANY_TRIES: _("Too many wrong codes. Ask for a new one.")}[outcome]
        return render_template("federation_link_code.html", form=form, error=message, **sent), 400
    display_name = _display_name(login.federation)
    try:
        with services().registry("federation") as reg:
            federation = upstream.get_federation(reg, login.federation)
            patron = reg.session.get(Patron, int(patron_id))
            if patron is None:
                raise NotFound("No such patron.")
            identity = upstream.link(reg, federation, login.subject, patron, how="one_time_code")
            linked_id = finish_login(reg, federation, identity, login)
    except (Conflict, NotAllowed, NotFound) as exc:
        session.pop(LINKING, None)
        message = (_("This library card is already linked to another %(federation)s account, or this account to "
                     "another card. Ask your library.", federation=display_name) if isinstance(exc, Conflict)
                   else _("This library card cannot be linked. Ask your library."))
        return render_template("error.html", status=exc.http_status, message=message), exc.http_status
    session.pop(LINKING, None)
    _log_in(linked_id, login, pending)
    return redirect(safe_next(pending.get("next")), 303)


METHOD = LoginMethod(UPSTREAM, levels=_levels, offer=_offer, logout=upstream_logout, upstream=True)

__all__ = ["METHOD", "bp", "install", "upstream_logout"]
