"""The REST API under /api/v1: the register for library systems, and the partners' verify call.

Thin over idp.registry (the register API) and idp.auth.verify (partners). Library systems
authenticate with access tokens from the client credentials grant (idp.api.caller); the OpenAPI
document is generated from the views' pydantic models (idp.api.spec) and served at
/api/v1/openapi.json, with a readable page at /api/v1/docs.
"""

from __future__ import annotations

from flask import Blueprint, Flask, Response, jsonify, render_template
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


def _problem(exc: Problem) -> Response:
    return exc.response()
