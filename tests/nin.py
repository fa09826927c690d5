"""Valid Norwegian national identity numbers for tests, computed here from the published rules
(not by the module under test), so tests check the module against the rules, not against itself.
"""

from __future__ import annotations

from datetime import date

K1_WEIGHTS = (3, 7, 6, 1, 8, 9, 4, 5, 2)
K2_WEIGHTS = (5, 4, 3, 2, 7, 6, 5, 4, 3, 2)
DUF_WEIGHTS = (4, 6, 3, 2, 4, 6, 3, 2, 7, 5)


def control(digits: str, weights: tuple[int, ...]) -> int:
    """Mod-11 control digit; 10 means no valid number exists for these digits."""
    return (11 - sum(int(d) * w for d, w in zip(digits, weights, strict=True)) % 11) % 11


def with_controls(nine: str) -> str | None:
    k1 = control(nine, K1_WEIGHTS)
    if k1 == 10:
        return None
    k2 = control(nine + str(k1), K2_WEIGHTS)
    if k2 == 10:
        return None
    return f"{nine}{k1}{k2}"


def fnr(ddmmyy: str, individuals: range) -> str:
    """First number with valid control digits for this date among ``individuals``."""
    for individual in individuals:
        number = with_controls(f"{ddmmyy}{individual:03d}")
        if number is not None:
            return number
    raise AssertionError("no individual number in range gives valid control digits")


def duf(year: int, serial: int) -> str:
    ten = f"{year:04d}{serial:06d}"
    return ten + f"{sum(int(d) * w for d, w in zip(ten, DUF_WEIGHTS, strict=True)) % 11:02d}"


def person(born: date, nth: int = 0) -> str:
    """The ``nth`` valid synthetic (Tenor, month + 80) number for ``born``: never a real person's."""
    band = range(0, 500) if born.year < 2000 else range(500, 1000)
    stem = f"{born.day:02d}{born.month + 80:02d}{born.year % 100:02d}"
    found = (n for n in (with_controls(f"{stem}{i:03d}") for i in band) if n is not None)
    for _ in range(nth):
        next(found)
    return next(found)
