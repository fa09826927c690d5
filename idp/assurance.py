"""Authentication assurance levels, lowest first (DESIGN.md: claims and assurance vocabulary).

A relying party states its minimum; a request above what the session holds triggers step-up.
"""

from __future__ import annotations

from idp.errors import ValidationError

IDPORTEN_SUBSTANTIAL = "idporten-loa-substantial"
IDPORTEN_HIGH = "idporten-loa-high"  # the top level: only ID-porten (idp/auth/idporten.py) reaches it
LEVELS: tuple[str, ...] = ("pin", "password", "mfa", IDPORTEN_SUBSTANTIAL, IDPORTEN_HIGH)
# Web logins never rest on a PIN alone: that level exists for kiosks and open-library doors.
WEB_MINIMUM = "password"


def rank(level: str) -> int:
    try:
        return LEVELS.index(level)
    except ValueError:
        raise ValidationError(f"Unknown assurance level; use one of: {', '.join(LEVELS)}.") from None


def satisfies(held: str, required: str) -> bool:
    return rank(held) >= rank(required)


def required_level(rp_minimum: str, asked: list[str] | None) -> str:
    """The relying party's minimum holds whatever it asks; a known, higher request (OIDC acr_values,
    SAML RequestedAuthnContext) raises it."""
    needed = rank(rp_minimum) if rp_minimum in LEVELS else rank(WEB_MINIMUM)
    needed = max(needed, rank(WEB_MINIMUM))
    known = [rank(v) for v in (asked or []) if v in LEVELS]
    if known:
        needed = max(needed, min(known))
    return LEVELS[needed]
