"""The facts a claim plugin may read, and only those it declared.

The engine reads from the register just the columns the plugins about to run need, then hands
each plugin a ``Facts`` holding only its own declared fields: a plugin that declared ``status``
cannot read the birth date, even by mistake. National id, address and phone are no facts at
all, so no plugin can ever see them.

``libraries`` are the libraries whose lending rules the patron accepted (activated
memberships). A library can add a patron on its own; until the patron accepts, the register
shows that library only a minimum, and the home library must be an activated one too. So a
membership the patron has not confirmed is not theirs to tell partners about.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import lru_cache
from types import MappingProxyType
from typing import Any

from sqlalchemy import Select, bindparam, exists, select

from idp.errors import ConfigError
from idp.registry.context import Registry
from idp.registry.loan_bans import banned_clause
from idp.registry.models import Card, Library, Membership, Patron

# Every fact a plugin may declare, with the type it holds. All are None for a patron who is
# not (or no longer) in the register.
FIELDS: Mapping[str, str] = MappingProxyType({
    "status": "str: 'active' or 'blocked'",
    "card_active": "bool: the patron holds at least one active card",
    "birth_date": "date or None",
    "loan_ban": "bool: a library where the patron is a member has barred them from borrowing",
    "home_library": "str: ISIL of the home library",
    "libraries": "tuple[str, ...]: sorted ISILs of the libraries whose lending rules the patron accepted",
    "at_compliant_library": "bool: the patron is active (rules accepted) at a library that meets the national terms",
    "name": "str",
    "email": "str or None",
})


class UndeclaredFact(ConfigError):
    """A plugin read a fact it did not declare: a bug in that plugin, never the patron's doing."""

    code = "undeclared_fact"


class Facts:
    """Read-only view of the declared facts; any other attribute raises ``UndeclaredFact``."""

    __slots__ = ("_owner", "_values")

    def __init__(self, owner: str, values: Mapping[str, Any]) -> None:
        object.__setattr__(self, "_owner", owner)
        object.__setattr__(self, "_values", MappingProxyType(dict(values)))

    def __getattr__(self, name: str) -> Any:
        # Only called for names that are not slots; dunders stay ordinary misses so copy,
        # pickle and friends behave as for any object.
        if name.startswith("__"):
            raise AttributeError(name)
        values = object.__getattribute__(self, "_values")
        if name in values:
            return values[name]
        owner = object.__getattribute__(self, "_owner")
        declared = ", ".join(sorted(values)) or "nothing"
        if name in FIELDS:
            raise UndeclaredFact(f"Claim plugin {owner} read the fact {name!r} without declaring it "
                                 f"(it declared: {declared}); add {name!r} to its needs.")
        raise UndeclaredFact(f"Claim plugin {owner} read {name!r}, which is not a fact of the register "
                             f"(facts: {', '.join(FIELDS)}).")

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Facts are read-only")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("Facts are read-only")

    def __repr__(self) -> str:
        # Names only: the values are personal data and must not reach a log or a traceback.
        return f"<Facts for {self._owner}: {', '.join(sorted(self._values))}>"


def check_fields(fields: Iterable[str], owner: str) -> frozenset[str]:
    chosen = frozenset(fields)
    unknown = sorted(f for f in chosen if f not in FIELDS)
    if unknown:
        raise ConfigError(f"Claim plugin {owner} needs {', '.join(map(repr, unknown))}, which the register "
                          f"does not offer; facts are: {', '.join(FIELDS)}.")
    return chosen


def load_facts(reg: Registry, patron_id: int, fields: Iterable[str]) -> dict[str, Any] | None:
    """The requested facts of one patron, read in one patron query (plus one for ``libraries``);
    None when no such patron is in the register (never registered, or deleted).

    Only the columns behind ``fields`` are selected, so nothing else about the patron is even
    loaded into memory.
    """
    wanted = check_fields(fields, "engine")
    row = reg.session.execute(_patron_facts(wanted), {"patron_id": patron_id}).one_or_none()
    if row is None:
        return None
    facts = {field: value for field, value in row._mapping.items() if field in wanted}
    for flag in ("card_active", "at_compliant_library", "loan_ban"):
        if flag in facts:
            facts[flag] = bool(facts[flag])  # SQLite answers EXISTS with 0/1
    if "libraries" in wanted:
        facts["libraries"] = tuple(reg.session.scalars(_LIBRARIES, {"patron_id": patron_id}))
    return facts


_LIBRARIES = (select(Library.isil).join(Membership, Membership.library_id == Library.id)
              .where(Membership.patron_id == bindparam("patron_id"), Membership.rules_accepted_at.is_not(None))
              .order_by(Library.isil))


@lru_cache(maxsize=64)
def _patron_facts(wanted: frozenset[str]) -> Select[Any]:
    """The patron query for one set of facts, built once per set: every login and verify call
    reads facts, and building a statement costs more than running it."""
    columns: list[Any] = [Patron.id]
    for field in ("status", "birth_date", "name", "email"):
        if field in wanted:
            columns.append(getattr(Patron, field).label(field))
    if "loan_ban" in wanted:
        columns.append(banned_clause().label("loan_ban"))
    if "card_active" in wanted:
        columns.append(exists().where(Card.patron_id == Patron.id, Card.status == "active").label("card_active"))
    if "at_compliant_library" in wanted:
        columns.append(exists().where(Membership.patron_id == Patron.id, Membership.rules_accepted_at.is_not(None),
                                      Membership.library_id == Library.id, Library.compliant.is_(True))
                       .label("at_compliant_library"))
    if "home_library" in wanted:
        columns.append(select(Library.isil).where(Library.id == Patron.home_library_id)
                       .scalar_subquery().label("home_library"))
    return select(*columns).where(Patron.id == bindparam("patron_id"))
