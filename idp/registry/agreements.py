"""The libraries' agreements with the national library: a contact e-mail for notices to the
library, its lending rules (each new text a new version; a patron's acceptance names the version),
whether it is compliant with the national terms, and when its data processing agreement was signed.

And what follows from them, decided here once for the CLI, the daily run and the API:

- A library without a DPA by its deadline is reminded at its contact address on the deadline and
  14 days later, gets a last notice at 28 days, and from 42 days its system's staff operations are
  refused until the DPA is recorded (``dpa_state``; until then every API answer carries a warning).
  What patrons do themselves is never refused.
- A non-compliant library's patrons are local only (seed: the progress note): its system sees only
  its own local accounts (``sees_patron``) and registers local accounts only
  (``check_staff_registration``); a patron active at no compliant library is not a valid patron for
  national services (the claim ``valid_patron``, idp.claims.builtin). No Flask here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Protocol, overload

from sqlalchemy import bindparam, func, select

from idp.errors import NotAllowed, ValidationError
from idp.registry.context import Registry
# current_rules lives with the libraries (registering needs it, and this module imports patrons).
from idp.registry.libraries import current_rules as current_rules
from idp.registry.libraries import get_library
from idp.registry.models import LendingRules, Library, Patron
from idp.registry.patrons import clean_email

MAX_RULES = 100_000  # characters: a few pages of lending rules
# Days after the deadline at which a library without a DPA is sent a notice (the last one is the
# last notice), and from which its system's staff operations are refused.
REMINDER_DAYS = (0, 14, 28)
REFUSED_AFTER_DAYS = 42


class DpaMissing(NotAllowed):
    """The library's system is refused: its DPA is more than REFUSED_AFTER_DAYS days overdue."""

    code = "dpa_missing"


class NotCompliant(NotAllowed):
    """A non-compliant library tried what only a compliant one may (e.g. register a national account)."""

    code = "library_not_compliant"


@dataclass(frozen=True)
class DpaState:
    """Where a library stands with its data processing agreement on ``today`` (Oslo date)."""

    deadline: date | None
    signed: date | None
    today: date

    @property
    def missing(self) -> bool:
        """A deadline is set and no agreement is recorded (before the deadline too)."""
        return self.signed is None and self.deadline is not None

    @property
    def refused_from(self) -> date | None:
        return self.deadline + timedelta(days=REFUSED_AFTER_DAYS) if self.missing and self.deadline else None

    @property
    def reminders_due(self) -> int:
        """How many of the notices (REMINDER_DAYS) are due by today: 0 to 3; the third is the last."""
        if not self.missing or self.deadline is None:
            return 0
        return sum(self.today >= self.deadline + timedelta(days=days) for days in REMINDER_DAYS)

    @property
    def refused(self) -> bool:
        """The library's system may do no staff operations until the DPA is recorded."""
        return self.refused_from is not None and self.today >= self.refused_from

    @property
    def overdue(self) -> bool:
        """The deadline has come, no DPA, not yet refused: every API answer carries ``warning``."""
        return self.reminders_due > 0 and not self.refused

    def warning(self) -> str | None:
        """What the library's system is told while overdue (no personal data: dates only)."""
        if not self.overdue or self.deadline is None or self.refused_from is None:
            return None
        return (f"No data processing agreement is recorded for this library (deadline {self.deadline.isoformat()}). "
                f"From {self.refused_from.isoformat()} this library's system will be refused until the national "
                "library records the signed agreement: sign it and send it to the national library.")

    def refusal(self) -> str | None:
        """Why the library's system is refused, and what to do; None when it is not."""
        if not self.refused or self.deadline is None:
            return None
        return ("No data processing agreement is recorded for this library: the deadline was "
                f"{self.deadline.isoformat()}, and since {self.refused_from.isoformat() if self.refused_from else ''} "
                "its system's staff operations are refused. Sign the agreement and send it to the national "
                "library; the system works again as soon as the agreement is recorded.")

    def require(self) -> None:
        """Raise DpaMissing (with ``refusal``) when the library's system is refused."""
        refusal = self.refusal()
        if refusal is not None:
            raise DpaMissing(refusal)


class _HasDpa(Protocol):
    @property
    def dpa_deadline(self) -> date | None: ...
    @property
    def dpa_signed(self) -> date | None: ...


def dpa_state(library: _HasDpa, today: date) -> DpaState:
    """The library's DPA state on ``today`` (a Library, or a row of its two DPA columns)."""
    return DpaState(deadline=library.dpa_deadline, signed=library.dpa_signed, today=today)


# What the API reads on every call of a library's system: the two columns, by library id.
DPA_COLUMNS = select(Library.dpa_deadline, Library.dpa_signed).where(Library.id == bindparam("library_id"))


@overload
def check_dpa_date(reg: Registry, signed: date) -> date: ...
@overload
def check_dpa_date(reg: Registry, signed: date | None) -> date | None: ...
def check_dpa_date(reg: Registry, signed: date | None) -> date | None:
    """A data processing agreement's signing date (libraries' and relying parties'): a date, not in the future."""
    if signed is None:
        return None
    if not isinstance(signed, date) or isinstance(signed, datetime):
        raise ValidationError("The data processing agreement date must be a date (YYYY-MM-DD).")
    if signed > reg.today():
        raise ValidationError(f"A data processing agreement cannot be signed in the future ({signed.isoformat()}).")
    return signed


def required_dpa_date(reg: Registry, signed: date | None) -> date:
    """The date an agreement was signed, when one is being recorded (set-dpa): required, then as above."""
    if signed is None:
        raise ValidationError("Give the date the data processing agreement was signed (YYYY-MM-DD).")
    return check_dpa_date(reg, signed)


def update(reg: Registry, isil: str, *, contact_email: str | None = None, rules: str | None = None,
           compliant: bool | None = None) -> Library:
    """Change what is given; leave the rest. A rules text equal to the current one is no new version."""
    library = get_library(reg, isil)
    email = _clean_contact(contact_email) if contact_email is not None else None
    text = _clean_rules(rules) if rules is not None else None
    if compliant is not None and not isinstance(compliant, bool):
        raise ValidationError("Compliance is yes or no.")
    if email is not None and email != library.contact_email:
        library.contact_email = email
        reg.audit("library.set_contact", library_id=library.id)
    if text is not None:
        current = current_rules(reg, library)
        if current is None or current.text != text:
            version = (reg.session.scalar(select(func.max(LendingRules.version))
                                          .where(LendingRules.library_id == library.id)) or 0) + 1
            reg.session.add(LendingRules(library_id=library.id, version=version, text=text, created_at=reg.now()))
            reg.audit("library.set_rules", library_id=library.id, version=version)
    if compliant is not None and compliant != library.compliant:
        library.compliant = compliant
        reg.audit("library.set_compliant", library_id=library.id, compliant=compliant)
    reg.session.flush()
    return library


def set_dpa(reg: Registry, isil: str, signed: date) -> Library:
    """Record the date the library's data processing agreement was signed (a later one replaces it)."""
    signed = required_dpa_date(reg, signed)
    library = get_library(reg, isil)
    if library.dpa_signed != signed:
        previous, library.dpa_signed = library.dpa_signed, signed
        reg.session.flush()
        reg.audit("library.set_dpa", library_id=library.id, dpa_signed=signed.isoformat(),
                  previous=previous.isoformat() if previous else None)
    return library


def set_dpa_deadline(reg: Registry, isil: str, deadline: date) -> Library:
    """Set by when the library must have signed its DPA. A new deadline starts the reminders afresh;
    it cannot lie in the past, so every library gets its notices before its system is refused."""
    if not isinstance(deadline, date) or isinstance(deadline, datetime):
        raise ValidationError("The deadline must be a date (YYYY-MM-DD).")
    if deadline < reg.today():
        raise ValidationError(f"A deadline cannot be in the past ({deadline.isoformat()}).")
    library = get_library(reg, isil)
    if library.dpa_deadline != deadline:
        previous, library.dpa_deadline = library.dpa_deadline, deadline
        library.dpa_reminders_sent = 0
        reg.session.flush()
        reg.audit("library.set_dpa_deadline", library_id=library.id, deadline=deadline.isoformat(),
                  previous=previous.isoformat() if previous else None)
    return library


def send_dpa_reminders(reg: Registry, *, dry_run: bool = False) -> list[str]:
    """The daily run: queue the notice due to each library without a DPA (REMINDER_DAYS), once each.

    Returns the ISILs reminded. A run missed for some days sends only the newest notice due, not
    the ones it skipped. Running again the same day sends nothing (``dpa_reminders_sent``)."""
    today = reg.today()
    due = reg.session.scalars(select(Library).where(
        Library.dpa_signed.is_(None), Library.dpa_deadline <= today,
        Library.dpa_reminders_sent < len(REMINDER_DAYS)).order_by(Library.id).with_for_update())
    reminded = []
    for library in list(due):
        state = dpa_state(library, today)
        if state.reminders_due <= library.dpa_reminders_sent or state.refused_from is None:
            continue
        reminded.append(library.isil)
        if dry_run:
            continue
        library.dpa_reminders_sent = state.reminders_due
        last = state.reminders_due == len(REMINDER_DAYS)
        reg.notify_library(library.id, "dpa_last_notice" if last else "dpa_reminder", library=library.isil,
                           deadline=library.dpa_deadline.isoformat() if library.dpa_deadline else "",
                           refused_from=state.refused_from.isoformat())
        reg.audit("library.dpa_reminder", library_id=library.id, reminder=state.reminders_due, last=last)
    reg.session.flush()
    return reminded


def sees_patron(library: Library, patron: Patron) -> bool:
    """Whether the library's system may find and read this patron at all: a non-compliant library's
    patrons are local only, so it sees its own local accounts and no national ones."""
    return library.compliant or patron.local_library_id == library.id


def check_staff_registration(library: Library, *, local_card: str | None) -> None:
    """A library's staff (its system, the desk) registering a patron: a non-compliant library may
    create local accounts only (a local card), never national ones. Patrons registering themselves
    are never held to this: what patrons do themselves is never blocked."""
    if not library.compliant and local_card is None:
        raise NotCompliant("This library does not meet the national register's terms, so it may register local "
                           "patrons only: give a local card number. Contact the national library about compliance.")


def _clean_contact(email: str) -> str:
    cleaned = clean_email(email)
    if cleaned is None:
        raise ValidationError("A library's contact address cannot be empty (expected name@domain).")
    return cleaned


def _clean_rules(text: str) -> str:
    text = text.strip() if isinstance(text, str) else ""
    if not text:
        raise ValidationError("The lending rules text is empty.")
    if len(text) > MAX_RULES:
        raise ValidationError(f"Lending rules are at most {MAX_RULES:,} characters.")
    return text
