"""Small builders for register tests: a library with series, a patron with a card."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from typing import TYPE_CHECKING, Any, TypeVar

from idp.registry import libraries, patrons
from idp.registry.context import Registry
from idp.registry.models import Card, Patron
from tests.nin import person

if TYPE_CHECKING:
    from idp.services import Services

T = TypeVar("T")

ADULT_BORN = date(1985, 3, 12)


def library(reg: Registry, isil: str = "NO-2030000", name: str = "Oslo", *, digital: int = 100,
            printed: int = 100, rules: list[dict[str, str]] | None = None) -> None:
    libraries.add_library(reg, isil, name, rules)
    if printed:
        libraries.reserve_series(reg, isil, printed, usage="printed")
    if digital:
        libraries.reserve_series(reg, isil, digital, usage="digital")


def new_patron(born: date = ADULT_BORN, nth: int = 0, **fields: Any) -> patrons.NewPatron:
    base = patrons.NewPatron(name="Kari Nordmann", home_library="NO-2030000", national_id=person(born, nth),
                             email="kari@example.org", phone="+47 999 99 999")
    return replace(base, **fields)


def patron(reg: Registry, born: date = ADULT_BORN, nth: int = 0, **fields: Any) -> tuple[Patron, Card]:
    return patrons.register_patron(reg, new_patron(born, nth, **fields))


def detached(services: Services, model: type[T], key: object) -> T:
    """The row of ``model`` with primary key ``key``, read in a transaction of its own and detached,
    so a test can look at it after the transaction."""
    with services.registry("test") as reg:
        row = reg.session.get(model, key)
        assert row is not None, f"no {model.__name__} {key!r}"
        reg.session.expunge(row)
        return row
