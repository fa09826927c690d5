"""Reading an id_token_hint: one of our own id_tokens, handed back at logout."""

from __future__ import annotations

import json
from dataclasses import dataclass

from jwcrypto.common import JWException
from jwcrypto.jwk import JWKSet
from jwcrypto.jwt import JWT

from idp.keys import KeyRing
from idp.subjects import Subjects


@dataclass(frozen=True)
class IdTokenHint:
    """What a verified hint says: the client it was issued to and the subject it names there."""

    client_id: str
    subject: str | None

    def names(self, patron_id: int | None, subjects: Subjects) -> bool:
        """Whether it names ``patron_id`` (the patron logged in here): only then may a plain GET,
        which any site can send, end the session at once (RP-Initiated Logout 1.0, section 2)."""
        return patron_id is not None and self.subject is not None and subjects.patron_for(self.subject) == patron_id


def read_id_token_hint(keyring: KeyRing, issuer: str, token: str) -> IdTokenHint | None:
    """The hint, if it is an id_token we signed, else None (not ours, or tampered with).

    Expiry is not checked: a logout hint may be an old token (OpenID Connect RP-Initiated Logout).
    """
    if not isinstance(token, str) or len(token) > 8192:
        return None
    try:
        jwt = JWT(jwt=token, key=JWKSet.from_json(json.dumps(keyring.public_jwks())), check_claims=False,
                  algs=list(keyring.algorithms))
        claims = json.loads(jwt.claims)
    except (JWException, ValueError, TypeError):
        return None
    if not isinstance(claims, dict) or claims.get("iss") != issuer:
        return None
    audience = claims.get("aud")
    audience = audience[0] if isinstance(audience, list) and len(audience) == 1 else audience
    if not isinstance(audience, str):
        return None
    subject = claims.get("sub")
    return IdTokenHint(audience, subject if isinstance(subject, str) else None)
