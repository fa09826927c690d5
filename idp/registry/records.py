"""What a reader of the register gets back: plain data, built in one place.

A secret address is never stored (only its flag), so no view here can ever carry it; the
``address`` of such a patron is always None and ``address_secret`` says why.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date, datetime
from typing import Any

from idp.registry.loan_bans import is_banned
from idp.registry.models import Patron


def _plain(value: Any) -> Any:
    """dataclasses.asdict keeps tuples; callers serialise to JSON, which wants lists."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


@dataclass(frozen=True)
class CardView:
    number: str
    kind: str
    library: str


@dataclass(frozen=True)
class MembershipView:
    library: str
    rules_accepted: bool


@dataclass(frozen=True)
class LimitedRecord:
    """What a library sees before the patron accepts its lending rules: enough to identify, no more."""

    name: str
    cards: tuple[CardView, ...]
    full: bool = False

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = _plain(asdict(self))
        return data

    def __repr__(self) -> str:
        return "<LimitedRecord>"


@dataclass(frozen=True)
class PatronRecord:
    id: int
    name: str
    cards: tuple[CardView, ...]
    id_kind: str | None
    birth_date: date | None
    address: dict[str, str | None] | None
    address_secret: bool
    phone: str | None
    email: str | None
    status: str
    loan_ban: bool  # any library where the patron is a member bars them from borrowing
    account: str  # "national" or the ISIL of the one library a local account lives in
    home_library: str
    libraries: tuple[MembershipView, ...]
    created_at: datetime
    last_activity_at: datetime
    full: bool = True

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = _plain(asdict(self))
        for key in ("birth_date", "created_at", "last_activity_at"):
            data[key] = data[key].isoformat() if data[key] is not None else None
        return data

    def __repr__(self) -> str:
        return f"<PatronRecord id={self.id}>"


def card_views(patron: Patron) -> tuple[CardView, ...]:
    return tuple(CardView(c.number, c.kind, c.library.isil) for c in patron.cards if c.status == "active")


def limited_record(patron: Patron) -> LimitedRecord:
    return LimitedRecord(name=patron.name, cards=card_views(patron))


def full_record(patron: Patron) -> PatronRecord:
    has_address = not patron.address_secret and any((patron.street, patron.postal_code, patron.city))
    return PatronRecord(
        id=patron.id, name=patron.name, cards=card_views(patron), id_kind=patron.id_kind,
        birth_date=patron.birth_date,
        address={"street": patron.street, "postal_code": patron.postal_code, "city": patron.city}
        if has_address else None,
        address_secret=patron.address_secret, phone=patron.phone, email=patron.email, status=patron.status,
        loan_ban=is_banned(patron),
        account=patron.local_library.isil if patron.local_library else "national",
        home_library=patron.home_library.isil,
        libraries=tuple(MembershipView(m.library.isil, m.rules_accepted_at is not None)
                        for m in sorted(patron.memberships, key=lambda m: m.library.isil)),
        created_at=patron.created_at, last_activity_at=patron.last_activity_at)
