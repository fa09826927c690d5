"""Claim plugins: found through entry points, clashes refused at start-up, facts only as declared."""

from __future__ import annotations

import ast
import re
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any

import pytest
from babel.messages.pofile import read_po

import idp.claims
from idp.claims import (GROUP, ClaimCatalogue, ClaimPlugin, Facts, NameFamily, UndeclaredFact, Wording,
                        installed_claims, load_claims)
from idp.claims.vocabulary import NAMED_CLAIMS, POLICY_VOCABULARY
from idp.errors import ConfigError

HERE = __name__
CATALOGUE_PO = Path(idp.claims.__file__).parents[1] / "translations" / "nb" / "LC_MESSAGES" / "messages.po"


def _yes(name: str, facts: Facts, request: object) -> bool:
    return True


READER_CLUB = ClaimPlugin(names=("reader_club",), needs=frozenset({"status"}), compute=_yes,
                          wording=Wording("that you may join the reader club"))
SECOND_VALID_PATRON = ClaimPlugin(names=("valid_patron",), needs=frozenset({"status"}), compute=_yes,
                                  wording=Wording("that you are a patron"))
RIVAL_AGE_OVER = ClaimPlugin(family=NameFamily("age_over_", str.isdigit, "age_over_NN"),
                             needs=frozenset({"birth_date"}), compute=_yes, wording=Wording("old enough"))
# "age_" starts "age_over_", so some name may come from either family: refused without listing names.
WIDER_AGE = ClaimPlugin(family=NameFamily("age_", lambda rest: True, "age_*"), needs=frozenset({"birth_date"}),
                        compute=_yes, wording=Wording("old enough"))
FIXED_AGE_18 = ClaimPlugin(names=("age_over_18",), needs=frozenset({"birth_date"}), compute=_yes,
                           wording=Wording("adult"))
NOT_A_PLUGIN = object()


def ep(name: str, attribute: str, module: str = HERE) -> EntryPoint:
    return EntryPoint(name=name, value=f"{module}:{attribute}", group=GROUP)


def builtins() -> list[EntryPoint]:
    builtin = "idp.claims.builtin"
    return [ep("valid_patron", "VALID_PATRON", builtin), ep("age_over", "AGE_OVER", builtin),
            ep("loan_ban", "LOAN_BAN", builtin), ep("home_library", "HOME_LIBRARY", builtin),
            ep("libraries", "LIBRARIES", builtin), ep("name", "NAME", builtin), ep("email", "EMAIL", builtin)]


def test_the_installed_entry_points_provide_every_claim_a_policy_may_list() -> None:
    catalogue = installed_claims()
    assert all(catalogue.provides(name) for name in POLICY_VOCABULARY)
    assert catalogue.source_of("age_over_18") == "'age_over = idp.claims.builtin:AGE_OVER' (from patron-idp)"
    assert installed_claims() is catalogue  # loaded once per process


@pytest.mark.parametrize("name", ["age_over_5", "age_over_00", "age_over_100", "age_over_1a", "birthdate",
                                  "address", "national_id", "phone_number", "age"])
def test_no_plugin_answers_for_malformed_ages_or_personal_data(name: str) -> None:
    assert not installed_claims().provides(name)


def test_a_new_plugin_is_found_beside_the_built_in_ones() -> None:
    catalogue = load_claims([*builtins(), ep("reader_club", "READER_CLUB")])
    assert catalogue.provides("reader_club") and catalogue.provides("valid_patron")
    assert catalogue.describe("reader_club") == ("that you may join the reader club", {})


@pytest.mark.parametrize(("rival", "named"), [
    pytest.param("SECOND_VALID_PATRON", "'valid_patron'", id="same-fixed-name"),
    pytest.param("RIVAL_AGE_OVER", "age_over_NN", id="same-family"),
    pytest.param("WIDER_AGE", "age_*", id="overlapping-family"),
    pytest.param("FIXED_AGE_18", "'age_over_18'", id="fixed-name-inside-a-family"),
])
def test_two_plugins_for_one_name_stop_the_start(rival: str, named: str) -> None:
    with pytest.raises(ConfigError, match="Two claim plugins answer for") as refused:
        load_claims([*builtins(), ep("rival", rival)])
    message = str(refused.value)
    assert named in message and f"'rival = {HERE}:{rival}'" in message and "idp.claims.builtin" in message


def test_the_same_plugin_registered_twice_is_one_provider() -> None:
    catalogue = load_claims([ep("a", "READER_CLUB"), ep("b", "READER_CLUB")])
    assert catalogue.provides("reader_club")


def test_a_plugin_that_cannot_be_imported_stops_the_start_with_its_name() -> None:
    with pytest.raises(ConfigError, match=r"'broken = no_such_module:PLUGIN' could not be loaded: ModuleNotFound"):
        load_claims([EntryPoint(name="broken", value="no_such_module:PLUGIN", group=GROUP)])


def test_an_entry_point_that_is_not_a_plugin_is_refused() -> None:
    with pytest.raises(ConfigError, match=re.escape("gives a 'object', not an idp.claims.ClaimPlugin")):
        load_claims([ep("odd", "NOT_A_PLUGIN")])


def test_a_plugin_cannot_need_what_the_register_does_not_offer_to_plugins() -> None:
    with pytest.raises(ConfigError, match=r"'national_id'.*facts are: status"):
        ClaimPlugin(names=("id_check",), needs=frozenset({"national_id"}), compute=_yes, wording=Wording("x"))


@pytest.mark.parametrize("plugin", [
    pytest.param(dict(names=("birthdate",)), id="fixed-name"),
    pytest.param(dict(family=NameFamily("a", lambda rest: True, "a*")), id="family-covering-address"),
])
def test_a_plugin_cannot_release_birth_date_address_or_phone(plugin: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match="never leave the IdP"):
        ClaimPlugin(needs=frozenset({"birth_date"}), compute=_yes, wording=Wording("x"), **plugin)


def test_facts_give_only_what_was_declared() -> None:
    facts = Facts("'reader_club'", {"status": "active"})
    assert facts.status == "active"
    with pytest.raises(UndeclaredFact, match=r"'reader_club' read the fact 'birth_date' without declaring it "
                                             r"\(it declared: status\)"):
        facts.birth_date  # noqa: B018
    with pytest.raises(UndeclaredFact, match="'national_id', which is not a fact of the register"):
        facts.national_id  # noqa: B018
    with pytest.raises(AttributeError, match="read-only"):
        facts.status = "blocked"  # type: ignore[misc]
    assert repr(Facts("x", {"name": "Kari Nordmann"})) == "<Facts for x: name>"  # no values in logs


def test_every_built_in_wording_has_a_bokmal_translation() -> None:
    with CATALOGUE_PO.open("rb") as source:
        catalogue = read_po(source, locale="nb")
    wordings = [installed_claims().describe(name) for name in (*NAMED_CLAIMS, "age_over_15")]
    for msgid, _params in wordings:
        message = catalogue.get(msgid)
        assert message is not None and message.string, f"no nb translation for {msgid!r}"
    age = catalogue.get("that you are at least %(age)d years old")
    assert "python-format" in age.flags
    assert age.string % installed_claims().describe("age_over_15").params == "at du er minst 15 år gammel"


def test_the_claims_package_never_imports_the_web_framework() -> None:
    package = Path(idp.claims.__file__).parent
    imported = set()
    for source in package.glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Import):
                imported.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module.split(".")[0])
    assert len(list(package.glob("*.py"))) >= 8
    assert imported.isdisjoint({"flask", "flask_babel", "werkzeug", "jinja2"})


def test_a_catalogue_can_be_built_from_plugins_directly() -> None:
    catalogue = ClaimCatalogue([("test", READER_CLUB)])
    assert catalogue.provides("reader_club") and not catalogue.provides("valid_patron")
    assert catalogue.source_of("reader_club") == "test"


@pytest.mark.parametrize(("rival", "named"), [
    pytest.param("FIXED_AGE_18", "'age_over_18'", id="fixed-name-before-the-family"),
    pytest.param("WIDER_AGE", "age_*", id="wider-family-before-the-family"),
])
def test_a_clash_stops_the_start_whichever_plugin_loads_first(rival: str, named: str) -> None:
    # docs/claims.md: "two plugins for one name stop the IdP at start-up"; "aa" loads before "age_over".
    with pytest.raises(ConfigError, match="Two claim plugins answer for") as refused:
        load_claims([*builtins(), ep("aa", rival)])
    message = str(refused.value)
    assert named in message and f"'aa = {HERE}:{rival}'" in message and "idp.claims.builtin:AGE_OVER" in message


def test_a_plugin_listed_twice_leaves_every_other_plugin_in_place() -> None:
    catalogue = load_claims([ep("a", "READER_CLUB"), ep("b", "READER_CLUB"), *builtins()])
    assert catalogue.provides("reader_club")
    assert all(catalogue.provides(name) for name in POLICY_VOCABULARY)
