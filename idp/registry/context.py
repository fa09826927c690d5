"""The handle every register service works through: one database session, the keys, the clock
and who is acting. Services flush but never commit; the caller owns the transaction, so a
failure anywhere leaves no partial rows behind.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session

from idp.registry.credentials import SecretHasher
from idp.registry.crypto import FieldCipher
from idp.registry.dates import oslo_date, utcnow
from idp.registry.models import NOTIFICATION_KINDS, AuditEvent, Notification


_AUDIT_INSERT = insert(AuditEvent.__table__)


def notice_address_context(patron_id: int) -> bytes:
    # Bound to the patron: an address cipher copied to another patron's notice does not decrypt.
    return f"notification-address:{patron_id}".encode()


@dataclass
class Registry:
    session: Session
    cipher: FieldCipher
    hasher: SecretHasher
    actor: str
    clock: Callable[[], datetime] = field(default=utcnow)

    def now(self) -> datetime:
        return self.clock()

    def today(self) -> date:
        return oslo_date(self.clock())

    def audit(self, action: str, *, patron_id: int | None = None, library_id: int | None = None,
              **detail: Any) -> None:
        """Record a read of a full record or a change. ``detail`` holds ids and kinds, never personal data.

        Written at once with a plain INSERT: the ids it names are flushed already (they exist only
        then), and a login's audit line should not cost an ORM flush.
        """
        self.session.execute(_AUDIT_INSERT, {"at": self.now(), "actor": self.actor, "action": action,
                                             "patron_id": patron_id, "library_id": library_id, "detail": detail})

    def relax_durability(self) -> None:
        """For bookkeeping whose loss in a database crash harms nobody (a login's audit line, the
        day's activity stamp): PostgreSQL then commits without waiting for the disk. Nothing is
        ever corrupted; a crash can lose at most the last fraction of a second of such rows.
        Never use it in a transaction that changes a credential, a card or a person."""
        if self.session.get_bind().dialect.name == "postgresql":
            self.session.connection().exec_driver_sql("SET LOCAL synchronous_commit TO OFF")

    def notify(self, patron_id: int, kind: str, *, to: str | None = None, **data: Any) -> None:
        """Queue a notice for the patron, sent later by idp.notifications (kind: NOTIFICATION_KINDS).

        ``to``: an e-mail address or phone number to write to instead of the patron's current one
        (kept encrypted until the notice is settled)."""
        if kind not in NOTIFICATION_KINDS:
            raise ValueError(f"unknown notification kind {kind!r}")
        address = self.cipher.encrypt(to, context=notice_address_context(patron_id)) if to else None
        self.session.add(Notification(patron_id=patron_id, kind=kind, data=data, created_at=self.now(),
                                      address_cipher=address))

    def notify_library(self, library_id: int, kind: str, **data: Any) -> None:
        """Queue a notice for a library, sent later to its contact address as it then stands."""
        if kind not in NOTIFICATION_KINDS:
            raise ValueError(f"unknown notification kind {kind!r}")
        self.session.add(Notification(library_id=library_id, kind=kind, data=data, created_at=self.now()))

    def notice_address(self, notice: Notification) -> str | None:
        """The address a patron's notice was queued with (``notify(to=...)``), if any."""
        if notice.address_cipher is None or notice.patron_id is None:
            return None
        return self.cipher.decrypt(notice.address_cipher, context=notice_address_context(notice.patron_id))
