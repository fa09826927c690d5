"""Card + password or PIN, checked for a partner's back-channel (e-content, kiosks, doors).

The partner learns booleans only: whether the card and secret belong to a valid patron and,
where its policy allows, age thresholds and the loan ban. A wrong secret, an unknown card and
a blocked card give the same answer, so the endpoint cannot be used to find out which cards
exist. No Flask here: idp.web.api is the HTTP side.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from idp.claims import release
from idp.claims.release import valid_patron as check_valid_patron
from idp.errors import NotAllowed, ValidationError
from idp.registry import cards, patrons
from idp.registry.context import Registry
from idp.registry.credentials import PASSWORD_MAX
from idp.registry.models import RelyingParty

FIELDS = ("card_number", "password", "pin", "age_over")
MAX_CARD_NUMBER = 64
MAX_THRESHOLDS = 10
AGE_RANGE = range(1, 100)  # age_over_01 .. age_over_99, as in ISO/IEC 18013-5


@dataclass(frozen=True)
class VerifyRequest:
    card_number: str
    secret: str
    kind: str  # "password" or "pin"
    age_over: tuple[int, ...]

    def __repr__(self) -> str:
        return f"<VerifyRequest {self.kind} age_over={self.age_over}>"  # never the card or the secret


def parse_request(body: Any) -> VerifyRequest:
    """The request, or ValidationError naming exactly what is wrong (and never echoing a secret)."""
    if not isinstance(body, Mapping):
        raise ValidationError("The body must be a JSON object with card_number and password (or pin).")
    unknown = sorted(str(key)[:40] for key in body if key not in FIELDS)
    if unknown:
        raise ValidationError(f"Unknown field(s): {', '.join(unknown)}. Allowed: {', '.join(FIELDS)}.")
    card_number = body.get("card_number")
    if not isinstance(card_number, str) or not card_number.strip():
        raise ValidationError("card_number is required and must be a non-empty string.")
    if len(card_number) > MAX_CARD_NUMBER:
        raise ValidationError(f"card_number has at most {MAX_CARD_NUMBER} characters.")
    if ("password" in body) == ("pin" in body):
        raise ValidationError("Send exactly one of password and pin.")
    kind = "password" if "password" in body else "pin"
    secret = body[kind]
    if not isinstance(secret, str) or not secret:
        raise ValidationError(f"{kind} must be a non-empty string.")
    if kind == "password" and len(secret) > PASSWORD_MAX:
        raise ValidationError(f"password has at most {PASSWORD_MAX} characters.")
    if kind == "pin" and not (secret.isascii() and secret.isdigit() and 4 <= len(secret) <= 6):
        raise ValidationError("pin must be 4 to 6 digits.")
    return VerifyRequest(card_number.strip(), secret, kind, _thresholds(body.get("age_over", [])))


def _thresholds(value: Any) -> tuple[int, ...]:
    if not isinstance(value, list):
        raise ValidationError("age_over must be a list of whole numbers from 1 to 99, e.g. [15, 18].")
    if len(value) > MAX_THRESHOLDS:
        raise ValidationError(f"age_over has at most {MAX_THRESHOLDS} thresholds.")
    for item in value:
        # bool is an int in Python; true is no age.
        if isinstance(item, bool) or not isinstance(item, int) or item not in AGE_RANGE:
            raise ValidationError(f"age_over thresholds are whole numbers from 1 to 99; {str(item)[:20]!r} is not.")
    return tuple(sorted(set(value)))


def verify(reg: Registry, relying_party: RelyingParty, request: VerifyRequest) -> dict[str, bool]:
    """``{"valid_patron": False}`` for every failure; else valid_patron plus what the policy allows.

    Raises NotAllowed when the partner may not check PINs: that is about the partner, not the
    card, so it is said plainly and before any secret is looked at.
    """
    if request.kind == "pin" and not relying_party.pin_allowed:
        raise NotAllowed("This partner may not check PINs; send the patron's password instead.")
    on_file = cards.find_secret_on_file(reg, request.card_number, request.kind)
    check = patrons.check_secret(reg, on_file, request.secret)
    if not check.ok or on_file is None:
        return {"valid_patron": False}
    if not check.rehashed:
        # Only bookkeeping is written below (the release log, the day's activity).
        reg.relax_durability()
    names = ["valid_patron", *(f"age_over_{n:02d}" for n in request.age_over), "loan_ban"]
    released = release(reg, on_file.patron_id, relying_party, names, protocol="api")
    patrons.record_activity_on_file(reg, on_file)
    # The check itself answers valid_patron, whatever the policy lists: it is what was asked (a patron
    # active at no compliant library is not valid, even for a partner whose policy lists only ages).
    valid = released.values["valid_patron"] if "valid_patron" in released.values else check_valid_patron(
        reg, on_file.patron_id, relying_party, protocol="api")
    answer = {"valid_patron": bool(valid)}
    answer.update((name, bool(value)) for name, value in released.values.items())
    return answer
