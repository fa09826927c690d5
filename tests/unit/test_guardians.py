"""A guardian creates a card for a child under 15; the link lasts while the child is under 15."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlalchemy import func, select

from idp.errors import NotAllowed
from idp.registry import guardians
from idp.registry.models import AuditEvent, Guardianship, Patron
from idp.services import Services
from tests.conftest import FakeClock
from tests.unit.factories import library, new_patron, patron

pytestmark = pytest.mark.backends  # ages and dates compared in SQL

CHILD_BORN = date(2016, 6, 1)


def test_a_guardian_creates_a_card_for_a_child(services: Services) -> None:
    with services.registry("test") as reg:
        library(reg)
        parent, _ = patron(reg)
        child, card = guardians.register_child(reg, parent, new_patron(CHILD_BORN, name="Emma"))
        assert card.kind == "digital" and child.birth_date == CHILD_BORN
        assert [g.id for g in guardians.guardians_of(reg, child)] == [parent.id]


def test_from_15_a_child_registers_alone(services: Services) -> None:
    with services.registry("test") as reg:
        library(reg)
        parent, _ = patron(reg)
    with pytest.raises(NotAllowed, match="15"), services.registry("test") as reg:
        guardians.register_child(reg, reg.session.get(Patron, parent.id), new_patron(date(2011, 11, 23), name="Teen"))
    with services.registry("test") as reg:
        assert reg.session.scalar(select(func.count()).select_from(Patron)) == 1  # the teen's rows rolled back


def test_a_minor_cannot_be_a_guardian(services: Services) -> None:
    with services.registry("test") as reg:
        library(reg)
        young, _ = patron(reg, date(2010, 1, 1))
        with pytest.raises(NotAllowed, match="adult"):
            guardians.register_child(reg, young, new_patron(CHILD_BORN, nth=0))


def test_the_link_ends_on_the_15th_birthday_oslo_time(services: Services, clock: FakeClock) -> None:
    with services.registry("test") as reg:
        library(reg)
        parent, _ = patron(reg)
        child, _ = guardians.register_child(reg, parent, new_patron(CHILD_BORN, name="Emma"))
        child_id = child.id
    # 22:30 UTC on 31 May 2031 is already 1 June (the birthday) in Oslo.
    clock.now = datetime(2031, 5, 31, 21, 30, tzinfo=UTC)
    with services.registry("test") as reg:
        assert guardians.guardians_of(reg, reg.session.get(Patron, child_id)) != []
        assert guardians.end_outgrown_guardianships(reg) == []
    clock.now = datetime(2031, 5, 31, 22, 30, tzinfo=UTC)
    with services.registry("test") as reg:
        assert guardians.guardians_of(reg, reg.session.get(Patron, child_id)) == []
        assert guardians.end_outgrown_guardianships(reg, dry_run=True) == [child_id]
    with services.registry("test") as reg:
        assert guardians.end_outgrown_guardianships(reg) == [child_id]
    with services.registry("test") as reg:
        assert reg.session.scalar(select(func.count()).select_from(Guardianship)) == 0


def test_a_guardian_is_an_adult_from_the_18th_birthday_with_a_national_account(services: Services) -> None:
    """README: "An adult with a national account can create a card for a child under 15": 18 years
    old today is adult; a local account, however old, is not a national account. The audit names
    both the child and the guardian."""
    with services.registry("test") as reg:
        library(reg)
        today = reg.today()
        eighteen_today, _ = patron(reg, date(today.year - 18, today.month, min(today.day, 28)))
        local_only, _ = patron(reg, nth=1, national_id=None, local_card="L-77", birth_date=date(1970, 1, 1))
        with pytest.raises(NotAllowed, match="adult"):
            guardians.register_child(reg, local_only, new_patron(CHILD_BORN, nth=2))
    with services.registry("test") as reg:
        guardian = reg.session.get(Patron, eighteen_today.id)
        assert guardian is not None
        child, _ = guardians.register_child(reg, guardian, new_patron(CHILD_BORN, nth=3, name="Emma"))
        audited = list(reg.session.execute(select(AuditEvent.patron_id, AuditEvent.detail)
                                           .where(AuditEvent.action == "guardianship.add")))
    assert audited == [(child.id, {"guardian_id": guardian.id})]


def test_on_29_february_the_link_of_a_child_who_turned_15_ends_and_no_other(services: Services,
                                                                            clock: FakeClock) -> None:
    """README: the guardian link ends on the child's 15th birthday when purge-inactive runs, which
    it does every day, 29 February included (15 years before it has no 29 February)."""

    clock.now = datetime(2027, 1, 1, 12, 0, tzinfo=UTC)
    with services.registry("test") as reg:
        library(reg)
        parent, _ = patron(reg)
        older, _ = guardians.register_child(reg, parent, new_patron(date(2013, 2, 28), nth=1, name="Emma"))
        guardians.register_child(reg, parent, new_patron(CHILD_BORN, nth=2, name="Nora"))
    clock.now = datetime(2028, 2, 29, 12, 0, tzinfo=UTC)
    with services.registry("test") as reg:
        assert guardians.end_outgrown_guardianships(reg) == [older.id]


def test_a_child_of_15_whose_16th_birthday_is_still_to_come_registers_alone(services: Services,
                                                                            clock: FakeClock) -> None:
    """README: from 15 a child registers alone; a 15-year-old is 15 all year until the 16th birthday."""

    clock.now = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    with services.registry("test") as reg:
        library(reg)
        parent, _ = patron(reg)
        with pytest.raises(NotAllowed, match="15"):
            guardians.register_child(reg, parent, new_patron(date(2010, 12, 31), nth=1))  # 15, 16 in December


def test_the_end_of_a_guardianship_is_audited_naming_the_child(services: Services, clock: FakeClock) -> None:
    """README, Audit: every change names the patron it concerns."""

    with services.registry("test") as reg:
        library(reg)
        parent, _ = patron(reg)
        child, _ = guardians.register_child(reg, parent, new_patron(CHILD_BORN, nth=1))
    clock.now = datetime(2031, 6, 1, 12, 0, tzinfo=UTC)
    with services.registry("test") as reg:
        assert guardians.end_outgrown_guardianships(reg) == [child.id]
        ended = list(reg.session.execute(select(AuditEvent.patron_id, AuditEvent.detail)
                                         .where(AuditEvent.action == "guardianship.end")))
    assert ended == [(child.id, {"reason": "child_turned_15"})]
