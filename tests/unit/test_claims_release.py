"""Releasing claims from the register: values, Oslo birthdays, minimised reads, the release log."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import CheckConstraint, event, func, select

from idp import relying_parties
from idp.claims import (PROTOCOLS, ClaimCatalogue, ClaimPlugin, Facts, ReleaseEntry, UndeclaredFact, Wording,
                        decide_for, preview, release, releases_for)
from idp.errors import ConfigError, NotAllowed, ValidationError
from idp.registry import loan_bans, memberships, patrons
from idp.registry.context import Registry
from idp.registry.models import ClaimRelease, RelyingParty
from tests.conftest import FakeClock
from tests.unit.factories import ADULT_BORN, library, patron

pytestmark = pytest.mark.backends  # minimised reads and the release log in SQL

FILM = ["valid_patron", "age_over_06", "age_over_09", "age_over_12", "age_over_15", "age_over_18"]
DPA = date(2025, 1, 1)


def partner(reg: Registry, claims: list[str], name: str = "Filmbib") -> RelyingParty:
    rp, _ = relying_parties.add_oidc(reg, name, ["https://partner.example/cb"], claims=claims, dpa_signed=DPA)
    return rp


def ages(value: bool, **exceptions: bool) -> dict[str, bool]:
    """Every age_over_NN of the film policy: ``value``, except where named."""
    return {name: exceptions.get(name, value) for name in FILM[1:]}


@contextmanager
def statements(reg: Registry) -> Iterator[list[str]]:
    """The SQL the block sends (after flushing what was pending before it)."""
    reg.session.flush()
    seen: list[str] = []
    engine = reg.session.get_bind()

    def capture(conn, cursor, sql, params, context, executemany) -> None:  # type: ignore[no-untyped-def]
        seen.append(sql)

    event.listen(engine, "before_cursor_execute", capture)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", capture)


def log_rows(reg: Registry, patron_id: int) -> int:
    return reg.session.scalar(select(func.count()).select_from(ClaimRelease).where(ClaimRelease.patron_id == patron_id))


# -- values ----------------------------------------------------------------------------------------

def test_a_film_platform_learns_yes_or_no_for_a_minor_and_an_adult(reg: Registry) -> None:
    library(reg)
    adult, _ = patron(reg)
    minor, _ = patron(reg, date(2016, 6, 1))  # 10 years old on 2026-11-23
    film = partner(reg, FILM)
    asked = [*FILM, "birthdate", "address", "age_over_21"]
    grown_up = release(reg, adult.id, film, asked, protocol="oidc")
    child = release(reg, minor.id, film, asked, protocol="oidc")
    assert grown_up.values == {"valid_patron": True, **ages(True)}
    assert child.values == {"valid_patron": True, "age_over_06": True, "age_over_09": True, "age_over_12": False,
                            "age_over_15": False, "age_over_18": False}
    assert child.names == tuple(FILM)


def test_15_is_reached_at_midnight_in_oslo_not_in_utc(reg: Registry, clock: FakeClock) -> None:
    library(reg)
    teen, _ = patron(reg, date(2011, 6, 1))
    film = partner(reg, FILM)
    clock.now = datetime(2026, 5, 31, 21, 30, tzinfo=UTC)  # 23:30 on 31 May in Oslo (summer time)
    assert release(reg, teen.id, film, FILM, protocol="oidc").values["age_over_15"] is False
    clock.now = datetime(2026, 5, 31, 22, 30, tzinfo=UTC)  # 00:30 on 1 June in Oslo: the 15th birthday
    assert release(reg, teen.id, film, FILM, protocol="oidc").values == {
        "valid_patron": True, **ages(True, age_over_18=False)}


@pytest.mark.parametrize(("born", "moment", "claim", "expected"), [
    pytest.param(date(2012, 2, 29), datetime(2026, 2, 28, 22, 59, tzinfo=UTC), "age_over_14", False,
                 id="leapling-28-feb-23:59-oslo"),
    pytest.param(date(2012, 2, 29), datetime(2026, 2, 28, 23, 0, tzinfo=UTC), "age_over_14", True,
                 id="leapling-1-march-00:00-oslo"),
    pytest.param(date(2012, 2, 29), datetime(2028, 2, 28, 22, 59, tzinfo=UTC), "age_over_16", False,
                 id="leapling-leap-year-28-feb"),
    pytest.param(date(2012, 2, 29), datetime(2028, 2, 28, 23, 0, tzinfo=UTC), "age_over_16", True,
                 id="leapling-leap-year-29-feb"),
    # Born the day after a leap day: counting days (365.25 a year) would say 13 on this birthday.
    pytest.param(date(2012, 3, 1), datetime(2026, 2, 28, 23, 0, tzinfo=UTC), "age_over_14", True,
                 id="born-1-march-on-the-birthday"),
    pytest.param(date(2012, 3, 1), datetime(2026, 2, 28, 22, 59, tzinfo=UTC), "age_over_14", False,
                 id="born-1-march-the-evening-before"),
])
def test_a_29_february_birthday_counts_from_1_march_in_other_years(
        reg: Registry, clock: FakeClock, born: date, moment: datetime, claim: str, expected: bool) -> None:
    library(reg)
    p, _ = patron(reg, born)
    rp = partner(reg, ["age_over_14", "age_over_16"])
    clock.now = moment
    assert release(reg, p.id, rp, [claim], protocol="oidc").values == {claim: expected}


def test_without_a_birth_date_no_age_is_claimed_rather_than_guessed(reg: Registry) -> None:
    library(reg)
    local, _ = patron(reg, national_id=None, local_card="L-77")
    assert local.birth_date is None
    result = release(reg, local.id, partner(reg, FILM), FILM, protocol="oidc")
    assert result.values == {"valid_patron": True}


def test_a_blocked_patron_is_not_a_valid_patron(reg: Registry) -> None:
    library(reg)
    p, _ = patron(reg)
    patrons.update_patron(reg, p, status="blocked")
    assert release(reg, p.id, partner(reg, FILM), ["valid_patron", "age_over_18"], protocol="oidc").values == {
        "valid_patron": False, "age_over_18": True}


def test_without_an_active_card_a_patron_is_not_a_valid_patron(reg: Registry) -> None:
    library(reg)
    p, card = patron(reg)
    film = partner(reg, FILM)
    assert release(reg, p.id, film, ["valid_patron"], protocol="oidc").values == {"valid_patron": True}
    card.status, card.retired_at, card.retired_reason = "retired", reg.now(), "lost"
    assert release(reg, p.id, film, ["valid_patron"], protocol="oidc").values == {"valid_patron": False}


def test_a_deleted_patron_is_not_a_valid_patron_and_their_log_goes_with_them(reg: Registry) -> None:
    library(reg)
    leaving, _ = patron(reg)
    staying, _ = patron(reg, nth=1)
    film = partner(reg, FILM)
    for p in (leaving, staying):
        release(reg, p.id, film, FILM, protocol="oidc")
    leaving_id = leaving.id
    assert log_rows(reg, leaving_id) == 1
    patrons.delete_patron(reg, leaving)
    assert log_rows(reg, leaving_id) == 0 and releases_for(reg, leaving_id) == []
    assert log_rows(reg, staying.id) == 1
    after = release(reg, leaving_id, film, FILM, protocol="oidc")
    assert after.values == {"valid_patron": False}  # every other claim left out, nothing recorded
    assert log_rows(reg, leaving_id) == 0


def test_library_claims_list_only_libraries_whose_rules_the_patron_accepted(reg: Registry) -> None:
    library(reg)
    library(reg, "NO-4601000", "Bergen")
    library(reg, "NO-5001000", "Trondheim")
    p, _ = patron(reg)
    memberships.add_to_library(reg, p, "NO-4601000")  # added by Bergen, not yet accepted by the patron
    memberships.accept_lending_rules(reg, p, "NO-5001000")
    loan_bans.set_loan_ban(reg, p, "NO-4601000")  # Bergen, where they are a member, bars them
    ils = partner(reg, ["home_library", "libraries", "loan_ban"], name="Bibliotekssystem")
    result = release(reg, p.id, ils, ["loan_ban", "libraries", "home_library"], protocol="api")
    assert result.values == {"home_library": "NO-2030000", "libraries": ["NO-2030000", "NO-5001000"],
                             "loan_ban": True}


def test_name_and_email_go_only_where_the_policy_lists_them(reg: Registry) -> None:
    library(reg)
    with_email, _ = patron(reg)
    without_email, _ = patron(reg, nth=1, email=None, name="Ola Nordmann")
    university = partner(reg, ["valid_patron", "name", "email"], name="Universitetet")
    film = partner(reg, FILM)
    asked = ["valid_patron", "name", "email"]
    assert release(reg, with_email.id, university, asked, protocol="saml").values == {
        "valid_patron": True, "name": "Kari Nordmann", "email": "kari@example.org"}
    assert release(reg, without_email.id, university, asked, protocol="saml").values == {
        "valid_patron": True, "name": "Ola Nordmann"}  # no e-mail registered: omitted
    assert release(reg, with_email.id, film, asked, protocol="oidc").values == {"valid_patron": True}


# -- policy and refusals -----------------------------------------------------------------------------

def test_requests_outside_the_policy_are_dropped_and_essential_ones_reported(
        reg: Registry, caplog: pytest.LogCaptureFixture) -> None:
    library(reg)
    p, _ = patron(reg)
    film = partner(reg, ["valid_patron", "age_over_15", "age_over_18"])
    caplog.set_level(logging.DEBUG, logger="idp.claims")
    asked = ["valid_patron", "birthdate", "address", "age_over_21", "age_over_18"]
    decision = decide_for(film, asked, essential=["age_over_21", "valid_patron"])
    assert decision.released == ("valid_patron", "age_over_18")
    assert decision.dropped == ("birthdate", "address", "age_over_21")
    assert decision.forbidden_essential == ("age_over_21",)
    # Even handed the raw request, release applies the policy itself.
    assert release(reg, p.id, film, asked, protocol="oidc").values == {"valid_patron": True, "age_over_18": True}
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name == "idp.claims")
    assert "'birthdate', 'address', 'age_over_21'" in logged and film.client_id in logged
    for value in ("1985", "Kari", "kari@example.org", "True"):
        assert value not in logged


def test_a_disabled_partner_or_one_without_agreement_receives_nothing(reg: Registry) -> None:
    library(reg)
    p, _ = patron(reg)
    film = partner(reg, FILM)
    relying_parties.disable(reg, film.client_id)
    with pytest.raises(NotAllowed, match="disabled"):
        release(reg, p.id, film, FILM, protocol="oidc")
    unsigned, _ = relying_parties.add_oidc(reg, "Uten avtale", ["https://x.example/cb"], claims=FILM)
    with pytest.raises(NotAllowed, match="data processing agreement"):
        preview(reg, p.id, unsigned, FILM, protocol="oidc")
    assert log_rows(reg, p.id) == 0


def test_an_unknown_protocol_is_refused(reg: Registry) -> None:
    library(reg)
    p, _ = patron(reg)
    with pytest.raises(ValidationError, match="Unknown protocol 'ws-fed'"):
        release(reg, p.id, partner(reg, FILM), FILM, protocol="ws-fed")


# -- minimisation in code -----------------------------------------------------------------------------

def test_only_the_declared_facts_are_read_from_the_register(reg: Registry) -> None:
    library(reg)
    p, _ = patron(reg)
    rp = partner(reg, [*FILM, "name", "libraries"])
    with statements(reg) as sent:
        preview(reg, p.id, rp, ["valid_patron"], protocol="oidc")
    assert len(sent) == 1  # one patron lookup
    read = sent[0].lower()
    assert "status" in read and "card" in read
    for column in ("birth_date", "email", "national_id", "street", "phone", "patron.name"):
        assert column not in read
    with statements(reg) as sent:
        preview(reg, p.id, rp, ["age_over_18", "libraries"], protocol="oidc")
    assert len(sent) == 2 and "birth_date" in sent[0].lower()  # the patron, then their memberships
    assert all("email" not in s.lower() and "national_id" not in s.lower() for s in sent)


def _nosy(name: str, facts: Facts, request: object) -> bool:
    return facts.birth_date is not None


def _dated(name: str, facts: Facts, request: object) -> date:
    return facts.birth_date


NOSY = ClaimPlugin(names=("nosy",), needs=frozenset({"status"}), compute=_nosy, wording=Wording("x"))
LEAKY = ClaimPlugin(names=("leaky",), needs=frozenset({"birth_date"}), compute=_dated,  # type: ignore[arg-type]
                    wording=Wording("x"))


def test_a_plugin_reading_an_undeclared_fact_fails_clearly_and_nothing_is_released(reg: Registry) -> None:
    library(reg)
    p, _ = patron(reg)
    rp = partner(reg, ["valid_patron"])
    rp.claims = ["nosy"]  # written past idp.relying_parties, which knows only the built-in names
    with pytest.raises(UndeclaredFact, match="'nosy' read the fact 'birth_date' without declaring it"):
        release(reg, p.id, rp, ["nosy"], protocol="oidc", claims=ClaimCatalogue([("test", NOSY)]))
    assert log_rows(reg, p.id) == 0


def test_a_plugin_cannot_return_a_date(reg: Registry) -> None:
    library(reg)
    p, _ = patron(reg)
    rp = partner(reg, ["valid_patron"])
    rp.claims = ["leaky"]
    with pytest.raises(ConfigError, match="returned a date for 'leaky'"):
        release(reg, p.id, rp, ["leaky"], protocol="oidc", claims=ClaimCatalogue([("test", LEAKY)]))


# -- the release log --------------------------------------------------------------------------------

def test_the_release_log_records_names_and_never_values(reg: Registry) -> None:
    library(reg)
    p, _ = patron(reg)
    everything = [*FILM, "loan_ban", "home_library", "libraries", "name", "email"]
    rp = partner(reg, everything, name="Alt-i-ett")
    result = release(reg, p.id, rp, everything, protocol="oidc")
    assert result.names == tuple(everything)
    (row,) = reg.session.execute(select(ClaimRelease.__table__).where(ClaimRelease.patron_id == p.id)).mappings()
    assert row["claims"] == everything and row["protocol"] == "oidc" and row["relying_party_id"] == rp.id
    assert row["released_at"] == reg.now()
    stored = repr(dict(row)).lower()
    for value in (ADULT_BORN.isoformat(), "1985", "kari", "nordmann", "example.org", "no-2030000", "true"):
        assert value not in stored


def test_nothing_released_nothing_recorded(reg: Registry) -> None:
    library(reg)
    p, _ = patron(reg, national_id=None, local_card="L-1")  # no birth date
    rp = partner(reg, ["age_over_18"])
    assert release(reg, p.id, rp, ["age_over_18", "birthdate"], protocol="oidc").values == {}
    assert preview(reg, p.id, partner(reg, FILM, name="Film 2"), FILM, protocol="oidc").values == {
        "valid_patron": True}
    assert log_rows(reg, p.id) == 0  # preview records nothing either


def test_a_patron_sees_what_they_shared_with_whom_newest_first(reg: Registry, clock: FakeClock) -> None:
    library(reg)
    p, _ = patron(reg)
    other, _ = patron(reg, nth=1)
    film = partner(reg, FILM)
    university = partner(reg, ["valid_patron", "name"], name="Universitetet")
    first = reg.now()
    release(reg, p.id, film, ["valid_patron", "age_over_15"], protocol="oidc")
    release(reg, other.id, film, ["valid_patron"], protocol="oidc")
    clock.advance(hours=2)
    release(reg, p.id, university, ["name", "valid_patron"], protocol="saml")
    assert releases_for(reg, p.id) == [
        ReleaseEntry("Universitetet", ("valid_patron", "name"), first + timedelta(hours=2)),
        ReleaseEntry("Filmbib", ("valid_patron", "age_over_15"), first),
    ]
    assert releases_for(reg, p.id, limit=1)[0].relying_party == "Universitetet"



def test_the_protocols_a_release_may_name_are_those_the_table_accepts() -> None:
    # A new protocol needs a migration widening the check; this fails until one is written.
    (check,) = [c for c in ClaimRelease.__table__.constraints
                if isinstance(c, CheckConstraint) and str(c.name).endswith("protocol")]
    listed = str(check.sqltext).partition("IN (")[2].rstrip(")")
    assert tuple(p.strip().strip("'") for p in listed.split(",")) == PROTOCOLS
