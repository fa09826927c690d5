"""University and municipal federations upstream: we are a SAML service provider (pysaml2).

One SP entity (``{issuer}/federation/sp``, assertion consumer service ``{issuer}/federation/acs``,
HTTP-POST) for every configured federation; each federation is an upstream identity provider
whose metadata the operator loaded (``idp federation add``). AuthnRequests are signed (SHA-256)
and sent with the HTTP-Redirect binding; answers must be signed with SHA-256 or stronger, must
answer a request we sent (``InResponseTo``, single-use, kept in the state store), must come from
the identity provider that request went to, and must be confirmed for our ACS (the bearer
``Recipient``). pysaml2 checks the signature against the metadata, the destination, the audience
and the time conditions; the algorithms and the Recipient are checked here, pysaml2 lets both pass.

Single logout (``{issuer}/federation/slo``, HTTP-Redirect and HTTP-POST): a login keeps the
assertion's NameID and SessionIndex (``UpstreamSession``); logging out sends the federation's
SingleLogoutService a signed LogoutRequest naming them, and its LogoutResponse must be signed
(an enveloped signature verified by pysaml2 with xmlsec1, or the Redirect binding's query
signature verified with pysaml2's signer and the metadata's keys: pysaml2 checks neither for a
service provider unless told), come from that federation and answer our request.

pysaml2 keeps every person it has seen in an in-memory identity cache; a fresh ``Saml2Client``
is built per request from a cached configuration, so nothing about a person outlives the request.
No Flask here; the views are in ``idp.web.federation``.
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
import os
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import load_pem_x509_certificate
from defusedxml.ElementTree import fromstring
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT, samlp
from saml2.s_utils import decode_base64_and_inflate
from saml2.attribute_converter import ac_factory
from saml2.client import Saml2Client
from saml2.config import SPConfig
from saml2.mdstore import InMemoryMetaData
from saml2.metadata import entity_descriptor, metadata_tostring_fix
from saml2.response import LogoutResponse, StatusError
from saml2.saml import NAMEID_FORMAT_TRANSIENT, SCM_BEARER, NameID
from saml2.samlp import STATUS_SUCCESS
from saml2.sigver import CryptoBackendXmlSec1
from saml2.validate import valid_instance

from idp.query_signatures import verify_query_signature
from idp.errors import ConfigError, IdpError, InvalidNationalId, NotAllowed, ValidationError
from idp.registry import cards, patrons, upstream
from idp.registry.context import Registry
from idp.registry.models import Federation, Patron, UpstreamIdentity
from idp.registry.national_id import NationalId, parse_national_id
from idp.selfsigned import certificate_pem, create_self_signed, key_pem
from idp.settings import Settings
from idp.xmlsec1 import xmlsec_program

log = logging.getLogger("idp.auth.federation")

SP_KEY_FILE = "federation-sp-key.pem"
SP_CERT_FILE = "federation-sp-cert.pem"
REQUEST_TTL = 900  # seconds a member may spend at their university's login page
MAX_RESPONSE = 256 * 1024  # a SAMLResponse (base64) of a few kB; refuse megabytes before parsing
SIGALG = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
DIGEST = "http://www.w3.org/2001/04/xmlenc#sha256"
# What we accept in a university's signature and advertise in our metadata: SHA-256 and stronger.
# MD5 and SHA-1 (and anything unknown) are refused: a collision could carry a forged assertion.
STRONG_DIGESTS = frozenset({DIGEST, "http://www.w3.org/2001/04/xmldsig-more#sha384",
                            "http://www.w3.org/2001/04/xmlenc#sha512"})
STRONG_SIGNATURES = frozenset({SIGALG, *(f"http://www.w3.org/2001/04/xmldsig-more#{alg}-sha{bits}"
                                         for alg in ("rsa", "ecdsa") for bits in (256, 384, 512))})


class _WithholdValues(logging.Filter):
    """pysaml2 puts whole assertions (names, identifiers) into some log lines, even at ERROR
    (e.g. "Failed to verify signature on '%s'"): keep its words, drop the values."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            record.msg, record.args = f"{record.msg} [values withheld]", ()
        return True


_WITHHOLD = _WithholdValues()
_PYSAML2_LOGGERS = ("saml2", "saml2.response", "saml2.sigver", "saml2.client_base", "saml2.client", "saml2.entity",
                    "saml2.mdstore", "saml2.assertion", "saml2.attribute_converter", "saml2.s_utils", "saml2.config")


def withhold_pysaml2_values() -> None:
    """Install the filter on pysaml2's loggers (a logger's filter sees only its own records)."""
    for name in _PYSAML2_LOGGERS:
        logger = logging.getLogger(name)
        if _WITHHOLD not in logger.filters:
            logger.addFilter(_WITHHOLD)


class FederationFailure(StrEnum):
    """Why a federation login failed (the page's wording and status: idp.web.federation)."""

    UNKNOWN = "unknown"  # no such federation, or switched off
    CONFIG = "config"  # our service provider is not set up
    STATE = "state"  # an answer to no request of ours, or one already used or expired
    STATUS = "status"  # the university did not log the person in
    INVALID = "invalid"  # the answer failed verification
    ISSUER = "issuer"  # answered by another identity provider than the one asked
    ATTRIBUTE = "attribute"  # the attribute that identifies the member is missing


class FederationError(IdpError):
    """A federation login failed; ``kind`` says why (for the page), the message holds no personal data."""

    code = "federation_error"
    http_status = 400

    def __init__(self, kind: FederationFailure, message: str) -> None:
        super().__init__(message)
        self.kind = FederationFailure(kind)


# -- our service provider's keys ------------------------------------------------------------------

def sp_key_paths(keys_dir: Path) -> tuple[Path, Path]:
    return keys_dir / SP_KEY_FILE, keys_dir / SP_CERT_FILE


def create_sp_keys(keys_dir: Path, common_name: str, *, replace: bool = False) -> tuple[Path, Path]:
    """An RSA-3072 key and a self-signed certificate (10 years) for signing AuthnRequests and
    decrypting assertions. In SAML metadata a self-signed certificate is the norm: trust comes
    from the metadata exchange, not from a CA."""
    key_path, cert_path = sp_key_paths(keys_dir)
    if key_path.exists() and not replace:
        raise ConfigError(f"{key_path} exists already; pass --replace to make a new key")
    keys_dir.mkdir(parents=True, exist_ok=True)
    key, cert = create_self_signed(common_name, rsa_bits=3072, days=3650)
    tmp = key_path.with_name(f".{key_path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(key_pem(key))
    tmp.replace(key_path)
    cert_path.write_bytes(certificate_pem(cert))
    return key_path, cert_path


@dataclass(frozen=True)
class ServiceProvider:
    entity_id: str
    acs_url: str
    key_file: Path
    cert_file: Path
    xmlsec_binary: str
    slo_url: str

    @classmethod
    def for_settings(cls, settings: Settings) -> ServiceProvider:
        """Ours under IDP_ISSUER, with the xmlsec1 IDP_XMLSEC_BINARY names (never searched for on PATH,
        as for our IdP). Only development creates a missing key."""
        try:
            xmlsec = xmlsec_program(settings.xmlsec_binary)
        except ConfigError as exc:
            raise FederationError(FederationFailure.CONFIG, str(exc)) from None
        issuer, keys_dir = settings.issuer, settings.keys_dir
        key_file, cert_file = sp_key_paths(keys_dir)
        if not key_file.is_file() or not cert_file.is_file():
            if not settings.is_development:
                raise FederationError(FederationFailure.CONFIG,
                                      f"the federation service provider has no key in {keys_dir}; "
                                                "create one with: idp federation sp-key")

            create_sp_keys(keys_dir, urlsplit(issuer).hostname or "patron-idp")
        return cls(entity_id=f"{issuer}/federation/sp", acs_url=f"{issuer}/federation/acs", key_file=key_file,
                   cert_file=cert_file, xmlsec_binary=str(xmlsec), slo_url=f"{issuer}/federation/slo")


# -- metadata ---------------------------------------------------------------------------------------

def identity_providers_in(metadata_xml: str) -> list[str]:
    """The entityIDs of the identity providers a metadata document describes (the operator's file)."""

    if not metadata_xml or len(metadata_xml) > 50 * 1024 * 1024:
        raise ValidationError("The metadata file is empty or too large.")
    try:
        store = InMemoryMetaData(ac_factory(), metadata_xml)
        store.load()
    except Exception as exc:  # noqa: BLE001 - pysaml2 raises many kinds; the operator needs one line
        raise ValidationError(f"This is not usable SAML metadata ({type(exc).__name__}): check the file, and "
                              "that its validUntil has not passed.") from None
    return sorted(entity_id for entity_id, entity in store.items() if entity.get("idpsso_descriptor"))


def metadata_valid_until(metadata_xml: str) -> dt.datetime | None:
    """The document's validUntil (pysaml2 checks it only on an EntitiesDescriptor, so we do it too)."""

    try:
        value = fromstring(metadata_xml.encode()).attrib.get("validUntil")
        until = dt.datetime.fromisoformat(value) if value else None
    except Exception:  # noqa: BLE001 - unreadable: pysaml2 refuses it with its own words
        return None
    return until.replace(tzinfo=dt.UTC) if until is not None and until.tzinfo is None else until


def _check_fresh(metadata_xml: str) -> None:
    until = metadata_valid_until(metadata_xml)
    if until is not None and until < dt.datetime.now(dt.UTC):
        raise ValidationError(f"The metadata's validUntil ({until:%Y-%m-%d %H:%M} UTC) has passed: fetch a fresh "
                              "copy from the federation.")


_MD = "urn:oasis:names:tc:SAML:2.0:metadata"
_DS = "http://www.w3.org/2000/09/xmldsig#"
_METADATA_ROOTS = ("EntityDescriptor", "EntitiesDescriptor")


def metadata_certificate(pem: str) -> str:
    """The PEM certificate an operator gives for a federation's metadata, checked to be one."""
    try:
        certificate = load_pem_x509_certificate(pem.encode())
    except ValueError:
        raise ValidationError("The metadata certificate is not a PEM X.509 certificate (-----BEGIN CERTIFICATE-----)."
                              ) from None
    return certificate.public_bytes(Encoding.PEM).decode()


def check_metadata_signature(metadata_xml: str, cert_pem: str, xmlsec_binary: str) -> None:
    """ValidationError unless the whole document is signed with ``cert_pem``'s key.

    The signature must be the root's own (a ds:Signature child of the EntityDescriptor or
    EntitiesDescriptor, referencing the root's ID): a signed element wrapped in an unsigned
    document would otherwise pass. The signature itself is checked by pysaml2's xmlsec1 backend
    against the configured certificate alone."""
    try:
        root = fromstring(metadata_xml.encode())
    except Exception:  # noqa: BLE001 - defusedxml refuses DTDs and entities; anything unreadable is refused
        raise ValidationError("This is not readable SAML metadata.") from None
    namespace, _, tag = root.tag[1:].partition("}")
    root_id = root.attrib.get("ID")
    signatures = root.findall(f"{{{_DS}}}Signature")
    references = [ref.attrib.get("URI") for sig in signatures for ref in sig.iter(f"{{{_DS}}}Reference")]
    # xmlsec1 verifies the first signature in document order: it must be the root's, and the ID it
    # references must be the root's alone (an entity's own signature placed first, or a second
    # element with the root's ID, would otherwise vouch for the document).
    first = next(root.iter(f"{{{_DS}}}Signature"), None)
    same_id = sum(1 for element in root.iter() if element.attrib.get("ID") == root_id)
    if (namespace != _MD or tag not in _METADATA_ROOTS or not root_id or references != [f"#{root_id}"]
            or first is not signatures[0] or same_id != 1):
        raise ValidationError("The metadata is not signed as a whole (one signature of its root element), but a "
                              "metadata certificate is configured: get the signed metadata from the federation.")
    with tempfile.NamedTemporaryFile("w", suffix=".pem") as cert_file:
        cert_file.write(cert_pem)
        cert_file.flush()
        try:
            valid = CryptoBackendXmlSec1(xmlsec_binary).validate_signature(
                metadata_xml, cert_file=cert_file.name, cert_type="pem", node_name=f"{_MD}:{tag}", node_id=root_id)
        except Exception:  # noqa: BLE001 - pysaml2's SignatureError and XmlsecError: not verified
            valid = False
    if valid is not True:
        raise ValidationError("The metadata's signature does not verify with the configured metadata certificate: "
                              "it was changed, or signed with another key.")


def choose_entity_id(metadata_xml: str, entity_id: str | None) -> str:
    _check_fresh(metadata_xml)
    found = identity_providers_in(metadata_xml)
    if entity_id:
        if entity_id not in found:
            raise ValidationError("The metadata describes no identity provider with that entityID.")
        return entity_id
    if len(found) != 1:
        raise ValidationError(f"The metadata describes {len(found)} identity providers; name the one to use "
                              "with --entity-id." if found else "The metadata describes no identity provider.")
    return found[0]


# -- the login ------------------------------------------------------------------------------------

@dataclass(frozen=True, repr=False)
class UpstreamSession:
    """What single logout names at the federation: the assertion's NameID (its value and the
    qualifiers that scope it) and the AuthnStatement's SessionIndex. The value may identify the
    member (a persistent id, sometimes an address): keep it sealed, never log it."""

    name_id: str
    format: str | None = None
    name_qualifier: str | None = None
    sp_name_qualifier: str | None = None
    session_index: str | None = None

    def __repr__(self) -> str:
        return "<UpstreamSession>"

    def to_dict(self) -> dict[str, str]:
        """Compact: only what is set ("v" the value, "f", "nq", "spq", "si")."""
        return {key: value for key, value in (("v", self.name_id), ("f", self.format), ("nq", self.name_qualifier),
                                              ("spq", self.sp_name_qualifier), ("si", self.session_index))
                if value}

    @classmethod
    def from_dict(cls, data: Any) -> UpstreamSession | None:
        if not isinstance(data, dict) or not isinstance(data.get("v"), str) or not data["v"]:
            return None
        text = {key: data[key] if isinstance(data.get(key), str) else None for key in ("f", "nq", "spq", "si")}
        return cls(name_id=data["v"], format=text["f"], name_qualifier=text["nq"], sp_name_qualifier=text["spq"],
                   session_index=text["si"])

    def same_subject(self, name_id: Any) -> bool:
        """Whether a pysaml2 NameID names the same subject (value, format and qualifiers as given)."""
        return (name_id is not None and (name_id.text or "").strip() == self.name_id
                and (name_id.format or None) == self.format
                and (name_id.name_qualifier or None) == self.name_qualifier
                and (name_id.sp_name_qualifier or None) == self.sp_name_qualifier)


def upstream_session_of(response: Any) -> UpstreamSession | None:
    """The NameID and first SessionIndex of a verified answer's assertion (None without a NameID)."""
    assertion = response.assertion
    name_id: Any = getattr(getattr(assertion, "subject", None), "name_id", None) or getattr(response, "name_id", None)
    text = (getattr(name_id, "text", None) or "").strip()
    if name_id is None or not text or len(text) > 1024:
        return None
    index = next((statement.session_index for statement in (assertion.authn_statement or [])
                  if statement.session_index), None)
    return UpstreamSession(name_id=text, format=name_id.format or None, name_qualifier=name_id.name_qualifier or None,
                           sp_name_qualifier=name_id.sp_name_qualifier or None,
                           session_index=index if index and len(index) <= 256 else None)


@dataclass(frozen=True, repr=False)
class FederationLogin:
    """What a verified answer says: who (the link value), maybe a national id, the owned fields' values."""

    federation: str
    subject: str
    national_id: NationalId | None
    values: dict[str, str]
    level: str
    amr: list[str]
    auth_time: int | None = None  # the assertion's AuthnInstant (epoch seconds), when it has one
    session: UpstreamSession | None = None  # what single logout needs, when the assertion has a NameID

    def __repr__(self) -> str:
        return f"<FederationLogin federation={self.federation} level={self.level}>"


def _first(values: Any) -> str | None:
    if isinstance(values, (list, tuple)):
        values = values[0] if values else None
    return values.strip() if isinstance(values, str) and values.strip() else None


def national_id_from(attribute: str, value: str | None) -> NationalId | None:
    """A Norwegian national id from norEduPersonNIN (the number) or schacPersonalUniqueCode
    (``urn:schac:personalUniqueCode:no:<type>:<number>``: Norwegian codes only); else None."""
    if not value:
        return None
    if attribute == "schacPersonalUniqueCode":
        parts = value.split(":")
        if len(parts) < 6 or ":".join(parts[:3]).lower() != "urn:schac:personaluniquecode" or parts[3].lower() != "no":
            return None
        value = parts[-1]
    try:
        nid = parse_national_id(value)
    except InvalidNationalId:
        return None
    return nid if nid.allows_national_card else None


def _epoch(instant: Any) -> int | None:
    try:
        moment = dt.datetime.fromisoformat(str(instant))
    except ValueError:
        return None
    return int((moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)).timestamp())


def read_login(federation: Federation, ava: dict[str, Any], classrefs: Sequence[str],
               authn_instant: Any = None) -> FederationLogin:
    subject = _first(ava.get(federation.link_attribute))
    if subject is None or len(subject) > 1024:
        raise FederationError(FederationFailure.ATTRIBUTE,
                              f"the answer lacks the attribute {federation.link_attribute}")
    nid_attribute = federation.national_id_attribute
    if nid_attribute is None and federation.link_attribute == "norEduPersonNIN":
        nid_attribute = "norEduPersonNIN"
    national_id = national_id_from(nid_attribute, _first(ava.get(nid_attribute))) if nid_attribute else None
    values = {field: value for field, attribute in federation.attribute_map.items()
              if (value := _first(ava.get(attribute))) is not None}
    level = upstream.level_for(federation, list(classrefs))
    return FederationLogin(federation=federation.name, subject=subject, national_id=national_id, values=values,
                           level=level, amr=["mfa"] if level == "mfa" else ["pwd"],
                           auth_time=_epoch(authn_instant) if authn_instant else None)


def resolve_login(reg: Registry, login: FederationLogin) -> int | None:
    """The patron this federation account logs in as (linking it by national id the first time),
    with the owned fields refreshed; None when it is linked to nobody yet."""
    federation = upstream.get_federation(reg, login.federation)
    identity = upstream.find_link(reg, federation, login.subject)
    if identity is None and login.national_id is not None:
        patron = patrons.find_by_national_id(reg, login.national_id.value)
        if patron is not None and patron.status == "active" and upstream.link_of(reg, federation, patron) is None:
            identity = upstream.link(reg, federation, login.subject, patron, how="national_id")
    if identity is None:
        return None
    return finish_login(reg, federation, identity, login)


def card_owner(reg: Registry, typed_card: str, password: str) -> int | None:
    """The active patron whose card ``typed_card`` is, when ``password`` is that patron's; else None.

    Linking asks for the card's password before a code is sent, so that naming someone's card
    sends them nothing. An unknown card, a wrong password and a blocked card cost the same (one
    query, one argon2 run against the register's dummy hash when there is nothing to check) and
    give the same None."""
    on_file = cards.find_secret_on_file(reg, typed_card, "password")
    check = patrons.check_secret(reg, on_file, password)
    return on_file.patron_id if check.ok and on_file is not None else None


def finish_login(reg: Registry, federation: Federation, identity: UpstreamIdentity, login: FederationLogin) -> int:
    """Log in through a linked account: the patron must be active; the owned fields are refreshed."""
    patron = reg.session.get(Patron, identity.patron_id)
    if patron is None or patron.status != "active":
        raise NotAllowed("This library card is blocked.")
    upstream.refresh_owned_fields(reg, identity, login.values)
    patrons.record_activity(reg, patron)
    reg.audit("login.federation", patron_id=patron.id, federation=federation.name, acr=login.level)
    return int(patron.id)


@dataclass(frozen=True)
class LogoutMessage:
    """A LogoutRequest on its way: the browser goes to ``url`` (HTTP-Redirect, signed query), or
    posts ``fields`` there (HTTP-POST, signed XML)."""

    request_id: str
    binding: str
    url: str
    fields: dict[str, str] | None = None


@dataclass(frozen=True, repr=False)
class IncomingLogout:
    """A verified LogoutRequest from a federation's IdP: whom it names (a pysaml2 NameID) and which
    of their sessions there (none: all of them)."""

    request_id: str
    name_id: Any
    session_indexes: tuple[str, ...] = ()

    def __repr__(self) -> str:
        return f"<IncomingLogout {self.request_id}>"

    def names(self, session: UpstreamSession) -> bool:
        """Whether it ends ``session``: the same NameID, and its SessionIndex among those named (if any are)."""
        return session.same_subject(self.name_id) and (not self.session_indexes or session.session_index is None
                                                       or session.session_index in self.session_indexes)


def logout_request_issuer(binding: str, message: str) -> str | None:
    """The Issuer of a LogoutRequest (deflated over Redirect), read before verification to find its federation."""
    request = _read_unverified(binding, message, samlp.logout_request_from_string)
    issuer = getattr(getattr(request, "issuer", None), "text", None)
    return issuer.strip() if isinstance(issuer, str) and 0 < len(issuer.strip()) <= 1024 else None


def _read_unverified(binding: str, message: str, parse: Callable[[bytes], Any]) -> Any:
    """A logout message parsed by pysaml2 before any check, or None: anything unreadable is simply
    not a message to us."""
    if not message or len(message) > MAX_RESPONSE:
        return None
    try:
        xml = (decode_base64_and_inflate(message) if binding == BINDING_HTTP_REDIRECT
               else base64.b64decode(message, validate=False))
        return parse(xml)
    except Exception:  # noqa: BLE001 - pysaml2 and the decoders raise many types
        return None


@dataclass(frozen=True)
class _Signed:
    """A message seen as weak_algorithms sees a Response: its own signature, no assertions."""

    response: Any
    assertions: tuple[Any, ...] = ()


def logout_response_to(binding: str, message: str) -> str | None:
    """The InResponseTo of a LogoutResponse (deflated over Redirect), read before verification."""
    response = _read_unverified(binding, message, samlp.logout_response_from_string)
    value = getattr(response, "in_response_to", None) if response is not None else None
    return value if isinstance(value, str) and 0 < len(value) <= 256 else None


def in_response_to(saml_response: str) -> str | None:
    """The InResponseTo of a posted SAMLResponse, read before verification to find our request."""

    if not saml_response or len(saml_response) > MAX_RESPONSE:
        return None
    try:
        response = samlp.response_from_string(base64.b64decode(saml_response, validate=False))
    except Exception:  # noqa: BLE001 - anything unreadable is simply not an answer to us
        return None
    value = getattr(response, "in_response_to", None) if response is not None else None
    return value if isinstance(value, str) and 0 < len(value) <= 256 else None


class FederationSp:
    """pysaml2's service provider. Each federation gets a configuration of its own, holding only
    its identity provider's metadata: an answer is checked against that federation's keys alone,
    and one federation's broken or expired metadata stops only its own logins. Configurations are
    cached per federation and version (metadata parsing is the slow part); a fresh client is built
    per request (see the module docstring)."""

    def __init__(self, sp: ServiceProvider) -> None:
        self.sp = sp
        self._lock = threading.Lock()
        self._cached: dict[int | None, tuple[str, Any, dt.datetime | None]] = {}

    def __repr__(self) -> str:
        return f"<FederationSp {self.sp.entity_id}>"

    def _config(self, federation: Federation | None) -> Any:
        key = federation.id if federation is not None else None
        version = federation.updated_at.isoformat() if federation is not None else ""
        with self._lock:
            cached = self._cached.get(key)
        if cached is None or cached[0] != version:
            cached = (version, self._load(federation), metadata_valid_until(federation.metadata_xml)
                      if federation is not None else None)
            with self._lock:
                self._cached[key] = cached
        if cached[2] is not None and cached[2] < dt.datetime.now(dt.UTC):
            raise FederationError(FederationFailure.CONFIG, "its metadata has expired (validUntil)")
        return cached[1]

    def _load(self, federation: Federation | None) -> Any:
        if federation is not None and federation.metadata_cert:
            # Checked again at every load, not only when the operator loaded it: the register's copy
            # could have been changed since, and with a certificate configured unverified metadata is never used.
            try:
                check_metadata_signature(federation.metadata_xml, federation.metadata_cert, self.sp.xmlsec_binary)
            except ValidationError as exc:
                raise FederationError(FederationFailure.CONFIG, f"its metadata is refused: {exc}") from None
        config = SPConfig()
        config.load({
            "entityid": self.sp.entity_id,
            "xmlsec_binary": self.sp.xmlsec_binary,
            "key_file": str(self.sp.key_file),
            "cert_file": str(self.sp.cert_file),
            "encryption_keypairs": [{"key_file": str(self.sp.key_file), "cert_file": str(self.sp.cert_file)}],
            "metadata": {"inline": [federation.metadata_xml]} if federation is not None else {},
            "accepted_time_diff": 60,
            "allow_unknown_attributes": True,
            "service": {"sp": {
                "name": "patron-idp",
                "endpoints": {"assertion_consumer_service": [(self.sp.acs_url, BINDING_HTTP_POST)],
                              "single_logout_service": [(self.sp.slo_url, BINDING_HTTP_REDIRECT),
                                                        (self.sp.slo_url, BINDING_HTTP_POST)]},
                # Set here, in the dict: pysaml2 ignores these when changed after loading.
                "allow_unsolicited": False,
                "authn_requests_signed": True,
                "logout_requests_signed": True,
                "logout_responses_signed": True,
                "want_assertions_or_response_signed": True,
                "want_response_signed": False,
                "want_assertions_signed": False,
                "name_id_format": [NAMEID_FORMAT_TRANSIENT],
                "name_id_format_allow_create": True,
                "signing_algorithm": SIGALG,
                "digest_algorithm": DIGEST,
            }},
        })
        return config

    def _client(self, federation: Federation) -> Any:

        try:
            return Saml2Client(config=self._config(federation))
        except FederationError as exc:
            log.error("federation %s: %s; load a fresh copy (idp federation update --metadata)", federation.name, exc)
            raise
        except Exception as exc:  # noqa: BLE001 - broken or expired metadata must not become a 500
            log.error("federation %s: configuration failed: %s", federation.name, type(exc).__name__)
            raise FederationError(FederationFailure.CONFIG,
                                  "the federation configuration could not be loaded") from None

    def begin(self, federation: Federation, *, force_authn: bool = False) -> tuple[str, str]:
        """The URL that sends the browser to the federation's login, and the request's ID.
        ``force_authn``: the member must authenticate again (a service asked for a fresh login)."""

        client = self._client(federation)
        extra = {"force_authn": "true"} if force_authn else {}
        try:
            request_id, info = client.prepare_for_authenticate(entityid=federation.entity_id, relay_state="",
                                                               binding=BINDING_HTTP_REDIRECT, sign=True,
                                                               sigalg=SIGALG, digest_alg=DIGEST, **extra)
        except Exception as exc:  # noqa: BLE001
            log.error("federation %s: AuthnRequest failed: %s", federation.name, type(exc).__name__)
            raise FederationError(FederationFailure.CONFIG,
                                  "the login request to the federation could not be made") from None
        location = dict(info["headers"]).get("Location")
        if not location:
            raise FederationError(FederationFailure.CONFIG,
                                  "the federation's metadata has no HTTP-Redirect login endpoint")
        return location, request_id

    def verify(self, federation: Federation, saml_response: str, request_id: str) -> FederationLogin:
        """Verify a posted SAMLResponse answering ``request_id`` to ``federation``; read the login."""

        client = self._client(federation)
        try:
            response = client.parse_authn_request_response(saml_response, BINDING_HTTP_POST,
                                                           outstanding={request_id: "/"})
        except StatusError as exc:
            log.info("federation %s: login not completed (%s)", federation.name, type(exc).__name__)
            raise FederationError(FederationFailure.STATUS, "the federation did not log the person in") from None
        except Exception as exc:  # noqa: BLE001 - every verification failure is a refusal
            log.warning("federation %s: answer refused (%s)", federation.name, type(exc).__name__)
            raise FederationError(FederationFailure.INVALID, "the federation's answer could not be verified") from None
        if response is None or response.assertion is None:
            raise FederationError(FederationFailure.INVALID, "the federation's answer holds no assertion")
        weak = weak_algorithms(response)
        if weak:
            log.warning("federation %s: answer refused (signed with %s; SHA-256 or stronger is required)",
                        federation.name, ", ".join(weak))
            raise FederationError(FederationFailure.INVALID, "the federation's answer is signed with a weak algorithm")
        if not confirmed_for(response, self.sp.acs_url):
            log.warning("federation %s: answer refused (its bearer SubjectConfirmation is for another Recipient "
                        "than our ACS)", federation.name)
            raise FederationError(FederationFailure.INVALID, "the federation's answer is meant for another recipient")
        if response.in_response_to != request_id:
            raise FederationError(FederationFailure.STATE, "the answer is not for the request we sent")
        if response.issuer() != federation.entity_id:
            raise FederationError(FederationFailure.ISSUER,
                                  "the answer comes from another identity provider than the one asked")
        authn = response.authn_info()
        login = read_login(federation, dict(response.ava or {}), [ref for ref, _authorities, _instant in authn],
                           authn[0][2] if authn else None)
        return replace(login, session=upstream_session_of(response))

    # -- single logout ---------------------------------------------------------------------------

    def logout_service(self, federation: Federation, *, response: bool = False) -> tuple[str, str] | None:
        """The federation's SingleLogoutService (binding, location; its ResponseLocation when
        ``response`` and it has one): HTTP-Redirect preferred, else HTTP-POST; None when it has neither."""
        client = self._client(federation)
        try:
            services = client.metadata.service(federation.entity_id, "idpsso_descriptor", "single_logout_service")
        except Exception:  # noqa: BLE001 - pysaml2 raises when the entity is unknown
            services = None
        for binding in (BINDING_HTTP_REDIRECT, BINDING_HTTP_POST):
            found = (services or {}).get(binding) if isinstance(services, dict) else None
            location = ((response and found[0].get("response_location")) or found[0].get("location")) if found else None
            if location:
                return binding, str(location)
        return None

    def logout_request(self, federation: Federation, session: UpstreamSession,
                       relay_state: str) -> LogoutMessage | None:
        """A signed LogoutRequest (SHA-256) naming ``session``'s NameID and SessionIndex, for the
        federation's SingleLogoutService; None when it has none."""
        service = self.logout_service(federation)
        if service is None:
            return None
        binding, location = service
        client = self._client(federation)
        name_id = NameID(text=session.name_id, format=session.format, name_qualifier=session.name_qualifier,
                         sp_name_qualifier=session.sp_name_qualifier)
        post = binding == BINDING_HTTP_POST
        try:
            request_id, request = client.create_logout_request(
                location, federation.entity_id, name_id=name_id, reason="urn:oasis:names:tc:SAML:2.0:logout:user",
                session_indexes=[session.session_index] if session.session_index else None,
                sign=post, sign_alg=SIGALG, digest_alg=DIGEST)
            # Redirect: the binding signs the query (an enveloped signature would not survive its size limits).
            info = client.apply_binding(binding, str(request), location, relay_state, sign=not post, sigalg=SIGALG)
        except Exception as exc:  # noqa: BLE001
            log.error("federation %s: LogoutRequest failed: %s", federation.name, type(exc).__name__)
            raise FederationError(FederationFailure.CONFIG, "the logout request could not be made") from None
        if post:
            return LogoutMessage(request_id=request_id, binding=binding, url=location,
                                 fields={"SAMLRequest": base64.b64encode(str(request).encode()).decode("ascii"),
                                         "RelayState": relay_state})
        return LogoutMessage(request_id=request_id, binding=binding, url=dict(info["headers"])["Location"])

    def verify_logout_response(self, federation: Federation, binding: str, message: str, raw_query: bytes | None,
                               request_id: str) -> bool:
        """Verify the federation's LogoutResponse to ``request_id``: signed (the query's signature over
        Redirect, an enveloped one over POST), by this federation, for our SLO, answering that request.
        True when it says Success, False for another status; FederationError when it fails a check."""
        client = self._client(federation)
        self._require_query_signature(client, federation, binding, raw_query, "SAMLResponse", "logout answer")
        try:
            # Parsed and checked here rather than by parse_logout_request_response, which ignores its own
            # verdict on the destination and the issue instant, and raises on a non-Success status.
            xml = client.unravel(message, binding, LogoutResponse.msgtype)
            parsed = LogoutResponse(client.sec, return_addrs=[self.sp.slo_url])
            parsed.require_signature = binding == BINDING_HTTP_POST  # Redirect: the query's signature, above
            parsed = parsed.loads(xml, False, origxml=xml)
        except Exception as exc:  # noqa: BLE001 - every verification failure is a refusal
            log.warning("federation %s: logout answer refused (%s)", federation.name, type(exc).__name__)
            raise FederationError(FederationFailure.INVALID, "the logout answer could not be verified") from None
        answer = parsed.response if parsed is not None else None
        if answer is None:
            raise FederationError(FederationFailure.INVALID, "the logout answer could not be read")
        if binding == BINDING_HTTP_POST:
            weak = weak_algorithms(_Signed(answer))
            if answer.signature is None or weak:
                log.warning("federation %s: logout answer refused (%s)", federation.name,
                            f"signed with {', '.join(weak)}" if weak else "unsigned")
                raise FederationError(FederationFailure.INVALID, "the logout answer is unsigned or weakly signed")
        if answer.in_response_to != request_id:
            raise FederationError(FederationFailure.STATE, "the logout answer is not for the request we sent")
        if parsed.issuer() != federation.entity_id:
            raise FederationError(FederationFailure.ISSUER, "the logout answer comes from another identity provider")
        if answer.destination != self.sp.slo_url or not parsed.issue_instant_ok():
            log.warning("federation %s: logout answer refused (addressed elsewhere, or issued at an unacceptable "
                        "time)", federation.name)
            raise FederationError(FederationFailure.INVALID, "the logout answer is not for us or not for now")
        code = getattr(getattr(answer.status, "status_code", None), "value", None)
        return code == STATUS_SUCCESS

    def accept_logout_request(self, federation: Federation, binding: str, message: str,
                              raw_query: bytes | None) -> IncomingLogout:
        """Verify the federation's own LogoutRequest (its IdP ending the member's session there):
        signed (query or enveloped), by this federation, for our SLO, issued now; FederationError if not."""
        client = self._client(federation)
        self._require_query_signature(client, federation, binding, raw_query, "SAMLRequest", "logout request")
        try:
            # pysaml2 checks an enveloped signature it finds (with this federation's keys), the
            # Destination against our SLO and the schema; that one is present is checked below.
            parsed = client.parse_logout_request(message, binding)
        except Exception as exc:  # noqa: BLE001 - every verification failure is a refusal
            log.warning("federation %s: logout request refused (%s)", federation.name, type(exc).__name__)
            raise FederationError(FederationFailure.INVALID, "the logout request could not be verified") from None
        request = parsed.message if parsed is not None else None
        if request is None:
            raise FederationError(FederationFailure.INVALID, "the logout request could not be read")
        if binding == BINDING_HTTP_POST and (request.signature is None or weak_algorithms(_Signed(request))):
            raise FederationError(FederationFailure.INVALID, "the logout request is unsigned or weakly signed")
        issuer = (request.issuer.text or "").strip() if request.issuer is not None else ""
        if issuer != federation.entity_id:
            raise FederationError(FederationFailure.ISSUER, "the logout request comes from another identity provider")
        if request.destination != self.sp.slo_url or not _recent(request.issue_instant) or request.name_id is None:
            raise FederationError(FederationFailure.INVALID, "the logout request is not for us, not for now, or "
                                                             "names nobody (an encrypted NameID is not supported)")
        indexes = tuple((index.text or "").strip() for index in request.session_index or [] if index.text)
        return IncomingLogout(request_id=str(request.id), name_id=request.name_id, session_indexes=indexes)

    def logout_response(self, federation: Federation, request_id: str, relay_state: str | None, *,
                        success: bool = True) -> LogoutMessage:
        """Our signed LogoutResponse to the federation's LogoutRequest ``request_id``, for its SingleLogoutService."""
        service = self.logout_service(federation, response=True)
        if service is None:
            raise FederationError(FederationFailure.CONFIG, "the federation's metadata has no SingleLogoutService")
        binding, location = service
        client = self._client(federation)
        post = binding == BINDING_HTTP_POST
        status = None if success else samlp.Status(status_code=samlp.StatusCode(value=samlp.STATUS_RESPONDER))
        try:
            response = client._status_response(samlp.LogoutResponse, client._issuer(), status, sign=post,
                                               sign_alg=SIGALG, digest_alg=DIGEST, in_response_to=request_id,
                                               destination=location)
            info = client.apply_binding(binding, str(response), location, relay_state or "", response=True,
                                        sign=not post, sigalg=SIGALG)
        except Exception as exc:  # noqa: BLE001
            log.error("federation %s: LogoutResponse failed: %s", federation.name, type(exc).__name__)
            raise FederationError(FederationFailure.CONFIG, "the logout response could not be made") from None
        if post:
            fields = {"SAMLResponse": base64.b64encode(str(response).encode()).decode("ascii")}
            if relay_state:
                fields["RelayState"] = relay_state
            return LogoutMessage(request_id=request_id, binding=binding, url=location, fields=fields)
        return LogoutMessage(request_id=request_id, binding=binding, url=dict(info["headers"])["Location"])

    def _require_query_signature(self, client: Any, federation: Federation, binding: str, raw_query: bytes | None,
                                 kind: str, what: str) -> None:
        """Over HTTP-Redirect, the query's signature must verify (FederationError if not); over
        HTTP-POST the enveloped signature is checked with the message."""
        if binding == BINDING_HTTP_REDIRECT and not self._query_signed_by(client, federation, raw_query or b"", kind):
            raise FederationError(FederationFailure.INVALID, f"the {what}'s query signature does not verify")

    def _query_signed_by(self, client: Any, federation: Federation, raw_query: bytes, kind: str) -> bool:
        """The HTTP-Redirect binding's signature (on ``kind``, SAMLRequest or SAMLResponse), checked
        with the federation's metadata keys over the query exactly as sent; SHA-256 or stronger only."""
        try:
            certificates = [certificate for _name, certificate in
                            client.metadata.certs(federation.entity_id, "idpsso", "signing")]
        except Exception:  # noqa: BLE001 - pysaml2's metadata errors: no key, no signature of theirs
            return False
        return verify_query_signature(raw_query, certificates, message=kind)

    def metadata_xml(self) -> str:
        """Our service provider's metadata (no federation's metadata is needed for it), advertising
        only the strong algorithms (pysaml2 lists every one xmlsec1 knows, MD5 and SHA-1 too)."""

        descriptor = entity_descriptor(self._config(None))
        if descriptor.extensions is not None:
            descriptor.extensions.extension_elements = [
                element for element in descriptor.extensions.extension_elements if _advertised(element)]
        valid_instance(descriptor)
        xml = metadata_tostring_fix(descriptor, {"xs": "http://www.w3.org/2001/XMLSchema"})
        return xml.decode() if isinstance(xml, bytes) else xml


def _recent(instant: Any, max_age: int = REQUEST_TTL, skew: int = 60) -> bool:
    """Whether a message's IssueInstant lies within the last ``max_age`` seconds (give or take the
    clock skew): pysaml2 allows a day either way, longer than we remember the IDs we have seen."""
    try:
        issued = dt.datetime.fromisoformat(str(instant).replace("Z", "+00:00"))
    except ValueError:
        return False
    issued = issued.replace(tzinfo=dt.UTC) if issued.tzinfo is None else issued
    age = (dt.datetime.now(dt.UTC) - issued).total_seconds()
    return -skew <= age <= max_age + skew


_ALGSUPPORT = "urn:oasis:names:tc:SAML:metadata:algsupport"


def _advertised(element: Any) -> bool:
    """Keep every extension but the algorithm-support lists' weak entries."""
    if element.namespace != _ALGSUPPORT:
        return True
    algorithm = element.attributes.get("Algorithm")
    return algorithm in (STRONG_DIGESTS if element.tag == "DigestMethod" else STRONG_SIGNATURES)


def _short(algorithm: Any) -> str:
    """An algorithm URI's name for the log (``rsa-sha1``), bounded: the sender chose it."""
    return str(algorithm).rpartition("#")[2][:40] if algorithm else "none"


def weak_algorithms(response: Any) -> list[str]:
    """The signature and digest algorithms weaker than SHA-256 in the signatures on a verified
    Response and on its assertions (decrypted ones included); an empty list when all are strong."""
    weak: list[str] = []
    for signed in (response.response, *response.assertions):
        signature = getattr(signed, "signature", None)
        info = getattr(signature, "signed_info", None)
        if info is None:
            continue
        method = getattr(info.signature_method, "algorithm", None)
        if method not in STRONG_SIGNATURES:
            weak.append(_short(method))
        for reference in info.reference or []:
            digest = getattr(reference.digest_method, "algorithm", None)
            if digest not in STRONG_DIGESTS:
                weak.append(_short(digest))
    return sorted(set(weak))


def confirmed_for(response: Any, acs_url: str) -> bool:
    """Every assertion is confirmed by a bearer SubjectConfirmation whose Recipient is our ACS, and
    none names another (pysaml2 checks the Recipient only against a conversation we do not give it)."""

    if not response.assertions:
        return False
    for assertion in response.assertions:
        subject = assertion.subject
        bearers = [c for c in (subject.subject_confirmation if subject is not None else []) if c.method == SCM_BEARER]
        if not bearers or any(getattr(c.subject_confirmation_data, "recipient", None) != acs_url for c in bearers):
            return False
    return True


__all__ = ["FederationError", "FederationLogin", "FederationSp", "LogoutMessage", "REQUEST_TTL", "ServiceProvider",
           "IncomingLogout", "UpstreamSession", "card_owner", "logout_request_issuer", "logout_response_to",
           "upstream_session_of",
           "choose_entity_id", "confirmed_for", "create_sp_keys", "identity_providers_in", "in_response_to",
           "national_id_from", "finish_login", "read_login", "resolve_login", "sp_key_paths", "weak_algorithms",
           "withhold_pysaml2_values"]
