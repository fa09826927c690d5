"""Benchmark of the patron register on PostgreSQL: bulk import, then lookups by card and national id.

    .venv/bin/python bench/register.py [--patrons N] [--database-url URL] [--batch B] [--lookups L]

The URL names a PostgreSQL server and a database to connect to for administration; the benchmark
creates its own database ``idp_bench_<random>`` there, migrates it, and drops it at the end, also
after a failure, Ctrl-C or SIGTERM. Patrons are synthetic: Tenor national ids (month + 80, never a
real person's) spread over many birth dates, generated as a stream so memory stays bounded.
"""

from __future__ import annotations

import argparse
import random
import resource
import secrets
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from itertools import islice

from sqlalchemy import Engine, text
from sqlalchemy.engine import URL, make_url

from benchlib import machine_line, positive, private_database, stop_on_signals
from idp import migrate
from idp.db import make_engine, session_factory
from idp.registry.bulk import DEFAULT_BATCH, MAX_BATCH, PatronImport, import_patrons
from idp.registry.cards import find_card
from idp.registry.credentials import SecretHasher
from idp.registry.crypto import FieldCipher
from idp.registry.libraries import MAX_SERIES_COUNT, add_library, reserve_series
from idp.registry.national_id import synthetic_national_ids
from idp.registry.patrons import find_by_national_id
from idp.services import Services
from idp.settings import OWASP_ARGON2_MIN_MEMORY_KIB, OWASP_ARGON2_MIN_TIME_COST, load_settings
from idp.state import MemoryState

DEFAULT_URL = "postgresql+psycopg://127.0.0.1:5432/test"
ISIL = "NO-9999999"
IMPORT_TARGET = 10_000  # patrons/s
LOOKUP_TARGET_MS = 2.0  # p99
PER_BIRTH_DATE = 40  # of about 414 valid synthetic numbers per date: ~25,000 dates for a million
FIRST_BIRTH = date(1935, 1, 1)
WARM_UP = 200
FIRST_NAMES = ("Kari", "Ola", "Ingrid", "Lars", "Nora", "Jonas", "Emma", "Aksel", "Sofie", "Henrik", "Amina",
               "Mohammed", "Sigrid", "Magnus", "Astrid", "Tobias")
LAST_NAMES = ("Nordmann", "Hansen", "Johansen", "Olsen", "Larsen", "Andersen", "Pedersen", "Nilsen", "Kristiansen",
              "Jensen", "Karlsen", "Berg", "Haugen", "Hagen", "Bakke", "Solberg", "Ali", "Nguyen")


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    stop_on_signals()
    admin_url = make_url(args.database_url)
    if admin_url.get_backend_name() != "postgresql":
        print("the register benchmark runs on PostgreSQL only", file=sys.stderr)
        return 2
    try:
        with private_database(admin_url, "idp_bench") as (url, name):
            _run(args, url, name)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patrons", type=positive, default=1_000_000, help="how many to import (1,000,000)")
    parser.add_argument("--database-url", default=DEFAULT_URL, help=f"administration connection ({DEFAULT_URL})")
    parser.add_argument("--batch", type=_batch, default=DEFAULT_BATCH,
                        help=f"rows per batch, at most {MAX_BATCH:,} ({DEFAULT_BATCH:,})")
    parser.add_argument("--lookups", type=positive, default=10_000, help="timed lookups of each kind (10,000)")
    parser.add_argument("--seed", type=int, default=2026, help="random seed for names and lookup order")
    return parser.parse_args(argv)


def _batch(value: str) -> int:
    number = positive(value)
    if number > MAX_BATCH:
        raise argparse.ArgumentTypeError(f"at most {MAX_BATCH:,}")
    return number


def _services(url: URL) -> Services:
    """The production wiring without Redis or key files: nothing here needs either."""
    rendered = url.render_as_string(hide_password=False)
    settings = load_settings({}, mode="production", database_url=rendered, data_key=secrets.token_urlsafe(32),
                             secret_key=secrets.token_urlsafe(32))
    engine = make_engine(rendered)
    return Services(settings=settings, engine=engine, sessions=session_factory(engine),
                    cipher=FieldCipher(settings.data_key_bytes()),
                    hasher=SecretHasher(time_cost=OWASP_ARGON2_MIN_TIME_COST, memory_kib=OWASP_ARGON2_MIN_MEMORY_KIB,
                                        parallelism=1),
                    state=MemoryState())


def _run(args: argparse.Namespace, url: URL, name: str) -> None:
    rng = random.Random(args.seed)
    services = _services(url)
    try:
        _facts(services.engine, name)
        migrate.upgrade(services.engine)
        with services.registry("bench") as reg:
            add_library(reg, ISIL, "Benchmark bibliotek")
            left = args.patrons
            while left > 0:  # one series holds at most a million numbers
                reserve_series(reg, ISIL, min(left, MAX_SERIES_COUNT), usage="digital")
                left -= MAX_SERIES_COUNT

        patrons = SyntheticPatrons(args.patrons, rng, set(rng.sample(range(args.patrons),
                                                                     min(args.lookups, args.patrons))))
        started = time.perf_counter()
        with services.registry("bench") as reg:
            imported = import_patrons(reg, patrons, library_isil=ISIL, batch_size=args.batch)
        seconds = time.perf_counter() - started
        register_seconds = seconds - patrons.seconds
        rate = imported / register_seconds
        print(f"patrons imported: {imported:,} (batches of {args.batch:,}, one transaction)")
        print(f"seconds: {seconds:.1f} wall clock, commit included; {patrons.seconds:.1f} of them generating "
              f"the synthetic input, {register_seconds:.1f} in the register")
        print(f"import rate: {rate:,.0f} patrons/s (target >= {IMPORT_TARGET:,}: "
              f"{'met' if rate >= IMPORT_TARGET else 'NOT met'})")
        print(f"import rate with input generation: {imported / seconds:,.0f} patrons/s")

        analyzed = time.perf_counter()
        with services.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("ANALYZE"))
        print(f"analyze after import: {time.perf_counter() - analyzed:.1f} s (not counted above)")
        _sizes(services.engine)

        cards = _sample_cards(services.engine, args.lookups, rng)
        sampled = patrons.sampled
        rng.shuffle(sampled)
        print(f"lookups: {len(cards):,} by card number, {len(sampled):,} by national id, random, each in its own "
              f"register transaction as a login's would be, after {WARM_UP} untimed warm-up lookups of each kind")
        _report("card number", _timed(services, cards, lambda reg, card: find_card(reg, _typed_card(card))))
        _report("national id", _timed(services, sampled, find_by_national_id))
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
        print(f"peak memory of the benchmark process: {peak:,.0f} MiB")
    finally:
        services.close()


def _facts(engine: Engine, name: str) -> None:
    with engine.connect() as connection:
        version = connection.scalar(text("SHOW server_version"))
        settings = {k: connection.scalar(text(f"SHOW {k}")) for k in ("shared_buffers", "synchronous_commit",
                                                                     "max_wal_size")}
    print(f"database: {name}")
    print(machine_line())
    print(f"postgresql: {version}, on {engine.url.host}:{engine.url.port}; "
          + ", ".join(f"{k}={v}" for k, v in settings.items()))


@dataclass
class SyntheticPatrons:
    """A stream of synthetic patrons, made a birth date at a time so memory stays bounded.

    Keeps the national ids at the positions in ``sample`` for the lookups, and the time spent
    making the input, so the report can tell it apart from the register's own time.
    """

    count: int
    rng: random.Random
    sample: set[int]
    sampled: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def __iter__(self) -> Iterator[PatronImport]:
        day, produced, yesterday = FIRST_BIRTH, 0, date.today() - timedelta(days=1)
        while produced < self.count:
            if day > yesterday:
                raise SystemExit(f"more patrons than synthetic numbers at {PER_BIRTH_DATE} per birth date")
            started = time.perf_counter()
            chunk = []
            for number in islice(synthetic_national_ids(day), min(PER_BIRTH_DATE, self.count - produced)):
                if produced in self.sample:
                    # Typed the way a clerk might: birth date, a space, the individual digits.
                    self.sampled.append(f"{number[:6]} {number[6:]}")
                first, last = self.rng.choice(FIRST_NAMES), self.rng.choice(LAST_NAMES)
                chunk.append(PatronImport(name=f"{first} {last}", national_id=number,
                                          email=f"{first}.{last}.{produced}@example.no".lower(),
                                          phone=f"+47 9{produced % 10_000_000:07d}" if produced % 3 else None))
                produced += 1
            day += timedelta(days=1)
            self.seconds += time.perf_counter() - started
            yield from chunk


def _sample_cards(engine: Engine, count: int, rng: random.Random) -> list[str]:
    with engine.connect() as connection:
        connection.execute(text("SELECT setseed(:s)"), {"s": rng.uniform(-1, 1)})
        # ORDER BY random() reads the whole table once: seconds for a million rows, and no extension needed.
        return list(connection.scalars(text("SELECT number FROM card ORDER BY random() LIMIT :n"), {"n": count}))


def _typed_card(number: str) -> str:
    """As a patron types a printed number: lower case, groups of three, e.g. "n 000 123 456"."""
    digits = number[1:]
    return "n " + " ".join(digits[i:i + 3] for i in range(0, len(digits), 3))


def _timed(services: Services, keys: list[str], lookup: Callable[..., object]) -> tuple[list[float], list[float]]:
    """Milliseconds of the lookup itself, and of the whole register transaction around it.

    The lookup's clock starts once the transaction holds its connection (pool checkout and
    pre-ping are per request, not per lookup); it includes BEGIN, which psycopg sends with
    the first query. The transaction's clock covers checkout, lookup and commit.
    """
    for key in keys[:WARM_UP]:
        with services.registry("bench") as reg:
            if lookup(reg, key) is None:
                raise SystemExit("a lookup found nothing: the benchmark's data is not what it imported")
    lookups, requests = [], []
    for key in keys:
        began = time.perf_counter()
        with services.registry("bench") as reg:
            reg.session.connection()
            started = time.perf_counter()
            found = lookup(reg, key)
            lookups.append((time.perf_counter() - started) * 1000)
        requests.append((time.perf_counter() - began) * 1000)
        if found is None:
            raise SystemExit("a lookup found nothing: the benchmark's data is not what it imported")
    return lookups, requests


def _report(what: str, timings: tuple[list[float], list[float]]) -> None:
    lookups, requests = timings
    p50, p99 = _percentiles(lookups)
    print(f"lookup by {what}: p50 {p50:.2f} ms, p99 {p99:.2f} ms (target p99 < {LOOKUP_TARGET_MS:g} ms: "
          f"{'met' if p99 < LOOKUP_TARGET_MS else 'NOT met'})")
    p50, p99 = _percentiles(requests)
    print(f"  whole transaction (checkout with pre-ping, lookup, commit): p50 {p50:.2f} ms, p99 {p99:.2f} ms")


def _percentiles(millis: list[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(millis, n=100, method="inclusive")
    return statistics.median(millis), cuts[98]


def _sizes(engine: Engine) -> None:
    with engine.connect() as connection:
        for table in ("patron", "card", "membership", "audit_event"):
            rows = connection.scalar(text(f"SELECT count(*) FROM {table}"))  # noqa: S608 - names from the tuple above
            size = connection.execute(text(
                "SELECT pg_size_pretty(pg_table_size(:t)), pg_size_pretty(pg_indexes_size(:t)), "
                "pg_size_pretty(pg_total_relation_size(:t))"), {"t": table}).one()
            print(f"table {table}: {rows:,} rows, {size[0]} data + {size[1]} indexes = {size[2]}")


if __name__ == "__main__":
    sys.exit(main())
