"""Subject identifiers: pairwise per relying party unless policy says public (OIDC ``sub``, SAML NameID).

Derived, never stored as the truth: a keyed hash of the patron and the sector (the relying
party), so the same patron gets the same ``sub`` at one RP on every login, different ones at
different RPs, and nobody without the key can link them. A short-lived reverse index
(sub -> patron) lets the token and userinfo endpoints find the patron without scanning.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from idp.registry.crypto import derive_key
from idp.state import StateStore

PUBLIC_SECTOR = "public"
_INDEX_TTL = 40 * 24 * 3600  # longer than any refresh token lives


class Subjects:
    def __init__(self, data_key: bytes, state: StateStore) -> None:
        self._key = derive_key(data_key, b"subject/v1")
        self._state = state

    def __repr__(self) -> str:
        return "<Subjects>"

    def subject(self, patron_id: int, sector: str) -> str:
        digest = hmac.new(self._key, f"{patron_id}\x1f{sector}".encode(), hashlib.sha256).digest()
        sub = base64.b32encode(digest[:20]).decode().rstrip("=").lower()
        self._state.put(f"sub:{sub}", str(patron_id).encode(), _INDEX_TTL)
        return sub

    def patron_for(self, sub: str) -> int | None:
        raw = self._state.get(f"sub:{sub}") if isinstance(sub, str) and len(sub) <= 64 else None
        return int(raw) if raw is not None else None
