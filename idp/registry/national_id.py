"""Parsing and validation of Norwegian national identity numbers.

Accepts fødselsnummer, D-numbers, H-numbers and Skatteetaten's synthetic (Tenor) test
numbers, all 11 digits, plus UDI's 12-digit DUF numbers, which the register keeps apart
because they may only back a local card. Every failure raises ``InvalidNationalId`` with a
message that never repeats the input: the number is personal data and error messages end up
in logs and on error pages.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from idp.errors import InvalidNationalId

__all__ = ["IdKind", "NationalId", "parse_national_id", "synthetic_national_ids"]


class IdKind(enum.StrEnum):
    FNR = "fnr"
    DNR = "dnr"
    HNR = "hnr"
    DUF = "duf"


@dataclass(frozen=True, slots=True, repr=False)
class NationalId:
    value: str
    kind: IdKind
    synthetic: bool
    birth_date: date | None

    @property
    def allows_national_card(self) -> bool:
        # A DUF number identifies an immigration case, not a registered resident.
        return self.kind is not IdKind.DUF

    def __repr__(self) -> str:
        # Masked so that logging the object, or an exception that carries it, leaks nothing.
        return f"NationalId(kind={self.kind.value}, synthetic={self.synthetic}, ******)"

    __str__ = __repr__


_MSG_MISSING = "No national identity number was given."
_MSG_NOT_TEXT = "A national identity number must be given as text."
_MSG_CHARACTERS = (
    "A national identity number may contain only digits, with spaces or dots between them"
    " and at most one hyphen after the birth date."
)
_MSG_HYPHEN = "A hyphen is only allowed between the birth date and the individual digits."
_MSG_LENGTH = "A national identity number has 11 digits (a DUF number 12)."
_MSG_CONTROL = "The control digits of this national identity number do not match."
_MSG_DATE = "This national identity number does not encode a valid birth date."
_MSG_CENTURY = (
    "The individual digits of this national identity number are not in use for its birth year."
)
_MSG_FUTURE = "The birth date of this national identity number lies in the future."
_MSG_DUF_CONTROL = "The control digits of this DUF number do not match."
_MSG_DUF_YEAR = "This DUF number does not begin with a plausible registration year."

# Far above any honest formatting of 12 digits; refusing longer input up front keeps a hostile
# megabyte string away from the regular expressions below.
_MAX_RAW_LENGTH = 40

# Separators and the hyphen may only sit between digits. The non-breaking space is accepted
# because it turns up when numbers are pasted from documents and web pages.
_SHAPE = re.compile(r"[0-9](?:[0-9 .\u00a0-]*[0-9])?")
_NOT_DIGIT = re.compile(r"[^0-9]")

_K1_WEIGHTS = (3, 7, 6, 1, 8, 9, 4, 5, 2)
_K2_WEIGHTS = (5, 4, 3, 2, 7, 6, 5, 4, 3, 2)

# DUF control digits: the weighted sum of the first ten digits modulo 11, written as two digits
# (00-10). UDI publishes no specification; this is the rule described by Snorre Løvås
# ("Identitetsnummer i Norge", lovas.info, 2013) and implemented identically by Statistics
# Norway's KOSTRA and child-welfare validators and by several independent open-source
# validators, so we treat it as reliable.
_DUF_WEIGHTS = (4, 6, 3, 2, 4, 6, 3, 2, 7, 5)
# Only rules out nonsense such as year 0000: the earliest year UDI actually issued is not
# documented, so a tighter bound could refuse genuine old case numbers.
_DUF_EARLIEST_YEAR = 1900

_OSLO = "Europe/Oslo"


def parse_national_id(raw: str, *, today: date | None = None) -> NationalId:
    """Canonicalise and validate ``raw``; raise ``InvalidNationalId`` if it is not acceptable.

    ``today`` anchors the "not in the future" checks. It defaults to the date in Norway so
    that a child born just after midnight there is not refused while a server on UTC still
    shows the day before.
    """
    digits = _canonicalise(raw)
    if today is None:
        today = datetime.now(ZoneInfo(_OSLO)).date()
    if len(digits) == 12:
        return _parse_duf(digits, today)
    return _parse_eleven(digits, today)


def _canonicalise(raw: object) -> str:
    if raw is None:
        raise InvalidNationalId(_MSG_MISSING)
    if not isinstance(raw, str):
        # An int would lose leading zeros and bytes have no agreed encoding; both point to a
        # caller bug, so refuse rather than guess.
        raise InvalidNationalId(_MSG_NOT_TEXT)
    if len(raw) > _MAX_RAW_LENGTH:
        raise InvalidNationalId(_MSG_LENGTH)
    text = raw.strip()
    if not text:
        raise InvalidNationalId(_MSG_MISSING)
    # re's [0-9] is ASCII only, unlike str.isdigit(), which would let Arabic-Indic or
    # full-width digits through to int().
    if not _SHAPE.fullmatch(text):
        raise InvalidNationalId(_MSG_CHARACTERS)

    digits = _NOT_DIGIT.sub("", text)
    hyphens = text.count("-")
    if hyphens > 1:
        raise InvalidNationalId(_MSG_HYPHEN)
    if len(digits) not in (11, 12):
        raise InvalidNationalId(_MSG_LENGTH)
    if hyphens == 1:
        before = _NOT_DIGIT.sub("", text.split("-", 1)[0])
        if len(digits) != 11 or len(before) != 6:
            raise InvalidNationalId(_MSG_HYPHEN)
    return digits


def _mod11_control(digits: str, weights: tuple[int, ...]) -> int | None:
    """Control digit for ``digits``, or None where the rule yields 10 (no valid number)."""
    control = 11 - sum(int(d) * w for d, w in zip(digits, weights, strict=True)) % 11
    if control == 11:
        return 0
    if control == 10:
        return None
    return control


def _parse_eleven(digits: str, today: date) -> NationalId:
    # Control digits are checked before the date so that a mistyped number is reported as a
    # typo rather than as an odd birth date.
    # From 2032 Skatteetaten relaxes the K1 rule for newly issued numbers; numbers issued
    # under it will be refused here until this check is widened.
    k1 = _mod11_control(digits[:9], _K1_WEIGHTS)
    if k1 is None or k1 != int(digits[9]):
        raise InvalidNationalId(_MSG_CONTROL)
    k2 = _mod11_control(digits[:10], _K2_WEIGHTS)
    if k2 is None or k2 != int(digits[10]):
        raise InvalidNationalId(_MSG_CONTROL)

    day = int(digits[0:2])
    month = int(digits[2:4])
    yy = int(digits[4:6])
    individual = int(digits[6:9])

    kind = IdKind.FNR
    if digits[0] in "4567":
        kind = IdKind.DNR
        day -= 40

    synthetic = False
    if month >= 80:
        # Tenor numbers shift the month by 80 so they can never collide with a real person's.
        synthetic = True
        month -= 80
    elif month >= 40:
        if kind is IdKind.DNR:
            # No register issues a number that is both a D- and an H-number.
            raise InvalidNationalId(_MSG_DATE)
        kind = IdKind.HNR
        month -= 40

    year = _birth_year(yy, individual)
    if year is None:
        raise InvalidNationalId(_MSG_CENTURY)
    try:
        birth_date = date(year, month, day)
    except ValueError:
        raise InvalidNationalId(_MSG_DATE) from None
    if birth_date > today:
        raise InvalidNationalId(_MSG_FUTURE)
    return NationalId(value=digits, kind=kind, synthetic=synthetic, birth_date=birth_date)


def _birth_year(yy: int, individual: int) -> int | None:
    """Full birth year from the two-digit year and the individual number, per Skatteetaten.

    The bands overlap on purpose: 900-999 served 1940-1999 as a reserve when popular dates ran
    out, which is also why the scheme stops at 2039. Combinations outside every band were
    never allocated (e.g. 500-749 with years 40-53, 750-899 with years 40-99).
    """
    if individual <= 499:
        return 1900 + yy
    if individual >= 900 and yy >= 40:
        return 1900 + yy
    if yy <= 39:
        return 2000 + yy
    if individual <= 749 and yy >= 54:
        return 1800 + yy
    return None


def _parse_duf(digits: str, today: date) -> NationalId:
    weighted = sum(int(d) * w for d, w in zip(digits[:10], _DUF_WEIGHTS, strict=True))
    if weighted % 11 != int(digits[10:]):
        raise InvalidNationalId(_MSG_DUF_CONTROL)
    year = int(digits[:4])
    if not _DUF_EARLIEST_YEAR <= year <= today.year:
        raise InvalidNationalId(_MSG_DUF_YEAR)
    return NationalId(value=digits, kind=IdKind.DUF, synthetic=False, birth_date=None)


def synthetic_national_ids(birth_date: date, *, start: int = 0) -> Iterator[str]:
    """Valid synthetic (Tenor, month + 80) numbers for ``birth_date``, for demos and benchmarks.

    They can never belong to a real person. Individual numbers run upwards from ``start`` within
    the band of the birth year; those whose control digit would be 10 are skipped.
    """
    if 1900 <= birth_date.year <= 1999:
        band = range(0, 500)
    elif 2000 <= birth_date.year <= 2039:
        band = range(500, 1000)
    else:
        raise ValueError("synthetic numbers are generated for births 1900-2039 only")
    stem = f"{birth_date.day:02d}{birth_date.month + 80:02d}{birth_date.year % 100:02d}"
    for individual in band[start:]:
        first_nine = f"{stem}{individual:03d}"
        k1 = _mod11_control(first_nine, _K1_WEIGHTS)
        k2 = None if k1 is None else _mod11_control(f"{first_nine}{k1}", _K2_WEIGHTS)
        if k1 is not None and k2 is not None:
            yield f"{first_nine}{k1}{k2}"
