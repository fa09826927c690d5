"""Operator commands for upstream federations (universities, municipalities): ``idp federation ...``.

A federation is an identity provider whose members log in here with their home account; we are
its SAML service provider. The operator adds it with the metadata file the federation publishes,
says which attribute identifies a member for good (``--link-attribute``) and which patron fields
the federation owns (``--attribute name=displayName``: read-only here, refreshed at each login),
and gives the federation our metadata (``idp federation sp-metadata``).
"""

from __future__ import annotations

import sys
from pathlib import Path
from urllib.parse import urlsplit

import click

from idp.auth.federation import (FederationSp, ServiceProvider, check_metadata_signature, choose_entity_id,
                                 create_sp_keys, metadata_certificate, sp_key_paths)
from idp.cli.common import Context, fail, handle_errors, out, pass_ctx
from idp.errors import IdpError
from idp.registry import patrons, upstream
from idp.registry.models import Federation
from idp.xmlsec1 import xmlsec_program


def _read_metadata(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise IdpError(f"cannot read {path}: {getattr(exc, 'strerror', None) or type(exc).__name__}") from None


def _read_cert(path: Path | None) -> str | None:
    return metadata_certificate(_read_metadata(path)) if path is not None else None


def _check_signed(ctx: Context, xml: str, cert: str | None) -> None:
    """With a certificate: the metadata must be signed with its key (else nothing is stored)."""
    if cert is not None:
        check_metadata_signature(xml, cert, str(xmlsec_program(ctx.services.settings.xmlsec_binary)))


def _warn_unverified(fed: Federation) -> None:
    if fed.metadata_cert is None:
        click.echo(f"warning: {upstream.UNVERIFIED_WARNING.format(name=fed.name)}", err=True)


def _pairs(values: tuple[str, ...], what: str) -> dict[str, str] | None:
    if not values:
        return None
    pairs: dict[str, str] = {}
    for value in values:
        key, sep, item = value.partition("=")
        if not sep or not key or not item:
            raise IdpError(f"{what} is KEY=VALUE, e.g. {'name=displayName' if what == '--attribute' else 'URI=mfa'}")
        pairs[key.strip()] = item.strip()
    return pairs


def _describe(fed: Federation) -> None:
    out(name=fed.name, display_name=fed.display_name, entity_id=fed.entity_id, link_attribute=fed.link_attribute,
        national_id_attribute=fed.national_id_attribute or "-",
        owns=", ".join(f"{k}={v}" for k, v in sorted(fed.attribute_map.items())) or "-",
        authn_contexts=", ".join(f"{k}={v}" for k, v in sorted(fed.authn_contexts.items())) or "-",
        metadata_signature="verified with the configured certificate" if fed.metadata_cert else "not verified",
        enabled="yes" if fed.enabled else "no")


@click.group()
def federation() -> None:
    """University and municipal federations whose members log in with their home account."""


@federation.command("add")
@click.argument("name")
@click.option("--display-name", required=True, help='Shown on the login button: "Log in with <display name> account".')
@click.option("--metadata", "metadata_file", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The federation's SAML metadata (its identity provider).")
@click.option("--entity-id", help="The identity provider to use, when the metadata describes several.")
@click.option("--metadata-cert", "cert_file", type=click.Path(dir_okay=False, path_type=Path),
              help="The federation's metadata signing certificate (PEM): the metadata must verify with it.")
@click.option("--link-attribute", required=True, type=click.Choice(upstream.LINK_ATTRIBUTES),
              help="The attribute that identifies a member for good.")
@click.option("--national-id-attribute", type=click.Choice(upstream.NATIONAL_ID_ATTRIBUTES),
              help="An attribute with the Norwegian national identity number: links a first login by itself.")
@click.option("--attribute", "attributes", multiple=True, metavar="FIELD=ATTRIBUTE",
              help="A patron field the federation owns (name, email, phone), e.g. name=displayName. Repeatable.")
@click.option("--authn-context", "contexts", multiple=True, metavar="CLASSREF=LEVEL",
              help="An AuthnContextClassRef that earns more than 'password', e.g. https://refeds.org/profile/mfa=mfa.")
@pass_ctx
@handle_errors
def federation_add(ctx: Context, name: str, display_name: str, metadata_file: Path, entity_id: str | None,
                   link_attribute: str, national_id_attribute: str | None, attributes: tuple[str, ...],
                   contexts: tuple[str, ...], cert_file: Path | None) -> None:
    """Add a federation from its metadata file (signed: give --metadata-cert)."""
    xml = _read_metadata(metadata_file)
    cert = _read_cert(cert_file)
    _check_signed(ctx, xml, cert)
    chosen = choose_entity_id(xml, entity_id)
    with ctx.registry() as reg:
        fed = upstream.add_federation(reg, upstream.FederationSpec(
            name=name, display_name=display_name, entity_id=chosen, metadata_xml=xml, link_attribute=link_attribute,
            national_id_attribute=national_id_attribute, attribute_map=_pairs(attributes, "--attribute"),
            authn_contexts=_pairs(contexts, "--authn-context"), metadata_cert=cert))
        _describe(fed)


@federation.command("list")
@pass_ctx
@handle_errors
def federation_list(ctx: Context) -> None:
    """List the federations."""
    with ctx.registry() as reg:
        for fed in upstream.list_federations(reg):
            click.echo(f"{fed.name}\t{fed.display_name}\t{'enabled' if fed.enabled else 'disabled'}\t{fed.entity_id}")
            _warn_unverified(fed)


@federation.command("show")
@click.argument("name")
@pass_ctx
@handle_errors
def federation_show(ctx: Context, name: str) -> None:
    """Show one federation."""
    with ctx.registry() as reg:
        _describe(upstream.get_federation(reg, name))


@federation.command("update")
@click.argument("name")
@click.option("--metadata", "metadata_file", type=click.Path(dir_okay=False, path_type=Path),
              help="New metadata (e.g. after the federation rolled its key).")
@click.option("--entity-id", help="With --metadata: the identity provider to use.")
@click.option("--metadata-cert", "cert_file", type=click.Path(dir_okay=False, path_type=Path),
              help="A new metadata signing certificate (PEM): the metadata (new or stored) must verify with it.")
@click.option("--attribute", "attributes", multiple=True, metavar="FIELD=ATTRIBUTE",
              help="Replaces the owned fields (all of them): repeat for each.")
@click.option("--no-attributes", is_flag=True, help="The federation owns no field any more.")
@click.option("--authn-context", "contexts", multiple=True, metavar="CLASSREF=LEVEL", help="Replaces the mapping.")
@click.option("--enable/--disable", "enabled", default=None, help="Show or hide its login button.")
@pass_ctx
@handle_errors
def federation_update(ctx: Context, name: str, metadata_file: Path | None, entity_id: str | None,
                      attributes: tuple[str, ...], no_attributes: bool, contexts: tuple[str, ...],
                      enabled: bool | None, cert_file: Path | None) -> None:
    """Change a federation (only what is given). With a certificate (new or stored), the metadata
    (new or stored) must verify with it."""
    xml = _read_metadata(metadata_file) if metadata_file else None
    cert = _read_cert(cert_file)
    chosen = choose_entity_id(xml, entity_id) if xml else None
    with ctx.registry() as reg:
        current = upstream.get_federation(reg, name)
        _check_signed(ctx, xml or current.metadata_xml, cert or current.metadata_cert)
        fed = upstream.update_federation(reg, name, metadata_xml=xml, entity_id=chosen, enabled=enabled,
                                         attribute_map={} if no_attributes else _pairs(attributes, "--attribute"),
                                         authn_contexts=_pairs(contexts, "--authn-context"), metadata_cert=cert)
        _describe(fed)


@federation.command("remove")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_ctx
@handle_errors
def federation_remove(ctx: Context, name: str, yes: bool) -> None:
    """Remove a federation and its links (the patrons stay; their fields become theirs again)."""
    if not yes:
        if not sys.stdin.isatty():
            fail("refusing to remove without confirmation: pass --yes")
        click.confirm(f"Remove federation {name} and unlink its members?", abort=True)
    with ctx.registry() as reg:
        out(removed=upstream.clean_federation_name(name), links_removed=upstream.remove_federation(reg, name))


@federation.command("unlink")
@click.argument("card")
@click.argument("name")
@pass_ctx
@handle_errors
def federation_unlink(ctx: Context, card: str, name: str) -> None:
    """Unlink a patron's account of this federation (its next login links again)."""
    with ctx.registry() as reg:
        upstream.unlink(reg, upstream.get_federation(reg, name), patrons.patron_by_card(reg, card))
        out(unlinked=upstream.clean_federation_name(name))


@federation.command("sp-key")
@click.option("--replace", is_flag=True, help="Replace the existing key (give the federations the new metadata).")
@pass_ctx
@handle_errors
def federation_sp_key(ctx: Context, replace: bool) -> None:
    """Create our service provider's key and certificate (in the keys directory)."""
    settings = ctx.services.settings
    key, cert = create_sp_keys(settings.keys_dir, urlsplit(settings.issuer).hostname or "patron-idp", replace=replace)
    out(key=key, certificate=cert)


@federation.command("sp-metadata")
@pass_ctx
@handle_errors
def federation_sp_metadata(ctx: Context) -> None:
    """Print our service provider's metadata, to give to each federation."""
    settings = ctx.services.settings
    key, _cert = sp_key_paths(settings.keys_dir)
    if not key.is_file() and not settings.is_development:
        fail("no service-provider key yet: create it with `idp federation sp-key`")
    sp = FederationSp(ServiceProvider.for_settings(settings))
    click.echo(sp.metadata_xml())
