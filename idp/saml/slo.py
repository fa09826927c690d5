"""Single Logout, the SAML protocol part: LogoutRequests and LogoutResponses in both directions.

An SP's LogoutRequest is accepted (``accept``) and answered (``respond``, PartialLogout when some
other participant could not be logged out); to log the patron out of an SP we send it a signed
LogoutRequest (``request``) naming the patron as we named them at single sign-on
(``GivenSubject``), and read its LogoutResponse (``accept_response``). Which services a login
session reached, and the order of the front-channel round, are the web layer's.

An incoming message must be signed whenever the SP's metadata holds a signing key (the SAML
profiles require the sender to authenticate itself); a present signature must verify.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT, samlp
from saml2.saml import NameID
from saml2.time_util import in_a_while

from idp.registry.models import RelyingParty
from idp.saml.errors import Reason, Rejected
from idp.saml.given import GivenSubject
from idp.saml.inbound import LOGOUT_RESPONSE, InboundMessage
from idp.saml.metadata import Endpoint
from idp.saml.replay import SeenRequests
from idp.saml.server import DIGEST_ALGORITHM, SIGNING_ALGORITHM, ServerFactory
from idp.saml.sso import PostForm, check_envelope, check_signature, clean_relay_state, post_form, sp_description

USER_LOGOUT = "urn:oasis:names:tc:SAML:2.0:logout:user"  # SAML core 3.7.3, the Reason we give
LOGOUT_REQUEST_LIFETIME_MINUTES = 5  # NotOnOrAfter of our LogoutRequests: a front-channel round is quick


@dataclass(frozen=True)
class LogoutRequestInfo:
    """An accepted LogoutRequest: whom it names, whom to answer, where, and how."""

    client_id: str
    entity_id: str
    request_id: str
    binding: str  # of the SP's SingleLogoutService we answer at
    destination: str
    relay_state: str | None
    name_id: str
    name_id_format: str | None
    session_indexes: tuple[str, ...]

    def __repr__(self) -> str:  # never the NameID
        return f"<LogoutRequestInfo {self.request_id} from {self.entity_id}>"

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "session_indexes": list(self.session_indexes)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LogoutRequestInfo:
        return cls(**{**data, "session_indexes": tuple(data.get("session_indexes", ()))})

    def names(self, given: GivenSubject | None) -> bool:
        """Whether the request names what we gave this SP: its NameID (and format, when the
        request states one), and, when it lists SessionIndexes, the one of that login (SAML core
        3.7.3.2: a request with SessionIndexes ends only those sessions)."""
        if given is None or self.name_id != given.name_id:
            return False
        if self.name_id_format is not None and self.name_id_format != given.name_id_format:
            return False
        return not self.session_indexes or given.session_index in self.session_indexes


@dataclass(frozen=True)
class RedirectTo:
    """An HTTP-Redirect binding message: the signed URL to send the browser to."""

    url: str


@dataclass(frozen=True)
class OutgoingLogout:
    """A LogoutRequest to one SP: its ID (to match the LogoutResponse), and how to send it."""

    request_id: str
    message: PostForm | RedirectTo
    entity_id: str
    destination: str


@dataclass(frozen=True)
class LogoutOutcome:
    """An SP's authentic answer to our LogoutRequest ``in_response_to``."""

    in_response_to: str
    success: bool
    status: str  # the top-level StatusCode


class SloService:
    def __init__(self, servers: ServerFactory, seen: SeenRequests, clock: Callable[[], datetime]) -> None:
        self._servers = servers
        self._seen = seen
        self._clock = clock

    def __repr__(self) -> str:
        return "<SloService>"

    def accept(self, message: InboundMessage, sp: RelyingParty, *, received_at: str, raw_query: bytes | None,
               relay_state: str | None) -> LogoutRequestInfo:
        now = self._clock()
        described = sp_description(sp, now)
        relay_state = clean_relay_state(relay_state)
        check_envelope(message, received_at, now, bool(described.signing_certificates))
        check_signature(message, raw_query, described, required=bool(described.signing_certificates))
        server = self._servers.for_sp([described.xml])
        try:
            parsed = server.parse_logout_request(message.xml, binding=None)
        except Exception as exc:  # noqa: BLE001 - pysaml2 raises many types; each means "not acceptable"
            raise Rejected(Reason.SIGNATURE if message.enveloped_signature else Reason.MALFORMED,
                           f"LogoutRequest from {message.issuer} refused by pysaml2 ({type(exc).__name__})") from None
        if parsed is None or parsed.message is None:
            raise Rejected(Reason.MALFORMED, f"LogoutRequest from {message.issuer} could not be read")
        request = parsed.message
        # We publish no encryption key, so an SP has no way to send an EncryptedID; a BaseID
        # names nobody we know.
        name_id = (request.name_id.text or "").strip() if request.name_id is not None else ""
        if not name_id:
            raise Rejected(Reason.MALFORMED, f"LogoutRequest from {message.issuer} has no NameID")
        services = {e.binding: e for e in described.logout_services
                    if e.binding in (BINDING_HTTP_REDIRECT, BINDING_HTTP_POST)}
        chosen = services.get(message.binding) or next(iter(services.values()), None)
        if chosen is None:
            raise Rejected(Reason.UNKNOWN_ACS, f"{described.entity_id} has no SingleLogoutService for "
                                               "HTTP-Redirect or HTTP-POST in its metadata")
        if not self._seen.first_time(described.entity_id, message.message_id):
            raise Rejected(Reason.EXPIRED, f"LogoutRequest {message.message_id} from {described.entity_id} "
                                           "was already used")
        return LogoutRequestInfo(client_id=sp.client_id, entity_id=described.entity_id, request_id=message.message_id,
                                 binding=chosen.binding, destination=chosen.response_location or chosen.location,
                                 relay_state=relay_state, name_id=name_id,
                                 name_id_format=(request.name_id.format or "").strip() or None,
                                 session_indexes=tuple((index.text or "").strip()
                                                       for index in request.session_index or ()))

    def respond(self, info: LogoutRequestInfo, sp: RelyingParty, *, partial: bool = False,
                unknown_principal: bool = False) -> PostForm | RedirectTo:
        """A Success LogoutResponse: signed XML over POST, a signed query over Redirect. With
        ``partial``, Success with the second-level PartialLogout: the patron is logged out here,
        but some other session participant could not be (SAML core 3.7.3.2). With
        ``unknown_principal``, Requester / UnknownPrincipal: the request named nobody logged in
        to this SP in this browser, and nothing was ended."""
        server = self._servers.for_sp([sp.saml_metadata or ""])
        redirect = info.binding == BINDING_HTTP_REDIRECT
        status = None
        if partial or unknown_principal:
            top, second = (samlp.STATUS_REQUESTER, samlp.STATUS_UNKNOWN_PRINCIPAL) if unknown_principal \
                else (samlp.STATUS_SUCCESS, samlp.STATUS_PARTIAL_LOGOUT)
            status = samlp.Status(status_code=samlp.StatusCode(value=top, status_code=samlp.StatusCode(value=second)))
        xml = server.status_message(samlp.LogoutResponse, in_response_to=info.request_id,
                                    destination=info.destination, status=status, sign=not redirect)
        if not redirect:
            return post_form(info.destination, "SAMLResponse", xml, info.relay_state)
        sent = server.apply_binding(BINDING_HTTP_REDIRECT, xml, info.destination, info.relay_state or "",
                                    response=True, sign=True, sigalg=SIGNING_ALGORITHM)
        return RedirectTo(dict(sent["headers"])["Location"])

    def logout_location(self, sp: RelyingParty) -> str | None:
        """Where ``request`` would send the SP's LogoutRequest; None when it has no usable
        SingleLogoutService (or its stored metadata is unusable or expired)."""
        try:
            chosen = _logout_service(sp_description(sp, self._clock()).logout_services)
        except Rejected:
            return None
        return chosen.location if chosen is not None else None

    def request(self, sp: RelyingParty, subject: GivenSubject, *, relay_state: str | None) -> OutgoingLogout | None:
        """A signed LogoutRequest naming ``subject`` (as given to ``sp`` at sign-on) to the SP's
        SingleLogoutService, HTTP-Redirect preferred (no XML signature to parse on its side);
        None when its metadata offers neither binding. Rejected(UNKNOWN_SP) when its stored
        metadata is unusable or expired: then its endpoints cannot be trusted."""
        described = sp_description(sp, self._clock())
        chosen = _logout_service(described.logout_services)
        if chosen is None:
            return None
        relay_state = clean_relay_state(relay_state)
        server = self._servers.for_sp([described.xml])
        redirect = chosen.binding == BINDING_HTTP_REDIRECT
        name_id = NameID(format=subject.name_id_format, text=subject.name_id,
                         name_qualifier=self._servers.endpoints.entity_id, sp_name_qualifier=described.entity_id)
        # IssueInstant is pysaml2's clock, so NotOnOrAfter is too.
        request_id, request = server.create_logout_request(
            chosen.location, described.entity_id, name_id=name_id, reason=USER_LOGOUT,
            expire=in_a_while(minutes=LOGOUT_REQUEST_LIFETIME_MINUTES), session_indexes=[subject.session_index],
            sign=not redirect, sign_alg=SIGNING_ALGORITHM, digest_alg=DIGEST_ALGORITHM)
        message: PostForm | RedirectTo
        if redirect:
            sent = server.apply_binding(BINDING_HTTP_REDIRECT, str(request), chosen.location, relay_state or "",
                                        response=False, sign=True, sigalg=SIGNING_ALGORITHM)
            message = RedirectTo(dict(sent["headers"])["Location"])
        else:
            message = post_form(chosen.location, "SAMLRequest", str(request), relay_state)
        return OutgoingLogout(request_id=str(request_id), message=message, entity_id=described.entity_id,
                              destination=chosen.location)

    def accept_response(self, message: InboundMessage, sp: RelyingParty, *, received_at: str,
                        raw_query: bytes | None) -> LogoutOutcome:
        """An authentic, fresh LogoutResponse from ``sp``; Rejected for anything else. Whether it
        answers a request we sent in this login session is the caller's to check."""
        if message.kind != LOGOUT_RESPONSE:
            raise Rejected(Reason.MALFORMED, f"expected a LogoutResponse, got a {message.kind}")
        now = self._clock()
        described = sp_description(sp, now)
        if message.issuer != described.entity_id:
            raise Rejected(Reason.UNKNOWN_SP, f"a LogoutResponse for {described.entity_id} was issued by another "
                                              "entity")
        signs = bool(described.signing_certificates)
        check_envelope(message, received_at, now, signs)
        check_signature(message, raw_query, described, required=signs)
        server = self._servers.for_sp([described.xml])
        refused = None
        try:
            response = server.read_logout_response(message.xml)
        except Exception as exc:  # noqa: BLE001 - pysaml2 raises many types; each means "not acceptable"
            refused = type(exc).__name__
        if refused is not None:
            # Raised here, not in the except clause: chained to pysaml2's exception, its traceback
            # would keep the temporary certificate files xmlsec1 read open until a garbage collection.
            raise Rejected(Reason.SIGNATURE if message.enveloped_signature else Reason.MALFORMED,
                           f"LogoutResponse from {message.issuer} refused by pysaml2 ({refused})")
        in_response_to = (response.in_response_to or "").strip()
        code = response.status.status_code if response.status is not None else None
        if not in_response_to or code is None or not code.value:
            raise Rejected(Reason.MALFORMED, f"LogoutResponse from {message.issuer} lacks InResponseTo or a status")
        if not self._seen.first_time(described.entity_id, message.message_id):
            raise Rejected(Reason.EXPIRED, f"LogoutResponse {message.message_id} from {described.entity_id} "
                                           "was already used")
        # Only the top-level code decides (SAML core 3.2.2.2): Success means the SP ended its own
        # session. A second-level PartialLogout (3.7.3.2) speaks of participants the SP itself
        # would have told, of which it has none here; its own logout still succeeded.
        return LogoutOutcome(in_response_to=in_response_to, success=code.value == samlp.STATUS_SUCCESS,
                             status=code.value)


def _logout_service(services: tuple[Endpoint, ...]) -> Endpoint | None:
    """The SP's first SingleLogoutService over HTTP-Redirect, else over HTTP-POST."""
    for binding in (BINDING_HTTP_REDIRECT, BINDING_HTTP_POST):
        found = next((e for e in services if e.binding == binding), None)
        if found is not None:
            return found
    return None
