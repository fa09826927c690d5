"""The OIDC authorization flow, between pyop and the pages: no Flask here.

Keeps what pyop forgets (acr/amr/auth_time and the released claims per code), makes codes
single-use under concurrency (a replayed code revokes what it issued), and records consent.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from idp.assurance import LEVELS, WEB_MINIMUM, rank
from idp.state import StateStore

CONSENT_TTL = 365 * 24 * 3600
GRANT_TTL = 31 * 24 * 3600
# The strongest level our own pages reach: password + TOTP (step-up, idp/web/stepup.py). A patron
# without TOTP who is asked for it is shown how to set it up, so mfa is always within reach.
HIGHEST_AVAILABLE = "mfa"


def required_level(rp_minimum: str, acr_values: list[str] | None) -> str:
    """The relying party's minimum holds whatever it asks; a known, higher request raises it."""
    needed = rank(rp_minimum) if rp_minimum in LEVELS else rank(WEB_MINIMUM)
    needed = max(needed, rank(WEB_MINIMUM))
    asked = [rank(v) for v in (acr_values or []) if v in LEVELS]
    if asked:
        needed = max(needed, min(asked))
    return LEVELS[needed]


# With ID-porten configured (idp/auth/idporten.py), its levels are within reach too.
IDPORTEN_HIGHEST = "idporten-loa-high"


def can_meet(level: str, *, idporten: bool = False) -> bool:
    return rank(level) <= rank(IDPORTEN_HIGHEST if idporten else HIGHEST_AVAILABLE)


@dataclass(frozen=True)
class CodeGrant:
    patron_id: int
    client_id: str
    acr: str
    amr: list[str]
    auth_time: int
    claims: list[str]
    # The released claims' values, computed when the code is issued: the token endpoint then
    # answers from the state store alone, and the id_token says what the patron consented to.
    values: dict[str, Any]


class Grants:
    def __init__(self, state: StateStore) -> None:
        self._state = state

    def remember(self, code: str, grant: CodeGrant, ttl: int) -> None:
        self._state.put(_grant_key(code), json.dumps(grant.__dict__).encode(), ttl)

    def claim(self, code: str, prefetch: Sequence[str] = ()) -> bool:
        """True for the first exchange of ``code`` only, even when two arrive at once. Inside a
        state batch, the code's grant and issued tokens and the keys in ``prefetch`` are read in
        the same round trip."""
        reads = [_grant_key(code), _issued_key(code), *prefetch]
        return self._state.incr(f"oidc:claimed:{code}", GRANT_TTL, prefetch=reads) == 1

    def grant(self, code: str) -> CodeGrant | None:
        raw = self._state.get(_grant_key(code))
        return CodeGrant(**json.loads(raw)) if raw else None

    def record_tokens(self, code: str, access_token: str | None, refresh_token: str | None) -> None:
        self._state.put(_issued_key(code), json.dumps([access_token, refresh_token]).encode(), GRANT_TTL)

    def issued_for(self, code: str) -> tuple[str | None, str | None]:
        raw = self._state.get(_issued_key(code))
        access, refresh = json.loads(raw) if raw else (None, None)
        return access, refresh

    # -- consent: per patron, one document, so the patron can list and revoke it ----------------
    def consents(self, patron_id: int) -> dict[str, list[str]]:
        raw = self._state.get(f"consent:{patron_id}")
        return json.loads(raw) if raw else {}

    def has_consent(self, patron_id: int, client_id: str, claims: list[str]) -> bool:
        return set(claims) <= set(self.consents(patron_id).get(client_id, []))

    def give_consent(self, patron_id: int, client_id: str, claims: list[str]) -> None:
        current = self.consents(patron_id)
        current[client_id] = sorted(set(current.get(client_id, [])) | set(claims))
        self._state.put(f"consent:{patron_id}", json.dumps(current).encode(), CONSENT_TTL)

    def revoke_consent(self, patron_id: int, client_id: str) -> None:
        current = self.consents(patron_id)
        if current.pop(client_id, None) is not None:
            self._state.put(f"consent:{patron_id}", json.dumps(current).encode(), CONSENT_TTL)


def _grant_key(code: str) -> str:
    return f"oidc:grant:{code}"


def _issued_key(code: str) -> str:
    return f"oidc:issued:{code}"


def describe(grant: CodeGrant) -> dict[str, Any]:
    return {"acr": grant.acr, "amr": grant.amr, "auth_time": grant.auth_time}
