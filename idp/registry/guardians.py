"""Cards for children: a guardian creates one for a child under 15; the link ends at 15."""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy import delete, select

from idp.errors import NotAllowed
from idp.registry.context import Registry
from idp.registry.dates import age_on, years_before
from idp.registry.models import Card, Guardianship, Patron
from idp.registry.patrons import NewPatron, national_identity, register_patron

CHILD_SELF_REGISTRATION_AGE = 15
GUARDIAN_MIN_AGE = 18


class GuardianRegisters(NotAllowed):
    """The person is under 15: a guardian creates their card (the page says how, not this message)."""


class RegistersAlone(NotAllowed):
    """The child is 15 or older: they register themselves."""


def _age(reg: Registry, patron: Patron) -> int | None:
    return age_on(patron.birth_date, reg.today()) if patron.birth_date else None


def register_child(reg: Registry, guardian: Patron, child: NewPatron) -> tuple[Patron, Card]:
    """Create a national account and card for a child under 15, kept linked to the guardian."""
    guardian_age = _age(reg, guardian)
    if guardian.local_library_id is not None or guardian_age is None or guardian_age < GUARDIAN_MIN_AGE:
        raise NotAllowed("Only an adult with a national account can create a card for a child.")
    patron, card = register_patron(reg, replace(child, local_card=None))
    child_age = _age(reg, patron)
    if child_age is None or child_age >= CHILD_SELF_REGISTRATION_AGE:
        # Raising rolls back the whole transaction, so the child's rows disappear with it.
        raise RegistersAlone(f"From {CHILD_SELF_REGISTRATION_AGE} a child registers alone.")
    reg.session.add(Guardianship(guardian_id=guardian.id, child_id=patron.id, created_at=reg.now()))
    reg.session.flush()
    reg.audit("guardianship.add", patron_id=patron.id, guardian_id=guardian.id)
    return patron, card


def register_self(reg: Registry, new: NewPatron) -> tuple[Patron, Card]:
    """A person registers themselves (identified by ID-porten): a national account and a digital
    card, from 15 only; under 15 a guardian creates the card (``register_child``)."""
    nid = national_identity(new.national_id, today=reg.today(), national=True)
    assert nid is not None  # noqa: S101 - a national account always has one
    if nid.birth_date is None or age_on(nid.birth_date, reg.today()) < CHILD_SELF_REGISTRATION_AGE:
        raise GuardianRegisters(f"Under {CHILD_SELF_REGISTRATION_AGE} a guardian creates the card: the guardian "
                                "logs in with ID-porten and creates a card for their child.")
    patron, card = register_patron(reg, replace(new, local_card=None))
    reg.audit("patron.self_register", patron_id=patron.id, library_id=card.library_id)
    return patron, card


def guardians_of(reg: Registry, child: Patron) -> list[Patron]:
    age = _age(reg, child)
    if age is None or age >= CHILD_SELF_REGISTRATION_AGE:
        return []
    return list(reg.session.scalars(select(Patron).join(Guardianship, Guardianship.guardian_id == Patron.id)
                                    .where(Guardianship.child_id == child.id).order_by(Patron.id)))


def end_outgrown_guardianships(reg: Registry, *, dry_run: bool = False) -> list[int]:
    """Children who turned 15 (Oslo date) are on their own: return their ids, and unlink unless dry."""
    today = reg.today()
    cutoff = years_before(today, CHILD_SELF_REGISTRATION_AGE)
    children = sorted(set(reg.session.scalars(
        select(Guardianship.child_id).join(Patron, Patron.id == Guardianship.child_id)
        .where(Patron.birth_date <= cutoff))))
    if children and not dry_run:
        reg.session.execute(delete(Guardianship).where(Guardianship.child_id.in_(children)))
        for child_id in children:
            reg.audit("guardianship.end", patron_id=child_id, reason="child_turned_15")
    return children
