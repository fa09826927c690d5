"""Which claims a relying party gets (pure), and how OIDC scopes and the claims parameter name them."""

from __future__ import annotations

import json
from typing import Any

import pytest

from idp.claims import ClaimsRequest, claims_for_scopes, decide, installed_claims, parse_claims_parameter

FILM_POLICY = ["valid_patron", "age_over_06", "age_over_09", "age_over_12", "age_over_15", "age_over_18"]


def known(name: str) -> bool:
    return installed_claims().provides(name)


def test_released_is_what_was_asked_and_allowed_in_policy_order() -> None:
    decision = decide(FILM_POLICY, ["age_over_18", "valid_patron", "age_over_15"], known=known)
    assert decision.released == ("valid_patron", "age_over_15", "age_over_18")
    assert decision.dropped == () and decision.forbidden_essential == () and not decision.refused


def test_asking_outside_the_policy_is_dropped_not_an_error() -> None:
    policy = ["valid_patron", "age_over_15", "age_over_18"]
    decision = decide(policy, ["valid_patron", "birthdate", "address", "age_over_21", "age_over_18"], known=known)
    assert decision.released == ("valid_patron", "age_over_18")
    assert decision.dropped == ("birthdate", "address", "age_over_21")
    assert not decision.refused


def test_an_essential_claim_that_cannot_be_released_is_reported() -> None:
    policy = ["valid_patron", "age_over_15", "age_over_18"]
    decision = decide(policy, ["valid_patron"], essential=["age_over_21", "age_over_18", "birthdate"], known=known)
    assert decision.released == ("valid_patron", "age_over_18")  # essential ones count as requested
    assert decision.forbidden_essential == ("age_over_21", "birthdate")
    assert decision.refused


def test_a_policy_entry_no_plugin_provides_is_never_released() -> None:
    # A row written past idp.relying_parties could hold anything; unknown names release nothing.
    decision = decide(["valid_patron", "shoe_size"], ["shoe_size", "valid_patron"], known=known)
    assert decision.released == ("valid_patron",) and decision.dropped == ("shoe_size",)


@pytest.mark.parametrize(("requested", "released"), [
    (None, ()), ([None, 3, {"a": 1}, ["valid_patron"]], ()), ("valid_patron", ("valid_patron",)),
])
def test_odd_requests_release_nothing_odd(requested: Any, released: tuple[str, ...]) -> None:
    assert decide(["valid_patron"], requested, known=known).released == released


def test_the_default_policy_releases_only_valid_patron() -> None:
    decision = decide(["valid_patron"], ["valid_patron", "name", "email", "loan_ban"], known=known)
    assert decision.released == ("valid_patron",) and decision.dropped == ("name", "email", "loan_ban")


@pytest.mark.parametrize(("scopes", "names"), [
    ("openid patron", ("valid_patron",)),
    ("openid age_over_18 age_over_06", ("age_over_18", "age_over_06")),
    ("openid profile email", ("name", "email")),
    ("openid library", ("home_library", "libraries", "loan_ban")),
    (["patron", "patron", "library", "patron"], ("valid_patron", "home_library", "libraries", "loan_ban")),
    ("openid age_over_5 age_over_100 age_over_00 offline_access birthdate", ()),
])
def test_scopes_ask_for_claims(scopes: str | list[str], names: tuple[str, ...]) -> None:
    assert claims_for_scopes(scopes) == names


def test_the_claims_parameter_asks_voluntarily_or_essentially() -> None:
    parameter = {"id_token": {"age_over_18": {"essential": True}, "valid_patron": None},
                 "userinfo": {"name": {"essential": False}, "email": {}, "age_over_18": None}}
    assert parse_claims_parameter(json.dumps(parameter)) == ClaimsRequest(
        names=("age_over_18", "valid_patron", "name", "email"), essential=("age_over_18",))
    assert parse_claims_parameter(parameter) == parse_claims_parameter(json.dumps(parameter))


def test_the_protocols_own_claims_are_left_to_the_oidc_layer() -> None:
    parameter = {"id_token": {"acr": {"essential": True, "values": ["mfa"]}, "auth_time": {"essential": True},
                              "sub": {"value": "x"}, "valid_patron": {"essential": True}}}
    assert parse_claims_parameter(parameter) == ClaimsRequest(("valid_patron",), ("valid_patron",))


@pytest.mark.parametrize("garbage", [
    None, "", "not json", "[1, 2]", "null", "42", json.dumps("a string"), [1, 2],
    {"id_token": "valid_patron"}, {"id_token": ["valid_patron"]}, {"userinfo": None},
    {"userinfo": {"valid_patron": True}}, {"userinfo": {"valid_patron": "essential"}},
    {"userinfo": {"valid_patron": [{"essential": True}]}}, {"userinfo": {"": None, "x" * 65: None}},
    {"access_token": {"valid_patron": {"essential": True}}},
    "[" * 5000 + "]" * 5000, json.dumps({"userinfo": {f"c{i}": None for i in range(2000)}}),
])
def test_garbage_shapes_are_ignored_without_crashing(garbage: Any) -> None:
    assert parse_claims_parameter(garbage) == ClaimsRequest((), ())


def test_only_the_json_true_makes_a_claim_essential() -> None:
    parameter = {"userinfo": {"a_1": {"essential": "true"}, "a_2": {"essential": 1}, "a_3": {"essential": True}}}
    assert parse_claims_parameter(parameter) == ClaimsRequest(("a_1", "a_2", "a_3"), ("a_3",))
