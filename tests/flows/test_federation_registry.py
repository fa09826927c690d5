"""The register's side of federations (idp/registry/upstream.py) and the reading of a verified
answer (idp/auth/federation.py), without HTTP: link rules, owned fields, levels, national ids."""

from __future__ import annotations

from datetime import date

import pytest

from idp.auth.federation import FederationError, national_id_from, read_login, resolve_login
from idp.errors import Conflict, NotAllowed, ValidationError
from idp.registry import owned, patrons, upstream
from idp.registry.context import Registry
from idp.registry.models import Federation
from tests.nin import duf, person
from tests.unit.factories import ADULT_BORN, library, patron

pytestmark = pytest.mark.backends  # the register's link rules and unique upstream subjects

METADATA = "<EntityDescriptor/>"  # never parsed here


def federation(reg: Registry, name: str = "unimore", **overrides: object) -> Federation:
    spec = {"name": name, "display_name": "UniMoRe", "entity_id": f"https://idp.{name}.example/idp",
            "metadata_xml": METADATA, "link_attribute": "eduPersonPrincipalName",
            "attribute_map": {"name": "displayName", "email": "mail"}, **overrides}
    return upstream.add_federation(reg, upstream.FederationSpec(**spec))  # type: ignore[arg-type]


@pytest.fixture
def kari(reg: Registry) -> patrons.Patron:
    library(reg)
    return patron(reg)[0]


def test_one_account_per_patron_and_federation_and_one_patron_per_account(reg: Registry, kari: patrons.Patron) -> None:
    fed = federation(reg)
    upstream.link(reg, fed, "kari@unimore.it", kari, how="national_id")
    other, _ = patron(reg, nth=1)
    with pytest.raises(Conflict, match="already linked to a library card"):
        upstream.link(reg, fed, "kari@unimore.it", other, how="one_time_code")
    with pytest.raises(Conflict, match="already linked to another UniMoRe account"):
        upstream.link(reg, fed, "kari.n@unimore.it", kari, how="one_time_code")
    # Another federation is another matter.
    upstream.link(reg, federation(reg, "kommune", display_name="Kommune"), "kari@kommune.no", kari, how="operator")
    assert upstream.find_link(reg, fed, "kari@unimore.it").patron_id == kari.id
    assert upstream.find_link(reg, fed, "KARI@unimore.it") is None  # identifiers are compared exactly


def test_a_blocked_card_is_not_linked(reg: Registry, kari: patrons.Patron) -> None:
    patrons.update_patron(reg, kari, status="blocked")
    with pytest.raises(NotAllowed):
        upstream.link(reg, federation(reg), "kari@unimore.it", kari, how="operator")


def test_owned_fields_are_refreshed_and_read_only_until_unlinked(reg: Registry, kari: patrons.Patron) -> None:
    fed = federation(reg)
    identity = upstream.link(reg, fed, "kari@unimore.it", kari, how="national_id")
    assert upstream.refresh_owned_fields(reg, identity, {"name": "Kari  Nordmann-Rossi", "email": "x",
                                                         "phone": "+4712345678"}) == ["name"]
    assert kari.name == "Kari Nordmann-Rossi" and kari.email == "kari@example.org"  # a bad e-mail keeps the old
    assert kari.phone == "+4799999999"  # not owned: never written from upstream
    with pytest.raises(NotAllowed, match="name, email are kept up to date by UniMoRe"):
        patrons.update_patron(reg, kari, name="Kari", email="k@example.org")
    upstream.unlink(reg, fed, kari)
    assert patrons.update_patron(reg, kari, name="Kari") == ["name"]


def test_removing_a_federation_gives_the_fields_back(reg: Registry, kari: patrons.Patron) -> None:
    fed = federation(reg)
    upstream.link(reg, fed, "kari@unimore.it", kari, how="national_id")
    assert upstream.remove_federation(reg, "unimore") == 1
    reg.session.expire_all()
    assert owned.owned_fields(reg, kari) == {}


@pytest.mark.parametrize(("spec", "message"), [
    ({"name": "Uni More"}, "lower-case letters"),
    ({"link_attribute": "displayName"}, "identify a member for good"),
    ({"national_id_attribute": "mail"}, "national-id attribute"),
    ({"attribute_map": {"address": "postalAddress"}}, "only these fields"),
    ({"authn_contexts": {"urn:x": "idporten-loa-high"}}, "only ID-porten gives more"),
    ({"display_name": ""}, "display name"),
])
def test_a_federation_is_checked_before_it_is_stored(reg: Registry, spec: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        federation(reg, **spec)  # type: ignore[arg-type]
    assert upstream.list_federations(reg) == []


def test_the_level_a_login_earns(reg: Registry) -> None:
    fed = federation(reg, authn_contexts={"https://refeds.org/profile/mfa": "mfa"})
    assert upstream.level_for(fed, ["urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"]) == "password"
    assert upstream.level_for(fed, ["https://refeds.org/profile/mfa"]) == "mfa"
    assert upstream.level_for(fed, []) == "password"
    login = read_login(fed, {"eduPersonPrincipalName": ["kari@unimore.it"], "displayName": ["Kari"]},
                       ["https://refeds.org/profile/mfa"])
    assert (login.level, login.amr, login.values) == ("mfa", ["mfa"], {"name": "Kari"})
    assert "kari@unimore.it" not in repr(login)


def test_national_ids_are_read_only_from_norwegian_codes() -> None:
    nin = person(ADULT_BORN)
    assert national_id_from("norEduPersonNIN", nin).value == nin
    assert national_id_from("schacPersonalUniqueCode", f"urn:schac:personalUniqueCode:no:fnr:{nin}").value == nin
    assert national_id_from("schacPersonalUniqueCode", f"urn:schac:personalUniqueCode:NO:fnr:{nin}").value == nin
    assert national_id_from("schacPersonalUniqueCode", f"urn:schac:personalUniqueCode:se:pnr:{nin}") is None
    assert national_id_from("schacPersonalUniqueCode", nin) is None
    assert national_id_from("norEduPersonNIN", "12345678901") is None
    assert national_id_from("norEduPersonNIN", duf(2015, 123456)) is None  # no national account behind a DUF
    assert national_id_from("norEduPersonNIN", None) is None


def test_a_missing_link_attribute_is_an_error(reg: Registry) -> None:
    with pytest.raises(FederationError) as missing:
        read_login(federation(reg), {"displayName": ["Kari"]}, [])
    assert missing.value.kind == "attribute"


def test_a_first_login_with_a_national_id_links_itself(reg: Registry, kari: patrons.Patron) -> None:
    fed = federation(reg, national_id_attribute="norEduPersonNIN")
    login = read_login(fed, {"eduPersonPrincipalName": ["kari@unimore.it"], "norEduPersonNIN": [person(ADULT_BORN)],
                             "displayName": ["Kari Rossi"]}, [])
    assert resolve_login(reg, login) == kari.id and kari.name == "Kari Rossi"
    stranger = read_login(fed, {"eduPersonPrincipalName": ["ola@unimore.it"],
                                "norEduPersonNIN": [person(date(1979, 11, 30))]}, [])
    assert resolve_login(reg, stranger) is None  # nobody holds that number: the member links by code
