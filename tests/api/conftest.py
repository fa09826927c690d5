"""The register API as a library system uses it: over real HTTP (tests/flows' live server), with
access tokens from the token endpoint fetched by authlib, the independent OAuth client.

``desk`` is Oslo public library's system with every scope; ``Desk.call`` sends one request and
returns requests' response. Tests that need another library or fewer scopes make their own with
``make_desk``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session

from idp.registry import libraries, library_systems
from idp.registry.models import LibrarySystem
from tests.flows.conftest import LiveIdp, live  # noqa: F401 - the live server fixture, for these tests too
from tests.unit.factories import library

OSLO = "NO-2030000"
BERGEN = "NO-1201000"
ALL_SCOPES = "register.read register.write cards series"


class Desk:
    """One library system with a bearer token: what a library's own software holds."""

    def __init__(self, live: LiveIdp, isil: str, client_id: str, token: str) -> None:
        self.live, self.isil, self.client_id, self.token = live, isil, client_id, token
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {token}"

    def call(self, method: str, path: str, *, json: Any = None, headers: dict[str, str] | None = None,
             **kwargs: Any) -> requests.Response:
        return self.http.request(method, f"{self.live.url}/api/v1{path}", json=json, headers=headers, timeout=30,
                                 **kwargs)

    def system(self) -> LibrarySystem:
        with self.live.services.registry("test") as reg:
            found = library_systems.get(reg, self.client_id)
            reg.session.expunge(found)
            return found


def ensure_library(live: LiveIdp, isil: str, name: str) -> None:
    with live.services.registry("test") as reg:
        if not any(found.isil == isil for found in libraries.list_libraries(reg)):
            library(reg, isil, name)


def token_for(live: LiveIdp, client_id: str, secret: str, scope: str) -> str:
    session = OAuth2Session(client_id, secret, scope=scope, token_endpoint_auth_method="client_secret_basic")
    return str(session.fetch_token(f"{live.url}/token", grant_type="client_credentials")["access_token"])


MakeDesk = Callable[..., Desk]


@pytest.fixture
def make_desk(live: LiveIdp) -> MakeDesk:
    def make(isil: str = OSLO, name: str = "Oslo", scope: str = ALL_SCOPES) -> Desk:
        ensure_library(live, isil, name)
        with live.services.registry("test") as reg:
            system, secret = library_systems.add(reg, isil, f"{name} desk system")
            client_id = system.client_id
        assert secret is not None
        return Desk(live, isil, client_id, token_for(live, client_id, secret, scope))
    return make


@pytest.fixture
def desk(make_desk: MakeDesk) -> Desk:
    return make_desk()
