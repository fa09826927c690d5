"""Per-system rate limits (issue 15): every register API call counts against its library system's one
allowance (IDP_API_LIMIT_PER_SYSTEM, or the system's own from `idp library-system update --rate-limit`),
whatever the operation or token; past it the answer is a 429 problem document with Retry-After."""

from __future__ import annotations

import pytest
import requests
from sqlalchemy import func, select

from idp.registry import library_systems
from idp.registry.models import CardSeries
from idp.settings import Settings
from tests.api.conftest import ALL_SCOPES, BERGEN, Desk, MakeDesk

LIMIT = 5


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"api_limit_per_system": f"{LIMIT} per minute"})


def _calls(desk: Desk, n: int) -> list[int]:
    """n calls spread over the API's operations."""
    calls = [("GET", "/series", None), ("POST", "/patrons/lookup", {"card_number": "N999999999"}),
             ("GET", "/patrons/1", None)]
    return [desk.call(*calls[i % len(calls)][:2], json=calls[i % len(calls)][2]).status_code for i in range(n)]


def _series_count(desk: Desk) -> int:
    with desk.live.services.registry("test") as reg:
        return int(reg.session.scalar(select(func.count()).select_from(CardSeries)) or 0)


def _assert_limited(answer: requests.Response) -> None:
    assert answer.status_code == 429, answer.text
    assert answer.headers["Content-Type"] == "application/problem+json"
    assert answer.json()["type"].endswith("/too-many-requests")
    assert 1 <= int(answer.headers["Retry-After"]) <= 61  # a minute, rounded up


@pytest.mark.backends  # the allowance lives in Redis in production
def test_every_operation_counts_against_one_allowance_per_system(desk: Desk, make_desk: MakeDesk) -> None:
    assert 429 not in _calls(desk, LIMIT)
    _assert_limited(desk.call("GET", "/series"))
    before = _series_count(desk)
    _assert_limited(desk.call("POST", "/series", json={"count": 1, "usage": "printed"}))
    assert _series_count(desk) == before  # refused before the view: nothing reserved
    # Another system, even of the same library, has its own allowance.
    assert 429 not in _calls(make_desk(), LIMIT)
    assert 429 not in _calls(make_desk(isil=BERGEN, name="Bergen"), LIMIT)


def test_a_new_token_does_not_reset_the_allowance(desk: Desk) -> None:
    assert 429 not in _calls(desk, LIMIT)
    clients = desk.live.services.oidc.library_clients
    system = desk.system()
    token, _ = clients.issue(desk.client_id, system.library_id, desk.isil, tuple(ALL_SCOPES.split()))
    again = Desk(desk.live, desk.isil, desk.client_id, token)
    _assert_limited(again.call("GET", "/series"))


@pytest.mark.backends
def test_a_systems_own_limit_replaces_the_default(desk: Desk, make_desk: MakeDesk) -> None:
    busy, quiet = make_desk(), make_desk()
    with desk.live.services.registry("test") as reg:
        library_systems.set_rate_limit(reg, busy.client_id, f"{LIMIT * 2} per minute")
        library_systems.set_rate_limit(reg, quiet.client_id, "2 per minute")
    assert 429 not in _calls(busy, LIMIT * 2)
    _assert_limited(busy.call("GET", "/series"))
    assert 429 not in _calls(quiet, 2)
    _assert_limited(quiet.call("GET", "/series"))


def test_unauthenticated_calls_are_refused_not_counted_against_a_system(desk: Desk) -> None:
    stranger = requests.Session()
    for _ in range(LIMIT):
        assert stranger.get(f"{desk.live.url}/api/v1/series", headers={"Authorization": "Bearer nope"},
                            timeout=30).status_code == 401
    assert 429 not in _calls(desk, LIMIT)


def test_the_verify_call_and_the_token_endpoint_are_not_counted(desk: Desk, make_desk: MakeDesk) -> None:
    # make_desk fetches a token at /token for each system: tokens do not use up API calls.
    for _ in range(LIMIT + 1):
        make_desk()
    assert 429 not in _calls(desk, LIMIT)
