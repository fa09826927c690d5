"""Delivering the notices the register queues for patrons (a lock after wrong guesses, a changed
password, a new library, an inactivity warning) and for libraries (reminders of a missing data
processing agreement): ``idp notifications deliver`` runs this, from a timer or with ``--every``.

A notice goes by e-mail where the patron has an address, else by SMS, else nowhere (outcome
``no_address``); a notice queued with an address of its own (the old address of a changed e-mail or
phone) goes there instead. A library's notice goes to its contact e-mail address. Each is sent and
marked in a transaction of its own, so a crash repeats at most the one notice it was sending, and
two deliverers running at once skip each other's rows (``SKIP LOCKED`` on PostgreSQL; with SQLite
run one). A failed send is tried again by later runs, waiting longer after each failure
(``BACKOFF``), up to ``MAX_ATTEMPTS`` times, so a mail server down for an hour loses nothing; a
notice older than ``MAX_AGE`` is no longer sent, as a lock notice a week late would only confuse. A
channel the deployment has not configured is not a failure of the notice: it waits, uncounted, and
the run reports it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import or_, select

from idp.delivery import Channel, DeliveryError, Message, Messenger
from idp.delivery.texts import notice_email, notice_sms
from idp.registry.context import Registry
from idp.registry.models import Library, Notification, Patron

log = logging.getLogger("idp.notifications")

# Waits after the 1st, 2nd... failed send; the last failure gives the notice up (about 2.6 h in all).
BACKOFF = (timedelta(minutes=1), timedelta(minutes=5), timedelta(minutes=30), timedelta(hours=2))
MAX_ATTEMPTS = len(BACKOFF) + 1
MAX_AGE = timedelta(days=7)


@dataclass
class DeliveryReport:
    """What one run did, by outcome; ``waiting`` had an address on an unconfigured channel."""

    email: int = 0
    sms: int = 0
    no_address: int = 0
    retry: int = 0  # failed this time, tried again by a later run
    failed: int = 0  # failed for the last allowed time: given up
    expired: int = 0
    waiting: int = 0

    @property
    def sent(self) -> int:
        return self.email + self.sms


def deliver_pending(open_registry: Callable[[], AbstractContextManager[Registry]], messenger: Messenger, *,
                    limit: int = 500) -> DeliveryReport:
    """Send up to ``limit`` waiting notices, oldest first; each in its own transaction."""
    report, after = DeliveryReport(), 0
    for _ in range(limit):
        with open_registry() as reg:
            due = or_(Notification.retry_after.is_(None), Notification.retry_after <= reg.now())
            notice = reg.session.scalars(
                select(Notification).where(Notification.outcome.is_(None), Notification.id > after, due)
                .order_by(Notification.id).limit(1).with_for_update(skip_locked=True)).first()
            if notice is None:
                break
            after = notice.id
            _deliver(reg, messenger, notice, report)
    return report


def _deliver(reg: Registry, messenger: Messenger, notice: Notification, report: DeliveryReport) -> None:
    if reg.now() - notice.created_at > MAX_AGE:
        _settle(reg, notice, "expired", report)
        return
    addresses = _addresses(reg, notice)
    if not addresses:
        _settle(reg, notice, "no_address", report)
        return
    usable = [(channel, address) for channel, address in addresses if messenger.can_send(channel)]
    if not usable:
        report.waiting += 1
        return
    channel, address = usable[0]
    try:
        messenger.send(channel, address, _message(reg, notice, channel))
    except DeliveryError:
        # Messenger has logged the operator's reason; the address stays out of the logs.
        notice.attempts += 1
        if notice.attempts >= MAX_ATTEMPTS:
            _settle(reg, notice, "failed", report)
            log.warning("gave up notification %s after %s attempts", notice.id, notice.attempts)
        else:
            notice.retry_after = reg.now() + BACKOFF[notice.attempts - 1]
            report.retry += 1
        return
    notice.attempts += 1
    notice.delivered_at = reg.now()
    _settle(reg, notice, channel.value, report)


def _addresses(reg: Registry, notice: Notification) -> list[tuple[Channel, str]]:
    """Where the notice may go, best first: the address it was queued with, else the patron's
    e-mail, then phone; a library's, its contact address."""
    if notice.library_id is not None:
        contact = reg.session.scalar(select(Library.contact_email).where(Library.id == notice.library_id))
        return [(Channel.EMAIL, contact)] if contact else []
    queued = reg.notice_address(notice)
    if queued is not None:
        return [(Channel.EMAIL if "@" in queued else Channel.SMS, queued)]
    patron = reg.session.get(Patron, notice.patron_id)
    if patron is None:
        return []
    return [(channel, address) for channel, address in ((Channel.EMAIL, patron.email), (Channel.SMS, patron.phone))
            if address]


def _settle(reg: Registry, notice: Notification, outcome: str, report: DeliveryReport) -> None:
    notice.outcome = outcome
    notice.address_cipher = None  # a settled notice keeps no address
    setattr(report, outcome, getattr(report, outcome) + 1)
    reg.audit(f"notification.{outcome}", patron_id=notice.patron_id, library_id=notice.library_id, kind=notice.kind,
              notification=notice.id)


def _message(reg: Registry, notice: Notification, channel: Channel) -> Message:
    data = dict(notice.data or {})
    library = None
    if "library" in data:
        found = reg.session.scalar(select(Library.name).where(Library.isil == str(data["library"])))
        library = str(found) if found is not None else None
    build = notice_email if channel is Channel.EMAIL else notice_sms
    return build(notice.kind, data, library)
