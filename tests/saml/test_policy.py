"""Naming and releasing attributes, NameID formats and authentication contexts (idp.saml)."""

from __future__ import annotations

from idp.saml.attributes import OWN_PREFIX, ClaimConverter, ReleasePolicy, claim_for, saml_name
from idp.saml.contexts import class_ref, levels_asked
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
    assert levels_asked([password], "exact") == ["password"]
    assert levels_asked(["urn:oasis:names:tc:SAML:2.0:ac:classes:Password"], None) == ["password"]
    assert levels_asked([password], "better") == ["mfa"]
    assert levels_asked(["urn:example:unknown"], "exact") is None
    assert levels_asked([password], "maximum") == []
