"""Upstream identities: federations (universities, municipalities) and the accounts linked to patrons.

A federation's member logs in with their home account; the first login links that account to a
patron (by a matching national identity number, or by a one-time code proving the patron holds
the card), later logins find the patron through the link. The fields a federation *owns* (its
attribute map, e.g. ``name`` from ``displayName``) are refreshed from it at each login and are
read-only here, for the patron and for staff alike: ``patrons.update_patron`` refuses them.

The account's identifier (an eduPersonPrincipalName is an e-mail-like name) is stored only as a
keyed hash, like the national id's lookup hash. No Flask and no SAML here: the protocol lives in
``idp.auth.federation``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Executable, Row, select

from idp.assurance import LEVELS
from idp.errors import Conflict, NotAllowed, NotFound, ValidationError
from idp.registry import changes
from idp.registry.context import Registry
from idp.registry.models import Federation, Patron, UpstreamIdentity
from idp.registry.patrons import clean_email, clean_name, clean_phone

# Fields a federation may own. The address is never one: a secret address must not flow in.
OWNABLE_FIELDS = ("name", "email", "phone")
# Attributes that identify a member for good (pysaml2's friendly names for them).
LINK_ATTRIBUTES = ("eduPersonPrincipalName", "eduPersonUniqueId", "schacPersonalUniqueCode", "norEduPersonNIN",
                   "subject-id", "pairwise-id", "uid")
NATIONAL_ID_ATTRIBUTES = ("norEduPersonNIN", "schacPersonalUniqueCode")
# A university login is a password login unless its AuthnContext says more; only ID-porten gives more than mfa.
FEDERATION_LEVELS = ("password", "mfa")
LINK_METHODS = ("national_id", "one_time_code", "operator")
_NAME = re.compile(r"[a-z][a-z0-9-]{1,31}")
_ATTRIBUTE = re.compile(r"[A-Za-z][A-Za-z0-9_.:-]{0,63}")


def clean_federation_name(name: str) -> str:
    name = (name or "").strip().lower()
    if not _NAME.fullmatch(name):
        raise ValidationError("A federation's name is 2 to 32 lower-case letters, digits or hyphens, starting with "
                              "a letter (e.g. unimore).")
    return name


def _clean_attribute(attribute: str, what: str) -> str:
    if not isinstance(attribute, str) or not _ATTRIBUTE.fullmatch(attribute):
        raise ValidationError(f"{what} must be a SAML attribute's name, e.g. eduPersonPrincipalName.")
    return attribute


def clean_attribute_map(mapping: Mapping[str, str] | None) -> dict[str, str]:
    cleaned: dict[str, str] = {}
    for field, attribute in (mapping or {}).items():
        if field not in OWNABLE_FIELDS:
            raise ValidationError(f"A federation can own only these fields: {', '.join(OWNABLE_FIELDS)}.")
        cleaned[field] = _clean_attribute(attribute, f"The attribute for {field}")
    return cleaned


def clean_authn_contexts(mapping: Mapping[str, str] | None) -> dict[str, str]:
    cleaned: dict[str, str] = {}
    for classref, level in (mapping or {}).items():
        if not isinstance(classref, str) or not 1 <= len(classref) <= 512 or not classref.isprintable():
            raise ValidationError("An AuthnContextClassRef is a URI of at most 512 characters.")
        if level not in FEDERATION_LEVELS:
            raise ValidationError(f"A federation login reaches at most these levels: {', '.join(FEDERATION_LEVELS)} "
                                  "(only ID-porten gives more).")
        cleaned[classref] = level
    return cleaned


@dataclass(frozen=True)
class FederationSpec:
    """What the operator gives to add a federation (``idp federation add``)."""

    name: str
    display_name: str
    entity_id: str
    metadata_xml: str
    link_attribute: str
    national_id_attribute: str | None = None
    attribute_map: Mapping[str, str] | None = None
    authn_contexts: Mapping[str, str] | None = None
    metadata_cert: str | None = None  # PEM; checked against the metadata by the caller (idp.auth.federation)


def add_federation(reg: Registry, spec: FederationSpec) -> Federation:
    name = clean_federation_name(spec.name)
    display_name = " ".join((spec.display_name or "").split())
    if not 1 <= len(display_name) <= 100 or not display_name.isprintable():
        raise ValidationError("A federation's display name has 1 to 100 printable characters (e.g. UniMoRe).")
    if spec.link_attribute not in LINK_ATTRIBUTES:
        raise ValidationError("The link attribute must identify a member for good: one of "
                              f"{', '.join(LINK_ATTRIBUTES)}.")
    if spec.national_id_attribute is not None and spec.national_id_attribute not in NATIONAL_ID_ATTRIBUTES:
        raise ValidationError(f"The national-id attribute is one of {', '.join(NATIONAL_ID_ATTRIBUTES)}.")
    if not spec.entity_id or len(spec.entity_id) > 1024:
        raise ValidationError("The federation's metadata names no usable entityID.")
    if reg.session.scalar(select(Federation.id).where(Federation.name == name)) is not None:
        raise Conflict(f"A federation named {name} is already configured.")
    now = reg.now()
    federation = Federation(name=name, display_name=display_name, entity_id=spec.entity_id,
                            metadata_xml=spec.metadata_xml, metadata_cert=spec.metadata_cert,
                            link_attribute=spec.link_attribute,
                            national_id_attribute=spec.national_id_attribute,
                            attribute_map=clean_attribute_map(spec.attribute_map),
                            authn_contexts=clean_authn_contexts(spec.authn_contexts), enabled=True,
                            created_at=now, updated_at=now)
    reg.session.add(federation)
    reg.session.flush()
    reg.audit("federation.add", federation=name, owned=sorted(federation.attribute_map),
              metadata_signed=federation.metadata_cert is not None)
    return federation


def get_federation(reg: Registry, name: str) -> Federation:
    federation = reg.session.scalar(select(Federation).where(Federation.name == (name or "").strip().lower()))
    if federation is None:
        raise NotFound(f"No federation named {(name or '').strip()[:32]} is configured.")
    return federation


def federation_for_entity(reg: Registry, entity_id: str) -> Federation | None:
    """The federation whose identity provider has ``entity_id`` (a message's Issuer), if one is configured."""
    return reg.session.scalars(select(Federation).where(Federation.entity_id == entity_id)
                               .order_by(Federation.id)).first()


def list_federations(reg: Registry, *, enabled_only: bool = False) -> list[Federation]:
    query = select(Federation).order_by(Federation.display_name, Federation.name)
    if enabled_only:
        query = query.where(Federation.enabled.is_(True))
    return list(reg.session.scalars(query))


def update_federation(reg: Registry, name: str, *, metadata_xml: str | None = None, entity_id: str | None = None,
                      enabled: bool | None = None, attribute_map: Mapping[str, str] | None = None,
                      authn_contexts: Mapping[str, str] | None = None,
                      metadata_cert: str | None = None) -> Federation:
    federation = get_federation(reg, name)
    changed: list[str] = []
    if metadata_cert is not None:
        federation.metadata_cert = metadata_cert
        changed.append("metadata_cert")
    if metadata_xml is not None:
        if not entity_id or len(entity_id) > 1024:
            raise ValidationError("The federation's metadata names no usable entityID.")
        federation.metadata_xml, federation.entity_id = metadata_xml, entity_id
        changed.append("metadata")
    if enabled is not None and enabled != federation.enabled:
        federation.enabled = enabled
        changed.append("enabled")
    if attribute_map is not None:
        federation.attribute_map = clean_attribute_map(attribute_map)
        changed.append("attribute_map")
    if authn_contexts is not None:
        federation.authn_contexts = clean_authn_contexts(authn_contexts)
        changed.append("authn_contexts")
    if changed:
        federation.updated_at = reg.now()
        reg.session.flush()
        reg.audit("federation.update", federation=federation.name, fields=changed)
    return federation


def remove_federation(reg: Registry, name: str) -> int:
    """Remove a federation and its links (the patrons stay; their fields become theirs again)."""
    federation = get_federation(reg, name)
    links = len(list(reg.session.scalars(select(UpstreamIdentity.id)
                                         .where(UpstreamIdentity.federation_id == federation.id))))
    reg.session.delete(federation)
    reg.session.flush()
    reg.audit("federation.remove", federation=federation.name, links=links)
    return links


def level_for(federation: Federation, classrefs: list[str]) -> str:
    """The assurance level a login earns: the highest mapped AuthnContext, else ``password``."""
    return _highest_level(federation.authn_contexts, classrefs)


def _highest_level(authn_contexts: Mapping[str, str], classrefs: Iterable[str]) -> str:
    levels = [authn_contexts[c] for c in classrefs if authn_contexts.get(c) in FEDERATION_LEVELS]
    return max(levels, key=LEVELS.index) if levels else "password"


@dataclass(frozen=True)
class FederationChoice:
    name: str
    display_name: str
    top_level: str  # the highest level a login there can earn


_CHOICES = (select(Federation.name, Federation.display_name, Federation.authn_contexts)
            .where(Federation.enabled.is_(True)).order_by(Federation.display_name, Federation.name))


UNVERIFIED_WARNING = ("federation {name}: its metadata's signature is not verified (no certificate configured); "
                      "set one with: idp federation update {name} --metadata-cert FILE")


def unverified_federations(read: Callable[[Executable], Sequence[Row[*tuple[Any, ...]]]]) -> list[str]:
    """The federations whose metadata is trusted unverified: no certificate to check its signature."""
    return [name for (name,) in read(select(Federation.name).where(Federation.metadata_cert.is_(None))
                                     .order_by(Federation.name))]


def federation_choices(read: Callable[[Executable], Sequence[Row[*tuple[Any, ...]]]]) -> list[FederationChoice]:
    """The enabled federations as the login page offers them. Every login page asks, so this is
    one statement through ``read`` (Services.read: no transaction) and three columns, not the
    metadata."""
    return [FederationChoice(name, display, _highest_level(contexts, contexts))
            for name, display, contexts in read(_CHOICES)]


# -- links ----------------------------------------------------------------------------------------

def _subject_hash(reg: Registry, federation: Federation, subject: str) -> bytes:
    # Domain-separated from national ids (digits only), so no value of one can match the other.
    return reg.cipher.lookup_hash(f"upstream/{federation.id}/{subject}")


def find_link(reg: Registry, federation: Federation, subject: str) -> UpstreamIdentity | None:
    return reg.session.scalar(select(UpstreamIdentity).where(
        UpstreamIdentity.federation_id == federation.id,
        UpstreamIdentity.subject_hash == _subject_hash(reg, federation, subject)))


def link_of(reg: Registry, federation: Federation, patron: Patron) -> UpstreamIdentity | None:
    return reg.session.scalar(select(UpstreamIdentity).where(UpstreamIdentity.federation_id == federation.id,
                                                             UpstreamIdentity.patron_id == patron.id))


def link(reg: Registry, federation: Federation, subject: str, patron: Patron, *, how: str) -> UpstreamIdentity:
    """Link a federation account to a patron; each side may have at most one link per federation."""
    if how not in LINK_METHODS:
        raise ValidationError(f"A link is made by one of: {', '.join(LINK_METHODS)}.")
    if not subject or len(subject) > 1024:
        raise ValidationError("The federation sent no usable identifier for this account.")
    if patron.status != "active":
        raise NotAllowed("This library card is blocked; ask your library.")
    if find_link(reg, federation, subject) is not None:
        raise Conflict(f"This {federation.display_name} account is already linked to a library card.")
    if link_of(reg, federation, patron) is not None:
        raise Conflict(f"This library card is already linked to another {federation.display_name} account.")
    identity = UpstreamIdentity(federation_id=federation.id, subject_hash=_subject_hash(reg, federation, subject),
                                patron_id=patron.id, linked_by=how, linked_at=reg.now())
    reg.session.add(identity)
    reg.session.flush()
    reg.audit("upstream.link", patron_id=patron.id, federation=federation.name, how=how)
    return identity


def unlink(reg: Registry, federation: Federation, patron: Patron) -> None:
    identity = link_of(reg, federation, patron)
    if identity is None:
        raise NotFound(f"This patron has no {federation.display_name} account linked.")
    reg.session.delete(identity)
    reg.session.flush()
    reg.audit("upstream.unlink", patron_id=patron.id, federation=federation.name)


def refresh_owned_fields(reg: Registry, identity: UpstreamIdentity, values: Mapping[str, str | None]) -> list[str]:
    """Write the owned fields as the federation sent them at this login; returns the fields changed.

    A value the register would refuse (an unusable e-mail, say) keeps the old value and is
    recorded by field name only; a missing attribute leaves the field as it is.
    """
    cleaners = {"name": clean_name, "email": clean_email, "phone": clean_phone}
    patron = reg.session.get(Patron, identity.patron_id)
    assert patron is not None  # noqa: S101 - the link's patron_id is a foreign key (cascade)
    changed: list[str] = []
    refused: list[str] = []
    for field in identity.federation.attribute_map:
        value = values.get(field)
        if value is None or field not in cleaners:
            continue
        try:
            cleaned = cleaners[field](value)
        except ValidationError:
            refused.append(field)
            continue
        if cleaned is not None and getattr(patron, field) != cleaned:
            setattr(patron, field, cleaned)
            changed.append(field)
    identity.last_login_at = reg.now()
    reg.session.flush()
    if changed or refused:
        reg.audit("upstream.refresh", patron_id=patron.id, federation=identity.federation.name,
                  fields=sorted(changed), refused=sorted(refused))
    if changed:
        changes.record_for_members(reg, patron, "contact_changed")
    return changed


__all__ = ["FEDERATION_LEVELS", "FederationChoice", "FederationSpec", "LINK_ATTRIBUTES", "LINK_METHODS",
           "NATIONAL_ID_ATTRIBUTES", "OWNABLE_FIELDS", "add_federation", "clean_federation_name", "federation_choices",
           "find_link", "get_federation", "level_for", "link", "link_of", "list_federations",
           "refresh_owned_fields", "remove_federation", "unlink", "update_federation"]
