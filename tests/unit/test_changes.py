"""The change feed's rules (issue 15): the register's own functions write, in the transaction of the change,
what changed for every library the patron is a member of at that moment (contact changed, left this
library, deleted or purged, card replaced, loan ban set or cleared); a library reads its own events in
order, with ids and a kind only; 90 days are kept, and an older cursor means resynchronise."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from idp.errors import ValidationError
from idp.registry import cards, changes, loan_bans, memberships, patrons, purge
from idp.registry.context import Registry
from idp.registry.libraries import get_library
from idp.registry.models import ChangeEvent, Notification, Patron
from idp.services import Services
from tests.conftest import FakeClock
from tests.unit.factories import library, patron

OSLO, BERGEN, TRONDHEIM = "NO-2030000", "NO-1201000", "NO-5001000"


def feed(reg: Registry, isil: str) -> list[tuple[int, str]]:
    library_id = get_library(reg, isil).id
    return [(c.patron_id, c.kind) for c in changes.list_changes(reg, library_id, None, 1000).changes]


@pytest.fixture
def kari(reg: Registry) -> Patron:
    """Member of Oslo (home) and Bergen; Trondheim exists but is not hers."""
    library(reg)
    library(reg, BERGEN, "Bergen")
    library(reg, TRONDHEIM, "Trondheim")
    p, _ = patron(reg)
    memberships.add_to_library(reg, p, BERGEN)
    return p


def test_a_contact_change_is_told_to_every_library_of_the_patron_and_the_old_address_is_notified(
        reg: Registry, kari: Patron) -> None:
    patrons.update_patron(reg, kari, email="ny@example.org")
    assert feed(reg, OSLO) == feed(reg, BERGEN) == [(kari.id, "contact_changed")]
    assert feed(reg, TRONDHEIM) == []
    notice = reg.session.scalar(select(Notification).where(Notification.kind == "account_changed"))
    assert reg.notice_address(notice) == "kari@example.org"
    patrons.update_patron(reg, kari, email="ny@example.org")  # no change, no event
    assert len(feed(reg, OSLO)) == 1


def test_a_refused_change_writes_no_event(reg: Registry, kari: Patron) -> None:
    with pytest.raises(ValidationError):
        patrons.update_patron(reg, kari, email="not an address")
    assert reg.session.scalars(select(ChangeEvent)).all() == []


def test_leaving_a_library_is_told_to_that_library(reg: Registry, kari: Patron) -> None:
    memberships.remove_from_library(reg, kari, BERGEN)
    assert feed(reg, BERGEN) == [(kari.id, "left_library")]
    assert feed(reg, OSLO) == []


def test_a_deletion_a_replaced_card_and_a_ban_are_told_to_every_library_of_the_patron(
        reg: Registry, kari: Patron) -> None:
    printed = next(s for s in kari.home_library.series if s.usage == "printed")
    cards.issue_card(reg, kari, kari.home_library, kind="printed", number=f"N{printed.first_number:09d}")
    loan_bans.set_loan_ban(reg, kari, BERGEN)
    loan_bans.clear_loan_ban(reg, kari, BERGEN)
    kari_id = kari.id
    patrons.delete_patron(reg, kari)
    expected = [(kari_id, kind) for kind in ("card_replaced", "loan_ban_set", "loan_ban_cleared", "deleted")]
    assert feed(reg, OSLO) == feed(reg, BERGEN) == expected
    assert feed(reg, TRONDHEIM) == []


def test_pages_follow_the_cursor_in_order_and_an_empty_page_keeps_the_position(reg: Registry, kari: Patron) -> None:
    oslo = get_library(reg, OSLO).id
    for n in range(5):
        patrons.update_patron(reg, kari, phone=f"+47 9000000{n}")
    first = changes.list_changes(reg, oslo, None, 2)
    second = changes.list_changes(reg, oslo, first.next, 2)
    third = changes.list_changes(reg, oslo, second.next, 2)
    seen = [c.cursor for page in (first, second, third) for c in page.changes]
    assert len(seen) == len(set(seen)) == 5
    assert changes.list_changes(reg, oslo, third.next, 2).changes == []
    later = changes.list_changes(reg, oslo, third.next, 2)
    assert later.changes == [] and changes.list_changes(reg, oslo, later.next, 2).changes == []
    # No personal data in an event: the library re-reads the record.
    assert {(c.patron_id, c.kind) for c in first.changes} == {(kari.id, "contact_changed")}


@pytest.mark.parametrize("cursor", ["", "abc", "1.2", "1.2.3.4", "-1.2.3", "1.2.99999999999999999999"])
def test_a_cursor_the_feed_never_gave_out_is_refused(reg: Registry, kari: Patron, cursor: str) -> None:
    with pytest.raises(ValidationError):
        changes.list_changes(reg, get_library(reg, OSLO).id, cursor, 10)


@pytest.mark.backends  # the erasure compares dates in SQL
def test_events_are_kept_90_days_by_the_daily_purge_and_an_older_cursor_means_resynchronise(
        services: Services, clock: FakeClock) -> None:
    clock.now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    with services.registry("test") as reg:
        library(reg)
        kari, _ = patron(reg)
        patrons.update_patron(reg, kari, email="en@example.org")
        oslo = get_library(reg, OSLO).id
        old_cursor = changes.list_changes(reg, oslo, None, 10).next
    clock.advance(days=89)
    with services.registry("test") as reg:
        patrons.update_patron(reg, reg.session.get(Patron, kari.id), email="to@example.org")
        assert purge.purge_inactive(reg, dry_run=True).changes_erased == 0
    clock.advance(days=2)  # the first event is 91 days old, the second 2
    with services.registry("test") as reg:
        assert purge.purge_inactive(reg, dry_run=True).changes_erased == 1
        assert len(reg.session.scalars(select(ChangeEvent)).all()) == 2
        assert purge.purge_inactive(reg).changes_erased == 1
        assert [e.at for e in reg.session.scalars(select(ChangeEvent))] == [clock.now - timedelta(days=2)]
        with pytest.raises(changes.CursorExpired):
            changes.list_changes(reg, oslo, old_cursor, 10)
        fresh = changes.list_changes(reg, oslo, None, 10)
        assert [c.kind for c in fresh.changes] == ["contact_changed"]
    clock.advance(days=80)  # a quiet library's cursor stays current as long as it keeps reading
    with services.registry("test") as reg:
        quiet = changes.list_changes(reg, oslo, fresh.next, 10)
    clock.advance(days=80)
    with services.registry("test") as reg:
        assert changes.list_changes(reg, oslo, quiet.next, 10).changes == []
