"""A secret address is never shown, exported, logged or put in an error message.

Not to staff, not to a library, not even back to the patron who typed it in while
registering. The register keeps only the flag, so every input path must drop the address
and every read path must come up empty. Each test writes the address in through one input
path, then reads the patron through every output we have and searches all of it, plus the
logs of the whole test and a raw dump of every table, for any fragment of the address.

The last test is the control: the same searches find an ordinary (non-secret) address, so a
leak of the secret one could not slip past them.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import select

from idp.cli import main
from idp.errors import IdpError
from idp.registry import libraries, memberships, patrons
from idp.registry.context import Registry
from idp.registry.models import AuditEvent, Base, Notification
from idp.registry.records import LimitedRecord, PatronRecord, limited_record
from idp.services import Services
from idp.settings import Settings
from tests.nin import person

pytestmark = pytest.mark.backends  # a dialect's error text or a raw table dump could leak the address

STREET, POSTAL_CODE, CITY = "Hemmeligveien 77", "9999", "Skjultby"
# "Hemmeligveien" alone as well: a leak may well be of a truncated or re-formatted street.
FRAGMENTS = (STREET, "Hemmeligveien", POSTAL_CODE, CITY)
SECRET = patrons.Address(STREET, POSTAL_CODE, CITY)

HOME, ACTIVE, PENDING = "NO-2030000", "NO-2030001", "NO-2030002"
STAFF = "staff:test"

Cli = Callable[..., Result]
Sources = list[tuple[str, str]]


def nin(nth: int) -> str:
    return person(date(1988, 2, 14), nth)


def _pattern(fragment: str) -> re.Pattern[str]:
    # A postal code is only a leak as a number of its own: "9999" inside a timestamp's
    # microseconds (".999912") or a card number is not the address.
    escaped = re.escape(fragment)
    return re.compile(rf"(?<!\d){escaped}(?!\d)" if fragment.isdigit() else escaped, re.IGNORECASE)


PATTERNS = {fragment: _pattern(fragment) for fragment in FRAGMENTS}


def leaks(text: str) -> list[str]:
    return [fragment for fragment, pattern in PATTERNS.items() if pattern.search(text)]


def assert_hidden(sources: Sources) -> None:
    found = {label: leaks(text) for label, text in sources if leaks(text)}
    assert not found, f"secret address revealed in: {found}"


def stringify(value: object) -> str:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", errors="ignore")
    return str(value)


def dump_database(services: Services) -> str:
    """Every value of every table, as text: what a backup or an export would carry."""
    lines = []
    with services.engine.connect() as connection:
        for table in Base.metadata.sorted_tables:
            for row in connection.execute(select(table)):
                lines.append(f"{table.name}: " + " | ".join(stringify(v) for v in row))
    return "\n".join(lines)


def log_text(caplog: pytest.LogCaptureFixture) -> str:
    # Messages with their arguments applied, plus any traceback a handler would print.
    return caplog.text + "\n".join(record.getMessage() for record in caplog.records)


@pytest.fixture(autouse=True)
def debug_logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    # DEBUG on sqlalchemy logs every statement's parameters and every row read: the most
    # talkative a production log could ever be configured.
    caplog.set_level(logging.DEBUG, logger="idp")
    caplog.set_level(logging.DEBUG, logger="sqlalchemy")
    yield


@pytest.fixture
def cli(settings: Settings) -> Cli:
    env: dict[str, str | None] = {
        name: None for name in os.environ if name.startswith("IDP_") and not name.startswith("IDP_TEST_")}
    env.update(IDP_MODE="development", IDP_HOME=str(settings.home), IDP_KEYS_DIR=str(settings.keys_dir),
               IDP_DATABASE_URL=settings.database_url,
               IDP_ARGON2_TIME_COST="1", IDP_ARGON2_MEMORY_KIB="1024")
    runner = CliRunner(env=env)

    def run(*args: str, expect_ok: bool = True) -> Result:
        result = runner.invoke(main, list(args), input="")
        if expect_ok:
            assert result.exit_code == 0, f"idp {' '.join(args)} failed:\n{result.output}"
        return result

    return run


@pytest.fixture
def register_ready(services: Services) -> Services:
    """Three libraries: the home library, one the patron activated at, one that only added them."""
    with services.registry(STAFF) as reg:
        for isil, name in ((HOME, "Home Library"), (ACTIVE, "Active Library"), (PENDING, "Pending Library")):
            libraries.add_library(reg, isil, name)
        libraries.reserve_series(reg, HOME, 100, usage="digital")
    return services


def register(services: Services, nth: int, *, address: patrons.Address | None, secret: bool) -> str:
    with services.registry(STAFF) as reg:
        _, card = patrons.register_patron(reg, patrons.NewPatron(
            name=f"Patron {nth}", national_id=nin(nth), home_library=HOME, email=f"p{nth}@example.org",
            address=address, address_secret=secret))
        return card.number


def join_libraries(services: Services, card: str) -> None:
    # Both libraries add the patron (each owes a notification); only ACTIVE has its rules accepted.
    with services.registry(STAFF) as reg:
        patron = patrons.patron_by_card(reg, card)
        memberships.accept_lending_rules(reg, patron, ACTIVE)
        memberships.add_to_library(reg, patron, PENDING)


def card_from(result: Result) -> str:
    return next(line.split(": ", 1)[1] for line in result.stdout.splitlines() if line.startswith("card_number: "))


def record_texts(label: str, record: LimitedRecord | PatronRecord) -> Sources:
    data = record.to_dict()
    return [(f"{label} repr", repr(record)), (f"{label} str", str(record)),
            (f"{label} to_dict", repr(data)),
            (f"{label} json", json.dumps(data, ensure_ascii=False, default=str))]


def rows_text(rows: list[AuditEvent] | list[Notification]) -> str:
    return "\n".join(" | ".join(stringify(getattr(row, column.key)) for column in row.__table__.columns)
                     for row in rows)


@dataclass
class Reading:
    """Everything the register gave out about one patron, and the facts the checks need."""

    sources: Sources
    full_address: dict[str, str | None] | None
    stored: tuple[str | None, ...]
    active_sees_full: bool
    pending_sees_full: bool
    audit_actions: list[str]
    notification_kinds: list[str]
    show_lines: list[str]
    show_json: dict[str, object]

    def text(self, label: str) -> str:
        return dict(self.sources)[label]


def read_everything(services: Services, cli: Cli, card: str) -> Reading:
    """Read the patron through every output the register has, and collect what each gave out."""
    sources: Sources = []
    with services.registry(STAFF) as reg:
        patron = patrons.patron_by_card(reg, card)
        full = patrons.read_full_record(reg, patron, purpose="support")
        active = memberships.library_view(reg, patron, ACTIVE)
        pending = memberships.library_view(reg, patron, PENDING)
        sources += record_texts("read_full_record", full)
        sources += record_texts(f"library_view {ACTIVE}", active)
        sources += record_texts(f"library_view {PENDING}", pending)
        sources += record_texts("limited_record", limited_record(patron))
        sources += [("Patron repr", repr(patron)), ("Patron str", str(patron))]
        sources += [(f"{type(o).__name__} repr", repr(o)) for o in (*patron.cards, *patron.memberships)]
        stored = (patron.street, patron.postal_code, patron.city)
        audit = list(reg.session.scalars(select(AuditEvent).where(AuditEvent.patron_id == patron.id)))
        notes = list(reg.session.scalars(select(Notification).where(Notification.patron_id == patron.id)))
    sources += [("audit_event rows", rows_text(audit)), ("notification rows", rows_text(notes))]

    show = cli("patron", "show", card)
    show_json = cli("patron", "show", card, "--json")
    sources += [("idp patron show", show.output), ("idp patron show --json", show_json.output)]
    for isil in (ACTIVE, PENDING):
        for extra in ((), ("--json",)):
            result = cli("patron", "show", card, "--library", isil, *extra)
            sources.append((" ".join(("idp patron show --library", isil, *extra)), result.output))
    sources.append(("database dump", dump_database(services)))
    return Reading(sources=sources, full_address=full.address, stored=stored, active_sees_full=active.full,
                   pending_sees_full=pending.full, audit_actions=[e.action for e in audit],
                   notification_kinds=[n.kind for n in notes], show_lines=show.stdout.splitlines(),
                   show_json=json.loads(show_json.stdout))


def assert_never_revealed(services: Services, cli: Cli, card: str, caplog: pytest.LogCaptureFixture,
                          errors: Sources) -> Reading:
    reading = read_everything(services, cli, card)
    # The reads really happened and returned the patron, so an empty answer cannot pass.
    assert reading.active_sees_full and not reading.pending_sees_full
    assert "patron.read_full" in reading.audit_actions
    assert reading.notification_kinds.count("library_added") == 2
    assert reading.show_json["cards"] and reading.show_json["address_secret"] is True
    assert any(r.name.startswith("sqlalchemy.engine") for r in caplog.records), "no SQL was logged"

    assert reading.stored == (None, None, None), "a secret address must not be stored at all"
    assert reading.full_address is None and reading.show_json["address"] is None
    assert "address: (secret)" in reading.show_lines
    assert_hidden([*reading.sources, *errors, ("logs (idp, sqlalchemy at DEBUG)", log_text(caplog))])
    return reading


def failing(services: Services, operation: Callable[[Registry], object]) -> str:
    """Run a register operation expected to be refused; return every text its error carries."""
    with pytest.raises(IdpError) as caught, services.registry(STAFF) as reg:
        operation(reg)
    exc = caught.value
    return "\n".join([str(exc), repr(exc), exc.message, repr(exc.args)])


def service_errors(services: Services, card: str, nth: int) -> Sources:
    """Refused operations on the patron, each carrying the secret address in its input."""
    def bad_email(reg: Registry) -> None:
        patrons.update_patron(reg, patrons.patron_by_card(reg, card), email="not-an-email", address=SECRET)

    def bad_address(reg: Registry) -> None:
        # A postal code over 16 characters: the refusal must not quote what it refused.
        too_long = patrons.Address(STREET, POSTAL_CODE * 5, CITY)
        patrons.update_patron(reg, patrons.patron_by_card(reg, card), address=too_long)

    def duplicate(reg: Registry) -> None:
        patrons.register_patron(reg, patrons.NewPatron(
            name="Someone Again", national_id=nin(nth), home_library=HOME, address=SECRET, address_secret=True))

    return [(f"error of {op.__name__}", failing(services, op)) for op in (bad_email, bad_address, duplicate)]


def cli_errors(cli: Cli, card: str, nth: int) -> Sources:
    address = ("--street", STREET, "--postal-code", POSTAL_CODE, "--city", CITY)
    refused = [
        ("idp patron update --email bad", cli("patron", "update", card, "--email", "bad", *address, expect_ok=False)),
        ("idp patron add (duplicate)", cli("patron", "add", "--national-id", nin(nth), "--name", "Someone Again",
                                           "--home-library", HOME, *address, "--secret-address", expect_ok=False)),
    ]
    for label, result in refused:
        assert result.exit_code == 1 and result.stderr.startswith("error: "), f"{label}: {result.output}"
    return [(label, result.output) for label, result in refused]


def test_registering_with_a_secret_address_stores_and_shows_none_of_it(
        register_ready: Services, cli: Cli, caplog: pytest.LogCaptureFixture) -> None:
    services = register_ready
    card = register(services, 1, address=SECRET, secret=True)
    join_libraries(services, card)

    errors = service_errors(services, card, 1) + cli_errors(cli, card, 1)
    assert_never_revealed(services, cli, card, caplog, errors)


def test_an_address_given_to_a_secret_patron_later_is_dropped(
        register_ready: Services, cli: Cli, caplog: pytest.LogCaptureFixture) -> None:
    services = register_ready
    card = register(services, 2, address=None, secret=True)
    with services.registry(STAFF) as reg:
        changed = patrons.update_patron(reg, patrons.patron_by_card(reg, card), address=SECRET, phone="+4791234567")
    assert changed == ["phone"], "only the phone may change: the address of a secret patron is not kept"
    join_libraries(services, card)

    errors = service_errors(services, card, 2)
    reading = assert_never_revealed(services, cli, card, caplog, errors)
    assert reading.notification_kinds.count("account_changed") == 1  # the phone's, told to the patron


@pytest.mark.parametrize("via", ["service", "cli"])
def test_making_an_address_secret_wipes_the_stored_one(
        register_ready: Services, cli: Cli, caplog: pytest.LogCaptureFixture, via: str) -> None:
    services = register_ready
    card = register(services, 3, address=SECRET, secret=False)
    join_libraries(services, card)
    # Until the flag is set the address is ordinary data: its INSERT and the row read to change
    # it are logged like any other. From the flag on, nothing may show it.
    if via == "service":
        with services.registry(STAFF) as reg:
            changed = patrons.update_patron(reg, patrons.patron_by_card(reg, card), address_secret=True)
        assert sorted(changed) == ["address_secret", "city", "postal_code", "street"]
    else:
        result = cli("patron", "update", card, "--secret-address")
        assert result.stdout.strip() == "changed: address_secret, street, postal_code, city"
    caplog.clear()

    errors = service_errors(services, card, 3) + cli_errors(cli, card, 3)
    assert_never_revealed(services, cli, card, caplog, errors)


def test_cli_registration_with_a_secret_address_keeps_only_the_flag(
        register_ready: Services, cli: Cli, caplog: pytest.LogCaptureFixture) -> None:
    services = register_ready
    added = cli("patron", "add", "--national-id", nin(4), "--name", "Patron Four", "--home-library", HOME,
                "--email", "p4@example.org", "--street", STREET, "--postal-code", POSTAL_CODE, "--city", CITY,
                "--secret-address")
    card = card_from(added)
    join_libraries(services, card)

    errors = [("idp patron add", added.output), *cli_errors(cli, card, 4), *service_errors(services, card, 4)]
    assert_never_revealed(services, cli, card, caplog, errors)


def test_cli_update_giving_a_secret_patron_an_address_keeps_none_of_it(
        register_ready: Services, cli: Cli, caplog: pytest.LogCaptureFixture) -> None:
    services = register_ready
    card = card_from(cli("patron", "add", "--national-id", nin(5), "--name", "Patron Five", "--home-library", HOME,
                         "--secret-address"))
    updated = cli("patron", "update", card, "--street", STREET, "--postal-code", POSTAL_CODE, "--city", CITY)
    assert updated.stdout.strip() == "changed: nothing"
    join_libraries(services, card)

    errors = [("idp patron update", updated.output), *cli_errors(cli, card, 5)]
    assert_never_revealed(services, cli, card, caplog, errors)


def test_the_database_refuses_a_secret_address_written_past_the_services(register_ready: Services) -> None:
    # The last line of defence if some future code path sets the columns directly.
    services = register_ready
    card = register(services, 6, address=None, secret=True)
    with pytest.raises(Exception, match="secret_address_not_stored"), services.registry(STAFF) as reg:
        patron = patrons.patron_by_card(reg, card)
        patron.street = STREET
        reg.session.flush()
    assert leaks(dump_database(services)) == []


def test_control_an_ordinary_address_is_found_by_the_same_searches(
        register_ready: Services, cli: Cli, caplog: pytest.LogCaptureFixture) -> None:
    """Every search above would have caught the address had it been there."""
    services = register_ready
    card = register(services, 7, address=SECRET, secret=False)
    join_libraries(services, card)
    reading = read_everything(services, cli, card)

    assert reading.full_address == {"street": STREET, "postal_code": POSTAL_CODE, "city": CITY}
    assert reading.stored == (STREET, POSTAL_CODE, CITY)
    for label in ("read_full_record json", f"library_view {ACTIVE} to_dict", "idp patron show",
                  "idp patron show --json", f"idp patron show --library {ACTIVE}", "database dump"):
        assert leaks(reading.text(label)) == list(FRAGMENTS), label
    # A library the patron has not activated sees no address, secret or not.
    assert leaks(reading.text(f"library_view {PENDING} json")) == []
    assert set(leaks(log_text(caplog))) == set(FRAGMENTS), "the log search should see SQL parameters"
    with pytest.raises(AssertionError, match="secret address revealed"):
        assert_hidden(reading.sources)
