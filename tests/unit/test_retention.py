"""The release log is kept 13 months and audit events 5 years by default (issue 16), erased by the
daily run; a dry run counts and erases nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from idp import relying_parties as rps
from idp.registry import purge
from idp.registry.models import AuditEvent, ClaimRelease
from idp.registry.retention import Retention
from idp.services import Services
from idp.settings import load_settings
from tests.conftest import FakeClock
from tests.unit.factories import library, patron

pytestmark = pytest.mark.backends  # timestamps compared in SQL


def record_release(services: Services) -> None:
    with services.registry("test") as reg:
        kari = reg.session.scalars(select(ClaimRelease.patron_id)).first()
        if kari is None:
            library(reg)
            kari = patron(reg)[0].id
            rps.add_oidc(reg, "Film platform", ["https://film.example/cb"])
        film = reg.session.scalars(select(rps.RelyingParty.id)).first()
        reg.session.add(ClaimRelease(patron_id=kari, relying_party_id=film, claims=["valid_patron"], protocol="oidc",
                                     released_at=reg.now()))


def counts(services: Services) -> tuple[int, int]:
    with services.registry("test") as reg:
        releases = reg.session.scalar(select(func.count()).select_from(ClaimRelease)) or 0
        audits = reg.session.scalar(select(func.count()).select_from(AuditEvent)) or 0
        return releases, audits


def run(services: Services, retention: Retention | None = None, dry_run: bool = False) -> purge.PurgeReport:
    with services.registry("test") as reg:
        return purge.purge_inactive(reg, dry_run=dry_run, retention=retention)


def test_the_defaults_are_13_months_and_5_years() -> None:
    settings = load_settings({}, mode="development")
    assert settings.release_log_retention_days >= 365 + 30
    assert settings.release_log_retention_days <= 366 + 31
    assert settings.audit_retention_days in (5 * 365, 5 * 365 + 1, 5 * 365 + 2)
    assert Retention() == Retention(settings.release_log_retention_days, settings.audit_retention_days)


def test_releases_and_audit_events_older_than_their_retention_are_erased(services: Services,
                                                                           clock: FakeClock) -> None:
    start = clock.now
    record_release(services)
    with services.registry("test") as reg:
        reg.audit("test.old")
    _, audits_at_start = counts(services)
    clock.now = start + timedelta(days=200)
    record_release(services)
    with services.registry("test") as reg:
        reg.audit("test.newer")

    clock.now = start + timedelta(days=396)  # 13 months to the second: kept
    report = run(services)
    assert (report.releases_erased, report.audit_events_erased) == (0, 0)

    clock.now = start + timedelta(days=396, seconds=1)
    dry = run(services, dry_run=True)
    assert (dry.releases_erased, dry.audit_events_erased) == (1, 0)
    assert counts(services)[0] == 2  # a dry run erases nothing
    assert run(services).releases_erased == 1
    assert counts(services)[0] == 1

    clock.now = start + timedelta(days=1826, seconds=1)  # 5 years (with a leap day) and a second
    report = run(services)
    assert report.audit_events_erased == audits_at_start
    with services.registry("test") as reg:
        kept = set(reg.session.scalars(select(AuditEvent.action)))
        oldest = reg.session.scalar(select(func.min(AuditEvent.at)))
    assert "test.old" not in kept and "test.newer" in kept
    assert oldest == start + timedelta(days=200)

def test_a_shorter_retention_from_the_settings_is_honoured(services: Services, clock: FakeClock) -> None:
    start = clock.now
    record_release(services)
    clock.now = start + timedelta(days=31, seconds=1)
    assert run(services, Retention(release_log_days=31, audit_days=365)).releases_erased == 1
