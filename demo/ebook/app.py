"""A demo e-book platform that logs patrons in with their library card. DEVELOPMENT ONLY.

A small, separate relying party for a newcomer to click through (``make demo`` starts it on
http://127.0.0.1:5001 beside the IdP on :5000) and for the browser tests. It uses only what a
real partner would: the IdP's published discovery document, authorization code flow with PKCE
(S256), state and nonce, client_secret_basic at the token endpoint, the userinfo endpoint and
RP-initiated logout. It never imports the ``idp`` package.

Configuration, from the environment (``idp demo`` sets all of it):

    DEMO_EBOOK_ISSUER         the IdP's issuer, e.g. http://127.0.0.1:5000            (required)
    DEMO_EBOOK_CLIENT_ID      this platform's client id at the IdP                  (required)
    DEMO_EBOOK_CLIENT_SECRET  its client secret                                     (required)
    DEMO_EBOOK_BASE_URL       this platform's own base URL (default http://127.0.0.1:5001);
                              BASE_URL/callback and BASE_URL/ must be registered redirect URIs
    DEMO_EBOOK_SECRET_KEY     signs the platform's session cookie (default: random per start)

Run by hand with ``python -m demo.ebook.app`` from the source checkout.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NoReturn
from urllib.parse import urlsplit

import requests
from authlib.integrations.flask_client import OAuth, OAuthError
from flask import Flask, Response, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from werkzeug.serving import WSGIRequestHandler, make_server

ENV_PREFIX = "DEMO_EBOOK_"
DEFAULT_BASE_URL = "http://127.0.0.1:5001"
TITLE = "Demo e-book platform (development only)"
# What the platform asks for: "patron" is the scope behind the valid_patron claim.
SCOPE = "openid patron"
HTTP_TIMEOUT = 10
# The IdP shares the host 127.0.0.1 and cookies ignore ports: a name of our own keeps the two apart.
SESSION_COOKIE = "demo_ebook_session"

# Why each claim is there, in the patron's words; shown beside the values on the account page.
EXPLANATIONS: Mapping[str, str] = {
    "sub": "A pseudonym for you at this platform only. Another platform gets a different one, "
           "and neither can work out your card number from it.",
    "valid_patron": "Whether you hold an active library card: the one fact this platform needs.",
    "acr": "How strongly you logged in (password, password + one-time code, ID-porten...).",
    "amr": "The methods you used to log in (pwd: a password).",
    "auth_time": "When you logged in.",
    "iss": "Who vouches for all this: the library login.",
    "aud": "Whom the statement is for: this platform's client id.",
    "iat": "When the statement was issued.",
    "exp": "When the statement stops being valid.",
    "nonce": "A random value the platform chose, proving the statement was made for this login.",
    "at_hash": "Ties the statement to the access token the platform received with it.",
}
_TIMES = frozenset({"auth_time", "iat", "exp"})


class ConfigError(Exception):
    """The platform's environment is incomplete or malformed."""


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


@dataclass(frozen=True)
class PlatformConfig:
    issuer: str
    client_id: str
    client_secret: str = field(repr=False)
    base_url: str = DEFAULT_BASE_URL
    secret_key: str = field(default_factory=lambda: secrets.token_urlsafe(32), repr=False)

    def __post_init__(self) -> None:
        for name in ("issuer", "base_url"):
            value = getattr(self, name).rstrip("/")
            parts = urlsplit(value)
            if parts.scheme not in {"http", "https"} or not parts.hostname:
                raise ConfigError(f"{ENV_PREFIX}{name.upper()} must be an absolute http(s) URL, not {value!r}")
            # Frozen: normalising the trailing slash once here keeps every URL built below exact.
            object.__setattr__(self, name, value)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> PlatformConfig:
        env = os.environ if env is None else env
        required = ("ISSUER", "CLIENT_ID", "CLIENT_SECRET")
        missing = [ENV_PREFIX + key for key in required if not env.get(ENV_PREFIX + key)]
        if missing:
            raise ConfigError(f"set {', '.join(missing)} (`idp demo` sets them for you)")
        optional = {key.lower(): env[ENV_PREFIX + key] for key in ("BASE_URL", "SECRET_KEY")
                    if env.get(ENV_PREFIX + key)}
        return cls(issuer=env[ENV_PREFIX + "ISSUER"], client_id=env[ENV_PREFIX + "CLIENT_ID"],
                   client_secret=env[ENV_PREFIX + "CLIENT_SECRET"], **optional)

    @property
    def callback_url(self) -> str:
        return f"{self.base_url}/callback"

    @property
    def home_url(self) -> str:
        # Exactly as registered: the IdP compares post_logout_redirect_uri character for character.
        return f"{self.base_url}/"


def _shown(name: str, value: Any) -> str:
    """A claim value as the patron should read it: JSON for anything that is not plain text."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    if name in _TIMES and isinstance(value, int):
        text += f" ({datetime.fromtimestamp(value, UTC):%Y-%m-%d %H:%M:%S} UTC)"
    return text


def _rows(claims: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    # The facts about the patron first, the protocol's bookkeeping after.
    ordered = [k for k in EXPLANATIONS if k in claims] + sorted(k for k in claims if k not in EXPLANATIONS)
    return [(name, _shown(name, claims[name]), EXPLANATIONS.get(name, "")) for name in ordered]


def create_app(config: PlatformConfig) -> Flask:
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=config.secret_key,
        SESSION_COOKIE_NAME=SESSION_COOKIE,
        SESSION_COOKIE_HTTPONLY=True,
        # Lax: a cross-site POST to /logout arrives without the session, so it cannot log anyone out.
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=config.base_url.startswith("https:"),
    )
    oauth = OAuth(app)
    library = oauth.register(
        "library",
        client_id=config.client_id,
        client_secret=config.client_secret,
        server_metadata_url=f"{config.issuer}/.well-known/openid-configuration",
        client_kwargs={"scope": SCOPE, "code_challenge_method": "S256",
                       "token_endpoint_auth_method": "client_secret_basic", "default_timeout": HTTP_TIMEOUT},
    )
    # Forms may lead to the IdP: the login button and the logout both end in a redirect there.
    csp = (f"default-src 'self'; form-action 'self' {_origin(config.issuer)}; frame-ancestors 'none'; "
           "base-uri 'none'")

    def problem(message: str, status: int) -> ResponseReturnValue:
        return render_template("error.html", title=TITLE, message=message), status

    @app.after_request
    def headers(response: Response) -> Response:
        response.headers.setdefault("Content-Security-Policy", csp)
        # The callback's URL carries a code: never leak it to another site in a Referer.
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Cache-Control", "no-store")
        return response

    @app.errorhandler(requests.RequestException)
    def unreachable(_: requests.RequestException) -> ResponseReturnValue:
        return problem(f"The library login at {config.issuer} cannot be reached. Is the IdP running?", 502)

    @app.get("/")
    def home() -> ResponseReturnValue:
        logged_out = False
        if request.args.get("state"):
            # Back from the IdP's logout: the state proves this browser asked for it.
            try:
                library.validate_logout_response()
                logged_out = True
            except OAuthError:
                pass
        return render_template("home.html", title=TITLE, learned=session.get("learned"), logged_out=logged_out,
                               issuer=config.issuer)

    @app.get("/login")
    def login() -> ResponseReturnValue:
        return library.authorize_redirect(config.callback_url)

    @app.get("/callback")
    def callback() -> ResponseReturnValue:
        # RFC 9207: a response that names another issuer belongs to another login; refuse it.
        if request.args.get("iss", config.issuer) != config.issuer:
            return problem("The login answer came from an unexpected issuer and was ignored.", 400)
        try:
            token = library.authorize_access_token()
        except OAuthError as exc:
            if exc.error == "access_denied":
                return problem("You chose not to share anything, so you are not logged in here. "
                               "Nothing about you was sent to the platform.", 403)
            return problem(f"The login did not complete ({exc.error}). Start again from the home page.", 400)
        if "userinfo" not in token:
            return problem("The library login sent no ID token, so the platform cannot tell who logged in.", 502)
        claims = dict(token["userinfo"])  # the id_token, its signature, issuer, audience and nonce checked
        try:
            info = dict(library.userinfo(token=token))
        except requests.HTTPError:
            return problem("The library login refused the platform's access token; start again.", 502)
        if info.get("sub") != claims.get("sub"):  # OpenID Connect Core 5.3.2: never mix two people up
            return problem("The library login answered about someone else; the login was ignored.", 502)
        # A new session for the logged-in patron; the tokens beyond the id_token are not kept.
        session.clear()
        session["learned"] = {"id_token": claims, "userinfo": info}
        session["id_token"] = token["id_token"]
        return redirect(url_for("account"), 303)

    @app.get("/account")
    def account() -> ResponseReturnValue:
        learned = session.get("learned")
        if not learned:
            return redirect(url_for("home"), 303)
        return render_template("account.html", title=TITLE, claims=_rows(learned["id_token"]),
                               userinfo=_rows(learned["userinfo"]), valid=learned["id_token"].get("valid_patron"))

    @app.post("/logout")
    def logout() -> ResponseReturnValue:
        id_token = session.pop("id_token", None)
        session.pop("learned", None)
        if id_token is None:
            return redirect(url_for("home"), 303)
        # Ends the IdP's session too, so the next "Log in" asks for the card again.
        return library.logout_redirect(post_logout_redirect_uri=config.home_url, id_token_hint=id_token)

    return app


class _RequestLog(WSGIRequestHandler):
    """Logs method, path and status only: the callback's query string carries a one-time code."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        self.log("info", '"%s %s" %s', self.command, urlsplit(self.path).path, code)


def _stop(*_: object) -> NoReturn:
    raise SystemExit(0)


def main() -> None:
    try:
        config = PlatformConfig.from_env()
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    parts = urlsplit(config.base_url)
    server = make_server(parts.hostname or "127.0.0.1", parts.port or 80, create_app(config), threaded=True,
                         request_handler=_RequestLog)
    signal.signal(signal.SIGTERM, _stop)
    print(f"demo e-book platform (DEVELOPMENT ONLY) on {config.home_url}, logging in at {config.issuer}",
          flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass  # Ctrl-C reaches the whole process group; the IdP says goodbye for both
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
