"""Consents: which claims a patron agreed that a service may receive, per patron and service.

Protocol-neutral (an OIDC relying party and a SAML SP are both ``relying_party`` rows, known by
their client id) and register data: a consent survives restarts and Redis flushes and goes with the
patron. Giving one is an upsert that widens what is stored under a row lock, so two consents
given at once (two tabs, two services' pages) both end up stored, never one over the other.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from collections.abc import Iterable, Iterator, Sequence
from typing import Protocol

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from idp.registry.context import Registry
from idp.registry.models import Consent, Patron, RelyingParty


def consents_of(reg: Registry, patron_id: int) -> dict[str, list[str]]:
    """The patron's consents: client id -> the claims agreed to (sorted)."""
    rows = reg.session.execute(
        select(RelyingParty.client_id, Consent.claims).join(RelyingParty, RelyingParty.id == Consent.relying_party_id)
        .where(Consent.patron_id == patron_id))
    return {client_id: sorted(claims) for client_id, claims in rows}


def agreed(reg: Registry, patron_id: int, client_id: str) -> set[str]:
    """The claims the patron agreed that ``client_id`` may receive (empty if none)."""
    found = reg.session.scalar(
        select(Consent.claims).join(RelyingParty, RelyingParty.id == Consent.relying_party_id)
        .where(Consent.patron_id == patron_id, RelyingParty.client_id == client_id))
    return set(found or ())


def has_consent(reg: Registry, patron_id: int, client_id: str, claims: Iterable[str]) -> bool:
    """Whether the patron agreed to every one of ``claims`` for ``client_id``."""
    return set(claims) <= agreed(reg, patron_id, client_id)


def give_consent(reg: Registry, patron_id: int, client_id: str, claims: Sequence[str]) -> None:
    """Add ``claims`` to what the patron agreed ``client_id`` may receive (kept, never narrowed).

    The row is created if missing (INSERT .. ON CONFLICT DO NOTHING, so a concurrent creator is no
    error), then locked (FOR UPDATE) while the union is written: a consent given at the same moment
    waits for this one and widens what it wrote, instead of overwriting it."""
    rp = reg.session.execute(select(RelyingParty.id, RelyingParty.protocol)
                             .where(RelyingParty.client_id == client_id)).one_or_none()
    if rp is None:
        raise LookupError("no such service")
    if reg.session.get(Patron, patron_id) is None:  # deleted while the consent page was open
        raise LookupError("no such patron")
    now = reg.now()
    dialect = reg.session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    reg.session.execute(insert(Consent).values(
        patron_id=patron_id, relying_party_id=rp.id, protocol=rp.protocol, claims=[], given_at=now, updated_at=now,
    ).on_conflict_do_nothing(index_elements=["patron_id", "relying_party_id"]))
    row = reg.session.scalars(select(Consent).where(Consent.patron_id == patron_id, Consent.relying_party_id == rp.id)
                              .with_for_update().execution_options(populate_existing=True)).one()
    wanted = sorted(set(row.claims) | set(claims))
    if wanted != sorted(row.claims):
        row.claims = wanted
        row.updated_at = now
    reg.session.flush()


def withdraw_consent(reg: Registry, patron_id: int, client_id: str) -> bool:
    """Forget the patron's consent to ``client_id``; True if there was one."""
    rp_id = reg.session.scalar(select(RelyingParty.id).where(RelyingParty.client_id == client_id))
    if rp_id is None:
        return False
    gone = reg.session.execute(delete(Consent).where(Consent.patron_id == patron_id,
                                                     Consent.relying_party_id == rp_id))
    return bool(getattr(gone, "rowcount", 0))


# -- the one-time carry-over from the state store (`idp db upgrade`) ------------------------------

OLD_KEY = "consent:"  # before 0015: one JSON document {client_id: [claims]} per patron, "consent:<patron id>"


class OldConsents(Protocol):
    """What the carry-over reads of the state store (idp.state), without importing it."""

    def keys_starting(self, start: str) -> Iterator[str]: ...
    def get(self, key: str) -> bytes | None: ...


@dataclass(frozen=True)
class CarriedOver:
    consents: int  # consents written as rows
    keys: list[str]  # the old keys read: the caller deletes them once the rows are committed


def carry_over_state_consents(reg: Registry, store: OldConsents) -> CarriedOver:
    """Write the consents the state store still holds as rows. A patron or service that no longer
    exists is skipped (its key is still reported, to be deleted); once the caller deletes the keys,
    running it again finds nothing left to carry."""
    carried = 0
    keys = list(store.keys_starting(OLD_KEY))
    for key in keys:
        raw = store.get(key)
        patron_id = key.removeprefix(OLD_KEY)
        if raw is None or not patron_id.isdigit() or reg.session.get(Patron, int(patron_id)) is None:
            continue
        for client_id, claims in json.loads(raw).items():
            try:
                give_consent(reg, int(patron_id), client_id, list(claims))
            except LookupError:
                continue
            carried += 1
    return CarriedOver(consents=carried, keys=keys)
