"""The protocol requests waiting in the session for a login (idp.auth.logins.PendingRequest): the
OIDC and SAML views store theirs here, and the login methods read the level and freshness asked for."""

from __future__ import annotations

from flask import session

from idp.assurance import LEVELS, WEB_MINIMUM, rank
from idp.auth.logins import PendingRequest, Protocol

# The session key of each protocol's waiting request (idp.web.oidc.PENDING, idp.web.saml.PENDING).
SESSION_KEYS: dict[Protocol, str] = {"oidc": "oidc_pending", "saml": "saml_pending"}


def store(request: PendingRequest) -> None:
    session[SESSION_KEYS[request.protocol]] = request.to_dict()


def load(protocol: Protocol) -> PendingRequest | None:
    stored = session.get(SESSION_KEYS[protocol])
    return PendingRequest.from_dict(protocol, stored) if stored is not None else None


def waiting() -> list[PendingRequest]:
    """The requests waiting for this login: an OIDC relying party's, a SAML service provider's."""
    found = (load(protocol) for protocol in SESSION_KEYS)
    return [request for request in found if request is not None]


def needed_level() -> str:
    """The level the waiting service needs (the highest, should two wait), else the web minimum."""
    levels = [request.needed for request in waiting() if request.needed in LEVELS]
    return max(levels, key=rank) if levels else WEB_MINIMUM


def wants_fresh_upstream() -> bool:
    """A service asking for a fresh login (prompt=login, max_age, ForceAuthn) gets one upstream too."""
    return any(request.fresh_upstream for request in waiting())
