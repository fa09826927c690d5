"""Operator commands for library systems (``idp library-system ...``) and the libraries' agreements
(``idp library update``, ``idp library set-dpa``, ``idp library set-dpa-deadline``, ``idp library show``).

Operators' scripts parse this output, so command names and ``key: value`` lines are stable. A
client secret is printed exactly once, when it is created or rotated, and never again.
"""

from __future__ import annotations

from pathlib import Path

import click

from idp.cli.common import Context, handle_errors, out, parse_date, pass_ctx, yes
from idp.cli.register import describe_dpa
from idp.registry.context import Registry
from idp.errors import ValidationError
from idp.registry import agreements, library_systems
from idp.registry.libraries import describe_all_series, get_library
from idp.registry.models import Library, LibrarySystem

_URL_SCHEMES = ("https://", "http://")
_HIDDEN = "(set; shown only when created or rotated)"
_DEFAULT_LIMIT = "default"
_RATE_LIMIT_HELP = ("Its limit on register API calls, e.g. '6000 per minute' or '6000 per minute;200000 per day' "
                    "(default: IDP_API_LIMIT_PER_SYSTEM).")


def _read_text(path: str, what: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise ValidationError(f"cannot read the {what} file {path}: {reason}") from None


def _state(system: LibrarySystem) -> str:
    return "disabled" if system.disabled else "active"


def _limit(system: LibrarySystem) -> str:
    return system.rate_limit or _DEFAULT_LIMIT


@click.group("library-system")
def library_system() -> None:
    """Library systems: each library's own system, an OAuth client of the register."""


@library_system.command("add")
@click.argument("isil")
@click.option("--name", required=True, help="What the system is (e.g. 'Bibliofil at Oslo public library').")
@click.option("--jwks", metavar="FILE|URL",
              help="Its public keys for private_key_jwt: a JWKS file, or an https URL to fetch it from. "
                   "Without it the system gets a client secret (client_secret_basic).")
@click.option("--allow-ip", "allow_ips", multiple=True, metavar="CIDR",
              help="Accept calls only from this network (repeat for more; default: from anywhere).")
@click.option("--rate-limit", metavar="LIMIT", help=_RATE_LIMIT_HELP)
@pass_ctx
@handle_errors
def add(ctx: Context, isil: str, name: str, jwks: str | None, allow_ips: tuple[str, ...],
        rate_limit: str | None) -> None:
    """Register a library's system; prints its client_id and, without --jwks, once, its client_secret."""
    inline = uri = None
    if jwks is not None and jwks.lower().startswith(_URL_SCHEMES):
        uri = jwks
    elif jwks is not None:
        inline = _read_text(jwks, "JWKS")
    with ctx.registry() as reg:
        system, secret = library_systems.add(reg, isil, name, jwks=inline, jwks_uri=uri, allowed_ips=allow_ips,
                                             rate_limit=rate_limit)
        library = system.library.isil
    out(client_id=system.client_id)
    if secret is not None:
        out(client_secret=secret)
    out(library=library, auth_method=library_systems.auth_method(system), rate_limit=_limit(system),
        status=_state(system))


@library_system.command("update")
@click.argument("client_id")
@click.option("--rate-limit", metavar="LIMIT|default", help=_RATE_LIMIT_HELP + " 'default' returns to it.")
@pass_ctx
@handle_errors
def update(ctx: Context, client_id: str, rate_limit: str | None) -> None:
    """Change a library system's settings; prints what it now holds."""
    if rate_limit is None:
        raise ValidationError("Give --rate-limit.")
    with ctx.registry() as reg:
        system = library_systems.set_rate_limit(reg, client_id,
                                                None if rate_limit == _DEFAULT_LIMIT else rate_limit)
        out(client_id=system.client_id, rate_limit=_limit(system))


@library_system.command("list")
@pass_ctx
@handle_errors
def list_systems(ctx: Context) -> None:
    """One line per library system: client_id, library, name, status (active / disabled)."""
    with ctx.registry() as reg:
        for system in library_systems.list_all(reg):
            click.echo(f"{system.client_id}\t{system.library.isil}\t{system.name}\t{_state(system)}")


@library_system.command("show")
@click.argument("client_id")
@pass_ctx
@handle_errors
def show(ctx: Context, client_id: str) -> None:
    """Everything about one library system except its secret, which is never shown again."""
    with ctx.registry() as reg:
        system = library_systems.get(reg, client_id)
        out(client_id=system.client_id, library=system.library.isil, name=system.name,
            auth_method=library_systems.auth_method(system))
        if system.jwks_uri is not None:
            out(jwks_uri=system.jwks_uri)
        elif system.jwks is not None:
            out(jwks="(inline)")
        else:
            out(client_secret=_HIDDEN)
        out(allowed_ips=", ".join(system.allowed_ips) or "any", rate_limit=_limit(system), status=_state(system),
            created=system.created_at.isoformat(timespec="seconds"),
            updated=system.updated_at.isoformat(timespec="seconds"))


@library_system.command("disable")
@click.argument("client_id")
@pass_ctx
@handle_errors
def disable(ctx: Context, client_id: str) -> None:
    """Stop a library system authenticating (its tokens stop working)."""
    with ctx.registry() as reg:
        system = library_systems.disable(reg, client_id)
        out(client_id=system.client_id, status=_state(system))


@library_system.command("enable")
@click.argument("client_id")
@pass_ctx
@handle_errors
def enable(ctx: Context, client_id: str) -> None:
    """Let a disabled library system authenticate again."""
    with ctx.registry() as reg:
        system = library_systems.enable(reg, client_id)
        out(client_id=system.client_id, status=_state(system))


@library_system.command("rotate-secret")
@click.argument("client_id")
@pass_ctx
@handle_errors
def rotate_secret(ctx: Context, client_id: str) -> None:
    """A new client secret, printed once; the old one stops working at once."""
    with ctx.registry() as reg:
        system, secret = library_systems.rotate_secret(reg, client_id)
    out(client_id=system.client_id, client_secret=secret)


# -- the libraries' agreements (commands of `idp library`) ------------------------------------

def _compliance(value: str | None) -> bool | None:
    if value is None:
        return None
    if value not in ("yes", "no"):
        raise ValidationError("--compliant is yes or no.")
    return value == "yes"


@click.command("update")
@click.argument("isil")
@click.option("--contact", metavar="EMAIL", help="Where notices to the library go.")
@click.option("--rules", metavar="FILE", help="Its lending rules (a new text becomes a new version).")
@click.option("--compliant", metavar="yes|no", help="Whether it complies with the national terms.")
@pass_ctx
@handle_errors
def library_update(ctx: Context, isil: str, contact: str | None, rules: str | None, compliant: str | None) -> None:
    """Change a library's contact address, lending rules or compliance; prints what it now holds."""
    flag = _compliance(compliant)
    text = _read_text(rules, "rules") if rules is not None else None
    if contact is None and text is None and flag is None:
        raise ValidationError("Give --contact, --rules or --compliant.")
    with ctx.registry() as reg:
        _show_agreement(reg, agreements.update(reg, isil, contact_email=contact, rules=text, compliant=flag))


def _show_agreement(reg: Registry, library: Library) -> None:
    current = agreements.current_rules(reg, library)
    out(isil=library.isil, contact=library.contact_email or "none",
        rules_version=current.version if current else "none", compliant=yes(library.compliant),
        dpa_signed=library.dpa_signed.isoformat() if library.dpa_signed else "none",
        dpa_deadline=library.dpa_deadline.isoformat() if library.dpa_deadline else "none",
        dpa=describe_dpa(agreements.dpa_state(library, reg.today())))


@click.command("show")
@click.argument("isil")
@pass_ctx
@handle_errors
def library_show(ctx: Context, isil: str) -> None:
    """One library: its name, series and agreement (contact, rules, compliance, DPA and its deadline)."""
    with ctx.registry() as reg:
        library = get_library(reg, isil)
        out(name=library.name, series=describe_all_series(library))
        _show_agreement(reg, library)


@click.command("set-dpa")
@click.argument("isil")
@click.argument("signed", metavar="DATE")
@pass_ctx
@handle_errors
def library_set_dpa(ctx: Context, isil: str, signed: str) -> None:
    """Record the date (YYYY-MM-DD) the library's data processing agreement was signed."""
    day = parse_date(signed, "DATE")
    with ctx.registry() as reg:
        library = agreements.set_dpa(reg, isil, day)
        out(isil=library.isil, dpa_signed=day.isoformat())


@click.command("set-dpa-deadline")
@click.argument("isil")
@click.argument("deadline", metavar="DATE")
@pass_ctx
@handle_errors
def library_set_dpa_deadline(ctx: Context, isil: str, deadline: str) -> None:
    """Set by when (YYYY-MM-DD, not past) the library must sign its data processing agreement.

    Without one by then it is reminded at its contact address on the day, 14 days later and (last
    notice) at 28 days, by the daily `idp purge-inactive`; from 42 days its system is refused."""
    day = parse_date(deadline, "DATE")
    with ctx.registry() as reg:
        library = agreements.set_dpa_deadline(reg, isil, day)
        state = agreements.dpa_state(library, reg.today())
        out(isil=library.isil, dpa_deadline=day.isoformat(), dpa=describe_dpa(state))
        if library.contact_email is None and library.dpa_signed is None:
            out(note=f"no contact address for reminders: idp library update {library.isil} --contact EMAIL")
