"""The SAML signing key: created in development, required in production, never readable by others."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.x509.oid import NameOID

from idp.errors import ConfigError
from idp.saml import signing_credentials
from idp.saml.credentials import CREDENTIALS_FILE, SigningCredentials, create


def test_production_refuses_without_a_key_and_development_makes_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="idp saml new-key"):
        signing_credentials(tmp_path, "https://login.example.no", development=False)
    made = signing_credentials(tmp_path, "https://login.example.no", development=True)
    assert made.path == tmp_path / CREDENTIALS_FILE and (made.path.stat().st_mode & 0o777) == 0o600
    assert signing_credentials(tmp_path, "https://login.example.no", development=False) == made
    assert "PRIVATE" not in repr(made) and "PRIVATE" not in made.certificate_pem


def test_a_certificate_of_another_key_is_refused(tmp_path: Path) -> None:
    first = create(tmp_path / "a", "a.example", rsa_bits=2048)
    second = create(tmp_path / "b", "b.example", rsa_bits=2048)
    key = first.path.read_text().split("-----BEGIN CERTIFICATE-----")[0]
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    (mixed / CREDENTIALS_FILE).write_text(key + second.certificate_pem)
    with pytest.raises(ConfigError, match="does not belong"):
        SigningCredentials.load(mixed)


def test_a_certificate_for_a_key_of_another_kind_is_refused_as_not_belonging(tmp_path: Path) -> None:
    """An Ed25519 certificate beside the RSA key is a mismatch like any other, not a crash."""
    rsa_pair = create(tmp_path / "a", "a.example", rsa_bits=2048)
    rsa_key = rsa_pair.path.read_text().split("-----BEGIN CERTIFICATE-----")[0]
    other = ed25519.Ed25519PrivateKey.generate()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "b.example")])
    now = x509.load_pem_x509_certificate(rsa_pair.certificate_pem.encode()).not_valid_before_utc
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(other.public_key())
                   .serial_number(1).not_valid_before(now).not_valid_after(now + timedelta(days=1))
                   .sign(other, None))
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    (mixed / CREDENTIALS_FILE).write_text(rsa_key + certificate.public_bytes(serialization.Encoding.PEM).decode())
    with pytest.raises(ConfigError, match="does not belong"):
        SigningCredentials.load(mixed)
