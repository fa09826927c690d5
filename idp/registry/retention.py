"""How long the release log and the audit trail are kept (IDP_RELEASE_LOG_RETENTION_DAYS,
IDP_AUDIT_RETENTION_DAYS), erased by the daily run (idp.registry.purge)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select

from idp.registry.context import Registry
from idp.registry.models import AuditEvent, ClaimRelease


@dataclass(frozen=True)
class Retention:
    """Days each record is kept; the defaults are the settings' (idp.settings, documented there)."""

    release_log_days: int = 396
    audit_days: int = 1826


@dataclass(frozen=True)
class Erased:
    releases: int
    audit_events: int


def erase_expired(reg: Registry, retention: Retention, *, dry_run: bool = False) -> Erased:
    """Erase release-log entries and audit events older than their retention; how many (or would be)."""
    now = reg.now()
    return Erased(
        releases=_erase(reg, ClaimRelease.released_at, now - timedelta(days=retention.release_log_days), dry_run),
        audit_events=_erase(reg, AuditEvent.at, now - timedelta(days=retention.audit_days), dry_run))


def _erase(reg: Registry, stamp: Any, cutoff: datetime, dry_run: bool) -> int:
    table = stamp.class_
    if dry_run:
        return int(reg.session.scalar(select(func.count()).select_from(table).where(stamp < cutoff)) or 0)
    erased = reg.session.execute(delete(table).where(stamp < cutoff))
    return int(getattr(erased, "rowcount", 0) or 0)
