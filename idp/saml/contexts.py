"""Authentication contexts: our assurance levels as SAML AuthnContextClassRefs, and back.

``password`` is SAML's PasswordProtectedTransport and ``mfa`` the REFEDS MFA profile; the
ID-porten levels and ``pin`` have URNs of our own. A request naming only contexts we do not know
cannot be satisfied (NoAuthnContext); the relying party's minimum holds whatever it asks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType

from saml2.saml import AUTHN_PASSWORD, AUTHN_PASSWORD_PROTECTED

from idp.assurance import IDPORTEN_HIGH, IDPORTEN_SUBSTANTIAL, LEVELS, rank

CLASS_REFS: Mapping[str, str] = MappingProxyType({
    "pin": "urn:x-patron-idp:ac:pin",
    "password": AUTHN_PASSWORD_PROTECTED,
    "mfa": "https://refeds.org/profile/mfa",
    IDPORTEN_SUBSTANTIAL: f"urn:x-patron-idp:ac:{IDPORTEN_SUBSTANTIAL}",
    IDPORTEN_HIGH: f"urn:x-patron-idp:ac:{IDPORTEN_HIGH}",
})
_LEVEL_OF = MappingProxyType({**{ref: level for level, ref in CLASS_REFS.items()}, AUTHN_PASSWORD: "password"})


def class_ref(level: str) -> str:
    return CLASS_REFS[level]


def levels_asked(class_refs: Sequence[str], comparison: str | None) -> list[str] | None:
    """The levels a RequestedAuthnContext asks for, or None when it names nothing we know.

    ``exact`` and ``minimum`` ask for the levels named; ``better`` for the next one up;
    ``maximum`` sets a ceiling, which the relying party's minimum still overrides.
    """
    known = [_LEVEL_OF[ref] for ref in class_refs if ref in _LEVEL_OF]
    if not known:
        return None
    if comparison == "better":
        above = [LEVELS[rank(level) + 1] for level in known if rank(level) + 1 < len(LEVELS)]
        return above or None
    if comparison == "maximum":
        return []
    return known
