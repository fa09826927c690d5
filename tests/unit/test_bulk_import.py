"""Tests for idp.registry.bulk.import_patrons, on both backends (the conftest fixtures run each
test on SQLite and on PostgreSQL), plus a smoke run of bench/register.py.

National ids are built with tests.nin from the published rules, not with the module under test.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, event, func, select, text
from sqlalchemy.engine import make_url

from idp.registry.loan_bans import is_banned
from idp.errors import CardOutsideSeries, Conflict, InvalidNationalId, NotAllowed, NotFound, ValidationError
from idp.registry.bulk import PatronImport, import_patrons
from idp.registry.cardnumbers import national_number
from idp.registry.cards import find_card
from idp.registry.context import Registry
from idp.registry.libraries import add_library, get_library, reserve_series
from idp.registry.models import AuditEvent, Card, CardSeries, Membership, Patron
from idp.registry.patrons import NewPatron, find_by_national_id, register_patron
from idp.services import Services
from tests.nin import duf, with_controls

pytestmark = pytest.mark.backends  # COPY vs executemany, ANY() vs IN slices, concurrent imports

ISIL = "NO-1234567"
OTHER_ISIL = "NO-7654321"
ROOT = Path(__file__).resolve().parents[2]


def people(count: int, *, first_birth: date = date(1960, 1, 1), per_day: int = 7) -> list[tuple[str, date]]:
    """``count`` distinct synthetic (Tenor) national ids with their birth dates, ``per_day`` per date."""
    out: list[tuple[str, date]] = []
    day = first_birth
    while len(out) < count:
        stem = f"{day.day:02d}{day.month + 80:02d}{day.year % 100:02d}"
        band = range(0, 500) if day.year < 2000 else range(500, 1000)
        found = (n for n in (with_controls(f"{stem}{i:03d}") for i in band) if n is not None)
        for _, number in zip(range(min(per_day, count - len(out))), found, strict=False):
            out.append((number, day))
        day += timedelta(days=1)
    return out


def rows_for(ids: list[tuple[str, date]]) -> list[PatronImport]:
    return [PatronImport(name=f"  Kari  Nordmann {i} ", national_id=nid, email=f"kari{i}@example.no",
                         phone="+47 912 34 567" if i % 2 else None)
            for i, (nid, _) in enumerate(ids)]


def typed(number: str) -> str:
    """A national card number the way a patron might type it: lower case, in groups of three."""
    digits = number[1:]
    return "n " + " ".join(digits[i:i + 3] for i in range(0, 9, 3))


def setup_library(services: Services, *, digital: tuple[int, ...] = (1_000,), first: int | None = None) -> None:
    """The library and its digital series, committed, as an operator would have left them."""
    with services.registry("test") as reg:
        add_library(reg, ISIL, "Deichman Bjørvika")
        for count in digital:
            series = reserve_series(reg, ISIL, count, first=first, usage="digital")
            if first is not None:
                first = series.last_number + 1


def counts(services: Services) -> dict[str, int]:
    with services.registry("test") as reg:
        return {model.__tablename__: reg.session.scalar(select(func.count()).select_from(model)) or 0
                for model in (Patron, Card, Membership)}


def next_numbers(services: Services) -> list[int]:
    with services.registry("test") as reg:
        return list(reg.session.scalars(select(CardSeries.next_number).order_by(CardSeries.first_number)))


def import_fails(services: Services, rows: list[PatronImport], error: type[Exception], **kwargs: int) -> str:
    """Run an import that must fail in its own transaction; the context manager rolls it back."""
    with pytest.raises(error) as info, services.registry("test") as reg:
        import_patrons(reg, rows, library_isil=ISIL, **kwargs)
    return str(info.value)


def test_imported_patrons_are_found_by_card_and_by_national_id(services: Services) -> None:
    setup_library(services)
    ids = people(20) + people(10, first_birth=date(2012, 2, 27))  # both individual-number bands
    with services.registry("importer") as reg:
        assert import_patrons(reg, rows_for(ids), library_isil=ISIL, batch_size=7) == 30
    with services.registry("test") as reg:
        for i, (nid, born) in enumerate(ids):
            patron = find_by_national_id(reg, nid)
            assert patron is not None
            assert patron.name == f"Kari Nordmann {i}"
            assert patron.birth_date == born
            assert patron.email == f"kari{i}@example.no"
            assert patron.phone == ("+4791234567" if i % 2 else None)
            assert patron.id_kind == "fnr" and patron.status == "active" and patron.local_library_id is None
            assert patron.home_library.isil == ISIL
            [membership] = patron.memberships
            assert membership.library.isil == ISIL and membership.rules_accepted_at is not None
            [card] = patron.cards
            assert card.kind == "digital" and card.status == "active" and card.library.isil == ISIL
            found = find_card(reg, typed(card.number))
            assert found is not None and found.patron_id == patron.id


def test_an_imported_patron_looks_like_a_registered_one(services: Services) -> None:
    setup_library(services)
    (one, _), (two, _) = people(2)
    with services.registry("test") as reg:
        registered, _ = register_patron(reg, NewPatron(name="Ola Nordmann", home_library=ISIL, national_id=one,
                                                       email="ola@example.no"))
        import_patrons(reg, [PatronImport("Ola Nordmann", two, "ola@example.no")], library_isil=ISIL)
        imported = find_by_national_id(reg, two)
        assert imported is not None

        def shape(p: Patron) -> dict[str, object]:
            return {"name": p.name, "id_kind": p.id_kind, "local": p.local_library_id, "street": p.street,
                    "secret": p.address_secret, "status": p.status, "loan_ban": is_banned(p),
                    "home": p.home_library_id, "email": p.email, "phone": p.phone,
                    "created": p.created_at, "activity": p.last_activity_at, "warned": p.inactivity_warned_at,
                    "memberships": [(m.library_id, m.added_at, m.rules_accepted_at) for m in p.memberships],
                    "cards": [(c.kind, c.status, c.library_id, c.issued_at) for c in p.cards]}

        assert shape(imported) == shape(registered)
        # Both drew from the same digital series, one after the other.
        assert int(imported.cards[0].number[1:]) == int(registered.cards[0].number[1:]) + 1


def test_the_national_id_is_not_stored_in_clear(services: Services) -> None:
    setup_library(services)
    ids = people(5)
    with services.registry("test") as reg:
        import_patrons(reg, rows_for(ids), library_isil=ISIL)
    with services.registry("test") as reg:
        raw = reg.session.execute(text("SELECT * FROM patron")).mappings().all()
        assert len(raw) == 5
        clear = {nid for nid, _ in ids}
        for row in raw:
            dump = b"|".join(bytes(v) if isinstance(v, bytes | memoryview) else str(v).encode() for v in row.values())
            assert not any(nid.encode() in dump for nid in clear)
            cipher, lookup = bytes(row["national_id_cipher"]), bytes(row["national_id_hash"])
            assert reg.cipher.decrypt(cipher, context=lookup) in clear
        ciphers = {bytes(r["national_id_cipher"]) for r in raw}
        assert len(ciphers) == 5


def test_cards_come_from_the_digital_series_which_advances_once_per_batch(services: Services) -> None:
    setup_library(services, digital=(100,), first=5_000)
    with services.registry("test") as reg:
        reserve_series(reg, ISIL, 100, first=9_000, usage="printed")
    statements: list[str] = []

    def seen(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        statements.append(statement)

    event.listen(services.engine, "before_cursor_execute", seen)
    try:
        with services.registry("test") as reg:
            import_patrons(reg, rows_for(people(25)), library_isil=ISIL, batch_size=10)
    finally:
        event.remove(services.engine, "before_cursor_execute", seen)
    assert len([s for s in statements if s.lstrip().upper().startswith("UPDATE CARD_SERIES")]) == 3
    assert next_numbers(services) == [5_025, 9_000]
    with services.registry("test") as reg:
        numbers = set(reg.session.scalars(select(Card.number)))
    assert numbers == {national_number(n) for n in range(5_000, 5_025)}


def test_an_import_continues_in_the_next_digital_series_when_one_is_used_up(services: Services) -> None:
    setup_library(services, digital=(10, 10), first=100)
    with services.registry("test") as reg:
        import_patrons(reg, rows_for(people(15)), library_isil=ISIL, batch_size=15)
    assert next_numbers(services) == [110, 115]


def test_each_batch_leaves_one_audit_event_without_personal_data(services: Services) -> None:
    setup_library(services)
    ids = people(25)
    with services.registry("importer") as reg:
        import_patrons(reg, rows_for(ids), library_isil=ISIL, batch_size=10)
    with services.registry("test") as reg:
        events = list(reg.session.scalars(select(AuditEvent).where(AuditEvent.action == "patron.bulk_import")
                                          .order_by(AuditEvent.id)))
        patron_ids = sorted(reg.session.scalars(select(Patron.id)))
    assert [e.detail["count"] for e in events] == [10, 10, 5]
    assert all(e.actor == "importer" and e.library_id is not None for e in events)
    listed = [i for e in events for a, b in e.detail["patron_ids"] for i in range(a, b + 1)]
    assert listed == patron_ids
    dump = json.dumps([e.detail for e in events])
    assert not any(nid in dump for nid, _ in ids) and "Nordmann" not in dump and "example.no" not in dump


def test_an_empty_import_writes_nothing(services: Services) -> None:
    setup_library(services)
    series_before = next_numbers(services)
    with services.registry("test") as reg:
        assert import_patrons(reg, [], library_isil=ISIL) == 0
        assert reg.session.scalar(select(func.count()).select_from(AuditEvent)
                                  .where(AuditEvent.action == "patron.bulk_import")) == 0
    assert next_numbers(services) == series_before


@pytest.mark.parametrize("batch_size", [1_000, 3], ids=["same-batch", "across-batches"])
def test_a_person_twice_in_the_input_is_refused_and_nothing_is_left(services: Services, batch_size: int) -> None:
    setup_library(services)
    ids = people(10)
    rows = rows_for(ids)
    rows.insert(7, PatronImport("Someone Else", ids[2][0]))
    before, series_before = counts(services), next_numbers(services)
    message = import_fails(services, rows, Conflict, batch_size=batch_size)
    assert "Row 8" in message
    assert ids[2][0] not in message and ids[2][0][:6] not in message
    assert counts(services) == before == {"patron": 0, "card": 0, "membership": 0}
    assert next_numbers(services) == series_before


@pytest.mark.parametrize("how", ["registered", "imported"])
def test_a_person_already_registered_is_refused_and_nothing_is_left(services: Services, how: str) -> None:
    setup_library(services)
    ids = people(20)
    existing = ids[13][0]
    with services.registry("test") as reg:
        if how == "registered":
            register_patron(reg, NewPatron(name="Ola Nordmann", home_library=ISIL, national_id=existing))
        else:
            import_patrons(reg, [PatronImport("Ola Nordmann", existing)], library_isil=ISIL)
    before, series_before = counts(services), next_numbers(services)
    message = import_fails(services, rows_for(ids), Conflict, batch_size=4)
    assert "Row 14" in message and "already has a national account" in message
    assert existing not in message
    assert counts(services) == before == {"patron": 1, "card": 1, "membership": 1}
    assert next_numbers(services) == series_before


def test_register_patron_refuses_a_person_who_was_imported(services: Services) -> None:
    setup_library(services)
    [(nid, _)] = people(1)
    with services.registry("test") as reg:
        import_patrons(reg, [PatronImport("Ola Nordmann", nid)], library_isil=ISIL)
    with pytest.raises(Conflict), services.registry("test") as reg:
        register_patron(reg, NewPatron(name="Ola Nordmann", home_library=ISIL, national_id=nid))


def test_a_bad_national_id_in_row_500_of_1000_leaves_nothing(services: Services) -> None:
    setup_library(services, digital=(1_000,))
    ids = people(1_000)
    rows = rows_for(ids)
    good = ids[499][0]
    bad = good[:10] + str((int(good[10]) + 1) % 10)  # second control digit off by one
    rows[499] = PatronImport("Kari Nordmann", bad)
    before, series_before = counts(services), next_numbers(services)
    message = import_fails(services, rows, InvalidNationalId, batch_size=100)
    assert message.startswith("Row 500:") and bad not in message and good not in message
    assert counts(services) == before == {"patron": 0, "card": 0, "membership": 0}
    assert next_numbers(services) == series_before


@pytest.mark.parametrize(("field", "value"), [("name", "   "), ("email", "not-an-address"), ("phone", "12")])
def test_bad_contact_data_is_refused_with_its_row(services: Services, field: str, value: str) -> None:
    setup_library(services)
    rows = rows_for(people(5))
    fields = {"name": "Kari Nordmann", "national_id": people(5)[3][0], field: value}
    rows[3] = PatronImport(**fields)
    message = import_fails(services, rows, ValidationError)
    assert message.startswith("Row 4:")
    assert counts(services) == {"patron": 0, "card": 0, "membership": 0}


def test_a_duf_number_is_refused_and_nothing_is_left(services: Services) -> None:
    setup_library(services)
    rows = rows_for(people(5))
    number = duf(2015, 123456)
    rows[2] = PatronImport("Asylsøker Eksempel", number)
    message = import_fails(services, rows, NotAllowed, batch_size=2)
    assert message.startswith("Row 3:") and "DUF" in message and number not in message
    assert counts(services) == {"patron": 0, "card": 0, "membership": 0}


def test_a_series_exhausted_mid_import_is_refused_and_nothing_is_left(services: Services) -> None:
    setup_library(services, digital=(1_000,), first=1)
    message = import_fails(services, rows_for(people(1_500)), CardOutsideSeries, batch_size=400)
    assert ISIL in message and "idp series reserve NO-1234567 --count N --digital" in message
    assert counts(services) == {"patron": 0, "card": 0, "membership": 0}
    assert next_numbers(services) == [1]


def test_the_caller_may_go_on_and_commit_after_a_failed_import(services: Services) -> None:
    """The import rolls itself back to its savepoint: nothing of it survives the caller's commit."""
    setup_library(services)
    rows = rows_for(people(30))
    rows[24] = PatronImport("Kari Nordmann", "not a number")
    with services.registry("test") as reg:
        with pytest.raises(InvalidNationalId):
            import_patrons(reg, rows, library_isil=ISIL, batch_size=10)
        assert reg.session.scalar(select(func.count()).select_from(Patron)) == 0
        add_library(reg, OTHER_ISIL, "Bergen offentlige bibliotek")
    assert counts(services) == {"patron": 0, "card": 0, "membership": 0}
    assert next_numbers(services) == [1]
    with services.registry("test") as reg:
        assert [isil for isil in reg.session.scalars(text("SELECT isil FROM library ORDER BY isil"))] == [
            ISIL, OTHER_ISIL]


def test_a_card_number_already_issued_in_the_series_is_refused(services: Services) -> None:
    setup_library(services, digital=(100,), first=700)
    with services.registry("test") as reg:
        library_id = reg.session.scalar(text("SELECT id FROM library"))
        # A local number that sorts inside the series' range is no clash; a national one is.
        reg.session.add(Card(number="N00000071A", kind="local", library_id=library_id, status="active",
                             issued_at=reg.now()))
        reg.session.add(Card(number=national_number(705), kind="digital", library_id=library_id, status="retired",
                             issued_at=reg.now()))
    message = import_fails(services, rows_for(people(10)), Conflict)
    assert national_number(705) in message
    assert counts(services) == {"patron": 0, "card": 2, "membership": 0}


def test_a_concurrent_import_of_the_same_person_is_refused(services: Services) -> None:
    """Two libraries import one person at once: the unique index decides, the loser gets a Conflict."""
    if services.engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer: a second import waits for the first and cannot overlap it")
    setup_library(services)
    with services.registry("test") as reg:
        add_library(reg, OTHER_ISIL, "Bergen offentlige bibliotek")
        reserve_series(reg, OTHER_ISIL, 100, usage="digital")
    [(nid, _)] = people(1)
    outcome: list[BaseException | int] = []

    def second() -> None:
        try:
            with services.registry("other") as reg:
                outcome.append(import_patrons(reg, [PatronImport("Ola Nordmann", nid)], library_isil=OTHER_ISIL))
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            outcome.append(exc)

    with services.registry("test") as reg:
        import_patrons(reg, [PatronImport("Ola Nordmann", nid)], library_isil=ISIL)
        thread = threading.Thread(target=second)
        thread.start()
        deadline = time.monotonic() + 10
        while not _waiting_on_a_lock(services) and thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.02)
    thread.join(timeout=30)
    [result] = outcome
    assert isinstance(result, Conflict), result
    assert "another transaction" in str(result) and nid not in str(result)
    assert counts(services) == {"patron": 1, "card": 1, "membership": 1}


def test_numbers_come_from_the_series_as_locked_not_as_loaded_earlier(services: Services) -> None:
    """A series this session read before another transaction advanced it is re-read under the lock."""
    if services.engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer: the other transaction cannot commit while this one reads")
    setup_library(services, digital=(100,), first=1)
    (one, _), (two, _) = people(2)
    with services.registry("test") as reg:
        # Held, so the session's identity map (weak references) keeps the object as loaded.
        library = get_library(reg, ISIL)
        assert [s.next_number for s in library.series] == [1]
        with services.registry("other") as other:
            import_patrons(other, [PatronImport("Ola Nordmann", one)], library_isil=ISIL)
        import_patrons(reg, [PatronImport("Kari Nordmann", two)], library_isil=ISIL)
        assert [s.next_number for s in library.series] == [3]
        patron = find_by_national_id(reg, two)
        assert patron is not None and patron.cards[0].number == national_number(2)
    assert next_numbers(services) == [3]


def _waiting_on_a_lock(services: Services) -> bool:
    with services.engine.connect() as connection:
        return bool(connection.scalar(text("SELECT count(*) FROM pg_stat_activity "
                                           "WHERE datname = current_database() AND wait_event_type = 'Lock'")))


def test_a_library_without_a_digital_series_cannot_import(services: Services) -> None:
    setup_library(services, digital=())
    import_fails(services, rows_for(people(1)), CardOutsideSeries)
    assert counts(services) == {"patron": 0, "card": 0, "membership": 0}


def test_an_unknown_library_is_refused(services: Services) -> None:
    setup_library(services)
    with pytest.raises(NotFound), services.registry("test") as reg:
        import_patrons(reg, rows_for(people(1)), library_isil=OTHER_ISIL)


@pytest.mark.parametrize("size", [0, 20_001])
def test_the_batch_size_is_bounded(reg: Registry, size: int) -> None:
    with pytest.raises(ValueError, match="batch_size"):
        import_patrons(reg, [], library_isil=ISIL, batch_size=size)


@pytest.mark.slow
def test_the_benchmark_runs_and_reports(postgres_database: str) -> None:
    """A small run of bench/register.py; it creates its own database next to the test one and drops it."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "register.py"), "--patrons", "2000", "--lookups", "200",
         "--batch", "500", "--database-url", postgres_database],
        capture_output=True, text=True, timeout=300, cwd=ROOT, check=False)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert re.search(r"^patrons imported: 2,000 ", out, re.M), out
    assert re.search(r"^import rate: [\d,]+ patrons/s \(target >= 10,000: (met|NOT met)\)$", out, re.M), out
    for what in ("card number", "national id"):
        assert re.search(rf"^lookup by {what}: p50 [\d.]+ ms, p99 [\d.]+ ms \(target p99 < 2 ms: (met|NOT met)\)$",
                         out, re.M), out
    name = re.search(r"^database: (idp_bench_\w+)", out, re.M)
    assert name is not None, out
    admin = create_engine(make_url(postgres_database))
    try:
        with admin.connect() as connection:
            left = connection.scalar(text("SELECT count(*) FROM pg_database WHERE datname = :n"), {"n": name[1]})
    finally:
        admin.dispose()
    assert left == 0
