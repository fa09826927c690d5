"""How errors reach a browser or an API client: a clear message, never internals.

Routing errors (404, 405) never reach a blueprint's handler, so everything is handled at the
app level and the format is chosen by the URL: JSON for machine surfaces, a page otherwise.
"""

from __future__ import annotations

import logging

from flask import Flask, jsonify, make_response, render_template, request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException

from idp.errors import IdpError

log = logging.getLogger("idp.web")
JSON_PREFIXES = ("/api/", "/healthz", "/.well-known/", "/oauth/", "/oidc/")


def _wants_json() -> bool:
    return request.path.startswith(JSON_PREFIXES)


def _render(status: int, code: str, message: str) -> ResponseReturnValue:
    if _wants_json():
        return jsonify(error=code, message=message), status
    return render_template("error.html", status=status, message=message), status


def register(app: Flask) -> None:
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
