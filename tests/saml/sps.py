"""Independent SAML service providers for the flow tests, and a patron's browser.

``OneLoginSp`` is python3-saml (OneLogin), ``Pysaml2Sp`` a pysaml2 Saml2Client: both verify our
signatures, InResponseTo, audience and NotOnOrAfter themselves. Their assertion consumer
services are https URLs nobody serves: the browser stops at the page that would post there and
hands the form to the SP object, as the SP's web server would.
"""

from __future__ import annotations

import base64
import html
import re
import zlib
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from saml2 import BINDING_HTTP_POST
from saml2.client import Saml2Client
from saml2.config import SPConfig
from saml2.metadata import entity_descriptor

from idp.registry.dates import utcnow

PASSWORD = "correct horse battery"
XMLSEC = "/usr/bin/xmlsec1"
POST = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
REDIRECT = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
PERSISTENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
TRANSIENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:transient"
EMAIL = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"


@cache
def sp_key_pair() -> tuple[str, str]:
    """One RSA-2048 key and self-signed certificate (PEM) for every test SP of the run."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test-sp")])
    now = utcnow()
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=30)).sign(key, hashes.SHA256()))
    return (key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()).decode(),
            cert.public_bytes(serialization.Encoding.PEM).decode())


def pem_body(pem: str) -> str:
    return "".join(line for line in pem.strip().splitlines() if not line.startswith("-----"))


# -- the browser ------------------------------------------------------------------------------

@dataclass
class Form:
    url: str
    fields: dict[str, str]


def post_form(page: str) -> Form:
    """The auto-posting form on our saml_post page (or a not-approved page's back button)."""
    match = re.search(r'<form method="post" action="([^"]+)" id="saml-post">(.*?)</form>', page, re.S)
    assert match, page[:2000]
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', match.group(2)))
    return Form(html.unescape(match.group(1)), {k: html.unescape(v) for k, v in fields.items()})


def csrf(page: str) -> str:
    match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page)
    assert match, "no CSRF token on the page"
    return match.group(1)


@dataclass
class Browser:
    """A patron's browser: keeps cookies, follows our redirects, stops where an SP would take over."""

    idp_url: str
    http: requests.Session = field(default_factory=requests.Session)
    password_prompts: int = 0

    def __post_init__(self) -> None:
        self.http.headers["Accept-Language"] = "en"

    def go(self, url: str) -> requests.Response:
        response = self.http.get(url, allow_redirects=False, timeout=10)
        return self._follow(response)

    def post(self, url: str, data: dict[str, str]) -> requests.Response:
        return self._follow(self.http.post(url, data=data, allow_redirects=False, timeout=10))

    def _follow(self, response: requests.Response) -> requests.Response:
        while response.is_redirect and urljoin(response.url, response.headers["Location"]).startswith(self.idp_url):
            response = self.http.get(urljoin(response.url, response.headers["Location"]), allow_redirects=False,
                                     timeout=10)
        return response

    def log_in(self, page: requests.Response, card: str, password: str = PASSWORD) -> requests.Response:
        assert page.status_code == 200 and 'name="username"' in page.text, page.text[:1000]
        self.password_prompts += 1
        nxt = re.search(r'name="next"[^>]*value="([^"]*)"', page.text)
        return self.post(page.url, {"username": card, "password": password, "csrf_token": csrf(page.text),
                                    "next": html.unescape(nxt.group(1)) if nxt else ""})

    def through(self, page: requests.Response, card: str, consent: str = "allow") -> requests.Response:
        """From wherever the IdP put us: log in if asked, consent if asked; returns the next page."""
        if 'name="username"' in page.text:
            page = self.log_in(page, card)
        if page.status_code == 200 and 'name="decision"' in page.text:
            page = self.post(f"{self.idp_url}/saml/sso/consent", {"decision": consent, "csrf_token": csrf(page.text)})
        return page


# -- python3-saml -----------------------------------------------------------------------------

class OneLoginSp:
    """A python3-saml SP: e.g. a film platform at https://film.example."""

    # python3-saml is imported in the methods: it loads xmlsec with its own libxml2 (which must match
    # lxml's, see pyproject.toml), so only the tests that use this SP depend on that pair.

    def __init__(self, idp_url: str, host: str, *, sign_requests: bool = False, name_id_format: str = PERSISTENT,
                 slo_binding: str = REDIRECT, idp_metadata: str | None = None, base: str | None = None) -> None:
        """``idp_metadata``: our metadata as text, for tests without a server (else fetched from ``idp_url``).
        ``base``: where the SP is served, when a test serves it (http on loopback); by default an
        https host nobody serves."""
        from onelogin.saml2.idp_metadata_parser import OneLogin_Saml2_IdPMetadataParser  # noqa: PLC0415 - see the class

        key, cert = sp_key_pair()
        self.base = base or f"https://{host}"
        self.host = urlsplit(self.base).netloc
        idp = OneLogin_Saml2_IdPMetadataParser.parse(idp_metadata or _fetch_metadata(idp_url),
                                                     required_sso_binding=REDIRECT, required_slo_binding=REDIRECT)
        self.settings: dict[str, Any] = {
            "strict": True, "debug": False,
            "sp": {"entityId": f"{self.base}/saml/metadata",
                   "assertionConsumerService": {"url": f"{self.base}/saml/acs", "binding": POST},
                   "singleLogoutService": {"url": f"{self.base}/saml/sls", "binding": slo_binding},
                   # Passed explicitly: the metadata parser would copy the IdP's first format here.
                   "NameIDFormat": name_id_format, "x509cert": pem_body(cert), "privateKey": key},
            "idp": idp["idp"],
            "security": {"authnRequestsSigned": sign_requests, "logoutRequestSigned": True,
                         "logoutResponseSigned": True, "wantMessagesSigned": True, "wantAssertionsSigned": True,
                         "wantNameId": True, "requestedAuthnContext": False, "rejectDeprecatedAlgorithm": True,
                         "signatureAlgorithm": "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
                         "digestAlgorithm": "http://www.w3.org/2001/04/xmlenc#sha256"},
        }

    @property
    def entity_id(self) -> str:
        return str(self.settings["sp"]["entityId"])

    def metadata(self) -> bytes:
        from onelogin.saml2.settings import OneLogin_Saml2_Settings  # noqa: PLC0415 - see the class

        metadata = OneLogin_Saml2_Settings(self.settings, sp_validation_only=True).get_sp_metadata()
        return metadata if isinstance(metadata, bytes) else metadata.encode()

    def _auth(self, path: str, *, get: dict[str, str] | None = None, post: dict[str, str] | None = None) -> Any:
        from onelogin.saml2.auth import OneLogin_Saml2_Auth  # noqa: PLC0415 - see the class

        return OneLogin_Saml2_Auth({"https": "on" if self.base.startswith("https:") else "off",
                                    "http_host": self.host, "script_name": urlsplit(self.base).path + path,
                                    "get_data": get or {}, "post_data": post or {}}, self.settings)

    def login_url(self, **kwargs: Any) -> tuple[str, str]:
        """(the SSO URL the SP redirects to, the request ID to expect in InResponseTo)."""
        auth = self._auth("/login")
        url = auth.login(**kwargs)
        return url, auth.get_last_request_id()

    def acs(self, form: Form, request_id: str | None) -> Any:
        """The SP's ACS: process (and so verify) the posted Response; returns the auth object."""
        assert form.url == f"{self.base}/saml/acs", form.url
        auth = self._auth("/saml/acs", post=form.fields)
        auth.process_response(request_id=request_id)
        return auth

    def logout_url(self, name_id: str, name_id_format: str, session_index: str | None) -> str:
        return str(self._auth("/logout").logout(name_id=name_id, name_id_format=name_id_format,
                                               session_index=session_index,
                                               spnq=self.entity_id))

    def sls(self, url: str) -> list[str]:
        """The SP's SingleLogoutService receiving our LogoutResponse by Redirect; returns its errors."""
        assert url.startswith(f"{self.base}/saml/sls"), url
        query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
        auth = self._auth("/saml/sls", get=query)
        auth.process_slo(keep_local_session=True)
        return list(auth.get_errors())

    def answer_logout(self, query: dict[str, str]) -> LogoutAnswer:
        """The SP's SingleLogoutService receiving our LogoutRequest by Redirect (``query``): what
        the request named, python3-saml's errors, and the URL of its signed LogoutResponse."""
        from onelogin.saml2.logout_request import OneLogin_Saml2_Logout_Request  # noqa: PLC0415 - see the class
        from onelogin.saml2.utils import OneLogin_Saml2_Utils  # noqa: PLC0415 - see the class

        xml = OneLogin_Saml2_Utils.decode_base64_and_inflate(query["SAMLRequest"])
        auth = self._auth("/saml/sls", get=query)
        back = auth.process_slo(keep_local_session=True)
        return LogoutAnswer(name_id=OneLogin_Saml2_Logout_Request.get_nameid(xml),
                            session_indexes=OneLogin_Saml2_Logout_Request.get_session_indexes(xml),
                            errors=list(auth.get_errors()), response_url=back)


@dataclass
class LogoutAnswer:
    name_id: str
    session_indexes: list[str]
    errors: list[str]
    response_url: str | None


# -- pysaml2 ----------------------------------------------------------------------------------

class Pysaml2Sp:
    """A pysaml2 Saml2Client SP: e.g. a university library at https://uni.example."""

    def __init__(self, idp_url: str, host: str, workdir: Path, *, allow_unsolicited: bool = False,
                 sign_requests: bool = False, requested: list[str] | None = None,
                 idp_metadata: str | None = None) -> None:
        key, cert = sp_key_pair()
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "sp.key").write_text(key)
        (workdir / "sp.crt").write_text(cert)
        self.base = f"https://{host}"
        self.idp_entity_id = f"{idp_url}/saml/metadata"
        self.idp_slo = f"{idp_url}/saml/slo"
        sp: dict[str, Any] = {
            "endpoints": {"assertion_consumer_service": [(f"{self.base}/acs", POST)],
                          "single_logout_service": [(f"{self.base}/slo", POST)]},
            # Set here: pysaml2 ignores allow_unsolicited when it is changed after loading.
            "allow_unsolicited": allow_unsolicited,
            "authn_requests_signed": sign_requests, "logout_requests_signed": True,
            "want_response_signed": True, "want_assertions_signed": True,
            "name_id_format": [PERSISTENT, TRANSIENT],
        }
        if requested:  # RequestedAttributes in its metadata, by pysaml2's names (e.g. "mail")
            sp["required_attributes"] = requested
        config = SPConfig()
        config.load({
            "entityid": f"{self.base}/metadata", "xmlsec_binary": XMLSEC,
            "key_file": str(workdir / "sp.key"), "cert_file": str(workdir / "sp.crt"),
            "metadata": {"inline": [idp_metadata or _fetch_metadata(idp_url)]},
            "service": {"sp": sp},
            "signing_algorithm": "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
            "digest_algorithm": "http://www.w3.org/2001/04/xmlenc#sha256",
            "allow_unknown_attributes": True,
        })
        self.config = config
        self.client = Saml2Client(config)

    @property
    def entity_id(self) -> str:
        return str(self.config.entityid)

    def metadata(self) -> bytes:
        return str(entity_descriptor(self.config)).encode()

    def login_url(self, binding: str = REDIRECT, **kwargs: Any) -> tuple[str, Any, str]:
        """(URL or POST target, form fields or None, request ID) of a fresh AuthnRequest."""
        request_id, info = self.client.prepare_for_authenticate(entityid=self.idp_entity_id, binding=binding,
                                                                **kwargs)
        if binding == REDIRECT:
            return dict(info["headers"])["Location"], None, request_id
        return info["url"], _form_fields(info["data"]), request_id

    def acs(self, form: Form, outstanding: dict[str, str] | None) -> Any:
        assert form.url == f"{self.base}/acs", form.url
        return self.client.parse_authn_request_response(form.fields["SAMLResponse"], BINDING_HTTP_POST,
                                                        outstanding=outstanding)

    def logout_form(self, name_id: Any, session_index: str | None) -> tuple[str, dict[str, str]]:
        _, request = self.client.create_logout_request(
            self.idp_slo, self.idp_entity_id, name_id=name_id,
            session_indexes=[session_index] if session_index else None, sign=True)
        info = self.client.apply_binding(BINDING_HTTP_POST, str(request), self.idp_slo, relay_state="bye")
        return info["url"], _form_fields(info["data"])

    def slo(self, form: Form) -> Any:
        assert form.url == f"{self.base}/slo", form.url
        return self.client.parse_logout_request_response(form.fields["SAMLResponse"], BINDING_HTTP_POST)


def _fetch_metadata(idp_url: str) -> str:
    return requests.get(f"{idp_url}/saml/metadata", timeout=10).text


def _form_fields(page: str) -> dict[str, str]:
    return {name: html.unescape(value)
            for name, value in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page)}


# -- crafting raw requests (bad input) --------------------------------------------------------

def redirect_query(xml: str) -> str:
    deflated = zlib.compressobj(9, zlib.DEFLATED, -15)
    data = deflated.compress(xml.encode()) + deflated.flush()
    return base64.b64encode(data).decode()


def post_value(xml: str) -> str:
    return base64.b64encode(xml.encode()).decode()


def decode_response(form: Form) -> str:
    return base64.b64decode(form.fields["SAMLResponse"]).decode()


# -- metadata documents -----------------------------------------------------------------------

def sp_entity(entity_id: str, acs: str, *, name: str | None = None, formats: tuple[str, ...] = (),
              valid_until: str | None = None, signs: bool = False) -> str:
    """An SP's EntityDescriptor (without the XML declaration), as an operator receives it."""
    ui = (f'<md:Extensions><mdui:UIInfo xmlns:mdui="urn:oasis:names:tc:SAML:metadata:ui">'
          f'<mdui:DisplayName xml:lang="en">{name}</mdui:DisplayName></mdui:UIInfo></md:Extensions>') if name else ""
    key = (f'<md:KeyDescriptor use="signing"><ds:KeyInfo xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:X509Data>'
           f'<ds:X509Certificate>{pem_body(sp_key_pair()[1])}</ds:X509Certificate></ds:X509Data></ds:KeyInfo>'
           f'</md:KeyDescriptor>') if signs else ""
    until = f' validUntil="{valid_until}"' if valid_until else ""
    signed = ' AuthnRequestsSigned="true"' if signs else ""
    return (f'<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="{entity_id}"{until}>'
            f'<md:SPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol"'
            f'{signed}>{ui}{key}'
            + "".join(f"<md:NameIDFormat>{f}</md:NameIDFormat>" for f in formats)
            + f'<md:AssertionConsumerService Binding="{POST}" Location="{acs}" index="0"/>'
            f'</md:SPSSODescriptor></md:EntityDescriptor>')


def aggregate(*entities: str) -> str:
    return ('<?xml version="1.0" encoding="UTF-8"?>'
            '<md:EntitiesDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" Name="municipal federation">'
            + "".join(entities) + "</md:EntitiesDescriptor>")


IDP_ONLY_ENTITY = ('<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" '
                   'entityID="https://idp.kommune.example/idp"><md:IDPSSODescriptor '
                   'protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol"><md:SingleSignOnService '
                   f'Binding="{REDIRECT}" Location="https://idp.kommune.example/sso"/></md:IDPSSODescriptor>'
                   '</md:EntityDescriptor>')
