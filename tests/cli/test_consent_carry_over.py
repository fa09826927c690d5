"""`idp db upgrade` carries the consents Redis holds (written the way they were before schema 0015)
into the register once, and deletes the old keys (issue 16)."""

from __future__ import annotations

import uuid

import pytest

from idp.registry import consents
from idp.services import Services
from idp.settings import Settings
from idp.state import RedisState
from tests.cli.test_cli import make_idp, succeeded
from tests.unit.factories import library, patron
from tests.unit.test_consents import oidc_service, put_the_old_way, saml_service

pytestmark = pytest.mark.backends


def test_db_upgrade_moves_the_old_consents_into_the_register_once(settings: Settings, services: Services) -> None:
    if not settings.redis_url:
        pytest.skip("the embedded state store is memory: nothing survives to carry over")
    prefix = f"idp-test:{uuid.uuid4().hex}:"
    old_store = RedisState(settings.redis_url, prefix)
    with services.registry("test") as reg:
        library(reg)
        kari, _ = patron(reg)
        film, books = oidc_service(reg), saml_service(reg)
        kari_id = kari.id
    put_the_old_way(old_store, kari_id, {film: ["valid_patron"], books: ["name", "valid_patron"]})
    idp = make_idp({"IDP_MODE": "development", "IDP_HOME": str(settings.home), "IDP_KEYS_DIR": str(settings.keys_dir),
                    "IDP_DATABASE_URL": settings.database_url, "IDP_REDIS_URL": settings.redis_url,
                    "IDP_REDIS_PREFIX": prefix})
    try:
        assert succeeded(idp("db", "upgrade"))["consents_carried_over"] == "2"
        with services.registry("test") as reg:
            assert consents.consents_of(reg, kari_id) == {film: ["valid_patron"], books: ["name", "valid_patron"]}
        assert list(old_store.keys_starting("consent:")) == []
        again = succeeded(idp("db", "upgrade"))
        assert "consents_carried_over" not in again
    finally:
        old_store.close()
