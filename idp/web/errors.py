"""How errors reach a browser or an API client: a clear message, never internals.

Routing errors (404, 405) never reach a blueprint's handler, so everything is handled at the
app level and the format is chosen by the URL: JSON for machine surfaces, a page otherwise.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

from flask import Flask, current_app, jsonify, make_response, render_template, request
from flask.json.provider import DefaultJSONProvider
from flask_babel import gettext as _
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException

from idp.errors import IdpError

log = logging.getLogger("idp.web")
JSON_PREFIXES = ("/api/", "/healthz", "/.well-known/", "/jwks", "/token", "/userinfo")
# A browser brings SAML messages: under /saml/ errors are pages, whatever a JSON prefix might match.
PAGE_PREFIXES = ("/saml/",)


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


def error_page(message: str, status: int = 400) -> ResponseReturnValue:
    """The patron's error page (templates/error.html); ``message`` must hold no personal data."""
    return render_template("error.html", status=status, message=message), status


def _render(status: int, code: str, message: str) -> ResponseReturnValue:
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
        status = exc.code or 500
        response = make_response(_render(status, (exc.name or "error").lower().replace(" ", "_"),
                                         exc.description or exc.name))
        # Keep the headers the protocol requires (Allow on 405, WWW-Authenticate on 401), not the body type.
        for name, value in exc.get_headers():
            if name.lower() != "content-type":
                response.headers[name] = value
        return response

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> ResponseReturnValue:
        # The type only: exception text can carry input, and input can carry personal data.
        log.error("unhandled %s on %s %s", type(exc).__name__, request.method, request.path)
        return _render(500, "server_error", "Something went wrong on our side. Please try again later.")
