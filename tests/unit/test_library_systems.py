"""Library systems (OAuth clients of the register, one library each) and the libraries' agreements.

The rules, as issue 15 states them: a system authenticates with a JWKS (inline or at an https URL;
http only on loopback) or a client secret, shown once and kept only as its SHA-256 digest; an
optional IP allow-list of CIDRs; disabling stops it at once; rotating a secret retires the old one.
A library has a contact e-mail, lending rules whose every new text is a new version, a compliance
flag, and the date its data processing agreement was signed (a real date, not in the future).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from datetime import date
from typing import Any

import pytest
from jwcrypto.jwk import JWK
from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError

from idp.errors import NotAllowed, NotFound, ValidationError
from idp.registry import agreements, libraries, library_systems
from idp.registry.context import Registry
from idp.registry.models import AuditEvent, LendingRules, Library, LibrarySystem
from idp.services import Services

OSLO = "NO-2030000"
BERGEN = "NO-4601000"
TODAY = date(2026, 11, 23)  # the conftest clock: 2026-11-23 12:00 UTC, the same day in Oslo


def public_jwks() -> str:
    key = JWK.generate(kty="EC", crv="P-256", kid="desk-1")
    return json.dumps({"keys": [key.export_public(as_dict=True)]})


def private_jwks() -> str:
    key = JWK.generate(kty="EC", crv="P-256", kid="leaked")
    return json.dumps({"keys": [key.export_private(as_dict=True)]})


@pytest.fixture
def oslo(services: Services) -> str:
    with services.registry("test") as reg:
        libraries.add_library(reg, OSLO, "Oslo public library")
        libraries.add_library(reg, BERGEN, "Bergen public library")
    return OSLO


def stored(services: Services) -> tuple[int, int, int, tuple[Any, ...]]:
    """Systems, lending-rules versions, audit events and Oslo's agreement fields, in a transaction of their own."""
    with services.registry("test") as reg:
        systems = reg.session.scalar(select(func.count()).select_from(LibrarySystem)) or 0
        rules = reg.session.scalar(select(func.count()).select_from(LendingRules)) or 0
        events = reg.session.scalar(select(func.count()).select_from(AuditEvent)) or 0
        lib = reg.session.scalar(select(Library).where(Library.isil == OSLO))
        fields = (lib.contact_email, lib.compliant, lib.dpa_signed) if lib else ()
        return systems, rules, events, fields


def refused(services: Services, make: Callable[[Registry], object], says: str,
            error: type[Exception] = ValidationError) -> None:
    """The call fails with a message containing ``says`` and leaves nothing behind."""
    before = stored(services)
    with pytest.raises(error) as info, services.registry("test") as reg:
        make(reg)
    assert says in str(info.value), str(info.value)
    assert stored(services) == before


def actions(reg: Registry) -> list[tuple[str, dict[str, Any]]]:
    reg.session.flush()
    return [(e.action, e.detail) for e in reg.session.scalars(select(AuditEvent).order_by(AuditEvent.id))]


# --- registration --------------------------------------------------------------------------------


def test_a_secret_client_gets_a_random_id_and_a_secret_stored_only_as_its_sha256(reg: Registry, oslo: str) -> None:
    system, secret = library_systems.add(reg, oslo, "Bibliofil")
    other, other_secret = library_systems.add(reg, oslo, "Quria")  # a library may run two systems
    assert secret is not None and other_secret is not None and secret != other_secret
    assert re.fullmatch(r"[A-Za-z0-9_-]{22,}", system.client_id) and system.client_id != other.client_id
    assert system.secret_hash == hashlib.sha256(secret.encode()).digest()
    assert library_systems.auth_method(system) == "client_secret_basic"
    assert library_systems.secret_matches(system, secret)
    assert not library_systems.secret_matches(system, other_secret)
    assert not library_systems.secret_matches(system, "")
    assert system.library.isil == OSLO and not system.disabled
    added = [detail for action, detail in actions(reg) if action == "library_system.add"]
    assert added[0]["client_id"] == system.client_id and secret not in json.dumps(added)


def test_a_jwks_client_has_no_secret_and_nothing_to_rotate(reg: Registry, oslo: str) -> None:
    system, secret = library_systems.add(reg, oslo, "Koha", jwks=public_jwks())
    assert secret is None and system.secret_hash is None
    assert library_systems.auth_method(system) == "private_key_jwt"
    assert json.loads(system.jwks or "")["keys"][0]["kid"] == "desk-1"
    assert not library_systems.secret_matches(system, "")
    with pytest.raises(NotAllowed, match="JWKS"):
        library_systems.rotate_secret(reg, system.client_id)


@pytest.mark.parametrize("uri", ["https://koha.example/jwks.json", "http://127.0.0.1:8080/jwks",
                                 "http://localhost/jwks", "http://[::1]/jwks"])
def test_a_jwks_url_is_https_or_loopback_http(reg: Registry, oslo: str, uri: str) -> None:
    system, secret = library_systems.add(reg, oslo, "Koha", jwks_uri=uri)
    assert secret is None and system.jwks_uri == uri and system.jwks is None


def test_the_ip_allow_list_holds_canonical_cidrs_and_decides_who_may_call(reg: Registry, oslo: str) -> None:
    system, _ = library_systems.add(reg, oslo, "Mikromarc",
                                    allowed_ips=["192.0.2.0/24", "2001:DB8::/32", "198.51.100.7", "192.0.2.0/24"])
    assert system.allowed_ips == ["192.0.2.0/24", "2001:db8::/32", "198.51.100.7/32"]
    assert library_systems.address_allowed(system, "192.0.2.200")
    assert library_systems.address_allowed(system, "2001:db8::1")
    assert not library_systems.address_allowed(system, "198.51.100.8")
    assert not library_systems.address_allowed(system, "not an address")
    anywhere, _ = library_systems.add(reg, oslo, "Bibliofil")
    assert anywhere.allowed_ips == [] and library_systems.address_allowed(anywhere, "203.0.113.9")


@pytest.mark.parametrize(("isil", "name", "options", "says", "error"), [
    pytest.param("NO-9999999", "Bibliofil", {}, "NO-9999999", NotFound, id="unknown-isil"),
    pytest.param(OSLO, "", {}, "name", ValidationError, id="empty-name"),
    pytest.param(OSLO, "   ", {}, "name", ValidationError, id="blank-name"),
    pytest.param(OSLO, "x" * 201, {}, "name", ValidationError, id="name-too-long"),
    pytest.param(OSLO, "Bibliofil", {"allowed_ips": ["10.0.0.0/33"]}, "CIDR", ValidationError, id="bad-cidr"),
    pytest.param(OSLO, "Bibliofil", {"allowed_ips": ["10.0.0.1/8"]}, "host bits", ValidationError,
                 id="cidr-with-host-bits"),
    pytest.param(OSLO, "Bibliofil", {"allowed_ips": ["intranet"]}, "CIDR", ValidationError, id="cidr-a-name"),
    pytest.param(OSLO, "Koha", {"jwks": '{"keys": ['}, "not valid JSON", ValidationError, id="jwks-not-json"),
    pytest.param(OSLO, "Koha", {"jwks": '{"keys": []}'}, '"keys"', ValidationError, id="jwks-no-keys"),
    pytest.param(OSLO, "Koha", {"jwks": "[1, 2]"}, '"keys"', ValidationError, id="jwks-not-an-object"),
    pytest.param(OSLO, "Koha", {"jwks": '{"keys": [{"kty": "nonsense"}]}'}, "not a valid JWK", ValidationError,
                 id="jwks-bad-key"),
    pytest.param(OSLO, "Koha", {"jwks": private_jwks()}, "private", ValidationError, id="jwks-private"),
    pytest.param(OSLO, "Koha", {"jwks": '{"keys": [{"kty": "oct", "k": "c2hhcmVkIHNlY3JldA"}]}'}, "symmetric",
                 ValidationError, id="jwks-shared-secret-key"),
    pytest.param(OSLO, "Koha", {"jwks": '{"keys": ["EC"]}'}, "JSON object", ValidationError, id="jwks-key-a-string"),
    pytest.param(OSLO, "Koha", {"jwks_uri": "http://koha.example/jwks"}, "https", ValidationError,
                 id="jwks-url-plain-http"),
    pytest.param(OSLO, "Koha", {"jwks_uri": "ftp://koha.example/jwks"}, "https", ValidationError,
                 id="jwks-url-ftp"),
    pytest.param(OSLO, "Koha", {"jwks_uri": "https://user:pw@koha.example/jwks"}, "user name", ValidationError,
                 id="jwks-url-with-password"),
    pytest.param(OSLO, "Koha", {"jwks_uri": "https://koha.example/jwks", "jwks": public_jwks()}, "not both",
                 ValidationError, id="jwks-inline-and-url"),
])
def test_bad_registrations_are_refused_and_write_nothing(services: Services, oslo: str, isil: str, name: str,
                                                          options: dict[str, Any], says: str,
                                                          error: type[Exception]) -> None:
    refused(services, lambda reg: library_systems.add(reg, isil, name, **options), says, error)


# --- life cycle ------------------------------------------------------------------------------------


def test_disabling_stops_the_secret_matching_and_enabling_restores_it(reg: Registry, oslo: str) -> None:
    system, secret = library_systems.add(reg, oslo, "Bibliofil")
    library_systems.disable(reg, system.client_id)
    library_systems.disable(reg, system.client_id)  # idempotent: one audit event
    assert system.disabled and not library_systems.secret_matches(system, secret)
    library_systems.enable(reg, system.client_id)
    assert not system.disabled and library_systems.secret_matches(system, secret)
    assert [a for a, _ in actions(reg) if a.startswith("library_system.")] == [
        "library_system.add", "library_system.disable", "library_system.enable"]


def test_rotating_makes_the_old_secret_stop_matching(reg: Registry, oslo: str) -> None:
    system, old = library_systems.add(reg, oslo, "Bibliofil")
    rotated, new = library_systems.rotate_secret(reg, system.client_id)
    assert rotated is system and new != old
    assert library_systems.secret_matches(system, new) and not library_systems.secret_matches(system, old)
    assert ("library_system.rotate_secret", {"client_id": system.client_id}) in actions(reg)


def test_an_unknown_client_id_is_not_found(reg: Registry, oslo: str) -> None:
    for client_id in ["NoSuchClient", "", "x" * 10_000, "has space"]:
        with pytest.raises(NotFound):
            library_systems.get(reg, client_id)


def test_systems_are_listed_per_library(reg: Registry, oslo: str) -> None:
    a, _ = library_systems.add(reg, OSLO, "Bibliofil")
    b, _ = library_systems.add(reg, BERGEN, "Quria")
    assert {s.client_id for s in library_systems.list_all(reg)} == {a.client_id, b.client_id}
    assert [s.client_id for s in library_systems.list_all(reg, BERGEN)] == [b.client_id]


@pytest.mark.backends
def test_the_database_refuses_a_system_with_a_secret_and_a_jwks_or_a_reused_client_id(
        services: Services, oslo: str) -> None:
    with services.registry("test") as reg:
        system, _ = library_systems.add(reg, oslo, "Bibliofil")
        row = {"client_id": "another", "library_id": system.library_id, "name": "Both", "jwks": public_jwks(),
               "jwks_uri": None, "secret_hash": b"\0" * 32, "allowed_ips": [], "disabled": False,
               "created_at": system.created_at, "updated_at": system.created_at}
        taken = {**row, "client_id": system.client_id, "jwks": None}
        neither = {**row, "jwks": None, "secret_hash": None}
    for bad in (row, taken, neither):
        with pytest.raises(IntegrityError), services.registry("test") as reg:
            reg.session.execute(insert(LibrarySystem), bad)


# --- the libraries' agreements ---------------------------------------------------------------------


def test_a_new_rules_text_makes_a_new_version_and_the_same_text_does_not(reg: Registry, oslo: str) -> None:
    library = agreements.update(reg, OSLO, contact_email="post@oslo.example", rules="Loans last 28 days.",
                                compliant=False)
    assert library.contact_email == "post@oslo.example" and library.compliant is False
    assert (agreements.current_rules(reg, library) or LendingRules()).version == 1
    agreements.update(reg, OSLO, rules="Loans last 28 days.\n")
    assert (agreements.current_rules(reg, library) or LendingRules()).version == 1
    agreements.update(reg, OSLO, rules="Loans last 21 days.")
    current = agreements.current_rules(reg, library)
    assert current is not None and (current.version, current.text) == (2, "Loans last 21 days.")
    assert [r.version for r in reg.session.scalars(select(LendingRules))] == [1, 2]
    assert library.contact_email == "post@oslo.example" and library.compliant is False  # untouched when not given
    assert [a for a, _ in actions(reg) if a.startswith("library.set")] == [
        "library.set_contact", "library.set_rules", "library.set_compliant", "library.set_rules"]


def test_a_library_starts_compliant_without_contact_rules_or_dpa(reg: Registry, oslo: str) -> None:
    library = libraries.get_library(reg, OSLO)
    assert library.compliant is True and library.contact_email is None and library.dpa_signed is None
    assert agreements.current_rules(reg, library) is None


def test_the_dpa_date_may_be_today_or_earlier_and_a_later_one_replaces_it(reg: Registry, oslo: str) -> None:
    assert agreements.set_dpa(reg, OSLO, date(2025, 1, 31)).dpa_signed == date(2025, 1, 31)
    assert agreements.set_dpa(reg, OSLO, TODAY).dpa_signed == TODAY


@pytest.mark.parametrize(("make", "says", "error"), [
    pytest.param(lambda reg: agreements.set_dpa(reg, OSLO, date(2026, 11, 24)), "future", ValidationError,
                 id="dpa-tomorrow"),
    pytest.param(lambda reg: agreements.set_dpa(reg, "NO-9999999", TODAY), "NO-9999999", NotFound,
                 id="dpa-unknown-isil"),
    pytest.param(lambda reg: agreements.update(reg, OSLO, contact_email="not-an-address"), "e-mail",
                 ValidationError, id="bad-email"),
    pytest.param(lambda reg: agreements.update(reg, OSLO, contact_email=""), "empty", ValidationError,
                 id="empty-email"),
    pytest.param(lambda reg: agreements.update(reg, OSLO, rules="  \n"), "empty", ValidationError,
                 id="empty-rules"),
    pytest.param(lambda reg: agreements.update(reg, OSLO, rules="x", contact_email="bad"), "e-mail",
                 ValidationError, id="good-rules-bad-email"),
])
def test_bad_agreement_input_is_refused_and_writes_nothing(services: Services, oslo: str,
                                                            make: Callable[[Registry], object], says: str,
                                                            error: type[Exception]) -> None:
    refused(services, make, says, error)
