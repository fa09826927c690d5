"""Operator commands for the patron register: db, library, series, patron, card, purge-inactive,
notifications."""

from __future__ import annotations

import json
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import click

from idp import migrate, notifications
from idp.auth.patron_sessions import end_patron_sessions
from idp.cli.common import Context, fail, handle_errors, out, pass_ctx, read_secret
from idp.errors import IdpError
from idp.registry import cards as cards_svc
from idp.registry import consents, guardians, libraries, loan_bans, memberships, owned, patrons, purge
from idp.registry.agreements import DpaState, dpa_state
from idp.registry.cardnumbers import national_number
from idp.registry.records import LimitedRecord, PatronRecord
from idp.registry.retention import Retention


# -- db ---------------------------------------------------------------------------------------

@click.group()
def db() -> None:
    """The database schema."""


@db.command("upgrade")
@pass_ctx
@handle_errors
def db_upgrade(ctx: Context) -> None:
    """Create or migrate the database to the current schema; carry over what the state store still
    holds of the register's data (consents, before schema 0015)."""
    migrate.upgrade(ctx.services.engine)
    with ctx.registry() as reg:
        carried = consents.carry_over_state_consents(reg, ctx.services.state)
    # Only once the rows are committed: a failed carry-over leaves the old keys for the next run.
    for key in carried.keys:
        ctx.services.state.delete(key)
    out(schema=migrate.current_revision(ctx.services.engine))
    if carried.keys:
        out(consents_carried_over=carried.consents)


@db.command("current")
@pass_ctx
@handle_errors
def db_current(ctx: Context) -> None:
    """Show the schema revision of the database and the one this version expects."""
    out(schema=migrate.current_revision(ctx.services.engine) or "empty", expected=migrate.head_revision())


# -- library ----------------------------------------------------------------------------------

@click.group()
def library() -> None:
    """Libraries, identified by ISIL."""


def _card_rules(value: str | None) -> list[dict[str, Any]] | None:
    if value is None:
        return None
    try:
        text = Path(value[1:]).read_text() if value.startswith("@") else value
    except OSError as exc:
        raise IdpError(f"cannot read {value[1:]}: {exc.strerror}") from None
    try:
        rules: list[dict[str, Any]] | None = json.loads(text)
    except json.JSONDecodeError as exc:
        raise IdpError(f"--card-rules is not valid JSON: {exc.msg} at line {exc.lineno}") from None
    return rules


@library.command("add")
@click.argument("isil")
@click.argument("name")
@click.option("--card-rules", metavar="JSON|@FILE",
              help='Canonicalisation rules for local card numbers: [{"match": REGEX, "replace": TEMPLATE}, ...]')
@pass_ctx
@handle_errors
def library_add(ctx: Context, isil: str, name: str, card_rules: str | None) -> None:
    """Register a library."""
    with ctx.registry() as reg:
        lib = libraries.add_library(reg, isil, name, _card_rules(card_rules))
        out(isil=lib.isil, name=lib.name)


@library.command("list")
@pass_ctx
@handle_errors
def library_list(ctx: Context) -> None:
    """List libraries with their card-number series and where their data processing agreement stands."""
    with ctx.registry() as reg:
        for lib in libraries.list_libraries(reg):
            click.echo(f"{lib.isil}\t{lib.name}\t{libraries.describe_all_series(lib)}\t"
                       f"dpa: {describe_dpa(dpa_state(lib, reg.today()))}")


def describe_dpa(state: DpaState) -> str:
    """One phrase for operators: signed DATE / none / due DATE / overdue since DATE / refused since DATE."""
    if state.signed is not None:
        return f"signed {state.signed.isoformat()}"
    if state.deadline is None:
        return "none"
    if state.refused:
        return f"refused since {state.refused_from.isoformat() if state.refused_from else ''}"
    return f"{'overdue since' if state.overdue else 'due'} {state.deadline.isoformat()}"


# -- series -----------------------------------------------------------------------------------

@click.group()
def series() -> None:
    """National card-number series (reserve before printing cards)."""


def _series_start(value: str | None) -> int | None:
    if value is None:
        return None
    digits = value.upper().removeprefix("N")
    if not digits.isdigit() or len(digits) > 9:
        raise IdpError("--first is a national card number (N + up to 9 digits) or its digits")
    return int(digits)


@series.command("reserve")
@click.argument("isil")
@click.option("--count", type=int, required=True, help="How many numbers.")
@click.option("--first", help="Reserve exactly from this number (default: the next free range).")
@click.option("--digital", is_flag=True, help="For digital cards the register issues (default: printed cards).")
@pass_ctx
@handle_errors
def series_reserve(ctx: Context, isil: str, count: int, first: str | None, digital: bool) -> None:
    """Reserve a range of national card numbers for a library; prints the range."""
    with ctx.registry() as reg:
        s = libraries.reserve_series(reg, isil, count, first=_series_start(first),
                                     usage="digital" if digital else "printed")
        out(library=s.library.isil, first=national_number(s.first_number), last=national_number(s.last_number),
            count=s.last_number - s.first_number + 1, usage=s.usage)


@series.command("list")
@click.argument("isil")
@pass_ctx
@handle_errors
def series_list(ctx: Context, isil: str) -> None:
    """A library's series."""
    with ctx.registry() as reg:
        for s in libraries.get_library(reg, isil).series:
            used = s.next_number - s.first_number if s.usage == "digital" else "-"
            click.echo(f"{national_number(s.first_number)}\t{national_number(s.last_number)}\t{s.usage}\tissued={used}")


# -- patron -----------------------------------------------------------------------------------

@click.group()
def patron() -> None:
    """Patrons of the register."""


def _address(street: str | None, postal_code: str | None, city: str | None) -> patrons.Address | None:
    if not any((street, postal_code, city)):
        return None
    return patrons.Address(street or "", postal_code or "", city or "")


def print_record(record: PatronRecord | LimitedRecord, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(record.to_dict(), ensure_ascii=False, indent=2))
        return
    data = record.to_dict()
    for card in data.pop("cards"):
        click.echo(f"card: {card['number']} ({card['kind']}, {card['library']})")
    for membership in data.pop("libraries", []):
        state = "active" if membership["rules_accepted"] else "not activated"
        click.echo(f"library: {membership['library']} ({state})")
    address = data.pop("address", None)
    if "address_secret" in data:
        data["address"] = "(secret)" if data["address_secret"] else (
            ", ".join(v for v in address.values() if v) if address else "-")
        data.pop("address_secret")
    data.pop("full")
    for key, value in data.items():
        click.echo(f"{key}: {'-' if value is None else value}")


@patron.command("add")
@click.option("--national-id", metavar="NIN", help="Fødselsnummer or D-nummer (a DUF number only with --local-card).")
@click.option("--name", required=True)
@click.option("--email")
@click.option("--phone")
@click.option("--home-library", required=True, metavar="ISIL")
@click.option("--street")
@click.option("--postal-code")
@click.option("--city")
@click.option("--secret-address", is_flag=True, help="Secret address: it is not stored at all, only the flag.")
@click.option("--local-card", metavar="NUMBER", help="Create a local account of the home library with this card.")
@click.option("--birth-date", type=click.DateTime(["%Y-%m-%d"]), help="Only for people without an 11-digit id.")
@click.option("--must-change-password", is_flag=True, help="The patron must choose a new password at first login.")
@pass_ctx
@handle_errors
def patron_add(ctx: Context, national_id: str | None, name: str, email: str | None, phone: str | None,
               home_library: str, street: str | None, postal_code: str | None, city: str | None,
               secret_address: bool, local_card: str | None, birth_date: Any, must_change_password: bool) -> None:
    """Register a patron and issue their first card (a national digital card unless --local-card).

    The password, if any, is read from stdin when it is not a terminal, else prompted for.
    """
    password = read_secret("Password", optional=True)
    new = patrons.NewPatron(
        name=name, home_library=home_library, national_id=national_id, email=email, phone=phone,
        address=_address(street, postal_code, city), address_secret=secret_address,
        birth_date=birth_date.date() if birth_date else None, local_card=local_card, password=password,
        password_must_change=must_change_password)
    with ctx.registry() as reg:
        _, card = patrons.register_patron(reg, new)
        out(card_number=card.number, kind=card.kind, home_library=card.library.isil)


@patron.command("add-child")
@click.option("--guardian", "guardian_card", required=True, metavar="CARD", help="The guardian's card.")
@click.option("--national-id", required=True, metavar="NIN")
@click.option("--name", required=True)
@click.option("--home-library", required=True, metavar="ISIL")
@pass_ctx
@handle_errors
def patron_add_child(ctx: Context, guardian_card: str, national_id: str, name: str, home_library: str) -> None:
    """A guardian creates a card for a child under 15."""
    with ctx.registry() as reg:
        guardian = patrons.patron_by_card(reg, guardian_card)
        _, card = guardians.register_child(reg, guardian, patrons.NewPatron(
            name=name, national_id=national_id, home_library=home_library))
        out(card_number=card.number, kind=card.kind, home_library=card.library.isil)


def _set_secret(ctx: Context, card: str, kind: str, label: str, must_change: bool = False) -> None:
    value = read_secret(label, optional=False)
    assert value is not None  # noqa: S101 - optional=False never answers None
    with ctx.registry() as reg:
        found = cards_svc.require_card(reg, card)
        assert found.patron is not None  # noqa: S101 - require_card answers only cards with a patron
        patron_id = found.patron.id
        patrons.set_secret(reg, found.patron, kind, value, must_change=must_change)
        out(card_number=found.number, updated=kind)
    if kind == "password":
        _end_sessions(ctx, patron_id)


def _end_sessions(ctx: Context, patron_id: int) -> None:
    """A password set here ends the patron's sessions and the refresh tokens issued in them, as a change
    on the web does (with an embedded default's in-memory state there is nothing this process can reach)."""
    if not ctx.services.settings.redis_url:
        # Said, not left for the operator to assume: the running server's sessions are out of reach here.
        out(sessions_ended="no: without IDP_REDIS_URL the sessions live in the server's memory; "
                           "restart idp serve to end them")
        return
    end_patron_sessions(ctx.services.state, ctx.services.oidc.grants, patron_id)
    out(sessions_ended="yes")


@patron.command("set-pin")
@click.argument("card")
@pass_ctx
@handle_errors
def patron_set_pin(ctx: Context, card: str) -> None:
    """Set the PIN (4-6 digits; from stdin, or prompted)."""
    _set_secret(ctx, card, "pin", "PIN")


@patron.command("set-password")
@click.argument("card")
@click.option("--must-change", is_flag=True, help="The patron must choose a new one at the next login.")
@pass_ctx
@handle_errors
def patron_set_password(ctx: Context, card: str, must_change: bool) -> None:
    """Set the password (from stdin, or prompted)."""
    _set_secret(ctx, card, "password", "Password", must_change)


@patron.command("reset-password")
@click.argument("card")
@click.option("--print-temporary", is_flag=True,
              help="Print a temporary password (once) that the patron must change at first use, "
                   "instead of e-mailing a reset link.")
@pass_ctx
@handle_errors
def patron_reset_password(ctx: Context, card: str, print_temporary: bool) -> None:
    """A librarian's "reset password": e-mail the patron a single-use reset link (default), or
    print a temporary password to hand over in person. Both are audited."""
    from idp.auth import recovery_link  # noqa: PLC0415 - e-mail and SMS delivery only for this command

    with ctx.registry() as reg:
        found = patrons.patron_by_card(reg, card)
        patron_id, number = found.id, cards_svc.require_card(reg, card).number
        if print_temporary:
            temporary = recovery_link.temporary_password(reg, found)
        else:
            sent = recovery_link.send_reset_link(ctx.services, reg, found)
    # Printed only once the change is committed.
    if print_temporary:
        _end_sessions(ctx, patron_id)
        out(card_number=number, temporary_password=temporary, must_change="yes")
    else:
        out(card_number=number, reset_link_sent_to=sent.masked,
            valid_until=sent.expires_at.replace(microsecond=0).isoformat())


@patron.command("show")
@click.argument("card")
@click.option("--library", "isil", metavar="ISIL", help="Show what this library may see of the patron.")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
@handle_errors
def patron_show(ctx: Context, card: str, isil: str | None, as_json: bool) -> None:
    """Show a patron (audited). A secret address is never shown; it is not even stored."""
    with ctx.registry() as reg:
        p = patrons.patron_by_card(reg, card)
        record = memberships.library_view(reg, p, isil) if isil else patrons.read_full_record(
            reg, p, purpose="operator")
        print_record(record, as_json)
        if not as_json and isinstance(record, PatronRecord):
            # Fields a federation keeps up to date (a university's name for its student): read-only here.
            for field, owner in owned.owned_fields(reg, p).items():
                click.echo(f"read_only: {field} (kept up to date by {owner})")


@patron.command("update")
@click.argument("card")
@click.option("--name")
@click.option("--email")
@click.option("--phone")
@click.option("--street")
@click.option("--postal-code")
@click.option("--city")
@click.option("--secret-address/--no-secret-address", default=None)
@click.option("--status", type=click.Choice(["active", "blocked"]))
@pass_ctx
@handle_errors
def patron_update(ctx: Context, card: str, name: str | None, email: str | None, phone: str | None,
                  street: str | None, postal_code: str | None, city: str | None, secret_address: bool | None,
                  status: str | None) -> None:
    """Change a patron's data (only the options given). Loan bans are per library: patron loan-ban."""
    given: dict[str, Any] = {k: v for k, v in {"name": name, "email": email, "phone": phone}.items() if v is not None}
    if any((street, postal_code, city)):
        given["address"] = _address(street, postal_code, city)
    with ctx.registry() as reg:
        changed = patrons.update_patron(reg, patrons.patron_by_card(reg, card), address_secret=secret_address,
                                        status=status, **given)
        out(changed=", ".join(changed) or "nothing")


@patron.command("loan-ban")
@click.argument("card")
@click.argument("isil")
@click.option("--reason", help="The library's own note (never released to partners).")
@pass_ctx
@handle_errors
def patron_loan_ban(ctx: Context, card: str, isil: str, reason: str | None) -> None:
    """Bar a patron from borrowing at ISIL (a library they are a member of)."""
    with ctx.registry() as reg:
        p = patrons.patron_by_card(reg, card)
        loan_bans.set_loan_ban(reg, p, isil, reason=reason)
        out(library=libraries.canonical_isil(isil), loan_ban="yes")


@patron.command("clear-loan-ban")
@click.argument("card")
@click.argument("isil")
@pass_ctx
@handle_errors
def patron_clear_loan_ban(ctx: Context, card: str, isil: str) -> None:
    """Lift ISIL's loan ban; the patron stays banned while another library of theirs has one."""
    with ctx.registry() as reg:
        p = patrons.patron_by_card(reg, card)
        cleared = loan_bans.clear_loan_ban(reg, p, isil)
        out(library=libraries.canonical_isil(isil), cleared="yes" if cleared else "no (there was none)",
            still_banned="yes" if loan_bans.is_banned(p) else "no")


@patron.command("join")
@click.argument("card")
@click.argument("isil")
@click.option("--accept-rules", is_flag=True, help="The patron accepted the library's lending rules.")
@pass_ctx
@handle_errors
def patron_join(ctx: Context, card: str, isil: str, accept_rules: bool) -> None:
    """Add a patron to a library (they are notified); with --accept-rules also activate."""
    with ctx.registry() as reg:
        p = patrons.patron_by_card(reg, card)
        m = (memberships.accept_lending_rules if accept_rules else memberships.add_to_library)(reg, p, isil)
        out(library=m.library.isil, activated="yes" if m.rules_accepted_at else "no")


@patron.command("set-home")
@click.argument("card")
@click.argument("isil")
@pass_ctx
@handle_errors
def patron_set_home(ctx: Context, card: str, isil: str) -> None:
    """Make an activated library the patron's home library."""
    with ctx.registry() as reg:
        memberships.set_home_library(reg, patrons.patron_by_card(reg, card), isil)
        out(home_library=libraries.canonical_isil(isil))


@patron.command("delete")
@click.argument("card")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_ctx
@handle_errors
def patron_delete(ctx: Context, card: str, yes: bool) -> None:
    """Delete a patron's registration; lists the libraries where they remain a patron."""
    if not yes:
        if not sys.stdin.isatty():
            fail("refusing to delete without confirmation: pass --yes")
        click.confirm("Delete this registration from the national register?", abort=True)
    with ctx.registry() as reg:
        remaining = patrons.delete_patron(reg, patrons.patron_by_card(reg, card))
    out(deleted="yes", remains_patron_at=", ".join(remaining) or "-")
    if remaining:
        click.echo("note: loans, reservations and fees stay with those libraries; contact them to end them.")


# -- card -------------------------------------------------------------------------------------

@click.group()
def card() -> None:
    """Cards: issue, replace, merge."""


@card.command("issue")
@click.argument("holder", metavar="CARD")
@click.option("--kind", type=click.Choice(["printed", "digital"]), default="printed", show_default=True)
@click.option("--number", help="The number printed on the card (printed cards).")
@click.option("--library", "isil", metavar="ISIL", help="Issuing library (default: the patron's home library).")
@pass_ctx
@handle_errors
def card_issue(ctx: Context, holder: str, kind: str, number: str | None, isil: str | None) -> None:
    """Issue another card to the patron holding CARD. A printed card replaces a digital one."""
    with ctx.registry() as reg:
        p = patrons.patron_by_card(reg, holder)
        lib = libraries.get_library(reg, isil) if isil else p.home_library
        new = cards_svc.issue_card(reg, p, lib, kind=kind, number=number)
        out(card_number=new.number, kind=new.kind, library=lib.isil)


@card.command("merge")
@click.argument("local_card")
@click.argument("national_card")
@pass_ctx
@handle_errors
def card_merge(ctx: Context, local_card: str, national_card: str) -> None:
    """Merge a local card's account into the national account; the local number stops working."""
    with ctx.registry() as reg:
        target = cards_svc.merge_local_card(reg, local_card, national_card)
        out(merged_into=next(c.number for c in target.cards if c.status == "active"))


# -- purge ------------------------------------------------------------------------------------

@click.command("purge-inactive")
@click.option("--dry-run", is_flag=True, help="Show what would happen; change nothing.")
@pass_ctx
@handle_errors
def purge_inactive(ctx: Context, dry_run: bool) -> None:
    """Run daily: warn patrons idle for almost 3 years, delete those warned 30+ days ago, end outgrown
    guardianships, remind libraries without a data processing agreement, erase change-feed events older
    than 90 days, and release-log entries and audit events older than their retention
    (IDP_RELEASE_LOG_RETENTION_DAYS, IDP_AUDIT_RETENTION_DAYS)."""
    with ctx.registry() as reg:
        settings = ctx.services.settings
        report = purge.purge_inactive(reg, dry_run=dry_run, retention=Retention(
            release_log_days=settings.release_log_retention_days, audit_days=settings.audit_retention_days))
        if dry_run:
            reg.session.rollback()
    verb = "would " if dry_run else ""
    out(**{f"{verb}warn": len(report.warned), f"{verb}delete": len(report.deleted),
           f"{verb}end_guardianships": len(report.guardianships_ended),
           f"{verb}remind_libraries": len(report.dpa_reminded),
           f"{verb}erase_changes": report.changes_erased, f"{verb}erase_releases": report.releases_erased,
           f"{verb}erase_audit_events": report.audit_events_erased})
    for pid in report.deleted:
        click.echo(f"{verb}delete patron id {pid}")


# -- notifications ----------------------------------------------------------------------------

@click.group("notifications")
def notifications_group() -> None:
    """Notices owed to patrons (locked login, changed account, new library, inactivity) and libraries (DPA)."""


@notifications_group.command("deliver")
@click.option("--limit", type=click.IntRange(1, 100_000), default=500, show_default=True,
              help="Send at most this many in one run.")
@click.option("--every", type=click.FloatRange(min=1.0), metavar="SECONDS",
              help="Keep running, a run every SECONDS, until stopped (where no timer can run it).")
@pass_ctx
@handle_errors
def notifications_deliver(ctx: Context, limit: int, every: float | None) -> None:
    """Send the waiting notices by e-mail or SMS (from a timer every minute, or with --every).

    A single run exits 1 when a send failed (it is tried again by the next run) or a notice was
    given up; with --every each run that did something prints its counts, and a stop ends it."""
    ctx.services.require_current_schema()
    messenger = ctx.services.messenger

    def run() -> notifications.DeliveryReport:
        report = notifications.deliver_pending(lambda: ctx.registry(migrated=False), messenger, limit=limit)
        if report.waiting:
            missing = [setting for channel, setting in (("email", "IDP_SMTP_HOST"), ("sms", "IDP_SMS_URL"))
                       if not messenger.can_send(channel)]
            click.echo(f"waiting: {report.waiting} notices wait for a delivery channel: set "
                       f"{' or '.join(missing)}", err=True)
        return report

    if every is None:
        report = run()
        out(**_report_fields(report))
        if report.retry or report.failed:
            fail(f"{report.retry + report.failed} notices could not be sent (the log says why); "
                 f"{report.retry} will be tried again")
        return
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    while not stop.is_set():
        report = run()
        if report.sent or report.no_address or report.retry or report.failed or report.expired:
            click.echo(" ".join(f"{k}={v}" for k, v in _report_fields(report).items()))
        stop.wait(every)


def _report_fields(report: notifications.DeliveryReport) -> dict[str, int]:
    return {"sent_by_email": report.email, "sent_by_sms": report.sms, "no_address": report.no_address,
            "to_retry": report.retry, "given_up": report.failed, "expired": report.expired, "waiting": report.waiting}
