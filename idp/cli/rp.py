"""Operator commands for relying parties: ``idp rp ...``.

Operators' scripts parse this output, so command names and ``key: value`` lines are stable. A
client secret is printed exactly once, when it is created or rotated, and never again.
"""

from __future__ import annotations

import click

from idp import relying_parties as rps
from idp.assurance import LEVELS, WEB_MINIMUM
from idp.cli.common import Context, handle_errors, out, parse_claims, parse_date, pass_ctx, yes
from idp.cli.saml import show_saml
from idp.keys import ALGORITHMS, DEFAULT_ALG
from idp.registry.models import RelyingParty


def _secret_state(rp: RelyingParty) -> str:
    if rp.public:
        return "(public client)"
    rotated = rp.secret_rotated_at.date().isoformat() if rp.secret_rotated_at else "unknown"
    return f"(set, rotated {rotated})"


_BACKCHANNEL_HELP = ("Where logout tokens are POSTed when a patron logs out (OIDC Back-Channel Logout); "
                     "https (http only on loopback), no fragment.")
_FRONTCHANNEL_HELP = ("The page loaded in a hidden frame when a patron logs out (OIDC Front-Channel Logout); "
                      "https (http only on loopback), no fragment.")


def _or_dash(value: str | None) -> str:
    return value if value else "-"


@click.group("rp")
def rp() -> None:
    """Relying parties: the partners patrons log in to."""


@rp.command("add-oidc")
@click.argument("name")
@click.option("--redirect-uri", "redirect_uris", multiple=True, metavar="URI",
              help="Where patrons return after login; https (http only on loopback). Repeat for more.")
@click.option("--public", is_flag=True, help="A public client (SPA, native app): no secret, PKCE only.")
@click.option("--min-acr", default=WEB_MINIMUM, show_default=True, metavar="LEVEL",
              help=f"Minimum assurance level: {', '.join(LEVELS)}.")
@click.option("--pin-allowed", is_flag=True, help="A kiosk or open-library door: card + PIN may suffice.")
@click.option("--claims", metavar="A,B", help="Claims it may receive (default: valid_patron; age_over_NN allowed).")
@click.option("--public-sub", is_flag=True, help="Send a public sub instead of a pairwise pseudonym.")
@click.option("--dpa-signed", metavar="YYYY-MM-DD", help="When its data processing agreement was signed.")
@click.option("--id-token-alg", default=DEFAULT_ALG, show_default=True, metavar="ALG",
              help=f"How its id_tokens are signed: {', '.join(ALGORITHMS)} (ES256 if the client supports it).")
@click.option("--backchannel-logout-uri", metavar="URI", help=_BACKCHANNEL_HELP)
@click.option("--frontchannel-logout-uri", metavar="URI", help=_FRONTCHANNEL_HELP)
@pass_ctx
@handle_errors
def rp_add_oidc(ctx: Context, name: str, redirect_uris: tuple[str, ...], public: bool, min_acr: str,
                pin_allowed: bool, claims: str | None, public_sub: bool, dpa_signed: str | None,
                id_token_alg: str = DEFAULT_ALG, backchannel_logout_uri: str | None = None,
                frontchannel_logout_uri: str | None = None) -> None:
    """Register an OpenID Connect client; prints its client_id and, once, its client_secret."""
    signed = parse_date(dpa_signed, "--dpa-signed") if dpa_signed is not None else None
    with ctx.registry() as reg:
        added, secret = rps.add_oidc(reg, name, list(redirect_uris), public=public, min_acr=min_acr,
                                     claims=parse_claims(claims), dpa_signed=signed, pin_allowed=pin_allowed,
                                     public_sub=public_sub, id_token_alg=id_token_alg,
                                     backchannel_logout_uri=backchannel_logout_uri,
                                     frontchannel_logout_uri=frontchannel_logout_uri)
        state = rps.status(added, reg.today())
    out(client_id=added.client_id)
    if secret is not None:
        out(client_secret=secret)
    out(status=state)
    if added.dpa_signed is None:
        click.echo("note: it cannot log anyone in until its data processing agreement is recorded "
                   "(idp rp set-dpa CLIENT_ID YYYY-MM-DD).")


@rp.command("list")
@pass_ctx
@handle_errors
def rp_list(ctx: Context) -> None:
    """One line per relying party: client_id, name, status (active / disabled / no DPA)."""
    with ctx.registry() as reg:
        today = reg.today()
        for party in rps.list_all(reg):
            click.echo(f"{party.client_id}\t{party.name}\t{rps.status(party, today)}")


@rp.command("show")
@click.argument("client_id")
@pass_ctx
@handle_errors
def rp_show(ctx: Context, client_id: str) -> None:
    """Everything about a relying party except its secret."""
    with ctx.registry() as reg:
        party = rps.get(reg, client_id)
        out(client_id=party.client_id, name=party.name, protocol=party.protocol)
        if party.protocol == rps.PROTOCOL_SAML:
            show_saml(party)
        else:
            out(client_type="public" if party.public else "confidential", client_secret=_secret_state(party))
            for uri in party.redirect_uris:
                out(redirect_uri=uri)
            out(id_token_alg=party.id_token_alg, backchannel_logout_uri=_or_dash(party.backchannel_logout_uri),
                frontchannel_logout_uri=_or_dash(party.frontchannel_logout_uri))
        out(min_acr=party.min_acr, pin_allowed=yes(party.pin_allowed), claims=", ".join(party.claims) or "-",
            subject_type=party.subject_type,
            dpa_signed=party.dpa_signed.isoformat() if party.dpa_signed else "-",
            disabled=yes(party.disabled), status=rps.status(party, reg.today()),
            created_at=party.created_at.isoformat(timespec="seconds"))


def _toggle(ctx: Context, client_id: str, disabled: bool) -> None:
    with ctx.registry() as reg:
        party = (rps.disable if disabled else rps.enable)(reg, client_id)
        out(client_id=party.client_id, status=rps.status(party, reg.today()))


@rp.command("disable")
@click.argument("client_id")
@pass_ctx
@handle_errors
def rp_disable(ctx: Context, client_id: str) -> None:
    """Stop a relying party from logging anyone in (its secret stops working too)."""
    _toggle(ctx, client_id, True)


@rp.command("enable")
@click.argument("client_id")
@pass_ctx
@handle_errors
def rp_enable(ctx: Context, client_id: str) -> None:
    """Undo disable."""
    _toggle(ctx, client_id, False)


@rp.command("rotate-secret")
@click.argument("client_id")
@pass_ctx
@handle_errors
def rp_rotate_secret(ctx: Context, client_id: str) -> None:
    """Give a confidential client a new secret, printed once; the old one stops working."""
    with ctx.registry() as reg:
        party, secret = rps.rotate_secret(reg, client_id)
    out(client_id=party.client_id, client_secret=secret)


@rp.command("set-dpa")
@click.argument("client_id")
@click.argument("signed", metavar="YYYY-MM-DD")
@pass_ctx
@handle_errors
def rp_set_dpa(ctx: Context, client_id: str, signed: str) -> None:
    """Record when the relying party's data processing agreement was signed."""
    day = parse_date(signed, "the agreement date")
    with ctx.registry() as reg:
        party = rps.set_dpa(reg, client_id, day)
        out(client_id=party.client_id, dpa_signed=party.dpa_signed.isoformat() if party.dpa_signed else "-",
            status=rps.status(party, reg.today()))


@rp.command("update")
@click.argument("client_id")
@click.option("--backchannel-logout-uri", metavar="URI", help=_BACKCHANNEL_HELP + ' "" removes it.')
@click.option("--frontchannel-logout-uri", metavar="URI", help=_FRONTCHANNEL_HELP + ' "" removes it.')
@pass_ctx
@handle_errors
def rp_update(ctx: Context, client_id: str, backchannel_logout_uri: str | None,
              frontchannel_logout_uri: str | None) -> None:
    """Change an OpenID Connect client's logout URIs (an empty value removes one); prints them."""
    if backchannel_logout_uri is None and frontchannel_logout_uri is None:
        raise click.UsageError("nothing to change: give --backchannel-logout-uri URI and/or "
                               "--frontchannel-logout-uri URI (an empty value \"\" removes one)")
    with ctx.registry() as reg:
        party = rps.update_oidc_logout(
            reg, client_id,
            backchannel_logout_uri=rps.UNSET if backchannel_logout_uri is None else backchannel_logout_uri,
            frontchannel_logout_uri=rps.UNSET if frontchannel_logout_uri is None else frontchannel_logout_uri)
        out(client_id=party.client_id, backchannel_logout_uri=_or_dash(party.backchannel_logout_uri),
            frontchannel_logout_uri=_or_dash(party.frontchannel_logout_uri))
