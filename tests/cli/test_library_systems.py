"""`idp library-system ...` and the agreement commands of `idp library`, driven as an operator drives them.

The rules (issue 15): `add` prints `client_id:` and, without --jwks, `client_secret:` exactly once;
no other command ever prints a secret except `rotate-secret`, which prints the new one once and is
refused for a JWKS client. A bad input of any kind is one `error:` line on stderr, exit 1, and
nothing written. What a command claims to have stored is checked in the register.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import pytest
from jwcrypto.jwk import JWK
from sqlalchemy import func, select

from idp.registry import library_systems
from idp.registry.dates import oslo_date, utcnow
from idp.registry.models import AuditEvent, LendingRules, Library, LibrarySystem, Notification
from idp.services import Services
from tests.cli.test_cli import (OSLO, Idp, failed, fields, make_idp, run_idp, succeeded, values)
from tests.cli.test_cli import cli_env, elsewhere, script_env  # noqa: F401  - fixtures

# The command runs on the real clock; two days ahead is the future in Oslo whatever the hour.
AFTER_TOMORROW = (date.today() + timedelta(days=2)).isoformat()
YESTERDAY_IN_OSLO = (oslo_date(utcnow()) - timedelta(days=1)).isoformat()
SYSTEM_COMMANDS = ["add", "disable", "enable", "list", "rotate-secret", "show", "update"]


@pytest.fixture
def idp(cli_env: dict[str, str]) -> Idp:
    return make_idp(cli_env)


@pytest.fixture
def oslo(idp: Idp) -> str:
    succeeded(idp("library", "add", OSLO, "Oslo public library"))
    return OSLO


@pytest.fixture
def jwks_file(tmp_path: Path) -> Path:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [JWK.generate(kty="EC", crv="P-256").export_public(as_dict=True)]}))
    return path


def snapshot(services: Services) -> tuple[object, ...]:
    """Everything these commands write: systems, rules versions, audit events, notices, Oslo's agreement fields."""
    with services.registry("test") as reg:
        counts = tuple(reg.session.scalar(select(func.count()).select_from(m)) for m in
                       (LibrarySystem, LendingRules, AuditEvent, Notification))
        lib = reg.session.scalar(select(Library).where(Library.isil == OSLO))
        return (*counts, (lib.contact_email, lib.compliant, lib.dpa_signed, lib.dpa_deadline,
                          lib.dpa_reminders_sent) if lib else None)


def matches(services: Services, client_id: str, secret: str) -> bool:
    with services.registry("test") as reg:
        return library_systems.secret_matches(library_systems.get(reg, client_id), secret)


# --- library systems ------------------------------------------------------------------------------


def test_the_group_offers_the_life_cycle_commands(idp: Idp) -> None:
    shown = idp("library-system", "--help").stdout
    assert sorted(line.split()[0] for line in shown.split("Commands:", 1)[1].splitlines() if line.strip()) \
        == SYSTEM_COMMANDS


def test_a_secret_system_is_added_and_its_secret_printed_once_and_never_again(
        idp: Idp, oslo: str, services: Services) -> None:
    added = idp("library-system", "add", OSLO, "--name", "Bibliofil", "--allow-ip", "192.0.2.0/24",
                "--allow-ip", "2001:db8::/32")
    shown = succeeded(added)
    client_id, secret = shown["client_id"], shown["client_secret"]
    assert len(values(added.stdout, "client_secret")) == 1
    assert (shown["library"], shown["auth_method"], shown["status"]) == (OSLO, "client_secret_basic", "active")
    assert matches(services, client_id, secret)

    details = succeeded(idp("library-system", "show", client_id))
    assert (details["library"], details["name"], details["allowed_ips"]) == (OSLO, "Bibliofil",
                                                                              "192.0.2.0/24, 2001:db8::/32")
    listed = idp("library-system", "list").stdout
    assert listed == f"{client_id}\t{OSLO}\tBibliofil\tactive\n"
    for output in (idp("library-system", "show", client_id).stdout, listed,
                   idp("library-system", "disable", client_id).stdout,
                   idp("library-system", "enable", client_id).stdout):
        assert secret not in output


def test_a_jwks_system_gets_no_secret_and_cannot_rotate_one(idp: Idp, oslo: str, jwks_file: Path,
                                                            services: Services) -> None:
    added = idp("library-system", "add", OSLO, "--name", "Koha", "--jwks", str(jwks_file))
    shown = succeeded(added)
    assert "client_secret" not in shown and shown["auth_method"] == "private_key_jwt"
    assert succeeded(idp("library-system", "show", shown["client_id"]))["jwks"] == "(inline)"
    before = snapshot(services)
    assert "JWKS" in failed(idp("library-system", "rotate-secret", shown["client_id"]))
    assert snapshot(services) == before

    by_url = succeeded(idp("library-system", "add", OSLO, "--name", "Quria", "--jwks", "https://quria.example/jwks"))
    assert "client_secret" not in by_url
    assert succeeded(idp("library-system", "show", by_url["client_id"]))["jwks_uri"] == "https://quria.example/jwks"


def test_rotate_secret_prints_a_new_secret_once_and_the_old_one_stops_matching(
        idp: Idp, oslo: str, services: Services) -> None:
    first = succeeded(idp("library-system", "add", OSLO, "--name", "Bibliofil"))
    rotated = idp("library-system", "rotate-secret", first["client_id"])
    new = succeeded(rotated)["client_secret"]
    assert len(values(rotated.stdout, "client_secret")) == 1 and new != first["client_secret"]
    assert matches(services, first["client_id"], new)
    assert not matches(services, first["client_id"], first["client_secret"])


def test_a_disabled_system_shows_as_disabled_and_its_secret_stops_matching(
        idp: Idp, oslo: str, services: Services) -> None:
    added = succeeded(idp("library-system", "add", OSLO, "--name", "Bibliofil"))
    client_id = added["client_id"]
    assert succeeded(idp("library-system", "disable", client_id))["status"] == "disabled"
    assert succeeded(idp("library-system", "show", client_id))["status"] == "disabled"
    assert idp("library-system", "list").stdout.endswith("\tdisabled\n")
    assert not matches(services, client_id, added["client_secret"])
    assert succeeded(idp("library-system", "enable", client_id))["status"] == "active"
    assert succeeded(idp("library-system", "show", client_id))["status"] == "active"
    assert matches(services, client_id, added["client_secret"])


@pytest.mark.parametrize(("args", "says"), [
    pytest.param(["NO-9999999", "--name", "Bibliofil"], "NO-9999999", id="unknown-isil"),
    pytest.param(["not an isil", "--name", "Bibliofil"], "ISIL", id="malformed-isil"),
    pytest.param([OSLO, "--name", ""], "name", id="empty-name"),
    pytest.param([OSLO, "--name", "Bibliofil", "--allow-ip", "10.0.0.0/33"], "CIDR", id="bad-cidr"),
    pytest.param([OSLO, "--name", "Bibliofil", "--allow-ip", "192.0.2.0/24", "--allow-ip", "10.1.2.3/8"],
                 "host bits", id="one-bad-cidr-of-two"),
    pytest.param([OSLO, "--name", "Koha", "--jwks", "http://koha.example/jwks"], "https", id="jwks-url-plain-http"),
    pytest.param([OSLO, "--name", "Koha", "--jwks", "/no/such/jwks.json"], "cannot read", id="jwks-file-missing"),
])
def test_bad_additions_are_one_error_line_and_write_nothing(idp: Idp, oslo: str, services: Services,
                                                            args: list[str], says: str) -> None:
    before = snapshot(services)
    assert says in failed(idp("library-system", "add", *args))
    assert snapshot(services) == before


@pytest.mark.parametrize("content", ['{"keys": [', '{"keys": []}', "not json at all"])
def test_a_bad_jwks_file_is_refused_and_writes_nothing(idp: Idp, oslo: str, services: Services, tmp_path: Path,
                                                       content: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    before = snapshot(services)
    assert "JWKS" in failed(idp("library-system", "add", OSLO, "--name", "Koha", "--jwks", str(path)))
    assert snapshot(services) == before


def _rate_limit(services: Services, client_id: str) -> str | None:
    with services.registry("test") as reg:
        return library_systems.get(reg, client_id).rate_limit


def test_a_system_gets_its_own_rate_limit_at_add_or_update_and_returns_to_the_default(
        idp: Idp, oslo: str, services: Services) -> None:
    plain = succeeded(idp("library-system", "add", OSLO, "--name", "Bibliofil"))
    assert plain["rate_limit"] == "default" and _rate_limit(services, plain["client_id"]) is None
    busy = succeeded(idp("library-system", "add", OSLO, "--name", "Quria", "--rate-limit", "6000 per minute"))
    assert busy["rate_limit"] == "6000 per minute" and _rate_limit(services, busy["client_id"]) == "6000 per minute"

    updated = succeeded(idp("library-system", "update", plain["client_id"], "--rate-limit",
                            "100 per minute;2000 per day"))
    assert updated == {"client_id": plain["client_id"], "rate_limit": "100 per minute;2000 per day"}
    assert _rate_limit(services, plain["client_id"]) == "100 per minute;2000 per day"
    assert succeeded(idp("library-system", "show", plain["client_id"]))["rate_limit"] == "100 per minute;2000 per day"
    assert succeeded(idp("library-system", "update", plain["client_id"], "--rate-limit", "default"))[
        "rate_limit"] == "default"
    assert _rate_limit(services, plain["client_id"]) is None
    with services.registry("test") as reg:
        changes = reg.session.scalars(select(AuditEvent).where(AuditEvent.action == "library_system.rate_limit")).all()
        assert [e.detail.get("rate_limit") for e in changes] == ["100 per minute;2000 per day", None]


@pytest.mark.parametrize("limit", ["fast", "0 per minute", "3000 per fortnight", "", "10 per minute;", "9" * 300])
def test_a_bad_rate_limit_is_one_error_line_and_writes_nothing(idp: Idp, oslo: str, services: Services,
                                                               limit: str) -> None:
    client_id = succeeded(idp("library-system", "add", OSLO, "--name", "Bibliofil", "--rate-limit", "50 per second"))[
        "client_id"]
    before = snapshot(services)
    assert "rate limit" in failed(idp("library-system", "update", client_id, "--rate-limit", limit))
    assert "rate limit" in failed(idp("library-system", "add", OSLO, "--name", "Quria", "--rate-limit", limit))
    assert snapshot(services) == before and _rate_limit(services, client_id) == "50 per second"


def test_update_without_a_change_is_refused(idp: Idp, oslo: str) -> None:
    client_id = succeeded(idp("library-system", "add", OSLO, "--name", "Bibliofil"))["client_id"]
    assert "--rate-limit" in failed(idp("library-system", "update", client_id))


@pytest.mark.parametrize("command", ["show", "disable", "enable", "rotate-secret"])
def test_an_unknown_client_id_is_one_error_line(idp: Idp, oslo: str, command: str) -> None:
    assert "client_id" in failed(idp("library-system", command, "NoSuchClient"))


# --- the libraries' agreements ------------------------------------------------------------------


def test_library_update_records_contact_rules_versions_and_compliance(idp: Idp, oslo: str, tmp_path: Path,
                                                                      services: Services) -> None:
    rules = tmp_path / "rules.txt"
    rules.write_text("Loans last 28 days.\n")
    shown = succeeded(idp("library", "update", OSLO, "--contact", "post@oslo.example", "--rules", str(rules),
                          "--compliant", "no"))
    assert (shown["contact"], shown["rules_version"], shown["compliant"], shown["dpa_signed"]) == (
        "post@oslo.example", "1", "no", "none")
    assert succeeded(idp("library", "update", OSLO, "--rules", str(rules)))["rules_version"] == "1"  # same text
    rules.write_text("Loans last 21 days.\n")
    again = succeeded(idp("library", "update", OSLO, "--rules", str(rules), "--compliant", "yes"))
    assert (again["rules_version"], again["compliant"], again["contact"]) == ("2", "yes", "post@oslo.example")
    with services.registry("test") as reg:
        texts = [r.text for r in reg.session.scalars(select(LendingRules).order_by(LendingRules.version))]
    assert texts == ["Loans last 28 days.", "Loans last 21 days."]


def test_set_dpa_records_a_past_date(idp: Idp, oslo: str, services: Services) -> None:
    assert succeeded(idp("library", "set-dpa", OSLO, "2026-11-23")) == {"isil": OSLO, "dpa_signed": "2026-11-23"}
    with services.registry("test") as reg:
        assert reg.session.scalar(select(Library.dpa_signed).where(Library.isil == OSLO)) == date(2026, 11, 23)


@pytest.mark.parametrize(("args", "says"), [
    pytest.param(["update", OSLO, "--contact", "not-an-address"], "e-mail", id="bad-email"),
    pytest.param(["update", OSLO, "--compliant", "maybe"], "yes or no", id="compliant-maybe"),
    pytest.param(["update", OSLO, "--contact", "post@oslo.example", "--compliant", "maybe"], "yes or no",
                 id="good-contact-compliant-maybe"),
    pytest.param(["update", OSLO, "--rules", "/no/such/rules.txt"], "cannot read", id="rules-file-missing"),
    pytest.param(["update", OSLO], "--contact", id="nothing-to-update"),
    pytest.param(["update", "NO-9999999", "--compliant", "no"], "NO-9999999", id="update-unknown-isil"),
    pytest.param(["set-dpa", OSLO, AFTER_TOMORROW], "future", id="dpa-in-two-days"),
    pytest.param(["set-dpa", OSLO, "2026-02-30"], "YYYY-MM-DD", id="dpa-no-such-day"),
    pytest.param(["set-dpa", OSLO, "23.11.2026"], "YYYY-MM-DD", id="dpa-malformed"),
    pytest.param(["set-dpa", "NO-9999999", "2026-11-01"], "NO-9999999", id="dpa-unknown-isil"),
    pytest.param(["set-dpa-deadline", OSLO, YESTERDAY_IN_OSLO], "past", id="deadline-yesterday"),
    pytest.param(["set-dpa-deadline", OSLO, "2027-02-30"], "YYYY-MM-DD", id="deadline-no-such-day"),
    pytest.param(["set-dpa-deadline", OSLO, "01.06.2027"], "YYYY-MM-DD", id="deadline-malformed"),
    pytest.param(["set-dpa-deadline", "NO-9999999", "2999-06-01"], "NO-9999999", id="deadline-unknown-isil"),
    pytest.param(["show", "NO-9999999"], "NO-9999999", id="show-unknown-isil"),
])
def test_bad_agreement_input_is_one_error_line_and_writes_nothing(idp: Idp, oslo: str, services: Services,
                                                                  args: list[str], says: str) -> None:
    before = snapshot(services)
    assert says in failed(idp("library", *args))
    assert snapshot(services) == before


def test_a_dpa_deadline_is_recorded_and_shown_with_the_agreement(idp: Idp, oslo: str, services: Services) -> None:
    """Issue 15: the national library records each library's DPA and a deadline; show and list say both."""
    assert succeeded(idp("library", "set-dpa-deadline", OSLO, "2999-06-01")) == {
        "isil": OSLO, "dpa_deadline": "2999-06-01", "dpa": "due 2999-06-01",
        "note": f"no contact address for reminders: idp library update {OSLO} --contact EMAIL"}
    with services.registry("test") as reg:
        assert reg.session.scalar(select(Library.dpa_deadline).where(Library.isil == OSLO)) == date(2999, 6, 1)
    shown = succeeded(idp("library", "show", OSLO))
    assert (shown["name"], shown["dpa_deadline"], shown["dpa_signed"], shown["dpa"]) == (
        "Oslo public library", "2999-06-01", "none", "due 2999-06-01")
    assert idp("library", "list").stdout.rstrip("\n").endswith("\tdpa: due 2999-06-01")
    succeeded(idp("library", "set-dpa", OSLO, "2026-11-23"))
    shown = succeeded(idp("library", "show", OSLO))
    assert (shown["dpa_deadline"], shown["dpa_signed"], shown["dpa"]) == ("2999-06-01", "2026-11-23",
                                                                         "signed 2026-11-23")
    assert idp("library", "list").stdout.rstrip("\n").endswith("\tdpa: signed 2026-11-23")


def test_the_daily_run_reminds_a_library_on_its_deadline_once(idp: Idp, oslo: str, services: Services) -> None:
    """The reminder runs with the daily purge-inactive; a second run the same day sends nothing again."""
    today = oslo_date(utcnow()).isoformat()
    succeeded(idp("library", "update", OSLO, "--contact", "post@oslo.example"))
    assert "note" not in succeeded(idp("library", "set-dpa-deadline", OSLO, today))
    assert succeeded(idp("purge-inactive", "--dry-run"))["would remind_libraries"] == "1"
    assert succeeded(idp("purge-inactive"))["remind_libraries"] == "1"
    assert succeeded(idp("purge-inactive"))["remind_libraries"] == "0"
    with services.registry("test") as reg:
        notices = reg.session.execute(select(Notification.library_id, Notification.kind)).all()
        oslo_id = reg.session.scalar(select(Library.id).where(Library.isil == OSLO))
    assert [tuple(n) for n in notices] == [(oslo_id, "dpa_reminder")]
    assert succeeded(idp("library", "show", OSLO))["dpa"] == f"overdue since {today}"


def test_an_empty_rules_file_is_refused(idp: Idp, oslo: str, services: Services, tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("\n")
    before = snapshot(services)
    assert "empty" in failed(idp("library", "update", OSLO, "--rules", str(empty)))
    assert snapshot(services) == before


# --- as a real process ----------------------------------------------------------------------------


def test_the_installed_script_adds_rotates_and_refuses_like_the_in_process_one(
        script_env: dict[str, str], services: Services, elsewhere: Path) -> None:
    assert run_idp("library", "add", OSLO, "Oslo public library", cwd=elsewhere, env=script_env).returncode == 0
    added = run_idp("library-system", "add", OSLO, "--name", "Bibliofil", cwd=elsewhere, env=script_env)
    assert added.returncode == 0 and added.stderr == "", added.stderr
    shown = fields(added.stdout)
    assert added.stdout.count(shown["client_secret"]) == 1
    rotated = run_idp("library-system", "rotate-secret", shown["client_id"], cwd=elsewhere, env=script_env)
    assert rotated.returncode == 0 and rotated.stdout.count("client_secret: ") == 1
    show = run_idp("library-system", "show", shown["client_id"], cwd=elsewhere, env=script_env)
    assert shown["client_secret"] not in show.stdout and fields(rotated.stdout)["client_secret"] not in show.stdout
    bad = run_idp("library-system", "add", OSLO, "--name", "Koha", "--allow-ip", "10.0.0.0/33",
                  cwd=elsewhere, env=script_env)
    assert bad.returncode == 1 and bad.stdout == "" and len(bad.stderr.splitlines()) == 1
    assert bad.stderr.startswith("error: ") and "Traceback" not in bad.stderr
    future = run_idp("library", "set-dpa", OSLO, "2999-01-01", cwd=elsewhere, env=script_env)
    assert future.returncode == 1 and future.stderr.startswith("error: ") and "future" in future.stderr
