"""A library system's access token, as the API will check it (issue 15): it lives 300 seconds, names
its system, its library and its scopes (register.read, register.write, cards, series; register.read
when none is asked for), and stops at once when its system is disabled. The HTTP side is in
tests/flows/test_client_credentials.py.
"""

from __future__ import annotations

import pytest

from idp.oidc.client_credentials import requested_scopes
from idp.oidc.errors import InvalidScope
from idp.registry import libraries, library_systems
from idp.services import Services
from tests.conftest import FakeClock

OSLO = "NO-2030000"


def issued(services: Services) -> tuple[str, str, int]:
    with services.registry("test") as reg:
        library = libraries.add_library(reg, OSLO, "Oslo public library")
        system, _ = library_systems.add(reg, OSLO, "Bibliofil")
        client_id, library_id = system.client_id, library.id
    token, _ = services.oidc.library_clients.issue(client_id, library_id, OSLO, ("register.read", "series"))
    return token, client_id, library_id


def test_a_token_names_its_system_library_and_scopes_for_300_seconds(services: Services, clock: FakeClock) -> None:
    token, client_id, library_id = issued(services)
    clients = services.oidc.library_clients
    clock.advance(seconds=299)
    access = clients.introspect(token)
    assert access is not None
    assert (access.client_id, access.library_id, access.isil) == (client_id, library_id, OSLO)
    assert access.scopes == ("register.read", "series")
    clock.advance(seconds=1)
    assert clients.introspect(token) is None


def test_disabling_the_system_stops_its_tokens_and_enabling_brings_them_back(services: Services) -> None:
    token, client_id, _ = issued(services)
    clients = services.oidc.library_clients
    with services.registry("test") as reg:
        library_systems.disable(reg, client_id)
    assert clients.introspect(token) is None
    with services.registry("test") as reg:
        library_systems.enable(reg, client_id)
    assert clients.introspect(token) is not None  # disabled is a switch, the token's own life is 300 s


@pytest.mark.parametrize("token", ["", "x" * 10_000, "not-a-token", None])
def test_an_unknown_or_malformed_token_is_nothing(services: Services, token: str) -> None:
    issued(services)
    assert services.oidc.library_clients.introspect(token) is None


def test_the_four_scopes_and_the_default() -> None:
    assert requested_scopes(None) == ("register.read",)
    assert requested_scopes("") == ("register.read",)
    assert set(requested_scopes("series cards register.write register.read")) == {
        "register.read", "register.write", "cards", "series"}
    for unknown in ("register.read admin", "openid", "register"):
        with pytest.raises(InvalidScope):
            requested_scopes(unknown)
