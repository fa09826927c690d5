"""The migrations build exactly the schema the models describe, on both backends.

Each test starts from an empty database of its own (not the suite's migrated template), so
what is checked is what `idp db upgrade` does on a new installation.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import CheckConstraint, Engine, column, insert, inspect, table, text
from sqlalchemy.exc import IntegrityError

from idp import migrate
from idp.assurance import LEVELS
from idp.db import make_engine
from idp.registry.models import Base, RelyingParty
from tests.conftest import fresh_postgres_database

pytestmark = pytest.mark.backends  # the migrations run per dialect

FIRST = "0001"


@pytest.fixture
def empty_engine(backend: str, tmp_path: Path) -> Iterator[Engine]:
    if backend == "embedded":
        engine = make_engine(f"sqlite:///{tmp_path / 'empty.sqlite3'}")
        yield engine
        engine.dispose()
        return
    with fresh_postgres_database("idp_migrations") as url:
        engine = make_engine(url)
        yield engine
        engine.dispose()


def differences(engine: Engine) -> list[object]:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, Base.metadata))


def model_checks() -> dict[str, set[str]]:
    return {table.name: {str(c.name) for c in table.constraints if isinstance(c, CheckConstraint)}
            for table in Base.metadata.sorted_tables}


def database_checks(engine: Engine) -> dict[str, set[str]]:
    inspector = inspect(engine)
    return {name: {str(c["name"]) for c in inspector.get_check_constraints(name)}
            for name in inspector.get_table_names() if name != "alembic_version"}


def downgrade(engine: Engine, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(migrate.MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)


def test_upgrade_from_empty_reaches_head(empty_engine: Engine) -> None:
    assert migrate.current_revision(empty_engine) is None
    migrate.upgrade(empty_engine)
    assert migrate.current_revision(empty_engine) == migrate.head_revision()
    assert set(inspect(empty_engine).get_table_names()) >= set(Base.metadata.tables)


def test_models_and_migrations_agree(empty_engine: Engine) -> None:
    migrate.upgrade(empty_engine)
    assert differences(empty_engine) == []
    # Alembic does not compare CHECK constraints; they carry register rules, so compare them here.
    assert database_checks(empty_engine) == model_checks()


def test_upgrading_step_by_step_and_back_gives_the_same_schema(empty_engine: Engine) -> None:
    migrate.upgrade(empty_engine, FIRST)
    assert RelyingParty.__tablename__ not in inspect(empty_engine).get_table_names()
    migrate.upgrade(empty_engine)
    downgrade(empty_engine, FIRST)
    assert migrate.current_revision(empty_engine) == FIRST
    assert RelyingParty.__tablename__ not in inspect(empty_engine).get_table_names()
    migrate.upgrade(empty_engine)
    assert differences(empty_engine) == []


def test_the_min_acr_check_lists_exactly_the_assurance_levels() -> None:
    # A new level needs a migration that widens the database check; this fails until one is written.
    (check,) = [c for c in RelyingParty.__table__.constraints
                if isinstance(c, CheckConstraint) and str(c.name).endswith("min_acr")]
    listed = str(check.sqltext).partition("IN (")[2].rstrip(")")
    assert tuple(level.strip().strip("'") for level in listed.split(",")) == LEVELS


RP_ROW = {"client_id": "c" * 22, "name": "Film", "protocol": "oidc", "secret_hash": b"\0" * 32,
          "redirect_uris": ["https://film.example/cb"], "public": False, "min_acr": "password",
          "pin_allowed": False, "claims": ["valid_patron"], "subject_type": "pairwise", "disabled": False,
          "created_at": datetime(2026, 11, 23, tzinfo=UTC)}


@pytest.mark.parametrize("change", [
    pytest.param({"min_acr": "sms"}, id="unknown-level"),
    pytest.param({"min_acr": "pin"}, id="pin-without-pin-allowed"),
    pytest.param({"secret_hash": None}, id="confidential-without-secret"),
    pytest.param({"public": True}, id="public-with-secret"),
    pytest.param({"protocol": "ws-fed"}, id="unknown-protocol"),
    pytest.param({"subject_type": "random"}, id="unknown-subject-type"),
    pytest.param({"id_token_alg": "HS256"}, id="hmac-id-token-alg"),
])
def test_the_database_itself_refuses_an_impossible_relying_party(
        empty_engine: Engine, change: dict[str, Any]) -> None:
    # The backstop for any writer that bypasses idp.relying_parties (a script, a future admin page).
    migrate.upgrade(empty_engine)
    with empty_engine.begin() as connection:
        connection.execute(insert(RelyingParty.__table__), RP_ROW)  # the unchanged row is accepted
    with pytest.raises(IntegrityError), empty_engine.begin() as connection:
        connection.execute(insert(RelyingParty.__table__), {**RP_ROW, "client_id": "d" * 22, **change})


def test_each_national_loan_ban_becomes_a_ban_of_the_home_library_and_comes_back_on_downgrade(
        empty_engine: Engine) -> None:
    # Issue 15: "the migration keeps each existing national flag as a ban of the patron's home library".
    migrate.upgrade(empty_engine, "0010")
    at = datetime(2026, 1, 1, tzinfo=UTC)
    library = table("library", column("id"), column("isil"), column("name"), column("card_rules"),
                    column("created_at"), column("compliant"))
    patron = table("patron", column("id"), column("name"), column("national_id_hash"), column("address_secret"),
                   column("status"), column("loan_ban"), column("home_library_id"), column("created_at"),
                   column("last_activity_at"))
    with empty_engine.begin() as connection:
        connection.execute(insert(library), [{"id": i, "isil": f"NO-{i}", "name": f"L{i}", "card_rules": "[]",
                                              "created_at": at.isoformat(), "compliant": True} for i in (1, 2)])
        connection.execute(insert(patron), [
            {"id": pid, "name": "P", "national_id_hash": bytes([pid]) * 32, "address_secret": False,
             "status": "active", "loan_ban": banned, "home_library_id": home, "created_at": at.isoformat(),
             "last_activity_at": at.isoformat()}
            for pid, banned, home in ((1, True, 2), (2, False, 1))])
        connection.execute(insert(table("membership", column("patron_id"), column("library_id"), column("added_at"))),
                           {"patron_id": 1, "library_id": 2, "added_at": at.isoformat()})
    migrate.upgrade(empty_engine)
    with empty_engine.connect() as connection:
        bans = connection.execute(text("SELECT patron_id, library_id FROM loan_ban")).all()
    assert [tuple(b) for b in bans] == [(1, 2)]
    with empty_engine.connect() as connection:  # dropping the column kept what hangs off each patron
        assert connection.execute(text("SELECT count(*) FROM membership")).scalar() == 1
    assert "loan_ban" not in {c["name"] for c in inspect(empty_engine).get_columns("patron")}
    downgrade(empty_engine, "0010")
    with empty_engine.connect() as connection:
        flags = connection.execute(text("SELECT id, loan_ban FROM patron ORDER BY id")).all()
    assert [(pid, bool(flag)) for pid, flag in flags] == [(1, True), (2, False)]
