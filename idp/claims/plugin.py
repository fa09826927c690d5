"""What a claim plugin is: the names it answers for, the facts it needs, how it computes a value.

A plugin is a ``ClaimPlugin`` object exposed under the entry-point group ``idp.claims``::

    [project.entry-points."idp.claims"]
    reader_club = "my_package.claims:READER_CLUB"

It answers for fixed names, or for a family of names (``age_over_NN``) given as a prefix and a
test of the rest. ``compute`` gets only the facts the plugin declared and returns the value, or
None to leave the claim out (never a guess). Values are yes/no, text or a list of texts: no
numbers or dates, so an age or a birth date cannot slip out as a "value".
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from idp.claims.facts import Facts, check_fields
from idp.claims.wording import Wording
from idp.errors import ConfigError

Value = bool | str | list[str]
CLAIM_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
# What never leaves the IdP, under any name a plugin might choose for it.
NEVER_RELEASED = frozenset({"birthdate", "birth_date", "age", "national_id", "nin", "fnr", "address",
                            "street", "postal_code", "city", "phone", "phone_number"})


@dataclass(frozen=True)
class NameFamily:
    """Names ``prefix + suffix`` for every suffix ``accepts`` takes, e.g. age_over_ + two digits.

    Two families can share a name only if one prefix starts the other, which is how overlaps
    are found at start-up without enumerating names.
    """

    prefix: str
    accepts: Callable[[str], bool]
    label: str  # how people write the family, e.g. "age_over_NN"

    def matches(self, name: str) -> bool:
        return name.startswith(self.prefix) and bool(self.accepts(name[len(self.prefix):]))


@dataclass(frozen=True)
class RequestContext:
    """What a plugin may know about the request besides the patron's facts."""

    client_id: str
    relying_party: str  # its display name
    protocol: str
    today: date  # in Europe/Oslo, from the register's clock


@dataclass(frozen=True, eq=False)  # compared by identity: one object, one provider
class ClaimPlugin:
    needs: frozenset[str]
    compute: Callable[[str, Facts, RequestContext], Value | None]
    wording: Wording | Callable[[str], Wording]
    names: tuple[str, ...] = ()
    family: NameFamily | None = None
    label: str = field(default="", compare=False)  # for messages; defaults to the names
    # Optional: why a value refuses the patron something, as a short code (no personal data) that the
    # release writes to the audit trail, e.g. valid_patron's "no_compliant_library"; None: no reason.
    reason: Callable[[str, Facts, RequestContext], str | None] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", tuple(_as_list(self.names, "names")))
        if not self.names and self.family is None:
            raise ConfigError("A claim plugin needs at least one name or a family of names.")
        for name in (*self.names, *([self.family.prefix] if self.family else [])):
            if not isinstance(name, str) or not CLAIM_NAME.fullmatch(name):
                raise ConfigError(f"Claim name {name!r} is not lower-case letters, digits and _ "
                                  "(starting with a letter, at most 64 characters).")
        if not self.label:
            object.__setattr__(self, "label", self.family.label if self.family else ", ".join(self.names))
        object.__setattr__(self, "needs", check_fields(_as_list(self.needs, "needs"), repr(self.label)))
        forbidden = sorted(n for n in NEVER_RELEASED if self.provides(n))
        if forbidden:
            raise ConfigError(f"Claim plugin {self.label!r} would release {', '.join(forbidden)}: "
                              "birth date, age, national id, address and phone never leave the IdP.")
        if (not callable(self.compute) or not (isinstance(self.wording, Wording) or callable(self.wording))
                or (self.reason is not None and not callable(self.reason))):
            raise ConfigError(f"Claim plugin {self.label!r} needs a compute function and a wording.")

    def provides(self, name: str) -> bool:
        return name in self.names or (self.family is not None and self.family.matches(name))

    def describe(self, name: str) -> Wording:
        return self.wording if isinstance(self.wording, Wording) else self.wording(name)


def _as_list(items: Iterable[str] | str, what: str) -> list[str]:
    if isinstance(items, str):
        raise ConfigError(f"A claim plugin's {what} are a list of names, not one string ({items!r}).")
    return list(items)


def check_value(plugin: ClaimPlugin, name: str, value: Any) -> Value | None:
    """The value as released, or ConfigError for a type that could carry more than a claim should."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return list(value)
    raise ConfigError(f"Claim plugin {plugin.label!r} returned a {type(value).__name__} for {name!r}; "
                      "a claim is true/false, a text or a list of texts.")
