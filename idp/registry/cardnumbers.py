"""Card numbers as patrons type them, and the canonical form the register stores.

Every number goes through the same generic steps (case, whitespace, hyphens). National numbers
(``N`` + 9 digits) are then fixed-width; a local number is further shaped by its library's own
rules, which are *data*: an ordered list of ``{"match": regex, "replace": template}`` applied
with ``re.sub``. BiblioMo's rules, for example, are three such entries (see ``BIBLIOMO_RULES``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from idp.errors import InvalidCardNumber, ValidationError

MAX_INPUT = 64
MAX_CANONICAL = 32
NATIONAL_DIGITS = 9
_SEPARATORS = re.compile(r"[\s\-]+")
_ALLOWED = re.compile(r"[A-Z0-9]+")
_NATIONAL = re.compile(r"N0*(\d{1,9})")
_MAX_RULES = 20
_MAX_PATTERN = 200

# BiblioMo (Modena): no leading zeros, no zeros between letters and digits, but U keeps one.
BIBLIOMO_RULES: list[dict[str, str]] = [
    {"match": r"^0+(?=\d)", "replace": ""},
    {"match": r"^(?!U)([A-Z]+)0+(?=\d)", "replace": r"\1"},
    {"match": r"^U0*(?=\d)", "replace": "U0"},
]


def generic(raw: str) -> str:
    """Upper-case, drop spaces and hyphens; refuse anything that cannot be a card number."""
    if not isinstance(raw, str) or len(raw) > MAX_INPUT:
        raise InvalidCardNumber(f"A card number has at most {MAX_CANONICAL} letters and digits.")
    text = _SEPARATORS.sub("", raw).upper()
    if not text:
        raise InvalidCardNumber("The card number is empty.")
    if not _ALLOWED.fullmatch(text) or len(text) > MAX_CANONICAL:
        raise InvalidCardNumber(f"A card number has only letters and digits, at most {MAX_CANONICAL} of them.")
    return text


def national_form(text: str) -> str | None:
    """``N`` + 9 digits, whatever number of leading zeros was typed; None if not national."""
    m = _NATIONAL.fullmatch(text)
    return "N" + m.group(1).zfill(NATIONAL_DIGITS) if m else None


def national_number(n: int) -> str:
    return "N" + str(n).zfill(NATIONAL_DIGITS)


def national_value(number: str) -> int | None:
    """The integer of a canonical national number, for comparing with reserved series."""
    return int(number[1:]) if national_form(number) == number else None


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[tuple[re.Pattern[str], str], ...]

    @classmethod
    def from_data(cls, data: Sequence[dict[str, Any]] | None) -> RuleSet:
        data = data or []
        if not isinstance(data, list) or len(data) > _MAX_RULES:
            raise ValidationError(f"Card rules are a list of at most {_MAX_RULES} {{match, replace}} entries.")
        compiled = []
        for i, rule in enumerate(data, 1):
            if not isinstance(rule, dict) or set(rule) != {"match", "replace"}:
                raise ValidationError(f"Card rule {i} must have exactly the keys 'match' and 'replace'.")
            match, replace = rule["match"], rule["replace"]
            if not isinstance(match, str) or not isinstance(replace, str) or len(match) > _MAX_PATTERN:
                raise ValidationError(f"Card rule {i}: 'match' and 'replace' are strings (pattern at most "
                                      f"{_MAX_PATTERN} characters).")
            try:
                pattern = re.compile(match)
                pattern.sub(replace, "A0")  # a bad group reference only shows when substituting
            except (re.error, IndexError) as exc:
                raise ValidationError(f"Card rule {i} is not a valid regular expression: {exc}") from None
            compiled.append((pattern, replace))
        return cls(tuple(compiled))

    def apply(self, text: str) -> str:
        for pattern, replace in self.rules:
            text = pattern.sub(replace, text)
        return text


def canonical(raw: str, rules: RuleSet | None = None) -> str:
    """The stored form of a number being issued: national numbers fixed-width, local ones by their rules."""
    text = generic(raw)
    national = national_form(text)
    if national is not None:
        return national
    shaped = rules.apply(text) if rules else text
    if not shaped or not _ALLOWED.fullmatch(shaped) or len(shaped) > MAX_CANONICAL:
        raise InvalidCardNumber("This card number does not fit the library's card-number format.")
    return shaped


def lookup_candidates(raw: str, rule_sets: Iterable[RuleSet]) -> list[str]:
    """Every stored form a typed number could stand for, the plain generic form first.

    A login does not know which library printed the card, so each distinct rule set in use
    offers its reading; the caller resolves several hits in favour of the generic form.
    """
    text = generic(raw)
    national = national_form(text)
    if national is not None:
        return [national]
    out = [text]
    for rules in rule_sets:
        shaped = rules.apply(text)
        if shaped and shaped not in out and _ALLOWED.fullmatch(shaped) and len(shaped) <= MAX_CANONICAL:
            out.append(shaped)
    return out
