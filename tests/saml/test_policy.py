"""Naming and releasing attributes, NameID formats and authentication contexts (idp.saml)."""

from __future__ import annotations

import pytest

from idp.saml.attributes import OWN_PREFIX, ClaimConverter, ReleasePolicy, claim_for, saml_name
from idp.saml.contexts import Demand, answer_ref, class_ref, demand, stated_level
from idp.saml.nameid import PERSISTENT, TRANSIENT, UNSPECIFIED, allowed_formats, choose_format
from tests.saml.sps import EMAIL

SP = "https://film.example/sp"


def test_one_table_names_every_claim_and_reads_them_back() -> None:
    assert saml_name("email").name == "urn:oid:0.9.2342.19200300.100.1.3"
    assert saml_name("name").friendly_name == "displayName"
    assert saml_name("eppn").friendly_name == "eduPersonPrincipalName"
    for claim in ("valid_patron", "age_over_15", "loan_ban", "home_library", "reader_club"):
        assert saml_name(claim).name == OWN_PREFIX + claim and claim_for(saml_name(claim).name) == claim
    assert claim_for("urn:oid:0.9.2342.19200300.100.1.3") == "email" and claim_for("urn:oid:9.9") is None
    attributes = ClaimConverter().to_({"valid_patron": True, "libraries": ["NO-1", "NO-2"]})
    assert [(a.name, [v.text for v in a.attribute_value]) for a in attributes] == [
        (OWN_PREFIX + "valid_patron", ["true"]), (OWN_PREFIX + "libraries", ["NO-1", "NO-2"])]


def test_the_release_policy_releases_exactly_the_decision() -> None:
    identity = {"valid_patron": True, "name": "Kari", "age_over_15": True}
    assert ReleasePolicy(SP, ["valid_patron"], 5).restrict(identity, SP) == {"valid_patron": True}
    # pysaml2's own policy releases everything when nothing is restricted; ours releases nothing.
    assert ReleasePolicy(SP, [], 5).restrict(identity, SP) == {}


def test_nameid_formats_follow_the_sp_and_never_a_personal_one() -> None:
    assert allowed_formats([]) == [PERSISTENT, TRANSIENT]
    assert allowed_formats([EMAIL, TRANSIENT]) == [TRANSIENT]
    assert choose_format(None, [TRANSIENT]) == TRANSIENT
    assert choose_format(UNSPECIFIED, [PERSISTENT, TRANSIENT]) == PERSISTENT
    assert choose_format(TRANSIENT, [PERSISTENT, TRANSIENT]) == TRANSIENT
    assert choose_format(PERSISTENT, [TRANSIENT]) is None and choose_format(EMAIL, [PERSISTENT]) is None


def test_authn_contexts_map_to_levels() -> None:
    password = class_ref("password")
    assert password.endswith("PasswordProtectedTransport")
    assert demand([password], "exact", "password") == Demand("password", ("password",))
    # SAML core 3.3.2.2.1: without Comparison, "exact".
    assert demand(["urn:oasis:names:tc:SAML:2.0:ac:classes:Password"], None, "password") == \
        Demand("password", ("password",))
    assert demand([password], "better", "password") == Demand("mfa")
    assert demand(["urn:example:unknown"], "exact", "password") is None
    assert demand([], None, "mfa") == Demand("mfa")


SUBSTANTIAL_REF = "urn:x-patron-idp:ac:idporten-loa-substantial"


@pytest.mark.parametrize("ref", [SUBSTANTIAL_REF, "idporten-loa-substantial"])
def test_a_request_may_name_idporten_levels(ref: str) -> None:
    assert demand([ref], "minimum", "password") == Demand("idporten-loa-substantial")
    assert demand([ref], "exact", "password") == Demand("idporten-loa-substantial", ("idporten-loa-substantial",))
    assert demand([ref], "better", "password") == Demand("idporten-loa-high")
    assert demand(["idporten-loa-high"], "better", "password") is None  # nothing is above the top
    assert answer_ref("idporten-loa-substantial", [ref]) == ref  # answered in the SP's own vocabulary
    assert answer_ref("idporten-loa-high", [ref]) == "urn:x-patron-idp:ac:idporten-loa-high"


def test_the_sps_minimum_holds_whatever_the_request_says() -> None:
    password = class_ref("password")
    assert demand([password], "minimum", "idporten-loa-substantial") == Demand("idporten-loa-substantial")
    # exact below the minimum, or a ceiling below it, cannot be met: NoAuthnContext, never a lower login
    assert demand([password], "exact", "idporten-loa-substantial") is None
    assert demand([password], "maximum", "mfa") is None
    assert demand([password, "idporten-loa-high"], "exact", "mfa") == Demand("idporten-loa-high",
                                                                           ("idporten-loa-high",))
    # web logins never rest on a PIN alone, whatever is asked
    assert demand([class_ref("pin")], "minimum", "pin") == Demand("password")


def test_the_assertion_names_the_level_reached_within_what_was_asked() -> None:
    assert stated_level("idporten-loa-high", ()) == "idporten-loa-high"
    exact = demand(["idporten-loa-substantial", class_ref("password")], "exact", "password")
    assert exact is not None and exact.floor == "password"
    assert stated_level("mfa", exact.stated) == "password"
    assert stated_level("idporten-loa-high", exact.stated) == "idporten-loa-substantial"
    ceiling = demand([class_ref("mfa")], "maximum", "password")
    assert ceiling == Demand("password", ("pin", "password", "mfa"))
    assert stated_level("idporten-loa-high", ceiling.stated) == "mfa"
    assert stated_level("password", ceiling.stated) == "password"
