"""Authentication contexts: our assurance levels as SAML AuthnContextClassRefs, and back.

``password`` is SAML's PasswordProtectedTransport and ``mfa`` the REFEDS MFA profile; the
ID-porten levels and ``pin`` have URNs of our own (ID-porten's bare acr values are understood too).
A request naming only contexts we do not know cannot be satisfied (NoAuthnContext); the relying
party's minimum holds whatever it asks, and a request it cannot meet with that is NoAuthnContext,
never a lower login.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from saml2.saml import AUTHN_PASSWORD, AUTHN_PASSWORD_PROTECTED

from idp.assurance import IDPORTEN_HIGH, IDPORTEN_SUBSTANTIAL, LEVELS, rank, required_level

CLASS_REFS: Mapping[str, str] = MappingProxyType({
    "pin": "urn:x-patron-idp:ac:pin",
    "password": AUTHN_PASSWORD_PROTECTED,
    "mfa": "https://refeds.org/profile/mfa",
    IDPORTEN_SUBSTANTIAL: f"urn:x-patron-idp:ac:{IDPORTEN_SUBSTANTIAL}",
    IDPORTEN_HIGH: f"urn:x-patron-idp:ac:{IDPORTEN_HIGH}",
})
# ID-porten's own acr values name its levels too, so an SP that speaks ID-porten's vocabulary can ask for them.
_LEVEL_OF = MappingProxyType({**{ref: level for level, ref in CLASS_REFS.items()}, AUTHN_PASSWORD: "password",
                              IDPORTEN_SUBSTANTIAL: IDPORTEN_SUBSTANTIAL, IDPORTEN_HIGH: IDPORTEN_HIGH})


def class_ref(level: str) -> str:
    return CLASS_REFS[level]


def level_of(ref: str) -> str | None:
    return _LEVEL_OF.get(ref)


@dataclass(frozen=True)
class Demand:
    """What a RequestedAuthnContext (SAML core 3.3.2.2.1) demands, in our levels: ``floor``, the
    least that serves; ``stated``, the levels the assertion may name (empty: whatever the session
    holds). The comparison defaults to ``exact``."""

    floor: str
    stated: tuple[str, ...] = ()


def demand(class_refs: Sequence[str], comparison: str | None, minimum: str) -> Demand | None:
    """The demand of a request naming ``class_refs`` from an SP whose registered minimum is
    ``minimum`` (never below WEB_MINIMUM); None when nothing can satisfy both (NoAuthnContext):
    it names only contexts we do not know, or only levels below the SP's minimum (exact), or a
    ceiling below it (maximum), or nothing above the top (better). No refs: the minimum."""
    base = rank(required_level(minimum, None))  # the SP's minimum, never below a web login's
    if not class_refs:
        return Demand(LEVELS[base])
    known = sorted({rank(level) for ref in class_refs if (level := level_of(ref)) is not None})
    if not known:
        return None
    if comparison == "minimum":
        return Demand(LEVELS[max(base, known[0])])
    if comparison == "better":
        above = known[0] + 1
        return Demand(LEVELS[max(base, above)]) if above < len(LEVELS) else None
    if comparison == "maximum":
        ceiling = known[-1]
        return Demand(LEVELS[base], LEVELS[:ceiling + 1]) if base <= ceiling else None
    named = [r for r in known if r >= base]  # exact, the default
    return Demand(LEVELS[named[0]], tuple(LEVELS[r] for r in named)) if named else None


def stated_level(held: str, stated: Sequence[str]) -> str:
    """The level an assertion names for a session at ``held``: the highest allowed one it reaches
    (a session above an ``exact`` or ``maximum`` request is stated at the level asked: true, as
    each level includes those below)."""
    if not stated:
        return held
    return max((level for level in stated if rank(level) <= rank(held)), key=rank, default=held)


def answer_ref(level: str, asked_refs: Sequence[str]) -> str:
    """The AuthnContextClassRef for ``level``: the SP's own name for it when it asked by that name."""
    return next((ref for ref in asked_refs if level_of(ref) == level), class_ref(level))
