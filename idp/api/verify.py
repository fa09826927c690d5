"""The partners' back-channel: POST /api/v1/verify (README, "Verify API").

Thin over idp.auth.verify, which checks the body itself (its errors are the partners' long-standing
``{"error", "message"}`` shape, not problem documents); the models below describe that contract in
the generated OpenAPI document and are not used to validate.
"""

from __future__ import annotations

from typing import Annotated, Any

from flask import Blueprint, g, jsonify, request
from flask.typing import ResponseReturnValue
from pydantic import BaseModel, ConfigDict, Field
from pyop.exceptions import InvalidClientAuthentication
from spectree import Response

from idp.api.spec import api
from idp.auth.verify import parse_request, verify
from idp.errors import ValidationError
from idp.oidc.provider import basic_credentials
from idp.web import services

bp = Blueprint("api", __name__, url_prefix="/api/v1")
_REALM = 'Basic realm="patron-idp API", charset="UTF-8"'


class VerifyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "oneOf": [{"required": ["password"], "not": {"required": ["pin"]}},
                  {"required": ["pin"], "not": {"required": ["password"]}}],
        "examples": [{"card_number": "N000123456", "password": "correct horse battery", "age_over": [15, 18]},
                     {"card_number": "N000123456", "pin": "4821"}]})

    card_number: str = Field(min_length=1, max_length=64, pattern=r"\S",
                             description="As printed on the card; any library's spelling of it is accepted.")
    password: str | None = Field(default=None, min_length=1, max_length=256)
    pin: str | None = Field(default=None, pattern=r"^[0-9]{4,6}$")
    age_over: list[Annotated[int, Field(ge=1, le=99)]] | None = Field(default=None, max_length=10, description=(
        "Thresholds to answer as age_over_NN (two digits), if the policy allows them."))


class VerifyAnswer(BaseModel):
    """valid_patron false means: not accepted (for any reason)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "patternProperties": {"^age_over_(0[1-9]|[1-9][0-9])$": {"type": "boolean"}},
        "examples": [{"valid_patron": True, "age_over_15": True, "age_over_18": False}]})

    valid_patron: bool
    loan_ban: bool | None = None


class Error(BaseModel):
    model_config = ConfigDict(extra="forbid")
    error: str
    message: str


class TooMany(BaseModel):
    model_config = ConfigDict(extra="forbid")
    error: str = Field(json_schema_extra={"const": "too_many_requests"})
    message: str
    retry_after: int = Field(ge=1)


def _unauthenticated(message: str) -> ResponseReturnValue:
    return jsonify(error="invalid_client", message=message), 401, {"WWW-Authenticate": _REALM}


@bp.post("/verify")
@api.validate(json=VerifyRequest, skip_validation=True, operation_id="verifyCard", tags=("partners",),
              security={"partnerCredentials": []}, resp=Response(
                  HTTP_200=(VerifyAnswer, "The check was made. valid_patron false means: not accepted "
                                          "(for any reason)."),
                  HTTP_400=(Error, "The body is not a valid request; message says what to fix."),
                  HTTP_401=(Error, "Client authentication failed or is missing."),
                  HTTP_403=(Error, "This partner may not do what it asked (e.g. check a PIN)."),
                  HTTP_413=(Error, "The body is larger than 64 KiB."),
                  HTTP_429=(TooMany, "Too many wrong secrets for this card today, or too many checks from "
                                     "this partner.")))
def verify_card() -> ResponseReturnValue:
    """Check a card number with the patron's password or PIN

    Answers whether the card and secret belong to a valid patron and, where the partner's policy allows,
    age thresholds (age_over_NN: at least NN years old today in Norway, ISO/IEC 18013-5) and the loan ban.
    Thresholds or claims outside the policy are left out of the answer, never an error. A wrong secret,
    an unknown card and a blocked card all give valid_patron false. PINs are accepted only from partners
    whose policy allows them (kiosks, doors). Every card allows 10 wrong secrets a day, counted together
    with the web login page; then it is locked (429).
    """
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
    body: Any = request.get_json(silent=True)
    checked = parse_request(body)
    with services().registry(f"api:{client_id}") as reg:
        answer = verify(reg, entry.record, checked)
    if not answer["valid_patron"]:
        g.credential_failed = True  # counts towards the card's daily limit (idp.web.limits)
    response = jsonify(answer)
    response.headers["Cache-Control"] = "no-store"
    return response
