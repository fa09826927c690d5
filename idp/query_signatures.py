"""The HTTP-Redirect binding's query signature, checked over the query string exactly as sent.

The binding signs the URL-encoded octets ``SAMLRequest=...&RelayState=...&SigAlg=...`` as the
SP encoded them; decoding and re-encoding (as pysaml2 does) fails for SPs that percent-encode
differently. RSA with SHA-256 or stronger only: SHA-1 signatures are refused. Used by our SAML IdP
(an SP's requests) and by our federation SP (a university's LogoutRequests and LogoutResponses).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from urllib.parse import unquote_plus

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from saml2.xmldsig import SIG_RSA_SHA256, SIG_RSA_SHA384, SIG_RSA_SHA512

ALGORITHMS: dict[str, type[hashes.SHA256 | hashes.SHA384 | hashes.SHA512]] = {
    SIG_RSA_SHA256: hashes.SHA256, SIG_RSA_SHA384: hashes.SHA384, SIG_RSA_SHA512: hashes.SHA512}
_SIGNED = ("SAMLRequest", "SAMLResponse", "RelayState", "SigAlg")


def has_query_signature(raw_query: bytes) -> bool:
    return any(part.split(b"=", 1)[0] in (b"Signature", b"SigAlg") for part in raw_query.split(b"&"))


def verify_query_signature(raw_query: bytes, certificates: Sequence[str], *, message: str | None = None) -> bool:
    """Whether the query carries a valid signature by one of ``certificates`` (base64 DER), and
    the ``message`` parameter (SAMLRequest or SAMLResponse) when one is named."""
    raw: dict[str, str] = {}
    try:
        for part in raw_query.decode("ascii").split("&"):
            name, _, value = part.partition("=")
            if name in raw:
                return False  # a repeated parameter: which one was signed?
            raw[name] = value
    except UnicodeDecodeError:
        return False
    algorithm = ALGORITHMS.get(unquote_plus(raw.get("SigAlg", "")))
    if algorithm is None or "Signature" not in raw or (message is not None and message not in raw):
        return False
    try:
        signature = base64.b64decode(unquote_plus(raw["Signature"]), validate=True)
    except (binascii.Error, ValueError):
        return False
    signed = "&".join(f"{name}={raw[name]}" for name in _SIGNED if name in raw).encode("ascii")
    return any(_verifies(certificate, signature, signed, algorithm()) for certificate in certificates)


def _verifies(certificate: str, signature: bytes, signed: bytes, algorithm: hashes.HashAlgorithm) -> bool:
    try:
        key = x509.load_der_x509_certificate(base64.b64decode(certificate)).public_key()
    except (ValueError, binascii.Error):
        return False
    if not isinstance(key, rsa.RSAPublicKey):
        return False
    try:
        key.verify(signature, signed, padding.PKCS1v15(), algorithm)
    except InvalidSignature:
        return False
    return True
