"""Single Logout: an SP's LogoutRequest ends the patron's one session (OIDC's too), answered
with a signed LogoutResponse over the SP's SingleLogoutService binding.

A LogoutRequest must be signed whenever the SP's metadata holds a signing key (the SAML
profiles require the requester to authenticate itself); a present signature must verify.
Other services the patron logged in to are not called back (no front-channel propagation).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT, samlp

from idp.registry.models import RelyingParty
from idp.saml.errors import Reason, Rejected
from idp.saml.inbound import InboundMessage
from idp.saml.replay import SeenRequests
from idp.saml.server import SIGNING_ALGORITHM, ServerFactory
from idp.saml.sso import PostForm, check_envelope, check_signature, clean_relay_state, post_form, sp_description


@dataclass(frozen=True)
class LogoutRequestInfo:
    """An accepted LogoutRequest: whom to answer, where, and how."""

    client_id: str
    entity_id: str
    request_id: str
    binding: str  # of the SP's SingleLogoutService we answer at
    destination: str
    relay_state: str | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LogoutRequestInfo:
        return cls(**data)


@dataclass(frozen=True)
class RedirectTo:
    """An HTTP-Redirect binding message: the signed URL to send the browser to."""

    url: str


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
                                 relay_state=relay_state)

    def respond(self, info: LogoutRequestInfo, sp: RelyingParty) -> PostForm | RedirectTo:
        """A Success LogoutResponse: signed XML over POST, a signed query over Redirect."""
        server = self._servers.for_sp([sp.saml_metadata or ""])
        redirect = info.binding == BINDING_HTTP_REDIRECT
        xml = server.status_message(samlp.LogoutResponse, in_response_to=info.request_id,
                                    destination=info.destination, sign=not redirect)
        if not redirect:
            return post_form(info.destination, "SAMLResponse", xml, info.relay_state)
        sent = server.apply_binding(BINDING_HTTP_REDIRECT, xml, info.destination, info.relay_state or "",
                                    response=True, sign=True, sigalg=SIGNING_ALGORITHM)
        return RedirectTo(dict(sent["headers"])["Location"])
