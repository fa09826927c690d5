"""Card number + password login for the web.

One generic failure for every reason (unknown card, wrong password, blocked account), and the
same argon2 work in each case, so neither the answer nor its timing tells whether a card exists.
A PIN is never accepted here: PINs are for kiosks and open-library doors.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from idp.errors import InvalidCardNumber, ValidationError
from idp.registry import cards, patrons
from idp.registry.cardnumbers import generic, national_form
from idp.registry.context import Registry
from idp.registry.models import Patron

_PIN_SHAPED = re.compile(r"\d{4,6}")


class Outcome(StrEnum):
    OK = "ok"
    FAILED = "failed"
    PIN_ON_WEB = "pin_on_web"


@dataclass(frozen=True)
class LoginResult:
    outcome: Outcome
    patron_id: int | None = None
    must_change: bool = False

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.OK


def looks_like_pin(secret: str) -> bool:
    """A password has at least 8 characters, so 4-6 digits can only be a PIN: say so, check nothing."""
    return bool(_PIN_SHAPED.fullmatch(secret))


def password_login(reg: Registry, username: str, password: str) -> LoginResult:
    if looks_like_pin(password):
        return LoginResult(Outcome.PIN_ON_WEB)
    on_file = cards.find_secret_on_file(reg, username, "password")
    check = patrons.check_secret(reg, on_file, password)
    if not check.ok or on_file is None:
        return LoginResult(Outcome.FAILED)
    if not check.rehashed:
        # Only bookkeeping is written below; a rehashed credential keeps the full guarantee.
        reg.relax_durability()
    patrons.record_activity_on_file(reg, on_file)
    reg.audit("login.password", patron_id=on_file.patron_id)
    return LoginResult(Outcome.OK, on_file.patron_id, check.must_change)


def patron_key(reg: Registry, username: str) -> str:
    """What the per-account limit counts against: the patron behind any spelling of their card,
    or the typed number itself, so unknown cards are limited exactly like known ones."""
    try:
        typed = generic(username)
    except InvalidCardNumber:
        return "card:invalid"
    national = national_form(typed)
    if national is not None:
        # One spelling per national number and one active national card per patron: no lookup needed.
        return f"card:{national}"
    card = cards.find_card(reg, username)
    return f"patron:{card.patron_id}" if card is not None and card.patron_id else f"card:{typed}"


def change_password(reg: Registry, patron_id: int, current: str, new: str) -> bool:
    """Set a new password after proving the current one; clears the must-change flag.

    Returns False when the current password is wrong; raises ValidationError for a new one that
    is malformed or the same as before.
    """
    patron = reg.session.get(Patron, patron_id)
    if patron is None or not patrons.verify_secret(reg, patron, "password", current).ok:
        return False
    if new == current:
        raise ValidationError("Choose a password different from the current one.")
    patrons.set_secret(reg, patron, "password", new, must_change=False)
    return True
