"""Whether a relying party may log anyone in today (no Flask).

Here, below the claims layer, because the claim release applies it again (idp.claims.release)
as well as the partner functions (idp.relying_parties) and the protocol layers.
"""

from __future__ import annotations

from datetime import date

from idp.registry.models import RelyingParty

NO_DPA = "not yet approved: no data processing agreement"
DISABLED = "disabled"


def refusal_reason(rp: RelyingParty, today: date) -> str | None:
    """Why this partner may not log anyone in today, or None when it may.

    ``disabled`` wins over a missing agreement: it is the operator's deliberate, current decision.
    """
    if rp.disabled:
        return DISABLED
    if rp.dpa_signed is None or rp.dpa_signed > today:
        return NO_DPA
    return None
