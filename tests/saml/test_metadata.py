"""Reading SP metadata (idp.saml.metadata): single entities, aggregates, what is refused."""

from __future__ import annotations

import pytest

from idp.saml.metadata import MetadataError, check_readable, describe_service_providers
from tests.saml.sps import IDP_ONLY_ENTITY, PERSISTENT, aggregate, sp_entity


def test_an_aggregate_yields_its_sps_each_with_its_own_descriptor() -> None:
    document = aggregate(sp_entity("https://a.example/sp", "https://a.example/acs", name="A", signs=True),
                         IDP_ONLY_ENTITY, sp_entity("https://b.example/sp", "https://b.example/acs",
                                                    formats=(PERSISTENT,))).replace(
        'Name="municipal federation"', 'Name="x" validUntil="2099-01-01T00:00:00Z"')
    a, b = describe_service_providers(document)
    assert (a.entity_id, a.display_name, a.authn_requests_signed, len(a.signing_certificates)) == \
        ("https://a.example/sp", "A", True, 1)
    assert b.name_id_formats == (PERSISTENT,) and b.valid_until is not None and b.valid_until.year == 2099
    for described in (a, b):
        assert describe_service_providers(described.xml)[0].entity_id == described.entity_id
        check_readable(described)
    assert a.requested_claims is None


@pytest.mark.parametrize("document", ["<x/>", "not xml", '<!DOCTYPE x [<!ENTITY e "e">]><x/>',
                                      sp_entity("https://a.example/sp", "http://a.example/acs"),
                                      sp_entity("", "https://a.example/acs")])
def test_unusable_metadata_is_refused(document: str) -> None:
    with pytest.raises(MetadataError):
        describe_service_providers(document)
