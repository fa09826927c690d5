"""Libraries (by ISIL) and the card-number series they reserve."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError

from idp.errors import Conflict, NotFound, SeriesOverlap, ValidationError
from idp.registry.cardnumbers import NATIONAL_DIGITS, RuleSet, national_number
from idp.registry.context import Registry
from idp.registry.models import CardSeries, LendingRules, Library

# ISO 15511: a prefix (country code or other agency), a hyphen, an identifier; 16 characters at most.
_ISIL = re.compile(r"[A-Z]{1,4}-[A-Za-z0-9:/\-]{1,11}")
MAX_SERIES = 10**NATIONAL_DIGITS - 1
MAX_SERIES_COUNT = 1_000_000
# What a library system may reserve in one call (issue 15): enough for years of cards, small enough that
# a typo or a runaway script cannot take a large part of the national range.
MAX_LIBRARY_SERIES_COUNT = 100_000
USAGES = ("printed", "digital")
_SERIES_LOCK = 0x5E_41E5  # any constant unique to this lock


def canonical_isil(isil: str) -> str:
    text = isil.strip() if isinstance(isil, str) else ""
    prefix, _, rest = text.partition("-")
    text = f"{prefix.upper()}-{rest}" if rest else text
    if len(text) > 16 or not _ISIL.fullmatch(text):
        raise ValidationError("An ISIL is a prefix, a hyphen and an identifier, 16 characters at most "
                              "(e.g. NO-2030000).")
    return text


def add_library(reg: Registry, isil: str, name: str, card_rules: list[dict[str, Any]] | None = None) -> Library:
    isil = canonical_isil(isil)
    name = (name or "").strip()
    if not name or len(name) > 200:
        raise ValidationError("A library needs a name of 1 to 200 characters.")
    RuleSet.from_data(card_rules)  # refuse bad rules now rather than at a patron's login
    if reg.session.scalar(select(Library.id).where(Library.isil == isil)) is not None:
        raise Conflict(f"A library with ISIL {isil} is already registered.")
    library = Library(isil=isil, name=name, card_rules=list(card_rules or []), created_at=reg.now())
    reg.session.add(library)
    reg.session.flush()
    reg.audit("library.add", library_id=library.id, isil=isil)
    return library


def get_library(reg: Registry, isil: str) -> Library:
    isil = canonical_isil(isil)
    library = reg.session.scalar(select(Library).where(Library.isil == isil))
    if library is None:
        raise NotFound(f"No library with ISIL {isil} is registered.")
    return library


def list_libraries(reg: Registry) -> list[Library]:
    return list(reg.session.scalars(select(Library).order_by(Library.isil)))


def libraries_issuing_digital_cards(reg: Registry) -> list[Library]:
    """Libraries that can hand out a digital card now (a digital series with a free number), by name:
    the home libraries a person registering themselves can choose from."""
    free = select(CardSeries.library_id).where(CardSeries.usage == "digital",
                                               CardSeries.next_number <= CardSeries.last_number)
    return list(reg.session.scalars(select(Library).where(Library.id.in_(free)).order_by(Library.name)))


def describe_series(series: CardSeries) -> str:
    return f"{national_number(series.first_number)}-{national_number(series.last_number)} ({series.usage})"


def describe_all_series(library: Library, usage: str | None = None) -> str:
    chosen = [s for s in library.series if usage is None or s.usage == usage]
    return ", ".join(describe_series(s) for s in chosen) or "none reserved"


def reserve_series(reg: Registry, isil: str, count: int, *, first: int | None = None,
                   usage: str = "printed", at_most: int = MAX_SERIES_COUNT) -> CardSeries:
    """Reserve ``count`` consecutive national numbers for a library, at most ``at_most`` of them
    (MAX_LIBRARY_SERIES_COUNT when the library's own system asks).

    With ``first`` the range is exactly that one, refused if it touches another reservation.
    Without it the next free range after every existing one is taken; a concurrent reservation
    that wins the race only costs a retry (the database constraint decides, not this code).
    """
    _serialise_reservations(reg)
    library = get_library(reg, isil)
    if usage not in USAGES:
        raise ValidationError("A series is reserved for 'printed' or 'digital' cards.")
    at_most = min(at_most, MAX_SERIES_COUNT)
    if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= at_most:
        raise ValidationError(f"A series holds 1 to {at_most:,} numbers.")
    if first is not None and (not isinstance(first, int) or first < 1):
        raise ValidationError("A series starts at N000000001 or later.")
    start = first if first is not None else _next_free(reg)
    last = start + count - 1
    if last > MAX_SERIES:
        raise SeriesOverlap(f"No room for {count:,} numbers there: national numbers end at "
                            f"{national_number(MAX_SERIES)}.")
    clash = _overlapping(reg, start, last)
    if clash is not None:
        raise SeriesOverlap(f"{national_number(start)}-{national_number(last)} overlaps "
                            f"{describe_series(clash)}, reserved by {clash.library.isil}.")
    series = CardSeries(library_id=library.id, first_number=start, last_number=last, usage=usage,
                        next_number=start, reserved_at=reg.now())
    try:
        with reg.session.begin_nested():
            reg.session.add(series)
            reg.session.flush()
    except IntegrityError:
        # Only a writer that bypassed the lock above can get here; the constraint still holds.
        raise SeriesOverlap(f"{national_number(start)}-{national_number(last)} overlaps a series reserved "
                            "at the same moment; try again.") from None
    reg.audit("series.reserve", library_id=library.id, first=start, last=last, usage=usage)
    return series


def _serialise_reservations(reg: Registry) -> None:
    """Reservations are rare: queue them, so "the next free range" is computed by one at a time.

    PostgreSQL: a transaction-scoped advisory lock. SQLite: writers are serialised already.
    The overlap constraint in the database remains the guarantee; this only spares retries.
    """
    if reg.session.get_bind().dialect.name == "postgresql":
        reg.session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SERIES_LOCK})


def _next_free(reg: Registry) -> int:
    top = reg.session.scalar(select(func.max(CardSeries.last_number)))
    return (top or 0) + 1


def _overlapping(reg: Registry, first: int, last: int) -> CardSeries | None:
    return reg.session.scalar(select(CardSeries).where(CardSeries.first_number <= last,
                                                       CardSeries.last_number >= first).limit(1))


def current_rules(reg: Registry, library: Library) -> LendingRules | None:
    """The library's newest lending rules, or None before any were recorded (idp.registry.agreements)."""
    return reg.session.scalar(select(LendingRules).where(LendingRules.library_id == library.id)
                              .order_by(LendingRules.version.desc()).limit(1))
