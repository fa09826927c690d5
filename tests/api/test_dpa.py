"""A library's data processing agreement and compliance, as its system meets them over HTTP (issue 15).

The rules: without a DPA, from 42 days after the deadline the library system's staff operations are
refused (403 with a problem document saying why) until the DPA is recorded; until then every API
answer carries the warning in its body (``warnings``), not in the obsolete HTTP Warning header. A
non-compliant library's system sees only its local patrons.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from idp.registry import agreements
from idp.registry.models import AuditEvent
from tests.api.conftest import OSLO, MakeDesk, ensure_library
from tests.conftest import FakeClock
from tests.flows.conftest import LiveIdp
from tests.nin import person
from tests.unit.factories import ADULT_BORN, patron

PROBLEM = "application/problem+json"
DEADLINE = date(2026, 11, 23)  # the conftest clock's day: a deadline may not lie in the past


@pytest.fixture
def moved(live: LiveIdp, clock: FakeClock) -> FakeClock:
    """The live server on the test's clock, so a test can move the register's time."""
    live.services.clock = clock
    ensure_library(live, OSLO, "Oslo")
    return clock


def set_deadline(live: LiveIdp, deadline: date = DEADLINE) -> None:
    with live.services.registry("test") as reg:
        agreements.set_dpa_deadline(reg, OSLO, deadline)


def days_after_deadline(clock: FakeClock, days: int) -> None:
    clock.now = datetime(DEADLINE.year, DEADLINE.month, DEADLINE.day, 11, 0, tzinfo=UTC) + timedelta(days=days)


def register(live: LiveIdp, nth: int = 0, **fields: Any) -> tuple[int, str, str]:
    nid = person(ADULT_BORN, nth)
    with live.services.registry("test") as reg:
        found, card = patron(reg, nth=nth, national_id=nid, **fields)
        return found.id, card.number, nid


def audit_count(live: LiveIdp) -> int:
    with live.services.registry("test") as reg:
        return int(reg.session.scalar(select(func.count()).select_from(AuditEvent)) or 0)


def test_before_the_deadline_answers_carry_no_warning(live: LiveIdp, moved: FakeClock, make_desk: MakeDesk) -> None:
    set_deadline(live, DEADLINE + timedelta(days=1))
    _, number, _ = register(live)
    answer = make_desk().call("POST", "/patrons/lookup", json={"card_number": number})
    assert answer.status_code == 200 and answer.json()["warnings"] is None


@pytest.mark.parametrize("days", [0, 41])
def test_from_the_deadline_every_answer_carries_the_warning_in_its_body(live: LiveIdp, moved: FakeClock,
                                                                         make_desk: MakeDesk, days: int) -> None:
    set_deadline(live)
    patron_id, number, _ = register(live)
    days_after_deadline(moved, days)
    desk = make_desk()  # a token issued on that day
    found = desk.call("POST", "/patrons/lookup", json={"card_number": number})
    read = desk.call("GET", f"/patrons/{patron_id}")
    for answer in (found, read):
        assert answer.status_code == 200, answer.text
        (warning,) = answer.json()["warnings"]
        assert "data processing agreement" in warning and "2026-11-23" in warning and "2027-01-04" in warning
        assert "Warning" not in answer.headers
        assert answer.json()["patron"]["id"] == patron_id
    missing = desk.call("GET", "/patrons/999999")
    assert missing.status_code == 404 and "warnings" not in missing.json()  # problems are not answers


def test_from_42_days_staff_operations_are_refused_until_the_dpa_is_recorded(live: LiveIdp, moved: FakeClock,
                                                                               make_desk: MakeDesk) -> None:
    set_deadline(live)
    patron_id, number, nid = register(live)
    days_after_deadline(moved, 42)
    desk = make_desk()
    before = audit_count(live)
    calls = [desk.call("POST", "/patrons/lookup", json={"card_number": number}),
             desk.call("POST", "/patrons/lookup", json={"national_id": nid}),
             desk.call("GET", f"/patrons/{patron_id}")]
    for refused in calls:
        assert refused.status_code == 403, refused.text
        assert refused.headers["Content-Type"] == PROBLEM
        problem = refused.json()
        assert problem["type"] == "/api/v1/problems/dpa-missing"
        assert "data processing agreement" in problem["detail"] and "national library" in problem["detail"]
        assert nid not in refused.text and "Kari" not in refused.text
    assert audit_count(live) == before  # nothing was read, so nothing audited
    with live.services.registry("test") as reg:
        agreements.set_dpa(reg, OSLO, moved.now.date())
    again = desk.call("POST", "/patrons/lookup", json={"card_number": number})
    assert again.status_code == 200 and again.json()["warnings"] is None


def test_a_non_compliant_library_sees_only_its_local_patrons(live: LiveIdp, moved: FakeClock,
                                                             make_desk: MakeDesk) -> None:
    national_id, national_card, nid = register(live, 0)
    local_id, local_card, _ = register(live, 1, local_card="L-0001")
    desk = make_desk()
    assert desk.call("POST", "/patrons/lookup", json={"card_number": national_card}).status_code == 200
    with live.services.registry("test") as reg:
        agreements.update(reg, OSLO, compliant=False)
    refused = [desk.call("POST", "/patrons/lookup", json={"card_number": national_card}),
               desk.call("POST", "/patrons/lookup", json={"national_id": nid}),
               desk.call("GET", f"/patrons/{national_id}")]
    for answer in refused:
        assert answer.status_code == 404 and answer.json()["type"] == "/api/v1/problems/patron-not-found"
    local = desk.call("POST", "/patrons/lookup", json={"card_number": local_card})
    assert local.status_code == 200 and local.json()["patron"]["id"] == local_id
    assert desk.call("GET", f"/patrons/{local_id}").status_code == 200
