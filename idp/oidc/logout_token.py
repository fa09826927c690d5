"""Logout tokens (OpenID Connect Back-Channel Logout 1.0, section 2.4). No Flask here.

A logout token is a JWT like an id_token, signed with the relying party's id_token algorithm so the
client verifies it with the keys and code it already has, but it is no id_token: it carries an
``events`` member, never a ``nonce`` (section 2.4 forbids one, so it cannot be replayed as an
id_token), and its header says ``typ: logout+jwt``.
"""

from __future__ import annotations

import secrets

from idp.keys import KeyRing

BACKCHANNEL_LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"
LOGOUT_TOKEN_TYP = "logout+jwt"  # noqa: S105 - a media type, not a secret
# Seconds a logout token is valid: the RP receives it at once; a short life limits replays.
LOGOUT_TOKEN_LIFETIME = 120


def logout_token(keyring: KeyRing, *, issuer: str, client_id: str, alg: str, sub: str, sid: str, now: int) -> str:
    """A signed logout token for ``client_id`` ending session ``sid`` of subject ``sub`` (both as that
    client knows them); ``now`` is the time in seconds since the epoch. A fresh jti every call."""
    claims = {
        "iss": issuer, "aud": client_id, "iat": now, "exp": now + LOGOUT_TOKEN_LIFETIME,
        "jti": secrets.token_urlsafe(24),
        "events": {BACKCHANNEL_LOGOUT_EVENT: {}},
        "sub": sub, "sid": sid,
    }
    return keyring.sign(claims, alg, typ=LOGOUT_TOKEN_TYP)
