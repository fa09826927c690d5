"""The patron-visible record of what each partner received: claim names and time, never values.

Separate from the audit trail: it belongs to the patron (shown on their account page) and is
deleted with them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, select

from idp.registry.context import Registry
from idp.registry.models import ClaimRelease, RelyingParty

PROTOCOLS = ("oidc", "saml", "api")  # as the claim_release table's check constraint allows
_INSERT = insert(ClaimRelease.__table__)


@dataclass(frozen=True)
class ReleaseEntry:
    relying_party: str  # the partner's display name
    claims: tuple[str, ...]
    released_at: datetime


def record_release(reg: Registry, patron_id: int, relying_party: RelyingParty, names: Sequence[str], *,
                   protocol: str) -> None:
    # A plain INSERT, not an ORM flush: it runs on every login and every verify call.
    reg.session.execute(_INSERT, {"patron_id": patron_id, "relying_party_id": relying_party.id, "claims": list(names),
                                  "protocol": protocol, "released_at": reg.now()})


def releases_for(reg: Registry, patron_id: int, *, limit: int | None = None) -> list[ReleaseEntry]:
    """What this patron shared with whom, newest first."""
    rows = reg.session.execute(
        select(RelyingParty.name, ClaimRelease.claims, ClaimRelease.released_at)
        .join(RelyingParty, RelyingParty.id == ClaimRelease.relying_party_id)
        .where(ClaimRelease.patron_id == patron_id)
        .order_by(ClaimRelease.released_at.desc(), ClaimRelease.id.desc()).limit(limit))
    return [ReleaseEntry(name, tuple(claims), at) for name, claims, at in rows]
