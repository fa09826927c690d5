"""Loan bans per library (issue 15): a library bars a patron from borrowing there; the `loan_ban` claim,
the verify API and the full record answer true when any library where the patron is active (a member)
has a ban."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from idp.claims.facts import load_facts
from idp.errors import NotFound, ValidationError
from idp.registry import cards, loan_bans, memberships
from idp.registry.context import Registry
from idp.registry.models import LoanBan, Patron
from idp.registry.records import full_record
from tests.unit.factories import library, patron

OSLO, BERGEN, TRONDHEIM = "NO-2030000", "NO-1201000", "NO-5001000"


def banned(reg: Registry, p: Patron) -> tuple[bool, bool, bool]:
    """The three readers of the rule: the domain, the full record and the claims' fact."""
    facts = load_facts(reg, p.id, ["loan_ban"])
    assert facts is not None
    return loan_bans.is_banned(p), full_record(p).loan_ban, facts["loan_ban"]


@pytest.fixture
def kari(reg: Registry) -> Patron:
    library(reg)
    library(reg, BERGEN, "Bergen")
    library(reg, TRONDHEIM, "Trondheim")
    p, _ = patron(reg)  # at home in Oslo
    memberships.accept_lending_rules(reg, p, BERGEN)
    return p


def test_a_ban_of_a_library_where_the_patron_is_a_member_counts_until_it_is_cleared(reg: Registry,
                                                                                 kari: Patron) -> None:
    assert banned(reg, kari) == (False, False, False)
    assert loan_bans.set_loan_ban(reg, kari, BERGEN, reason="  lost   books ") is True
    assert banned(reg, kari) == (True, True, True)
    assert reg.session.get(LoanBan, (kari.id, kari.memberships[1].library_id)).reason == "lost books"
    assert loan_bans.set_loan_ban(reg, kari, BERGEN) is False  # set once; setting again changes no rule
    assert loan_bans.clear_loan_ban(reg, kari, BERGEN) is True
    assert banned(reg, kari) == (False, False, False)
    assert loan_bans.clear_loan_ban(reg, kari, BERGEN) is False


def test_the_patron_stays_banned_while_another_of_their_libraries_bars_them(reg: Registry, kari: Patron) -> None:
    loan_bans.set_loan_ban(reg, kari, OSLO)
    loan_bans.set_loan_ban(reg, kari, BERGEN)
    loan_bans.clear_loan_ban(reg, kari, OSLO)
    assert banned(reg, kari) == (True, True, True)


def test_a_ban_of_a_library_the_patron_left_no_longer_counts(reg: Registry, kari: Patron) -> None:
    loan_bans.set_loan_ban(reg, kari, BERGEN)
    memberships.remove_from_library(reg, kari, BERGEN)
    assert banned(reg, kari) == (False, False, False)


def test_only_a_library_the_patron_is_a_member_of_can_ban_and_bad_input_writes_nothing(reg: Registry,
                                                                                       kari: Patron) -> None:
    with pytest.raises(NotFound):
        loan_bans.set_loan_ban(reg, kari, TRONDHEIM)
    with pytest.raises(ValidationError):
        loan_bans.set_loan_ban(reg, kari, BERGEN, reason="x" * 201)
    with pytest.raises(NotFound):
        loan_bans.set_loan_ban(reg, kari, "NO-0000000")
    assert reg.session.scalars(select(LoanBan)).all() == []


def test_a_local_accounts_ban_follows_it_into_the_national_account(reg: Registry, kari: Patron) -> None:
    local, local_card = patron(reg, nth=0, local_card="L-1", email=None)
    loan_bans.set_loan_ban(reg, local, OSLO)
    national_card = next(c for c in kari.cards if c.status == "active")
    merged = cards.merge_local_card(reg, local_card.number, national_card.number)
    assert banned(reg, merged) == (True, True, True)
