"""Calendar rules of the register. Ages and "today" are reckoned in Norway's time zone."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import TypeVar
from zoneinfo import ZoneInfo

OSLO = ZoneInfo("Europe/Oslo")
_Day = TypeVar("_Day", date, datetime)


def utcnow() -> datetime:
    return datetime.now(UTC)


def oslo_date(moment: datetime) -> date:
    return moment.astimezone(OSLO).date()


def age_on(birth_date: date, today: date) -> int:
    had_birthday = (today.month, today.day) >= (birth_date.month, birth_date.day)
    return today.year - birth_date.year - (0 if had_birthday else 1)


def years_before(moment: _Day, years: int) -> _Day:
    """The same day (and time) ``years`` earlier; 29 February falls back to the 28th."""
    try:
        return moment.replace(year=moment.year - years)
    except ValueError:
        return moment.replace(year=moment.year - years, day=28)
