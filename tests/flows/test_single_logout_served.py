"""Single logout across protocols through ``idp serve`` in production mode, on both backends.

The services are independent implementations served over real HTTP on loopback: an authlib
relying party with a back-channel logout endpoint, and a python3-saml service provider whose
SingleLogoutService answers the LogoutRequests a real browser (Chromium) carries to it. What
they receive is checked with their own libraries: the logout token with authlib's JOSE against
our published keys (OpenID Connect Back-Channel Logout 1.0, section 2.6), the LogoutRequest by
python3-saml against our metadata.
"""

from __future__ import annotations

import base64
import json
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import redis
import requests
from authlib.integrations.requests_client import OAuth2Session
from authlib.jose import JsonWebKey, JsonWebToken

from tests.fakes import serving
from tests.conftest import BACKENDS, fresh_postgres_database
from tests.flows.test_oidc_flow import CALLBACK, PASSWORD, Client, callback_params, login_and_consent, rp_session, start
from tests.flows.test_oidc_flow import Browser as OidcBrowser
from tests.flows.test_served_oidc import LoopbackBrowserSession, own_redis_db
from tests.nin import person
from tests.saml.sps import Browser, Form, OneLoginSp, post_form
from tests.serving import free_port, idp_ok, production_env, running

pytestmark = [pytest.mark.slow, pytest.mark.backends]

LIBRARY = "NO-2030000"
BACKCHANNEL_EVENT = "http://schemas.openid.net/event/backchannel-logout"
# The back-channel timeout the operator sets for these runs (IDP_BACKCHANNEL_LOGOUT_TIMEOUT).
TIMEOUT = 2


# -- the services' web servers ----------------------------------------------------------------

@dataclass
class Received:
    method: str
    path: str
    query: dict[str, str]
    form: dict[str, str]
    at: float


@dataclass
class Services:
    """One loopback web server for the relying party and the service provider: it records every
    request, answers ``routes[path]`` where one is set, and ``200 ok`` otherwise."""

    url: str
    received: list[Received] = field(default_factory=list)
    routes: dict[str, Callable[[Received], tuple[int, dict[str, str], str]]] = field(default_factory=dict)

    def wait_for(self, path: str, seconds: float = 15) -> Received:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            found = [r for r in self.received if r.path == path]
            if found:
                return found[0]
            time.sleep(0.05)
        raise AssertionError(f"nothing arrived at {path} within {seconds} s; got {[r.path for r in self.received]}")


@pytest.fixture
def web() -> Iterator[Services]:
    port = free_port()
    services = Services(f"http://127.0.0.1:{port}")

    class Handler(BaseHTTPRequestHandler):
        def _answer(self, method: str) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode() if length else ""
            got = Received(method, parts.path, {k: v[0] for k, v in parse_qs(parts.query).items()},
                           {k: v[0] for k, v in parse_qs(body).items()}, time.monotonic())
            services.received.append(got)
            route = services.routes.get(parts.path)
            status, headers, text = route(got) if route else (200, {}, "ok")
            self.send_response(status)
            for name, value in {"Content-Type": "text/html; charset=utf-8", **headers}.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(text.encode())

        def do_GET(self) -> None:
            self._answer("GET")

        def do_POST(self) -> None:
            self._answer("POST")

        def log_message(self, *args: Any) -> None:
            pass

    with serving(ThreadingHTTPServer(("127.0.0.1", port), Handler)):
        yield services


@pytest.fixture
def http() -> Iterator[requests.Session]:
    """The patron's scripted browser."""
    with LoopbackBrowserSession() as session:
        yield session


@pytest.fixture
def black_hole() -> Iterator[str]:
    """A back-channel endpoint that accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/backchannel"
    finally:
        listener.close()


# -- the IdP, set up with the operator's commands ------------------------------------------------

@dataclass
class Idp:
    url: str
    env: dict[str, str]
    card: str
    log: Path

    def add_oidc(self, web_url: str, *options: str) -> Client:
        # CALLBACK, where the scripted browser stops; the served one, where Chromium goes.
        rp = idp_ok("rp", "add-oidc", "Film platform", "--redirect-uri", CALLBACK,
                    "--redirect-uri", f"{web_url}/callback",
                    "--dpa-signed", "2026-01-01", *options, env=self.env)
        return Client(rp["client_id"], rp["client_secret"])

    def add_saml(self, sp: OneLoginSp, tmp_path: Path) -> str:
        metadata = tmp_path / f"sp-{len(list(tmp_path.glob('sp-*')))}.xml"
        metadata.write_bytes(sp.metadata())
        return idp_ok("rp", "add-saml", "--metadata", str(metadata), "--claims", "valid_patron",
                      "--dpa-signed", "2026-01-01", env=self.env)["client_id"]


@pytest.fixture(params=BACKENDS)
def idp(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Idp]:
    port = free_port()
    with ExitStack() as stack:
        settings: dict[str, str] = {"IDP_BACKCHANNEL_LOGOUT_TIMEOUT": str(TIMEOUT)}
        workers: list[str] = []
        if request.param != "embedded":
            redis_url = own_redis_db(request.getfixturevalue("redis_url"))
            stack.callback(lambda: redis.Redis.from_url(redis_url).flushdb())
            database = stack.enter_context(fresh_postgres_database("idp_slo"))
            settings.update(IDP_DATABASE_URL=database, IDP_REDIS_URL=redis_url)
            workers = ["--workers", "2"]
        env = production_env(tmp_path, port, **settings)
        idp_ok("library", "add", LIBRARY, "Oslo public library", env=env)
        idp_ok("series", "reserve", LIBRARY, "--count", "10", "--digital", env=env)
        card = idp_ok("patron", "add", "--national-id", person(date(1985, 3, 12)), "--name", "Kari Nordmann",
                      "--home-library", LIBRARY, env=env)["card_number"]
        idp_ok("patron", "set-password", card, env=env, stdin=f"{PASSWORD}\n")
        log = tmp_path / "serve.log"
        base, _ = stack.enter_context(running(["serve", "--host", "127.0.0.1", "--port", str(port), *workers],
                                              env, log))
        yield Idp(base, env, card, log)


def oidc_login(idp: Idp, client: Client, http: requests.Session) -> dict[str, Any]:
    """The patron logs in at the relying party (authlib); returns its tokens."""
    rp = rp_session(idp, client)  # type: ignore[arg-type]
    url, _, verifier = start(idp, rp)  # type: ignore[arg-type]
    back = callback_params(login_and_consent(OidcBrowser(http), url, idp.card))
    return dict(rp.fetch_token(f"{idp.url}/token", code=back["code"], code_verifier=verifier))


def verified_claims(idp: Idp, token: str, client: Client) -> dict[str, Any]:
    """A JWT from us, checked by authlib against our published keys."""
    keys = JsonWebKey.import_key_set(requests.get(f"{idp.url}/jwks", timeout=5).json())
    claims = JsonWebToken(["RS256", "ES256"]).decode(token, keys)
    claims.validate()
    assert claims["iss"] == idp.url and claims["aud"] == client.client_id
    return dict(claims)


# -- the tests ----------------------------------------------------------------------------------

def test_a_relying_party_gets_a_logout_token_when_the_patron_logs_out_at_a_saml_sp(
        idp: Idp, web: Services, http: requests.Session, tmp_path: Path) -> None:
    client = idp.add_oidc(web.url, "--backchannel-logout-uri", f"{web.url}/backchannel")
    sp = OneLoginSp(idp.url, "film.example")
    idp.add_saml(sp, tmp_path)
    tokens = oidc_login(idp, client, http)
    id_token = verified_claims(idp, tokens["id_token"], client)
    assert id_token["sid"]  # the session the logout token will name

    browser = Browser(idp.url, http=http)
    url, request_id = sp.login_url()
    auth = sp.acs(post_form(browser.through(browser.go(url), idp.card).text), request_id)
    assert auth.is_authenticated()
    answer = browser.go(sp.logout_url(auth.get_nameid(), auth.get_nameid_format(), auth.get_session_index()))
    assert answer.is_redirect and sp.sls(answer.headers["Location"]) == []  # the SP's own logout: Success

    delivered = web.wait_for("/backchannel")
    assert delivered.method == "POST"
    token = delivered.form["logout_token"]
    claims = verified_claims(idp, token, client)
    assert claims["events"] == {BACKCHANNEL_EVENT: {}}
    assert claims["sub"] == id_token["sub"] and claims["sid"] == id_token["sid"]
    assert "nonce" not in claims and claims["jti"]
    assert claims["iat"] <= time.time() + 5 <= claims["exp"] + 5
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=" * (-len(token.split(".")[0]) % 4)))
    assert header["typ"] == "logout+jwt"
    # And the tokens of that login are dead at the relying party's next call.
    userinfo = requests.get(f"{idp.url}/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"},
                            timeout=5)
    assert userinfo.status_code == 401


def test_a_dead_back_channel_endpoint_does_not_hold_up_the_logout(idp: Idp, web: Services, black_hole: str,
                                                                  http: requests.Session) -> None:
    client = idp.add_oidc(web.url, "--backchannel-logout-uri", black_hole)
    oidc_login(idp, client, http)
    landing = http.get(f"{idp.url}/", timeout=5)
    token = landing.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    started = time.monotonic()
    out = http.post(f"{idp.url}/logout", data={"csrf_token": token}, allow_redirects=False, timeout=30)
    elapsed = time.monotonic() - started
    assert out.status_code == 303
    assert elapsed < TIMEOUT, f"the logout took {elapsed:.1f} s with a dead back-channel endpoint"
    # The delivery did try, and says so in the log (retried later), naming the client, never the token.
    deadline = time.monotonic() + 3 * TIMEOUT + 10
    while time.monotonic() < deadline and client.client_id not in idp.log.read_text():
        time.sleep(0.2)
    lines = [line for line in idp.log.read_text().splitlines() if client.client_id in line and "logout" in line]
    assert lines, idp.log.read_text()[-3000:]
    assert "logout_token" not in "".join(lines)


def test_a_python3_saml_sp_is_logged_out_when_the_patron_logs_out_at_an_oidc_relying_party(
        idp: Idp, web: Services, browser: Any, tmp_path: Path) -> None:
    client = idp.add_oidc(web.url)
    sp = OneLoginSp(idp.url, "film", base=f"{web.url}/sp")
    idp.add_saml(sp, tmp_path)
    logins: dict[str, Any] = {}

    def acs(got: Received) -> tuple[int, dict[str, str], str]:
        auth = sp.acs(Form(f"{sp.base}/saml/acs", got.form), logins.get("request_id"))
        logins["auth"] = auth
        return 200, {}, "<p>logged in at the SP</p>"

    def sls(got: Received) -> tuple[int, dict[str, str], str]:
        logins["logout"] = answer = sp.answer_logout(got.query)
        return 302, {"Location": answer.response_url or "/"}, ""

    web.routes[f"{urlsplit(sp.base).path}/saml/acs"] = acs
    web.routes[f"{urlsplit(sp.base).path}/saml/sls"] = sls

    context = browser.new_context(locale="en")
    page = context.new_page()
    try:
        rp = OAuth2Session(client.client_id, client.secret, scope="openid patron", redirect_uri=f"{web.url}/callback",
                           code_challenge_method="S256")
        url, _, verifier = start(idp, rp)  # type: ignore[arg-type]
        page.goto(url)
        page.fill("input[name=username]", idp.card)
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.click("button[name=decision][value=allow]")
        page.wait_for_url(f"{web.url}/callback*")
        code = parse_qs(urlsplit(page.url).query)["code"][0]
        tokens = rp.fetch_token(f"{idp.url}/token", code=code, code_verifier=verifier)

        sso_url, logins["request_id"] = sp.login_url()
        page.goto(sso_url)
        page.click("button[name=decision][value=allow]")  # consent for the SP; the post page sends itself on
        page.wait_for_url(f"{sp.base}/saml/acs")
        assert logins["auth"].is_authenticated(), logins["auth"].get_errors()

        logout = f"{idp.url}/logout/oidc?" + urlencode({"id_token_hint": tokens["id_token"]})
        started = time.monotonic()
        page.goto(logout)
        page.wait_for_selector("text=You are logged out")
        elapsed = time.monotonic() - started
    finally:
        context.close()
    answer = logins.get("logout")
    assert answer is not None, "the SP got no LogoutRequest"
    assert answer.errors == [] and answer.name_id == logins["auth"].get_nameid()
    assert answer.session_indexes == [logins["auth"].get_session_index()]
    assert elapsed < 5, f"the SP answered at once, yet the logout page took {elapsed:.1f} s"
