"""IDP_REDIS_PREFIX (issue 16): two deployments sharing one Redis server never see each other's
sessions, state or rate-limit counters."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from flask import Flask

from idp import create_app
from idp.services import build_services
from idp.settings import Settings

pytestmark = pytest.mark.backends


@pytest.fixture
def deployments(settings: Settings) -> Iterator[tuple[Flask, Flask]]:
    if not settings.redis_url:
        pytest.skip("the embedded default keeps its state in the process: nothing is shared")
    run = uuid.uuid4().hex
    apps = []
    for name in ("staging", "test"):
        # As an operator sets it: the setting alone, no test-only app config.
        services = build_services(settings.model_copy(update={"redis_prefix": f"idp-test:{run}:{name}:"}))
        apps.append(create_app(services=services))
    yield apps[0], apps[1]
    for app in apps:
        app.extensions["idp"].close()


def test_the_prefix_defaults_to_todays() -> None:
    assert Settings.model_fields["redis_prefix"].default == "idp:"


def test_two_deployments_on_one_redis_do_not_see_each_others_sessions(deployments: tuple[Flask, Flask]) -> None:
    staging, test = deployments
    with staging.test_client() as browser:
        with browser.session_transaction() as session:
            session["patron_id"] = 7
        cookie = browser.get_cookie("idp_session")
        assert cookie is not None
        with browser.session_transaction() as session:
            assert session.get("patron_id") == 7  # staging reads its own session back
    with test.test_client() as intruder:
        intruder.set_cookie("idp_session", cookie.value)
        with intruder.session_transaction() as session:
            assert "patron_id" not in session


def test_two_deployments_keep_their_state_and_counters_apart(deployments: tuple[Flask, Flask]) -> None:
    staging, test = deployments
    one, other = staging.extensions["idp"].state, test.extensions["idp"].state
    one.put("oidc:grant:abc", b"staging's", 60)
    assert other.get("oidc:grant:abc") is None
    assert one.incr("lock-notice:1", 60) == 1 and other.incr("lock-notice:1", 60) == 1
    assert staging.config["RATELIMIT_KEY_PREFIX"] != test.config["RATELIMIT_KEY_PREFIX"]
    assert staging.config["RATELIMIT_KEY_PREFIX"].endswith(":staging:limits")
