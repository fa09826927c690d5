"""OpenID Connect endpoints: thin views over pyop (idp.oidc.provider) and idp.oidc.flow."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import parse_qsl, urlencode

from flask import Blueprint, Response, jsonify, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from oic.oic.message import AuthorizationErrorResponse
from pyop.exceptions import (BearerTokenError, InvalidAccessToken, InvalidAuthenticationRequest,
                             InvalidClientAuthentication, InvalidRedirectURI, InvalidSubjectIdentifier, OAuthError,
                             UnknownClientId)
from pyop.access_token import extract_bearer_token_from_http_request

from idp import relying_parties
from idp.assurance import can_meet, required_level
from idp.auth.logins import PendingRequest
from idp.claims import claims_for_scopes, decide_for, parse_claims_parameter, release
from idp.oidc.flow import CodeGrant, describe
from idp.oidc.hints import read_id_token_hint
from idp.oidc.provider import CODE_LIFETIME, UnknownRefreshToken
from idp.oidc.wiring import OidcParts
from idp.registry.models import Patron
from idp.state import Batch, Conflict
from idp.web import services
from idp.web.authorize_checks import UNPARSEABLE, request_problem, unambiguous_target
from idp.web.errors import OUTAGE_ERRORS, error_page, is_outage, log_outage, unexpected
from idp.web import waiting
from idp.web.logged_in import current_login, log_out
from idp.web.login_session import login_session_id
from idp.web.pending import authenticate_then, consent_page, session_meets
from idp.web.security import allow_form_target

bp = Blueprint("oidc", __name__)
PENDING = "oidc_pending"
LOGOUT_PENDING = "oidc_logout_pending"


def _oidc() -> OidcParts:
    return services().oidc


def _issuer() -> str:
    return services().settings.issuer


def _error_redirect(params: dict[str, Any], error: str, description: str) -> Response:
    """The protocol's error response to a redirect URI already known to be registered; RFC 9207 iss."""
    response = AuthorizationErrorResponse(error=error, error_description=description)
    if params.get("state"):
        response["state"] = params["state"]
    response["iss"] = _issuer()
    allow_form_target(params["redirect_uri"])
    return redirect(response.request(params["redirect_uri"]), 303)


def _registered_redirect(params: dict[str, Any]) -> bool:
    clients = _oidc().provider.clients
    client_id, redirect_uri = params.get("client_id"), params.get("redirect_uri")
    return (isinstance(client_id, str) and client_id in clients
            and redirect_uri in clients[client_id]["redirect_uris"])


def _error_page(message: str, status: int = 400) -> ResponseReturnValue:
    return error_page(message, status)


def _refuse(params: dict[str, Any], error: str, description: str) -> ResponseReturnValue:
    """An invalid authentication request: the error goes to a registered redirect URI, else to the patron.

    pyop checks the message before the client, so the redirect URI is checked here.
    """
    if unambiguous_target(request.values) and _registered_redirect(params):
        return _error_redirect(params, error, description)
    return _error_page(_("The service that sent you here made an invalid login request."))


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
            return _error_redirect(params, "temporarily_unavailable", "the service is briefly unavailable")
    return unexpected(exc)


for _outage in OUTAGE_ERRORS:
    bp.register_error_handler(_outage, _unavailable)


def _claims_decision(rp: relying_parties.RelyingParty, parsed: Any) -> Any:
    """What this request asks for (scopes and the claims parameter) against the client's policy."""
    claims = parsed.get("claims")
    asked = parse_claims_parameter(claims.to_dict() if hasattr(claims, "to_dict") else claims)
    return decide_for(rp, [*claims_for_scopes(parsed["scope"]), *asked.names], asked.essential)


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
        return _refuse(params, *problem)
    try:
        parsed = _oidc().provider.parse_authentication_request(urlencode(params))
    except (UnknownClientId, InvalidRedirectURI):
        # No registered redirect URI to send the error to: tell the patron instead.
        return _error_page(_("The service that sent you here is not registered with us, or sent you from an "
                             "address it has not registered. Go back to the service and try again."))
    except InvalidAuthenticationRequest as exc:
        if exc.to_error_url() is None:
            return _error_page(_("The service that sent you here made an invalid login request."))
        return _refuse(params, exc.oauth_error or "invalid_request", str(exc))
    except UNPARSEABLE as exc:
        return _refuse(params, "invalid_request", f"the request could not be read ({type(exc).__name__})")
    with services().registry("oidc") as reg:
        rp = relying_parties.get(reg, parsed["client_id"])
        refusal = relying_parties.refusal_reason(rp, reg.today())
        needed = required_level(rp.min_acr, parsed.get("acr_values"))
        rp_name = rp.name
        decision = _claims_decision(rp, parsed)
    if refusal is not None:
        deny_url = _error_redirect(params, "access_denied", f"relying party {refusal}").location
        return render_template("not_approved.html", rp_name=rp_name, back_url=deny_url), 403
    if decision.refused:
        # Before any login: the patron could not give this service what it insists on anyway.
        return _error_redirect(params, "access_denied", "the policy for this client does not allow the essential "
                               f"claim(s) {', '.join(decision.forbidden_essential)}")
    if not can_meet(needed, idporten=services().settings.idporten_enabled):
        return _error_redirect(params, "unmet_authentication_requirements",
                               f"this provider cannot yet authenticate at {needed}")
    waiting.store(PendingRequest("oidc", needed, int(time.time()),
                                 fresh="login" in parsed.get("prompt", []) or "max_age" in parsed and
                                 int(parsed["max_age"]) == 0,
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
    assert pending is not None  # the callers checked
    params = pending.payload["params"]
    if parsed is None:
        parsed = _oidc().provider.parse_authentication_request(urlencode(params))
    if not _session_is_good_enough(pending):
        if "none" in parsed.get("prompt", []):
            session.pop(PENDING, None)
            return _error_redirect(params, "login_required", "the patron must log in")
        return authenticate_then(pending)
    patron_id = int(session["patron_id"])
    with services().registry("oidc") as reg:
        rp = relying_parties.get(reg, parsed["client_id"])
        released = list(_claims_decision(rp, parsed).released)
        rp_name = rp.name
    grants = _oidc().grants
    if "consent" in parsed.get("prompt", []) or not grants.has_consent(patron_id, parsed["client_id"], released):
        if "none" in parsed.get("prompt", []):
            session.pop(PENDING, None)
            return _error_redirect(params, "consent_required", "the patron must consent")
        waiting.store(pending.with_payload(released=released))
        return consent_page(rp_name, released, "oidc.consent")
    return _issue_code(parsed, params, patron_id, released)


@bp.post("/authorize/consent")
def consent() -> ResponseReturnValue:
    pending = session.get(PENDING)
    if pending is None or "released" not in pending or session.get("patron_id") is None:
        return _error_page(_("This login has expired or was already completed. Go back to the service "
                             "and start again."))
    params = pending["params"]
    if request.form.get("decision") != "allow":
        session.pop(PENDING, None)
        return _error_redirect(params, "access_denied", "the patron declined")
    patron_id = int(session["patron_id"])
    _oidc().grants.give_consent(patron_id, params["client_id"], pending["released"])
    parsed = _oidc().provider.parse_authentication_request(urlencode(params))
    return _issue_code(parsed, params, patron_id, pending["released"])


def _issue_code(parsed: Any, params: dict[str, Any], patron_id: int, released: list[str]) -> ResponseReturnValue:
    parts = _oidc()
    with services().registry("oidc") as reg:
        if reg.session.get(Patron, patron_id) is None:
            session.clear()
            return _error_redirect(params, "login_required", "the patron must log in again")
        # Settled and recorded now, as the patron consented; the token endpoint hands them over.
        values = release(reg, patron_id, relying_parties.get(reg, parsed["client_id"]), released,
                         protocol="oidc").values
    response = parts.provider.authorize(parsed, str(patron_id))
    login = current_login()
    assert login is not None and login.patron_id == patron_id
    parts.grants.remember(response["code"], CodeGrant(
        patron_id=patron_id, client_id=parsed["client_id"], acr=login.acr,
        amr=list(login.amr), auth_time=login.auth_time, claims=released,
        values=values, sid=login_session_id()), CODE_LIFETIME + 60)
    response["iss"] = _issuer()
    session.pop(PENDING, None)
    allow_form_target(parsed["redirect_uri"])
    return redirect(response.request(parsed["redirect_uri"], False), 303)


# -- token ------------------------------------------------------------------------------------

def _token_error(error: str, description: str, status: int = 400) -> ResponseReturnValue:
    response = jsonify(error=error, error_description=description)
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Basic realm="patron-idp", charset="UTF-8"'
    return response


@bp.post("/token")
def token() -> ResponseReturnValue:
    if request.mimetype != "application/x-www-form-urlencoded":
        return _token_error("invalid_request", "the body must be application/x-www-form-urlencoded")
    fields = dict(parse_qsl(request.get_data(as_text=True)))
    parts = _oidc()
    try:
        client_id = parts.provider.authenticate_client(fields, request.headers.get("Authorization"))
    except InvalidClientAuthentication as exc:
        return _token_error("invalid_client", str(exc), 401)
    try:
        # Every store write of this request goes out in one round trip, and only if it succeeds.
        with services().state.batch() as batch:
            return _token_response(parts, client_id, fields, batch)
    except _Replay as replay:
        # Revoked outside the batch: each step at once, in the order Grants.revoke_family needs.
        parts.grants.revoke_family(replay.family)
        return _token_error("invalid_grant", replay.description)


class _Replay(Exception):
    """A used code or a spent refresh token presented again: its family is revoked (RFC 6749
    section 4.1.2, RFC 9700 section 4.14.2)."""

    def __init__(self, family: str, description: str) -> None:
        super().__init__(description)
        self.family, self.description = family, description


def _token_response(parts: OidcParts, client_id: str, fields: dict[str, str], batch: Batch) -> ResponseReturnValue:
    """The token endpoint's answer; ``batch`` is committed for the answers that must change state."""
    extra: dict[str, Any] | None = None
    code = fields.get("code") if fields.get("grant_type") == "authorization_code" else None
    if code is not None:
        first = parts.grants.claim(code, client_id, prefetch=parts.provider.code_state_keys(code))
        family = parts.grants.family(code)
        # Another client's code (or none): refused before it counts as a use, so nothing is spent or revoked.
        if family is None or family.client_id != client_id:
            return _token_error("invalid_grant", "unknown or expired authorization code")
        if not first:
            raise _Replay(code, "this authorization code was already used")
        grant = parts.grants.grant(code)
        if grant is None:
            return _token_error("invalid_grant", "unknown or expired authorization code")
        # The claim values were settled when the code was issued (idp.oidc.flow.CodeGrant).
        extra = {**describe(grant), **grant.values}
        parts.provider.index_subject(grant.patron_id, client_id)
    try:
        result = parts.provider.handle_authenticated_token_request(client_id, fields, extra)
    except InvalidClientAuthentication as exc:
        return _token_error("invalid_client", str(exc), 401)
    except UnknownRefreshToken as exc:
        _refuse_spent(parts, fields)
        return _token_error("invalid_grant", str(exc))
    except OAuthError as exc:
        return _token_error(exc.oauth_error, str(exc))
    except (KeyError, InvalidSubjectIdentifier):
        return _token_error("invalid_grant", "the grant is no longer valid")
    # The grant's current tokens, which a replay of its code revokes: its first ones, then each rotation's.
    grant_code = code or parts.provider.authz_state.code_of(result.get("access_token"))
    if grant_code is not None:
        parts.grants.record_tokens(grant_code, result.get("access_token"), result.get("refresh_token"),
                                   replacing=None if code else fields["refresh_token"])
    try:
        batch.commit()
    except Conflict:
        if code is None and grant_code is not None:
            # The loser of two refreshes with one token at once presented a token spent by then: a
            # replay like any other, since nothing tells a client's double submit from a thief's.
            raise _Replay(grant_code, "this refresh token was used by another request just now: its grant "
                          "is revoked") from None
        return _token_error("invalid_grant", "the grant was revoked by another request just now")
    out = jsonify(result.to_dict())
    out.headers["Cache-Control"] = "no-store"
    out.headers["Pragma"] = "no-cache"
    return out


def _refuse_spent(parts: OidcParts, fields: dict[str, str]) -> None:
    """A refresh token a rotation already spent: raises _Replay for its family (else returns)."""
    presented = fields.get("refresh_token") if fields.get("grant_type") == "refresh_token" else None
    family = parts.grants.spent_family(presented) if presented else None
    if family is not None:
        raise _Replay(family, "this refresh token was already used: its grant is revoked")


# -- userinfo ---------------------------------------------------------------------------------

def _bearer_error(error: str, description: str, status: int) -> ResponseReturnValue:
    response = jsonify(error=error, error_description=description)
    response.status_code = status
    response.headers["WWW-Authenticate"] = f'Bearer error="{error}", error_description="{description}"'
    return response


@bp.route("/userinfo", methods=["GET", "POST"])
def userinfo() -> ResponseReturnValue:
    parts = _oidc()
    try:
        bearer = extract_bearer_token_from_http_request(dict(request.form.items()),
                                                        request.headers.get("Authorization"))
        info = parts.provider.authz_state.introspect_access_token(bearer)
    except BearerTokenError:
        response = jsonify(error="invalid_request", error_description="a Bearer access token is required")
        response.status_code = 401
        response.headers["WWW-Authenticate"] = 'Bearer realm="patron-idp"'
        return response
    except InvalidAccessToken:
        return _bearer_error("invalid_token", "unknown access token", 401)
    if not info["active"]:
        return _bearer_error("invalid_token", "the access token has expired", 401)
    patron_id = parts.subjects.patron_for(info["sub"])
    auth_request = parts.provider.authz_state.get_authorization_request_for_access_token(bearer)
    with services().registry("oidc") as reg:
        patron = reg.session.get(Patron, patron_id) if patron_id is not None else None
        if patron is None:
            return _bearer_error("invalid_token", "the patron behind this token no longer exists", 401)
        rp = relying_parties.get(reg, info["client_id"])
        asked = parse_claims_parameter(auth_request.get("claims"))
        decision = decide_for(rp, [*claims_for_scopes(info["scope"].split()), *asked.names])
        # Never more than the patron agreed to, even if the policy has grown since.
        agreed = set(parts.grants.consents(patron.id).get(info["client_id"], []))
        wanted = [name for name in decision.released if name in agreed]
        body = {"sub": info["sub"], **release(reg, patron.id, rp, wanted, protocol="oidc").values}
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
    return _log_out(target)


@bp.post("/logout/oidc/confirm")
def confirm_logout() -> ResponseReturnValue:
    """The patron's answer to a logout request we could not tie to them (a CSRF-checked form)."""
    pending = session.pop(LOGOUT_PENDING, None)
    if request.form.get("decision") != "logout":
        return redirect(url_for("pages.landing"), 303)
    return _log_out(pending.get("target") if isinstance(pending, dict) else None)


def _log_out(target: str | None) -> ResponseReturnValue:
    # A login through an upstream (ID-porten) is ended there too, which then sends the browser on to ``target``.
    upstream = log_out(target)
    if upstream is not None:
        return upstream
    if target:
        return redirect(target, 303)
    return render_template("logged_out.html")
