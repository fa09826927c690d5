"""A fake ID-porten for `make demo`. DEVELOPMENT ONLY: it checks nobody's identity.

``idp demo`` starts it on http://127.0.0.1:5002 beside the IdP and points the IdP's ID-porten
settings at it, so a newcomer can try "Log in with ID-porten", self-registration and a
guardian's card for a child without an account at Digdir. It speaks the same protocol as
ID-porten (discovery, JWKS, authorization code with PKCE S256, id_tokens signed RS256 with
``pid``, ``acr``, ``amr`` and ``sid``, RP-initiated logout), but its login page is a list of
made-up people with synthetic identity numbers. Every page it shows says DEVELOPMENT ONLY, and it
refuses to start unless ``IDP_MODE=development``. It never imports the ``idp`` package.

Configuration, from the environment (``idp demo`` sets all of it):

    DEMO_IDPORTEN_ISSUER          its own base URL, e.g. http://127.0.0.1:5002 (loopback only)
    DEMO_IDPORTEN_CLIENT_ID       the IdP's client id here
    DEMO_IDPORTEN_CLIENT_SECRET   the IdP's client secret here
    DEMO_IDPORTEN_REDIRECT_URIS   the IdP's callback(s), comma-separated
    DEMO_IDPORTEN_LOGOUT_URIS     where logout may return to, comma-separated
    DEMO_IDPORTEN_PEOPLE          JSON list of {"pid": ..., "label": ...} to offer
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import signal
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn
from urllib.parse import unquote_plus, urlencode, urlsplit

from flask import Flask, jsonify, redirect, render_template, request
from flask.typing import ResponseReturnValue
from jwcrypto import jwk, jwt
from werkzeug.serving import WSGIRequestHandler, make_server

ENV_PREFIX = "DEMO_IDPORTEN_"
LEVELS = ("idporten-loa-substantial", "idporten-loa-high")
CODE_TTL = 60
TICKET_TTL = 600
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


class ConfigError(Exception):
    """The fake's environment is incomplete, or it was asked to run outside development."""


@dataclass(frozen=True)
class FakeConfig:
    issuer: str
    client_id: str
    client_secret: str = field(repr=False)
    redirect_uris: tuple[str, ...]
    logout_uris: tuple[str, ...] = ()
    people: tuple[dict[str, str], ...] = ()

    def __post_init__(self) -> None:
        parts = urlsplit(self.issuer)
        if parts.scheme != "http" or parts.hostname not in _LOOPBACK:
            # Anything reachable from elsewhere would be a way to log in as anyone.
            raise ConfigError(f"{ENV_PREFIX}ISSUER must be a loopback http URL such as http://127.0.0.1:5002")
        object.__setattr__(self, "issuer", self.issuer.rstrip("/"))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> FakeConfig:
        env = os.environ if env is None else env
        if env.get("IDP_MODE", "").strip().lower() != "development":
            raise ConfigError("the fake ID-porten is for development only and runs only with IDP_MODE=development")
        required = ("ISSUER", "CLIENT_ID", "CLIENT_SECRET", "REDIRECT_URIS")
        missing = [ENV_PREFIX + key for key in required if not env.get(ENV_PREFIX + key)]
        if missing:
            raise ConfigError(f"set {', '.join(missing)} (`idp demo` sets them for you)")
        try:
            people = tuple(json.loads(env.get(ENV_PREFIX + "PEOPLE") or "[]"))
        except ValueError:
            raise ConfigError(f"{ENV_PREFIX}PEOPLE is not JSON") from None
        return cls(issuer=env[ENV_PREFIX + "ISSUER"], client_id=env[ENV_PREFIX + "CLIENT_ID"],
                   client_secret=env[ENV_PREFIX + "CLIENT_SECRET"],
                   redirect_uris=tuple(u for u in env[ENV_PREFIX + "REDIRECT_URIS"].split(",") if u),
                   logout_uris=tuple(u for u in env.get(ENV_PREFIX + "LOGOUT_URIS", "").split(",") if u),
                   people=people)


def _challenge(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def create_app(config: FakeConfig) -> Flask:
    app = Flask(__name__)
    key = jwk.JWK.generate(kty="RSA", size=2048, kid=f"demo-{secrets.token_hex(4)}", alg="RS256", use="sig")
    tickets: dict[str, tuple[float, dict[str, str]]] = {}   # a shown login page, until it is answered
    codes: dict[str, tuple[float, dict[str, Any]]] = {}     # an issued code, until it is exchanged

    def message(text: str, status: int = 200, error: bool = False) -> ResponseReturnValue:
        return render_template("message.html", message=text, error=error), status

    @app.after_request
    def headers(response: Any) -> Any:
        response.headers.setdefault("Cache-Control", "no-store")
        response.headers.setdefault("X-Development-Only", "fake ID-porten")
        return response

    @app.get("/")
    def home() -> ResponseReturnValue:
        return message(f"A fake ID-porten for the library login's demo. Its issuer is {config.issuer}.")

    @app.get("/.well-known/openid-configuration")
    def discovery() -> ResponseReturnValue:
        return jsonify(issuer=config.issuer, authorization_endpoint=f"{config.issuer}/authorize",
                       token_endpoint=f"{config.issuer}/token", jwks_uri=f"{config.issuer}/jwks",
                       end_session_endpoint=f"{config.issuer}/logout", response_types_supported=["code"],
                       acr_values_supported=list(LEVELS), code_challenge_methods_supported=["S256"],
                       token_endpoint_auth_methods_supported=["client_secret_basic", "client_secret_post"],
                       id_token_signing_alg_values_supported=["RS256"], development_only=True)

    @app.get("/jwks")
    def jwks() -> ResponseReturnValue:
        return jsonify(keys=[key.export_public(as_dict=True)])

    @app.get("/authorize")
    def authorize() -> ResponseReturnValue:
        params = dict(request.args.items())
        if params.get("client_id") != config.client_id or params.get("redirect_uri") not in config.redirect_uris:
            return message("Unknown client or redirect_uri: this fake knows only the demo IdP.", 400, error=True)
        if (params.get("response_type") != "code" or params.get("code_challenge_method") != "S256"
                or not params.get("code_challenge")):
            return message("The request needs response_type=code and PKCE (S256).", 400, error=True)
        ticket = secrets.token_urlsafe(16)
        tickets[ticket] = (time.time() + TICKET_TTL, params)
        asked = params.get("acr_values") if params.get("acr_values") in LEVELS else LEVELS[0]
        return render_template("authorize.html", ticket=ticket, people=config.people, levels=LEVELS, asked=asked)

    @app.post("/authorize")
    def consent() -> ResponseReturnValue:
        until, params = tickets.pop(request.form.get("ticket", ""), (0.0, {}))
        if until < time.time():
            return message("This login page has expired. Start again from the library login.", 400, error=True)
        back = params["redirect_uri"]
        answer: dict[str, str] = {"state": params.get("state", ""), "iss": config.issuer}
        if request.form.get("decision") != "login":
            answer.update(error="access_denied", error_description="cancelled in the fake ID-porten")
            return redirect(f"{back}?{urlencode(answer)}", 303)
        pid = "".join((request.form.get("other") or request.form.get("pid") or "").split())
        acr = request.form.get("acr") if request.form.get("acr") in LEVELS else LEVELS[0]
        code = secrets.token_urlsafe(24)
        codes[code] = (time.time() + CODE_TTL, {"params": params, "pid": pid, "acr": acr,
                                                "sid": secrets.token_urlsafe(12)})
        answer["code"] = code
        return redirect(f"{back}?{urlencode(answer)}", 303)

    @app.post("/token")
    def token() -> ResponseReturnValue:
        form = dict(request.form.items())
        client_id, secret = form.get("client_id"), form.get("client_secret")
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            raw_id, _, raw_secret = base64.b64decode(auth[6:]).decode().partition(":")
            client_id, secret = unquote_plus(raw_id), unquote_plus(raw_secret)
        if client_id != config.client_id or not secrets.compare_digest(secret or "", config.client_secret):
            return jsonify(error="invalid_client"), 401
        until, grant = codes.pop(form.get("code", ""), (0.0, {}))
        params = grant.get("params", {})
        if (until < time.time() or form.get("grant_type") != "authorization_code"
                or form.get("redirect_uri") != params.get("redirect_uri")
                or _challenge(form.get("code_verifier", "")) != params.get("code_challenge")):
            return jsonify(error="invalid_grant"), 400
        now = int(time.time())
        claims = {"iss": config.issuer, "aud": config.client_id, "sub": hashlib.sha256(grant["pid"].encode())
                  .hexdigest()[:43], "pid": grant["pid"], "acr": grant["acr"], "amr": ["TestID"], "sid": grant["sid"],
                  "nonce": params.get("nonce", ""), "iat": now, "exp": now + 120, "auth_time": now, "locale": "nb"}
        signed = jwt.JWT(header={"alg": "RS256", "kid": key.kid, "typ": "JWT"}, claims=claims)
        signed.make_signed_token(key)
        return jsonify(access_token=secrets.token_urlsafe(24), token_type="Bearer",  # noqa: S106 - a token type, no password
                       expires_in=120,
                       id_token=signed.serialize())

    @app.get("/logout")
    def logout() -> ResponseReturnValue:
        target = request.args.get("post_logout_redirect_uri")
        if target in config.logout_uris:
            return redirect(f"{target}?{urlencode({'state': request.args.get('state', '')})}", 303)
        return message("You are logged out of the fake ID-porten.")

    return app


class _RequestLog(WSGIRequestHandler):
    """Method, path and status only: query strings carry codes and states."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        self.log("info", '"%s %s" %s', self.command, urlsplit(self.path).path, code)


def _stop(*_: object) -> NoReturn:
    raise SystemExit(0)


def main() -> None:
    try:
        config = FakeConfig.from_env()
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    parts = urlsplit(config.issuer)
    server = make_server(parts.hostname or "127.0.0.1", parts.port or 80, create_app(config), threaded=True,
                         request_handler=_RequestLog)
    signal.signal(signal.SIGTERM, _stop)
    print(f"fake ID-porten (DEVELOPMENT ONLY) on {config.issuer}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
