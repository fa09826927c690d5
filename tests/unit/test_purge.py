"""Three years without activity deletes an entry, after a warning 30 days before."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlalchemy import select

from idp.registry import guardians, patrons, purge
from idp.registry.models import AuditEvent, Guardianship, Notification, Patron
from idp.services import Services
from tests.conftest import FakeClock
from tests.unit.factories import library, new_patron, patron

pytestmark = pytest.mark.backends  # inactivity dates compared in SQL

START = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)


def ids(services: Services) -> list[int]:
    with services.registry("test") as reg:
        return list(reg.session.scalars(select(Patron.id).order_by(Patron.id)))


def run(services: Services, dry_run: bool = False) -> purge.PurgeReport:
    with services.registry("test") as reg:
        return purge.purge_inactive(reg, dry_run=dry_run)


def test_warning_then_deletion(services: Services, clock: FakeClock) -> None:
    clock.now = START
    with services.registry("test") as reg:
        library(reg)
        idle, _ = patron(reg, nth=0)
        busy, _ = patron(reg, nth=1)
        idle_id, busy_id = idle.id, busy.id

    clock.now = datetime(2028, 12, 15, 11, 0, tzinfo=UTC)  # 31 days before three idle years
    assert run(services).warned == []

    clock.now = datetime(2028, 12, 17, 12, 0, tzinfo=UTC)  # within 30 days of three years
    with services.registry("test") as reg:
        patrons.record_activity(reg, reg.session.get(Patron, busy_id))
    dry = run(services, dry_run=True)
    assert (dry.warned, dry.deleted) == ([idle_id], [])
    report = run(services)
    assert (report.warned, report.deleted) == ([idle_id], [])
    with services.registry("test") as reg:
        note = reg.session.scalar(select(Notification).where(Notification.kind == "inactivity_warning"))
        assert (note.patron_id, note.data) == (idle_id, {"deletion_on": "2029-01-16"})
    assert run(services).warned == []  # warned once only

    clock.now = datetime(2029, 1, 15, 12, 0, tzinfo=UTC)  # three years, but the warning is not 30 days old
    assert run(services).deleted == []

    clock.now = datetime(2029, 1, 16, 12, 0, tzinfo=UTC)
    assert run(services, dry_run=True).deleted == [idle_id]
    assert ids(services) == [idle_id, busy_id]
    assert run(services).deleted == [idle_id]
    assert ids(services) == [busy_id]


def test_activity_after_the_warning_saves_the_entry(services: Services, clock: FakeClock) -> None:
    clock.now = START
    with services.registry("test") as reg:
        library(reg)
        p, _ = patron(reg)
        pid = p.id
    clock.now = datetime(2029, 1, 1, tzinfo=UTC)
    assert run(services).warned == [pid]
    with services.registry("test") as reg:
        patrons.record_activity(reg, reg.session.get(Patron, pid))
    clock.now = datetime(2029, 3, 1, tzinfo=UTC)
    report = run(services)
    assert (report.warned, report.deleted) == ([], [])
    assert ids(services) == [pid]


def test_an_entry_idle_for_years_still_gets_30_days(services: Services, clock: FakeClock) -> None:
    """A purge run for the first time on an old register warns first; it never deletes unwarned."""
    clock.now = START
    with services.registry("test") as reg:
        library(reg)
        pid = patron(reg)[0].id
    clock.now = datetime(2035, 1, 1, tzinfo=UTC)
    report = run(services)
    assert (report.warned, report.deleted) == ([pid], [])
    with services.registry("test") as reg:
        assert reg.session.scalar(select(Notification.data)) == {"deletion_on": "2035-01-31"}
    clock.advance(days=30)
    assert run(services).deleted == [pid]


def test_the_daily_run_audits_warnings_and_deletions_and_its_dry_run_ends_no_guardianship(
        services: Services, clock: FakeClock) -> None:
    """README: three years without activity deletes an entry after a warning 30 days before; the
    guardian link ends on the child's 15th birthday "when purge-inactive runs" (`--dry-run` changes
    nothing); Audit: each change names the patron and what happened."""
    clock.now = START
    with services.registry("test") as reg:
        library(reg)
        parent, _ = patron(reg, nth=0)
        child, _ = guardians.register_child(reg, parent, new_patron(date(2012, 6, 1), nth=1))
        everyone = sorted([parent.id, child.id])

    def links() -> int:
        with services.registry("test") as reg:
            return len(list(reg.session.scalars(select(Guardianship))))

    clock.now = datetime(2028, 12, 17, 12, 0, tzinfo=UTC)  # within 30 days of three idle years; the child is 16
    dry = run(services, dry_run=True)
    assert (dry.guardianships_ended, links()) == ([child.id], 1)
    report = run(services)
    assert (report.guardianships_ended, links(), sorted(report.warned)) == ([child.id], 0, everyone)
    clock.now = datetime(2029, 1, 16, 12, 0, tzinfo=UTC)
    assert sorted(run(services).deleted) == everyone
    with services.registry("test") as reg:
        events = list(reg.session.execute(select(AuditEvent.action, AuditEvent.patron_id, AuditEvent.detail).where(
            AuditEvent.action.in_(["patron.inactivity_warning", "patron.delete"])).order_by(AuditEvent.id)))
    assert [(action, patron_id) for action, patron_id, _ in events] == \
        [("patron.inactivity_warning", i) for i in everyone] + [("patron.delete", i) for i in everyone]
    assert {detail.get("reason") for action, _, detail in events if action == "patron.delete"} == {"inactive_3_years"}
