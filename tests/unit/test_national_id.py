"""Tests for idp.registry.national_id.

Valid numbers are built here from the published control-digit rules rather than copied from
the module, so the tests check the module against the rules and not against itself.
"""

from __future__ import annotations

from datetime import date

import pytest

from idp.errors import InvalidNationalId
from idp.registry.national_id import (
    IdKind,
    NationalId,
    parse_national_id,
    synthetic_national_ids,
)
from tests.nin import K1_WEIGHTS, K2_WEIGHTS, control, duf, fnr, with_controls

TODAY = date(2025, 6, 1)

def parse(raw: object) -> NationalId:
    return parse_national_id(raw, today=TODAY)  # type: ignore[arg-type]


def rejects(raw: object) -> InvalidNationalId:
    with pytest.raises(InvalidNationalId) as info:
        parse(raw)
    return info.value


def nine_with_bad_k1() -> str:
    for individual in range(1000):
        nine = f"150190{individual:03d}"
        if control(nine, K1_WEIGHTS) == 10:
            return nine
    raise AssertionError("unreachable")


def ten_with_bad_k2() -> str:
    for individual in range(1000):
        nine = f"150190{individual:03d}"
        k1 = control(nine, K1_WEIGHTS)
        if k1 != 10 and control(nine + str(k1), K2_WEIGHTS) == 10:
            return nine + str(k1)
    raise AssertionError("unreachable")


# --- valid fødselsnummer, one per century band ----------------------------------------------


@pytest.mark.parametrize(
    ("ddmmyy", "individuals", "born"),
    [
        pytest.param("010154", range(500, 750), date(1854, 1, 1), id="1854 earliest"),
        pytest.param("311299", range(500, 750), date(1899, 12, 31), id="1800s 500-749"),
        pytest.param("010100", range(0, 500), date(1900, 1, 1), id="1900s 000-499"),
        pytest.param("150190", range(0, 500), date(1990, 1, 15), id="1990 000-499"),
        pytest.param("150140", range(900, 1000), date(1940, 1, 15), id="1940 900-999"),
        pytest.param("150199", range(900, 1000), date(1999, 1, 15), id="1999 900-999"),
        pytest.param("010100", range(500, 750), date(2000, 1, 1), id="2000 500-749"),
        pytest.param("150110", range(750, 900), date(2010, 1, 15), id="2010 750-899"),
        pytest.param("150124", range(900, 1000), date(2024, 1, 15), id="2024 900-999"),
    ],
)
def test_valid_fnr_in_each_century_band(ddmmyy: str, individuals: range, born: date) -> None:
    number = fnr(ddmmyy, individuals)
    nid = parse(number)
    assert nid.value == number
    assert nid.kind is IdKind.FNR
    assert nid.synthetic is False
    assert nid.birth_date == born
    assert nid.allows_national_card is True


# --- D-, H- and synthetic numbers -----------------------------------------------------------


@pytest.mark.parametrize(
    ("ddmmyy", "kind", "synthetic", "born"),
    [
        pytest.param("551090", IdKind.DNR, False, date(1990, 10, 15), id="D-number"),
        pytest.param("711290", IdKind.DNR, False, date(1990, 12, 31), id="D-number day 31"),
        pytest.param("155090", IdKind.HNR, False, date(1990, 10, 15), id="H-number"),
        pytest.param("154190", IdKind.HNR, False, date(1990, 1, 15), id="H-number January"),
        pytest.param("159090", IdKind.FNR, True, date(1990, 10, 15), id="synthetic"),
        pytest.param("159290", IdKind.FNR, True, date(1990, 12, 15), id="synthetic December"),
        pytest.param("559090", IdKind.DNR, True, date(1990, 10, 15), id="synthetic D-number"),
    ],
)
def test_d_h_and_synthetic_numbers(ddmmyy: str, kind: IdKind, synthetic: bool, born: date) -> None:
    nid = parse(fnr(ddmmyy, range(0, 500)))
    assert nid.kind is kind
    assert nid.synthetic is synthetic
    assert nid.birth_date == born
    assert nid.allows_national_card is True


# --- leap days ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ddmmyy", "individuals", "born"),
    [
        pytest.param("290296", range(0, 500), date(1996, 2, 29), id="1996"),
        pytest.param("290200", range(500, 1000), date(2000, 2, 29), id="2000 divisible by 400"),
        pytest.param("690296", range(0, 500), date(1996, 2, 29), id="D-number 1996"),
        pytest.param("298296", range(0, 500), date(1996, 2, 29), id="synthetic 1996"),
    ],
)
def test_leap_day_in_leap_year(ddmmyy: str, individuals: range, born: date) -> None:
    assert parse(fnr(ddmmyy, individuals)).birth_date == born


@pytest.mark.parametrize(
    ("ddmmyy", "individuals"),
    [
        pytest.param("290297", range(0, 500), id="1997"),
        pytest.param("290201", range(500, 1000), id="2001"),
        # Same digits as the valid 2000 case: the individual number makes it 1900, not leap.
        pytest.param("290200", range(0, 500), id="1900 not divisible by 400"),
        pytest.param("690297", range(0, 500), id="D-number 1997"),
    ],
)
def test_leap_day_in_common_year_is_refused(ddmmyy: str, individuals: range) -> None:
    error = rejects(fnr(ddmmyy, individuals))
    assert "valid birth date" in error.message


# --- control digits -------------------------------------------------------------------------


@pytest.mark.parametrize("position", [9, 10], ids=["K1 wrong", "K2 wrong"])
@pytest.mark.parametrize("delta", [1, 5, 9])
def test_wrong_control_digit(position: int, delta: int) -> None:
    number = fnr("150190", range(0, 500))
    wrong = str((int(number[position]) + delta) % 10)
    error = rejects(number[:position] + wrong + number[position + 1 :])
    assert "control digits" in error.message


@pytest.mark.parametrize("suffix", ["00", "01", "55", "99"])
def test_k1_that_would_be_10_is_never_valid(suffix: str) -> None:
    error = rejects(nine_with_bad_k1() + suffix)
    assert "control digits" in error.message


@pytest.mark.parametrize("last", "0123456789")
def test_k2_that_would_be_10_is_never_valid(last: str) -> None:
    error = rejects(ten_with_bad_k2() + last)
    assert "control digits" in error.message


# --- bad shapes -----------------------------------------------------------------------------

VALID = fnr("150190", range(0, 500))

BAD_SHAPES = [
    pytest.param(None, id="None"),
    pytest.param("", id="empty"),
    pytest.param("   \t\n", id="only whitespace"),
    pytest.param(int(VALID), id="int"),
    pytest.param(VALID.encode(), id="bytes"),
    pytest.param("None", id="the word None"),
    pytest.param("null", id="the word null"),
    pytest.param("abcdefghijk", id="letters"),
    pytest.param(VALID[:10] + "x", id="letter at the end"),
    pytest.param("x" + VALID, id="letter in front"),
    pytest.param(VALID[:10], id="10 digits"),
    pytest.param(VALID + "0", id="12 digits not DUF"),
    pytest.param(VALID + "00", id="13 digits"),
    pytest.param("1", id="1 digit"),
    pytest.param("1" * 10_000, id="10000 digits"),
    pytest.param(" " * 10_000 + VALID, id="10000 spaces of padding"),
    pytest.param("\uff10" * 11, id="full-width digits"),
    pytest.param("\u0661" * 11, id="Arabic-Indic digits"),
    pytest.param(f"{VALID[:6]}--{VALID[6:]}", id="two hyphens together"),
    pytest.param(f"{VALID[:3]}-{VALID[3:6]}-{VALID[6:]}", id="two hyphens"),
    pytest.param(f"{VALID[:4]}-{VALID[4:]}", id="hyphen inside the date"),
    pytest.param(f"{VALID[:9]}-{VALID[9:]}", id="hyphen before control digits"),
    pytest.param(f"-{VALID}", id="leading hyphen"),
    pytest.param(f"{VALID}.", id="trailing dot"),
    pytest.param(f"{VALID[:6]}\t{VALID[6:]}", id="inner tab"),
    pytest.param(f"{VALID[:6]}/{VALID[6:]}", id="slash"),
    pytest.param("+47" + VALID, id="plus sign"),
]


@pytest.mark.parametrize("raw", BAD_SHAPES)
def test_bad_shapes_are_refused(raw: object) -> None:
    rejects(raw)


def test_length_message() -> None:
    assert rejects(VALID[:10]).message == (
        "A national identity number has 11 digits (a DUF number 12)."
    )


@pytest.mark.parametrize(
    "ddmmyy",
    [
        pytest.param("000190", id="day 00"),
        pytest.param("320190", id="day 32"),
        pytest.param("310490", id="31 April"),
        pytest.param("150090", id="month 00"),
        pytest.param("151390", id="month 13"),
        pytest.param("400190", id="D-number day 00"),
        pytest.param("720190", id="D-number day 32"),
        pytest.param("804190", id="old-style H-number with day + 80"),
        pytest.param("155390", id="H-number month 13"),
        pytest.param("157990", id="month 79"),
        pytest.param("158090", id="synthetic month 00"),
        pytest.param("159390", id="synthetic month 13"),
        pytest.param("555090", id="both D- and H-number"),
    ],
)
def test_impossible_dates_are_refused(ddmmyy: str) -> None:
    error = rejects(fnr(ddmmyy, range(0, 500)))
    assert error.message == "This national identity number does not encode a valid birth date."


@pytest.mark.parametrize(
    ("yy", "individuals"),
    [
        pytest.param("40", range(500, 750), id="500-749 with year 40"),
        pytest.param("53", range(500, 750), id="500-749 with year 53"),
        pytest.param("40", range(750, 900), id="750-899 with year 40"),
        pytest.param("54", range(750, 900), id="750-899 with year 54"),
        pytest.param("99", range(750, 900), id="750-899 with year 99"),
    ],
)
def test_unallocated_individual_numbers_are_refused(yy: str, individuals: range) -> None:
    error = rejects(fnr(f"1501{yy}", individuals))
    assert "individual digits" in error.message


# --- future birth dates ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "ddmmyy",
    [
        pytest.param("020625", id="tomorrow"),
        pytest.param("150139", id="2039"),
        pytest.param("420625", id="D-number tomorrow"),
    ],
)
def test_future_birth_date_is_refused(ddmmyy: str) -> None:
    error = rejects(fnr(ddmmyy, range(500, 1000)))
    assert error.message == "The birth date of this national identity number lies in the future."


def test_born_today_is_accepted() -> None:
    assert parse(fnr("010625", range(500, 1000))).birth_date == TODAY


def test_default_today_is_used_when_not_given() -> None:
    assert parse_national_id(VALID).birth_date == date(1990, 1, 15)
    # Year 2039 is in the future until the scheme itself runs out.
    with pytest.raises(InvalidNationalId):
        parse_national_id(fnr("311239", range(500, 1000)))


# --- canonicalisation -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "template",
    [
        pytest.param("{d}{i}", id="plain"),
        pytest.param("  {d}{i}\n", id="surrounding whitespace"),
        pytest.param("{d} {i}", id="space"),
        pytest.param("{d}-{i}", id="hyphen"),
        pytest.param("{d} - {i}", id="hyphen with spaces"),
        pytest.param("{d}\u00a0{i}", id="non-breaking space"),
        pytest.param("{dd}.{mm}.{yy} {i}", id="dotted date"),
        pytest.param("{dd}.{mm}.{yy}-{i}", id="dotted date and hyphen"),
        pytest.param("{dd} {mm} {yy} {iii} {kk}", id="grouped"),
    ],
)
def test_canonicalisation(template: str) -> None:
    raw = template.format(
        d=VALID[:6],
        i=VALID[6:],
        dd=VALID[:2],
        mm=VALID[2:4],
        yy=VALID[4:6],
        iii=VALID[6:9],
        kk=VALID[9:],
    )
    assert parse(raw).value == VALID


GOOD_DUF = duf(2015, 123456)


# --- DUF numbers ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("year", "serial"),
    [(2015, 123456), (1995, 1), (2025, 999999)],
)
def test_duf_is_recognised_but_not_for_national_card(year: int, serial: int) -> None:
    number = duf(year, serial)
    nid = parse(number)
    assert nid.value == number
    assert nid.kind is IdKind.DUF
    assert nid.synthetic is False
    assert nid.birth_date is None
    assert nid.allows_national_card is False


def test_duf_with_control_value_10() -> None:
    number = next(n for n in (duf(2010, serial) for serial in range(1000)) if n.endswith("10"))
    assert parse(number).kind is IdKind.DUF


def test_duf_with_spaces() -> None:
    number = GOOD_DUF
    assert parse(f" {number[:4]} {number[4:10]} {number[10:]} ").value == number


@pytest.mark.parametrize("position", [3, 8, 10, 11])
def test_duf_with_wrong_digit_is_refused(position: int) -> None:
    number = GOOD_DUF
    wrong = str((int(number[position]) + 1) % 10)
    error = rejects(number[:position] + wrong + number[position + 1 :])
    assert "DUF" in error.message


@pytest.mark.parametrize(
    "year",
    [
        pytest.param(0, id="year 0000"),
        pytest.param(1899, id="1899"),
        pytest.param(2026, id="next year"),
    ],
)
def test_duf_with_implausible_year_is_refused(year: int) -> None:
    error = rejects(duf(year, 123456))
    assert "year" in error.message


def test_duf_with_hyphen_is_refused() -> None:
    number = GOOD_DUF
    rejects(f"{number[:6]}-{number[6:]}")


# --- personal data never leaks --------------------------------------------------------------

LEAK_CASES = [
    *BAD_SHAPES,
    pytest.param(fnr("320190", range(0, 500)), id="bad date"),
    pytest.param(fnr("150145", range(750, 900)), id="unallocated"),
    pytest.param(fnr("020625", range(500, 1000)), id="future"),
    pytest.param(VALID[:10] + str((int(VALID[10]) + 1) % 10), id="bad control"),
    pytest.param(f"{VALID[:3]}-{VALID[3:6]}-{VALID[6:]}", id="bad hyphens"),
    pytest.param(GOOD_DUF[:10] + f"{(int(GOOD_DUF[10:]) + 1) % 11:02d}", id="bad DUF control"),
    pytest.param(duf(2026, 123456), id="future DUF"),
]


@pytest.mark.parametrize("raw", LEAK_CASES)
def test_error_never_contains_the_input(raw: object) -> None:
    error = rejects(raw)
    digits = "".join(ch for ch in str(raw) if ch.isdigit())
    shown = " ".join([str(error), repr(error), error.message, *map(str, error.args)])
    # Any run of three input digits would already be a fragment of the number.
    for start in range(len(digits) - 2):
        assert digits[start : start + 3] not in shown
    if isinstance(raw, str) and len(raw.strip()) >= 3:
        assert raw.strip() not in shown
    # A chained ValueError would drag its own text into the traceback.
    assert error.__cause__ is None


@pytest.mark.parametrize(
    "number",
    [
        pytest.param(VALID, id="fnr"),
        pytest.param(fnr("559090", range(0, 500)), id="synthetic D-number"),
        pytest.param(GOOD_DUF, id="DUF"),
    ],
)
def test_repr_and_str_hide_the_digits(number: str) -> None:
    nid = parse(number)
    for shown in (repr(nid), str(nid), f"{nid}", repr([nid])):
        assert not any(ch.isdigit() for ch in shown)
    assert repr(nid) == f"NationalId(kind={nid.kind.value}, synthetic={nid.synthetic}, ******)"


def test_national_id_is_immutable() -> None:
    nid = parse(VALID)
    with pytest.raises(AttributeError):
        nid.value = "0"  # type: ignore[misc]


def test_id_kind_values() -> None:
    assert [kind.value for kind in IdKind] == ["fnr", "dnr", "hnr", "duf"]
    assert str(IdKind.DUF) == "duf"


@pytest.mark.parametrize(("yy", "individual", "born_in"), [("85", 499, 1985), ("60", 749, 1860)],
                         ids=["499 is still 1900s", "749 is still 1800s"])
def test_the_last_individual_number_of_a_band_keeps_its_century(yy: str, individual: int, born_in: int) -> None:
    """README: "the century rules" (Skatteetaten): 000-499 are born 1900-1999, 500-749 with years
    54-99 are born 1854-1899, the last number of each band included."""
    number = next(n for day in range(1, 29) if (n := with_controls(f"{day:02d}01{yy}{individual:03d}")) is not None)
    nid = parse(number)
    assert nid.birth_date is not None and nid.birth_date.year == born_in


def test_every_generated_synthetic_number_has_11_digits_and_valid_control_digits() -> None:
    """README: synthetic test numbers (month + 80) "with both mod-11 control digits"."""
    numbers = list(synthetic_national_ids(date(1990, 5, 17)))
    assert len(numbers) > 100
    for number in numbers:
        assert len(number) == 11 and number[2:4] == "85"
        assert parse(number).synthetic is True


def test_a_wrong_first_control_digit_is_refused_even_when_the_second_fits_it() -> None:
    """README: "both mod-11 control digits": a wrong K1 followed by the K2 computed over it."""
    nine = "150190123"
    right_k1 = control(nine, K1_WEIGHTS)
    for k1 in (d for d in range(10) if d != right_k1):
        k2 = control(f"{nine}{k1}", K2_WEIGHTS)
        if k2 != 10:
            rejects(f"{nine}{k1}{k2}")


@pytest.mark.parametrize("born", [date(1900, 1, 1), date(1999, 12, 31), date(2000, 1, 1), date(2024, 12, 31)])
def test_a_generated_synthetic_number_encodes_its_birth_date(born: date) -> None:
    """README: synthetic numbers follow "the century rules": each reads back as the date asked for."""
    for number in list(synthetic_national_ids(born))[:3]:
        assert parse(number).birth_date == born
