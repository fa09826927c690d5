"""Migration 0011 keeps what the register holds: acceptances keep their date (version unknown), and a
password the patron replaced after registering counts as first credentials changed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine

from idp import migrate
from tests.unit.test_migrations import downgrade, empty_engine  # noqa: F401 - the fixture, for this test too

pytestmark = pytest.mark.backends  # the backfill's SQL runs per dialect

REGISTERED = datetime(2024, 1, 2, 10, 0, tzinfo=UTC)


def test_the_backfill_marks_only_secrets_replaced_after_registration_and_keeps_every_row(
        empty_engine: Engine) -> None:
    migrate.upgrade(empty_engine, "0010")
    meta = sa.MetaData()
    meta.reflect(empty_engine)
    library, patron, membership, credential = (meta.tables[n] for n in ("library", "patron", "membership",
                                                                          "credential"))
    with empty_engine.begin() as db:
        db.execute(library.insert(), {"id": 1, "isil": "NO-2030000", "name": "Oslo", "card_rules": [],
                                      "created_at": REGISTERED})
        db.execute(patron.insert(), [
            {"id": pid, "name": "N", "local_library_id": 1, "address_secret": False, "status": "active",
             "loan_ban": False, "home_library_id": 1, "created_at": REGISTERED, "last_activity_at": REGISTERED}
            for pid in (1, 2, 3)])
        db.execute(membership.insert(), {"patron_id": 1, "library_id": 1, "added_at": REGISTERED,
                                         "rules_accepted_at": REGISTERED})
        later = REGISTERED + timedelta(days=40)
        db.execute(credential.insert(), [
            {"patron_id": 1, "kind": "password", "hash": "h1", "must_change": False, "updated_at": later},
            {"patron_id": 2, "kind": "password", "hash": "h2", "must_change": True, "updated_at": later},
            {"patron_id": 3, "kind": "password", "hash": "h3", "must_change": False, "updated_at": REGISTERED},
        ])
    migrate.upgrade(empty_engine)
    with empty_engine.connect() as db:
        changed = dict(db.execute(sa.text("SELECT patron_id, first_changed_at FROM credential")).all())
        accepted = db.execute(sa.text("SELECT rules_accepted_at, rules_version FROM membership")).one()
    assert changed[1] is not None and changed[2] is None and changed[3] is None
    assert accepted[0] is not None and accepted[1] is None
    downgrade(empty_engine, "0010")
    with empty_engine.connect() as db:
        assert db.execute(sa.text("SELECT count(*) FROM credential")).scalar() == 3
        assert db.execute(sa.text("SELECT count(*) FROM membership")).scalar() == 1
