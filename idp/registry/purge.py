"""The daily run: the three-year inactivity rule (warn 30 days ahead, then delete), guardianships
that end at 15, the reminders to libraries without a data processing agreement, change-feed
events past their 90 days, and release-log entries and audit events past their retention."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import select

from idp.registry.agreements import send_dpa_reminders
from idp.registry.changes import erase_old_changes
from idp.registry.context import Registry
from idp.registry.dates import years_before
from idp.registry.guardians import end_outgrown_guardianships
from idp.registry.models import Patron
from idp.registry.patrons import delete_patron
from idp.registry.retention import Retention, erase_expired

INACTIVE_YEARS = 3
WARNING_DAYS = 30


@dataclass
class PurgeReport:
    warned: list[int] = field(default_factory=list)
    deleted: list[int] = field(default_factory=list)
    guardianships_ended: list[int] = field(default_factory=list)
    dpa_reminded: list[str] = field(default_factory=list)  # ISILs of the libraries reminded
    changes_erased: int = 0
    releases_erased: int = 0
    audit_events_erased: int = 0
    dry_run: bool = False


def purge_inactive(reg: Registry, *, dry_run: bool = False, retention: Retention | None = None) -> PurgeReport:
    """Warn entries that will reach three idle years within 30 days; delete those that reached it.

    An entry is never deleted without a warning at least 30 days old, so a patron always has
    that much time to use the card (any activity clears the warning).
    """
    now = reg.now()
    report = PurgeReport(dry_run=dry_run)
    expiry_cutoff = years_before(now, INACTIVE_YEARS)
    warn_cutoff = expiry_cutoff + timedelta(days=WARNING_DAYS)

    due = reg.session.scalars(select(Patron).where(
        Patron.last_activity_at <= expiry_cutoff, Patron.inactivity_warned_at.is_not(None),
        Patron.inactivity_warned_at <= now - timedelta(days=WARNING_DAYS)).order_by(Patron.id))
    for patron in list(due):
        report.deleted.append(patron.id)
        if not dry_run:
            delete_patron(reg, patron, reason="inactive_3_years")

    to_warn = reg.session.scalars(select(Patron).where(
        Patron.last_activity_at <= warn_cutoff, Patron.inactivity_warned_at.is_(None)).order_by(Patron.id))
    for patron in list(to_warn):
        report.warned.append(patron.id)
        if not dry_run:
            patron.inactivity_warned_at = now
            deletion_on = max(now + timedelta(days=WARNING_DAYS),
                              years_before(patron.last_activity_at, -INACTIVE_YEARS))
            reg.notify(patron.id, "inactivity_warning", deletion_on=deletion_on.date().isoformat())
            reg.audit("patron.inactivity_warning", patron_id=patron.id)

    report.guardianships_ended = end_outgrown_guardianships(reg, dry_run=dry_run)
    report.dpa_reminded = send_dpa_reminders(reg, dry_run=dry_run)
    report.changes_erased = erase_old_changes(reg, dry_run=dry_run)
    erased = erase_expired(reg, retention or Retention(), dry_run=dry_run)
    report.releases_erased, report.audit_events_erased = erased.releases, erased.audit_events
    reg.session.flush()
    return report
