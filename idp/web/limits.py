"""Brute-force limits on the login form and the partners' verify API (flask-limiter; Redis
storage in production).

Per IP: at most ``IDP_LOGIN_LIMIT_PER_IP`` login attempts (default 30 a minute, 300 an hour). Per
account: at most ``FAILURES_PER_DAY`` wrong guesses in any 24 hours, however many IPs they come
from; then the card is locked until the oldest failure is a day old, and the patron is notified
once. Only failures count (a correct login does not use up the allowance), but while locked even the
right password is refused: otherwise the lock would tell an attacker which guess was right. With a
4-digit PIN's 10,000 values this caps an attacker at 10 guesses a day: about 3 years on average to
find one. The login form, POST /api/v1/verify and the card's password when linking a university
account (POST /federation/link) share each card's allowance, so trying several gains nothing. The
verify API is also limited per partner and sending address (``IDP_VERIFY_LIMIT_PER_CLIENT``),
higher than a per-IP login limit could be: a door or platform sends every patron's check from one
address. Each library system has one allowance for all its register API calls
(``IDP_API_LIMIT_PER_SYSTEM`` or its own, ``idp library-system update --rate-limit``), keyed by the
system its bearer token authenticates. Flask-Limiter looks only at the views limit_views marks: every
other request passes without its hooks.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from functools import partial, wraps
from typing import Any

from flask import Flask, Response, g, request
from flask_limiter import Limiter, RequestLimit
from flask_limiter.util import get_remote_address

from idp.api import BLUEPRINTS, caller, verify
from idp.auth import lockout
from idp.auth.password import patron_key
from idp.oidc.provider import basic_credentials
from idp.registry.cards import find_card
from idp.settings import Settings
from idp.web import services

_LIMITED = "idp-limited-endpoints"
FAILURES_PER_DAY = 10
PER_ACCOUNT = f"{FAILURES_PER_DAY} per day"
_NOTICE_TTL = 24 * 3600
_ACCOUNT_KEY = re.compile(r"login:(patron|card):([A-Z0-9]+)(?:/|$)")


def _typed_card() -> str:
    if request.is_json:
        body = request.get_json(silent=True)
        card = body.get("card_number") if isinstance(body, dict) else None
        return card if isinstance(card, str) else ""
    return request.form.get("username", "")


def _account_key() -> str:
    with services().registry("web") as reg:
        return "login:" + patron_key(reg, _typed_card())


def _failed(response: Response) -> bool:
    # The form: success and PIN-on-web redirect or teach, only a wrong password answers 401.
    # The API: a wrong secret answers valid_patron false (idp.web.api marks it).
    return response.status_code == 401 or bool(g.get("credential_failed"))


def _client_key() -> str:
    """The partner's id as sent, with the sender's address: anyone can send a partner's id, so
    failed attempts from elsewhere fill a bucket of their own, never the partner's."""
    try:
        client_id = basic_credentials(request.headers.get("Authorization", ""))[0][:100]
    except Exception:  # noqa: BLE001 - no usable credentials: refused by the view anyway
        client_id = "-"
    return f"client:{client_id}@{get_remote_address()}"


def _system_key() -> str:
    """The library system the bearer token authenticates: all its calls share one allowance, whichever
    token or address they come with. A request no system authenticates is refused by the view; until
    then it counts against its address."""
    access = caller.presented()
    return f"system:{access.client_id}" if access is not None else f"unauthenticated@{get_remote_address()}"


def _system_limit(default: str) -> str:
    access = caller.presented()
    return access.rate_limit if access is not None and access.rate_limit else default


def api_endpoints(app: Flask) -> list[str]:
    """The register API's endpoints: every view of idp.api's blueprints but the partners' verify call,
    which has limits of its own."""
    names = {blueprint.name for blueprint in BLUEPRINTS if blueprint is not verify.bp}
    return sorted(endpoint for endpoint in app.view_functions if endpoint.partition(".")[0] in names)


def _notify_locked(limit: RequestLimit) -> None:
    # The limiter's key embeds ours: "login:patron:<id>" or "login:card:<national number>".
    match = _ACCOUNT_KEY.search(limit.key)
    if match is None:
        return
    svc = services()
    with svc.registry("web") as reg:
        kind, value = match.group(1), match.group(2)
        if kind == "patron":
            patron_id: int | None = int(value)
        else:
            card = find_card(reg, value)
            patron_id = card.patron_id if card is not None else None
        # Unknown cards are locked all the same, but there is nobody to tell.
        if patron_id is None:
            return
        lockout.record_lock(svc.state, patron_id, limit.reset_at, int(time.time()))  # for the desk (idp.api)
        if svc.state.incr(f"lock-notice:{patron_id}", _NOTICE_TTL) != 1:
            return
        reg.notify(patron_id, "login_locked", failures=FAILURES_PER_DAY)
        reg.audit("login.locked", patron_id=patron_id)


def storage_uri(settings: Settings) -> str:
    return settings.redis_url or "memory://"


def install(app: Flask, settings: Settings) -> Limiter:
    # The key prefix: IDP_REDIS_PREFIX's, unless the app config names one (tests give each app its own).
    app.config.setdefault("RATELIMIT_KEY_PREFIX", f"{settings.redis_prefix}limits")
    # No X-RateLimit-* headers on every response (each costs Redis round trips); a 429 carries
    # Retry-After from idp.web.errors.
    limiter = Limiter(get_remote_address, app=app, storage_uri=storage_uri(settings), strategy="moving-window",
                      headers_enabled=False)
    app.extensions["idp-limiter"] = limiter
    connection = getattr(limiter.storage, "get_connection", None)  # Redis storage (memory has none)
    if connection is not None:
        app.extensions["idp"].closers.append(lambda: connection().close())
    _only_where_limited(app, limiter, app.extensions.setdefault(_LIMITED, set()))
    per_account = limiter.shared_limit(PER_ACCOUNT, scope="account", key_func=_account_key, deduct_when=_failed,
                                       on_breach=_notify_locked)
    # Linking a university account asks for the card's password too: the same guesses, the same limits.
    limit_views(app, ["login.login_submit", "federation.link_submit"], per_account,
                limiter.limit(settings.login_limit_per_ip))
    limit_views(app, ["api.verify_card"], per_account,
                limiter.limit(settings.verify_limit_per_client, key_func=_client_key))
    # One allowance per library system across every register API call (IDP_API_LIMIT_PER_SYSTEM, or the
    # system's own from `idp library-system update --rate-limit`).
    limit_views(app, api_endpoints(app), limiter.shared_limit(partial(_system_limit, settings.api_limit_per_system),
                                                              scope="api-system", key_func=_system_key))
    return limiter


def _only_where_limited(app: Flask, limiter: Limiter, limited: set[str]) -> None:
    """Run the limiter's request hooks only for the endpoints limit_views marks.

    Flask-Limiter hooks every request (check, conditional deduction, clean-up) to find the
    limits that apply; ours are all on marked views, so for every other request (the token
    endpoint, JWKS, pages) that work finds nothing. It is a tenth of a millisecond on a served
    request, a quarter of a hello-world's, so it is skipped there.
    """
    def owned(hook: Callable[..., Any]) -> bool:
        return getattr(hook, "__self__", None) is limiter or (isinstance(hook, partial) and limiter in hook.args)

    def guarded(hook: Callable[..., Any], passthrough: bool) -> Callable[..., Any]:
        @wraps(hook)
        def guard(*args: Any) -> Any:
            if request.endpoint in limited:
                return hook(*args)
            return args[0] if passthrough else None  # an after-request hook hands the response on
        return guard

    found = 0
    for registry, passthrough in ((app.before_request_funcs, False), (app.after_request_funcs, True),
                                  (app.teardown_request_funcs, False)):
        hooks = registry.get(None, [])
        for index, hook in enumerate(hooks):
            if owned(hook):
                hooks[index] = guarded(hook, passthrough)
                found += 1
    if found != 3:
        # A Flask-Limiter release that hooks requests differently: stop here, not at a missed limit.
        raise RuntimeError(f"expected flask-limiter's three request hooks, found {found}")


def limit_views(app: Flask, endpoints: Iterable[str], *limits: Callable[[Any], Any]) -> None:
    """Wrap each endpoint's view in ``limits`` (the first outermost) and mark it as limited.

    A decorated view is checked by the wrapper the decorator returns, so the wrapper must be what
    the app calls; limits are applied here because each app has its own limiter.
    """
    limited: set[str] = app.extensions.setdefault(_LIMITED, set())
    for endpoint in endpoints:
        view = app.view_functions[endpoint]
        for limit in reversed(limits):
            view = limit(view)
        app.view_functions[endpoint] = view
        limited.add(endpoint)
