"""The SAML signing key: created in development, required in production, never readable by others."""

from __future__ import annotations

from pathlib import Path

import pytest

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
