"""pysaml2's IdP server, configured from our settings and one SP's stored metadata at a time.

Each message gets a server view holding only the metadata of the SP it is from or for: SPs
registered a second ago are served, nothing about SPs is cached between requests or workers, and
one SP's metadata never answers for another's. A full pysaml2 server loads the signing key twice
(about 0.3 s for RSA-3072), so one is built per process and each view is a shallow copy of it
with its own metadata store; the key, the xmlsec1 runner and the configuration are shared and
never modified. A replaced key file (``idp saml new-key --replace``) takes effect on restart.
"""

from __future__ import annotations

import copy
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT, samlp
from saml2.config import IdPConfig
from saml2.metadata import entity_descriptor
from saml2.server import Server
from saml2.validate import valid_instance
from saml2.xmldsig import DIGEST_SHA256, SIG_RSA_SHA256

from idp.saml.attributes import ClaimConverter
from idp.saml.credentials import SigningCredentials
from idp.saml.nameid import SUPPORTED

log = logging.getLogger("idp.saml")
CLOCK_SKEW = 60  # seconds of tolerated difference between an SP's clock and ours
# Passed on every call too: some pysaml2 paths fall back to RSA-SHA1 when not told.
SIGNING_ALGORITHM = SIG_RSA_SHA256
DIGEST_ALGORITHM = DIGEST_SHA256


class IdpServer(Server):
    """No AssertionIDRequest or AuthnQuery service: pysaml2 would otherwise keep every
    assertion it issues in process memory, for ever."""

    def support_AssertionIDRequest(self) -> bool:  # noqa: N802 - pysaml2's name
        return False

    def support_AuthnQuery(self) -> bool:  # noqa: N802 - pysaml2's name
        return False

    def status_message(self, response_class: type[samlp.StatusResponseType_], *, in_response_to: str | None,
                       destination: str, status: samlp.Status | None = None, sign: bool = True) -> str:
        """A Response or LogoutResponse carrying only a status (Success when None), signed unless
        the binding signs it instead (HTTP-Redirect). pysaml2 builds these only privately."""
        message = self._status_response(response_class, self._issuer(), status, sign=sign,
                                        sign_alg=SIGNING_ALGORITHM, digest_alg=DIGEST_ALGORITHM,
                                        in_response_to=in_response_to, destination=destination)
        return str(message)

    def read_logout_response(self, xml: str) -> samlp.LogoutResponse:
        """An SP's LogoutResponse as pysaml2's object, an enveloped signature verified with the
        keys in the SP's metadata (SignatureError and friends otherwise; NotValid when it breaks
        the schema). Not parse_logout_request_response: that raises on any status but Success,
        losing which request failed, and ignores its own Destination check's result."""
        message = self.sec.correctly_signed_logout_response(xml, must=False, origdoc=xml)
        valid_instance(message)
        return message


@dataclass(frozen=True)
class Endpoints:
    entity_id: str  # also where our metadata is served
    sso: str
    slo: str

    @classmethod
    def under(cls, issuer: str) -> Endpoints:
        return cls(entity_id=f"{issuer}/saml/metadata", sso=f"{issuer}/saml/sso", slo=f"{issuer}/saml/slo")


class ServerFactory:
    def __init__(self, endpoints: Endpoints, credentials: SigningCredentials, xmlsec_binary: str) -> None:
        self.endpoints = endpoints
        self._credentials = credentials
        self._xmlsec_binary = xmlsec_binary
        self._base: IdpServer | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<ServerFactory {self.endpoints.entity_id}>"

    def for_sp(self, sp_metadata: Sequence[str] = ()) -> IdpServer:
        """A server that knows exactly the SPs in ``sp_metadata`` (EntityDescriptor documents)."""
        base = self._server()
        store = copy.copy(base.metadata)  # keeps its converters and security context, not its entities
        store.metadata = {}
        for document in sp_metadata:
            store.load("inline", document)
        view = copy.copy(base)
        view.config = copy.copy(base.config)
        view.config.metadata = view.metadata = store
        view.sec = copy.copy(base.sec)
        view.sec.metadata = store  # signatures verify with this SP's keys only
        return view

    def metadata(self) -> str:
        """Our metadata: entity id, signing certificate, SSO and SLO over Redirect and POST, NameID formats."""
        descriptor = entity_descriptor(self._server().config)
        descriptor.extensions = None  # pysaml2 would advertise every algorithm it knows, MD5 and SHA-1 too
        return str(descriptor)

    def _server(self) -> IdpServer:
        if self._base is None:
            with self._lock:
                if self._base is None:
                    config = IdPConfig()
                    config.load(self._config())
                    # Our attribute names, from the one table; pysaml2's bundled maps are never used.
                    config.attribute_converters = [ClaimConverter()]
                    self._base = IdpServer(config=config)
        return self._base

    def _config(self) -> dict[str, Any]:
        endpoints = self.endpoints
        return {
            "entityid": endpoints.entity_id,
            "xmlsec_binary": self._xmlsec_binary,
            # Key and certificate share one file (see idp.saml.credentials).
            "key_file": str(self._credentials.path),
            "cert_file": str(self._credentials.path),
            "metadata": {},  # per view (for_sp)
            "signing_algorithm": SIGNING_ALGORITHM,
            "digest_algorithm": DIGEST_ALGORITHM,
            # Verify signatures only with keys from the SP's metadata, never with a key the message brings.
            "only_use_keys_in_metadata": True,
            "accepted_time_diff": CLOCK_SKEW,
            "delete_tmpfiles": True,
            "service": {"idp": {
                "name": "patron-idp",
                "endpoints": {
                    "single_sign_on_service": [(endpoints.sso, BINDING_HTTP_REDIRECT),
                                               (endpoints.sso, BINDING_HTTP_POST)],
                    "single_logout_service": [(endpoints.slo, BINDING_HTTP_REDIRECT),
                                              (endpoints.slo, BINDING_HTTP_POST)],
                },
                "name_id_format": list(SUPPORTED),
                # Per SP, by its metadata (idp.saml.sso): pysaml2's switch is global.
                "want_authn_requests_signed": False,
                "sign_response": True,
                "sign_assertion": True,
            }},
        }
