"""Whether a logout request's id_token_hint names the patron logged in here.

RP-initiated logout is a plain GET any site can send: only a hint for this very patron ends the
session at once; anything else asks the patron first (OpenID Connect RP-Initiated Logout 1.0, 2).
"""

from __future__ import annotations

import base64
import json

from idp.subjects import Subjects


def hint_names_patron(verified_hint: str, patron_id: int | None, subjects: Subjects) -> bool:
    """``verified_hint`` is an id_token whose signature and issuer were checked (idp.oidc.hints)."""
    if patron_id is None:
        return False
    sub = _subject(verified_hint)
    return sub is not None and subjects.patron_for(sub) == patron_id


def _subject(token: str) -> str | None:
    # The payload of a JWS in compact form; the signature over it is already verified.
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError, TypeError):
        return None
    sub = claims.get("sub") if isinstance(claims, dict) else None
    return sub if isinstance(sub, str) else None
