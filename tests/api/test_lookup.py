"""Looking patrons up (issue 15, "Look up"): by card number in any spelling, or by national identity
number in the body; the limited view (name, card numbers) until the patron has accepted this library's
lending rules, then the full record; reading a full record is audited as the library system."""

from __future__ import annotations

from sqlalchemy import select

from idp.registry import memberships
from idp.registry.models import AuditEvent
from tests.api.conftest import BERGEN, Desk, MakeDesk
from tests.nin import person
from tests.unit.factories import ADULT_BORN, patron

PROBLEM = "application/problem+json"


def _register(desk: Desk, nth: int = 0) -> tuple[int, str, str]:
    nid = person(ADULT_BORN, nth)
    with desk.live.services.registry("test") as reg:
        found, card = patron(reg, nth=nth, national_id=nid)
        return found.id, card.number, nid


def test_limited_view_before_the_rules_are_accepted_and_the_full_record_after(desk: Desk, make_desk: MakeDesk) -> None:
    patron_id, number, _ = _register(desk)  # at home in Oslo; Bergen looks them up
    desk = make_desk(isil=BERGEN, name="Bergen")
    limited = desk.call("POST", "/patrons/lookup", json={"card_number": number})
    assert limited.status_code == 200, limited.text
    seen = limited.json()["patron"]
    assert seen == {"id": patron_id, "view": "limited", "name": "Kari Nordmann", "cards": seen["cards"]}
    assert [c["number"] for c in seen["cards"]] == [number]
    with desk.live.services.registry("test") as reg:
        memberships.accept_lending_rules(reg, reg.session.get(memberships.Patron, patron_id), desk.isil)
    full = desk.call("POST", "/patrons/lookup", json={"card_number": number})
    record = full.json()["patron"]
    assert record["view"] == "full" and record["email"] == "kari@example.org" and record["id"] == patron_id
    assert full.headers["ETag"].startswith('"') and full.headers["Cache-Control"] == "no-store"
    with desk.live.services.registry("test") as reg:
        reads = reg.session.scalars(select(AuditEvent).where(AuditEvent.action == "patron.read_full")).all()
        assert [(e.actor, e.patron_id) for e in reads] == [(f"library-system:{desk.client_id}", patron_id)]


def test_a_card_number_in_another_spelling_and_a_national_id_find_the_same_patron(desk: Desk) -> None:
    patron_id, number, nid = _register(desk)
    spaced = " ".join(number[i:i + 3] for i in range(0, len(number), 3))
    by_spelling = desk.call("POST", "/patrons/lookup", json={"card_number": spaced.lower()})
    by_nid = desk.call("POST", "/patrons/lookup", json={"national_id": nid})
    assert by_spelling.json()["patron"]["id"] == by_nid.json()["patron"]["id"] == patron_id


def test_unknown_patrons_and_bad_input_are_problem_documents_naming_the_field(desk: Desk) -> None:
    unknown = desk.call("POST", "/patrons/lookup", json={"card_number": "N999999999"})
    both = desk.call("POST", "/patrons/lookup", json={"card_number": "N1", "national_id": "01010112345"})
    bad_nid = desk.call("POST", "/patrons/lookup", json={"national_id": "01010112345"})
    wrong_type = desk.call("POST", "/patrons/lookup", json={"card_number": 12345})
    unknown_field = desk.call("POST", "/patrons/lookup", json={"card": "N1"})
    malformed = desk.call("POST", "/patrons/lookup", data="{not json", headers={"Content-Type": "application/json"})
    form = desk.call("POST", "/patrons/lookup", data="card_number=1",
                     headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert unknown.status_code == 404 and unknown.json()["type"] == "/api/v1/problems/patron-not-found"
    assert both.status_code == 400 and both.json()["errors"][0]["field"] == "card_number"
    assert bad_nid.status_code == 400 and bad_nid.json()["errors"][0]["field"] == "national_id"
    assert wrong_type.status_code == 400 and wrong_type.json()["errors"][0]["field"] == "card_number"
    assert unknown_field.status_code == 400 and unknown_field.json()["errors"][0]["field"] == "card"
    assert malformed.status_code == 400 and malformed.json()["type"] == "/api/v1/problems/malformed-json"
    assert form.status_code == 415
    for answer in (unknown, both, bad_nid, wrong_type, unknown_field, malformed, form):
        assert answer.headers["Content-Type"] == PROBLEM, answer.text
        assert "01010112345" not in answer.text


def test_without_a_token_or_scope_the_call_is_refused(desk: Desk, make_desk: MakeDesk) -> None:
    anonymous = desk.call("POST", "/patrons/lookup", json={"card_number": "N1"}, headers={"Authorization": ""})
    forged = desk.call("POST", "/patrons/lookup", json={"card_number": "N1"}, headers={"Authorization": "Bearer x"})
    assert anonymous.status_code == forged.status_code == 401
    assert forged.headers["WWW-Authenticate"] == 'Bearer realm="patron-idp register API", error="invalid_token"'
    assert forged.json()["type"] == "/api/v1/problems/unauthorized"
    series_only = make_desk(scope="series")
    refused = series_only.call("POST", "/patrons/lookup", json={"card_number": "N1"})
    assert refused.status_code == 403 and 'scope="register.read"' in refused.headers["WWW-Authenticate"]


def test_a_patron_of_another_library_cannot_be_read_by_id(desk: Desk, make_desk: MakeDesk) -> None:
    patron_id, _, _ = _register(desk)
    with desk.live.services.registry("test") as reg:
        memberships.add_to_library(reg, reg.session.get(memberships.Patron, patron_id), desk.isil)
    bergen = make_desk(isil=BERGEN, name="Bergen")
    assert desk.call("GET", f"/patrons/{patron_id}").status_code == 200
    assert bergen.call("GET", f"/patrons/{patron_id}").status_code == 404
