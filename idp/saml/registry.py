"""Registering SAML service providers from their metadata (a file, a URL, a folder, an aggregate).

``add`` registers new SPs with the policy the operator gives. ``load`` keeps known SPs'
metadata current (their policy untouched) and registers unknown ones with the default policy
and no DPA, so they log nobody in until the operator records one (``idp rp set-dpa``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from idp import relying_parties
from idp.assurance import WEB_MINIMUM
from idp.errors import ValidationError
from idp.registry.context import Registry
from idp.registry.models import RelyingParty
from idp.saml.metadata import MetadataError, SpDescription, check_readable, describe_service_providers
from idp.saml.nameid import allowed_formats

OWN_METADATA_SUFFIX = ".generated.xml"  # our own metadata, written by `idp saml metadata`
ADDED, UPDATED, UNCHANGED = "added", "updated", "unchanged"


@dataclass(frozen=True)
class Outcome:
    rp: RelyingParty
    result: str  # ADDED, UPDATED or UNCHANGED


def service_providers(document: bytes, now: datetime) -> list[SpDescription]:
    """The usable SPs in a metadata document; MetadataError when there are none or one is unusable."""
    found = describe_service_providers(document)
    if not found:
        raise MetadataError("the metadata describes no SAML 2.0 service provider")
    for described in found:
        if described.expired(now):
            raise MetadataError(f"{described.entity_id}: the metadata has expired (validUntil is past)")
        check_readable(described)
    return found


def add(reg: Registry, document: bytes, *, name: str | None = None, claims: Sequence[str] | None = None,
        dpa_signed: date | None = None, min_acr: str = WEB_MINIMUM, allow_unsolicited: bool = False,
        public_sub: bool = False) -> list[RelyingParty]:
    """Register every SP in ``document`` with one policy (``name`` only for a single SP)."""
    found = service_providers(document, reg.now())
    if name is not None and len(found) > 1:
        raise ValidationError(f"The metadata describes {len(found)} service providers; --name fits only one.")
    return [relying_parties.add_saml(
        reg, entity_id=described.entity_id, name=name or described.display_name or described.entity_id,
        metadata_xml=described.xml, name_id_formats=allowed_formats(described.name_id_formats), claims=claims,
        dpa_signed=dpa_signed, min_acr=min_acr, allow_unsolicited=allow_unsolicited, public_sub=public_sub)
        for described in found]


def load(reg: Registry, document: bytes) -> list[Outcome]:
    """Refresh the metadata of known SPs and register unknown ones (default policy, no DPA)."""
    outcomes = []
    for described in service_providers(document, reg.now()):
        formats = allowed_formats(described.name_id_formats)
        known = relying_parties.find_saml(reg, described.entity_id)
        if known is None:
            added = relying_parties.add_saml(reg, entity_id=described.entity_id,
                                             name=described.display_name or described.entity_id,
                                             metadata_xml=described.xml, name_id_formats=formats)
            outcomes.append(Outcome(added, ADDED))
        else:
            changed = relying_parties.update_saml_metadata(reg, known, described.xml, formats)
            outcomes.append(Outcome(known, UPDATED if changed else UNCHANGED))
    return outcomes


def metadata_files(directory: Path) -> Iterator[Path]:
    """The SP metadata files in ``directory``: every *.xml but our own generated metadata."""
    if not directory.is_dir():
        raise MetadataError(f"{directory} is not a directory")
    for path in sorted(directory.iterdir()):
        if path.is_file() and path.suffix.lower() == ".xml" and not path.name.endswith(OWN_METADATA_SUFFIX):
            yield path
