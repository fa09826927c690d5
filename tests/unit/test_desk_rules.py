"""The register's rules behind the desk operations (issue 15): the lending rules version a patron
accepts, activity reported by a library, whether first-time credentials were changed, a printed first
card, and merging a library's own local card."""

from __future__ import annotations

from datetime import timedelta

import pytest

from idp.errors import CardOutsideSeries, Conflict, NotAllowed, ValidationError
from idp.registry import agreements, cards, memberships, patrons
from idp.registry.cardnumbers import national_number
from idp.registry.context import Registry
from idp.registry.libraries import get_library
from idp.registry.models import Membership
from idp.registry.purge import purge_inactive
from tests.conftest import FakeClock
from tests.unit.factories import library, patron

OSLO, BERGEN = "NO-2030000", "NO-4601000"


@pytest.fixture
def two(reg: Registry) -> Registry:
    library(reg)
    library(reg, BERGEN, "Bergen")
    return reg


def _membership(reg: Registry, patron_id: int, isil: str) -> Membership:
    found = reg.session.get(Membership, (patron_id, get_library(reg, isil).id))
    assert found is not None
    return found


# --- The lending rules version ----------------------------------------------------------------------

def test_a_stated_version_must_be_the_librarys_current_one_and_is_recorded(two: Registry) -> None:
    reg = two
    p, _ = patron(reg)
    agreements.update(reg, BERGEN, rules="First text.")
    agreements.update(reg, BERGEN, rules="Second text.")
    with pytest.raises(Conflict, match="version 2"):
        memberships.accept_stated_rules(reg, p, BERGEN, 1)
    with pytest.raises(Conflict, match="version 2"):
        memberships.accept_stated_rules(reg, p, BERGEN, None)
    assert all(m.library.isil != BERGEN for m in p.memberships)  # a refusal adds nobody
    memberships.accept_stated_rules(reg, p, BERGEN, 2)
    accepted = _membership(reg, p.id, BERGEN)
    assert (accepted.rules_version, accepted.rules_accepted_at) == (2, reg.now())


def test_a_library_without_rules_text_takes_no_version(two: Registry) -> None:
    p, _ = patron(two)
    with pytest.raises(Conflict, match="no lending rules"):
        memberships.accept_stated_rules(two, p, BERGEN, 1)
    memberships.accept_stated_rules(two, p, BERGEN, None)
    accepted = _membership(two, p.id, BERGEN)
    assert accepted.rules_accepted_at is not None and accepted.rules_version is None


def test_accepting_a_newer_text_is_recorded_and_accepting_without_a_stated_version_takes_the_current(
        two: Registry, clock: FakeClock) -> None:
    reg = two
    p, _ = patron(reg)
    agreements.update(reg, BERGEN, rules="First text.")
    memberships.accept_lending_rules(reg, p, BERGEN)
    assert _membership(reg, p.id, BERGEN).rules_version == 1
    clock.advance(days=30)
    agreements.update(reg, BERGEN, rules="Second text.")
    memberships.accept_stated_rules(reg, p, BERGEN, 2)
    again = _membership(reg, p.id, BERGEN)
    assert (again.rules_version, again.rules_accepted_at) == (2, clock.now)


def test_registering_at_a_library_records_the_version_of_its_rules_then_current(two: Registry) -> None:
    agreements.update(two, OSLO, rules="Oslo's rules.")
    p, _ = patron(two)
    q, _ = patron(two, nth=1, home_library=BERGEN)
    assert (_membership(two, p.id, OSLO).rules_version, _membership(two, q.id, BERGEN).rules_version) == (1, None)


# --- Activity a library reports ---------------------------------------------------------------------

def test_a_reported_loan_keeps_the_entry_alive_and_clears_a_warning(two: Registry, clock: FakeClock) -> None:
    reg = two
    p, _ = patron(reg)
    clock.advance(days=3 * 365 - 10)
    assert purge_inactive(reg).warned == [p.id]
    library_id = get_library(reg, OSLO).id
    assert patrons.report_activity(reg, p, library_id, "loan") is True
    assert (p.last_activity_at, p.inactivity_warned_at) == (clock.now, None)
    clock.advance(days=60)
    report = purge_inactive(reg)
    assert (report.warned, report.deleted) == ([], [])


def test_a_reported_moment_must_not_lie_in_the_future_and_older_news_changes_nothing(
        two: Registry, clock: FakeClock) -> None:
    reg = two
    p, _ = patron(reg)
    library_id = get_library(reg, OSLO).id
    registered = p.last_activity_at
    with pytest.raises(ValidationError, match="future"):
        patrons.report_activity(reg, p, library_id, "loan", at=clock.now + timedelta(minutes=1))
    with pytest.raises(ValidationError):
        patrons.report_activity(reg, p, library_id, "fine")
    assert patrons.report_activity(reg, p, library_id, "return", at=registered - timedelta(days=5)) is False
    clock.advance(days=40)
    assert patrons.report_activity(reg, p, library_id, "renewal", at=clock.now - timedelta(days=10)) is True
    assert p.last_activity_at == clock.now - timedelta(days=10)


# --- Credentials ------------------------------------------------------------------------------------

def test_first_credentials_count_as_changed_only_once_the_patron_replaces_a_first_secret(two: Registry) -> None:
    reg = two
    p, _ = patron(reg, password="first-time password", password_must_change=True)
    first = patrons.credential_status(reg, p)
    assert (first.has_password, first.has_pin, first.must_change, first.first_credentials_changed) == (
        True, False, True, False)
    patrons.set_secret(reg, p, "password", "temporary password 2", must_change=True)  # a desk reset
    assert patrons.credential_status(reg, p).first_credentials_changed is False
    patrons.set_secret(reg, p, "password", "the patron's own choice")
    changed = patrons.credential_status(reg, p)
    assert (changed.must_change, changed.first_credentials_changed) == (False, True)
    patrons.set_secret(reg, p, "password", "temporary password 3", must_change=True)  # changed is history
    assert patrons.credential_status(reg, p).first_credentials_changed is True


# --- Cards ------------------------------------------------------------------------------------------

def test_a_national_account_can_start_with_a_printed_card_of_the_librarys_printed_series(two: Registry) -> None:
    reg = two
    bergen_printed = next(s for s in get_library(reg, BERGEN).series if s.usage == "printed").first_number
    with pytest.raises(CardOutsideSeries, match=OSLO):  # (the transaction it raises in is rolled back)
        patron(reg, nth=1, printed_card=national_number(bergen_printed))
    oslo_printed = next(s for s in get_library(reg, OSLO).series if s.usage == "printed").first_number
    p, card = patron(reg, printed_card=national_number(oslo_printed))
    assert (card.kind, [c.kind for c in p.cards]) == ("printed", ["printed"])
    with pytest.raises(ValidationError):
        patron(reg, nth=2, national_id=None, local_card="OSL-1", printed_card=national_number(oslo_printed + 1))


def test_a_library_merges_only_its_own_local_cards_into_a_national_account(two: Registry) -> None:
    reg = two
    local, _ = patron(reg, local_card="OSL-9")
    national, _ = patron(reg)
    with pytest.raises(NotAllowed, match="another library"):
        cards.merge_local_card_of(reg, get_library(reg, BERGEN), "OSL-9", national)
    with pytest.raises(ValidationError):
        cards.merge_local_card_of(reg, get_library(reg, OSLO), "OSL-9", local)
    merged = cards.merge_local_card_of(reg, get_library(reg, OSLO), "osl-9", national)
    assert merged is national and cards.find_card(reg, "OSL-9") is None
