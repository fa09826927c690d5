"""Consents are register data (issue 16): one per patron and service, OIDC and SAML alike, widened
and never narrowed by a new consent, deleted with the patron, and never lost to a concurrent one."""

from __future__ import annotations

import json
import threading
import time

import pytest
from sqlalchemy import func, select

from idp import relying_parties as rps
from idp.registry import consents, patrons
from idp.registry.context import Registry
from idp.registry.models import Consent, Patron, RelyingParty
from idp.services import Services
from idp.state import RedisState
from tests.conftest import FakeClock
from tests.unit.factories import library, patron

FILM_CB = "https://film.example/callback"


def oidc_service(reg: Registry) -> str:
    return rps.add_oidc(reg, "Film platform", [FILM_CB])[0].client_id


def saml_service(reg: Registry) -> str:
    """A SAML SP row as `idp rp add-saml` leaves it (the consent needs only the row)."""
    sp = RelyingParty(client_id="saml-books", name="Book SP", protocol="saml", entity_id="https://books.example/sp",
                      saml_metadata="<EntityDescriptor/>", created_at=reg.now(), claims=["valid_patron"])
    reg.session.add(sp)
    reg.session.flush()
    return sp.client_id


def setup(services: Services) -> tuple[int, str, str]:
    with services.registry("test") as reg:
        library(reg)
        kari, _ = patron(reg)
        return kari.id, oidc_service(reg), saml_service(reg)


def test_a_consent_covers_what_was_agreed_and_nothing_more(services: Services) -> None:
    kari, film, books = setup(services)
    with services.registry("test") as reg:
        assert not consents.has_consent(reg, kari, film, ["valid_patron"])
        consents.give_consent(reg, kari, film, ["valid_patron", "age_over"])
    with services.registry("test") as reg:
        assert consents.has_consent(reg, kari, film, ["valid_patron"])
        assert consents.has_consent(reg, kari, film, ["age_over", "valid_patron"])
        assert not consents.has_consent(reg, kari, film, ["valid_patron", "email"])
        assert not consents.has_consent(reg, kari, books, ["valid_patron"])  # per service


def test_a_new_consent_widens_and_never_narrows(services: Services, clock: FakeClock) -> None:
    kari, film, _ = setup(services)
    given = clock.now
    with services.registry("test") as reg:
        consents.give_consent(reg, kari, film, ["age_over"])
    clock.advance(days=3)
    with services.registry("test") as reg:
        consents.give_consent(reg, kari, film, ["valid_patron"])
    with services.registry("test") as reg:
        assert consents.consents_of(reg, kari) == {film: ["age_over", "valid_patron"]}
        row = reg.session.scalars(select(Consent)).one()
        assert (row.given_at, row.updated_at, row.protocol) == (given, clock.now, "oidc")


def test_oidc_and_saml_services_are_listed_alike_and_withdrawn_one_by_one(services: Services) -> None:
    kari, film, books = setup(services)
    with services.registry("test") as reg:
        consents.give_consent(reg, kari, film, ["valid_patron"])
        consents.give_consent(reg, kari, books, ["name"])
    with services.registry("test") as reg:
        assert consents.consents_of(reg, kari) == {film: ["valid_patron"], books: ["name"]}
        assert consents.withdraw_consent(reg, kari, books)
        assert not consents.withdraw_consent(reg, kari, books)
        assert not consents.withdraw_consent(reg, kari, "no-such-client")
    with services.registry("test") as reg:
        assert consents.consents_of(reg, kari) == {film: ["valid_patron"]}


def test_a_consent_to_an_unknown_service_or_patron_is_refused_and_nothing_written(services: Services) -> None:
    kari, film, _ = setup(services)
    with services.registry("test") as reg, pytest.raises(LookupError):
        consents.give_consent(reg, kari, "no-such-client", ["valid_patron"])
    with services.registry("test") as reg, pytest.raises(LookupError):
        consents.give_consent(reg, kari + 1000, film, ["valid_patron"])
    with services.registry("test") as reg:
        assert reg.session.scalar(select(func.count()).select_from(Consent)) == 0


def test_consents_go_with_the_patron(services: Services) -> None:
    kari, film, books = setup(services)
    with services.registry("test") as reg:
        other, _ = patron(reg, nth=1)
        consents.give_consent(reg, kari, film, ["valid_patron"])
        consents.give_consent(reg, kari, books, ["valid_patron"])
        consents.give_consent(reg, other.id, film, ["valid_patron"])
        other_id = other.id
    with services.registry("test") as reg:
        patrons.delete_patron(reg, reg.session.get(Patron, kari))
    with services.registry("test") as reg:
        assert reg.session.scalars(select(Consent.patron_id)).all() == [other_id]


@pytest.mark.backends
def test_two_consents_given_at_once_are_both_kept(services: Services) -> None:
    """Today's read-modify-write lost one of two concurrent consents; the row lock keeps both."""
    kari, film, _ = setup(services)
    if services.engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer at a time: no interleaving to test")
    with services.registry("test") as reg:
        consents.give_consent(reg, kari, film, ["age_over"])  # the row exists: both would read then write
    second_done = threading.Event()

    def second() -> None:
        with services.registry("test") as reg:
            consents.give_consent(reg, kari, film, ["email"])
        second_done.set()

    with services.registry("test") as reg:
        consents.give_consent(reg, kari, film, ["valid_patron"])
        other = threading.Thread(target=second)
        other.start()
        time.sleep(0.3)
        assert not second_done.is_set()  # it waits for this transaction's row
    other.join(timeout=10)
    assert second_done.is_set()
    with services.registry("test") as reg:
        assert consents.consents_of(reg, kari) == {film: ["age_over", "email", "valid_patron"]}


def put_the_old_way(state: RedisState, patron_id: int, document: dict[str, list[str]]) -> None:
    """What idp.oidc.flow.Grants.give_consent wrote before schema 0015."""
    state.put(f"consent:{patron_id}", json.dumps(document).encode(), 365 * 24 * 3600)


@pytest.mark.backends
def test_the_carry_over_reads_old_keys_writes_rows_and_skips_what_is_gone(services: Services) -> None:
    if not isinstance(services.state, RedisState):
        pytest.skip("the embedded state store is memory: it has nothing to carry over")
    kari, film, books = setup(services)
    with services.registry("test") as reg:
        gone, _ = patron(reg, nth=1)
        gone_id = gone.id
        reg.session.delete(gone)
    put_the_old_way(services.state, kari, {film: ["valid_patron", "age_over"], books: ["name"], "deleted-rp": ["x"]})
    put_the_old_way(services.state, gone_id, {film: ["valid_patron"]})
    services.state.put("consent-other:1", b"{}", 60)  # not a consent key
    with services.registry("test") as reg:
        carried = consents.carry_over_state_consents(reg, services.state)
    assert carried.consents == 2
    assert sorted(carried.keys) == sorted([f"consent:{kari}", f"consent:{gone_id}"])
    with services.registry("test") as reg:
        assert consents.consents_of(reg, kari) == {film: ["age_over", "valid_patron"], books: ["name"]}
