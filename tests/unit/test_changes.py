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
from tests.unit.changefeed import wait_settled
from tests.unit.factories import library, patron

pytestmark = pytest.mark.backends  # the feed's order and horizon are SQL of each dialect (transaction ids)

OSLO, BERGEN, TRONDHEIM = "NO-2030000", "NO-1201000", "NO-5001000"


def feed(services: Services, isil: str) -> list[tuple[int, str]]:
    """The library's whole feed, read after the change committed (as a library system reads it)."""
    wait_settled(services)
    with services.registry("test") as reg:
        library_id = get_library(reg, isil).id
        return [(c.patron_id, c.kind) for c in changes.list_changes(reg, library_id, None, 1000).changes]


@pytest.fixture
def kari(services: Services) -> int:
    """Member of Oslo (home) and Bergen; Trondheim exists but is not hers."""
    with services.registry("test") as reg:
        library(reg)
        library(reg, BERGEN, "Bergen")
        library(reg, TRONDHEIM, "Trondheim")
        p, _ = patron(reg)
        memberships.add_to_library(reg, p, BERGEN)
        return p.id


def test_a_contact_change_is_told_to_every_library_of_the_patron_and_the_old_address_is_notified(
        services: Services, kari: int) -> None:
    with services.registry("test") as reg:
        patrons.update_patron(reg, reg.session.get(Patron, kari), email="ny@example.org")
        notice = reg.session.scalar(select(Notification).where(Notification.kind == "account_changed"))
        assert reg.notice_address(notice) == "kari@example.org"
    assert feed(services, OSLO) == feed(services, BERGEN) == [(kari, "contact_changed")]
    assert feed(services, TRONDHEIM) == []
    with services.registry("test") as reg:
        patrons.update_patron(reg, reg.session.get(Patron, kari), email="ny@example.org")  # no change, no event
    assert len(feed(services, OSLO)) == 1


def test_a_refused_change_writes_no_event(services: Services, kari: int) -> None:
    with pytest.raises(ValidationError), services.registry("test") as reg:
        patrons.update_patron(reg, reg.session.get(Patron, kari), email="not an address")
    assert feed(services, OSLO) == feed(services, BERGEN) == []


def test_leaving_a_library_is_told_to_that_library(services: Services, kari: int) -> None:
    with services.registry("test") as reg:
        memberships.remove_from_library(reg, reg.session.get(Patron, kari), BERGEN)
    assert feed(services, BERGEN) == [(kari, "left_library")]
    assert feed(services, OSLO) == []


def test_a_deletion_a_replaced_card_and_a_ban_are_told_to_every_library_of_the_patron(
        services: Services, kari: int) -> None:
    with services.registry("test") as reg:
        p = reg.session.get(Patron, kari)
        printed = next(s for s in p.home_library.series if s.usage == "printed")
        cards.issue_card(reg, p, p.home_library, kind="printed", number=f"N{printed.first_number:09d}")
        loan_bans.set_loan_ban(reg, p, BERGEN)
    with services.registry("test") as reg:
        loan_bans.clear_loan_ban(reg, reg.session.get(Patron, kari), BERGEN)
    with services.registry("test") as reg:
        patrons.delete_patron(reg, reg.session.get(Patron, kari))
    expected = [(kari, kind) for kind in ("card_replaced", "loan_ban_set", "loan_ban_cleared", "deleted")]
    assert feed(services, OSLO) == feed(services, BERGEN) == expected
    assert feed(services, TRONDHEIM) == []


def test_a_local_account_merged_into_the_national_one_is_erased_and_the_card_replaced(
        services: Services, kari: int) -> None:
    with services.registry("test") as reg:
        local, local_card = patron(reg, nth=0, local_card="L-1", email=None)
        local_id = local.id
        national = next(c for c in reg.session.get(Patron, kari).cards if c.status == "active")
        cards.merge_local_card(reg, local_card.number, national.number)
    assert feed(services, OSLO) == [(local_id, "deleted"), (kari, "card_replaced")]
    assert feed(services, BERGEN) == [(kari, "card_replaced")]


def test_pages_follow_the_cursor_in_order_and_an_empty_page_keeps_the_position(services: Services, kari: int) -> None:
    for n in range(5):
        with services.registry("test") as reg:
            patrons.update_patron(reg, reg.session.get(Patron, kari), phone=f"+47 9000000{n}")
    wait_settled(services)
    with services.registry("test") as reg:
        oslo = get_library(reg, OSLO).id
        first = changes.list_changes(reg, oslo, None, 2)
        second = changes.list_changes(reg, oslo, first.next, 2)
        third = changes.list_changes(reg, oslo, second.next, 2)
        seen = [c.cursor for page in (first, second, third) for c in page.changes]
        assert len(seen) == len(set(seen)) == 5
        later = changes.list_changes(reg, oslo, third.next, 2)
        assert later.changes == [] and changes.list_changes(reg, oslo, later.next, 2).changes == []
    # No personal data in an event: the library re-reads the record.
    assert {(c.patron_id, c.kind) for c in first.changes} == {(kari, "contact_changed")}


def test_a_slow_commit_is_never_passed_by_the_cursor(services: Services, kari: int, backend: str) -> None:
    if backend == "embedded":
        pytest.skip("SQLite has one writer: no transaction runs beside another (and ids commit in order)")
    with services.registry("slow") as slow:
        patrons.update_patron(slow, slow.session.get(Patron, kari), phone="+4712345678")  # the first event
        with services.registry("quick") as quick:  # a later change, committed first
            ola, _ = patron(quick, nth=1)
            patrons.update_patron(quick, ola, phone="+4787654321")
            ola_id = ola.id
        with services.registry("reader") as reader:
            page = changes.list_changes(reader, get_library(reader, OSLO).id, None, 10)
        # Reading the quick change now would move the cursor past the slow one, which would then be lost.
        assert page.changes == []
    wait_settled(services)
    with services.registry("reader") as reader:
        after = changes.list_changes(reader, get_library(reader, OSLO).id, page.next, 10)
    assert [(c.patron_id, c.kind) for c in after.changes] == [(kari, "contact_changed"), (ola_id, "contact_changed")]


@pytest.mark.parametrize("cursor", ["", "abc", "1.2", "1.2.3.4", "-1.2.3", "1.2.99999999999999999999",
                                    "1.2.1099511627776", "9999999999999999999.1.1", "1.2.3\n"])
def test_a_cursor_the_feed_never_gave_out_is_refused(reg: Registry, cursor: str) -> None:
    library(reg)
    with pytest.raises(ValidationError):
        changes.list_changes(reg, get_library(reg, OSLO).id, cursor, 10)


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
    wait_settled(services)
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


def test_a_32_bit_transaction_id_is_read_in_the_epoch_of_the_transactions_running_now() -> None:
    # pg_stat_activity shows 32-bit ids; the events hold 64-bit ones (epoch, id), also across a wraparound.
    epoch = 2**32
    assert changes._widen(5, epoch + 10) == epoch + 5
    assert changes._widen(2**32 - 3, epoch + 10) == 2**32 - 3  # began just before the wraparound
    assert changes._widen(7, 7) == 7
