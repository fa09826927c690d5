"""The REST API under /api/v1: the register for library systems, and the partners' verify call.

Thin over idp.registry (the register API) and idp.auth.verify (partners). Library systems
authenticate with access tokens from the client credentials grant (idp.api.caller); the OpenAPI
document is generated from the views' pydantic models (idp.api.spec) and served at
/api/v1/openapi.json, with a readable page at /api/v1/docs.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, Response, jsonify, render_template, request
from flask.typing import ResponseReturnValue
from flask_wtf.csrf import CSRFProtect

from idp.api import caller, changes, contact, desk, patrons, series, verify
from idp.api.problems import Problem
from idp.api.spec import document
from idp.web import services

docs = Blueprint("api_docs", __name__, url_prefix="/api/v1")
BLUEPRINTS = (verify.bp, patrons.bp, desk.bp, contact.bp, changes.bp, series.bp)
for _blueprint in BLUEPRINTS:
    # Only where a library system is the caller (idp.api.caller sets the notes); partners' verify has none.
    _blueprint.after_request(caller.add_warnings)


@docs.get("/openapi.json")
def openapi() -> ResponseReturnValue:
    return jsonify(document(services().settings.issuer))


@docs.get("/docs")
def browsable() -> ResponseReturnValue:
    """The document as a page: every operation, its scope, body and answers (no scripts, no CDN)."""
    return render_template("api_docs.html", spec=document(services().settings.issuer))


def install(app: Flask, csrf: CSRFProtect) -> None:
    for blueprint in (docs, *BLUEPRINTS):
        app.register_blueprint(blueprint)
        # Machine endpoints: a bearer token or client credentials authenticate, not a CSRF token.
        csrf.exempt(blueprint)
    app.register_error_handler(Problem, _problem)
    app.url_value_preprocessor(_ids_in_range)


def _problem(exc: Problem) -> Response:
    return exc.response()


# Ids in the API's URLs are the database's integers (32 bits on PostgreSQL). A bigger one (or 0 or
# less) names nothing, and asking the database for it fails (an overflow, a 500) instead of 404.
_LARGEST_ID = 2**31 - 1
_API_BLUEPRINTS = frozenset(blueprint.name for blueprint in (docs, *BLUEPRINTS))


def _ids_in_range(_endpoint: str | None, values: dict[str, Any] | None) -> None:
    if request.blueprint not in _API_BLUEPRINTS or not values:
        return
    for name, value in values.items():
        if name.endswith("_id") and isinstance(value, int) and not 0 < value <= _LARGEST_ID:
            noun = name.removesuffix("_id").replace("_", "-")
            raise Problem(404, f"{noun}-not-found", "Not found.", f"No {noun.replace('-', ' ')} with this id.")
