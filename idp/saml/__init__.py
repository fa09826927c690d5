"""SAML 2.0 identity provider: the only code that touches pysaml2. No Flask here.

The web layer (idp.web.saml) uses it like this::

    parts = build_saml(services)                       # once per process (Services.saml)
    message = decode(binding, saml_request, AUTHN_REQUEST)       # size, DTDs, wrapping
    sp = relying_parties.get_saml(reg, message.issuer)
    request = parts.sso.accept(message, sp, received_at=..., raw_query=..., relay_state=...)
    request = parts.sso.settle(request, sp, reachable=...)  # NameID format, assurance level
    answer = parts.sso.respond(request, sp, patron_id=..., acr=..., auth_time=..., values=released)
    # answer.form is posted to the SP; answer.subject (GivenSubject) is kept for single logout:
    outgoing = parts.slo.request(sp, subject, relay_state=...)   # our LogoutRequest, or None
    outcome = parts.slo.accept_response(decode(binding, saml_response, LOGOUT_RESPONSE), sp, ...)

Refusals raise ``Rejected`` (show a page) or ``StatusError`` (post ``parts.sso.refuse(...)``).
Service providers are registered from metadata with idp.saml.registry; ``parts.metadata()`` is
ours.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from cryptography.utils import CryptographyDeprecationWarning

with warnings.catch_warnings():
    # pysaml2 7.5 reads cryptography's moved CFB mode when imported and never uses it here; keep
    # that notice away from operators' terminals (and one-line CLI errors). Before any other
    # pysaml2 import, so this is where it is first loaded.
    warnings.filterwarnings("ignore", "CFB has been moved", CryptographyDeprecationWarning)
    import saml2.cryptography.symmetric  # noqa: F401

from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT

from idp.saml.credentials import SigningCredentials
from idp.saml.credentials import create as create_credentials
from idp.saml.errors import Reason, Rejected, StatusError
from idp.saml.given import GivenSubject
from idp.saml.inbound import AUTHN_REQUEST, LOGOUT_REQUEST, LOGOUT_RESPONSE, InboundMessage, decode
from idp.saml.replay import SeenRequests
from idp.saml.server import Endpoints, ServerFactory
from idp.saml.slo import LogoutOutcome, LogoutRequestInfo, OutgoingLogout, RedirectTo, SloService
from idp.saml.sso import REQUEST_MAX_AGE, PostForm, SsoAnswer, SsoRequest, SsoService
from idp.subjects import PUBLIC_SECTOR, Subjects
from idp.xmlsec1 import xmlsec_program

if TYPE_CHECKING:
    from idp.services import Services

__all__ = ["AUTHN_REQUEST", "BINDING_HTTP_POST", "BINDING_HTTP_REDIRECT", "LOGOUT_REQUEST", "LOGOUT_RESPONSE",
           "Endpoints", "GivenSubject", "InboundMessage", "LogoutOutcome", "LogoutRequestInfo", "OutgoingLogout",
           "PostForm", "Reason", "RedirectTo", "Rejected", "SamlParts", "SigningCredentials", "SsoAnswer",
           "SsoRequest", "StatusError",
           "build_saml", "create_signing_key", "decode", "signing_credentials"]


@dataclass
class SamlParts:
    endpoints: Endpoints
    servers: ServerFactory
    sso: SsoService
    slo: SloService
    subjects: Subjects

    def metadata(self) -> str:
        return self.servers.metadata()

    def principal_name(self, patron_id: int) -> str:
        """eduPersonPrincipalName: the public subject, scoped by our host (for public-subject SPs only)."""
        scope = urlsplit(self.endpoints.entity_id).hostname or "localhost"
        return f"{self.subjects.subject(patron_id, PUBLIC_SECTOR)}@{scope}"


def signing_credentials(keys_dir: Path, issuer: str, *, development: bool) -> SigningCredentials:
    """Development creates the key on first use; production refuses to start without it."""
    common_name = urlsplit(issuer).hostname or "patron-idp"
    return SigningCredentials.ensure(keys_dir, common_name) if development else SigningCredentials.load(keys_dir)


def create_signing_key(keys_dir: Path, issuer: str, *, replace: bool = False) -> SigningCredentials:
    """A new signing key and self-signed certificate (``idp saml new-key``)."""
    return create_credentials(keys_dir, urlsplit(issuer).hostname or "patron-idp", replace=replace)


def build_saml(services: Services) -> SamlParts:
    settings = services.settings
    xmlsec = xmlsec_program(settings.xmlsec_binary)
    endpoints = Endpoints.under(settings.issuer)
    credentials = signing_credentials(settings.keys_dir, settings.issuer, development=settings.is_development)
    servers = ServerFactory(endpoints, credentials, str(xmlsec))
    subjects = Subjects(settings.data_key_bytes(), services.state)
    seen = SeenRequests(services.state, ttl=REQUEST_MAX_AGE + 2 * 60)
    return SamlParts(endpoints=endpoints, servers=servers, subjects=subjects,
                     sso=SsoService(servers, seen, subjects, lambda: services.clock()),
                     slo=SloService(servers, seen, lambda: services.clock()))
