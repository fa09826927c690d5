"""A university's SAML identity provider (pysaml2 ``Server``), served over real HTTP on loopback.

It plays UniMoRe for the federation tests: its own key and self-signed certificate, metadata
with an HTTP-Redirect single sign-on endpoint, checks the signature on our AuthnRequests
against our SP metadata (``trust_sp``), and answers with a signed assertion carrying
``fake.attributes`` and ``fake.authn_class``, posted by the browser to our ACS (the page it
returns is the HTTP-POST binding's form; ``form_fields`` reads it as a browser would).

Misbehaviour: ``sign=False`` (an unsigned assertion), ``deny=True`` (the member cancels: a
non-success status), ``other_issuer`` (another identity provider claims to answer),
``sign_alg``/``digest_alg`` (sign with e.g. ``SIG_RSA_SHA1``/``DIGEST_SHA1`` instead of SHA-256),
``sign_response`` (sign the Response too), ``recipient`` (the bearer SubjectConfirmationData's
Recipient, instead of the ACS URL the answer is posted to).
"""

from __future__ import annotations

import html
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flask import Flask, request
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
from saml2.config import IdPConfig
from saml2.metadata import create_metadata_string
from saml2.saml import NAME_FORMAT_URI, NAMEID_FORMAT_TRANSIENT, SCM_BEARER, NameID
from saml2.samlp import STATUS_AUTHN_FAILED
from saml2.server import Server
from saml2.xmldsig import DIGEST_SHA256, SIG_RSA_SHA256
from werkzeug.serving import make_server

from idp.auth.federation import create_sp_keys
from tests.flows.conftest import free_port

PASSWORD_CLASS = "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"
REFEDS_MFA = "https://refeds.org/profile/mfa"


@dataclass
class FakeUniversity:
    url: str
    keys_dir: Path
    attributes: dict[str, list[str]] = field(default_factory=dict)
    authn_class: str = PASSWORD_CLASS
    sign: bool = True
    deny: bool = False
    other_issuer: bool = False
    sign_alg: str = SIG_RSA_SHA256
    digest_alg: str = DIGEST_SHA256
    sign_response: bool = False
    recipient: str | None = None
    sp_metadata: str | None = None
    requests_seen: list[dict[str, str]] = field(default_factory=list)
    _server: Server | None = None

    @property
    def entity_id(self) -> str:
        return f"{self.url}/idp"

    def config(self, entity_id: str | None = None) -> IdPConfig:
        config = IdPConfig()
        config.load({
            "entityid": entity_id or self.entity_id,
            "xmlsec_binary": "/usr/bin/xmlsec1",
            "key_file": str(self.keys_dir / "federation-sp-key.pem"),
            "cert_file": str(self.keys_dir / "federation-sp-cert.pem"),
            "metadata": {"inline": [self.sp_metadata]} if self.sp_metadata else {},
            "accepted_time_diff": 60,
            "service": {"idp": {
                "name": "Test university (UniMoRe stand-in)",
                "endpoints": {"single_sign_on_service": [(f"{self.url}/sso/redirect", BINDING_HTTP_REDIRECT)]},
                "policy": {"default": {"lifetime": {"minutes": 15}, "attribute_restrictions": None,
                                       "name_form": NAME_FORMAT_URI}},
                "name_id_format": [NAMEID_FORMAT_TRANSIENT],
                "want_authn_requests_signed": True,
            }},
        })
        return config

    def metadata(self, *, sign: bool = False) -> str:
        """Its metadata; ``sign``: signed as a whole with its own key (pysaml2 and xmlsec1, SHA-256),
        as federations publish it."""
        xml = create_metadata_string(None, config=self.config(), valid=24, sign=sign, sign_alg=SIG_RSA_SHA256,
                                     digest_alg=DIGEST_SHA256)
        return xml.decode() if isinstance(xml, bytes) else xml  # pysaml2 gives the signed document as str

    @property
    def cert_file(self) -> Path:
        """The certificate its metadata is signed with (what the federation hands the operator)."""
        return self.keys_dir / "federation-sp-cert.pem"

    def trust_sp(self, sp_metadata: str) -> None:
        """Load our SP's metadata (from /federation/metadata.xml), as the university's operator would."""
        self.sp_metadata = sp_metadata
        self._server = Server(config=self.config())

    def app(self) -> Flask:
        app = Flask("fake_university")

        @app.get("/sso/redirect")
        def sso() -> Any:
            assert self._server is not None, "call trust_sp() first"
            args = dict(request.args.items())
            self.requests_seen.append(args)
            try:
                parsed = self._server.parse_authn_request(args["SAMLRequest"], BINDING_HTTP_REDIRECT,
                                                          relay_state=args.get("RelayState"),
                                                          sigalg=args.get("SigAlg"), signature=args.get("Signature"))
            except Exception as exc:  # noqa: BLE001 - a test IdP says what it refused
                return f"refused AuthnRequest: {type(exc).__name__}", 400
            authn_request = parsed.message
            binding, destination = self._server.pick_binding("assertion_consumer_service",
                                                             bindings=[BINDING_HTTP_POST],
                                                             entity_id=authn_request.issuer.text,
                                                             request=authn_request)
            server = self._server
            if self.other_issuer:
                server = Server(config=self.config(entity_id=f"{self.url}/another-idp"))
            if self.deny:
                response = server.create_error_response(authn_request.id, destination,
                                                        (STATUS_AUTHN_FAILED, "the member cancelled"))
            else:
                response = server.create_authn_response(
                    identity=self.attributes, in_response_to=authn_request.id, destination=destination,
                    sp_entity_id=authn_request.issuer.text,
                    name_id=NameID(format=NAMEID_FORMAT_TRANSIENT, text="transient-" + authn_request.id[-12:]),
                    authn={"class_ref": self.authn_class, "authn_auth": self.entity_id},
                    sign_assertion=self.sign, sign_response=self.sign_response, sign_alg=self.sign_alg,
                    digest_alg=self.digest_alg, **self._confirmation(authn_request.id))
            info = server.apply_binding(binding, str(response), destination, args.get("RelayState", ""),
                                        response=True)
            return info["data"]

        return app

    def _confirmation(self, request_id: str) -> dict[str, Any]:
        """pysaml2's assertion arguments for a bearer confirmation to ``recipient`` (default: the ACS URL)."""
        if self.recipient is None:
            return {}
        data = {"in_response_to": request_id, "recipient": self.recipient}
        return {"farg": {"assertion": {"subject": {"subject_confirmation": {
            "method": SCM_BEARER, "subject_confirmation_data": data}}}}}


def form_fields(page: str) -> tuple[str, dict[str, str]]:
    """The action and hidden fields of the HTTP-POST binding's form, as a browser would submit it."""
    action = re.search(r'<form[^>]+action="([^"]+)"', page)
    assert action, page[:500]
    fields = {html.unescape(n): html.unescape(v) for n, v in
              re.findall(r'<input[^>]+name="([^"]+)"[^>]+value="([^"]*)"', page)}
    return html.unescape(action.group(1)), fields


@contextmanager
def running_university(tmp_path: Path, port: int | None = None) -> Iterator[FakeUniversity]:
    port = port or free_port()
    keys_dir = tmp_path / "university-keys"
    create_sp_keys(keys_dir, "university.test")  # the same kind of key pair: RSA-3072, self-signed
    fake = FakeUniversity(url=f"http://127.0.0.1:{port}", keys_dir=keys_dir)
    server = make_server("127.0.0.1", port, fake.app(), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        thread.join(5)
