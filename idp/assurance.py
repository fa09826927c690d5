"""Authentication assurance levels, lowest first (DESIGN.md: claims and assurance vocabulary).

A relying party states its minimum; a request above what the session holds triggers step-up.
"""

from __future__ import annotations

from idp.errors import ValidationError

LEVELS: tuple[str, ...] = ("pin", "password", "mfa", "idporten-loa-substantial", "idporten-loa-high")
# Web logins never rest on a PIN alone: that level exists for kiosks and open-library doors.
WEB_MINIMUM = "password"


def rank(level: str) -> int:
    try:
        return LEVELS.index(level)
    except ValueError:
        raise ValidationError(f"Unknown assurance level; use one of: {', '.join(LEVELS)}.") from None


def satisfies(held: str, required: str) -> bool:
    return rank(held) >= rank(required)
