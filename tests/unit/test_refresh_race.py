"""Two requests presenting one refresh token at the same moment: exactly one gets new tokens."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from pyop.authz_state import AuthorizationState
from pyop.exceptions import InvalidRefreshToken
from pyop.message import AuthorizationRequest

from idp.services import Services


def test_one_refresh_token_presented_twice_at_once_is_honoured_once(services: Services,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    authz = services.oidc.provider.authz_state
    sub = services.oidc.subjects.subject(1, "client-a")
    request = AuthorizationRequest(client_id="client-a", scope="openid", response_type="code",
                                   redirect_uri="https://rp.example/cb")
    refresh_token = authz.create_refresh_token(authz.create_access_token(request, sub).value)

    # Both requests have read and checked the token before either goes on to rotate it.
    both_checked = threading.Barrier(2, timeout=10)
    original = AuthorizationState.use_refresh_token

    def checked_then_wait(self: Any, token: str, scope: Any = None) -> Any:
        result = original(self, token, scope)
        both_checked.wait()
        return result

    monkeypatch.setattr(AuthorizationState, "use_refresh_token", checked_then_wait)
    outcomes: list[str] = []

    def refresh() -> None:
        with services.state.batch() as batch:
            try:
                authz.use_refresh_token(refresh_token)
            except InvalidRefreshToken:
                outcomes.append("refused")
                return
            batch.commit()
            outcomes.append("refreshed")

    threads = [threading.Thread(target=refresh) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    assert sorted(outcomes) == ["refreshed", "refused"]
