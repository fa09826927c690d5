"""Single sign-on: accept an AuthnRequest (or start an unsolicited login), answer it.

No Flask here: the web layer hands in the checked message (idp.saml.inbound) and the SP's
relying-party row, keeps the resulting ``SsoRequest`` in the patron's session across login and
consent, and posts the ``PostForm`` this module returns to the SP.

Order of checks, each refusing before the next: the SP's stored metadata, the Destination and
the request's age, the signature (required when the SP's metadata says it signs, verified
whenever present), pysaml2's own parse, the ACS URL against the metadata, replay. Only a replay
(and, later, the SP's policy: ``settle``) goes back to the SP as a SAML Response; anything
before is a page, as nothing in the message can be trusted yet.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT, samlp

from idp.claims import Value
from idp.registry.models import RelyingParty
from idp.saml import errors
from idp.saml.attributes import PRINCIPAL_NAME, ReleasePolicy
from idp.saml.contexts import answer_ref, demand, stated_level
from idp.saml.errors import Reason, Rejected, StatusError
from idp.saml.given import GivenSubject
from idp.saml.inbound import InboundMessage
from idp.saml.metadata import MetadataError, SpDescription, describe_service_provider
from idp.saml.nameid import choose_format, name_id
from idp.saml.replay import SeenRequests
from idp.saml.server import CLOCK_SKEW, DIGEST_ALGORITHM, SIGNING_ALGORITHM, ServerFactory
from idp.query_signatures import has_query_signature, verify_query_signature
from idp.subjects import Subjects

log = logging.getLogger("idp.saml")
ASSERTION_LIFETIME_MINUTES = 5
REQUEST_MAX_AGE = 10 * 60  # seconds an AuthnRequest may take to reach us
MAX_RELAY_STATE = 80 * 4  # bytes; SAML bindings allow 80, real SPs send somewhat more
_TRUE = {"true", "1"}


@dataclass(frozen=True)
class SsoRequest:
    """What a login must answer: plain values, kept in the patron's session across the login."""

    client_id: str
    entity_id: str
    request_id: str | None  # None for an unsolicited (IdP-initiated) login
    acs_url: str
    relay_state: str | None
    requested_format: str | None
    context_refs: tuple[str, ...] = ()
    comparison: str | None = None
    force_authn: bool = False
    passive: bool = False
    # Settled by SsoService.settle against the SP's policy:
    needed: str = "password"
    stated: tuple[str, ...] = ()  # the levels the assertion may name (contexts.Demand); empty: any
    name_id_format: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SsoRequest:
        return cls(**{**data, "context_refs": tuple(data.get("context_refs", ())),
                      "stated": tuple(data.get("stated", ()))})


@dataclass(frozen=True)
class PostForm:
    """An HTTP-POST binding message: the page auto-submits ``fields`` to ``url``."""

    url: str
    fields: dict[str, str]


@dataclass(frozen=True)
class SsoAnswer:
    """The Response to post, and what it gave the SP (to name the patron at single logout)."""

    form: PostForm
    subject: GivenSubject


def sp_description(sp: RelyingParty, now: datetime) -> SpDescription:
    """The SP's stored metadata, or Rejected when it is unusable or expired."""
    try:
        described = describe_service_provider(sp.saml_metadata or "")
    except MetadataError as exc:
        raise Rejected(Reason.UNKNOWN_SP, f"stored metadata of {sp.entity_id} is unusable: {exc}") from None
    if described.expired(now):
        raise Rejected(Reason.UNKNOWN_SP, f"the metadata of {sp.entity_id} has expired (validUntil); load a "
                                          "current copy")
    return described


def check_signature(message: InboundMessage, raw_query: bytes | None, described: SpDescription,
                    required: bool) -> None:
    """Rejected(SIGNATURE) when a required signature is missing or a present one does not verify.

    An enveloped (POST) signature is verified by pysaml2 when it parses the message, with the
    SP's metadata keys only; the Redirect binding's query signature is verified here.
    """
    query_signed = message.binding == BINDING_HTTP_REDIRECT and has_query_signature(raw_query or b"")
    if query_signed and not verify_query_signature(raw_query or b"", described.signing_certificates):
        raise Rejected(Reason.SIGNATURE, f"{message.kind} from {message.issuer}: the query signature does not "
                                         "verify with the keys in its metadata (RSA-SHA256 or stronger)")
    if required and not (query_signed or message.enveloped_signature):
        raise Rejected(Reason.SIGNATURE, f"{message.kind} from {message.issuer} is unsigned, but its metadata "
                                         "says it signs")


def check_envelope(message: InboundMessage, received_at: str, now: datetime, signed: bool) -> None:
    """Destination and age; a signed message must name its destination (SAML bindings 3.4.5.2)."""
    if message.destination is not None and message.destination != received_at:
        raise Rejected(Reason.MALFORMED, f"{message.kind} from {message.issuer} is addressed to another endpoint")
    if signed and message.destination is None:
        raise Rejected(Reason.MALFORMED, f"signed {message.kind} from {message.issuer} has no Destination")
    skew = timedelta(seconds=CLOCK_SKEW)
    if message.issue_instant > now + skew or message.issue_instant < now - timedelta(seconds=REQUEST_MAX_AGE) - skew:
        raise Rejected(Reason.EXPIRED, f"{message.kind} from {message.issuer} was issued at an unacceptable time")


def clean_relay_state(relay_state: str | None) -> str | None:
    if not relay_state:
        return None
    if len(relay_state.encode()) > MAX_RELAY_STATE or not relay_state.isprintable():
        raise Rejected(Reason.MALFORMED, "RelayState is too long or not printable")
    return relay_state


class SsoService:
    def __init__(self, servers: ServerFactory, seen: SeenRequests, subjects: Subjects,
                 clock: Callable[[], datetime]) -> None:
        self._servers = servers
        self._seen = seen
        self._subjects = subjects
        self._clock = clock

    def __repr__(self) -> str:
        return "<SsoService>"

    def accept(self, message: InboundMessage, sp: RelyingParty, *, received_at: str, raw_query: bytes | None,
               relay_state: str | None) -> SsoRequest:
        """An authentic, fresh AuthnRequest from ``sp``, with an ACS from its metadata."""
        now = self._clock()
        described = sp_description(sp, now)
        relay_state = clean_relay_state(relay_state)
        signed = message.enveloped_signature or (message.binding == BINDING_HTTP_REDIRECT
                                                 and has_query_signature(raw_query or b""))
        check_envelope(message, received_at, now, signed)
        check_signature(message, raw_query, described, described.authn_requests_signed)
        server = self._servers.for_sp([described.xml])
        try:
            parsed = server.parse_authn_request(message.xml, binding=None)
        except Exception as exc:  # noqa: BLE001 - pysaml2 raises many types; each means "not acceptable"
            reason = Reason.SIGNATURE if message.enveloped_signature else Reason.MALFORMED
            raise Rejected(reason, f"AuthnRequest from {message.issuer} refused by pysaml2 "
                                   f"({type(exc).__name__})") from None
        if parsed is None or parsed.message is None:
            raise Rejected(Reason.MALFORMED, f"AuthnRequest from {message.issuer} could not be read")
        authn = parsed.message
        acs_url = self._consumer(server, authn, described)
        policy = authn.name_id_policy
        context = authn.requested_authn_context
        request = SsoRequest(
            client_id=sp.client_id, entity_id=sp.entity_id or "", request_id=message.message_id, acs_url=acs_url,
            relay_state=relay_state, requested_format=policy.format if policy is not None else None,
            context_refs=tuple((ref.text or "").strip() for ref in (context.authn_context_class_ref or []))
            if context is not None else (),
            comparison=context.comparison if context is not None else None,
            force_authn=str(authn.force_authn).lower() in _TRUE, passive=str(authn.is_passive).lower() in _TRUE)
        if not self._seen.first_time(sp.entity_id or "", message.message_id):
            raise StatusError(request, errors.REQUESTER, errors.REQUEST_DENIED, "this request was already used")
        return request

    def _consumer(self, server: Any, authn: Any, described: SpDescription) -> str:
        """The ACS URL to answer at: the one requested (by URL or index) if the metadata lists it
        for HTTP-POST, else the SP's default; never a URL only the request names."""
        if authn.assertion_consumer_service_url is None and authn.assertion_consumer_service_index is None:
            return default_consumer(described)
        try:
            return str(server.response_args(authn, bindings=[BINDING_HTTP_POST])["destination"])
        except Exception:  # noqa: BLE001 - pysaml2's SAMLError and friends: the URL is not in the metadata
            raise Rejected(Reason.UNKNOWN_ACS, f"AuthnRequest from {described.entity_id} names an "
                                               "AssertionConsumerService that is not in its metadata") from None

    def unsolicited(self, sp: RelyingParty, relay_state: str | None) -> SsoRequest:
        """An IdP-initiated login, for SPs whose policy allows it."""
        described = sp_description(sp, self._clock())
        if not sp.allow_unsolicited:
            raise Rejected(Reason.UNSOLICITED_REFUSED, f"{sp.entity_id} does not accept unsolicited responses")
        return SsoRequest(client_id=sp.client_id, entity_id=sp.entity_id or "", request_id=None,
                          acs_url=default_consumer(described), relay_state=clean_relay_state(relay_state),
                          requested_format=None)

    def settle(self, request: SsoRequest, sp: RelyingParty, *, reachable: Callable[[str], bool]) -> SsoRequest:
        """The NameID format and assurance level this SP gets; StatusError if its policy or our
        login methods cannot give what it asks. ``reachable(level)``: whether some login method here
        reaches ``level`` (the web layer asks its registry of login methods)."""
        fmt = choose_format(request.requested_format, list(sp.name_id_formats or []))
        if fmt is None:
            raise StatusError(request, errors.REQUESTER, errors.INVALID_NAME_ID_POLICY,
                              "this NameID format is not available to this service")
        demanded = demand(request.context_refs, request.comparison, sp.min_acr)
        if demanded is None:
            raise StatusError(request, errors.RESPONDER, errors.NO_AUTHN_CONTEXT,
                              "none of the requested authentication contexts can be given to this service")
        if not reachable(demanded.floor):
            raise StatusError(request, errors.RESPONDER, errors.NO_AUTHN_CONTEXT,
                              f"this provider cannot yet authenticate at {demanded.floor}")
        return replace(request, needed=demanded.floor, stated=demanded.stated, name_id_format=fmt)

    def respond(self, request: SsoRequest, sp: RelyingParty, *, patron_id: int, acr: str, auth_time: int,
                values: Mapping[str, Value], principal_name: str | None = None) -> SsoAnswer:
        """The signed Response with one signed assertion: NameID, authentication (the level the
        session at ``acr`` reached, as far as the request lets it be named), ``values``; and the
        NameID and SessionIndex it gave."""
        server = self._servers.for_sp([sp.saml_metadata or ""])
        identity: dict[str, Value] = dict(values)
        if principal_name is not None:
            identity[PRINCIPAL_NAME] = principal_name
        subject = name_id(request.name_id_format or "", patron_id, sp_entity_id=request.entity_id,
                          idp_entity_id=self._servers.endpoints.entity_id, subjects=self._subjects)
        response = server.create_authn_response(
            identity, in_response_to=request.request_id, destination=request.acs_url,
            sp_entity_id=request.entity_id, name_id=subject, sign_response=True, sign_assertion=True,
            sign_alg=SIGNING_ALGORITHM, digest_alg=DIGEST_ALGORITHM,
            authn={"class_ref": answer_ref(stated_level(acr, request.stated), request.context_refs),
                   "authn_instant": auth_time},
            release_policy=ReleasePolicy(request.entity_id, identity, ASSERTION_LIFETIME_MINUTES))
        xml = str(response)
        given = GivenSubject(name_id=subject.text, name_id_format=subject.format,
                             session_index=_session_index(xml))
        return SsoAnswer(form=post_form(request.acs_url, "SAMLResponse", xml, request.relay_state), subject=given)

    def refuse(self, request: SsoRequest, sp: RelyingParty, status: str, sub_status: str, message: str) -> PostForm:
        """A signed error Response (no assertion) to the request's ACS."""
        server = self._servers.for_sp([sp.saml_metadata or ""])
        xml = server.status_message(samlp.Response, in_response_to=request.request_id, destination=request.acs_url,
                                    status=status_of(status, sub_status, message))
        log.info("SAML error response to %s: %s", request.entity_id, sub_status.rsplit(":", 1)[-1])
        return post_form(request.acs_url, "SAMLResponse", xml, request.relay_state)


def _session_index(xml: str) -> str:
    """The SessionIndex pysaml2 drew for the AuthnStatement (assertion.authn_statement calls
    sid(); create_authn_response takes no SessionIndex of ours and returns the signed text), read
    back with pysaml2's own parser."""
    response = samlp.response_from_string(xml)
    statements = [s for a in response.assertion for s in a.authn_statement] if response is not None else []
    if len(statements) != 1 or not statements[0].session_index:
        raise RuntimeError("pysaml2 made a Response without exactly one AuthnStatement with a SessionIndex")
    return str(statements[0].session_index)


def default_consumer(described: SpDescription) -> str:
    """The SP's default HTTP-POST ACS (metadata section 2.2.3: isDefault, else the first)."""
    posts = [e for e in described.assertion_consumers if e.binding == BINDING_HTTP_POST]
    if not posts:
        raise Rejected(Reason.UNKNOWN_ACS, f"{described.entity_id} has no HTTP-POST AssertionConsumerService")
    return next((e for e in posts if e.is_default), posts[0]).location


def status_of(status: str, sub_status: str, message: str) -> samlp.Status:
    return samlp.Status(status_code=samlp.StatusCode(value=status, status_code=samlp.StatusCode(value=sub_status)),
                        status_message=samlp.StatusMessage(text=message))


def post_form(url: str, name: str, xml: str, relay_state: str | None) -> PostForm:
    fields = {name: base64.b64encode(xml.encode("utf-8")).decode("ascii")}
    if relay_state:
        fields["RelayState"] = relay_state
    return PostForm(url=url, fields=fields)


def claims_asked(sp: RelyingParty) -> tuple[str, ...]:
    """What an SP asks for: the claims its metadata's RequestedAttributes name, else its whole
    policy (a SAML AuthnRequest names no attributes). The policy still decides (decide_for)."""
    try:
        requested = describe_service_provider(sp.saml_metadata or "").requested_claims
    except MetadataError:
        requested = ()
    return tuple(sp.claims) if requested is None else requested
