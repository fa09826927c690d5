"""Patrons: registration, lookup, contact data, credentials, reading the record, deletion."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal, overload

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import joinedload

from idp.errors import Conflict, NotAllowed, NotFound, ValidationError
from idp.registry import changes as change_feed
from idp.registry.cards import SecretOnFile, issue_card, require_card
from idp.registry.context import Registry
from idp.registry.credentials import Verification, check_password_shape, check_pin_shape
from idp.registry.dates import oslo_date
from idp.registry.libraries import current_rules, get_library
from idp.registry.models import AuditEvent, Card, Credential, Library, Membership, PasswordResetToken, Patron
from idp.registry.national_id import IdKind, NationalId, parse_national_id
from idp.registry.owned import refuse_owned
from idp.registry.records import PatronRecord, full_record

_EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]+\.[^@\s]+")
_PHONE = re.compile(r"\+?\d{5,15}")


@dataclass(frozen=True)
class Address:
    street: str
    postal_code: str
    city: str

    def __repr__(self) -> str:
        return "<Address>"


@dataclass(frozen=True)
class NewPatron:
    name: str
    home_library: str
    national_id: str | None = None
    email: str | None = None
    phone: str | None = None
    address: Address | None = None
    address_secret: bool = False
    birth_date: date | None = None
    local_card: str | None = None  # set: a local account of the home library with this card number
    printed_card: str | None = None  # set: a national account's first card is this printed number, not a digital one
    password: str | None = None
    pin: str | None = None
    password_must_change: bool = False

    def __repr__(self) -> str:
        return "<NewPatron>"


def clean_name(name: str) -> str:
    name = " ".join((name or "").split())
    if not 1 <= len(name) <= 200 or not name.isprintable():
        raise ValidationError("A name has 1 to 200 printable characters.")
    return name


def clean_email(email: str | None) -> str | None:
    if email is None or email == "":
        return None
    email = email.strip()
    if len(email) > 254 or not _EMAIL.fullmatch(email):
        raise ValidationError("That is not an e-mail address (expected name@domain).")
    return email


def clean_phone(phone: str | None) -> str | None:
    if phone is None or phone == "":
        return None
    compact = re.sub(r"[\s\-()]", "", phone)
    if not _PHONE.fullmatch(compact):
        raise ValidationError("A phone number has 5 to 15 digits, optionally after a +.")
    return compact


def clean_address(address: Address | None) -> Address | None:
    if address is None:
        return None
    parts = [" ".join((p or "").split()) for p in (address.street, address.postal_code, address.city)]
    if any(len(p) > 200 or not p.isprintable() for p in parts) or len(parts[1]) > 16:
        raise ValidationError("An address has a street, a postal code (16 characters at most) and a city, "
                              "200 characters at most each.")
    return Address(*parts) if any(parts) else None


@overload
def national_identity(raw: str | None, *, today: date, national: Literal[True]) -> NationalId: ...
@overload
def national_identity(raw: str | None, *, today: date, national: bool) -> NationalId | None: ...
def national_identity(raw: str | None, *, today: date, national: bool) -> NationalId | None:
    """Parse an identity number for a new account; a national account needs one, and not a DUF number."""
    if raw is None or raw == "":
        if national:
            raise ValidationError("A national card needs a national identity number (fødselsnummer or D-nummer).")
        return None
    nid = parse_national_id(raw, today=today)
    if national and not nid.allows_national_card:
        raise NotAllowed("A DUF number is not a national identity number: this person can only get a local card.")
    return nid


def birth_date_of(nid: NationalId | None, given: date | None, *, today: date) -> date | None:
    """The birth date a new account gets: the identity number's, which a given one must match."""
    birth_date = nid.birth_date if nid and nid.birth_date else given
    if nid and nid.birth_date and given and given != nid.birth_date:
        raise ValidationError("The birth date given does not match the national identity number.")
    if birth_date and birth_date > today:
        raise ValidationError("A birth date cannot lie in the future.")
    return birth_date


def existing_account(reg: Registry, nid: NationalId, local_at: Library | None = None) -> Patron | None:
    """The person's national account (or, with ``local_at``, their local account there): a person
    has at most one of each, so registering again finds this instead."""
    scope = Patron.local_library_id.is_(None) if local_at is None else Patron.local_library_id == local_at.id
    return reg.session.scalar(select(Patron).where(Patron.national_id_hash == reg.cipher.lookup_hash(nid.value),
                                                   scope))


def register_patron(reg: Registry, new: NewPatron) -> tuple[Patron, Card]:
    """Create a patron, their home-library membership and first card, all or nothing."""
    national = new.local_card is None
    if not national and new.printed_card is not None:
        raise ValidationError("A local account gets a local card; a printed national card needs a national account.")
    name = clean_name(new.name)
    email, phone = clean_email(new.email), clean_phone(new.phone)
    address = clean_address(new.address)
    if new.password is not None:
        check_password_shape(new.password)
    if new.pin is not None:
        check_pin_shape(new.pin)
    nid = national_identity(new.national_id, today=reg.today(), national=national)
    library = get_library(reg, new.home_library)
    birth_date = birth_date_of(nid, new.birth_date, today=reg.today())
    lookup = reg.cipher.lookup_hash(nid.value) if nid else None
    if nid is not None and existing_account(reg, nid, None if national else library) is not None:
        where = "a national account" if national else f"a local account at {library.isil}"
        raise Conflict(f"This person already has {where}.")
    now = reg.now()
    patron = Patron(
        name=name, id_kind=nid.kind.value if nid else None,
        national_id_cipher=reg.cipher.encrypt(nid.value, context=lookup) if nid and lookup else None,
        national_id_hash=lookup, local_library_id=None if national else library.id, birth_date=birth_date,
        address_secret=new.address_secret, phone=phone, email=email, status="active",
        home_library_id=library.id, created_at=now, last_activity_at=now)
    # A secret address is never stored: only its flag is (the National Library asks the same of libraries).
    if address is not None and not new.address_secret:
        patron.street, patron.postal_code, patron.city = address.street, address.postal_code, address.city
    # Registering at a library is becoming its patron there and accepting its lending rules.
    rules = current_rules(reg, library)
    patron.memberships.append(Membership(library_id=library.id, added_at=now, rules_accepted_at=now,
                                         rules_version=rules.version if rules else None))
    reg.session.add(patron)
    reg.session.flush()
    reg.audit("patron.create", patron_id=patron.id, library_id=library.id,
              account="national" if national else "local")
    kind = "local" if not national else "printed" if new.printed_card is not None else "digital"
    card = issue_card(reg, patron, library, kind=kind, number=new.local_card or new.printed_card)
    if new.password is not None:
        set_secret(reg, patron, "password", new.password, must_change=new.password_must_change)
    if new.pin is not None:
        set_secret(reg, patron, "pin", new.pin)
    return patron, card


# What the whole record reads, loaded with the patron in one query rather than one lazy load per
# relationship (the register API builds a record on every lookup). A patron has a few cards,
# memberships and bans, so the joined rows stay few.
WHOLE_RECORD = (joinedload(Patron.cards).joinedload(Card.library),
                joinedload(Patron.memberships).joinedload(Membership.library),
                joinedload(Patron.loan_bans), joinedload(Patron.home_library), joinedload(Patron.local_library))


def find_by_national_id(reg: Registry, raw: str) -> Patron | None:
    nid = parse_national_id(raw, today=reg.today())
    return reg.session.scalars(select(Patron).options(*WHOLE_RECORD).where(
        Patron.national_id_hash == reg.cipher.lookup_hash(nid.value), Patron.local_library_id.is_(None))
    ).unique().one_or_none()


def patron_by_card(reg: Registry, typed: str) -> Patron:
    patron = reg.session.get(Patron, require_card(reg, typed).patron_id, options=WHOLE_RECORD)
    assert patron is not None  # noqa: S101 - require_card answers only cards with a patron
    return patron


def patron_by_id(reg: Registry, patron_id: int) -> Patron | None:
    """The patron with the whole record loaded, or None."""
    return reg.session.get(Patron, patron_id, options=WHOLE_RECORD)


def read_full_record(reg: Registry, patron: Patron, *, purpose: str) -> PatronRecord:
    """The whole record, audited: every read of it leaves a trace with who read it and why."""
    reg.audit("patron.read_full", patron_id=patron.id, purpose=purpose)
    return full_record(patron)


_UNSET: Any = object()


def update_patron(reg: Registry, patron: Patron, *, name: str = _UNSET, email: str | None = _UNSET,
                  phone: str | None = _UNSET, address: Address | None = _UNSET,
                  address_secret: bool | None = None, status: str | None = None) -> list[str]:
    """Change what is given, validate all of it first; returns the names of the fields changed.

    A changed e-mail address or phone number leaves a notice for the patron (idp.notifications), and
    every library of the patron finds the change in its feed (idp.registry.changes). Loan bans are
    per library: idp.registry.loan_bans."""
    changes: dict[str, Any] = {}
    if name is not _UNSET:
        changes["name"] = clean_name(name)
    if email is not _UNSET:
        changes["email"] = clean_email(email)
    if phone is not _UNSET:
        changes["phone"] = clean_phone(phone)
    if status is not None:
        if status not in ("active", "blocked"):
            raise ValidationError("A patron's status is 'active' or 'blocked'.")
        changes["status"] = status
    secret = patron.address_secret if address_secret is None else bool(address_secret)
    changes["address_secret"] = secret
    if address is not _UNSET or secret:
        cleaned = None if address is _UNSET else clean_address(address)
        kept = None if secret else cleaned
        changes["street"], changes["postal_code"], changes["city"] = (
            (kept.street, kept.postal_code, kept.city) if kept else (None, None, None))
    changed = [k for k, v in changes.items() if getattr(patron, k) != v]
    if changed:
        # Fields a federation owns (a university's name for its student) are read-only here,
        # for the patron and for staff: the federation refreshes them at each login.
        refuse_owned(reg, patron, changed)
    previous = {key: getattr(patron, key) for key in changed}
    for key in changed:
        setattr(patron, key, changes[key])
    if changed:
        reg.session.flush()
        reg.audit("patron.update", patron_id=patron.id, fields=sorted(changed))
        if set(changed) - {"status"}:
            change_feed.record_for_members(reg, patron, "contact_changed")
        if "status" in changed:
            change_feed.record_for_members(reg, patron, "status_changed")
    for key in ("email", "phone"):
        if key in changed:
            # Told at the old address (at the new one if there was none): after a takeover, or a
            # support desk talked into a change, that is where the owner reads.
            reg.notify(patron.id, "account_changed", what=key, to=previous[key])
    return changed


def set_secret(reg: Registry, patron: Patron, kind: str, value: str, *, must_change: bool = False) -> None:
    (check_pin_shape if kind == "pin" else check_password_shape)(value)
    credential = reg.session.get(Credential, (patron.id, kind))
    hashed = reg.hasher.hash(value)
    if credential is None:
        reg.session.add(Credential(patron_id=patron.id, kind=kind, hash=hashed, must_change=must_change,
                                   updated_at=reg.now()))
    else:
        if not must_change and credential.first_changed_at is None:
            credential.first_changed_at = reg.now()  # the first secret, replaced by one to keep
        credential.hash, credential.must_change, credential.updated_at = hashed, must_change, reg.now()
    if kind == "password":  # whoever set it, an outstanding reset link no longer works
        reg.session.execute(delete(PasswordResetToken).where(PasswordResetToken.patron_id == patron.id))
    reg.session.flush()
    reg.audit(f"patron.set_{kind}", patron_id=patron.id, must_change=must_change)


@dataclass(frozen=True)
class SecretCheck:
    ok: bool
    must_change: bool = False
    rehashed: bool = False  # the stored hash was upgraded to the current parameters


def verify_secret(reg: Registry, patron: Patron | None, kind: str, value: str) -> SecretCheck:
    """Check a password or PIN. Same cost for an unknown patron; upgrades an outdated hash."""
    credential = reg.session.get(Credential, (patron.id, kind)) if patron is not None else None
    verdict = _verdict(reg, credential.hash if credential else None, patron is not None and patron.status == "active",
                       value)
    if verdict is None or credential is None:
        return SecretCheck(False)
    if verdict.new_hash:
        credential.hash = verdict.new_hash
    return SecretCheck(True, credential.must_change, rehashed=verdict.new_hash is not None)


def check_secret(reg: Registry, on_file: SecretOnFile | None, value: str) -> SecretCheck:
    """``verify_secret`` for a secret already read with cards.find_secret_on_file (logins, verify calls)."""
    verdict = _verdict(reg, on_file.secret_hash if on_file else None,
                       on_file is not None and on_file.patron_status == "active", value)
    if verdict is None or on_file is None:
        return SecretCheck(False)
    if verdict.new_hash:
        reg.session.execute(update(Credential).where(Credential.patron_id == on_file.patron_id,
                                                     Credential.kind == on_file.kind)
                            .values(hash=verdict.new_hash))
    return SecretCheck(True, on_file.must_change, rehashed=verdict.new_hash is not None)


def _verdict(reg: Registry, stored: str | None, active: bool, value: str) -> Verification | None:
    """The hasher's answer when it says yes and the patron may log in, else None. The hash is
    checked first whatever the account's state, so the time taken tells nothing."""
    result = reg.hasher.verify(stored, value)
    return result if result.ok and stored is not None and active else None


def record_activity(reg: Registry, patron: Patron, *, at: datetime | None = None) -> bool:
    """Any use of the card (a login, a loan reported by a library) keeps the entry alive.

    The purge counts whole days over three years, so one write per Oslo day is enough: the
    rest of the day's logins change nothing and cost no write. True when something changed.
    ``at``: when it happened, for a library reporting later (never in the future); activity older
    than what the register knows changes nothing.
    """
    now = reg.now()
    if at is not None:
        if at > now:
            raise ValidationError("An activity cannot be reported for a moment in the future.")
        if at <= patron.last_activity_at:
            return False
    when = now if at is None else at
    if not _activity_due(patron.last_activity_at, patron.inactivity_warned_at, when):
        return False
    # Any newer activity clears a warning: if it is still old enough, the purge warns afresh,
    # so nobody is deleted without a warning 30 days old about their latest activity.
    patron.last_activity_at = when
    patron.inactivity_warned_at = None
    return True


ACTIVITY_KINDS = ("loan", "renewal", "return", "visit")


def report_activity(reg: Registry, patron: Patron, library_id: int, kind: str, *, at: datetime | None = None) -> bool:
    """A library reports that the patron used their card there (a loan at the desk keeps the entry
    alive as a login does); audited when it changed the register."""
    if kind not in ACTIVITY_KINDS:
        raise ValidationError(f"An activity is one of: {', '.join(ACTIVITY_KINDS)}.")
    changed = record_activity(reg, patron, at=at)
    if changed:
        reg.session.flush()
        reg.audit("patron.activity", patron_id=patron.id, library_id=library_id, kind=kind)
    return changed


def record_activity_on_file(reg: Registry, on_file: SecretOnFile) -> bool:
    """``record_activity`` after a login checked with check_secret (no Patron object loaded)."""
    now = reg.now()
    if not _activity_due(on_file.last_activity_at, on_file.inactivity_warned_at, now):
        return False
    reg.session.execute(update(Patron).where(Patron.id == on_file.patron_id)
                        .values(last_activity_at=now, inactivity_warned_at=None))
    return True


def _activity_due(last_activity_at: datetime, warned_at: datetime | None, now: datetime) -> bool:
    return warned_at is not None or oslo_date(last_activity_at) != oslo_date(now)


def delete_patron(reg: Registry, patron: Patron, *, reason: str = "patron_request") -> list[str]:
    """Delete the entry; return the ISILs of the libraries where the person remains a patron.

    Loans and claims are the libraries' business, so each membership is reported back. Card rows
    stay, retired and unlinked, so that no number is ever handed to someone else.
    """
    if patron is None:
        raise NotFound("No such patron.")
    remaining = sorted(m.library.isil for m in patron.memberships)
    now = reg.now()
    reg.session.execute(update(Card).where(Card.patron_id == patron.id, Card.status == "active")
                        .values(status="retired", retired_at=now, retired_reason="deleted"))
    reg.session.execute(update(Card).where(Card.patron_id == patron.id).values(patron_id=None))
    reg.audit("patron.delete", patron_id=patron.id, reason=reason, libraries=remaining)
    # Each library erases its copy too (the purge deletes through here, so its deletions are told as well).
    change_feed.record_for_members(reg, patron, "deleted")
    reg.session.delete(patron)
    reg.session.flush()
    return remaining


@dataclass(frozen=True)
class CredentialStatus:
    """What a librarian may know of a patron's secrets: whether they exist, never what they are."""

    has_password: bool
    has_pin: bool
    must_change: bool  # the password on file is a first or temporary one, to be replaced at next login
    first_credentials_changed: bool  # a first or temporary secret was ever replaced by the patron's own
    last_used: date  # the last login or reported activity (the register keeps one date for both)
    last_login: datetime | None  # the last login by any method (from the audit trail); None: none kept


def credential_status(reg: Registry, patron: Patron) -> CredentialStatus:
    found = {c.kind: c for c in reg.session.scalars(select(Credential).where(Credential.patron_id == patron.id))}
    password = found.get("password")
    return CredentialStatus(
        has_password=password is not None, has_pin="pin" in found,
        must_change=bool(password and password.must_change),
        first_credentials_changed=any(c.first_changed_at is not None for c in found.values()),
        last_used=oslo_date(patron.last_activity_at),
        last_login=reg.session.scalar(select(func.max(AuditEvent.at)).where(
            AuditEvent.patron_id == patron.id, AuditEvent.action.in_(LOGIN_AUDIT_ACTIONS))))


# Every completed login is audited under one of these (idp.auth.password, idp.web.idporten,
# idp.auth.federation); the audit trail is where the last login is kept, with no column written per login.
LOGIN_AUDIT_ACTIONS = ("login.password", "login.idporten", "login.federation")


__all__ = ["ACTIVITY_KINDS", "Address", "CredentialStatus", "IdKind", "NewPatron", "SecretCheck", "birth_date_of",
           "check_secret", "clean_address", "credential_status", "delete_patron", "existing_account",
           "find_by_national_id",
           "patron_by_card", "read_full_record", "record_activity", "record_activity_on_file", "register_patron",
           "report_activity", "set_secret", "update_patron", "verify_secret"]
