"""Finding patrons: look up by card number or national identity number, read a record.

A library sees the limited view until the patron has accepted its lending rules, then the full
record (idp.registry.memberships.library_view); reading a full record is audited as the system.
A non-compliant library sees its local patrons only (idp.registry.agreements.sees_patron): to it a
national account is not found.
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify
from spectree import Response as Answers

from idp.api import caller
from idp.api.models import Lookup, PatronAnswer, patron_answer
from idp.api.preconditions import etag, require_match
from idp.api.problems import Problem, field
from idp.api.spec import body, link, operation, problems
from idp.errors import NotFound
from idp.registry import agreements, memberships
from idp.registry.context import Registry
from idp.registry.models import Library, Patron
from idp.registry.patrons import find_by_national_id, patron_by_card, patron_by_id
from idp.web import services

bp = Blueprint("api_patrons", __name__, url_prefix="/api/v1")


def answer(reg: Registry, patron: Patron, status: int = 200) -> Response:
    """The patron as this library may see them, with the record's ETag."""
    view = memberships.library_view(reg, patron, caller.current().isil)
    response = jsonify(patron_answer(patron.id, view).model_dump(mode="json"))
    response.status_code = status
    response.headers["ETag"] = etag(patron)
    response.headers["Cache-Control"] = "no-store"
    return response


def visible(reg: Registry, patron: Patron | None) -> Patron | None:
    """The patron, if this library may see them at all (a non-compliant one: its local patrons only)."""
    library = reg.session.get(Library, caller.current().library_id)
    return patron if patron is not None and library is not None and agreements.sees_patron(library, patron) else None


def known_patron(reg: Registry, patron_id: int) -> Patron:
    """A patron this library has: a member here or a local account of this library. Others are not
    found, so ids cannot be walked to list the register."""
    patron = visible(reg, patron_by_id(reg, patron_id))
    library_id = caller.current().library_id
    if patron is None or not (patron.local_library_id == library_id
                              or any(m.library_id == library_id for m in patron.memberships)):
        raise Problem(404, "patron-not-found", "Not found.", "No patron with this id at this library.")
    return patron


def patron_to_change(reg: Registry, patron_id: int) -> Patron:
    """A patron of this library, for a change of their record: If-Match must name its current ETag."""
    patron = known_patron(reg, patron_id)
    require_match(patron)
    return patron


@bp.post("/patrons/lookup")
@operation("register.read", "lookupPatron", json=Lookup, resp=Answers(
    HTTP_200=(PatronAnswer, "The patron, as this library may see them."), **problems(400, 401, 403, 404, 429)))
def lookup() -> Response:
    """Find a patron by card number or national identity number

    The national identity number goes in the body, never in a URL. The answer is the limited view (name
    and card numbers) until the patron has accepted this library's lending rules, then the full record.
    """
    asked = body(Lookup)
    if (asked.card_number is None) == (asked.national_id is None):
        raise Problem(400, "invalid-input", "The request is not valid.", "Send card_number or national_id, not both.",
                      errors=[{"field": "card_number", "message": "send exactly one of card_number and national_id"}])
    with services().registry(caller.current().actor) as reg:
        if asked.national_id is not None:
            with field("national_id"):
                found = visible(reg, find_by_national_id(reg, asked.national_id))
            if found is None:
                raise Problem(404, "patron-not-found", "Not found.", "No national account with this identity number.")
            return answer(reg, found)
        with field("card_number"):
            try:
                found = visible(reg, patron_by_card(reg, asked.card_number or ""))
            except NotFound:
                found = None
            if found is None:
                raise Problem(404, "patron-not-found", "Not found.", "No active card with this number.")
            return answer(reg, found)


@bp.get("/patrons/<int:patron_id>")
@operation("register.read", "getPatron", resp=Answers(
    HTTP_200=(PatronAnswer, "The patron, as this library may see them."), **problems(401, 403, 404, 429)))
def get_patron(patron_id: int) -> Response:
    """Read a patron of this library

    Answers for patrons who are members of this library (or hold one of its local cards); the ETag is
    what a change to the record must send in If-Match.
    """
    with services().registry(caller.current().actor) as reg:
        return answer(reg, known_patron(reg, patron_id))


link("lookupPatron", 200, "patron", "getPatron", {"patron_id": "$response.body#/patron/id"},
     "Read the record that was found.")
