"""The libraries' agreements with the national library: a contact e-mail for notices to the
library, its lending rules (each new text a new version; a patron's acceptance names the version),
whether it is compliant with the national terms, and when its data processing agreement was signed.

Only the data: what follows from a missing DPA or non-compliance is decided elsewhere. No Flask here.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import overload

from sqlalchemy import func, select

from idp.errors import ValidationError
from idp.registry.context import Registry
# current_rules lives with the libraries (registering needs it, and this module imports patrons).
from idp.registry.libraries import current_rules as current_rules
from idp.registry.libraries import get_library
from idp.registry.models import LendingRules, Library
from idp.registry.patrons import clean_email

MAX_RULES = 100_000  # characters: a few pages of lending rules


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
