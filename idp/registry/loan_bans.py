"""Loan bans, per library: a library bars a patron from borrowing there.

A patron is banned (the ``loan_ban`` claim, the verify API, the full record) when any library where they
are a member has a ban: a ban of a library they have left does not count. Setting or clearing a ban is
told to every library of the patron through the change feed, since each of them sees the flag.
"""

from __future__ import annotations

from sqlalchemy import Exists, exists

from idp.errors import NotFound, ValidationError
from idp.registry import changes
from idp.registry.context import Registry
from idp.registry.libraries import get_library
from idp.registry.models import Library, LoanBan, Membership, Patron

REASON_MAX = 200


def is_banned(patron: Patron) -> bool:
    """Any library where the patron is a member has a ban."""
    member_of = {m.library_id for m in patron.memberships}
    return any(ban.library_id in member_of for ban in patron.loan_bans)


def banned_clause() -> Exists:
    """``is_banned`` as SQL, for a query over Patron (the claims read it without loading the patron)."""
    return exists().where(LoanBan.patron_id == Patron.id, Membership.patron_id == LoanBan.patron_id,
                          Membership.library_id == LoanBan.library_id)


def _member_library(reg: Registry, patron: Patron, isil: str) -> Library:
    library = get_library(reg, isil)
    if not any(m.library_id == library.id for m in patron.memberships):
        raise NotFound(f"The patron is not a patron of {library.isil}.")
    return library


def set_loan_ban(reg: Registry, patron: Patron, isil: str, *, reason: str | None = None) -> bool:
    """Bar the patron from borrowing at ``isil`` (where they must be a member); True if it was not set."""
    note = " ".join(reason.split()) if reason else None
    if note is not None and (len(note) > REASON_MAX or not note.isprintable()):
        raise ValidationError(f"A reason has at most {REASON_MAX} printable characters.")
    library = _member_library(reg, patron, isil)
    ban = next((b for b in patron.loan_bans if b.library_id == library.id), None)
    if ban is not None:
        ban.reason = note
        reg.session.flush()
        return False
    patron.loan_bans.append(LoanBan(library_id=library.id, set_at=reg.now(), reason=note))
    reg.session.flush()
    reg.audit("patron.loan_ban_set", patron_id=patron.id, library_id=library.id)
    changes.record_for_members(reg, patron, "loan_ban_set")
    return True


def clear_loan_ban(reg: Registry, patron: Patron, isil: str) -> bool:
    """Lift ``isil``'s ban; True if there was one."""
    library = get_library(reg, isil)
    ban = next((b for b in patron.loan_bans if b.library_id == library.id), None)
    if ban is None:
        return False
    patron.loan_bans.remove(ban)
    reg.session.flush()
    reg.audit("patron.loan_ban_cleared", patron_id=patron.id, library_id=library.id)
    changes.record_for_members(reg, patron, "loan_ban_cleared")
    return True


__all__ = ["banned_clause", "clear_loan_ban", "is_banned", "set_loan_ban"]
