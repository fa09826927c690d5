"""The partners' back-channel: POST /api/v1/verify, and its OpenAPI description.

Thin over idp.auth.verify. A partner authenticates with its client credentials (HTTP Basic)
and gets booleans; every error is JSON with ``error`` and ``message``.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any

from flask import Blueprint, g, jsonify, request
from flask.typing import ResponseReturnValue
from pyop.exceptions import InvalidClientAuthentication

from idp.auth.verify import parse_request, verify
from idp.errors import ValidationError
from idp.oidc.provider import basic_credentials
from idp.web import services

bp = Blueprint("api", __name__, url_prefix="/api/v1")
_REALM = 'Basic realm="patron-idp API", charset="UTF-8"'


@lru_cache(maxsize=1)
def openapi_document() -> dict[str, Any]:
    return json.loads((resources.files("idp.web") / "openapi-v1.json").read_text(encoding="utf-8"))


def _unauthenticated(message: str) -> ResponseReturnValue:
    return jsonify(error="invalid_client", message=message), 401, {"WWW-Authenticate": _REALM}


@bp.get("/openapi.json")
def openapi() -> ResponseReturnValue:
    document = dict(openapi_document())
    document["servers"] = [{"url": services().settings.issuer.rstrip("/") + "/api/v1"}]
    return jsonify(document)


@bp.post("/verify")
def verify_card() -> ResponseReturnValue:
    header = request.headers.get("Authorization")
    if not header:
        return _unauthenticated("Authenticate with your client_id and client_secret (HTTP Basic).")
    try:
        client_id, secret = basic_credentials(header)
    except InvalidClientAuthentication as exc:
        return _unauthenticated(str(exc))
    entry = services().oidc.authenticate(client_id, secret)
    if entry is None or entry.record.public:
        return _unauthenticated("Client authentication failed.")
    if not request.is_json:
        raise ValidationError("Send the body as JSON (Content-Type: application/json).")
    body = request.get_json(silent=True)
    checked = parse_request(body)
    with services().registry(f"api:{client_id}") as reg:
        answer = verify(reg, entry.record, checked)
    if not answer["valid_patron"]:
        g.credential_failed = True  # counts towards the card's daily limit (idp.web.limits)
    response = jsonify(answer)
    response.headers["Cache-Control"] = "no-store"
    return response


