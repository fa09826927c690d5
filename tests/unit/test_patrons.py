"""Patrons: registration, identity numbers at rest, cards, contact data, credentials, deletion."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import func, select, text

from idp.errors import CardOutsideSeries, Conflict, InvalidCardNumber, NotAllowed, NotFound, \
    ValidationError
from idp.registry import cards, guardians, libraries, memberships, owned, patrons
from idp.registry.cardnumbers import BIBLIOMO_RULES
from idp.registry.context import Registry
from idp.registry.credentials import SecretHasher
from idp.registry.models import AuditEvent, Card, Credential, Federation, Guardianship, Membership, Notification, \
    Patron, UpstreamIdentity
from idp.services import Services
from idp.settings import OWASP_ARGON2_MIN_MEMORY_KIB, Settings
from tests.conftest import FakeClock
from tests.nin import duf, person
from tests.unit.factories import ADULT_BORN, library, new_patron, patron

pytestmark = pytest.mark.backends  # partial unique indexes, stale series, timestamps in SQL


def counts(services: Services) -> dict[str, int]:
    with services.registry("test") as reg:
        return {model.__tablename__: reg.session.scalar(select(func.count()).select_from(model))
                for model in (Patron, Card, Membership, Credential, Notification)}


@pytest.fixture
def oslo(services: Services) -> None:
    with services.registry("test") as reg:
        library(reg)


# -- registration -------------------------------------------------------------------------

def test_a_national_patron_gets_a_digital_card_from_the_home_library_series(services: Services, oslo: None) -> None:
    with services.registry("test") as reg:
        p, card = patron(reg)
        digital = next(s for s in libraries.get_library(reg, "NO-2030000").series if s.usage == "digital")
        assert card.kind == "digital" and card.number == f"N{digital.first_number:09d}"
        assert p.birth_date == ADULT_BORN  # taken from the id once, stored
        assert p.home_library.isil == "NO-2030000"
        assert [(m.library.isil, m.rules_accepted_at is not None) for m in p.memberships] == [("NO-2030000", True)]
    with services.registry("test") as reg:
        assert cards.find_card(reg, card.number.lower()).patron.name == "Kari Nordmann"


def test_the_national_id_is_encrypted_at_rest_and_found_by_keyed_hash(services: Services, oslo: None) -> None:
    nin = person(ADULT_BORN)
    with services.registry("test") as reg:
        patron(reg)
    with services.engine.connect() as connection:
        raw = connection.execute(text("SELECT * FROM patron")).one()._mapping
    dumped = repr(dict(raw)).encode() + b"".join(v for v in raw.values() if isinstance(v, bytes))
    assert nin.encode() not in dumped and nin[:6].encode() + nin[6:].encode() not in dumped
    with services.registry("test") as reg:
        found = patrons.find_by_national_id(reg, f"{nin[:6]} {nin[6:]}")
        assert found is not None and found.name == "Kari Nordmann"
        assert reg.cipher.decrypt(found.national_id_cipher, context=found.national_id_hash) == nin
        assert patrons.find_by_national_id(reg, person(ADULT_BORN, 1)) is None


def test_the_same_person_cannot_register_twice(services: Services, oslo: None) -> None:
    with services.registry("test") as reg:
        patron(reg)
    before = counts(services)
    with pytest.raises(Conflict) as info, services.registry("test") as reg:
        patron(reg, name="Someone Else")
    assert person(ADULT_BORN) not in info.value.message
    assert counts(services) == before


def test_an_identity_number_finds_the_national_account_never_a_local_one(reg: Registry) -> None:
    # A local account lives in one library only (docs/register.md): an ID-porten or federation login,
    # which finds the patron by identity number, must not land in it.
    library(reg)
    library(reg, "NO-1833000", "Rana", digital=0, printed=0)
    patron(reg, home_library="NO-1833000", local_card="RANA-0042")
    assert patrons.find_by_national_id(reg, person(ADULT_BORN)) is None
    national, _card = patron(reg)
    found = patrons.find_by_national_id(reg, person(ADULT_BORN))
    assert found is not None and found.id == national.id


@pytest.mark.parametrize("bad", ["", "12345678901", "0101901234", "abcdefghijk", "1" * 5000])
def test_malformed_national_ids_are_refused_and_nothing_is_written(services: Services, oslo: None,
                                                                   bad: str) -> None:
    before = counts(services)
    with pytest.raises(ValidationError) as info, services.registry("test") as reg:
        patron(reg, national_id=bad)
    if len(bad) > 3:
        assert bad[:6] not in info.value.message
    assert counts(services) == before


def test_a_duf_number_gets_only_a_local_card(services: Services) -> None:
    with services.registry("test") as reg:
        library(reg, "IT-MO0001", "BiblioMo", digital=0, printed=0, rules=BIBLIOMO_RULES)
    with pytest.raises(NotAllowed, match="DUF"), services.registry("test") as reg:
        patron(reg, national_id=duf(2019, 123456), home_library="IT-MO0001")
    with services.registry("test") as reg:
        p, card = patron(reg, national_id=duf(2019, 123456), home_library="IT-MO0001", local_card="u0003125",
                         birth_date=date(1990, 1, 1))
        assert (card.kind, card.number, p.id_kind, p.local_library.isil) == ("local", "U03125", "duf", "IT-MO0001")
        with pytest.raises(NotAllowed, match=r"DUF|local"):
            cards.issue_card(reg, p, p.home_library, kind="digital")


def test_a_local_card_cannot_look_like_a_national_one(services: Services, oslo: None) -> None:
    with pytest.raises(InvalidCardNumber, match="national"), services.registry("test") as reg:
        patron(reg, local_card="N000000007")


def test_when_the_card_cannot_be_issued_no_patron_is_left_behind(services: Services) -> None:
    with services.registry("test") as reg:
        library(reg, digital=0)
    with pytest.raises(CardOutsideSeries) as info, services.registry("test") as reg:
        patron(reg)
    assert "NO-2030000" in info.value.message and "idp series reserve NO-2030000" in info.value.message
    assert counts(services) == {"patron": 0, "card": 0, "membership": 0, "credential": 0, "notification": 0}


def test_a_digital_series_runs_out_cleanly(services: Services) -> None:
    with services.registry("test") as reg:
        library(reg, digital=2)
        patron(reg, nth=0), patron(reg, nth=1)
    with pytest.raises(CardOutsideSeries, match="no free number"), services.registry("test") as reg:
        patron(reg, nth=2)
    assert counts(services)["patron"] == 2


@pytest.mark.parametrize(("field", "value"), [
    ("email", "not-an-address"), ("email", "a@b"), ("phone", "12"), ("phone", "call me"), ("name", ""),
    ("name", "x" * 201), ("home_library", "NO-9999999"), ("password", "short"), ("password", "x" * 257),
    ("pin", "123"), ("pin", "1234567"), ("pin", "12a4"), ("birth_date", date(1999, 1, 1)),
])
def test_bad_fields_are_refused_and_nothing_is_written(services: Services, oslo: None, field: str,
                                                       value: object) -> None:
    with pytest.raises((ValidationError, NotFound)), services.registry("test") as reg:
        patron(reg, **{field: value})
    assert counts(services)["patron"] == 0


def test_phone_and_email_are_tidied(reg: Registry) -> None:
    library(reg)
    p, _ = patron(reg, phone=" +47 (999) 99-999 ", email=" kari@example.org ")
    assert (p.phone, p.email) == ("+4799999999", "kari@example.org")


# -- cards ------------------------------------------------------------------------------------

def test_a_printed_card_replaces_the_digital_one_and_keeps_the_account(reg: Registry) -> None:
    library(reg)
    p, digital = patron(reg)
    printed_series = next(s for s in p.home_library.series if s.usage == "printed")
    number = f"n {printed_series.first_number + 5:09d}"
    printed = cards.issue_card(reg, p, p.home_library, kind="printed", number=number)
    assert cards.find_card(reg, digital.number) is None
    assert cards.find_card(reg, number).patron_id == p.id
    assert digital.status == "retired" and digital.retired_reason == "replaced_by_printed"
    assert [c.number for c in p.cards if c.status == "active"] == [printed.number]


def test_a_card_outside_the_library_series_is_refused_naming_library_and_series(reg: Registry) -> None:
    library(reg)
    library(reg, "NO-4601000", "Bergen")
    p, _ = patron(reg)
    bergen = libraries.get_library(reg, "NO-4601000")
    bergen_printed = next(s for s in bergen.series if s.usage == "printed")
    with pytest.raises(CardOutsideSeries) as info:
        cards.issue_card(reg, p, p.home_library, kind="printed", number=f"N{bergen_printed.first_number:09d}")
    assert "NO-2030000" in info.value.message and "Oslo" in info.value.message
    oslo_printed = next(s for s in p.home_library.series if s.usage == "printed")
    assert f"N{oslo_printed.first_number:09d}-N{oslo_printed.last_number:09d}" in info.value.message


def test_a_card_number_is_never_issued_twice(reg: Registry) -> None:
    library(reg)
    a, _ = patron(reg, nth=0)
    b, _ = patron(reg, nth=1)
    first = next(s for s in a.home_library.series if s.usage == "printed").first_number
    cards.issue_card(reg, a, a.home_library, kind="printed", number=f"N{first:09d}")
    with pytest.raises(Conflict):
        cards.issue_card(reg, b, b.home_library, kind="printed", number=f"N{first:09d}")


def test_merging_a_local_card_retires_its_number(reg: Registry) -> None:
    library(reg)
    library(reg, "NO-1833000", "Rana", digital=0, printed=0)
    national, national_card = patron(reg)
    local, _local_card = patron(reg, home_library="NO-1833000", local_card="RANA-0042")
    assert cards.find_card(reg, "rana0042").patron_id == local.id
    merged = cards.merge_local_card(reg, "RANA 0042", national_card.number)
    assert merged.id == national.id
    assert cards.find_card(reg, "RANA0042") is None
    assert sorted(m.library.isil for m in merged.memberships) == ["NO-1833000", "NO-2030000"]
    assert reg.session.get(Patron, local.id) is None
    retired = reg.session.scalar(select(Card).where(Card.number == "RANA0042"))
    assert (retired.status, retired.retired_reason, retired.patron_id) == ("retired", "merged", national.id)


def test_a_merged_local_account_keeps_its_libraries_activated_and_one_membership_each(reg: Registry) -> None:
    # The local patron accepted the library's lending rules when registering there (docs/register.md:
    # a library sees the full record after activation): merging into the national account keeps that.
    library(reg)
    library(reg, "NO-1833000", "Rana", digital=0, printed=0)
    library(reg, "NO-4601000", "Bergen", digital=0, printed=0)
    national, national_card = patron(reg)
    memberships.add_to_library(reg, national, "NO-4601000")  # added by Bergen, not yet accepted
    patron(reg, home_library="NO-1833000", local_card="RANA-0042")
    patron(reg, home_library="NO-4601000", local_card="BERGEN-7")
    cards.merge_local_card(reg, "RANA 0042", national_card.number)
    merged = cards.merge_local_card(reg, "BERGEN7", national_card.number)
    accepted = sorted((m.library.isil, m.rules_accepted_at is not None) for m in merged.memberships)
    assert accepted == [("NO-1833000", True), ("NO-2030000", True), ("NO-4601000", True)]


def test_merging_one_persons_local_card_leaves_other_families_guardians_alone(reg: Registry) -> None:
    # A guardian's link to a child under 15 is kept (docs/register.md, "Children"): a merge of
    # someone else's cards must not touch it.
    library(reg)
    library(reg, "NO-1833000", "Rana", digital=0, printed=0)
    parent, _ = patron(reg, nth=0)
    child, _ = guardians.register_child(reg, parent, new_patron(date(2020, 5, 1), nth=0, name="Emma"))
    _, national_card = patron(reg, nth=1)
    patron(reg, nth=1, home_library="NO-1833000", local_card="RANA-0042")
    cards.merge_local_card(reg, "RANA0042", national_card.number)
    links = reg.session.execute(select(Guardianship.guardian_id, Guardianship.child_id)).all()
    assert [tuple(link) for link in links] == [(parent.id, child.id)]


def test_a_merge_and_its_retired_card_are_audited_naming_accounts_library_and_card(reg: Registry) -> None:
    # docs/register.md, "Audit": every change leaves an event naming who, what, which patron and library.
    library(reg)
    library(reg, "NO-1833000", "Rana", digital=0, printed=0)
    national, national_card = patron(reg)
    local, _ = patron(reg, home_library="NO-1833000", local_card="RANA-0042")
    rana = libraries.get_library(reg, "NO-1833000").id
    cards.merge_local_card(reg, "RANA0042", national_card.number)
    event = reg.session.scalars(select(AuditEvent).where(AuditEvent.action == "patron.merge")).one()
    assert (event.patron_id, event.library_id, event.detail.get("merged_patron_id")) == (national.id, rana, local.id)
    card_id = reg.session.scalar(select(Card.id).where(Card.number == "RANA0042"))
    retired = reg.session.scalars(select(AuditEvent).where(AuditEvent.action == "card.retire")).one()
    assert (retired.patron_id, retired.library_id, retired.detail.get("card_id"), retired.detail.get("reason")) == \
        (local.id, rana, card_id, "merged")


def test_merging_two_different_people_is_refused(reg: Registry) -> None:
    library(reg)
    _, national_card = patron(reg, nth=0)
    patron(reg, nth=1, local_card="L-1")
    with pytest.raises(Conflict, match="different people"):
        cards.merge_local_card(reg, "L1", national_card.number)


def test_merge_needs_a_local_and_a_national_card(reg: Registry) -> None:
    library(reg)
    _, a = patron(reg, nth=0)
    _, b = patron(reg, nth=1)
    with pytest.raises(ValidationError, match="local"):
        cards.merge_local_card(reg, a.number, b.number)
    with pytest.raises(NotFound):
        cards.merge_local_card(reg, "NOPE1", b.number)


def test_ambiguous_readings_find_nobody(reg: Registry) -> None:
    """If two libraries' rules read one typed number as two different stored cards, refuse to guess."""
    library(reg, digital=0, printed=0)
    library(reg, "IT-MO0001", "BiblioMo", digital=0, printed=0, rules=BIBLIOMO_RULES)
    library(reg, "IT-XX0001", "Strip all zeros", digital=0, printed=0, rules=[{"match": "0", "replace": ""}])
    patron(reg, nth=0, home_library="IT-MO0001", local_card="U03125")
    patron(reg, nth=1, home_library="IT-XX0001", local_card="U3125")
    assert cards.find_card(reg, "U0003125") is None
    assert cards.find_card(reg, "U03125").number == "U03125"  # the exact reading wins


# -- contact data -----------------------------------------------------------------------------

def test_update_changes_only_what_is_given_and_is_audited(reg: Registry) -> None:
    library(reg)
    p, _ = patron(reg)
    assert patrons.update_patron(reg, p, email="new@example.org", phone="+4711111111") == ["email", "phone"]
    assert patrons.update_patron(reg, p, email="new@example.org") == []
    with pytest.raises(ValidationError):
        patrons.update_patron(reg, p, email="nope", phone="+4722222222")
    assert (p.email, p.phone) == ("new@example.org", "+4711111111")  # all-or-nothing
    events = reg.session.scalars(select(AuditEvent).where(AuditEvent.action == "patron.update")).all()
    assert [e.detail["fields"] for e in events] == [["email", "phone"]]


# -- credentials ------------------------------------------------------------------------------

def test_secrets_are_argon2id_and_verify(services: Services, reg: Registry) -> None:
    library(reg)
    p, _ = patron(reg, password="correct horse battery", pin="4711")
    stored = reg.session.get(Credential, (p.id, "password")).hash
    assert stored.startswith("$argon2id$") and "correct horse" not in stored
    assert patrons.verify_secret(reg, p, "password", "correct horse battery").ok
    assert not patrons.verify_secret(reg, p, "password", "wrong horse battery").ok
    assert patrons.verify_secret(reg, p, "pin", "4711").ok
    assert not patrons.verify_secret(reg, p, "pin", "4712").ok
    assert not patrons.verify_secret(reg, None, "password", "anything at all").ok
    assert not patrons.verify_secret(reg, p, "password", "x" * 100_000).ok


# README: "PIN (4-6 digits)".
@pytest.mark.parametrize("pin", ["4711", "47110", "471100"], ids=["4-digits", "5-digits", "6-digits"])
def test_a_pin_of_four_to_six_digits_is_set_and_verifies(reg: Registry, pin: str) -> None:
    library(reg)
    p, _ = patron(reg, password="correct horse battery")
    patrons.set_secret(reg, p, "pin", pin)
    assert patrons.verify_secret(reg, p, "pin", pin).ok


@pytest.mark.parametrize("pin", ["471", "4711000"], ids=["3-digits", "7-digits"])
def test_a_pin_of_three_or_seven_digits_is_refused(reg: Registry, pin: str) -> None:
    library(reg)
    p, _ = patron(reg, password="correct horse battery", pin="4711")
    with pytest.raises(ValidationError, match="4 to 6 digits"):
        patrons.set_secret(reg, p, "pin", pin)
    assert patrons.verify_secret(reg, p, "pin", "4711").ok


# README: "password (8-256 characters)".
@pytest.mark.parametrize("password", ["x" * 7, "x" * 257], ids=["7-characters", "257-characters"])
def test_a_password_outside_8_to_256_characters_is_refused(reg: Registry, password: str) -> None:
    library(reg)
    p, _ = patron(reg, password="correct horse battery")
    with pytest.raises(ValidationError, match="8 to 256 characters"):
        patrons.set_secret(reg, p, "password", password)
    assert patrons.verify_secret(reg, p, "password", "correct horse battery").ok


@pytest.mark.parametrize("password", ["x" * 8, "x" * 256], ids=["8-characters", "256-characters"])
def test_a_password_of_8_to_256_characters_is_set_and_verifies(reg: Registry, password: str) -> None:
    library(reg)
    p, _ = patron(reg, password="correct horse battery")
    patrons.set_secret(reg, p, "password", password)
    assert patrons.verify_secret(reg, p, "password", password).ok


def test_a_blocked_patron_does_not_verify(reg: Registry) -> None:
    library(reg)
    p, _ = patron(reg, password="correct horse battery")
    patrons.update_patron(reg, p, status="blocked")
    assert not patrons.verify_secret(reg, p, "password", "correct horse battery").ok


def with_outdated_password(reg: Registry) -> tuple[Patron, Card]:
    """A patron whose password "correct horse battery" is stored with weaker argon2 parameters
    than today's (m=256 KiB), flagged must-change."""
    library(reg)
    p, card = patron(reg)
    weak = SecretHasher(time_cost=1, memory_kib=256, parallelism=1)
    reg.session.add(Credential(patron_id=p.id, kind="password", hash=weak.hash("correct horse battery"),
                               must_change=True, updated_at=reg.now()))
    reg.session.flush()
    return p, card


def test_outdated_hash_parameters_are_upgraded_on_successful_login(reg: Registry) -> None:
    p, _ = with_outdated_password(reg)
    check = patrons.verify_secret(reg, p, "password", "correct horse battery")
    assert check.ok and check.must_change
    upgraded = reg.session.get(Credential, (p.id, "password")).hash
    assert "m=1024" in upgraded and "m=256" not in upgraded
    assert patrons.verify_secret(reg, p, "password", "correct horse battery").ok


def test_production_hash_parameters_meet_owasp(services: Services) -> None:
    defaults = Settings.model_fields
    assert defaults["argon2_memory_kib"].default >= OWASP_ARGON2_MIN_MEMORY_KIB == 19456
    assert defaults["argon2_time_cost"].default >= 2


# -- deletion ---------------------------------------------------------------------------------

def test_deleting_tells_where_the_person_remains_a_patron_and_keeps_numbers_retired(
        services: Services, oslo: None) -> None:
    with services.registry("test") as reg:
        library(reg, "NO-4601000", "Bergen")
        p, card = patron(reg, password="correct horse battery")
        memberships.add_to_library(reg, p, "NO-4601000")
        number, patron_id = card.number, p.id
    with services.registry("test") as reg:
        remaining = patrons.delete_patron(reg, patrons.patron_by_card(reg, number))
    assert remaining == ["NO-2030000", "NO-4601000"]
    assert counts(services) == {"patron": 0, "card": 1, "membership": 0, "credential": 0, "notification": 0}
    with services.registry("test") as reg:
        kept = reg.session.scalar(select(Card))
        assert (kept.number, kept.status, kept.patron_id) == (number, "retired", None)
        assert cards.find_card(reg, number) is None
        assert reg.session.scalar(select(AuditEvent).where(AuditEvent.action == "patron.delete")).patron_id == patron_id
    with pytest.raises(Conflict), services.registry("test") as reg:
        reg_lib = libraries.get_library(reg, "NO-2030000")
        other, _ = patron(reg, nth=1)
        cards.issue_card(reg, other, reg_lib, kind="printed", number=number)


def test_a_series_loaded_before_another_transaction_allocated_is_reread(services: Services, oslo: None) -> None:
    """A stale in-memory next_number must not hand out a number another transaction just took."""
    if services.engine.dialect.name != "postgresql":
        pytest.skip("SQLite transactions are serialised from their start, so nothing can go stale")
    with services.registry("test") as reg:
        loaded = libraries.get_library(reg, "NO-2030000").series  # held in this session (its map is weak) ...
        with services.registry("test") as other:
            _, first = patron(other, nth=0)  # ... then advanced and committed elsewhere
        _, second = patron(reg, nth=1)
        assert loaded
    assert int(second.number[1:]) == int(first.number[1:]) + 1


def test_activity_is_written_once_per_oslo_day_and_always_clears_a_purge_warning(reg: Registry,
                                                                                 clock: FakeClock) -> None:
    library(reg)
    person_, _ = patron(reg)
    registered = person_.last_activity_at
    clock.advance(hours=10, minutes=59)  # registered 13:00 Oslo time; now 23:59 the same day there
    assert patrons.record_activity(reg, person_) is False and person_.last_activity_at == registered
    clock.advance(minutes=1)  # 23:00 UTC is midnight in Oslo: a new day
    assert patrons.record_activity(reg, person_) is True and person_.last_activity_at == clock()
    person_.inactivity_warned_at = clock()
    clock.advance(minutes=1)
    assert patrons.record_activity(reg, person_) is True and person_.inactivity_warned_at is None


# -- the login path: one lean read of the secret on file -----------------------------------------

def test_a_login_reads_the_secret_on_file_and_upgrades_an_outdated_hash(reg: Registry) -> None:
    p, card = with_outdated_password(reg)
    on_file = cards.find_secret_on_file(reg, card.number, "password")
    assert on_file is not None and on_file.patron_id == p.id and on_file.must_change
    assert "argon2" not in repr(on_file)  # the hash never reaches a log line
    check = patrons.check_secret(reg, on_file, "correct horse battery")
    assert check.ok and check.must_change and check.rehashed
    reg.session.expire_all()
    upgraded = reg.session.get(Credential, (p.id, "password")).hash
    assert "m=1024" in upgraded and "m=256" not in upgraded
    again = cards.find_secret_on_file(reg, card.number, "password")
    assert patrons.check_secret(reg, again, "correct horse battery").ok
    assert not patrons.check_secret(reg, again, "correct horse batterY").ok


def test_a_login_fails_alike_for_unknown_and_unreadable_cards_blocked_patrons_and_missing_secrets(
        reg: Registry) -> None:
    library(reg)
    p, card = patron(reg, password="correct horse battery")
    unknown = f"N{int(card.number[1:]) + 50:09d}"
    assert cards.find_secret_on_file(reg, unknown, "password") is None
    assert cards.find_secret_on_file(reg, "not a card!", "password") is None
    assert not patrons.check_secret(reg, None, "correct horse battery").ok
    no_pin = cards.find_secret_on_file(reg, card.number, "pin")
    assert no_pin is not None and no_pin.secret_hash is None
    assert not patrons.check_secret(reg, no_pin, "4711").ok
    patrons.update_patron(reg, p, status="blocked")
    blocked = cards.find_secret_on_file(reg, card.number, "password")
    assert not patrons.check_secret(reg, blocked, "correct horse battery").ok


def test_a_login_writes_activity_once_per_oslo_day_and_clears_a_purge_warning(reg: Registry, clock: FakeClock) -> None:
    library(reg)
    person_, card = patron(reg, password="correct horse battery")
    registered = person_.last_activity_at

    def login_activity() -> bool:
        on_file = cards.find_secret_on_file(reg, card.number, "password")
        assert on_file is not None
        written = patrons.record_activity_on_file(reg, on_file)
        reg.session.expire_all()
        return written

    clock.advance(hours=10, minutes=59)  # still the registration day in Oslo
    assert login_activity() is False and reg.session.get(Patron, person_.id).last_activity_at == registered
    clock.advance(minutes=1)  # midnight in Oslo
    assert login_activity() is True and reg.session.get(Patron, person_.id).last_activity_at == clock()
    reg.session.get(Patron, person_.id).inactivity_warned_at = clock()
    reg.session.flush()
    clock.advance(minutes=1)
    assert login_activity() is True and reg.session.get(Patron, person_.id).inactivity_warned_at is None


def test_a_field_a_federation_keeps_up_to_date_cannot_be_changed_here(reg: Registry) -> None:
    # docs/account.md: "A field a university federation owns cannot be changed here" (nor by staff).
    library(reg)
    student, _ = patron(reg, nth=0)
    other, _ = patron(reg, nth=1, email="ola@example.org")
    now = reg.now()
    for nth, (who, fields) in enumerate(((student, {"name": "cn"}), (student, {"name": "displayName", "email": "mail"}),
                                         (other, {"phone": "mobile"}))):
        federation = Federation(name=f"uni{nth}", display_name=f"University {nth}", entity_id=f"https://u{nth}.example",
                                metadata_xml="<md/>", link_attribute="eppn", attribute_map=fields, created_at=now,
                                updated_at=now)
        reg.session.add(federation)
        reg.session.flush()
        reg.session.add(UpstreamIdentity(federation_id=federation.id, subject_hash=bytes([nth]) * 32,
                                         patron_id=who.id, linked_by="operator", linked_at=now))
    reg.session.flush()
    assert sorted(owned.owned_fields(reg, student.id)) == ["email", "name"]
    for change in ({"name": "Kari Student"}, {"email": "kari@uni.example"}):
        with pytest.raises(NotAllowed, match="cannot be changed here"):
            patrons.update_patron(reg, student, **change)
    assert patrons.update_patron(reg, student, phone="+47 412 34 567") == ["phone"]
    assert patrons.update_patron(reg, other, name="Ola Nordmann") == ["name"]
