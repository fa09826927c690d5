"""How errors reach a browser or an API client: a clear message, never internals.

Routing errors (404, 405) never reach a blueprint's handler, so everything is handled at the
app level and the format is chosen by the URL: JSON for machine surfaces, a page otherwise.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import redis
from flask import Flask, Response, current_app, jsonify, make_response, render_template, request
from flask.json.provider import DefaultJSONProvider
from flask_babel import gettext as _
from flask.typing import ResponseReturnValue
from sqlalchemy import exc as db_errors
from werkzeug.exceptions import HTTPException, InternalServerError

from idp.api import problems
from idp.errors import IdpError

log = logging.getLogger("idp.web")
JSON_PREFIXES = ("/api/", "/healthz", "/.well-known/", "/jwks", "/token", "/userinfo", "/revoke", "/introspect")
# A browser brings SAML messages: under /saml/ errors are pages, whatever a JSON prefix might match.
PAGE_PREFIXES = ("/saml/",)
# The register API's errors are problem documents (idp.api.problems), except the older verify call's.
PROBLEM_PREFIX = "/api/v1/"
CLASSIC_JSON_PATHS = ("/api/v1/verify",)
# OAuth endpoints answer errors as RFC 6749 does: error and error_description.
OAUTH_PREFIXES = ("/token", "/userinfo", "/revoke", "/introspect")
# Seconds a client should wait during an outage of Redis or the database before trying again.
RETRY_AFTER = 30
# What an outage of Redis or the database raises; DBAPIError only when is_outage says so.
OUTAGE_ERRORS: tuple[type[Exception], ...] = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError,
                                              db_errors.DBAPIError, db_errors.TimeoutError)


class BoundedJSONProvider(DefaultJSONProvider):
    """JSON too deeply nested for the parser is malformed input like any other: a ValueError, so
    ``request.get_json(silent=True)`` yields None and the caller answers 400 (not a RecursionError's 500)."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        try:
            return super().loads(s, **kwargs)
        except RecursionError:
            raise ValueError("JSON nested too deeply") from None


def _wants_json() -> bool:
    return request.path.startswith(JSON_PREFIXES) and not request.path.startswith(PAGE_PREFIXES)


def is_outage(exc: BaseException) -> bool:
    """Whether ``exc`` says Redis or the database cannot be reached now (not a bug, not bad input)."""
    if isinstance(exc, db_errors.DBAPIError):
        return isinstance(exc, db_errors.OperationalError) or exc.connection_invalidated
    return isinstance(exc, OUTAGE_ERRORS)


def log_outage(exc: BaseException) -> None:
    """One line per failed request, no traceback: an outage is the operator's news, not a bug."""
    store = "database" if isinstance(exc, db_errors.SQLAlchemyError) else "Redis"
    # The driver's first line ("connection refused"): statement parameters are hidden (idp.db).
    reason = str(getattr(exc, "orig", None) or exc).strip().split("\n", 1)[0][:160]
    log.warning("%s unavailable on %s %s: %s: %s", store, request.method, request.path, type(exc).__name__, reason)


def unavailable_response() -> Response:
    """503 with Retry-After, in the format of the surface asked (OAuth JSON, API JSON or a page)."""
    if request.path.startswith(OAUTH_PREFIXES):
        response = jsonify(error="temporarily_unavailable",
                           error_description="the service is briefly unavailable; try again shortly")
    else:
        message = _("The library login is briefly unavailable. Please try again in a minute.")
        response = make_response(_render(503, "temporarily_unavailable", message))
    response.status_code = 503
    response.headers["Retry-After"] = str(RETRY_AFTER)
    response.headers["Cache-Control"] = "no-store"
    return response


def error_page(message: str, status: int = 400) -> ResponseReturnValue:
    """The patron's error page (templates/error.html); ``message`` must hold no personal data."""
    return render_template("error.html", status=status, message=message), status


def _wants_problem() -> bool:
    """The register API answers RFC 9457 problem documents; the partners' verify call keeps its shape."""
    return request.path.startswith(PROBLEM_PREFIX) and request.path not in CLASSIC_JSON_PATHS


def _render(status: int, code: str, message: str) -> ResponseReturnValue:
    if _wants_problem():
        return problems.for_status(status, code, message).response()
    if _wants_json():
        return jsonify(error=code, message=message), status
    return render_template("error.html", status=status, message=message), status


def _too_many_requests() -> ResponseReturnValue:
    """429 with Retry-After and words a patron understands (the limiter's own text is "10 per 1 day")."""
    limiter = current_app.extensions.get("idp-limiter")
    current = limiter.current_limit if limiter is not None else None
    wait = max(1, current.reset_at - int(time.time())) if current is not None else 60
    message = _("Too many attempts. For your safety, logging in is paused for a while.")
    headers = {"Retry-After": str(wait)}
    if _wants_problem():
        return problems.Problem(429, "too-many-requests", "Too many requests.", "Too many requests; wait and retry.",
                                headers=headers, retry_after=wait).response()
    if _wants_json():
        return jsonify(error="too_many_requests", message=message, retry_after=wait), 429, headers
    return render_template("error.html", status=429, message=message, retry_after=math.ceil(wait / 60)), 429, headers


def register(app: Flask) -> None:
    app.json = BoundedJSONProvider(app)
    app.register_error_handler(429, lambda _exc: _too_many_requests())

    @app.errorhandler(IdpError)
    def domain_error(exc: IdpError) -> ResponseReturnValue:
        return _render(exc.http_status, exc.code, exc.message)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> ResponseReturnValue:
        if isinstance(exc, InternalServerError) and is_outage(exc.original_exception or exc):
            return unavailable_response()  # raised outside a view (idp.web.outage logged it)
        status = exc.code or 500
        response = make_response(_render(status, (exc.name or "error").lower().replace(" ", "_"),
                                         exc.description or exc.name))
        # Keep the headers the protocol requires (Allow on 405, WWW-Authenticate on 401), not the body type.
        for name, value in exc.get_headers():
            if name.lower() != "content-type":
                response.headers[name] = value
        return response

    app.register_error_handler(Exception, unexpected)


def unexpected(exc: Exception) -> ResponseReturnValue:
    """Any other exception: a 503 for an outage of Redis or the database (one log line), else a 500."""
    if is_outage(exc):
        log_outage(exc)
        return unavailable_response()
    # The type only: exception text can carry input, and input can carry personal data.
    log.error("unhandled %s on %s %s", type(exc).__name__, request.method, request.path)
    return _render(500, "server_error", "Something went wrong on our side. Please try again later.")
