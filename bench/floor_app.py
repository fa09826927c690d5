"""The stack floor of bench/oidc.py: what a token request costs on the chosen libraries alone.

    .venv/bin/python bench/floor_app.py --port 5002 [--redis-url URL] [--workers 1]

The minimal app measures the server; this one measures the server plus the calls that no token
endpoint built on this stack can do without, and nothing of the IdP's own: no client registry,
grants, subjects, consent, rotation checks, limiter or security headers. Each request

- parses the form body (werkzeug) and checks the client secret of HTTP Basic against its SHA-256
  digest, as ``idp.relying_parties.secret_matches`` does;
- builds and verifies the token request with oic's message classes, which pyop uses for it;
- reads one entry from the state (the code's, or the refresh token's) and writes three (access
  token, refresh token, and the code's or the old token's record) in one transaction: the two
  round trips the IdP makes;
- for a code exchange, signs an id_token with jwcrypto, with a key of the IdP's size for the
  algorithm (``/token/exchange/ES256`` or ``/token/exchange/RS256``);
- answers with oic's AccessTokenResponse as JSON (``/token/refresh`` has no id_token).

The state is Redis with ``--redis-url`` (the benchmark gives the IdP's dedicated database) and
the worker's memory otherwise, as the IdP's is. Served exactly as the minimal app and the IdP
(idp.server.run), so "IdP rate / floor rate" is the share of the IdP's own logic, and "floor rate
/ minimal rate" the best any code on this stack could reach against the minimal app.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import sys
import threading
import time
from typing import Any, Protocol

import redis
from flask import Flask, Response, abort, jsonify, request
from jwcrypto.jwk import JWK
from jwcrypto.jws import JWS
from oic.oauth2.message import Message
from oic.oic.message import AccessTokenRequest, AccessTokenResponse, RefreshAccessTokenRequest

from idp.keys import RSA_BITS
from minimal_app import serve, server_arguments

CLIENT_ID = "floor-client"
CLIENT_SECRET = "floor secret"
ENTRY_KEY = "floor:entry"
TOKEN_LIFETIME = 3600
# An entry shaped like pyop's: the authorization request and what the grant settled.
ENTRY = json.dumps({"auth_req": {"response_type": "code", "client_id": CLIENT_ID, "scope": "openid patron",
                                 "redirect_uri": "http://127.0.0.1:9/callback", "nonce": "n" * 16,
                                 "code_challenge": "c" * 43, "code_challenge_method": "S256"},
                    "sub": "s" * 43, "granted_scope": "openid patron", "exp": 2**40, "token_type": "Bearer"})


class Store(Protocol):
    def read(self, key: str) -> bytes | None: ...

    def write(self, entries: dict[str, str], ttl: int) -> None: ...


class RedisStore:
    def __init__(self, url: str) -> None:
        self._client = redis.Redis.from_url(url)

    def read(self, key: str) -> bytes | None:
        return self._client.get(key)  # type: ignore[no-any-return]

    def write(self, entries: dict[str, str], ttl: int) -> None:
        pipe = self._client.pipeline(transaction=True)
        for key, value in entries.items():
            pipe.set(key, value, ex=ttl)
        pipe.execute()


class MemoryStore:
    """The worker's memory, as the IdP's embedded state; tokens are dropped in bulk past a bound
    (nothing reads them back), never the entry the requests read."""

    MAX_TOKENS = 100_000

    def __init__(self) -> None:
        self._entries: dict[str, str] = {}
        self._tokens: dict[str, str] = {}
        self._lock = threading.Lock()

    def read(self, key: str) -> bytes | None:
        with self._lock:
            value = self._entries.get(key)
        return value.encode() if value is not None else None

    def write(self, entries: dict[str, str], ttl: int) -> None:
        with self._lock:
            for key, value in entries.items():
                (self._entries if key == ENTRY_KEY else self._tokens)[key] = value
            if len(self._tokens) > self.MAX_TOKENS:
                self._tokens.clear()


def create_app(store: Store) -> Flask:
    app = Flask(__name__)
    keys = {"ES256": JWK.generate(kty="EC", crv="P-256", kid="floor-es256"),
            "RS256": JWK.generate(kty="RSA", size=RSA_BITS, kid="floor-rs256")}
    secret_digest = hashlib.sha256(CLIENT_SECRET.encode()).digest()
    store.write({ENTRY_KEY: ENTRY}, 10 * TOKEN_LIFETIME)

    def checked(message: type[Message]) -> Message:
        scheme, _, value = request.headers.get("Authorization", "").partition(" ")
        try:
            client_id, _, secret = base64.b64decode(value, validate=True).decode().partition(":")
        except ValueError:
            abort(401)
        if scheme != "Basic" or client_id != CLIENT_ID or not hmac.compare_digest(
                hashlib.sha256(secret.encode()).digest(), secret_digest):
            abort(401)
        token_request = message().from_dict(dict(request.form.items()))
        token_request.verify()
        return token_request

    def answer(id_token: str | None = None) -> Response:
        access_token, refresh_token = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        store.write({f"floor:at:{access_token}": ENTRY, f"floor:rt:{refresh_token}": ENTRY,
                     f"floor:issued:{refresh_token}": ENTRY}, TOKEN_LIFETIME)
        fields: dict[str, Any] = {"access_token": access_token, "token_type": "Bearer", "expires_in": TOKEN_LIFETIME,
                                  "refresh_token": refresh_token}
        if id_token is not None:
            fields["id_token"] = id_token
        return jsonify(AccessTokenResponse(**fields).to_dict())

    def entry() -> dict[str, Any]:
        raw = store.read(ENTRY_KEY)
        if raw is None:
            abort(400)
        return json.loads(raw)  # type: ignore[no-any-return]

    @app.post("/token/exchange/<alg>")
    def exchange(alg: str) -> Response:
        if alg not in keys:
            abort(404)
        checked(AccessTokenRequest)
        grant, now = entry(), int(time.time())
        claims = {"iss": "http://127.0.0.1", "sub": grant["sub"], "aud": CLIENT_ID, "iat": now, "exp": now + 600,
                  "nonce": grant["auth_req"]["nonce"], "at_hash": "a" * 22}
        token = JWS(json.dumps(claims, separators=(",", ":")).encode())
        token.add_signature(keys[alg], alg=alg, protected={"alg": alg, "kid": keys[alg]["kid"], "typ": "JWT"})
        return answer(token.serialize(compact=True))

    @app.post("/token/refresh")
    def refresh() -> Response:
        checked(RefreshAccessTokenRequest)
        entry()
        return answer()

    @app.get("/hello")
    def hello() -> Response:
        return jsonify(message="hello", ok=True)

    return app


def main(argv: list[str] | None = None) -> int:
    parser = server_arguments(__doc__.splitlines()[0])
    parser.add_argument("--redis-url", help="state in this Redis database (the worker's memory without it)")
    args = parser.parse_args(argv)
    serve(lambda: create_app(RedisStore(args.redis_url) if args.redis_url else MemoryStore()), args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
