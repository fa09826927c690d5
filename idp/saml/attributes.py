"""Claims as SAML attributes: the one table of names, and the release policy pysaml2 applies.

Values come only from ``idp.claims.release`` (the claim plugins under the relying party's
policy); this module only names them. A claim with a standard eduPerson / inetOrgPerson / SCHAC
attribute travels under that name; the rest (``valid_patron``, ``age_over_NN``, the library
facts, any plugin's claim) under a URN of our own, ``urn:x-patron-idp:attribute:<claim>``. All use
the URI name format. ``eduPersonPrincipalName`` is not a claim: it is the public subject
(``<sub>@<scope>``), sent only to SPs whose policy gives them the public subject.

pysaml2's own release policy releases every attribute it is given unless told otherwise, and
filters by the SP's metadata on top; ``ReleasePolicy`` replaces both with our decision.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

from saml2.assertion import Policy
from saml2.attribute_converter import AttributeConverter
from saml2.s_utils import do_ava, factory
from saml2.saml import NAME_FORMAT_URI, Attribute

OWN_PREFIX = "urn:x-patron-idp:attribute:"
PRINCIPAL_NAME = "eppn"  # the key of eduPersonPrincipalName among the released values


class SamlName(NamedTuple):
    name: str  # the attribute Name (URI)
    friendly_name: str


STANDARD: Mapping[str, SamlName] = MappingProxyType({
    "name": SamlName("urn:oid:2.16.840.1.113730.3.1.241", "displayName"),
    "email": SamlName("urn:oid:0.9.2342.19200300.100.1.3", "mail"),
    PRINCIPAL_NAME: SamlName("urn:oid:1.3.6.1.4.1.5923.1.1.1.6", "eduPersonPrincipalName"),
})
_BY_URI = MappingProxyType({saml.name: claim for claim, saml in STANDARD.items()})


def saml_name(claim: str) -> SamlName:
    """The SAML attribute a claim travels as."""
    return STANDARD.get(claim) or SamlName(OWN_PREFIX + claim, claim)


def claim_for(attribute_name: str) -> str | None:
    """The claim an SP means by an attribute Name (from its metadata), or None if not ours."""
    if not isinstance(attribute_name, str):
        return None
    if attribute_name in _BY_URI:
        return _BY_URI[attribute_name]
    if attribute_name.startswith(OWN_PREFIX) and len(attribute_name) > len(OWN_PREFIX):
        return attribute_name[len(OWN_PREFIX):]
    return None


class _Names(Mapping[str, str]):
    """claim -> URI (or the reverse) for every name, including families such as age_over_NN."""

    def __init__(self, reverse: bool) -> None:
        self._reverse = reverse

    def __getitem__(self, key: str) -> str:
        found = claim_for(key) if self._reverse else saml_name(key).name
        if found is None:
            raise KeyError(key)
        return found

    def __iter__(self) -> Any:
        return iter(STANDARD if not self._reverse else _BY_URI)

    def __len__(self) -> int:
        return len(STANDARD)


class ClaimConverter(AttributeConverter):
    """pysaml2's attribute converter, answering from the table above."""

    def __init__(self) -> None:
        super().__init__(NAME_FORMAT_URI)
        self._to = _Names(reverse=False)
        self._fro = _Names(reverse=True)

    def to_(self, attrvals: Mapping[str, Any]) -> list[Any]:
        return [factory(Attribute, name=saml_name(key).name, name_format=NAME_FORMAT_URI,
                        friendly_name=saml_name(key).friendly_name, attribute_value=do_ava(value))
                for key, value in attrvals.items()]


class ReleasePolicy(Policy):
    """Exactly ``released`` for one SP, with our assertion lifetime; nothing from pysaml2's defaults."""

    def __init__(self, sp_entity_id: str, released: Iterable[str], lifetime_minutes: int) -> None:
        self._released = frozenset(released)
        super().__init__({sp_entity_id: {"lifetime": {"minutes": lifetime_minutes}, "name_form": NAME_FORMAT_URI,
                                         "fail_on_missing_requested": False}})

    def restrict(self, ava: Mapping[str, Any], sp_entity_id: str, metadata: Any = None) -> dict[str, Any]:
        return {name: value for name, value in ava.items() if name in self._released}
