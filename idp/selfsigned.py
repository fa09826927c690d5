"""Self-signed RSA credentials: the one place that builds a key and a certificate for it.

Both the SAML IdP's signing key (idp.saml.credentials) and the SAML service provider's key for
upstream federations (idp.auth.federation) come from here. In SAML metadata a self-signed
certificate is the norm: trust comes from the metadata exchange, not from a CA.
"""

from __future__ import annotations

import datetime as dt

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

# Backdated a little, so a peer whose clock is slightly behind accepts the certificate at once.
_BACKDATE = dt.timedelta(minutes=5)


def create_self_signed(common_name: str, *, rsa_bits: int, days: int) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    """A new RSA key and a certificate for it, signed by itself (SHA-256), valid for ``days``."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=rsa_bits)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64])])
    now = dt.datetime.now(dt.UTC)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(now - _BACKDATE).not_valid_after(now + dt.timedelta(days=days))
                   .sign(key, hashes.SHA256()))
    return key, certificate


def key_pem(key: rsa.RSAPrivateKey) -> bytes:
    """The private key as unencrypted PKCS#8 PEM (the caller writes it with owner-only access)."""
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def certificate_pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)
