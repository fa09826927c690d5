"""What follows from a library's data processing agreement and its compliance (issue 15).

The rules, as the issue states them: the national library records each library's DPA and a
deadline. A library without a DPA gets a reminder notice to its contact address at the deadline and
14 days later, a last notice at 28 days, and from 42 days its system's staff operations are refused
until the DPA is recorded; until then every API answer carries a warning. A non-compliant library's
patrons are local only: its system sees only its local patrons, and patrons it registers get local
cards (seed: the progress note).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from idp import notifications
from idp.delivery import HttpSmsGateway, Messenger, SmtpMailer
from idp.errors import NotAllowed, NotFound, ValidationError
from idp.registry import agreements, purge
from idp.registry.models import AuditEvent, Library, Notification
from idp.services import Services
from tests.conftest import FakeClock
from tests.unit.factories import library, patron
from tests.unit.test_otp_delivery import Gateway, SmtpSink
from tests.unit.test_otp_delivery import gateway, smtp_sink  # noqa: F401 - fixtures

pytestmark = pytest.mark.backends  # the daily run selects due libraries by date in SQL

OSLO = "NO-2030000"
DEADLINE = date(2027, 6, 1)  # "Vi minner om fristen 1. juni" (the progress note)
# Noon in Oslo on a given day, so that the Oslo date is that day whatever the offset.
NOON = 10  # UTC hour


def at(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, NOON, 0, tzinfo=UTC)


def state(days_after_deadline: int, signed: date | None = None) -> agreements.DpaState:
    lib = Library(dpa_deadline=DEADLINE, dpa_signed=signed)
    return agreements.dpa_state(lib, DEADLINE + timedelta(days=days_after_deadline))


@pytest.fixture
def oslo(services: Services) -> None:
    with services.registry("test") as reg:
        library(reg)
        agreements.update(reg, OSLO, contact_email="post@oslo.example")


# -- the deadline arithmetic -----------------------------------------------------------------------

@pytest.mark.parametrize(("days", "notices", "warned", "refused"), [
    pytest.param(-1, 0, False, False, id="day-before-deadline"),
    pytest.param(0, 1, True, False, id="deadline"),
    pytest.param(13, 1, True, False, id="13-days"),
    pytest.param(14, 2, True, False, id="14-days"),
    pytest.param(27, 2, True, False, id="27-days"),
    pytest.param(28, 3, True, False, id="28-days-last-notice"),
    pytest.param(41, 3, True, False, id="41-days"),
    pytest.param(42, 3, False, True, id="42-days-refused"),
    pytest.param(400, 3, False, True, id="a-year-on"),
])
def test_notices_warnings_and_refusal_follow_the_deadline(days: int, notices: int, warned: bool,
                                                          refused: bool) -> None:
    found = state(days)
    assert (found.reminders_due, found.warning() is not None, found.refused, found.refusal() is not None) == (
        notices, warned, refused, refused)
    assert found.refused_from == DEADLINE + timedelta(days=42)


def test_the_warning_and_the_refusal_say_why_and_what_to_do() -> None:
    warning, refusal = state(3).warning(), state(42).refusal()
    assert warning is not None and refusal is not None
    for text in (warning, refusal):
        assert "data processing agreement" in text and "2027-06-01" in text and "national library" in text
    assert "From 2027-07-13" in warning
    with pytest.raises(agreements.DpaMissing, match="refused") as info:
        state(42).require()
    assert info.value.http_status == 403 and info.value.code == "dpa_missing"
    state(41).require()  # not refused yet: nothing raised


@pytest.mark.parametrize("days", [-1, 0, 28, 42, 400])
def test_a_recorded_dpa_ends_every_consequence(days: int) -> None:
    found = state(days, signed=DEADLINE + timedelta(days=max(days, 0)) - timedelta(days=1))
    assert (found.missing, found.reminders_due, found.warning(), found.refused) == (False, 0, None, False)


def test_a_library_without_a_deadline_is_neither_reminded_nor_refused() -> None:
    found = agreements.dpa_state(Library(dpa_deadline=None, dpa_signed=None), date(2030, 1, 1))
    assert (found.reminders_due, found.warning(), found.refused) == (0, None, False)


# -- recording the deadline -------------------------------------------------------------------------

def test_a_deadline_is_recorded_audited_and_a_new_one_restarts_the_reminders(services: Services, oslo: None) -> None:
    with services.registry("test") as reg:
        assert agreements.set_dpa_deadline(reg, OSLO, DEADLINE).dpa_deadline == DEADLINE
        reg.session.get(Library, 1).dpa_reminders_sent = 2  # type: ignore[union-attr]
        later = agreements.set_dpa_deadline(reg, OSLO, DEADLINE + timedelta(days=30))
        assert (later.dpa_deadline, later.dpa_reminders_sent) == (DEADLINE + timedelta(days=30), 0)
        reg.session.flush()
        events = [(e.action, e.detail) for e in reg.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "library.set_dpa_deadline").order_by(AuditEvent.id))]
    assert events == [("library.set_dpa_deadline", {"deadline": "2027-06-01", "previous": None}),
                      ("library.set_dpa_deadline", {"deadline": "2027-07-01", "previous": "2027-06-01"})]


def snapshot(services: Services) -> tuple[Any, ...]:
    with services.registry("test") as reg:
        lib = reg.session.scalar(select(Library).where(Library.isil == OSLO))
        assert lib is not None
        return lib.dpa_deadline, lib.dpa_reminders_sent, len(reg.session.scalars(select(AuditEvent)).all())


@pytest.mark.parametrize(("isil", "deadline", "error", "says"), [
    pytest.param(OSLO, date(2026, 11, 22), ValidationError, "past", id="yesterday"),
    pytest.param(OSLO, datetime(2027, 6, 1, tzinfo=UTC), ValidationError, "YYYY-MM-DD", id="a-datetime"),
    pytest.param(OSLO, "2027-06-01", ValidationError, "YYYY-MM-DD", id="a-string"),
    pytest.param("NO-9999999", DEADLINE, NotFound, "NO-9999999", id="unknown-library"),
])
def test_a_bad_deadline_is_refused_and_nothing_changes(services: Services, oslo: None, isil: str, deadline: Any,
                                                      error: type[Exception], says: str) -> None:
    before = snapshot(services)
    with pytest.raises(error, match=says), services.registry("test") as reg:
        agreements.set_dpa_deadline(reg, isil, deadline)
    assert snapshot(services) == before


def test_today_is_a_valid_deadline(services: Services, oslo: None) -> None:
    with services.registry("test") as reg:
        assert agreements.set_dpa_deadline(reg, OSLO, date(2026, 11, 23)).dpa_deadline == date(2026, 11, 23)


# -- the daily run ----------------------------------------------------------------------------------

def notices(services: Services) -> list[tuple[Any, ...]]:
    with services.registry("test") as reg:
        return [tuple(row) for row in reg.session.execute(
            select(Notification.library_id, Notification.patron_id, Notification.kind, Notification.created_at,
                   Notification.data).order_by(Notification.id))]


def daily_runs(services: Services, clock: FakeClock, first: date, last: date) -> None:
    """Run the daily job twice a day (a timer firing twice must send nothing twice)."""
    day = first
    while day <= last:
        for hour in (NOON, NOON + 1):
            clock.now = at(day).replace(hour=hour)
            with services.registry("test") as reg:
                purge.purge_inactive(reg)
        day += timedelta(days=1)


def test_the_daily_run_sends_each_notice_once_on_its_day(services: Services, clock: FakeClock, oslo: None) -> None:
    with services.registry("test") as reg:
        agreements.set_dpa_deadline(reg, OSLO, DEADLINE)
        oslo_id = reg.session.scalar(select(Library.id).where(Library.isil == OSLO))
    daily_runs(services, clock, DEADLINE - timedelta(days=3), DEADLINE + timedelta(days=60))
    data = {"library": OSLO, "deadline": "2027-06-01", "refused_from": "2027-07-13"}
    assert notices(services) == [
        (oslo_id, None, "dpa_reminder", at(DEADLINE), data),
        (oslo_id, None, "dpa_reminder", at(DEADLINE + timedelta(days=14)), data),
        (oslo_id, None, "dpa_last_notice", at(DEADLINE + timedelta(days=28)), data)]
    with services.registry("test") as reg:
        audited = list(reg.session.scalars(select(AuditEvent.detail).where(AuditEvent.action == "library.dpa_reminder")
                                           .order_by(AuditEvent.id)))
    assert audited == [{"reminder": 1, "last": False}, {"reminder": 2, "last": False}, {"reminder": 3, "last": True}]


def test_a_recorded_dpa_stops_the_reminders(services: Services, clock: FakeClock, oslo: None) -> None:
    with services.registry("test") as reg:
        agreements.set_dpa_deadline(reg, OSLO, DEADLINE)
    daily_runs(services, clock, DEADLINE, DEADLINE + timedelta(days=5))
    with services.registry("test") as reg:
        agreements.set_dpa(reg, OSLO, DEADLINE + timedelta(days=5))
    daily_runs(services, clock, DEADLINE + timedelta(days=6), DEADLINE + timedelta(days=60))
    assert [n[2] for n in notices(services)] == ["dpa_reminder"]


def test_a_run_missed_for_days_sends_only_the_newest_notice_due(services: Services, clock: FakeClock,
                                                                oslo: None) -> None:
    with services.registry("test") as reg:
        agreements.set_dpa_deadline(reg, OSLO, DEADLINE)
    clock.now = at(DEADLINE + timedelta(days=30))
    with services.registry("test") as reg:
        assert purge.purge_inactive(reg, dry_run=True).dpa_reminded == [OSLO]
        reg.session.rollback()
    assert notices(services) == []  # the dry run queued nothing
    with services.registry("test") as reg:
        assert purge.purge_inactive(reg).dpa_reminded == [OSLO]
    assert [n[2] for n in notices(services)] == ["dpa_last_notice"]


# -- delivery to the library's contact address ----------------------------------------------------

def test_the_notice_is_mailed_to_the_contact_address_in_both_languages(services: Services, clock: FakeClock,
                                                                        oslo: None, smtp_sink: SmtpSink,
                                                                        gateway: Gateway) -> None:
    with services.registry("test") as reg:
        agreements.set_dpa_deadline(reg, OSLO, DEADLINE)
    daily_runs(services, clock, DEADLINE + timedelta(days=28), DEADLINE + timedelta(days=28))
    messenger = Messenger(SmtpMailer(host=smtp_sink.host, port=smtp_sink.port, tls="none"),
                          HttpSmsGateway(gateway.url, "gw-token"), "noreply@bibliotekkortet.no")
    report = notifications.deliver_pending(lambda: services.registry("notifier"), messenger)
    assert (report.email, report.sms) == (1, 0) and gateway.requests == []
    mail = smtp_sink.wait_for("post@oslo.example")
    assert mail.message["Subject"] == "Siste varsel: databehandleravtale / Last notice: agreement missing"
    assert "databehandleravtale for Oslo" in mail.text and "Fra 13.07.2027" in mail.text
    assert "agreement on record for Oslo" in mail.text and "From 2027-07-13" in mail.text
    with services.registry("test") as reg:
        event = reg.session.scalars(select(AuditEvent).where(AuditEvent.action == "notification.email")).one()
        assert (event.patron_id, event.library_id is not None) == (None, True)


def test_a_library_without_a_contact_address_is_settled_as_no_address(services: Services, clock: FakeClock,
                                                                      smtp_sink: SmtpSink, gateway: Gateway) -> None:
    with services.registry("test") as reg:
        library(reg)
        agreements.set_dpa_deadline(reg, OSLO, DEADLINE)
    daily_runs(services, clock, DEADLINE, DEADLINE)
    messenger = Messenger(SmtpMailer(host=smtp_sink.host, port=smtp_sink.port, tls="none"),
                          HttpSmsGateway(gateway.url, "gw-token"), "noreply@bibliotekkortet.no")
    assert notifications.deliver_pending(lambda: services.registry("notifier"), messenger).no_address == 1
    assert smtp_sink.received == [] and gateway.requests == []


# -- non-compliant libraries: their patrons are local only -----------------------------------------

def test_a_non_compliant_library_sees_only_its_local_patrons(services: Services, oslo: None) -> None:
    with services.registry("test") as reg:
        national, _ = patron(reg, nth=0)
        local, _ = patron(reg, nth=1, local_card="L-0001")
        oslo_library = reg.session.scalars(select(Library)).one()
        assert agreements.sees_patron(oslo_library, national) and agreements.sees_patron(oslo_library, local)
        agreements.update(reg, OSLO, compliant=False)
        assert not agreements.sees_patron(oslo_library, national)
        assert agreements.sees_patron(oslo_library, local)


def test_a_non_compliant_library_registers_local_patrons_only(services: Services, oslo: None) -> None:
    with services.registry("test") as reg:
        oslo_library = reg.session.scalars(select(Library)).one()
        agreements.check_staff_registration(oslo_library, local_card=None)  # compliant: national is fine
        agreements.update(reg, OSLO, compliant=False)
        agreements.check_staff_registration(oslo_library, local_card="L-0001")
        with pytest.raises(NotAllowed, match="local") as info:
            agreements.check_staff_registration(oslo_library, local_card=None)
        assert info.value.code == "library_not_compliant"
