"""Reading an id_token_hint: one of our own id_tokens, handed back at logout."""

from __future__ import annotations

import json

from jwcrypto.common import JWException
from jwcrypto.jwk import JWKSet
from jwcrypto.jwt import JWT

from idp.keys import KeyRing


def id_token_audience(keyring: KeyRing, issuer: str, token: str) -> str | None:
    """The client an id_token we signed was for, or None if it is not ours or was tampered with.

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
    audience = claims.get("aud")
    audience = audience[0] if isinstance(audience, list) and len(audience) == 1 else audience
    return audience if claims.get("iss") == issuer and isinstance(audience, str) else None
