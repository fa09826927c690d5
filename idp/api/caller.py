"""Who is calling the API: a library system with a bearer token from the client credentials grant.

Every view names the scope it needs (``@requires("register.read")``); the token is introspected on
each call, so a disabled system is refused at once, and the system's IP allow-list holds here as at
the token endpoint. Errors follow RFC 6750 (WWW-Authenticate) inside problem documents.

The library's data processing agreement is checked here too (idp.registry.agreements.dpa_state):
42 days after its deadline without one, every call is refused (403 dpa-missing); before that, once
the deadline has come, ``add_warnings`` puts the warning into every successful answer's body.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any, TypeVar, cast

from flask import Response, g, request

from idp.api.problems import Problem, from_domain
from idp.errors import NotAllowed
from idp.oidc.client_credentials import LibraryAccess
from idp.registry import agreements
from idp.registry.dates import oslo_date
from idp.web import services

F = TypeVar("F", bound=Callable[..., Any])
_REALM = 'Bearer realm="patron-idp register API"'


@dataclass(frozen=True)
class Caller:
    """The library system behind this request, and the library it acts for."""

    access: LibraryAccess

    @property
    def client_id(self) -> str:
        return self.access.client_id

    @property
    def isil(self) -> str:
        return self.access.isil

    @property
    def library_id(self) -> int:
        return self.access.library_id

    @property
    def actor(self) -> str:
        """The audit trail's name for this caller: the system, which names its library."""
        return f"library-system:{self.access.client_id}"


def current() -> Caller:
    """The caller of the request being served (set by ``requires``)."""
    caller: Caller = g.api_caller
    return caller


def _unauthorized(detail: str, error: str | None = None) -> Problem:
    challenge = _REALM + (f', error="{error}"' if error else "")
    return Problem(401, "unauthorized", "Authentication is required.", detail,
                   headers={"WWW-Authenticate": challenge})


def authenticate(scope: str) -> Caller:
    """The caller, if its token is live, allows ``scope`` and comes from an allowed address."""
    access = _introspected()
    if scope not in access.scopes:
        raise Problem(403, "insufficient-scope", "This is not allowed.",
                      f"This call needs the scope {scope}; ask for it at the token endpoint.",
                      headers={"WWW-Authenticate": f'{_REALM}, error="insufficient_scope", scope="{scope}"'})
    _check_agreement(access.library_id)
    return Caller(access)


def presented() -> LibraryAccess | None:
    """What this request's token allows, or None when it does not authenticate a system (the view will
    refuse it). The rate limit asks before the view runs; the token is introspected once either way."""
    try:
        return _introspected()
    except Problem:
        return None


def _introspected() -> LibraryAccess:
    if "api_access" not in g:
        try:
            g.api_access = _introspect()
        except Problem as exc:
            g.api_access = exc
    found: LibraryAccess | Problem = g.api_access
    if isinstance(found, Problem):
        raise found
    return found


def _introspect() -> LibraryAccess:
    header = request.headers.get("Authorization", "")
    kind, _, token = header.partition(" ")
    if not header:
        raise _unauthorized("Send an access token from the client credentials grant: Authorization: Bearer TOKEN.")
    if kind.lower() != "bearer" or not token.strip():
        raise _unauthorized("Use the Bearer scheme with an access token.", "invalid_request")
    try:
        access = services().oidc.library_clients.introspect(token.strip(), request.remote_addr or "")
    except NotAllowed as exc:
        raise Problem(403, "address-not-allowed", "This is not allowed.", exc.message) from None
    if access is None:
        raise _unauthorized("The access token is unknown, expired or revoked: get a new one.", "invalid_token")
    return access


def _check_agreement(library_id: int) -> None:
    """Refuse a library whose DPA is long overdue; note the warning for one that is overdue."""
    found = services().read(agreements.DPA_COLUMNS, {"library_id": library_id})
    if not found:
        return  # the library left the register: introspect has refused its system already
    state = agreements.dpa_state(found[0], oslo_date(services().clock()))
    try:
        state.require()
    except agreements.DpaMissing as exc:
        raise from_domain(exc) from None
    warning = state.warning()
    if warning is not None:
        g.api_warnings = [warning]


def add_warnings(response: Response) -> Response:
    """After a view of the register API: a successful JSON object answer carries the notes for this
    library (``Answer.warnings``) in its body, not in the obsolete HTTP Warning header."""
    notes: list[str] | None = g.get("api_warnings")
    if not notes or not 200 <= response.status_code < 300 or not response.is_json:
        return response
    data = response.get_json(silent=True)
    if isinstance(data, dict):
        data["warnings"] = [*(data.get("warnings") or []), *notes]
        response.set_data(json.dumps(data))
    return response


def requires(scope: str) -> Callable[[F], F]:
    """The view runs only for a caller whose token allows ``scope``."""
    def decorate(view: F) -> F:
        @wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            g.api_caller = authenticate(scope)
            return view(*args, **kwargs)
        return cast(F, guarded)
    return decorate
