"""Client ids and client secrets of the register's OAuth clients (relying parties, library systems).

Shared below both: the register's library systems and idp.relying_parties draw and check them the
same way. A secret is shown once when drawn; only its digest is stored.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

CLIENT_ID_BYTES = 16  # 22 url-safe characters; not a secret, only unique and unguessable
SECRET_BYTES = 32
MAX_PRESENTED_SECRET = 512
# Compared against when there is no real digest, so every check does the same work.
_NO_DIGEST = hashlib.sha256(b"no secret").digest()


def digest(secret: str) -> bytes:
    # Client secrets are 256-bit random values we generate, so there is nothing to guess and no
    # dictionary to slow down: one SHA-256 is as strong as argon2 here and keeps the token
    # endpoint fast. (Patron passwords and PINs are low-entropy and do get argon2.)
    # surrogatepass: any str, even one with lone surrogates, maps to distinct bytes instead of raising.
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).digest()


def new_client_id() -> str:
    # Operators type client ids as command arguments: one starting with "-" would be read as an
    # option (`idp rp show -Zx...`), so draw again; that keeps the ids uniform over the rest.
    while True:
        client_id = secrets.token_urlsafe(CLIENT_ID_BYTES)
        if not client_id.startswith("-"):
            return client_id


def new_secret() -> tuple[str, bytes]:
    """A fresh secret and the digest to store."""
    secret = secrets.token_urlsafe(SECRET_BYTES)
    return secret, digest(secret)


def digest_matches(expected: bytes | None, secret: str | None) -> bool:
    """Whether ``secret`` has the stored digest ``expected`` (None: the client may use no secret).

    The comparison takes the same time whatever the secret presented, and a client without a
    digest costs the same digest and comparison, so timing tells nothing about the secret.
    """
    target, possible = (_NO_DIGEST, False) if expected is None else (bytes(expected), True)
    # An over-long value is no secret of ours; it is still hashed, as the empty string.
    presented = secret if isinstance(secret, str) and len(secret) <= MAX_PRESENTED_SECRET else ""
    return hmac.compare_digest(digest(presented), target) and possible
