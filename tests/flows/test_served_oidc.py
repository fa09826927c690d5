"""OpenID Connect through ``idp serve`` as an operator runs it: production mode, set up with the
operator's commands only, served by the real command in a process of its own, and used by an
independent relying party (authlib) and a scripted browser (requests).

On the embedded default (SQLite, no Redis: one worker) and on PostgreSQL + Redis (two workers),
every login of many must work end to end, whichever worker answers each request: state that one
worker kept in its own memory would fail some of them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis
import requests
from authlib.integrations.requests_client import OAuth2Session

from tests.conftest import BACKENDS, fresh_postgres_database
from tests.flows.test_oidc_flow import (
    CALLBACK,
    PASSWORD,
    Browser,
    Client,
    callback_params,
    login_and_consent,
    redeem,
    rp_session,
    start,
    token_request,
    userinfo_status,
    verify_id_token,
)
from tests.nin import person
from tests.serving import free_port, idp_ok, production_env, running

pytestmark = [pytest.mark.slow, pytest.mark.backends]  # `served`: on PostgreSQL + Redis two workers share the state

LOGINS = 20
LIBRARY = "NO-2030000"
# The IdP's Redis keys have fixed prefixes (its state, its rate-limit counters): a database of its
# own, emptied before and after, keeps runs from sharing sessions or login counts.
REDIS_DB = 14


@dataclass
class Served:
    """``idp serve`` on a port, with the relying party and patron the operator registered.
    ``url`` is what the flow helpers of test_oidc_flow read from their ``live`` argument."""

    url: str
    client: Client
    card: str


class LoopbackBrowserSession(requests.Session):
    """Browsers treat http://127.0.0.1 as a secure context and send it ``Secure`` cookies (as the
    session cookie is in production); requests would not, so the cookies it keeps lose the flag."""

    def request(self, *args: object, **kwargs: object) -> requests.Response:  # type: ignore[override]
        response = super().request(*args, **kwargs)  # type: ignore[arg-type]
        for cookie in self.cookies:
            cookie.secure = False
        return response


def own_redis_db(redis_url: str) -> str:
    parts = urlsplit(redis_url)
    url = urlunsplit(parts._replace(path=f"/{REDIS_DB}"))
    redis.Redis.from_url(url).flushdb()
    return url


def register_with_the_cli(env: dict[str, str]) -> tuple[Client, str]:
    """A library, its digital series, a patron with a password and a relying party, as an operator does it."""
    idp_ok("library", "add", LIBRARY, "Oslo public library", env=env)
    idp_ok("series", "reserve", LIBRARY, "--count", "100", "--digital", env=env)
    card = idp_ok("patron", "add", "--national-id", person(date(1985, 3, 12)), "--name", "Kari Nordmann",
                  "--home-library", LIBRARY, env=env)["card_number"]
    idp_ok("patron", "set-password", card, env=env, stdin=f"{PASSWORD}\n")
    rp = idp_ok("rp", "add-oidc", "Demo e-books", "--redirect-uri", CALLBACK, "--dpa-signed", "2026-01-01", env=env)
    return Client(rp["client_id"], rp["client_secret"]), card


@pytest.fixture(params=BACKENDS)
def served(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Served]:
    port = free_port()
    with ExitStack() as stack:
        if request.param == "embedded":
            settings: dict[str, str] = {}
            workers: list[str] = []  # the default: one worker without Redis
        else:
            redis_url = own_redis_db(request.getfixturevalue("redis_url"))
            stack.callback(lambda: redis.Redis.from_url(redis_url).flushdb())
            database = stack.enter_context(fresh_postgres_database("idp_serve"))
            settings = {"IDP_DATABASE_URL": database, "IDP_REDIS_URL": redis_url}
            workers = ["--workers", "2"]
        env = production_env(tmp_path, port, **settings)
        client, card = register_with_the_cli(env)
        serving = ["serve", "--host", "127.0.0.1", "--port", str(port), *workers]
        base, _ = stack.enter_context(running(serving, env, tmp_path / "serve.log"))
        yield Served(base, client, card)


def log_in(served: Served, rp: OAuth2Session, browser: Browser) -> None:
    """One patron's complete login at the platform, then everything the platform does with it."""
    url, state, verifier = start(served, rp)  # type: ignore[arg-type]
    back = callback_params(login_and_consent(browser, url, served.card))
    assert back["state"] == state and back["iss"] == served.url

    token = rp.fetch_token(f"{served.url}/token", code=back["code"], code_verifier=verifier)
    claims = verify_id_token(served, token["id_token"], served.client, "n-0S6")  # type: ignore[arg-type]
    assert claims["acr"] == "password" and claims["valid_patron"] is True
    assert rp.get(f"{served.url}/userinfo").json() == {"sub": claims["sub"], "valid_patron": True}

    renewed = rp.refresh_token(f"{served.url}/token", refresh_token=token["refresh_token"])
    assert renewed["refresh_token"] != token["refresh_token"]
    assert userinfo_status(served, renewed["access_token"]) == 200  # type: ignore[arg-type]
    spent = token_request(served, served.client, grant_type="refresh_token",  # type: ignore[arg-type]
                          refresh_token=token["refresh_token"])
    assert spent.status_code == 400 and spent.json()["error"] == "invalid_grant"

    replay = redeem(served, served.client, back["code"], verifier)  # type: ignore[arg-type]
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    assert userinfo_status(served, renewed["access_token"]) == 401  # a replay ends what the grant issued


def test_twenty_logins_through_idp_serve_in_production_all_succeed(served: Served) -> None:
    for _ in range(LOGINS):
        # Closed after each login: connections left open would hold up the server's shutdown.
        with rp_session(served, served.client) as rp, LoopbackBrowserSession() as http:  # type: ignore[arg-type]
            log_in(served, rp, Browser(http))
