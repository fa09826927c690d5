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

Single logout: a SingleLogoutService over ``slo_bindings`` (both by default; empty: none in its
metadata). It verifies our signed LogoutRequest against our SP metadata (pysaml2: the query
signature over HTTP-Redirect, the enveloped one over HTTP-POST; unsigned ones are refused),
records what it named in ``logouts``, and answers with a signed LogoutResponse over
``slo_answer_binding`` to our SP metadata's SingleLogoutService. ``issued`` records the NameID and
SessionIndex of each assertion it gave. Misbehaviour: ``slo_sign=False`` (an unsigned answer),
``slo_status`` (a non-Success status).
"""

from __future__ import annotations

import base64
import html
import re
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
from saml2 import samlp
from saml2.samlp import STATUS_AUTHN_FAILED
from saml2.server import Server
from saml2.sigver import verify_redirect_signature
from saml2.xmldsig import DIGEST_SHA256, SIG_RSA_SHA256
from werkzeug.serving import make_server

from idp.auth.federation import create_sp_keys
from tests.fakes import serving
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
    slo_bindings: tuple[str, ...] = (BINDING_HTTP_REDIRECT, BINDING_HTTP_POST)
    slo_answer_binding: str = BINDING_HTTP_REDIRECT
    slo_sign: bool = True
    slo_status: str | None = None
    issued: list[dict[str, str | None]] = field(default_factory=list)
    logouts: list[dict[str, Any]] = field(default_factory=list)
    logout_answers: list[dict[str, Any]] = field(default_factory=list)
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
                "endpoints": {"single_sign_on_service": [(f"{self.url}/sso/redirect", BINDING_HTTP_REDIRECT)],
                              "single_logout_service": [(f"{self.url}/slo/{_short(b)}", b)
                                                        for b in self.slo_bindings]},
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
            self._record_issued(str(response))
            info = server.apply_binding(binding, str(response), destination, args.get("RelayState", ""),
                                        response=True)
            return info["data"]

        @app.get("/slo/redirect")
        def slo_redirect() -> Any:
            if "SAMLResponse" in request.args:
                return self._logout_answer(BINDING_HTTP_REDIRECT, dict(request.args.items()))
            return self._logout(BINDING_HTTP_REDIRECT, dict(request.args.items()))

        @app.post("/slo/post")
        def slo_post() -> Any:
            if "SAMLResponse" in request.form:
                return self._logout_answer(BINDING_HTTP_POST, dict(request.form.items()))
            return self._logout(BINDING_HTTP_POST, dict(request.form.items()))

        return app

    def logout_request(self, sp_slo: str, name_id: dict[str, str | None], *, binding: str = BINDING_HTTP_REDIRECT,
                       sign: bool = True, relay_state: str = "back-to-the-portal") -> tuple[str, str | dict[str, str]]:
        """Its own LogoutRequest for our SP (the member logged out at the university), naming ``name_id``
        (as ``issued`` records it): its ID, and the URL to send the browser to (Redirect) or the fields to
        post to ``sp_slo`` (POST)."""
        assert self._server is not None and self.sp_metadata, "call trust_sp() first"
        sp_entity = re.search(r'entityID="([^"]+)"', self.sp_metadata)
        assert sp_entity
        post = binding == BINDING_HTTP_POST
        request_id, logout = self._server.create_logout_request(
            sp_slo, sp_entity.group(1), name_id=NameID(text=name_id["name_id"], format=name_id.get("format")),
            session_indexes=[name_id["session_index"]] if name_id.get("session_index") else None,
            sign=post and sign, sign_alg=SIG_RSA_SHA256, digest_alg=DIGEST_SHA256)
        info = self._server.apply_binding(binding, str(logout), sp_slo, relay_state, sign=not post and sign,
                                          sigalg=SIG_RSA_SHA256)
        if post:
            return request_id, {"SAMLRequest": base64.b64encode(str(logout).encode()).decode(),
                                "RelayState": relay_state}
        return request_id, str(dict(info["headers"])["Location"])

    def _logout_answer(self, binding: str, args: dict[str, str]) -> Any:
        """Our LogoutResponse to its request: read with pysaml2, its signature verified against our SP metadata."""
        assert self._server is not None and self.sp_metadata
        xml = self._server.unravel(args["SAMLResponse"], binding, "logout_response")
        answer = samlp.logout_response_from_string(xml)
        certs = [cert for _name, cert in self._server.metadata.certs(answer.issuer.text, "spsso", "signing")]
        if binding == BINDING_HTTP_REDIRECT:
            signed = any(verify_redirect_signature(args, self._server.sec.sec_backend, cert) for cert in certs)
        else:
            signed = bool(self._server.sec.correctly_signed_logout_response(xml, must=True))
        self.logout_answers.append({"binding": binding, "in_response_to": answer.in_response_to,
                                    "status": answer.status.status_code.value, "signed": signed,
                                    "sigalg": args.get("SigAlg"), "relay_state": args.get("RelayState")})
        return "You are logged out at the university."

    def unsolicited_logout_response(self, in_response_to: str, destination: str) -> str:
        """A LogoutResponse to a request that was never sent, properly signed (HTTP-Redirect): its URL."""
        assert self._server is not None, "call trust_sp() first"
        response = self._server._status_response(samlp.LogoutResponse, self._server._issuer(), None, sign=False,
                                                 in_response_to=in_response_to, destination=destination)
        info = self._server.apply_binding(BINDING_HTTP_REDIRECT, str(response), destination, "whatever",
                                          response=True, sign=True, sigalg=SIG_RSA_SHA256)
        return str(dict(info["headers"])["Location"])

    def _record_issued(self, xml: str) -> None:
        assertions = samlp.response_from_string(xml).assertion
        if not assertions:
            return  # a denial carries none
        assertion = assertions[0]
        name_id = assertion.subject.name_id
        self.issued.append({"name_id": name_id.text, "format": name_id.format,
                            "session_index": assertion.authn_statement[0].session_index})

    def _logout(self, binding: str, args: dict[str, str]) -> Any:
        """Verify our LogoutRequest (pysaml2, with our SP metadata's key), answer a signed LogoutResponse."""
        assert self._server is not None, "call trust_sp() first"
        try:
            parsed = self._server.parse_logout_request(args["SAMLRequest"], binding, relay_state=args.get("RelayState"),
                                                       sigalg=args.get("SigAlg"), signature=args.get("Signature"))
        except Exception as exc:  # noqa: BLE001 - a test IdP says what it refused
            return f"refused LogoutRequest: {type(exc).__name__}", 400
        logout_request = parsed.message
        self.logouts.append({"binding": binding, "name_id": logout_request.name_id.text,
                             "format": logout_request.name_id.format,
                             "session_indexes": [si.text for si in logout_request.session_index or []],
                             "sigalg": args.get("SigAlg"), "relay_state": args.get("RelayState"),
                             "issuer": logout_request.issuer.text, "id": logout_request.id})
        answer = self.slo_answer_binding
        status = samlp.Status(status_code=samlp.StatusCode(value=self.slo_status)) if self.slo_status else None
        post = answer == BINDING_HTTP_POST
        response = self._server.create_logout_response(logout_request, [answer], status=status,
                                                       sign=post and self.slo_sign, sign_alg=SIG_RSA_SHA256,
                                                       digest_alg=DIGEST_SHA256)
        _binding, destination = self._server.pick_binding("single_logout_service", bindings=[answer],
                                                          entity_id=logout_request.issuer.text)
        info = self._server.apply_binding(answer, str(response), destination, args.get("RelayState", ""),
                                          response=True, sign=not post and self.slo_sign, sigalg=SIG_RSA_SHA256)
        if post:
            return info["data"]
        return "", 303, {"Location": dict(info["headers"])["Location"]}

    def _confirmation(self, request_id: str) -> dict[str, Any]:
        """pysaml2's assertion arguments for a bearer confirmation to ``recipient`` (default: the ACS URL)."""
        if self.recipient is None:
            return {}
        data = {"in_response_to": request_id, "recipient": self.recipient}
        return {"farg": {"assertion": {"subject": {"subject_confirmation": {
            "method": SCM_BEARER, "subject_confirmation_data": data}}}}}


def _short(binding: str) -> str:
    return "redirect" if binding == BINDING_HTTP_REDIRECT else "post"


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
    with serving(make_server("127.0.0.1", port, fake.app(), threaded=True)):
        yield fake
