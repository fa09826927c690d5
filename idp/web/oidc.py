"""OpenID Connect endpoints: HTTP in and out of the protocol core (idp.oidc).

The views read the request, call idp.oidc (authorization, token_endpoint, userinfo) and render
what comes back: a page, a redirect, JSON, or an idp.oidc.errors.OidcError as its status,
headers and body."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlencode

from flask import Blueprint, jsonify, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from werkzeug.wrappers import Response

from idp import relying_parties
from idp.assurance import required_level
from idp.auth.logins import PendingRequest
from idp.oidc.authorization import (claims_decision, issue_code, parse_authentication_request, registered_redirect,
                                    settle_claims)
from idp.oidc.errors import (AccessDenied, ConsentRequired, InvalidRequest, LoginRequired, OidcError, Reason,
                             TemporarilyUnavailable, Unanswerable, UnmetAuthenticationRequirements)
from idp.oidc.flow import CodeGrant
from idp.oidc.hints import read_id_token_hint
from idp.oidc import token_admin
from idp.oidc.token_endpoint import token_response
from idp.oidc.userinfo import bearer_access, userinfo_claims
from idp.oidc.wiring import OidcParts
from idp.registry import consents
from idp.web import services
from idp.web.authorize_checks import request_problem, unambiguous_target
from idp.web.errors import OUTAGE_ERRORS, error_page, is_outage, log_outage, unexpected
from idp.web import login_methods, waiting
from idp.web.logged_in import current_login
from idp.web.logout import log_out
from idp.web.login_session import login_session_id
from idp.web.pending import authenticate_then, consent_page, give_consent, session_meets
from idp.web.security import allow_form_target

bp = Blueprint("oidc", __name__)
PENDING = "oidc_pending"
LOGOUT_PENDING = "oidc_logout_pending"


def _oidc() -> OidcParts:
    return services().oidc


def _issuer() -> str:
    return services().settings.issuer


def _error_redirect(params: dict[str, Any], error: OidcError) -> Response:
    """The error response at a redirect URI already known to be registered."""
    allow_form_target(params["redirect_uri"])
    return redirect(error.redirect_url(params["redirect_uri"], state=params.get("state"), issuer=_issuer()), 303)


def _registered_redirect(params: dict[str, Any]) -> bool:
    return registered_redirect(_oidc().provider, params)


def _error_page(message: str, status: int = 400) -> ResponseReturnValue:
    return error_page(message, status)


def _refuse(params: dict[str, Any], error: OidcError) -> ResponseReturnValue:
    """An invalid authentication request: the error goes to a registered redirect URI, else to the patron."""
    if unambiguous_target(request.values) and _registered_redirect(params):
        return _error_redirect(params, error)
    return _error_page(_("The service that sent you here made an invalid login request."))


def _json_error(error: OidcError) -> ResponseReturnValue:
    """An error from the token or userinfo endpoint: its status, headers and JSON body."""
    response = jsonify(error.body())
    response.status_code = error.http_status
    response.headers.update(error.headers())
    return response


def _unavailable(exc: Exception) -> ResponseReturnValue:
    """Redis or the database down during a login request: the relying party hears temporarily_unavailable
    at a redirect URI known to be registered; every other answer is the app's (idp.web.errors)."""
    params = dict(request.values.items())
    if request.endpoint == "oidc.authorize" and is_outage(exc):
        try:
            known = unambiguous_target(request.values) and _registered_redirect(params)
        except OUTAGE_ERRORS:
            known = False  # the database is down too: no registered redirect URI to check against
        if known:
            log_outage(exc)
            return _error_redirect(params, TemporarilyUnavailable("the service is briefly unavailable"))
    return unexpected(exc)


for _outage in OUTAGE_ERRORS:
    bp.register_error_handler(_outage, _unavailable)


# -- discovery --------------------------------------------------------------------------------

@bp.get("/.well-known/openid-configuration")
def discovery() -> ResponseReturnValue:
    response = jsonify(_oidc().provider.provider_configuration.to_dict())
    response.headers["Cache-Control"] = "public, max-age=3600"
    return response


@bp.get("/jwks")
def jwks() -> ResponseReturnValue:
    response = jsonify(_oidc().provider.jwks)
    response.headers["Cache-Control"] = "public, max-age=3600"
    return response


# -- authorization ----------------------------------------------------------------------------

@bp.route("/authorize", methods=["GET", "POST"])
def authorize() -> ResponseReturnValue:
    params = dict(request.values.items())
    problem = request_problem(request.values)
    if problem is not None:
        return _refuse(params, problem)
    try:
        parsed = parse_authentication_request(_oidc().provider, params)
    except Unanswerable as exc:
        # No registered redirect URI to send the error to: tell the patron instead.
        if exc.reason is Reason.UNKNOWN_CLIENT:
            return _error_page(_("The service that sent you here is not registered with us, or sent you from an "
                                 "address it has not registered. Go back to the service and try again."))
        return _error_page(_("The service that sent you here made an invalid login request."))
    except OidcError as exc:
        return _refuse(params, exc)
    with services().registry("oidc") as reg:
        rp = relying_parties.get(reg, parsed["client_id"])
        refusal = relying_parties.refusal_reason(rp, reg.today())
        needed = required_level(rp.min_acr, parsed.get("acr_values"))
        rp_name = rp.name
        decision = claims_decision(rp, parsed)
    if refusal is not None:
        deny_url = _error_redirect(params, AccessDenied(f"relying party {refusal}")).location
        return render_template("not_approved.html", rp_name=rp_name, back_url=deny_url), 403
    if decision.refused:
        # Before any login: the patron could not give this service what it insists on anyway.
        return _error_redirect(params, AccessDenied("the policy for this client does not allow the essential "
                                                    f"claim(s) {', '.join(decision.forbidden_essential)}"))
    if not login_methods.can_reach(needed):
        return _error_redirect(params, UnmetAuthenticationRequirements(
            f"this provider cannot yet authenticate at {needed}"))
    waiting.store(PendingRequest("oidc", needed, int(time.time()),
                                 fresh="login" in parsed.get("prompt", []) or ("max_age" in parsed and
                                                                              int(parsed["max_age"]) == 0),
                                 max_age=int(parsed["max_age"]) if "max_age" in parsed else None,
                                 payload={"params": params}))
    return _proceed(parsed)


@bp.get("/authorize/resume")
def resume() -> ResponseReturnValue:
    if PENDING not in session:
        return _error_page(_("This login has expired or was already completed. Go back to the service "
                             "and start again."))
    return _proceed()


def _session_is_good_enough(pending: PendingRequest) -> bool:
    return session_meets(pending)


def _proceed(parsed: Any = None) -> ResponseReturnValue:
    """Log in, ask consent, or issue the code: whichever the pending request needs next.

    ``parsed`` is given when the request was just parsed; a resumed one is parsed again from
    the session (pyop's message objects do not survive JSON).
    """
    pending = waiting.load("oidc")
    assert pending is not None  # noqa: S101 - the callers checked
    params = pending.payload["params"]
    if parsed is None:
        parsed = _oidc().provider.parse_authentication_request(urlencode(params))
    if not _session_is_good_enough(pending):
        if "none" in parsed.get("prompt", []):
            session.pop(PENDING, None)
            return _error_redirect(params, LoginRequired("the patron must log in"))
        return authenticate_then(pending)
    patron_id = int(session["patron_id"])
    with services().registry("oidc") as reg:
        rp = relying_parties.get(reg, parsed["client_id"])
        released = list(claims_decision(rp, parsed).released)
        rp_name = rp.name
        agreed = consents.has_consent(reg, patron_id, rp.client_id, released)
    if "consent" in parsed.get("prompt", []) or not agreed:
        if "none" in parsed.get("prompt", []):
            session.pop(PENDING, None)
            return _error_redirect(params, ConsentRequired("the patron must consent"))
        waiting.store(pending.with_payload(released=released))
        return consent_page(rp_name, released, "oidc.consent")
    return _issue_code(parsed, params, patron_id, released)


@bp.post("/authorize/consent")
def consent() -> ResponseReturnValue:
    pending = waiting.load("oidc")
    login = current_login()
    if pending is None or "released" not in pending.payload or login is None:
        return _error_page(_("This login has expired or was already completed. Go back to the service "
                             "and start again."))
    params = pending.payload["params"]
    if request.form.get("decision") != "allow":
        session.pop(PENDING, None)
        return _error_redirect(params, AccessDenied("the patron declined"))
    released = list(pending.payload["released"])
    give_consent(login.patron_id, params["client_id"], released)
    parsed = _oidc().provider.parse_authentication_request(urlencode(params))
    return _issue_code(parsed, params, login.patron_id, released)


def _issue_code(parsed: Any, params: dict[str, Any], patron_id: int, released: list[str]) -> ResponseReturnValue:
    try:
        with services().registry("oidc") as reg:
            values = settle_claims(reg, parsed["client_id"], patron_id, released)
    except LoginRequired as exc:
        session.clear()
        return _error_redirect(params, exc)
    login = current_login()
    assert login is not None and login.patron_id == patron_id  # noqa: S101 - _proceed and consent checked
    location = issue_code(_oidc(), parsed, CodeGrant(
        patron_id=patron_id, client_id=parsed["client_id"], acr=login.acr,
        amr=list(login.amr), auth_time=login.auth_time, claims=released,
        values=values, sid=login_session_id()), _issuer())
    session.pop(PENDING, None)
    allow_form_target(parsed["redirect_uri"])
    return redirect(location, 303)


# -- token ------------------------------------------------------------------------------------

def _machine_endpoint(answer: Callable[[OidcParts, dict[str, str], str | None, str | None], Any]
                      ) -> ResponseReturnValue:
    """A form POST from a client (token, revocation, introspection): ``answer``'s JSON, never cached."""
    if request.mimetype != "application/x-www-form-urlencoded":
        return _json_error(InvalidRequest("the body must be application/x-www-form-urlencoded"))
    fields = dict(parse_qsl(request.get_data(as_text=True)))
    try:
        body = answer(_oidc(), fields, request.headers.get("Authorization"), request.remote_addr)
    except OidcError as exc:
        return _json_error(exc)
    out = jsonify(body) if body is not None else Response(status=200)
    out.headers["Cache-Control"] = "no-store"
    out.headers["Pragma"] = "no-cache"
    return out


@bp.post("/token")
def token() -> ResponseReturnValue:
    return _machine_endpoint(lambda parts, fields, authorization, address: token_response(
        parts, services().state, fields, authorization, address))


@bp.post("/revoke")
def revoke() -> ResponseReturnValue:
    """RFC 7009: 200 with an empty body, whether or not there was a token of the client's to revoke."""
    return _machine_endpoint(token_admin.revoke)


@bp.post("/introspect")
def introspect() -> ResponseReturnValue:
    return _machine_endpoint(token_admin.introspect)


# -- userinfo ---------------------------------------------------------------------------------

@bp.route("/userinfo", methods=["GET", "POST"])
def userinfo() -> ResponseReturnValue:
    parts = _oidc()
    try:
        access = bearer_access(parts, request.form, request.headers.get("Authorization"))
        with services().registry("oidc") as reg:
            body = userinfo_claims(reg, parts, access)
    except OidcError as exc:
        return _json_error(exc)
    response = jsonify(body)
    response.headers["Cache-Control"] = "no-store"
    return response


# -- logout -----------------------------------------------------------------------------------

@bp.route("/logout/oidc", methods=["GET", "POST"])
def end_session() -> ResponseReturnValue:
    """RP-initiated logout: end our session; go back only to a URI the client registered.

    Any site can send a browser here: only an id_token_hint for the patron logged in here ends the
    session at once, any other request asks the patron first (RP-Initiated Logout 1.0, section 2).
    """
    params = dict(request.values.items())
    target = None
    hint = read_id_token_hint(services().keyring, _issuer(), params["id_token_hint"]) \
        if params.get("id_token_hint") else None
    if params.get("id_token_hint") and hint is None:
        return _error_page(_("The logout request was not valid."))
    client_id = hint.client_id if hint else None
    post_logout = params.get("post_logout_redirect_uri")
    if post_logout and client_id:
        with services().registry("oidc") as reg:
            rp = relying_parties.get(reg, client_id)
            if post_logout in rp.redirect_uris:
                query = urlencode({"state": params["state"]}) if params.get("state") else ""
                target = post_logout + (("&" if "?" in post_logout else "?") + query if query else "")
    if hint is None or not hint.names(session.get("patron_id"), _oidc().subjects):
        session[LOGOUT_PENDING] = {"target": target}
        if target:
            allow_form_target(target)
        return render_template("logout_confirm.html")
    return _log_out(target, client_id)


@bp.post("/logout/oidc/confirm")
def confirm_logout() -> ResponseReturnValue:
    """The patron's answer to a logout request we could not tie to them (a CSRF-checked form)."""
    pending = session.pop(LOGOUT_PENDING, None)
    if request.form.get("decision") != "logout":
        return redirect(url_for("pages.landing"), 303)
    return _log_out(pending.get("target") if isinstance(pending, dict) else None, None)


def _log_out(target: str | None, client_id: str | None) -> ResponseReturnValue:
    # Everywhere the login reached except the relying party asking (idp.web.logout), and upstream
    # (ID-porten, a federation), which then sends the browser on to ``target``.
    return log_out(finish={"target": target}, initiator=client_id)
