"""The operator's `idp` command, driven as an operator drives it.

Most tests invoke the click group in-process against the per-test register (embedded);
a few run the installed console script from another directory, with piped stdin, to check
what only a real process shows: the entry point, stdin handling, and stderr on failure.
What a command claims to have stored is checked in the database, not only in its output.
"""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Protocol

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import func, select

from idp.cli import main
from idp.registry import patrons
from idp.registry.models import AuditEvent, Base, Card, CardSeries, Credential, Library, Notification, Patron
from idp.services import Services
from idp.settings import Settings
from tests.nin import duf, person

OSLO = "NO-2030000"
BERGEN = "NO-4601000"
KARI = person(date(1985, 3, 12))
IDP_SCRIPT = Path(sys.executable).parent / "idp"
Series = dict[str, tuple[int, int]]  # usage ("printed", "digital") -> (first, last) as `idp` printed them
COMMANDS = ["card", "db", "demo", "federation", "keys", "library", "library-system", "notifications", "patron",
            "purge-inactive", "rp", "saml", "series", "serve"]


class Idp(Protocol):
    def __call__(self, *args: str, input: str | None = None,
                 env: Mapping[str, str | None] | None = None) -> Result: ...


# --- helpers -----------------------------------------------------------------------------------


def without_outer_idp_vars(env: Mapping[str, str | None]) -> dict[str, str | None]:
    """The given IDP_* variables and no others: a variable in the developer's shell must not leak in."""
    cleared: dict[str, str | None] = {k: None for k in os.environ if k.startswith("IDP_") and k not in env}
    return {**cleared, **env}


def fields(output: str) -> dict[str, str]:
    """The `key: value` lines of an output (the first value of a repeated key)."""
    found: dict[str, str] = {}
    for line in output.splitlines():
        key, sep, value = line.partition(": ")
        if sep and key.strip():
            found.setdefault(key.strip(), value)
    return found


def values(output: str, key: str) -> list[str]:
    return [line.partition(": ")[2] for line in output.splitlines() if line.startswith(f"{key}: ")]


def succeeded(result: Result) -> dict[str, str]:
    assert result.exit_code == 0, f"exit {result.exit_code}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    assert result.stderr == ""
    return fields(result.stdout)


def error_line(exit_code: int, stdout: str, stderr: str) -> str:
    """The one line an operator sees when a command fails; asserts there is exactly that."""
    assert exit_code == 1, f"exit {exit_code}\nstdout: {stdout}\nstderr: {stderr}"
    assert "Traceback" not in stdout + stderr
    lines = stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    return lines[0]


def failed(result: Result) -> str:
    return error_line(result.exit_code, result.stdout, result.stderr)


def number_range(reservation: dict[str, str]) -> tuple[int, int]:
    return int(reservation["first"].removeprefix("N")), int(reservation["last"].removeprefix("N"))


def national(n: int) -> str:
    return f"N{n:09d}"


def as_typed(card: str) -> str:
    """A national number the way a patron reads it off a card: lower case, spaced, hyphenated."""
    digits = card.removeprefix("N")
    return f"n {digits[:3]}-{digits[3:6]}-{digits[6:]}"


def count(services: Services, model: type[Base]) -> int:
    with services.registry("test") as reg:
        return reg.session.scalar(select(func.count()).select_from(model)) or 0


def verifies(services: Services, card: str, kind: str, secret: str) -> bool:
    with services.registry("test") as reg:
        return patrons.verify_secret(reg, patrons.patron_by_card(reg, card), kind, secret).ok


def stored_hash(services: Services, card: str, kind: str) -> str:
    with services.registry("test") as reg:
        credential = reg.session.get(Credential, (patrons.patron_by_card(reg, card).id, kind))
        assert credential is not None
        return credential.hash


# --- fixtures ----------------------------------------------------------------------------------


@pytest.fixture
def cli_env(settings: Settings, services: Services) -> dict[str, str]:
    """What an operator exports to point `idp` at this test's register (services: starts empty)."""
    env = {"IDP_MODE": "development", "IDP_HOME": str(settings.home), "IDP_DATABASE_URL": settings.database_url,
           "IDP_KEYS_DIR": str(settings.keys_dir), "IDP_ARGON2_TIME_COST": "1", "IDP_ARGON2_MEMORY_KIB": "1024"}
    if settings.redis_url:
        env["IDP_REDIS_URL"] = settings.redis_url
    return env


def make_idp(base_env: Mapping[str, str | None]) -> Idp:
    runner = CliRunner()

    def idp(*args: str, input: str | None = None, env: Mapping[str, str | None] | None = None) -> Result:
        return runner.invoke(main, list(args), input=input,
                             env=without_outer_idp_vars({**base_env, **(env or {})}), catch_exceptions=False)
    return idp


@pytest.fixture
def idp(cli_env: dict[str, str]) -> Idp:
    return make_idp(cli_env)


@pytest.fixture
def oslo(idp: Idp) -> Series:
    """Oslo with a printed and a digital series; returns the ranges as `idp` printed them."""
    succeeded(idp("library", "add", OSLO, "Oslo public library"))
    printed = succeeded(idp("series", "reserve", OSLO, "--count", "100"))
    digital = succeeded(idp("series", "reserve", OSLO, "--count", "100", "--digital"))
    return {"printed": number_range(printed), "digital": number_range(digital)}


@pytest.fixture
def bergen(idp: Idp) -> str:
    succeeded(idp("library", "add", BERGEN, "Bergen public library"))
    return BERGEN


def add_patron(idp: Idp, national_id: str = KARI, *extra: str, password: str | None = None,
               home: str = OSLO) -> str:
    result = idp("patron", "add", "--national-id", national_id, "--name", "Kari Nordmann",
                 "--email", "kari@example.org", "--phone", "+4799999999", "--home-library", home, *extra,
                 input=None if password is None else password + "\n")
    card = re.search(r"^card_number: (N\d{9})$", result.stdout, re.MULTILINE)
    assert result.exit_code == 0 and card, result.output
    return card.group(1)


# --- db ------------------------------------------------------------------------------------------


@pytest.fixture
def fresh_idp(tmp_path: Path) -> Idp:
    """`idp` pointed at a SQLite file that does not exist yet."""
    return make_idp({"IDP_MODE": "development", "IDP_HOME": str(tmp_path),
                     "IDP_DATABASE_URL": f"sqlite:///{tmp_path / 'fresh' / 'register.sqlite3'}",
                     "IDP_ARGON2_TIME_COST": "1", "IDP_ARGON2_MEMORY_KIB": "1024"})


def test_db_upgrade_creates_the_schema_that_db_current_expects(fresh_idp: Idp) -> None:
    before = succeeded(fresh_idp("db", "current"))
    assert before["schema"] == "empty" and before["expected"] not in ("", "empty")

    upgraded = succeeded(fresh_idp("db", "upgrade"))
    after = succeeded(fresh_idp("db", "current"))
    assert upgraded["schema"] == after["schema"] == after["expected"] == before["expected"]
    succeeded(fresh_idp("library", "add", OSLO, "Oslo public library"))


def test_a_command_on_an_unmigrated_database_says_to_run_db_upgrade(fresh_idp: Idp) -> None:
    line = failed(fresh_idp("library", "add", OSLO, "Oslo public library"))
    assert "idp db upgrade" in line
    succeeded(fresh_idp("db", "upgrade"))
    assert succeeded(fresh_idp("db", "current"))["schema"] != "empty"
    assert fresh_idp("library", "list").stdout == ""


# --- library -----------------------------------------------------------------------------------


def test_library_add_then_list(idp: Idp) -> None:
    assert succeeded(idp("library", "add", OSLO, "Oslo public library")) == {
        "isil": OSLO, "name": "Oslo public library"}
    assert idp("library", "list").stdout == f"{OSLO}\tOslo public library\tnone reserved\tdpa: none\n"


def test_a_duplicate_isil_is_refused_whatever_its_case(idp: Idp) -> None:
    succeeded(idp("library", "add", OSLO, "Oslo public library"))
    line = failed(idp("library", "add", OSLO.lower(), "Another Oslo"))
    assert OSLO in line
    assert idp("library", "list").stdout == f"{OSLO}\tOslo public library\tnone reserved\tdpa: none\n"


@pytest.mark.parametrize(("args", "says"), [
    pytest.param(["2030000", "No prefix"], "ISIL", id="isil-without-prefix"),
    pytest.param(["NO2030000", "No hyphen"], "ISIL", id="isil-without-hyphen"),
    pytest.param(["NO-20300001234567", "Too long"], "ISIL", id="isil-too-long"),
    pytest.param(["NO-20 30", "Space"], "ISIL", id="isil-with-space"),
    pytest.param([OSLO, "Bad JSON", "--card-rules", '[{"match": "^0+"'], "JSON", id="rules-not-json"),
    pytest.param([OSLO, "Bad regex", "--card-rules", '[{"match": "(", "replace": ""}]'], "regular expression",
                 id="rules-bad-regex"),
    pytest.param([OSLO, "Bad shape", "--card-rules", '[{"match": "^0+"}]'], "replace", id="rules-missing-key"),
])
def test_bad_library_input_is_refused_and_nothing_is_stored(idp: Idp, args: list[str], says: str) -> None:
    assert says in failed(idp("library", "add", *args))
    assert idp("library", "list").stdout == ""


# --- series ------------------------------------------------------------------------------------


def test_series_reserve_prints_the_range(idp: Idp) -> None:
    succeeded(idp("library", "add", OSLO, "Oslo public library"))
    shown = succeeded(idp("series", "reserve", OSLO, "--count", "250"))
    first, last = number_range(shown)
    assert shown["library"] == OSLO
    assert int(shown["count"]) == 250 == last - first + 1
    assert re.fullmatch(r"N\d{9}", shown["first"]) and re.fullmatch(r"N\d{9}", shown["last"])


def test_two_reservations_do_not_overlap(idp: Idp, bergen: str) -> None:
    succeeded(idp("library", "add", OSLO, "Oslo public library"))
    a = number_range(succeeded(idp("series", "reserve", OSLO, "--count", "100")))
    b = number_range(succeeded(idp("series", "reserve", BERGEN, "--count", "50", "--digital")))
    assert a[1] < b[0] or b[1] < a[0], (a, b)
    listed = idp("series", "list", BERGEN).stdout.split("\t")
    assert (listed[0], listed[1], listed[2]) == (national(b[0]), national(b[1]), "digital")


def test_an_explicit_first_number_overlapping_another_library_is_refused(
        idp: Idp, oslo: Series, bergen: str) -> None:
    _first, last = oslo["printed"]
    line = failed(idp("series", "reserve", BERGEN, "--count", "10", "--first", national(last - 5)))
    assert OSLO in line
    assert idp("series", "list", BERGEN).stdout == ""


def test_reserving_for_an_unknown_library_is_refused(idp: Idp, services: Services) -> None:
    assert "NO-9999999" in failed(idp("series", "reserve", "NO-9999999", "--count", "10"))
    assert count(services, CardSeries) == 0


@pytest.mark.parametrize("bad_count", ["0", "-5", "1000001"])
def test_a_count_outside_1_to_a_million_is_refused(idp: Idp, services: Services, bad_count: str) -> None:
    succeeded(idp("library", "add", OSLO, "Oslo public library"))
    failed(idp("series", "reserve", OSLO, f"--count={bad_count}"))
    assert count(services, CardSeries) == 0


# --- patron add ----------------------------------------------------------------------------------


def test_patron_add_issues_a_digital_card_from_the_digital_series(
        idp: Idp, oslo: Series) -> None:
    card = add_patron(idp)
    first, last = oslo["digital"]
    assert first <= int(card[1:]) <= last
    shown = succeeded(idp("patron", "show", card))
    assert shown["name"] == "Kari Nordmann" and shown["birth_date"] == "1985-03-12"
    assert values(idp("patron", "show", card).stdout, "card") == [f"{card} (digital, {OSLO})"]


def test_patron_add_without_a_digital_series_says_how_to_reserve_one_and_stores_nothing(
        idp: Idp, services: Services) -> None:
    succeeded(idp("library", "add", OSLO, "Oslo public library"))
    succeeded(idp("series", "reserve", OSLO, "--count", "100"))  # printed only
    line = failed(idp("patron", "add", "--national-id", KARI, "--name", "Kari Nordmann",
                      "--home-library", OSLO, input="a good password\n"))
    assert OSLO in line and f"idp series reserve {OSLO}" in line and "--digital" in line
    assert (count(services, Patron), count(services, Card), count(services, Credential)) == (0, 0, 0)


def _wrong_control_digit(nin: str) -> str:
    return nin[:10] + str((int(nin[10]) + 1) % 10)


@pytest.mark.parametrize("typed", [
    pytest.param(_wrong_control_digit(KARI), id="wrong-control-digit"),
    pytest.param(KARI[:10], id="ten-digits"),
    pytest.param(KARI + "12", id="thirteen-digits"),
    pytest.param(KARI[:4] + "AB" + KARI[6:], id="letters"),
])
def test_a_bad_national_id_is_refused_without_repeating_it(
        idp: Idp, services: Services, oslo: Series, typed: str) -> None:
    result = idp("patron", "add", "--national-id", typed, "--name", "Kari Nordmann", "--home-library", OSLO)
    line = failed(result)
    assert "identity number" in line
    assert typed not in result.output
    # Not even a fragment: the first digits of a fødselsnummer are the birth date.
    assert re.search(r"\d{4,}", result.output) is None
    assert count(services, Patron) == 0


def test_a_duf_number_gets_only_a_local_card(idp: Idp, services: Services, oslo: Series) -> None:
    duf_number = duf(2015, 123456)
    line = failed(idp("patron", "add", "--national-id", duf_number, "--name", "Amina", "--home-library", OSLO))
    assert "DUF" in line and "local card" in line and duf_number not in line
    assert count(services, Patron) == 0

    added = succeeded(idp("patron", "add", "--national-id", duf_number, "--name", "Amina", "--home-library", OSLO,
                          "--local-card", "L-0042", "--birth-date", "1990-05-17"))
    assert added["kind"] == "local"
    shown = succeeded(idp("patron", "show", added["card_number"]))
    assert (shown["id_kind"], shown["birth_date"], shown["account"]) == ("duf", "1990-05-17", OSLO)


def test_the_password_from_stdin_is_stored_as_an_argon2id_hash(
        idp: Idp, services: Services, oslo: Series) -> None:
    password = "correct horse battery staple"
    card = add_patron(idp, password=password)
    assert verifies(services, card, "password", password)
    assert not verifies(services, card, "password", password + "!")
    hashed = stored_hash(services, card, "password")
    assert hashed.startswith("$argon2id$") and password not in hashed


def test_patron_add_with_empty_stdin_stores_no_password(
        idp: Idp, services: Services, oslo: Series) -> None:
    add_patron(idp)
    assert count(services, Credential) == 0


def test_a_second_national_account_for_the_same_person_is_refused(
        idp: Idp, services: Services, oslo: Series) -> None:
    add_patron(idp)
    line = failed(idp("patron", "add", "--national-id", KARI, "--name", "Kari again", "--home-library", OSLO))
    assert "already" in line and KARI not in line
    assert count(services, Patron) == 1


# --- PIN ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("pin", ["2468", "24680", "246800"], ids=["4-digits", "5-digits", "6-digits"])
def test_set_pin_reads_the_pin_from_stdin(idp: Idp, services: Services, oslo: Series, pin: str) -> None:
    card = add_patron(idp)  # README: "PIN (4-6 digits)"
    shown = succeeded(idp("patron", "set-pin", card, input=pin + "\n"))
    assert shown["updated"] == "pin"
    assert verifies(services, card, "pin", pin)
    assert not verifies(services, card, "pin", "1357")
    assert stored_hash(services, card, "pin").startswith("$argon2id$")


def test_set_pin_names_the_card_in_its_canonical_form(idp: Idp, oslo: Series) -> None:
    # The operator typed the number as printed; the output names the card as the register knows it.
    card = add_patron(idp)
    assert succeeded(idp("patron", "set-pin", as_typed(card), input="2468\n"))["card_number"] == card


@pytest.mark.parametrize("bad_pin", ["123", "1234567", "12a4", ""])
def test_a_bad_pin_is_refused_and_the_old_one_still_works(
        idp: Idp, services: Services, oslo: Series, bad_pin: str) -> None:
    card = add_patron(idp)
    succeeded(idp("patron", "set-pin", card, input="2468\n"))
    result = idp("patron", "set-pin", card, input=bad_pin + "\n")
    failed(result)
    assert verifies(services, card, "pin", "2468")


# --- show, join ----------------------------------------------------------------------------------


@pytest.mark.parametrize("typing", [
    pytest.param(lambda c: c, id="as-stored"),
    pytest.param(as_typed, id="lower-spaces-hyphens"),
    pytest.param(lambda c: "N" + c[1:].lstrip("0"), id="without-leading-zeros"),
    pytest.param(lambda c: f"  {c.lower()}  ", id="padded"),
])
def test_patron_show_finds_the_card_however_it_is_typed(
        idp: Idp, oslo: Series, typing: Callable[[str], str]) -> None:
    card = add_patron(idp)
    shown = idp("patron", "show", typing(card))
    assert succeeded(shown)["name"] == "Kari Nordmann"
    assert values(shown.stdout, "card") == [f"{card} (digital, {OSLO})"]


def test_patron_show_of_an_unknown_card_fails(idp: Idp, oslo: Series) -> None:
    assert "No active card" in failed(idp("patron", "show", "N999999999"))


def test_another_library_sees_the_full_record_only_after_activation(
        idp: Idp, oslo: Series, bergen: str) -> None:
    card = add_patron(idp)
    minimum = {"card", "name"}

    before = succeeded(idp("patron", "show", card, "--library", BERGEN))
    assert set(before) == minimum and before["name"] == "Kari Nordmann"

    assert succeeded(idp("patron", "join", card, BERGEN)) == {"library": BERGEN, "activated": "no"}
    assert set(succeeded(idp("patron", "show", card, "--library", BERGEN))) == minimum

    assert succeeded(idp("patron", "join", card, BERGEN, "--accept-rules"))["activated"] == "yes"
    after = idp("patron", "show", card, "--library", BERGEN)
    full = succeeded(after)
    assert (full["email"], full["phone"], full["birth_date"]) == ("kari@example.org", "+4799999999", "1985-03-12")
    assert f"{BERGEN} (active)" in values(after.stdout, "library")


def test_a_loan_ban_names_its_library_and_counts_while_the_patron_is_a_member_there(
        idp: Idp, oslo: Series, bergen: str) -> None:
    # Issue 15: loan bans are per library; the patron is banned while any library of theirs has one.
    card = add_patron(idp)
    assert "not a patron of" in failed(idp("patron", "loan-ban", card, BERGEN))
    succeeded(idp("patron", "join", card, BERGEN, "--accept-rules"))
    assert succeeded(idp("patron", "loan-ban", card, BERGEN, "--reason", "lost books")) == {
        "library": BERGEN, "loan_ban": "yes"}
    succeeded(idp("patron", "loan-ban", card, OSLO))
    assert succeeded(idp("patron", "show", card))["loan_ban"] == "True"
    assert succeeded(idp("patron", "clear-loan-ban", card, OSLO)) == {
        "library": OSLO, "cleared": "yes", "still_banned": "yes"}
    assert succeeded(idp("patron", "clear-loan-ban", card, BERGEN))["still_banned"] == "no"
    assert succeeded(idp("patron", "show", card))["loan_ban"] == "False"
    assert "No such option '--loan-ban'" in idp("patron", "update", card, "--loan-ban").output  # no national flag


# --- cards ---------------------------------------------------------------------------------------


def test_a_printed_card_from_the_series_replaces_the_digital_one(
        idp: Idp, oslo: Series) -> None:
    digital = add_patron(idp)
    patron_id = succeeded(idp("patron", "show", digital))["id"]
    printed = national(oslo["printed"][0] + 7)

    issued = succeeded(idp("card", "issue", digital, "--kind", "printed", "--number", as_typed(printed)))
    assert (issued["card_number"], issued["kind"], issued["library"]) == (printed, "printed", OSLO)

    assert "No active card" in failed(idp("patron", "show", digital))
    shown = idp("patron", "show", printed)
    assert succeeded(shown)["id"] == patron_id
    assert values(shown.stdout, "card") == [f"{printed} (printed, {OSLO})"]


@pytest.mark.parametrize("where", ["another library's printed series", "own digital series", "no series"])
def test_a_printed_number_outside_the_librarys_printed_series_is_refused(
        idp: Idp, oslo: Series, bergen: str, where: str) -> None:
    digital = add_patron(idp)
    bergen_range = number_range(succeeded(idp("series", "reserve", BERGEN, "--count", "10")))
    number = {"another library's printed series": national(bergen_range[0]),
              "own digital series": national(oslo["digital"][1]),
              "no series": national(999_999_000)}[where]
    first, last = oslo["printed"]

    line = failed(idp("card", "issue", digital, "--kind", "printed", "--number", number))
    assert OSLO in line and f"{national(first)}-{national(last)}" in line
    assert values(idp("patron", "show", digital).stdout, "card") == [f"{digital} (digital, {OSLO})"]


def test_a_local_card_merged_into_the_national_account_stops_working(
        idp: Idp, services: Services, oslo: Series, bergen: str) -> None:
    national_card = add_patron(idp)
    local = succeeded(idp("patron", "add", "--name", "Kari Nordmann", "--home-library", BERGEN,
                          "--local-card", "B-0042", "--birth-date", "1985-03-12"))
    assert local["kind"] == "local"
    assert count(services, Patron) == 2

    merged = succeeded(idp("card", "merge", "b 0042", as_typed(national_card)))
    assert merged["merged_into"] == national_card

    assert "No active card" in failed(idp("patron", "show", local["card_number"]))
    shown = idp("patron", "show", national_card)
    assert f"{BERGEN} (active)" in values(shown.stdout, "library")
    assert count(services, Patron) == 1


# --- delete --------------------------------------------------------------------------------------


def test_patron_delete_names_the_libraries_the_person_remains_a_patron_of(
        idp: Idp, services: Services, oslo: Series, bergen: str) -> None:
    card = add_patron(idp)
    succeeded(idp("patron", "join", card, BERGEN))
    deleted = succeeded(idp("patron", "delete", card, "--yes"))
    assert deleted["deleted"] == "yes"
    assert set(deleted["remains_patron_at"].split(", ")) == {OSLO, BERGEN}
    assert "No active card" in failed(idp("patron", "show", card))
    assert count(services, Patron) == 0


def test_patron_delete_without_yes_and_no_terminal_to_ask_refuses(
        idp: Idp, services: Services, oslo: Series) -> None:
    # A script that forgot --yes must not delete a registration unasked.
    card = add_patron(idp)
    result = idp("patron", "delete", card)
    assert result.exit_code != 0, result.output
    assert "--yes" in result.stderr
    assert succeeded(idp("patron", "show", card))["name"] == "Kari Nordmann"


# --- purge ---------------------------------------------------------------------------------------


def purge_state(services: Services) -> list[tuple[object, ...]]:
    with services.registry("test") as reg:
        rows = reg.session.execute(select(Patron.id, Patron.last_activity_at, Patron.inactivity_warned_at)
                                   .order_by(Patron.id)).all()
        notices = reg.session.execute(select(Notification.patron_id, Notification.kind)
                                      .order_by(Notification.id)).all()
        return [tuple(r) for r in rows] + [tuple(n) for n in notices]


def test_purge_inactive_dry_run_changes_nothing_and_the_real_run_warns_and_deletes(
        idp: Idp, services: Services, oslo: Series) -> None:
    long_gone, idle, recent = (add_patron(idp, person(date(1970, 1, 5), n)) for n in range(3))
    now = datetime.now(UTC)
    with services.registry("test") as reg:
        ids = {card: patrons.patron_by_card(reg, card).id for card in (long_gone, idle, recent)}
        for card in (long_gone, idle):
            reg.session.get(Patron, ids[card]).last_activity_at = now - timedelta(days=4 * 365)
        reg.session.get(Patron, ids[long_gone]).inactivity_warned_at = now - timedelta(days=40)
    before = purge_state(services)

    dry = idp("purge-inactive", "--dry-run")
    assert succeeded(dry)["would warn"] == "1" and fields(dry.stdout)["would delete"] == "1"
    assert fields(dry.stdout)["would erase_changes"] == "0"  # change-feed events past 90 days: none yet
    assert f"would delete patron id {ids[long_gone]}" in dry.stdout.splitlines()
    assert purge_state(services) == before

    real = idp("purge-inactive")
    assert succeeded(real)["warn"] == "1" and fields(real.stdout)["delete"] == "1"
    assert "No active card" in failed(idp("patron", "show", long_gone))
    with services.registry("test") as reg:
        assert reg.session.get(Patron, ids[idle]).inactivity_warned_at is not None
        assert reg.session.get(Patron, ids[recent]).inactivity_warned_at is None
        notices = reg.session.execute(select(Notification.patron_id, Notification.kind)).all()
        assert (ids[idle], "inactivity_warning") in [tuple(n) for n in notices]


def test_purge_inactive_erases_releases_and_audit_events_past_the_retention_the_settings_give(
        idp: Idp, services: Services) -> None:
    now = datetime.now(UTC)
    with services.registry("test") as reg:
        for days in (400, 20):
            reg.session.add(AuditEvent(at=now - timedelta(days=days), actor="test", action="test.old", detail={}))
    retention = {"IDP_AUDIT_RETENTION_DAYS": "365", "IDP_RELEASE_LOG_RETENTION_DAYS": "31"}
    assert succeeded(idp("purge-inactive", "--dry-run"))["would erase_audit_events"] == "0"  # 5 years by default
    dry = succeeded(idp("purge-inactive", "--dry-run", env=retention))
    assert (dry["would erase_audit_events"], dry["would erase_releases"]) == ("1", "0")
    assert count(services, AuditEvent) == 2
    assert succeeded(idp("purge-inactive", env=retention))["erase_audit_events"] == "1"
    with services.registry("test") as reg:
        assert reg.session.scalar(select(func.min(AuditEvent.at))) >= now - timedelta(days=21)


# --- demo, keys --------------------------------------------------------------------------------

PRODUCTION = {"IDP_MODE": None, "IDP_ARGON2_TIME_COST": None, "IDP_ARGON2_MEMORY_KIB": None}


def test_demo_refuses_outside_development_mode(idp: Idp, services: Services) -> None:
    # A valid production configuration (the keys exist), so only the demo's own rule can refuse.
    line = failed(idp("demo", "--no-serve", env=PRODUCTION))
    assert "IDP_MODE=development" in line
    assert count(services, Library) == 0


def test_demo_on_an_unconfigured_checkout_says_to_use_development_mode(tmp_path: Path) -> None:
    # The newcomer's first command: no keys, no mode. The one line must say what to do.
    home = tmp_path / "checkout"
    bare = make_idp({"IDP_HOME": str(home)})
    line = failed(bare("demo", "--no-serve"))
    assert "IDP_MODE=development" in line
    assert not home.exists()


def test_demo_seeds_in_development_and_a_second_run_is_harmless(idp: Idp, services: Services) -> None:
    first = idp("demo", "--no-serve")
    succeeded(first)
    kari = re.search(r"^\s+(\S+)\s+Kari", first.stdout, re.MULTILINE)
    assert kari, first.stdout
    assert "Kari" in succeeded(idp("patron", "show", kari.group(1)))["name"]
    libraries_after_first = idp("library", "list").stdout
    patrons_after_first = count(services, Patron)
    assert libraries_after_first.count("\n") >= 2 and patrons_after_first >= 2

    succeeded(idp("demo", "--no-serve"))
    assert idp("library", "list").stdout == libraries_after_first
    assert count(services, Patron) == patrons_after_first


def test_keys_new_secret_prints_a_fresh_32_byte_key(idp: Idp) -> None:
    a, b = (idp("keys", "new-secret").stdout.strip() for _ in range(2))
    assert a != b
    for secret in (a, b):
        assert len(base64.urlsafe_b64decode(secret + "=" * (-len(secret) % 4))) == 32


# --- the installed console script ------------------------------------------------------------------


@pytest.fixture
def elsewhere(tmp_path: Path) -> Iterator[Path]:
    """A working directory that is neither home nor the checkout; it must stay empty."""
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    yield cwd
    assert list(cwd.iterdir()) == [], "a command wrote into the working directory"


@pytest.fixture
def script_env(cli_env: dict[str, str], settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IDP_")} | cli_env
    # On the embedded backend, let the script find its database from IDP_HOME alone: that is the
    # path resolution that must not depend on the working directory.
    if settings.database_url.startswith("sqlite"):
        del env["IDP_DATABASE_URL"]
    return env


def run_idp(*args: str, cwd: Path, env: Mapping[str, str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(IDP_SCRIPT), *args], cwd=cwd, env=dict(env), input=stdin, capture_output=True,
                          text=True, timeout=60)


def test_help_lists_the_commands(tmp_path: Path) -> None:
    done = subprocess.run([str(IDP_SCRIPT), "--help"], cwd=tmp_path, capture_output=True, text=True, timeout=60,
                          env={k: v for k, v in os.environ.items() if not k.startswith("IDP_")})
    assert done.returncode == 0, done.stderr
    listed = re.findall(r"^  (\S+)\s", done.stdout.split("Commands:", 1)[1], re.MULTILINE)
    assert sorted(listed) == COMMANDS


def test_the_script_works_from_any_directory_and_reads_the_password_from_a_pipe(
        script_env: dict[str, str], services: Services, elsewhere: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    for args in (["library", "add", OSLO, "Oslo public library"],
                 ["series", "reserve", OSLO, "--count", "10", "--digital"]):
        assert run_idp(*args, cwd=elsewhere, env=script_env).returncode == 0
    password = "piped in, never typed"
    added = run_idp("patron", "add", "--national-id", KARI, "--name", "Kari Nordmann", "--home-library", OSLO,
                    cwd=other, env=script_env, stdin=password + "\n")
    assert added.returncode == 0, added.stderr
    card = fields(added.stdout)["card_number"]
    assert password not in added.stdout + added.stderr

    shown = run_idp("patron", "show", card, cwd=elsewhere, env=script_env)
    assert fields(shown.stdout)["name"] == "Kari Nordmann"
    assert verifies(services, card, "password", password)
    assert list(other.iterdir()) == []


def test_a_password_is_never_accepted_as_an_argument(
        script_env: dict[str, str], services: Services, elsewhere: Path) -> None:
    done = run_idp("patron", "add", "--national-id", KARI, "--name", "Kari Nordmann", "--home-library", OSLO,
                   "--password", "in shell history", cwd=elsewhere, env=script_env)
    assert done.returncode == 2
    assert "No such option" in done.stderr and "--password" in done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert count(services, Patron) == 0


@pytest.mark.parametrize(("args", "env_change", "says"), [
    pytest.param(["library", "add", "not an isil", "X"], {}, "ISIL", id="bad-isil"),
    pytest.param(["patron", "show", "N000000001"], {}, "No active card", id="unknown-card"),
    pytest.param(["series", "reserve", "NO-9999999", "--count", "5"], {}, "NO-9999999", id="unknown-library"),
    pytest.param(["library", "list"], {"IDP_DATABASE_URL": "postgresql://127.0.0.1:1/nothing"}, "database",
                 id="database-down"),
    pytest.param(["library", "list"], {"IDP_DATABASE_URL": "sqlite:///{tmp}/unmigrated.sqlite3"}, "idp db upgrade",
                 id="unmigrated"),
    pytest.param(["library", "list"], {"IDP_DATABSE_URL": "postgresql://db/idp"}, "IDP_DATABSE_URL",
                 id="typo-in-variable"),
    pytest.param(["patron", "add", "--national-id", _wrong_control_digit(KARI), "--name", "K", "--home-library",
                  OSLO], {}, "control digits", id="bad-national-id"),
])
def test_errors_are_one_line_on_stderr_and_no_traceback(
        script_env: dict[str, str], services: Services, elsewhere: Path, tmp_path: Path,
        args: list[str], env_change: dict[str, str], says: str) -> None:
    env = script_env | {k: v.format(tmp=tmp_path) for k, v in env_change.items()}
    done = run_idp(*args, cwd=elsewhere, env=env)
    assert says in error_line(done.returncode, done.stdout, done.stderr)
    assert done.stdout == ""
