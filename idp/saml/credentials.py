"""The SAML signing key and its self-signed certificate: one PEM file in keys/, never in git.

Key and certificate live in one file (private key first, then the certificate), written
atomically with mode 0600 like the token signing keys, so a reader can never pair a key with
another process's certificate. pysaml2 and xmlsec1 read both parts from that one path.

Development creates the file on first use; production refuses to start without it
(``idp saml new-key`` creates it). The certificate is self-signed: SAML trusts the key
published in metadata, not a certificate authority.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from idp.errors import ConfigError
from idp.keys import MIN_RSA_BITS, RSA_BITS, write_private_file
from idp.selfsigned import certificate_pem, create_self_signed, key_pem

CREDENTIALS_FILE = "saml-signing.pem"
CERTIFICATE_YEARS = 10  # metadata carries the key; SPs do not reject a self-signed cert for its age


@dataclass(frozen=True)
class SigningCredentials:
    path: Path  # key and certificate, PEM
    certificate_pem: str

    def __repr__(self) -> str:  # never the key
        return f"<SigningCredentials {self.path}>"

    @property
    def certificate_base64(self) -> str:
        """The certificate as metadata and KeyInfo carry it: base64 DER, no PEM armour."""
        lines = self.certificate_pem.strip().splitlines()
        return "".join(line for line in lines if not line.startswith("-----"))

    @classmethod
    def load(cls, keys_dir: Path) -> SigningCredentials:
        """The credentials in ``keys_dir``; ConfigError naming the file when missing or broken."""
        path = Path(keys_dir) / CREDENTIALS_FILE
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise ConfigError(f"no SAML signing key: {path} does not exist; create it with: idp saml new-key") from None
        except OSError as exc:
            raise ConfigError(f"cannot read the SAML signing key {path}: {exc.strerror}") from None
        try:
            key = serialization.load_pem_private_key(data, password=None)
            certificate = x509.load_pem_x509_certificate(data)
        except (ValueError, TypeError):
            # Never the exception text: it may quote the file.
            raise ConfigError(f"the SAML signing key file {path} is corrupt; replace it: idp saml new-key "
                              "--replace (then give SPs the new metadata)") from None
        if not isinstance(key, rsa.RSAPrivateKey) or key.key_size < MIN_RSA_BITS:
            raise ConfigError(f"the SAML signing key in {path} must be RSA of at least {MIN_RSA_BITS} bits")
        ours = key.public_key().public_numbers()
        certified = certificate.public_key()  # of any kind: one that is not RSA cannot be this key's
        if not isinstance(certified, rsa.RSAPublicKey) or certified.public_numbers() != ours:
            raise ConfigError(f"the certificate in {path} does not belong to its key; replace both: "
                              "idp saml new-key --replace")
        pem = certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")
        return cls(path=path, certificate_pem=pem)

    @classmethod
    def ensure(cls, keys_dir: Path, common_name: str) -> SigningCredentials:
        """Development only: load the credentials, creating them first when there are none."""
        if not (Path(keys_dir) / CREDENTIALS_FILE).exists():
            return create(keys_dir, common_name)
        return cls.load(keys_dir)


def create(keys_dir: Path, common_name: str, *, replace: bool = False, rsa_bits: int = RSA_BITS) -> SigningCredentials:
    """A new RSA key and a self-signed certificate for it; refuses to replace one unless asked."""
    path = Path(keys_dir) / CREDENTIALS_FILE
    if path.exists() and not replace:
        raise ConfigError(f"{path} already exists; replacing it changes the key every SP trusts "
                          "(use --replace, then hand out the new metadata)")
    key, certificate = create_self_signed(common_name[:64] or "patron-idp", rsa_bits=rsa_bits,
                                          days=365 * CERTIFICATE_YEARS)

    def write(fh: TextIO) -> None:
        fh.write(key_pem(key).decode("ascii"))
        fh.write(certificate_pem(certificate).decode("ascii"))

    write_private_file(path, write, what="the SAML signing key", kept="the previous key is unchanged")
    return SigningCredentials.load(keys_dir)
