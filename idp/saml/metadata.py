"""Service provider metadata: what an SP's EntityDescriptor tells us, read safely.

A document may hold one EntityDescriptor or an aggregate (EntitiesDescriptor, possibly nested)
of many; each SP in it is described on its own, with its own EntityDescriptor to store (an
aggregate's validUntil is carried over, so a stale aggregate's SPs stay stale). Entities that are
not SAML 2.0 service providers (IdPs, attribute authorities) are skipped.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from saml2.mdstore import InMemoryMetaData

from idp.errors import ValidationError
from idp.relying_parties import clean_redirect_uri
from idp.saml.attributes import ClaimConverter, claim_for
from idp.saml.errors import Rejected
from idp.saml.inbound import DSIG_NS, PROTOCOL_NS, parse_xml

MAX_METADATA = 16 * 1024 * 1024  # bytes; a municipal federation's aggregate is far smaller
MAX_ENTITY_ID = 1024
MD_NS = "urn:oasis:names:tc:SAML:2.0:metadata"
MDUI_NS = "urn:oasis:names:tc:SAML:metadata:ui"


class MetadataError(ValidationError):
    """Metadata we cannot use; the message names why (never a key or a person)."""

    code = "invalid_metadata"


@dataclass(frozen=True)
class Endpoint:
    binding: str
    location: str
    response_location: str | None = None
    index: int | None = None
    is_default: bool = False


@dataclass(frozen=True)
class SpDescription:
    entity_id: str
    display_name: str | None
    xml: str  # this SP's EntityDescriptor alone: what is stored and handed to pysaml2
    assertion_consumers: tuple[Endpoint, ...]
    logout_services: tuple[Endpoint, ...]
    signing_certificates: tuple[str, ...]  # base64 DER, from KeyDescriptors for signing (or unspecified use)
    authn_requests_signed: bool
    name_id_formats: tuple[str, ...]
    # The claims its RequestedAttributes name; None when it lists none (then its policy decides alone).
    requested_claims: tuple[str, ...] | None
    valid_until: datetime | None

    def __repr__(self) -> str:
        return f"<SpDescription {self.entity_id}>"

    def expired(self, now: datetime) -> bool:
        return self.valid_until is not None and self.valid_until <= now


def describe_service_providers(document: str | bytes) -> list[SpDescription]:
    """Every SAML 2.0 SP in an EntityDescriptor or aggregate; MetadataError if it is not metadata."""
    if len(document) > MAX_METADATA:
        raise MetadataError(f"metadata larger than {MAX_METADATA // (1024 * 1024)} MiB")
    try:
        root = parse_xml(document)
    except Rejected as exc:
        raise MetadataError(f"not readable metadata ({exc.message})") from None
    if root.tag == f"{{{MD_NS}}}EntityDescriptor":
        text = document.decode("utf-8", "replace") if isinstance(document, bytes) else document
        found = _describe(root, text, None)
        return [found] if found is not None else []
    if root.tag != f"{{{MD_NS}}}EntitiesDescriptor":
        raise MetadataError("not SAML metadata (expected an EntityDescriptor or EntitiesDescriptor)")
    return [found for entity, valid_until in _entities(root, None)
            if (found := _describe(entity, None, valid_until)) is not None]


def describe_service_provider(xml: str) -> SpDescription:
    """The one SP a stored EntityDescriptor describes."""
    found = describe_service_providers(xml)
    if len(found) != 1:
        raise MetadataError("the stored metadata does not describe exactly one SAML 2.0 service provider")
    return found[0]


def _entities(group: ET.Element, valid_until: str | None) -> Iterator[tuple[ET.Element, str | None]]:
    inherited = _earliest(valid_until, group.get("validUntil"))
    for child in group:
        if child.tag == f"{{{MD_NS}}}EntityDescriptor":
            yield child, inherited
        elif child.tag == f"{{{MD_NS}}}EntitiesDescriptor":
            yield from _entities(child, inherited)


def _earliest(first: str | None, second: str | None) -> str | None:
    dates = [d for d in (first, second) if d]
    return min(dates, key=_instant) if dates else None


def _instant(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise MetadataError(f"validUntil {value[:40]!r} is not a date and time") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _describe(entity: ET.Element, original: str | None, inherited_valid_until: str | None) -> SpDescription | None:
    entity_id = (entity.get("entityID") or "").strip()
    if not entity_id or len(entity_id) > MAX_ENTITY_ID or not entity_id.isprintable():
        raise MetadataError(f"an EntityDescriptor needs an entityID of 1 to {MAX_ENTITY_ID} printable characters")
    sp = next((d for d in entity.findall(f"{{{MD_NS}}}SPSSODescriptor")
               if PROTOCOL_NS in (d.get("protocolSupportEnumeration") or "").split()), None)
    if sp is None:
        return None
    valid_until = _earliest(inherited_valid_until, entity.get("validUntil"))
    if original is None:
        if valid_until and not entity.get("validUntil"):
            entity.set("validUntil", valid_until)
        # Prefixes are renamed (ns0...): ElementTree registers prefixes only process-wide, and that
        # would change how pysaml2 writes every message afterwards.
        original = ET.tostring(entity, encoding="unicode")
    consumers = tuple(_endpoints(sp, "AssertionConsumerService"))
    if not consumers:
        raise MetadataError(f"{entity_id} has no AssertionConsumerService")
    for endpoint in consumers:
        _check_url(entity_id, endpoint.location)
    return SpDescription(
        entity_id=entity_id, display_name=_display_name(entity, sp), xml=original,
        assertion_consumers=consumers, logout_services=tuple(_endpoints(sp, "SingleLogoutService")),
        signing_certificates=_certificates(sp),
        authn_requests_signed=(sp.get("AuthnRequestsSigned") or "").strip() in {"true", "1"},
        name_id_formats=tuple((f.text or "").strip() for f in sp.findall(f"{{{MD_NS}}}NameIDFormat")),
        requested_claims=_requested_claims(sp),
        valid_until=_instant(valid_until) if valid_until else None)


def _endpoints(sp: ET.Element, name: str) -> Iterator[Endpoint]:
    for element in sp.findall(f"{{{MD_NS}}}{name}"):
        binding, location = element.get("Binding"), element.get("Location")
        if not binding or not location:
            continue
        index = element.get("index")
        yield Endpoint(binding=binding, location=location.strip(), response_location=element.get("ResponseLocation"),
                       index=int(index) if index and index.isdigit() else None,
                       is_default=(element.get("isDefault") or "").strip() in {"true", "1"})


def _check_url(entity_id: str, url: str) -> None:
    try:
        clean_redirect_uri(url)
    except ValidationError as exc:
        raise MetadataError(f"{entity_id}: an AssertionConsumerService is not usable: {exc.message}") from None


def _certificates(sp: ET.Element) -> tuple[str, ...]:
    found = []
    for descriptor in sp.findall(f"{{{MD_NS}}}KeyDescriptor"):
        if descriptor.get("use") not in (None, "signing"):
            continue
        for certificate in descriptor.iter(f"{{{DSIG_NS}}}X509Certificate"):
            found.append("".join((certificate.text or "").split()))
    return tuple(c for c in found if c)


def _requested_claims(sp: ET.Element) -> tuple[str, ...] | None:
    requested = [(attribute.get("Name") or "").strip()
                 for service in sp.findall(f"{{{MD_NS}}}AttributeConsumingService")
                 for attribute in service.findall(f"{{{MD_NS}}}RequestedAttribute")]
    if not requested:
        return None
    return tuple(dict.fromkeys(claim for name in requested if (claim := claim_for(name))))


def _display_name(entity: ET.Element, sp: ET.Element) -> str | None:
    candidates = [*sp.iter(f"{{{MDUI_NS}}}DisplayName"), *entity.iter(f"{{{MD_NS}}}OrganizationDisplayName"),
                  *sp.iter(f"{{{MD_NS}}}ServiceName")]
    english = [c for c in candidates if c.get("{http://www.w3.org/XML/1998/namespace}lang") in ("en", "nb", "no")]
    for candidate in english or candidates:
        text = " ".join((candidate.text or "").split())
        if text:
            return text[:200]
    return None


def check_readable(described: SpDescription) -> None:
    """MetadataError unless pysaml2 reads this SP from its stored EntityDescriptor as we did."""
    store = InMemoryMetaData([ClaimConverter()], metadata=described.xml, check_validity=False)
    try:
        store.load()
    except Exception as exc:  # noqa: BLE001 - pysaml2 raises many types for metadata it cannot use
        raise MetadataError(f"{described.entity_id}: the metadata is not valid SAML metadata "
                            f"({type(exc).__name__})") from None
    if described.entity_id not in store:
        raise MetadataError(f"{described.entity_id}: the metadata has no SAML 2.0 service provider pysaml2 can use")
