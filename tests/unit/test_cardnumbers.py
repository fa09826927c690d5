"""Card numbers are typed the way they are printed; the register finds them anyway."""

from __future__ import annotations

import pytest

from idp.errors import InvalidCardNumber, ValidationError
from idp.registry.cardnumbers import (
    BIBLIOMO_RULES,
    RuleSet,
    canonical,
    generic,
    lookup_candidates,
    national_number,
)

BIBLIOMO = RuleSet.from_data(BIBLIOMO_RULES)


@pytest.mark.parametrize(("typed", "stored"), [
    ("N000123456", "N000123456"),
    ("n000123456", "N000123456"),
    (" N 000 123 456 ", "N000123456"),
    ("N-000-123-456", "N000123456"),
    ("N123456", "N000123456"),        # leading zeros of the 9 digits left out
    ("N0000123456", "N000123456"),    # one leading zero too many
    ("n\t000123456", "N000123456"),
])
def test_national_numbers_are_fixed_width_whatever_was_typed(typed: str, stored: str) -> None:
    assert canonical(typed) == stored
    assert lookup_candidates(typed, [BIBLIOMO]) == [stored]


@pytest.mark.parametrize(("typed", "stored"), [
    # The examples BiblioMo gives its librarians, and the same numbers typed carelessly.
    ("1208120", "1208120"),
    ("0001208120", "1208120"),
    ("BE1295", "BE1295"),
    ("BE01295", "BE1295"),
    ("be-001295", "BE1295"),
    ("U03125", "U03125"),
    ("U0003125", "U03125"),
    ("U3125", "U03125"),
    ("u 0 3125", "U03125"),
])
def test_bibliomo_rules_are_data(typed: str, stored: str) -> None:
    assert canonical(typed, BIBLIOMO) == stored


def test_without_rules_a_local_number_keeps_its_zeros() -> None:
    # A library that prints leading zeros on purpose must not have them stripped.
    assert canonical("0042-17") == "004217"


@pytest.mark.parametrize("typed", ["", "   ", "N00012345ü", "12#34", "A" * 33, "1" * 65, "N000 123\x00456"])
def test_malformed_numbers_are_refused(typed: str) -> None:
    with pytest.raises(InvalidCardNumber):
        generic(typed)


def test_non_string_input_is_refused() -> None:
    with pytest.raises(InvalidCardNumber):
        generic(123456)  # type: ignore[arg-type]


def test_lookup_offers_every_library_reading_generic_first() -> None:
    strip_all_zeros = RuleSet.from_data([{"match": "0", "replace": ""}])
    assert lookup_candidates("u0003125", [BIBLIOMO, strip_all_zeros]) == ["U0003125", "U03125", "U3125"]


@pytest.mark.parametrize("rules", [
    "not a list",
    [{"match": "("}],
    [{"match": "(", "replace": ""}],
    [{"match": "a", "replace": r"\9"}],
    [{"match": 1, "replace": ""}],
    [{"match": "a", "replace": "", "extra": 1}],
    [{"match": "x" * 201, "replace": ""}],
    [{"match": "a", "replace": ""}] * 21,
])
def test_bad_rules_are_refused_when_configured(rules: object) -> None:
    with pytest.raises(ValidationError):
        RuleSet.from_data(rules)  # type: ignore[arg-type]


def test_a_national_number_is_n_and_9_digits() -> None:
    """README: "National numbers are `N` + 9 digits"."""
    assert national_number(1) == "N000000001"
    assert national_number(987654321) == "N987654321"
