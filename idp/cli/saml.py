"""Operator commands for SAML: ``idp saml ...`` (our metadata, our signing key) and the SAML
service provider commands of ``idp rp`` (add-saml, load-saml-metadata)."""

from __future__ import annotations

from pathlib import Path

import click

from idp import relying_parties as rps
from idp.assurance import LEVELS, WEB_MINIMUM
from idp.cli.common import Context, handle_errors, out, parse_claims, parse_date, pass_ctx, yes
from idp.errors import IdpError
from idp.registry.models import RelyingParty
from idp.saml import registry as sp_registry
from idp.saml import create_signing_key
from idp.saml.fetch import read_source
from idp.saml.metadata import MetadataError, describe_service_provider
from idp.saml.registry import OWN_METADATA_SUFFIX
from idp.settings import load_settings

OWN_METADATA_FILE = f"patron-idp{OWN_METADATA_SUFFIX}"


@click.group("saml")
def saml() -> None:
    """SAML: our metadata and signing key (service providers: idp rp add-saml)."""


@saml.command("metadata")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Directory to write it to (default: metadata/ in IDP_HOME).")
@pass_ctx
@handle_errors
def saml_metadata(ctx: Context, out_dir: Path | None) -> None:
    """Write our SAML metadata (entity id, signing certificate, endpoints) for SPs and federations."""
    settings = ctx.services.settings
    directory = out_dir if out_dir is not None else settings.home / "metadata"
    target = directory / OWN_METADATA_FILE
    try:
        directory.mkdir(parents=True, exist_ok=True)
        target.write_text(ctx.services.saml.metadata() + "\n", encoding="utf-8")
    except OSError as exc:
        raise MetadataError(f"cannot write {target}: {exc.strerror}") from None
    out(entity_id=ctx.services.saml.endpoints.entity_id, written=target)


@saml.command("new-key")
@click.option("--replace", is_flag=True, help="Replace an existing key (SPs must then get the new metadata).")
@handle_errors
def saml_new_key(replace: bool) -> None:
    """Create the SAML signing key and its self-signed certificate in the keys directory."""
    settings = load_settings()
    out(written=create_signing_key(settings.keys_dir, settings.issuer, replace=replace).path)


# -- service providers (idp rp ...) -------------------------------------------------------------

@click.command("add-saml")
@click.option("--metadata", "source", required=True, metavar="FILE-or-URL",
              help="The SP's metadata: a file, or an https URL (http only on loopback).")
@click.option("--claims", metavar="A,B", help="Claims it may receive (default: valid_patron; age_over_NN allowed).")
@click.option("--dpa-signed", metavar="YYYY-MM-DD", help="When its data processing agreement was signed.")
@click.option("--min-acr", default=WEB_MINIMUM, show_default=True, metavar="LEVEL",
              help=f"Minimum assurance level: {', '.join(LEVELS)}.")
@click.option("--allow-unsolicited", is_flag=True, help="Accept logins started at the IdP (unsolicited responses).")
@click.option("--public-sub", is_flag=True, help="Also send eduPersonPrincipalName (the public subject).")
@click.option("--name", help="Display name (default: from its metadata, else its entity id).")
@pass_ctx
@handle_errors
def rp_add_saml(ctx: Context, source: str, claims: str | None, dpa_signed: str | None, min_acr: str,
                allow_unsolicited: bool, public_sub: bool, name: str | None) -> None:
    """Register the SAML service provider(s) in a metadata file or URL; prints client_id and entity_id."""
    signed = parse_date(dpa_signed, "--dpa-signed") if dpa_signed is not None else None
    document = read_source(source)
    with ctx.registry() as reg:
        added = sp_registry.add(reg, document, name=name, claims=parse_claims(claims), dpa_signed=signed,
                                min_acr=min_acr, allow_unsolicited=allow_unsolicited, public_sub=public_sub)
        states = [rps.status(party, reg.today()) for party in added]
    for party, state in zip(added, states, strict=True):
        out(client_id=party.client_id, entity_id=party.entity_id, status=state)
    if any(party.dpa_signed is None for party in added):
        click.echo("note: it cannot log anyone in until its data processing agreement is recorded "
                   "(idp rp set-dpa CLIENT_ID YYYY-MM-DD).")


@click.command("load-saml-metadata")
@click.argument("directory", required=False, type=click.Path(file_okay=False, path_type=Path))
@pass_ctx
@handle_errors
def rp_load_saml_metadata(ctx: Context, directory: Path | None) -> None:
    """Load every SP metadata file in DIRECTORY (default: metadata/ in IDP_HOME), aggregates too.

    Known SPs get their metadata refreshed (policy unchanged); new ones are registered with the
    default policy and no DPA, so they log nobody in until `idp rp set-dpa`. Our own generated
    metadata (*.generated.xml) is skipped. A bad file is one `error:` line; the others still load.
    """
    folder = directory if directory is not None else ctx.services.settings.home / "metadata"
    failed = False
    for path in sp_registry.metadata_files(folder):
        try:
            document = read_source(str(path))
            with ctx.registry() as reg:
                outcomes = sp_registry.load(reg, document)
        except IdpError as exc:
            click.echo(f"error: {path.name}: {exc.message}", err=True)
            failed = True
            continue
        for outcome in outcomes:
            out(client_id=outcome.rp.client_id, entity_id=outcome.rp.entity_id, result=outcome.result)
    if failed:
        raise click.exceptions.Exit(1)


def show_saml(party: RelyingParty) -> None:
    """`idp rp show` for a SAML service provider."""
    out(entity_id=party.entity_id)
    try:
        described = describe_service_provider(party.saml_metadata or "")
    except MetadataError as exc:
        out(metadata=f"unusable ({exc.message})")
    else:
        for endpoint in described.assertion_consumers:
            out(acs=f"{endpoint.location} ({endpoint.binding.rsplit(':', 1)[-1]})")
        out(authn_requests_signed=yes(described.authn_requests_signed),
            metadata_valid_until=described.valid_until.isoformat() if described.valid_until else "-")
    out(name_id_formats=", ".join(f.rsplit(":", 1)[-1] for f in party.name_id_formats or []) or "-",
        allow_unsolicited=yes(party.allow_unsolicited),
        metadata_updated_at=party.metadata_updated_at.isoformat(timespec="seconds")
        if party.metadata_updated_at else "-")
