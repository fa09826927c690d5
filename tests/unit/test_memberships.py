"""Being a patron of several libraries: what each library sees, activation, notification, audit."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from idp.errors import NotAllowed, NotFound
from idp.registry import memberships, patrons
from idp.registry.context import Registry
from idp.registry.libraries import get_library
from idp.registry.models import AuditEvent, Notification
from idp.registry.records import LimitedRecord, PatronRecord
from tests.unit.factories import library, patron

pytestmark = pytest.mark.backends  # the register's constraints and queries


@pytest.fixture
def two(reg: Registry) -> Registry:
    library(reg)
    library(reg, "NO-4601000", "Bergen")
    return reg


def test_before_activation_a_library_sees_only_name_and_cards(two: Registry) -> None:
    reg = two
    p, card = patron(reg)
    memberships.add_to_library(reg, p, "NO-4601000")
    view = memberships.library_view(reg, p, "NO-4601000")
    assert isinstance(view, LimitedRecord)
    assert set(view.to_dict()) == {"name", "cards", "full"}
    assert view.to_dict()["cards"] == [{"number": card.number, "kind": "digital", "library": "NO-2030000"}]
    flat = repr(view.to_dict())
    assert "kari@example.org" not in flat and "+4799999999" not in flat and "1985" not in flat


def test_after_accepting_the_lending_rules_the_library_sees_the_full_record(two: Registry) -> None:
    reg = two
    p, _ = patron(reg)
    memberships.accept_lending_rules(reg, p, "NO-4601000")
    view = memberships.library_view(reg, p, "NO-4601000")
    assert isinstance(view, PatronRecord)
    assert (view.email, view.phone, str(view.birth_date)) == ("kari@example.org", "+4799999999", "1985-03-12")
    assert [(m.library, m.rules_accepted) for m in view.libraries] == [("NO-2030000", True), ("NO-4601000", True)]


def test_a_library_that_never_added_the_patron_sees_the_minimum(two: Registry) -> None:
    p, _ = patron(two)
    assert isinstance(memberships.library_view(two, p, "NO-4601000"), LimitedRecord)


def test_the_patron_is_notified_once_when_a_library_adds_them(two: Registry) -> None:
    reg = two
    p, _ = patron(reg)
    memberships.add_to_library(reg, p, "NO-4601000")
    memberships.add_to_library(reg, p, "no-4601000")  # again: no second notice
    notes = reg.session.scalars(select(Notification).where(Notification.patron_id == p.id)).all()
    assert [(n.kind, n.data) for n in notes] == [("library_added", {"library": "NO-4601000"})]


def test_full_reads_and_changes_are_audited_limited_reads_are_not_full(two: Registry) -> None:
    reg = two
    p, _ = patron(reg)
    memberships.add_to_library(reg, p, "NO-4601000")
    memberships.library_view(reg, p, "NO-4601000")
    memberships.accept_lending_rules(reg, p, "NO-4601000")
    memberships.library_view(reg, p, "NO-4601000")
    patrons.read_full_record(reg, p, purpose="operator")
    events = reg.session.scalars(select(AuditEvent).where(AuditEvent.patron_id == p.id).order_by(AuditEvent.id))
    actions = [(e.action, e.detail.get("purpose")) for e in events]
    assert actions == [("patron.create", None), ("card.issue", None), ("membership.add", None),
                       ("membership.activate", None), ("patron.read_full", "library:NO-4601000"),
                       ("patron.read_full", "operator")]


def test_home_library_must_be_an_activated_library(two: Registry) -> None:
    reg = two
    p, _ = patron(reg)
    with pytest.raises(NotAllowed, match="activate"):
        memberships.set_home_library(reg, p, "NO-4601000")
    memberships.add_to_library(reg, p, "NO-4601000")
    with pytest.raises(NotAllowed):
        memberships.set_home_library(reg, p, "NO-4601000")
    memberships.accept_lending_rules(reg, p, "NO-4601000")
    memberships.set_home_library(reg, p, "NO-4601000")
    assert p.home_library.isil == "NO-4601000"
    with pytest.raises(NotAllowed, match="home library"):
        memberships.remove_from_library(reg, p, "NO-4601000")
    memberships.remove_from_library(reg, p, "NO-2030000")
    assert [m.library.isil for m in p.memberships] == ["NO-4601000"]
    with pytest.raises(NotFound):
        memberships.remove_from_library(reg, p, "NO-2030000")


def test_a_local_account_cannot_join_other_libraries(two: Registry) -> None:
    p, _ = patron(two, local_card="L-77")
    with pytest.raises(NotAllowed, match="local"):
        memberships.add_to_library(two, p, "NO-4601000")


def test_unknown_library(two: Registry) -> None:
    p, _ = patron(two)
    with pytest.raises(NotFound, match="NO-0000001"):
        memberships.add_to_library(two, p, "NO-0000001")


def test_a_new_home_library_and_a_removal_are_audited_naming_the_patron_and_the_library(two: Registry) -> None:
    """README, Audit: every change leaves an event saying what, which patron and which library."""
    reg = two
    p, _ = patron(reg)
    memberships.accept_lending_rules(reg, p, "NO-4601000")
    memberships.set_home_library(reg, p, "NO-4601000")
    memberships.remove_from_library(reg, p, "NO-2030000")
    bergen, oslo = (get_library(reg, isil).id for isil in ("NO-4601000", "NO-2030000"))
    events = reg.session.scalars(select(AuditEvent).where(
        AuditEvent.action.in_(["patron.update", "membership.remove"])).order_by(AuditEvent.id))
    assert [(e.action, e.patron_id, e.library_id, e.detail) for e in events] == [
        ("patron.update", p.id, bergen, {"fields": ["home_library"]}),
        ("membership.remove", p.id, oslo, {}),
    ]


def test_joining_and_activating_at_a_library_are_audited_naming_the_library(two: Registry) -> None:
    """README, Audit: every change names which patron and which library."""
    reg = two
    p, _ = patron(reg)
    memberships.add_to_library(reg, p, "NO-4601000")
    memberships.accept_lending_rules(reg, p, "NO-4601000")
    bergen = get_library(reg, "NO-4601000").id
    events = reg.session.scalars(select(AuditEvent).where(
        AuditEvent.action.in_(["membership.add", "membership.activate"])).order_by(AuditEvent.id))
    assert [(e.action, e.patron_id, e.library_id) for e in events] == [
        ("membership.add", p.id, bergen), ("membership.activate", p.id, bergen)]
