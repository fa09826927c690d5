"""Card-number series: a library reserves a range before printing; ranges never overlap."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError

from idp.errors import NotFound, SeriesOverlap, ValidationError
from idp.registry import libraries
from idp.registry.context import Registry
from idp.registry.models import CardSeries, Library
from idp.services import Services
import itertools

pytestmark = pytest.mark.backends  # the overlap guard (EXCLUDE vs a trigger) and reservation races


@pytest.fixture
def two_libraries(services: Services) -> None:
    with services.registry("test") as reg:
        libraries.add_library(reg, "NO-2030000", "Oslo")
        libraries.add_library(reg, "NO-4601000", "Bergen")


def ranges(services: Services) -> list[tuple[int, int]]:
    with services.registry("test") as reg:
        return [(s.first_number, s.last_number) for s in
                reg.session.scalars(select(CardSeries).order_by(CardSeries.first_number))]


def assert_disjoint(spans: list[tuple[int, int]]) -> None:
    for (_, last), (first, _) in itertools.pairwise(spans):
        assert last < first, f"overlapping series: {spans}"


def test_reservations_follow_each_other_without_overlap(services: Services, two_libraries: None) -> None:
    with services.registry("test") as reg:
        a = libraries.reserve_series(reg, "NO-2030000", 1000)
        b = libraries.reserve_series(reg, "no-4601000", 500, usage="digital")
        assert (a.first_number, a.last_number) == (1, 1000)
        assert (b.first_number, b.last_number, b.usage) == (1001, 1500, "digital")
    assert_disjoint(ranges(services))


def test_an_explicit_range_that_overlaps_names_the_other_library(services: Services, two_libraries: None) -> None:
    with services.registry("test") as reg:
        libraries.reserve_series(reg, "NO-2030000", 100, first=5000)
    with pytest.raises(SeriesOverlap) as info, services.registry("test") as reg:
        libraries.reserve_series(reg, "NO-4601000", 10, first=5095)
    assert "NO-2030000" in info.value.message and "N000005000-N000005099" in info.value.message
    assert ranges(services) == [(5000, 5099)]


def test_adjacent_ranges_are_fine(services: Services, two_libraries: None) -> None:
    with services.registry("test") as reg:
        libraries.reserve_series(reg, "NO-2030000", 100, first=5000)
        libraries.reserve_series(reg, "NO-4601000", 100, first=5100)
        libraries.reserve_series(reg, "NO-4601000", 100, first=4900)
    assert ranges(services) == [(4900, 4999), (5000, 5099), (5100, 5199)]


@pytest.mark.parametrize(("count", "first", "usage"), [
    (0, None, "printed"), (-5, None, "printed"), (1_000_001, None, "printed"), (True, None, "printed"),
    (10, 0, "printed"), (10, -1, "printed"), (10, None, "plastic"),
])
def test_bad_reservations_are_refused(services: Services, two_libraries: None, count: int, first: int | None,
                                      usage: str) -> None:
    with pytest.raises(ValidationError), services.registry("test") as reg:
        libraries.reserve_series(reg, "NO-2030000", count, first=first, usage=usage)
    assert ranges(services) == []


def test_a_library_system_reserves_at_most_100000_numbers_at_once(services: Services, two_libraries: None) -> None:
    # Issue 15: "a series reservation is capped (e.g. 100,000 numbers at once)" for a library's own system.
    with pytest.raises(ValidationError, match="100,000"), services.registry("test") as reg:
        libraries.reserve_series(reg, "NO-2030000", 100_001, at_most=libraries.MAX_LIBRARY_SERIES_COUNT)
    assert ranges(services) == []
    with services.registry("test") as reg:
        libraries.reserve_series(reg, "NO-2030000", 100_000, at_most=libraries.MAX_LIBRARY_SERIES_COUNT)
        libraries.reserve_series(reg, "NO-2030000", 100_001)  # the operator's reservations are not capped so
    assert ranges(services) == [(1, 100_000), (100_001, 200_001)]


def test_the_number_space_ends_at_nine_nines(services: Services, two_libraries: None) -> None:
    with pytest.raises(SeriesOverlap, match="N999999999"), services.registry("test") as reg:
        libraries.reserve_series(reg, "NO-2030000", 10, first=999_999_995)


def test_unknown_library(services: Services) -> None:
    with pytest.raises(NotFound, match="NO-0000000"), services.registry("test") as reg:
        libraries.reserve_series(reg, "NO-0000000", 10)


def test_the_database_itself_refuses_overlap(services: Services, two_libraries: None) -> None:
    """Even code that bypasses the service (or races it) cannot store overlapping ranges."""
    with services.registry("test") as reg:
        lib_id = reg.session.scalar(select(Library.id))
        now = reg.now()
        row = dict(library_id=lib_id, usage="printed", reserved_at=now)
        reg.session.execute(insert(CardSeries).values(first_number=10, last_number=20, next_number=10, **row))
    with pytest.raises(IntegrityError), services.registry("test") as reg:
        reg.session.execute(insert(CardSeries).values(first_number=20, last_number=30, next_number=20, **row))
    assert ranges(services) == [(10, 20)]


def test_racing_explicit_reservations_one_wins(services: Services, two_libraries: None) -> None:
    """Two transactions reserve overlapping ranges at the same moment: exactly one commits."""
    if services.engine.dialect.name != "postgresql":
        pytest.skip("SQLite has a single writer, so the race cannot happen there (the trigger is tested above)")
    both_checked = threading.Barrier(2, timeout=10)
    outcomes: list[str] = []

    def reserve(isil: str, first: int) -> None:
        try:
            with services.registry("test") as reg:
                # Both transactions have passed the application-level overlap check before either inserts.
                assert libraries._overlapping(reg, first, first + 99) is None
                both_checked.wait()
                libraries.reserve_series(reg, isil, 100, first=first)
            outcomes.append("ok")
        except SeriesOverlap:
            outcomes.append("overlap")

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(reserve, ["NO-2030000", "NO-4601000"], [1000, 1050]))
    assert sorted(outcomes) == ["ok", "overlap"]
    assert len(ranges(services)) == 1


def test_many_concurrent_automatic_reservations_all_succeed_disjoint(services: Services,
                                                                      two_libraries: None) -> None:
    def reserve(i: int) -> None:
        with services.registry("test") as reg:
            libraries.reserve_series(reg, ["NO-2030000", "NO-4601000"][i % 2], 50)

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(reserve, range(12)))
    spans = ranges(services)
    assert len(spans) == 12
    assert_disjoint(spans)
    with services.registry("test") as reg:
        assert reg.session.scalar(select(func.sum(CardSeries.last_number - CardSeries.first_number + 1))) == 600


def test_series_are_described_for_operators(reg: Registry) -> None:
    libraries.add_library(reg, "NO-2030000", "Oslo")
    libraries.reserve_series(reg, "NO-2030000", 10, first=1)
    lib = libraries.get_library(reg, "NO-2030000")
    reg.session.refresh(lib)
    assert libraries.describe_all_series(lib) == "N000000001-N000000010 (printed)"


def test_racing_inserts_on_postgresql_are_decided_by_the_constraint(services: Services,
                                                                    two_libraries: None) -> None:
    """Bypassing the service's lock: the second of two overlapping uncommitted inserts waits, then fails."""
    if services.engine.dialect.name != "postgresql":
        pytest.skip("concurrent writers exist only on PostgreSQL")
    with services.registry("test") as reg:
        lib_id = reg.session.scalar(select(Library.id))
        now = reg.now()
    first_inserted = threading.Event()
    results: dict[str, str] = {}

    def insert_range(name: str, first: int, wait: bool) -> None:
        try:
            with services.registry("test") as reg:
                if wait:
                    first_inserted.wait(10)
                reg.session.execute(insert(CardSeries).values(
                    library_id=lib_id, usage="printed", reserved_at=now, first_number=first,
                    last_number=first + 99, next_number=first))
                if not wait:
                    first_inserted.set()
                    threading.Event().wait(0.3)  # hold the transaction open while the other one inserts
            results[name] = "committed"
        except IntegrityError:
            results[name] = "refused"

    a = threading.Thread(target=insert_range, args=("a", 1000, False))
    b = threading.Thread(target=insert_range, args=("b", 1050, True))
    a.start(), b.start()
    a.join(15), b.join(15)
    assert results == {"a": "committed", "b": "refused"}
    assert ranges(services) == [(1000, 1099)]
