"""The desk's operations: register a patron, memberships, cards, activity and credentials.

Thin over idp.registry (the same functions `idp patron ...` runs): each view checks the request's
shape, names the field a domain error is about, and runs the domain call in a register transaction
audited as the library system. Changes to a record need If-Match with the ETag last read (428/412);
an activity report and a password reset are not edits of what the library read, so they need none.
"""

from __future__ import annotations

import time

from flask import Blueprint, Response, jsonify, request
from pydantic import BaseModel
from sqlalchemy.exc import IntegrityError
from spectree import Response as Answers

from idp.api import caller
from idp.api.desk_models import (Activity, ActivityAnswer, CredentialStatusAnswer, LocalCardMerge, NewCard,
                                 PasswordReset, PrintedCardRequest, Registration, ResetStarted, RulesAccepted)
from idp.api.models import PatronAnswer, patron_answer
from idp.api.patrons import answer, known_patron, patron_to_change
from idp.api.preconditions import etag, require_match
from idp.api.problems import Problem, field, invalid
from idp.api.spec import body, link, operation, problems
from idp.auth import lockout, recovery_link
from idp.auth.patron_sessions import end_patron_sessions
from idp.delivery.errors import DeliveryError
from idp.errors import NotAllowed, ValidationError
from idp.registry import agreements, cards, memberships, patrons
from idp.registry.context import Registry
from idp.registry.dates import oslo_date
from idp.registry.libraries import get_library
from idp.registry.models import Patron
from idp.registry.national_id import IdKind, NationalId, parse_national_id
from idp.registry.records import limited_record
from idp.web import services

bp = Blueprint("api_desk", __name__, url_prefix="/api/v1")
_RECORD = "The patron, as this library may see them, with the record's new ETag."


def _json(model: BaseModel, status: int = 200) -> Response:
    response = jsonify(model.model_dump(mode="json"))
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    return response


def _created(reg: Registry, patron: Patron) -> Response:
    response = answer(reg, patron, 201)
    response.headers["Location"] = f"/api/v1/patrons/{patron.id}"
    return response


def found_patron(reg: Registry, patron_id: int) -> Patron:
    """A patron by id for the calls that make them this library's patron (adding a membership,
    accepting its rules, merging a local card in), where ``known_patron`` would find nobody yet, and
    checked against If-Match. Of a patron not yet of this library, only the ETag of the lookup that
    found them will do (not ``*``): the tag is a keyed digest, so ids cannot be walked to join
    strangers and read their records."""
    patron = patrons.patron_by_id(reg, patron_id)
    if patron is None:
        raise Problem(404, "patron-not-found", "Not found.", "No patron with this id.")
    require_match(patron)
    library_id = caller.current().library_id
    ours = patron.local_library_id == library_id or any(m.library_id == library_id for m in patron.memberships)
    if not ours and etag(patron) not in [tag.strip() for tag in request.headers.get("If-Match", "").split(",")]:
        raise Problem(428, "if-match-required", "If-Match is required.",
                      "For a patron not yet of this library, send the ETag of the lookup that found them.")
    return patron


# --- Registering -----------------------------------------------------------------------------------

@bp.post("/patrons")
@operation("register.write", "registerPatron", json=Registration, once=True, resp=Answers(
    HTTP_201=(PatronAnswer, "Registered: the new patron (Location names the record)."),
    **problems(400, 401, 403, 409, 422, 429)))
def register() -> Response:
    """Register a patron at the desk

    A valid national identity number gives a national account with this library as its home library and
    a card from this library's series (printed: a number of its printed series; digital: the next of its
    digital series). A DUF number, or no number, gives a local account of this library with a printed card
    of the library's own. A person who already has a national account is a 409 whose `patron` is the
    limited view of that account: add them to this library instead. Send an Idempotency-Key so a retry
    never registers anyone twice.
    """
    asked = body(Registration)
    desk = caller.current()
    local = asked.national_id is None
    if asked.national_id is not None and asked.duf is not None:
        raise invalid("duf", "Send national_id or duf, not both.")
    if asked.address is not None and asked.address_secret:
        raise invalid("address", "A secret address is never sent to the register: send address_secret alone.")
    if local and not isinstance(asked.card, PrintedCardRequest):
        raise invalid("card.kind", "Without a national identity number the patron gets a local card: "
                                   "send the printed card's number.")
    number = asked.card.number if isinstance(asked.card, PrintedCardRequest) else None
    given = asked.address
    address = patrons.Address(given.street, given.postal_code, given.city) if given else None
    try:
        with services().registry(desk.actor) as reg:
            identity = _check_registration(reg, asked, address)
            _refuse_existing(reg, identity, local)
            new = patrons.NewPatron(
                name=asked.name, home_library=desk.isil, national_id=asked.national_id or asked.duf,
                email=asked.email, phone=asked.phone, address=address, address_secret=asked.address_secret,
                birth_date=asked.birth_date, local_card=number if local else None,
                printed_card=None if local else number)
            with field("national_id"):  # a non-compliant library registers local patrons only
                agreements.check_staff_registration(get_library(reg, desk.isil), local_card=new.local_card)
            with field("card.number"):  # what the checks above leave: the card's number and series
                patron, _ = patrons.register_patron(reg, new)
            return _created(reg, patron)
    except IntegrityError:
        # Another desk registered the same person a moment earlier and the unique index chose between
        # them: this one gets the same 409 as if it had come second.
        with services().registry(desk.actor) as reg:
            _refuse_existing(reg, _check_registration(reg, asked, address), local)
        raise


def _refuse_existing(reg: Registry, identity: NationalId | None, local: bool) -> None:
    """A 409 with the limited view when the person already has an account (national, or local here)."""
    existing = None if identity is None else patrons.existing_account(
        reg, identity, None if not local else get_library(reg, caller.current().isil))
    if existing is None:
        return
    limited = patron_answer(existing.id, limited_record(existing)).patron
    raise Problem(409, "patron-exists", "The request conflicts with the register.",
                  "This person already has a national account: add them to this library instead."
                  if not local else "This person already has a local account at this library.",
                  errors=[{"field": "duf" if local else "national_id", "message": "already registered"}],
                  patron=limited.model_dump(mode="json"))


def _check_registration(reg: Registry, asked: Registration, address: patrons.Address | None) -> NationalId | None:
    """Each field through the register's own rules, so a refusal names the field at fault."""
    today = reg.today()
    with field("name"):
        patrons.clean_name(asked.name)
    with field("email"):
        patrons.clean_email(asked.email)
    with field("phone"):
        patrons.clean_phone(asked.phone)
    with field("address"):
        patrons.clean_address(address)
    identity: NationalId | None = None
    if asked.national_id is not None:
        with field("national_id"):
            identity = patrons.national_identity(asked.national_id, today=today, national=True)
    if asked.duf is not None:
        with field("duf"):
            identity = parse_national_id(asked.duf, today=today)
            if identity.kind is not IdKind.DUF:
                raise ValidationError("This is not a DUF number: send a fødselsnummer or D-number as national_id.")
    with field("birth_date"):
        patrons.birth_date_of(identity, asked.birth_date, today=today)
    return identity


# --- Memberships -----------------------------------------------------------------------------------

@bp.put("/patrons/<int:patron_id>/membership")
@operation("register.write", "addMembership", if_match=True, resp=Answers(
    HTTP_200=(PatronAnswer, _RECORD), **problems(401, 403, 404, 412, 428, 429)))
def add_membership(patron_id: int) -> Response:
    """Add the patron to this library

    The patron is notified. Until they accept this library's lending rules the library sees the limited
    view. A local account of another library cannot join (403): it lives in that library only.
    """
    desk = caller.current()
    with services().registry(desk.actor) as reg:
        patron = found_patron(reg, patron_id)
        with field("patron_id"):
            memberships.add_to_library(reg, patron, desk.isil)
        return answer(reg, patron)


@bp.post("/patrons/<int:patron_id>/membership/rules-accepted")
@operation("register.write", "acceptLendingRules", if_match=True, json=RulesAccepted, resp=Answers(
    HTTP_200=(PatronAnswer, _RECORD), **problems(400, 401, 403, 404, 409, 412, 428, 429)))
def accept_rules(patron_id: int) -> Response:
    """Record that the patron accepted this library's lending rules at the desk

    `version` is the version of the rules text the patron was shown, which must be this library's current
    one (409 names the current version); a library that has no rules text yet takes no version. The
    patron becomes a member here if they were not, and the library sees the full record from now on.
    """
    asked = body(RulesAccepted)
    desk = caller.current()
    with services().registry(desk.actor) as reg:
        patron = found_patron(reg, patron_id)
        with field("version"):
            memberships.accept_stated_rules(reg, patron, desk.isil, asked.version)
        return answer(reg, patron)


@bp.delete("/patrons/<int:patron_id>/membership")
@operation("register.write", "endMembership", if_match=True, resp=Answers(
    HTTP_204=None, **problems(401, 403, 404, 412, 428, 429)))
def end_membership(patron_id: int) -> Response:
    """End the patron's membership of this library

    Refused (403) for the patron's home library: they choose another home library first.
    """
    desk = caller.current()
    with services().registry(desk.actor) as reg:
        patron = patron_to_change(reg, patron_id)
        with field("patron_id"):
            memberships.remove_from_library(reg, patron, desk.isil)
    return Response(status=204, headers={"Cache-Control": "no-store"})


# --- Cards -----------------------------------------------------------------------------------------

@bp.post("/patrons/<int:patron_id>/cards")
@operation("cards", "issueCard", if_match=True, json=NewCard, resp=Answers(
    HTTP_201=(PatronAnswer, "Issued: the patron with the new card (a digital card it replaces is retired)."),
    **problems(400, 401, 403, 404, 409, 412, 428, 429)))
def issue_card(patron_id: int) -> Response:
    """Issue a printed card

    The number must lie in one of this library's printed series (409 `card-outside-series` names them).
    A printed card replaces the patron's digital one; the account stays the same.
    """
    asked = body(NewCard)
    desk = caller.current()
    with services().registry(desk.actor) as reg:
        patron = patron_to_change(reg, patron_id)
        with field("number"):
            cards.issue_card(reg, patron, get_library(reg, desk.isil), kind="printed", number=asked.number)
        return _created(reg, patron)


@bp.post("/patrons/<int:patron_id>/merge")
@operation("cards", "mergeLocalCard", if_match=True, json=LocalCardMerge, resp=Answers(
    HTTP_200=(PatronAnswer, "The national account, now holding the local account's memberships."),
    **problems(400, 401, 403, 404, 409, 412, 428, 429)))
def merge_local_card(patron_id: int) -> Response:
    """Merge a local card of this library into the national account

    The local account's memberships join the national account and its number stops logging in. Refused
    for another library's local card (403) and for cards of a different person (409).
    """
    asked = body(LocalCardMerge)
    desk = caller.current()
    with services().registry(desk.actor) as reg:
        patron = found_patron(reg, patron_id)
        with field("local_card"):
            merged = cards.merge_local_card_of(reg, get_library(reg, desk.isil), asked.local_card, patron)
        return answer(reg, merged)


# --- Activity --------------------------------------------------------------------------------------

@bp.post("/patrons/<int:patron_id>/activity")
@operation("register.write", "reportActivity", json=Activity, resp=Answers(
    HTTP_200=(ActivityAnswer, "Recorded (or already known)."), **problems(400, 401, 403, 404, 429)))
def report_activity(patron_id: int) -> Response:
    """Report a loan, renewal, return or visit

    Any use of the card keeps the patron's entry alive: without it a patron who only borrows at the desk
    would be warned and deleted after three years without a login. A report, not an edit: no If-Match.
    """
    asked = body(Activity)
    desk = caller.current()
    with services().registry(desk.actor) as reg:
        patron = known_patron(reg, patron_id)
        with field("at"):
            recorded = patrons.report_activity(reg, patron, desk.library_id, asked.kind, at=asked.at)
        return _json(ActivityAnswer(recorded=recorded, last_activity=oslo_date(patron.last_activity_at)))


# --- Credentials -----------------------------------------------------------------------------------

@bp.post("/patrons/<int:patron_id>/password-reset")
@operation("register.write", "startPasswordReset", json=PasswordReset, once=True, resp=Answers(
    HTTP_200=(ResetStarted, "The link was sent, or the temporary password (shown this once)."),
    **problems(400, 401, 403, 404, 409, 429, 503)))
def start_password_reset(patron_id: int) -> Response:
    """Start a password reset

    `email` sends the patron the single-use link My account's "forgot password" uses (409 when the
    patron has no e-mail address: hand over a temporary password instead). `temporary` sets a random
    password the patron must change at first login and returns it in this answer only; the patron's
    sessions end. Both are audited, never with the secret.
    """
    asked = body(PasswordReset)
    svc = services()
    with svc.registry(caller.current().actor) as reg:
        patron = known_patron(reg, patron_id)
        if asked.delivery == "temporary":
            temporary = recovery_link.temporary_password(reg, patron)
        else:
            try:
                sent = recovery_link.send_reset_link(svc, reg, patron)
            except NotAllowed:
                raise Problem(409, "no-email-address", "The request conflicts with the register.",
                              "The patron has no e-mail address to send a reset link to: use delivery "
                              '"temporary" and hand the password over in person.',
                              errors=[{"field": "delivery", "message": "the patron has no e-mail address"}]) from None
            except DeliveryError:
                raise Problem(503, "delivery-failed", "The register is briefly unavailable.",
                              "The e-mail could not be sent; nothing was changed. Try again later.") from None
    if asked.delivery == "temporary":
        end_patron_sessions(svc.state, svc.oidc.grants, patron_id)  # as a password set by the CLI does
        return _json(ResetStarted(delivery="temporary", temporary_password=temporary, must_change=True))
    return _json(ResetStarted(delivery="email", sent_to=sent.masked, valid_until=sent.expires_at))


@bp.get("/patrons/<int:patron_id>/credentials")
@operation("register.read", "credentialStatus", resp=Answers(
    HTTP_200=(CredentialStatusAnswer, "What the patron has, never a secret or its hash."),
    **problems(401, 403, 404, 429)))
def credential_status(patron_id: int) -> Response:
    """Read the patron's credential status

    Whether they have a password and a PIN, whether the password must be changed at next login, whether
    a first or temporary secret was ever replaced by one of their own (the desk's "are the first-time
    credentials still in use?"), the date of the last login or reported activity, the last login, and
    until when logins are locked after 10 wrong guesses in a day.
    """
    with services().registry(caller.current().actor) as reg:
        status = patrons.credential_status(reg, known_patron(reg, patron_id))
    return _json(CredentialStatusAnswer(
        has_password=status.has_password, has_pin=status.has_pin, must_change=status.must_change,
        first_credentials_changed=status.first_credentials_changed, last_used=status.last_used,
        last_login=status.last_login,
        locked_until=lockout.locked_until(services().state, patron_id, int(time.time()))))


link("registerPatron", 201, "patron", "getPatron", {"patron_id": "$response.body#/patron/id"},
     "Read the record just registered.")
link("registerPatron", 201, "credentials", "credentialStatus", {"patron_id": "$response.body#/patron/id"},
     "Read the new patron's credential status.")
link("lookupPatron", 200, "addMembership", "addMembership", {"patron_id": "$response.body#/patron/id"},
     "Add the patron found to this library.")
link("addMembership", 200, "acceptLendingRules", "acceptLendingRules", {"patron_id": "$response.body#/patron/id"},
     "Record that the patron accepted this library's lending rules.")
