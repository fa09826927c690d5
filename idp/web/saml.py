"""SAML 2.0 endpoints: thin views over idp.saml, sharing the patron's one session with OIDC.

``/saml/metadata`` our metadata; ``/saml/sso`` AuthnRequests over HTTP-Redirect (GET) and
HTTP-POST; ``/saml/sso/unsolicited?providerId=...`` IdP-initiated login; ``/saml/slo`` LogoutRequests
over both bindings, and the LogoutResponses that answer ours (single logout: idp.web.logout). A
waiting request is kept in the session like OIDC's (login.CARRIED_OVER_LOGIN) and goes through the
same login, assurance check, DPA gate and consent.

An SP's HTTP-POST arrives cross-site, and a SameSite=Lax cookie does not come with it: the
checked request is handed over through the state store to a GET on our own site, which does
carry the session, so a patron who is logged in is not asked again.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import Callable, Mapping
from typing import Any

from flask import Blueprint, Response, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from werkzeug.wrappers import Response as WerkzeugResponse

from idp import relying_parties
from idp.claims import decide_for, release
from idp.errors import NotFound
from idp.registry.models import Patron, RelyingParty
from idp.saml import (AUTHN_REQUEST, BINDING_HTTP_POST, BINDING_HTTP_REDIRECT, LOGOUT_REQUEST, LOGOUT_RESPONSE,
                      LogoutRequestInfo,
                      PostForm, Reason, RedirectTo, Rejected, SamlParts, SsoRequest, StatusError, decode)
from idp.saml import errors as status
from idp.auth.logins import PendingRequest
from idp.saml.given import GivenSubject
from idp.saml.sso import claims_asked
from idp.single_logout import LogoutRun, SamlParticipant
from idp.web import login_methods, services
from idp.web import waiting
from idp.web.errors import error_page
from idp.web.logged_in import current_login
from idp.web import logout
from idp.web.login_session import SID, login_session_id
from idp.web.logout import log_out
from idp.web.pending import authenticate_then, consent_page, give_consent, has_consent, session_meets
from idp.web.security import allow_form_target, allow_framing_by_self

log = logging.getLogger("idp.saml")
bp = Blueprint("saml", __name__, url_prefix="/saml")
PENDING = "saml_pending"
HANDOFF_TTL = 300  # seconds between an SP's POST and the browser's GET that continues it

_REJECTED: Mapping[Reason, Callable[[], str]] = {
    Reason.MALFORMED: lambda: _("The service that sent you here made a login request we cannot read. "
                                "Go back to the service and try again."),
    Reason.UNKNOWN_SP: lambda: _("The service that sent you here is not registered with us. "
                                 "Go back to the service and try again."),
    Reason.SIGNATURE: lambda: _("The login request from the service could not be verified, so it was not "
                                "accepted. Go back to the service and try again."),
    Reason.UNKNOWN_ACS: lambda: _("The service that sent you here asked us to answer at an address it has not "
                                  "registered. Go back to the service and try again."),
    Reason.UNSOLICITED_REFUSED: lambda: _("This service does not accept logins started here. Go to the service "
                                          "and log in from there."),
    Reason.EXPIRED: lambda: _("This login request has expired or was already used. Go back to the service "
                              "and start again."),
}


def _saml() -> SamlParts:
    return services().saml


def _expired() -> ResponseReturnValue:
    return error_page(_("This login has expired or was already completed. Go back to the service and start again."))


def _rejected(exc: Rejected) -> ResponseReturnValue:
    log.info("SAML message refused (%s): %s", exc.reason.value, exc.message)  # entity ids and reasons only
    return error_page(_REJECTED[exc.reason](), 403 if exc.reason is Reason.UNSOLICITED_REFUSED else 400)


def _unknown_sp() -> ResponseReturnValue:
    return _rejected(Rejected(Reason.UNKNOWN_SP, "no SAML service provider with that entity id"))


def _message_fields() -> tuple[str, Mapping[str, str], bytes | None]:
    """The binding a message came by, its parameters, and the raw query a Redirect signature covers."""
    if request.method == "POST":
        return BINDING_HTTP_POST, request.form, None
    return BINDING_HTTP_REDIRECT, request.args, request.query_string


def _post_page(form: PostForm, rp_name: str) -> ResponseReturnValue:
    allow_form_target(form.url)
    return render_template("saml_post.html", form=form, rp_name=rp_name)


def _sp(client_id: str) -> RelyingParty:
    with services().registry("saml") as reg:
        sp = relying_parties.get(reg, client_id)
        reg.session.expunge(sp)  # read-only beyond this transaction
    return sp


def _refuse(sso_request: SsoRequest, top: str, sub: str, message: str) -> ResponseReturnValue:
    """A SAML error Response to the request's ACS: never an assertion."""
    sp = _sp(sso_request.client_id)
    return _post_page(_saml().sso.refuse(sso_request, sp, top, sub, message), sp.name)


def _hand_over(kind: str, data: dict[str, Any], endpoint: str) -> WerkzeugResponse:
    token = secrets.token_urlsafe(24)
    services().state.put(f"saml:handoff:{kind}:{token}", json.dumps(data).encode(), HANDOFF_TTL)
    return redirect(url_for(endpoint, token=token), 303)


def _take_over(kind: str, token: str) -> dict[str, Any] | None:
    raw = services().state.take(f"saml:handoff:{kind}:{token}") if len(token) <= 64 else None
    return json.loads(raw) if raw else None


# -- metadata ---------------------------------------------------------------------------------

@bp.get("/metadata")
def metadata() -> ResponseReturnValue:
    response = Response(_saml().metadata(), mimetype="application/samlmetadata+xml")
    response.headers["Cache-Control"] = "public, max-age=3600"
    return response


# -- single sign-on ---------------------------------------------------------------------------

@bp.route("/sso", methods=["GET", "POST"])
def sso() -> ResponseReturnValue:
    binding, fields, raw_query = _message_fields()
    try:
        message = decode(binding, fields.get("SAMLRequest"), AUTHN_REQUEST)
        with services().registry("saml") as reg:
            sp = relying_parties.get_saml(reg, message.issuer)
            sso_request = _saml().sso.accept(message, sp, received_at=_saml().endpoints.sso, raw_query=raw_query,
                                             relay_state=fields.get("RelayState"))
    except NotFound:
        return _unknown_sp()
    except Rejected as exc:
        return _rejected(exc)
    except StatusError as exc:
        return _refuse(exc.request, exc.status, exc.sub_status, exc.message)
    if binding == BINDING_HTTP_POST:
        return _hand_over("sso", sso_request.as_dict(), "saml.sso_continue")
    return _begin(sso_request)


@bp.get("/sso/continue/<token>")
def sso_continue(token: str) -> ResponseReturnValue:
    data = _take_over("sso", token)
    return _expired() if data is None else _begin(SsoRequest.from_dict(data))


@bp.get("/sso/unsolicited")
def unsolicited() -> ResponseReturnValue:
    """IdP-initiated login (``providerId``: the SP's entity id), for SPs whose policy allows it."""
    try:
        with services().registry("saml") as reg:
            sp = relying_parties.get_saml(reg, request.args.get("providerId", ""))
            sso_request = _saml().sso.unsolicited(sp, request.args.get("RelayState"))
    except NotFound:
        return _unknown_sp()
    except Rejected as exc:
        return _rejected(exc)
    return _begin(sso_request)


def _begin(sso_request: SsoRequest) -> ResponseReturnValue:
    """The DPA gate and the SP's policy, then the waiting request goes into the session."""
    with services().registry("saml") as reg:
        sp = relying_parties.get(reg, sso_request.client_id)
        refusal = relying_parties.refusal_reason(sp, reg.today())
        reg.session.expunge(sp)
    if refusal is not None:
        back = _saml().sso.refuse(sso_request, sp, status.RESPONDER, status.REQUEST_DENIED, f"service {refusal}")
        allow_form_target(back.url)
        return render_template("not_approved.html", rp_name=sp.name, back_form=back), 403
    try:
        sso_request = _saml().sso.settle(sso_request, sp, reachable=login_methods.can_reach)
    except StatusError as exc:
        return _refuse(exc.request, exc.status, exc.sub_status, exc.message)
    waiting.store(PendingRequest("saml", sso_request.needed, int(time.time()), fresh=sso_request.force_authn,
                                 payload={"request": sso_request.as_dict()}))
    return _proceed()


@bp.get("/sso/resume")
def resume() -> ResponseReturnValue:
    return _expired() if PENDING not in session else _proceed()


def _proceed() -> ResponseReturnValue:
    """Log in, ask consent, or answer: whichever the waiting request needs next."""
    pending = waiting.load("saml")
    assert pending is not None  # noqa: S101 - the callers checked
    sso_request = SsoRequest.from_dict(pending.payload["request"])
    if not session_meets(pending):
        if sso_request.passive:
            session.pop(PENDING, None)
            return _refuse(sso_request, status.RESPONDER, status.NO_PASSIVE, "the patron must log in")
        return authenticate_then(pending)
    patron_id = int(session["patron_id"])
    sp = _sp(sso_request.client_id)
    released = list(decide_for(sp, claims_asked(sp)).released)
    if not has_consent(patron_id, sp.client_id, released):
        if sso_request.passive:
            session.pop(PENDING, None)
            return _refuse(sso_request, status.RESPONDER, status.NO_PASSIVE, "the patron must consent")
        waiting.store(pending.with_payload(released=released))
        return consent_page(sp.name, released, "saml.consent")
    return _answer(sso_request, patron_id, released)


@bp.post("/sso/consent")
def consent() -> ResponseReturnValue:
    pending = waiting.load("saml")
    login = current_login()
    if pending is None or "released" not in pending.payload or login is None:
        return _expired()
    sso_request = SsoRequest.from_dict(pending.payload["request"])
    if request.form.get("decision") != "allow":
        session.pop(PENDING, None)
        return _refuse(sso_request, status.RESPONDER, status.REQUEST_DENIED, "the patron declined")
    released = list(pending.payload["released"])
    give_consent(login.patron_id, sso_request.client_id, released)
    return _answer(sso_request, login.patron_id, released)


def _answer(sso_request: SsoRequest, patron_id: int, released: list[str]) -> ResponseReturnValue:
    parts = _saml()
    with services().registry("saml") as reg:
        if reg.session.get(Patron, patron_id) is None:
            session.clear()
            return _refuse(sso_request, status.RESPONDER, status.REQUEST_DENIED, "the patron must log in again")
        sp = relying_parties.get(reg, sso_request.client_id)
        # Settled and recorded now, as the patron consented: the one path by which values leave.
        values = release(reg, patron_id, sp, released, protocol="saml").values
        reg.session.expunge(sp)
    principal = parts.principal_name(patron_id) if sp.subject_type == relying_parties.PUBLIC_SUB else None
    login = current_login()
    assert login is not None  # noqa: S101 - both callers answer only a logged-in session
    answer = parts.sso.respond(sso_request, sp, patron_id=patron_id, acr=login.acr,
                               auth_time=login.auth_time, values=values, principal_name=principal)
    # Recorded for single logout: the SP is told when this login ends, and a LogoutRequest from it
    # must name this subject.
    services().single_logout.participants.joined(login_session_id(), SamlParticipant(sp.client_id, answer.subject))
    session.pop(PENDING, None)
    return _post_page(answer.form, sp.name)


# -- single logout ----------------------------------------------------------------------------

@bp.route("/slo", methods=["GET", "POST"])
def slo() -> ResponseReturnValue:
    """An SP's LogoutRequest (it asks to end the patron's login everywhere), or its
    LogoutResponse to one we sent from a logout page's frame (``slo_send``)."""
    binding, fields, raw_query = _message_fields()
    if "SAMLResponse" in fields:
        return _logout_answered(binding, fields, raw_query)
    try:
        message = decode(binding, fields.get("SAMLRequest"), LOGOUT_REQUEST)
        with services().registry("saml") as reg:
            sp = relying_parties.get_saml(reg, message.issuer)
            info = _saml().slo.accept(message, sp, received_at=_saml().endpoints.slo, raw_query=raw_query,
                                      relay_state=fields.get("RelayState"))
    except NotFound:
        return _unknown_sp()
    except Rejected as exc:
        return _rejected(exc)
    if binding == BINDING_HTTP_POST:
        return _hand_over("slo", info.as_dict(), "saml.slo_continue")
    return _logout(info)


@bp.get("/slo/continue/<token>")
def slo_continue(token: str) -> ResponseReturnValue:
    data = _take_over("slo", token)
    return _expired() if data is None else _logout(LogoutRequestInfo.from_dict(data))


def _logout(info: LogoutRequestInfo) -> ResponseReturnValue:
    """End the login everywhere, but only for a request naming the subject this SP was given in
    this browser's login: a correctly signed request for another patron ends nothing here."""
    sid = session.get(SID)
    given = services().single_logout.participants.subjects_given(sid, info.client_id) if isinstance(sid, str) else []
    if not any(info.names(subject) for subject in given):
        log.info("SAML LogoutRequest from %s names no subject of this browser's login: session kept",
                 info.entity_id)
        return _logout_response(info, _saml().slo.respond(info, _sp(info.client_id), unknown_principal=True))
    return log_out(finish={"saml": info.as_dict()}, initiator=info.client_id)


@logout.finisher("saml")
def _logout_done(run: LogoutRun, confirmed: set[int]) -> ResponseReturnValue:
    """The LogoutResponse to the SP that asked, once the others have had their chance:
    PartialLogout when one of them did not confirm (SAML core 3.7.3.2)."""
    info = LogoutRequestInfo.from_dict(run.finish["saml"])
    partial = bool(logout.unconfirmed(run, confirmed))
    return _logout_response(info, _saml().slo.respond(info, _sp(info.client_id), partial=partial))


def _logout_response(info: LogoutRequestInfo, answer: PostForm | RedirectTo) -> ResponseReturnValue:
    if isinstance(answer, RedirectTo):
        return redirect(answer.url, 303)
    return _post_page(answer, _sp(info.client_id).name)


@bp.get("/slo/send/<run>/<int:index>")
def slo_send(run: str, index: int) -> ResponseReturnValue:
    """In a frame of the logout page: a LogoutRequest to the run's ``index``-th service."""
    runs = services().single_logout.runs
    found = runs.get(run)
    entry = found.frontchannel[index] if found is not None and 0 <= index < len(found.frontchannel) else None
    if found is None or entry is None or entry.subject is None:
        return error_page(_("This logout has expired or was already completed."), 404)
    allow_framing_by_self()
    sp = _sp(entry.client_id)
    outgoing = _saml().slo.request(sp, GivenSubject.from_dict(entry.subject), relay_state=None)
    if outgoing is None:  # its metadata no longer lists a SingleLogoutService
        return render_template("logout_frame_done.html", index=index)
    runs.request_sent(outgoing.request_id, found.id, index)
    if isinstance(outgoing.message, RedirectTo):
        return redirect(outgoing.message.url, 303)
    return _post_page(outgoing.message, sp.name)


def _logout_answered(binding: str, fields: Mapping[str, str], raw_query: bytes | None) -> ResponseReturnValue:
    """An SP's LogoutResponse, in a logout page's frame: recorded for the run it answers."""
    try:
        message = decode(binding, fields.get("SAMLResponse"), LOGOUT_RESPONSE)
        with services().registry("saml") as reg:
            sp = relying_parties.get_saml(reg, message.issuer)
            reg.session.expunge(sp)
        outcome = _saml().slo.accept_response(message, sp, received_at=_saml().endpoints.slo, raw_query=raw_query)
    except NotFound:
        return _unknown_sp()
    except Rejected as exc:
        return _rejected(exc)
    answered = services().single_logout.runs.answered(outcome.in_response_to, success=outcome.success)
    if answered is None:
        log.info("SAML LogoutResponse from %s answers no logout under way", sp.entity_id)
        return error_page(_("This logout has expired or was already completed."), 400)
    if not outcome.success:
        log.warning("SAML LogoutResponse from %s: %s", sp.entity_id, outcome.status)
    allow_framing_by_self()
    return render_template("logout_frame_done.html", index=answered[1])
