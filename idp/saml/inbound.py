"""The gate every incoming SAML message passes before pysaml2 sees it.

Size is limited before anything is parsed (the Redirect binding's DEFLATE is inflated with a
cap, so a small request cannot expand into a large one), then the XML is parsed with DTDs,
entities and external references forbidden, and its shape is checked: the expected protocol
element at the root, one Issuer, unique IDs, and at most one signature, directly under the root
and over the root's own ID. Anything else is a signature-wrapping attempt or no SAML we accept.
"""

from __future__ import annotations

import base64
import binascii
import re
import zlib
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring
from saml2 import BINDING_HTTP_REDIRECT

from idp.saml.errors import Reason, Rejected

MAX_ENCODED = 48 * 1024  # characters of the SAMLRequest (or SAMLResponse) parameter, base64 (and deflated for Redirect)
MAX_XML = 64 * 1024  # bytes of XML once decoded; an honest AuthnRequest is 1-4 KiB
MAX_ISSUER = 1024

PROTOCOL_NS = "urn:oasis:names:tc:SAML:2.0:protocol"
ASSERTION_NS = "urn:oasis:names:tc:SAML:2.0:assertion"
DSIG_NS = "http://www.w3.org/2000/09/xmldsig#"
AUTHN_REQUEST = "AuthnRequest"
LOGOUT_REQUEST = "LogoutRequest"
LOGOUT_RESPONSE = "LogoutResponse"  # an SP's answer to our LogoutRequest
_ID = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]{0,255}")
_BASE64 = re.compile(r"[A-Za-z0-9+/=\s]*")


@dataclass(frozen=True)
class InboundMessage:
    kind: str  # AUTHN_REQUEST, LOGOUT_REQUEST or LOGOUT_RESPONSE
    binding: str  # saml2.BINDING_HTTP_REDIRECT or BINDING_HTTP_POST
    xml: str
    message_id: str
    issuer: str
    issue_instant: datetime
    destination: str | None
    enveloped_signature: bool  # an XML signature inside the message (the POST binding's way)

    def __repr__(self) -> str:
        return f"<InboundMessage {self.kind} {self.message_id} from {self.issuer}>"


def decode(binding: str, encoded: str | None, kind: str) -> InboundMessage:
    """The checked message in ``encoded`` (a SAMLRequest parameter, or SAMLResponse for a
    LOGOUT_RESPONSE), or Rejected(MALFORMED)."""
    parameter = "SAMLResponse" if kind == LOGOUT_RESPONSE else "SAMLRequest"
    if not isinstance(encoded, str) or not encoded:
        raise Rejected(Reason.MALFORMED, f"no {parameter} parameter")
    if len(encoded) > MAX_ENCODED:
        raise Rejected(Reason.MALFORMED, f"{parameter} longer than {MAX_ENCODED} characters")
    if not _BASE64.fullmatch(encoded):
        raise Rejected(Reason.MALFORMED, f"{parameter} is not base64")
    try:
        raw = base64.b64decode("".join(encoded.split()), validate=True)
    except (binascii.Error, ValueError):
        raise Rejected(Reason.MALFORMED, f"{parameter} is not base64") from None
    data = _inflate(raw, parameter) if binding == BINDING_HTTP_REDIRECT else raw
    if len(data) > MAX_XML:
        raise Rejected(Reason.MALFORMED, f"the XML is larger than {MAX_XML} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise Rejected(Reason.MALFORMED, "the XML is not UTF-8") from None
    return _checked(binding, text, kind)


def _inflate(raw: bytes, parameter: str) -> bytes:
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    try:
        data = inflater.decompress(raw, MAX_XML + 1)
    except zlib.error:
        raise Rejected(Reason.MALFORMED, f"{parameter} is not DEFLATE-compressed") from None
    if len(data) > MAX_XML or inflater.unconsumed_tail:
        raise Rejected(Reason.MALFORMED, f"the XML inflates beyond {MAX_XML} bytes")
    return data


def parse_xml(text: str | bytes) -> Element:
    """XML without DTDs, entities or external references; Rejected(MALFORMED) otherwise."""
    try:
        return fromstring(text, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise Rejected(Reason.MALFORMED, f"forbidden XML construct ({type(exc).__name__})") from None
    except (ParseError, ValueError):
        raise Rejected(Reason.MALFORMED, "not well-formed XML") from None


def _checked(binding: str, text: str, kind: str) -> InboundMessage:
    root = parse_xml(text)
    if root.tag != f"{{{PROTOCOL_NS}}}{kind}":
        raise Rejected(Reason.MALFORMED, f"expected a samlp:{kind}")
    message_id = root.get("ID", "")
    if not _ID.fullmatch(message_id):
        raise Rejected(Reason.MALFORMED, f"{kind} without a valid ID")
    if root.get("Version") != "2.0":
        raise Rejected(Reason.MALFORMED, f"{kind} is not SAML 2.0")
    issuers = root.findall(f"{{{ASSERTION_NS}}}Issuer")
    issuer = (issuers[0].text or "").strip() if len(issuers) == 1 else ""
    if not issuer or len(issuer) > MAX_ISSUER or not issuer.isprintable():
        raise Rejected(Reason.MALFORMED, f"{kind} needs exactly one Issuer")
    ids = Counter(element.get("ID") for element in root.iter() if element.get("ID") is not None)
    if any(count > 1 for count in ids.values()):
        # Two elements with one ID let a signature cover one while the reader sees the other.
        raise Rejected(Reason.SIGNATURE, f"{kind} from {issuer} repeats an ID")
    signatures = list(root.iter(f"{{{DSIG_NS}}}Signature"))
    if signatures:
        direct = root.findall(f"{{{DSIG_NS}}}Signature")
        references = [ref.get("URI") for ref in signatures[0].iter(f"{{{DSIG_NS}}}Reference")]
        if len(signatures) > 1 or len(direct) != 1 or references != [f"#{message_id}"]:
            raise Rejected(Reason.SIGNATURE, f"{kind} from {issuer} carries a signature that does not "
                                             "cover exactly the message itself")
    return InboundMessage(kind=kind, binding=binding, xml=text, message_id=message_id, issuer=issuer,
                          issue_instant=_instant(root.get("IssueInstant"), kind),
                          destination=root.get("Destination"), enveloped_signature=bool(signatures))


def _instant(value: str | None, kind: str) -> datetime:
    try:
        moment = datetime.fromisoformat((value or "").replace("Z", "+00:00"))
    except ValueError:
        raise Rejected(Reason.MALFORMED, f"{kind} without a valid IssueInstant") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
