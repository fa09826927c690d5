"""A consent is register data (issue 16): it survives a restart of the embedded default (its state
lives in the process's memory) and a Redis flush, and the consent page is not shown again after
either. Through ``idp serve`` in production mode, as in test_served_oidc."""

from __future__ import annotations

import re
from contextlib import ExitStack
from pathlib import Path

import pytest
import redis
import requests

from tests.conftest import BACKENDS, fresh_postgres_database
from tests.flows.test_oidc_flow import CALLBACK, PASSWORD, Browser, csrf, rp_session, start
from tests.flows.test_served_oidc import LoopbackBrowserSession, Served, own_redis_db, register_with_the_cli
from tests.serving import free_port, production_env, running

pytestmark = [pytest.mark.slow, pytest.mark.backends]


def log_in(served: Served) -> tuple[bool, requests.Response]:
    """A fresh browser's login at the relying party: whether the consent page was shown (and allowed)
    and where the IdP sent the browser in the end."""
    with rp_session(served, served.client) as rp, LoopbackBrowserSession() as http:  # type: ignore[arg-type]
        browser = Browser(http)
        url, _, _ = start(served, rp)  # type: ignore[arg-type]
        page = browser.follow(url)
        assert page.status_code == 200 and 'name="username"' in page.text
        after = browser.post(page.url, {"username": served.card, "password": PASSWORD, "csrf_token": csrf(page.text),
                                        "next": re.search(r'name="next"[^>]*value="([^"]*)"', page.text).group(1)})
        asked = after.status_code == 200 and 'name="decision"' in after.text
        if asked:
            after = browser.post(f"{served.url}/authorize/consent",
                                 {"decision": "allow", "csrf_token": csrf(after.text)})
        return asked, after


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_consent_survives_a_restart_and_a_redis_flush(backend: str, request: pytest.FixtureRequest,
                                                         tmp_path: Path) -> None:
    port = free_port()
    with ExitStack() as stack:
        settings: dict[str, str] = {}
        redis_url = None
        if backend != "embedded":
            redis_url = own_redis_db(request.getfixturevalue("redis_url"))
            stack.callback(lambda: redis.Redis.from_url(redis_url).flushdb())
            settings = {"IDP_DATABASE_URL": stack.enter_context(fresh_postgres_database("idp_consent")),
                        "IDP_REDIS_URL": redis_url}
        env = production_env(tmp_path, port, **settings)
        client, card = register_with_the_cli(env)
        serving = ["serve", "--host", "127.0.0.1", "--port", str(port)]

        with running(serving, env, tmp_path / "first.log") as (base, _):
            asked, answer = log_in(Served(base, client, card))
            assert asked and answer.is_redirect and answer.headers["Location"].startswith(CALLBACK)

        if redis_url is not None:
            redis.Redis.from_url(redis_url).flushdb()  # every session, code and counter gone
        with running(serving, env, tmp_path / "second.log") as (base, _):
            asked, answer = log_in(Served(base, client, card))
            assert not asked, "the consent page was shown again"
            assert answer.is_redirect and answer.headers["Location"].startswith(CALLBACK)
