"""Issue 15: a patron who is active at no compliant library is not a valid patron for national
services (``valid_patron`` false at e-content partners), with the reason in the audit. What the
patron does themselves is never blocked: their password still checks out, only the answer changes.
"""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import select

from idp.registry import agreements, memberships, patrons
from idp.registry.models import AuditEvent, ClaimRelease
from idp.services import Services
from tests.unit.factories import library
from tests.web.test_verify_api import PASSWORD, Partner, _partner, post
from tests.web.test_verify_api import cards, film  # noqa: F401 - fixtures

OSLO, BERGEN = "NO-2030000", "NO-4601000"


def refusals(services: Services) -> list[tuple[Any, ...]]:
    with services.registry("test") as reg:
        return [(e.actor, e.patron_id, e.detail) for e in reg.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "claims.refused").order_by(AuditEvent.id))]


def test_a_patron_active_at_no_compliant_library_is_not_a_valid_patron(client: FlaskClient, services: Services,
                                                                        film: Partner, cards: dict[str, str]) -> None:
    body = {"card_number": cards["adult"], "password": PASSWORD, "age_over": [18]}
    assert post(client, film, body).get_json() == {"valid_patron": True, "age_over_18": True}
    assert refusals(services) == []
    with services.registry("test") as reg:
        agreements.update(reg, OSLO, compliant=False)  # the adult's only library
        patron_id = patrons.patron_by_card(reg, cards["adult"]).id
    answer = post(client, film, body)
    assert answer.status_code == 200
    assert answer.get_json() == {"valid_patron": False, "age_over_18": True}
    reason = {"client_id": film.client_id, "claim": "valid_patron", "reason": "no_compliant_library", "protocol": "api"}
    assert refusals(services) == [(f"api:{film.client_id}", patron_id, reason)]

    # Active at one compliant library is enough: the patron is national again.
    with services.registry("test") as reg:
        library(reg, BERGEN, "Bergen")
        memberships.accept_lending_rules(reg, patrons.patron_by_card(reg, cards["adult"]), BERGEN)
    assert post(client, film, body).get_json()["valid_patron"] is True
    assert len(refusals(services)) == 1


def test_a_partner_whose_policy_lists_only_ages_is_told_not_valid_too(client: FlaskClient, services: Services,
                                                                      cards: dict[str, str]) -> None:
    """The check answers valid_patron whatever the policy lists, so no policy can make it true."""
    ages_only = _partner(services, ["age_over_18"])
    with services.registry("test") as reg:
        agreements.update(reg, OSLO, compliant=False)
    answer = post(client, ages_only, {"card_number": cards["adult"], "password": PASSWORD, "age_over": [18]})
    assert answer.get_json() == {"valid_patron": False, "age_over_18": True}
    assert [detail["reason"] for *_, detail in refusals(services)] == ["no_compliant_library"]
    with services.registry("test") as reg:  # the release log names what the policy released, as before
        assert [r.claims for r in reg.session.scalars(select(ClaimRelease))] == [["age_over_18"]]
