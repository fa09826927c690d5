"""Protection of the national identity number at rest.

One 32-byte data key (from settings) is expanded with HKDF into two independent keys: one for
AES-256-GCM encryption, one for an HMAC-SHA256 lookup hash, so that the register can find a
patron by national id without storing it in the clear and without a deterministic cipher.
Two more derived keys protect the other secrets the register keeps: TOTP seeds (AES-256-GCM,
``seal``/``unseal``) and recovery and one-time codes (a keyed hash, ``code_hash``).
"""

from __future__ import annotations

import hashlib
import hmac
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from idp.errors import ConfigError

_FORMAT_V1 = b"\x01"
_NONCE_BYTES = 12


def derive_key(key: bytes, purpose: bytes) -> bytes:
    """An independent 32-byte key for one purpose, so no two uses of the data key ever share one."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"patron-idp/" + purpose).derive(key)


class FieldCipher:
    def __init__(self, data_key: bytes) -> None:
        if len(data_key) != 32:
            raise ConfigError("the data key must be 32 bytes")
        self._aead = AESGCM(derive_key(data_key, b"national-id/encrypt/v1"))
        self._mac_key = derive_key(data_key, b"national-id/lookup/v1")
        # Other secrets at rest (TOTP seeds) and keyed hashes of short-lived codes get keys of their own.
        self._secret_aead = AESGCM(derive_key(data_key, b"secrets/encrypt/v1"))
        self._code_mac_key = derive_key(data_key, b"codes/mac/v1")

    def __repr__(self) -> str:
        return "<FieldCipher>"

    def lookup_hash(self, value: str) -> bytes:
        return hmac.new(self._mac_key, value.encode(), hashlib.sha256).digest()

    def encrypt(self, value: str, *, context: bytes) -> bytes:
        """``context`` (the lookup hash) is bound as associated data: a ciphertext moved to another row fails."""
        nonce = os.urandom(_NONCE_BYTES)
        return _FORMAT_V1 + nonce + self._aead.encrypt(nonce, value.encode(), context)

    def decrypt(self, blob: bytes, *, context: bytes) -> str:
        if not blob.startswith(_FORMAT_V1):
            raise ConfigError("unknown national-id cipher format")
        nonce, sealed = blob[1:1 + _NONCE_BYTES], blob[1 + _NONCE_BYTES:]
        try:
            return self._aead.decrypt(nonce, sealed, context).decode()
        except InvalidTag:
            raise ConfigError("a national id could not be decrypted: wrong IDP_DATA_KEY?") from None

    # -- other secrets: TOTP seeds, one-time and recovery codes ---------------------------------

    def seal(self, value: bytes, *, context: bytes) -> bytes:
        """Encrypt a secret other than a national id (e.g. a TOTP seed), bound to ``context``
        (e.g. ``b"totp:<patron id>"``): a ciphertext copied to another row or purpose fails to open."""
        nonce = os.urandom(_NONCE_BYTES)
        return _FORMAT_V1 + nonce + self._secret_aead.encrypt(nonce, value, context)

    def unseal(self, blob: bytes, *, context: bytes) -> bytes:
        if not blob.startswith(_FORMAT_V1):
            raise ConfigError("unknown secret cipher format")
        nonce, sealed = blob[1:1 + _NONCE_BYTES], blob[1 + _NONCE_BYTES:]
        try:
            return self._secret_aead.decrypt(nonce, sealed, context)
        except InvalidTag:
            raise ConfigError("a stored secret could not be decrypted: wrong IDP_DATA_KEY?") from None

    def code_hash(self, value: str, *, purpose: str) -> bytes:
        """HMAC-SHA256 of a code under a key only the server holds, separated by ``purpose``:
        a copy of the database or the state store does not even let anyone test guesses."""
        return hmac.new(self._code_mac_key, purpose.encode() + b"\x00" + value.encode(), hashlib.sha256).digest()
