"""A faithful fake of ID-porten's OpenID provider, served over real HTTP on loopback.

It does what the IdP relies on ID-porten to do, and checks what ID-porten checks: discovery,
JWKS, ``/authorize`` (registered client and redirect URI, PKCE S256 required, ``acr_values``),
``/token`` (client authentication, single-use codes bound to the redirect URI, the PKCE
verifier), id_tokens signed RS256 with a real key and carrying ``pid``, ``acr``, ``amr``,
``sid`` and the ``nonce``, and ``/logout`` (RP-initiated logout to a registered URI).

The person who "logs in" is ``fake.person`` (a synthetic fødselsnummer), consenting at once;
``fake.cancel`` makes the person cancel instead. Misbehaviour for the tests that must fail:
``bad_signature``, ``wrong_nonce``, ``wrong_audience``, ``wrong_issuer``, ``expired``,
``unknown_kid`` and ``acr`` (answer another level than asked, e.g. too low).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_plus, urlencode

from flask import Flask, jsonify, redirect, request
from jwcrypto import jwk, jwt
from werkzeug.serving import make_server

from tests.fakes import serving
from tests.flows.conftest import free_port

SUBSTANTIAL = "idporten-loa-substantial"
HIGH = "idporten-loa-high"


@dataclass
class Client:
    client_id: str
    secret: str
    redirect_uris: list[str]
    post_logout_redirect_uris: list[str]


@dataclass
class Grant:
    client_id: str
    redirect_uri: str
    challenge: str
    nonce: str
    acr: str
    pid: str
    sid: str


@dataclass
class FakeIdPorten:
    url: str
    clients: dict[str, Client] = field(default_factory=dict)
    person: str | None = None
    cancel: bool = False
    amr: list[str] = field(default_factory=lambda: ["TestID"])
    # Misbehaviour (each off by default: a faithful ID-porten).
    acr: str | None = None  # None: the level asked for
    bad_signature: bool = False
    wrong_nonce: bool = False
    wrong_audience: bool = False
    wrong_issuer: bool = False
    expired: bool = False
    unknown_kid: bool = False
    # What it saw, for the tests to inspect.
    authorize_requests: list[dict[str, str]] = field(default_factory=list)
    token_requests: list[dict[str, str]] = field(default_factory=list)
    logouts: list[dict[str, str]] = field(default_factory=list)
    sessions: list[str] = field(default_factory=list)
    grants: dict[str, Grant] = field(default_factory=dict)
    key: jwk.JWK = field(default_factory=lambda: jwk.JWK.generate(kty="RSA", size=2048, kid="idporten-test-1",
                                                                   alg="RS256", use="sig"))

    def register(self, redirect_uri: str, post_logout_redirect_uri: str) -> Client:
        client = Client(f"client-{secrets.token_hex(4)}", secrets.token_urlsafe(24), [redirect_uri],
                        [post_logout_redirect_uri])
        self.clients[client.client_id] = client
        return client

    def rotate_key(self) -> None:
        self.key = jwk.JWK.generate(kty="RSA", size=2048, kid=f"idporten-test-{secrets.token_hex(3)}",
                                    alg="RS256", use="sig")

    # -- the id_token ------------------------------------------------------------------------

    def id_token(self, grant: Grant) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": "https://someone-else.example" if self.wrong_issuer else self.url,
            "aud": "another-client" if self.wrong_audience else grant.client_id,
            "sub": hashlib.sha256(f"{grant.client_id}/{grant.pid}".encode()).hexdigest()[:43],
            "pid": grant.pid,
            "acr": self.acr or grant.acr,
            "amr": list(self.amr),
            "sid": grant.sid,
            "nonce": "not-" + grant.nonce if self.wrong_nonce else grant.nonce,
            "iat": now - 7200 if self.expired else now,
            "exp": now - 3600 if self.expired else now + 120,
            "auth_time": now,
            "locale": "nb",
        }
        signer = self.key
        header = {"alg": "RS256", "kid": self.key.kid, "typ": "JWT"}
        if self.bad_signature:
            # Same kid as the published key, another private key: only the signature is wrong.
            signer = jwk.JWK.generate(kty="RSA", size=2048)
        if self.unknown_kid:
            signer = jwk.JWK.generate(kty="RSA", size=2048, kid="never-published")
            header["kid"] = "never-published"
        token = jwt.JWT(header=header, claims=claims)
        token.make_signed_token(signer)
        return token.serialize()

    # -- the HTTP app ------------------------------------------------------------------------

    def app(self) -> Flask:
        app = Flask("fake_idporten")

        @app.get("/.well-known/openid-configuration")
        def discovery() -> Any:
            return jsonify(issuer=self.url, authorization_endpoint=f"{self.url}/authorize",
                           token_endpoint=f"{self.url}/token", jwks_uri=f"{self.url}/jwks",
                           end_session_endpoint=f"{self.url}/logout", response_types_supported=["code"],
                           acr_values_supported=[SUBSTANTIAL, HIGH], code_challenge_methods_supported=["S256"],
                           token_endpoint_auth_methods_supported=["client_secret_basic", "client_secret_post"],
                           id_token_signing_alg_values_supported=["RS256"], frontchannel_logout_supported=True,
                           frontchannel_logout_session_supported=True)

        @app.get("/jwks")
        def jwks() -> Any:
            return jsonify(keys=[self.key.export_public(as_dict=True)])

        @app.get("/authorize")
        def authorize() -> Any:
            params = dict(request.args.items())
            self.authorize_requests.append(params)
            client = self.clients.get(params.get("client_id", ""))
            if client is None or params.get("redirect_uri") not in client.redirect_uris:
                return "unknown client or redirect_uri", 400
            back = params["redirect_uri"]

            def answer(**values: str) -> Any:
                if params.get("state"):
                    values["state"] = params["state"]
                return redirect(f"{back}?{urlencode(values)}", 302)

            if params.get("response_type") != "code" or "openid" not in params.get("scope", "").split():
                return answer(error="invalid_request", error_description="response_type=code and scope openid")
            if params.get("code_challenge_method") != "S256" or len(params.get("code_challenge", "")) != 43:
                return answer(error="invalid_request", error_description="PKCE S256 is required")
            asked = params.get("acr_values", SUBSTANTIAL)
            if asked not in {SUBSTANTIAL, HIGH}:
                return answer(error="invalid_request", error_description="unknown acr_values")
            if self.cancel or self.person is None:
                return answer(error="access_denied", error_description="The user cancelled the login")
            code = secrets.token_urlsafe(24)
            sid = secrets.token_urlsafe(16)
            self.sessions.append(sid)
            self.grants[code] = Grant(client.client_id, back, params["code_challenge"], params.get("nonce", ""),
                                      asked, self.person, sid)
            return answer(code=code)

        @app.post("/token")
        def token() -> Any:
            form = dict(request.form.items())
            self.token_requests.append({k: v for k, v in form.items() if k != "client_secret"})
            client_id, secret = form.get("client_id"), form.get("client_secret")
            auth = request.headers.get("Authorization", "")
            if auth.startswith("Basic "):
                decoded = base64.b64decode(auth[6:]).decode()
                raw_id, _, raw_secret = decoded.partition(":")
                client_id, secret = unquote_plus(raw_id), unquote_plus(raw_secret)
            client = self.clients.get(client_id or "")
            if client is None or not secrets.compare_digest(client.secret, secret or ""):
                return jsonify(error="invalid_client"), 401
            if form.get("grant_type") != "authorization_code":
                return jsonify(error="unsupported_grant_type"), 400
            grant = self.grants.pop(form.get("code", ""), None)  # single use
            if grant is None or grant.client_id != client.client_id or grant.redirect_uri != form.get("redirect_uri"):
                return jsonify(error="invalid_grant"), 400
            verifier = form.get("code_verifier", "")
            challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
            if not secrets.compare_digest(challenge, grant.challenge):
                return jsonify(error="invalid_grant", error_description="PKCE verification failed"), 400
            return jsonify(access_token=secrets.token_urlsafe(24), token_type="Bearer", expires_in=120,
                           id_token=self.id_token(grant))

        @app.get("/logout")
        def logout() -> Any:
            params = dict(request.args.items())
            self.logouts.append(params)
            target = params.get("post_logout_redirect_uri")
            if target and any(target in c.post_logout_redirect_uris for c in self.clients.values()):
                return redirect(f"{target}?{urlencode({'state': params.get('state', '')})}", 302)
            return "logged out of ID-porten"

        return app


@contextmanager
def running_idporten(port: int | None = None) -> Iterator[FakeIdPorten]:
    port = port or free_port()
    fake = FakeIdPorten(url=f"http://127.0.0.1:{port}")
    with serving(make_server("127.0.0.1", port, fake.app(), threaded=True)):
        yield fake
