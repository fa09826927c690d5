"""Changing a patron's contact details and this library's loan ban (issue 15).

Thin over the register: idp.registry.patrons.update_patron (which notifies the old e-mail address or
phone number and refuses fields a federation owns) and idp.registry.loan_bans. Every change names the
version it was made on (If-Match) and answers the patron as this library sees them, with the new ETag.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response
from pydantic import Field
from spectree import Response as Answers

from idp.api import caller
from idp.api.models import PatronAnswer, Strict
from idp.api.patrons import answer, patron_to_change
from idp.api.problems import Problem, field, invalid
from idp.api.spec import body, operation, problems
from idp.registry import loan_bans, memberships
from idp.registry.owned import FieldOwned
from idp.registry.patrons import Address, clean_address, clean_email, clean_phone, update_patron
from idp.web import services

bp = Blueprint("api_contact", __name__, url_prefix="/api/v1")

# The register's field names as this API names them.
_API_FIELD = {"street": "address.street", "postal_code": "address.postal_code", "city": "address.city"}


class AddressChange(Strict):
    street: str = Field(max_length=200)
    postal_code: str = Field(max_length=16)
    city: str = Field(max_length=100)


class ContactChange(Strict):
    """Only the fields sent change; null clears one. A secret address is never stored, so an address
    sent for a patron whose address is secret is dropped."""

    email: str | None = Field(default=None, max_length=254)
    phone: str | None = Field(default=None, max_length=32)
    address: AddressChange | None = None


class LoanBanRequest(Strict):
    reason: str | None = Field(default=None, max_length=200, description=(
        "The library's own note; never released to partners. Send {} for none."))


_CHANGE_ANSWERS = Answers(HTTP_200=(PatronAnswer, "The patron as this library sees them, with the new ETag."),
                          **problems(400, 401, 403, 404, 412, 428, 429))


@bp.patch("/patrons/<int:patron_id>/contact")
@operation("register.write", "changeContact", if_match=True, json=ContactChange, resp=_CHANGE_ANSWERS)
def change_contact(patron_id: int) -> Response:
    """Change a patron's e-mail, phone or address

    Send If-Match with the ETag of the record you read. The patron is told of a new e-mail address or
    phone number at the old one. A field a university federation keeps up to date is refused (403,
    naming it). Needs the patron to be active at this library (the lending rules accepted).
    """
    asked = body(ContactChange)
    given = asked.model_fields_set
    if not given:
        raise invalid("(body)", "Send at least one of email, phone and address.")
    # Each field checked on its own first, so a refusal names the field; the register checks them again.
    fields: dict[str, Any] = {}
    if "email" in given:
        with field("email"):
            fields["email"] = clean_email(asked.email)
    if "phone" in given:
        with field("phone"):
            fields["phone"] = clean_phone(asked.phone)
    if "address" in given:
        sent = asked.address
        with field("address"):
            fields["address"] = clean_address(Address(sent.street, sent.postal_code, sent.city) if sent else None)
    me = caller.current()
    with services().registry(me.actor) as reg:
        patron = patron_to_change(reg, patron_id)
        with field("patron_id"):
            memberships.require_active(reg, patron, me.isil)
        try:
            update_patron(reg, patron, **fields)
        except FieldOwned as exc:
            raise Problem(403, "field-owned", "This is not allowed.", exc.message,
                          errors=[{"field": _API_FIELD.get(name, name), "message": exc.message}
                                  for name in exc.fields]) from None
        return answer(reg, patron)


@bp.put("/patrons/<int:patron_id>/loan-ban")
@operation("register.write", "setLoanBan", if_match=True, json=LoanBanRequest, resp=_CHANGE_ANSWERS)
def set_loan_ban(patron_id: int) -> Response:
    """Bar the patron from borrowing at this library

    The ban is this library's own; the patron counts as banned (the loan_ban of the record, of claims and
    of the verify API) while any library where they are a member has one. Setting it again changes
    only the reason.
    """
    reason = body(LoanBanRequest).reason
    me = caller.current()
    with services().registry(me.actor) as reg:
        patron = patron_to_change(reg, patron_id)
        with field("reason"):
            loan_bans.set_loan_ban(reg, patron, me.isil, reason=reason)
        return answer(reg, patron)


@bp.delete("/patrons/<int:patron_id>/loan-ban")
@operation("register.write", "clearLoanBan", if_match=True, resp=_CHANGE_ANSWERS)
def clear_loan_ban(patron_id: int) -> Response:
    """Lift this library's loan ban

    Other libraries' bans stay: the record's loan_ban may still be true.
    """
    me = caller.current()
    with services().registry(me.actor) as reg:
        patron = patron_to_change(reg, patron_id)
        loan_bans.clear_loan_ban(reg, patron, me.isil)
        return answer(reg, patron)
