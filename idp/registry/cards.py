"""Issuing, finding, replacing and merging cards."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, TypeVarTuple

from sqlalchemy import Row, Select, and_, bindparam, select, update
from sqlalchemy.orm import joinedload

from idp.errors import CardOutsideSeries, Conflict, InvalidCardNumber, NotAllowed, NotFound, ValidationError
from idp.registry.cardnumbers import (RuleSet, canonical, generic, lookup_candidates, national_form, national_number,
                                      national_value)
from idp.registry import changes
from idp.registry.context import Registry
from idp.registry.libraries import describe_all_series
from idp.registry.models import (Card, CardSeries, Credential, Guardianship, Library, LoanBan, Membership, Patron,
                                 UpstreamIdentity)
from idp.registry.national_id import IdKind

KINDS = ("digital", "printed", "local")


def issue_card(reg: Registry, patron: Patron, library: Library, *, kind: str, number: str | None = None) -> Card:
    """Give ``patron`` a new card from ``library``.

    A printed national card replaces the patron's digital one (same account, new number); a
    local card belongs to a local account of that library.
    """
    if kind not in KINDS:
        raise ValidationError("A card is 'digital', 'printed' or 'local'.")
    if kind == "local":
        if patron.local_library_id != library.id:
            raise NotAllowed(f"A local card of {library.isil} belongs to a local account of {library.isil}; "
                             "a national account gets national cards.")
        if number is None:
            raise ValidationError("A local card needs its printed number.")
        canonical_number = canonical(number, RuleSet.from_data(library.card_rules))
        if national_form(canonical_number) is not None:
            raise InvalidCardNumber("N followed by digits is a national card number; a local card has the "
                                    "library's own format.")
    else:
        _check_national_account(patron)
        if kind == "digital":
            canonical_number = _allocate_digital(reg, library)
        else:
            if number is None:
                raise ValidationError("A printed card needs the number printed on it.")
            canonical_number = canonical(number)
            _check_in_series(library, canonical_number)
    if reg.session.scalar(select(Card.id).where(Card.number == canonical_number)) is not None:
        raise Conflict(f"Card number {canonical_number} has already been issued.")
    replaced = _active(patron, "digital") if kind == "printed" else []
    for old in replaced:
        _retire(reg, old, "replaced_by_printed")
    card = Card(number=canonical_number, kind=kind, library_id=library.id, status="active", issued_at=reg.now())
    patron.cards.append(card)
    reg.session.flush()
    reg.audit("card.issue", patron_id=patron.id, library_id=library.id, card_id=card.id, kind=kind)
    if replaced:
        changes.record_for_members(reg, patron, "card_replaced")
    return card


def _check_national_account(patron: Patron) -> None:
    if patron.local_library_id is not None:
        raise NotAllowed("This is a local account; merge its card into a national account instead.")
    if patron.id_kind == IdKind.DUF:
        raise NotAllowed("A DUF number is not a national identity number: this person can only get a local card.")


def _check_in_series(library: Library, number: str) -> None:
    value = national_value(number)
    if value is None:
        raise InvalidCardNumber("A national card number is N followed by 9 digits.")
    if not any(s.usage == "printed" and s.first_number <= value <= s.last_number for s in library.series):
        raise CardOutsideSeries(f"{number} is outside the card-number series of {library.isil} ({library.name}): "
                                f"{describe_all_series(library, 'printed')}. Reserve a series before printing cards.")


def _allocate_digital(reg: Registry, library: Library) -> str:
    return national_number(allocate_digital_numbers(reg, library, 1)[0])


def allocate_digital_numbers(reg: Registry, library: Library, count: int) -> list[int]:
    """``count`` numbers from the library's digital series, lowest series first.

    The series rows are locked (PostgreSQL; SQLite has one writer anyway) and re-read under the
    lock, since another transaction may have advanced one this session loaded earlier; each is
    advanced once however many numbers it gives.
    """
    free = list(reg.session.scalars(
        select(CardSeries)
        .where(CardSeries.library_id == library.id, CardSeries.usage == "digital",
               CardSeries.next_number <= CardSeries.last_number)
        .order_by(CardSeries.first_number).with_for_update()
        .execution_options(populate_existing=True)))
    available = sum(s.last_number - s.next_number + 1 for s in free)
    if available < count:
        have = "no free number" if available == 0 else f"only {available:,} free numbers ({count:,} needed)"
        raise CardOutsideSeries(f"{library.isil} ({library.name}) has {have} in a series for digital cards "
                                f"(series: {describe_all_series(library)}). Reserve one with: "
                                f"idp series reserve {library.isil} --count N --digital")
    numbers: list[int] = []
    for series in free:
        take = min(count - len(numbers), series.last_number - series.next_number + 1)
        if take <= 0:
            break
        numbers.extend(range(series.next_number, series.next_number + take))
        series.next_number += take
    reg.session.flush()
    return numbers


def _active(patron: Patron, kind: str | None = None) -> list[Card]:
    return [c for c in patron.cards if c.status == "active" and (kind is None or c.kind == kind)]


def _retire(reg: Registry, card: Card, reason: str) -> None:
    card.status, card.retired_at, card.retired_reason = "retired", reg.now(), reason
    reg.audit("card.retire", patron_id=card.patron_id, library_id=card.library_id, card_id=card.id, reason=reason)


@lru_cache(maxsize=64)
def _rules(frozen: str) -> RuleSet:
    return RuleSet.from_data(json.loads(frozen))


def _rule_sets(reg: Registry) -> list[RuleSet]:
    seen = {json.dumps(r, sort_keys=True) for r in reg.session.scalars(select(Library.card_rules)) if r}
    return [_rules(s) for s in sorted(seen)]


@dataclass(frozen=True)
class SecretOnFile:
    """A card's patron and one of their secrets, as a login or a verify call needs them: plain
    columns from one query, no ORM objects to build for a request that mostly just hashes."""

    patron_id: int
    patron_status: str
    kind: str
    secret_hash: str | None  # None: the patron has no secret of this kind
    must_change: bool
    last_activity_at: datetime
    inactivity_warned_at: datetime | None

    def __repr__(self) -> str:
        return f"<SecretOnFile patron={self.patron_id} {self.kind}>"  # never the hash


# Built once: these run on every login and every verify call, and building a statement costs
# more than running it. The typed number's possible readings arrive as the expanding "numbers".
_ACTIVE_READING = and_(Card.number.in_(bindparam("numbers", expanding=True)), Card.status == "active")
_CARD = select(Card).where(_ACTIVE_READING)
_CARD_WITH_PATRON = select(Card).options(joinedload(Card.patron)).where(_ACTIVE_READING)
_SECRET_ON_FILE = (select(Card.number, Patron.id, Patron.status, Patron.last_activity_at,
                          Patron.inactivity_warned_at, Credential.hash, Credential.must_change)
                   .join(Patron, Patron.id == Card.patron_id)
                   .outerjoin(Credential, and_(Credential.patron_id == Card.patron_id,
                                               Credential.kind == bindparam("kind")))
                   .where(_ACTIVE_READING))


def find_card(reg: Registry, typed: str, *, with_patron: bool = False) -> Card | None:
    """The active card a typed number stands for, or None (also when the reading is ambiguous).

    ``with_patron`` loads the card's patron in the same query.
    """
    found = _one_reading(reg, typed, _CARD_WITH_PATRON if with_patron else _CARD, lambda row: row[0].number)
    return found[0] if found is not None else None


def find_secret_on_file(reg: Registry, typed: str, kind: str) -> SecretOnFile | None:
    """The patron behind an active card and their secret of ``kind``, in one query; None for an
    unknown or unreadable number. Raises nothing for bad input: a login fails the same way."""
    try:
        row = _one_reading(reg, typed, _SECRET_ON_FILE, lambda row: row[0], kind=kind)
    except InvalidCardNumber:
        return None
    if row is None:
        return None
    _, patron_id, status, last_activity, warned, secret_hash, must_change = row
    return SecretOnFile(patron_id, status, kind, secret_hash, bool(must_change), last_activity, warned)


_Columns = TypeVarTuple("_Columns")


def _one_reading(reg: Registry, typed: str, query: Select[*_Columns],
                 number_of: Callable[[Row[*_Columns]], str], **params: Any) -> Row[*_Columns] | None:
    # A national number reads the same under every library's rules: skip loading them.
    candidates = lookup_candidates(typed, [] if national_form(generic(typed)) else _rule_sets(reg))
    rows = list(reg.session.execute(query, {"numbers": candidates, **params}))
    if len(rows) <= 1:
        return rows[0] if rows else None
    exact = [row for row in rows if number_of(row) == candidates[0]]
    return exact[0] if exact else None


def require_card(reg: Registry, typed: str) -> Card:
    card = find_card(reg, typed)
    if card is None or card.patron is None:
        raise NotFound("No active card with that number.")
    return card


def merge_local_card(reg: Registry, local_typed: str, national_typed: str) -> Patron:
    """Attach a local account to the person's national account; the local number stops working."""
    local = require_card(reg, local_typed)
    national = require_card(reg, national_typed)
    assert national.patron is not None  # noqa: S101 - require_card answers only cards with a patron
    if national.kind == "local" or national.patron.local_library_id is not None:
        if local.kind != "local":
            raise ValidationError("The first card must be a local card.")
        raise ValidationError("The second card must be a national card.")
    return merge_into_account(reg, local, national.patron)


def merge_local_card_of(reg: Registry, library: Library, local_typed: str, target: Patron) -> Patron:
    """A library merges one of its own local cards into the national account ``target``."""
    local = require_card(reg, local_typed)
    if local.kind == "local" and local.library_id != library.id:
        raise NotAllowed(f"This local card belongs to another library; only that library can merge it, "
                         f"not {library.isil}.")
    if target.local_library_id is not None:
        raise ValidationError("A local card can only be merged into a national account.")
    return merge_into_account(reg, local, target)


def merge_into_account(reg: Registry, local: Card, target: Patron) -> Patron:
    """The local account behind the card ``local`` joins the national account ``target``."""
    source = local.patron
    assert source is not None  # noqa: S101 - require_card answers only cards with a patron
    if local.kind != "local" or source.local_library_id is None:
        raise ValidationError("The first card must be a local card.")
    if source.national_id_hash is not None and source.national_id_hash != target.national_id_hash:
        raise Conflict("These cards belong to different people (their national identity numbers differ).")
    moved_to = [m.library_id for m in source.memberships]
    for membership in list(source.memberships):
        _move_membership(membership, target)
    for ban in source.loan_bans:  # a library's ban follows the person into the national account
        if not any(b.library_id == ban.library_id for b in target.loan_bans):
            target.loan_bans.append(LoanBan(library_id=ban.library_id, set_at=ban.set_at, reason=ban.reason))
    reg.session.execute(update(Guardianship).where(Guardianship.guardian_id == source.id)
                        .values(guardian_id=target.id))
    reg.session.execute(update(Guardianship).where(Guardianship.child_id == source.id)
                        .values(child_id=target.id))
    for card in _active(source):
        _retire(reg, card, "merged")
        card.patron = target  # the retired number stays linked to the account it was merged into
    _move_upstream_links(reg, source, target)
    reg.session.flush()
    reg.audit("patron.merge", patron_id=target.id, library_id=source.local_library_id, merged_patron_id=source.id)
    # The local account is gone (its library erases it) and the national one now holds its card.
    changes.record(reg, source.id, moved_to, "deleted")
    changes.record_for_members(reg, target, "card_replaced")
    reg.session.delete(source)
    reg.session.flush()
    return target


def _move_upstream_links(reg: Registry, source: Patron, target: Patron) -> None:
    """Federation accounts linked to the local account follow it, unless the national account
    already has one of that federation (then the local one's link goes with the local account)."""
    for identity in list(reg.session.scalars(select(UpstreamIdentity).where(UpstreamIdentity.patron_id == source.id))):
        taken = reg.session.scalar(select(UpstreamIdentity.id).where(
            UpstreamIdentity.federation_id == identity.federation_id, UpstreamIdentity.patron_id == target.id))
        if taken is None:
            identity.patron_id = target.id


def _move_membership(membership: Membership, target: Patron) -> None:
    existing = next((m for m in target.memberships if m.library_id == membership.library_id), None)
    if existing is None:
        target.memberships.append(Membership(library_id=membership.library_id, added_at=membership.added_at,
                                             rules_accepted_at=membership.rules_accepted_at))
    elif existing.rules_accepted_at is None:
        existing.rules_accepted_at = membership.rules_accepted_at
    membership.patron.memberships.remove(membership)  # delete-orphan removes the old row


__all__ = ["KINDS", "SecretOnFile", "find_card", "find_secret_on_file", "issue_card", "merge_into_account",
           "merge_local_card", "merge_local_card_of",
           "require_card"]
