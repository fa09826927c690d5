"""What a completed login is, and what a service waiting for one needs: plain data, no Flask.

Every login method (password, step-up, ID-porten, a federation) ends in one ``LoggedIn``, which
idp.web.logged_in writes to the session; the OIDC and SAML views park a ``PendingRequest`` there
while the patron logs in, and the login methods read it (which level, whether fresh) from it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

Protocol = Literal["oidc", "saml"]
# The session keys of a login (kept as they were, so stored sessions stay readable). "sid" is the
# login session (idp.web.login_session): it survives a step-up and a new login in the same browser.
_PATRON, _ACR, _AMR, _AUTH_TIME, _MUST_CHANGE, _SID = "patron_id", "acr", "amr", "auth_time", "must_change", "sid"
LOWEST_ACR = "pin"  # a session that somehow lacks its level counts as the lowest, never as more


@dataclass(frozen=True)
class Upstream:
    """The upstream a login went through (``method``: the login method's registered name) and what
    its logout needs (``state``, JSON: ID-porten's sealed id_token and session id, a federation's name)."""

    method: str
    state: Any = None


@dataclass(frozen=True)
class LoggedIn:
    patron_id: int
    acr: str
    amr: tuple[str, ...]
    auth_time: int
    must_change: bool = False
    upstream: Upstream | None = None
    login_session: str | None = None  # the login session id; None until first used

    def stepped_up(self, acr: str, method: str, now: int) -> LoggedIn:
        """The same login with a second factor: a higher level, ``method`` added once, a new auth_time."""
        amr = tuple(m for m in self.amr if m != method)
        return replace(self, acr=acr, amr=(*amr, method), auth_time=now)

    def stepped_down(self, acr: str, method: str, fallback: str) -> LoggedIn:
        """The same login without ``method`` (a second factor removed): a lower level; ``fallback`` if none is left."""
        return replace(self, acr=acr, amr=tuple(m for m in self.amr if m != method) or (fallback,))

    def to_fields(self) -> dict[str, Any]:
        """The session's keys for this login (the upstream's under its method's name)."""
        fields: dict[str, Any] = {_PATRON: self.patron_id, _ACR: self.acr, _AMR: list(self.amr),
                                  _AUTH_TIME: self.auth_time, _MUST_CHANGE: self.must_change}
        if self.login_session is not None:
            fields[_SID] = self.login_session
        if self.upstream is not None:
            fields[self.upstream.method] = self.upstream.state
        return fields

    @classmethod
    def from_fields(cls, data: Mapping[str, Any], upstream_methods: tuple[str, ...] = ()) -> LoggedIn | None:
        """The login a session holds, or None; ``upstream_methods``: the names whose key may hold upstream state."""
        patron_id = data.get(_PATRON)
        if patron_id is None:
            return None
        upstream = next((Upstream(name, data[name]) for name in upstream_methods if data.get(name) is not None), None)
        sid = data.get(_SID)
        return cls(patron_id=int(patron_id), acr=str(data.get(_ACR) or LOWEST_ACR), amr=tuple(data.get(_AMR) or ()),
                   auth_time=int(data.get(_AUTH_TIME) or 0), must_change=bool(data.get(_MUST_CHANGE)),
                   upstream=upstream, login_session=sid if isinstance(sid, str) else None)


@dataclass(frozen=True)
class PendingRequest:
    """A relying party's request waiting for the patron to log in (OIDC authorize, SAML AuthnRequest).

    ``fresh``: a new login is asked for (prompt=login, max_age=0, ForceAuthn); ``max_age``: seconds
    since the last login at most (OIDC); ``resume``: the endpoint that continues the request.
    ``payload``: the protocol's own fields (OIDC's parameters, SAML's request, the claims to release).
    """

    protocol: Protocol
    needed: str
    since: int
    fresh: bool = False
    max_age: int | None = None
    payload: Mapping[str, Any] = field(default_factory=dict)

    @property
    def resume(self) -> str:
        return f"{self.protocol}.resume"

    @property
    def fresh_upstream(self) -> bool:
        """Whether an upstream login (ID-porten, a federation) must be fresh too: max_age counts as fresh there."""
        return self.fresh or self.max_age is not None

    def to_dict(self) -> dict[str, Any]:
        return {**self.payload, "protocol": self.protocol, "needed": self.needed, "since": self.since,
                "fresh": self.fresh, "max_age": self.max_age}

    def with_payload(self, **payload: Any) -> PendingRequest:
        return replace(self, payload={**self.payload, **payload})

    @classmethod
    def from_dict(cls, protocol: Protocol, data: Mapping[str, Any]) -> PendingRequest | None:
        """The stored request; also the shapes stored before this class (SAML's level inside its request)."""
        if not isinstance(data, Mapping):
            return None
        known = {"protocol", "needed", "since", "fresh", "max_age"}
        payload = {key: value for key, value in data.items() if key not in known}
        request = data.get("request")
        saml: Mapping[str, Any] = request if isinstance(request, Mapping) else {}
        needed = data.get("needed") or saml.get("needed")
        if not isinstance(needed, str):
            return None
        fresh = data.get("fresh") if "fresh" in data else saml.get("force_authn")
        max_age = data.get("max_age")
        if "max_age" not in data and isinstance(data.get("params"), Mapping) and "max_age" in data["params"]:
            max_age = _int_or_none(data["params"]["max_age"])
        return cls(protocol=protocol, needed=needed, since=int(data.get("since") or 0), fresh=bool(fresh),
                   max_age=_int_or_none(max_age), payload=payload)


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None
