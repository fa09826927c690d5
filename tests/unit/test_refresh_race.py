"""Refresh tokens: single use under concurrency, bound to their client, dead once their grant is."""

from __future__ import annotations

import threading

import pytest
from pyop.exceptions import InvalidRefreshToken, InvalidScope
from pyop.message import AuthorizationRequest

from idp.services import Services
from idp.state import Batch, Conflict

pytestmark = pytest.mark.backends  # single use under concurrency, decided by the state store


def _refresh_token(services: Services, client_id: str = "client-a") -> str:
    authz = services.oidc.provider.authz_state
    sub = services.oidc.subjects.subject(1, client_id)
    request = AuthorizationRequest(client_id=client_id, scope="openid", response_type="code",
                                   redirect_uri="https://rp.example/cb")
    return authz.create_refresh_token(authz.create_access_token(request, sub).value)


def _refresh(services: Services, token: str, client_id: str = "client-a") -> str:
    """'refreshed', or why not; as the token endpoint does, the batch is committed after a success."""
    with services.state.batch() as batch:
        try:
            services.oidc.provider.authz_state.use_refresh_token(token, client_id=client_id)
            batch.commit()
        except (InvalidRefreshToken, Conflict) as exc:
            return f"{type(exc).__name__}: {exc}"
        return "refreshed"


def test_one_refresh_token_presented_twice_at_once_is_honoured_once(services: Services,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    authz = services.oidc.provider.authz_state
    refresh_token = _refresh_token(services)
    # Both requests have checked the token and made new ones before either commits.
    both_ready = threading.Barrier(2, timeout=10)
    original = Batch.commit

    def commit_together(self: Batch) -> None:
        both_ready.wait()
        original(self)

    monkeypatch.setattr(Batch, "commit", commit_together)
    outcomes: list[str] = []
    threads = [threading.Thread(target=lambda: outcomes.append(_refresh(services, refresh_token)))
               for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    assert sorted(outcomes) == ["Conflict: a key this batch consumes was used by another request", "refreshed"]
    # Only the winner's tokens exist: the loser wrote nothing.
    assert refresh_token not in authz.refresh_tokens
    assert services.state.get("oidc:rt:" + refresh_token) is None


def test_a_refresh_token_presented_by_another_client_is_refused_and_stays_with_its_own(services: Services) -> None:
    refresh_token = _refresh_token(services)
    assert _refresh(services, refresh_token, client_id="client-b") == \
        "InvalidRefreshToken: this refresh token was issued to another client"
    assert _refresh(services, refresh_token) == "refreshed"
    assert _refresh(services, refresh_token) == "UnknownRefreshToken: unknown or already used refresh token"


def test_a_refresh_token_whose_access_token_was_revoked_no_longer_works(services: Services) -> None:
    authz = services.oidc.provider.authz_state
    refresh_token = _refresh_token(services)
    authz.revoke(authz.refresh_tokens[refresh_token]["access_token"], None)
    assert _refresh(services, refresh_token) == "InvalidRefreshToken: the grant behind this refresh token was revoked"


def test_a_rotation_replaces_both_tokens_and_a_failed_one_changes_nothing(services: Services) -> None:
    authz = services.oidc.provider.authz_state
    refresh_token = _refresh_token(services)
    old_access = authz.refresh_tokens[refresh_token]["access_token"]
    with services.state.batch() as batch:
        access, new_refresh = authz.use_refresh_token(refresh_token, client_id="client-a")
        batch.commit()
    assert refresh_token not in authz.refresh_tokens and old_access not in authz.access_tokens
    assert authz.refresh_tokens[new_refresh]["access_token"] == access.value
    assert authz.access_tokens[access.value]["client_id"] == "client-a"

    # A refresh refused after the checks (a scope beyond the grant) spends nothing and writes nothing.
    with services.state.batch(), pytest.raises(InvalidScope, match="non-granted"):
        authz.use_refresh_token(new_refresh, scope=["openid", "email"], client_id="client-a")
    assert authz.refresh_tokens[new_refresh]["access_token"] == access.value
    assert access.value in authz.access_tokens
    assert _refresh(services, new_refresh) == "refreshed"


def test_a_refresh_must_name_its_client(services: Services) -> None:
    with services.state.batch(), pytest.raises(InvalidRefreshToken, match="name the client"):
        services.oidc.provider.authz_state.use_refresh_token(_refresh_token(services))
