"""Contact details and loan bans over the API (issue 15): a library changes e-mail, phone and address of
its patrons (the old address is notified; a field a university federation owns is refused) and sets or
clears its own loan ban; every change sends If-Match (428 without, 412 stale), answers the patron as this
library sees them with the new ETag, and bad input is a problem naming the field that writes nothing."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from idp.registry import memberships, upstream
from idp.registry.models import AuditEvent, ChangeEvent, LoanBan, Notification, Patron
from idp.registry.records import full_record
from tests.api.conftest import BERGEN, Desk, MakeDesk
from tests.flows.test_federation_registry import federation
from tests.nin import person
from tests.unit.factories import ADULT_BORN, patron

PROBLEM = "application/problem+json"


def register(desk: Desk, nth: int = 0) -> int:
    """A patron at home in Oslo (the desk's library), active there."""
    with desk.live.services.registry("test") as reg:
        found, _ = patron(reg, nth=nth, national_id=person(ADULT_BORN, nth))
        return found.id


def etag(desk: Desk, patron_id: int) -> str:
    read = desk.call("GET", f"/patrons/{patron_id}")
    assert read.status_code == 200, read.text
    return read.headers["ETag"]


def state(desk: Desk, patron_id: int) -> dict[str, Any]:
    """The whole record plus what a change leaves behind (notices, bans, feed events)."""
    with desk.live.services.registry("test") as reg:
        found = reg.session.get(Patron, patron_id)
        assert found is not None
        return {"record": full_record(found).to_dict(),
                "notices": len(reg.session.scalars(select(Notification.id)).all()),
                "bans": len(reg.session.scalars(select(LoanBan.patron_id)).all()),
                "events": len(reg.session.scalars(select(ChangeEvent.id)).all())}


def test_a_library_changes_the_contact_details_and_the_old_address_is_told(desk: Desk) -> None:
    patron_id = register(desk)
    before = etag(desk, patron_id)
    changed = desk.call("PATCH", f"/patrons/{patron_id}/contact", headers={"If-Match": before}, json={
        "email": "kari.ny@example.org", "address": {"street": "Storgata 1", "postal_code": "0155", "city": "Oslo"}})
    assert changed.status_code == 200, changed.text
    seen = changed.json()["patron"]
    assert seen["email"] == "kari.ny@example.org" and seen["phone"] == "+4799999999"  # phone not sent: kept
    assert seen["address"] == {"street": "Storgata 1", "postal_code": "0155", "city": "Oslo"}
    assert changed.headers["ETag"] != before and changed.headers["ETag"] == etag(desk, patron_id)
    with desk.live.services.registry("test") as reg:
        notice = reg.session.scalar(select(Notification).where(Notification.kind == "account_changed"))
        assert notice is not None and notice.data == {"what": "email"}
        assert reg.notice_address(notice) == "kari@example.org"  # written to the old address
        update = reg.session.scalar(select(AuditEvent).where(AuditEvent.action == "patron.update"))
        assert update is not None and update.actor == f"library-system:{desk.client_id}"
    cleared = desk.call("PATCH", f"/patrons/{patron_id}/contact", headers={"If-Match": changed.headers["ETag"]},
                        json={"phone": None, "address": None})
    assert cleared.status_code == 200, cleared.text
    assert (cleared.json()["patron"]["phone"], cleared.json()["patron"]["address"]) == (None, None)


def test_without_if_match_or_with_a_stale_one_nothing_changes(desk: Desk) -> None:
    patron_id = register(desk)
    old = etag(desk, patron_id)
    desk.call("PATCH", f"/patrons/{patron_id}/contact", headers={"If-Match": old}, json={"phone": "+4711111111"})
    before = state(desk, patron_id)
    missing = desk.call("PATCH", f"/patrons/{patron_id}/contact", json={"phone": "+4722222222"})
    stale = desk.call("PATCH", f"/patrons/{patron_id}/contact", headers={"If-Match": old},
                      json={"phone": "+4722222222"})
    ban_missing = desk.call("PUT", f"/patrons/{patron_id}/loan-ban", json={})
    ban_stale = desk.call("PUT", f"/patrons/{patron_id}/loan-ban", headers={"If-Match": old}, json={})
    assert missing.status_code == ban_missing.status_code == 428
    assert stale.status_code == ban_stale.status_code == 412
    assert stale.json()["type"] == "/api/v1/problems/stale-record"
    assert state(desk, patron_id) == before


@pytest.mark.parametrize(("sent", "field"), [
    pytest.param({"email": "not an address"}, "email", id="bad-email"),
    pytest.param({"phone": "12"}, "phone", id="bad-phone"),
    pytest.param({"email": 42}, "email", id="wrong-type"),
    pytest.param({"address": {"street": "Storgata 1", "postal_code": "0155"}}, "address.city", id="no-city"),
    pytest.param({"address": {"street": "x", "postal_code": "0" * 17, "city": "Oslo"}}, "address.postal_code",
                 id="long-postal-code"),
    pytest.param({"address": {"street": "a\x00b", "postal_code": "0155", "city": "Oslo"}}, "address",
                 id="unprintable"),
    pytest.param({"mail": "k@example.org"}, "mail", id="unknown-field"),
    pytest.param({"email": "ok@example.org", "phone": "nope"}, "phone", id="one-bad-of-two"),
    pytest.param({}, "(body)", id="nothing"),
])
def test_bad_contact_details_name_the_field_and_write_nothing(desk: Desk, sent: dict[str, Any], field: str) -> None:
    patron_id = register(desk)
    before = state(desk, patron_id)
    refused = desk.call("PATCH", f"/patrons/{patron_id}/contact", headers={"If-Match": etag(desk, patron_id)},
                        json=sent)
    assert refused.status_code == 400, refused.text
    assert refused.headers["Content-Type"] == PROBLEM
    assert field in [e["field"] for e in refused.json()["errors"]]
    assert state(desk, patron_id) == before


def test_a_field_a_university_federation_owns_is_refused_by_name(desk: Desk) -> None:
    patron_id = register(desk)
    with desk.live.services.registry("test") as reg:
        upstream.link(reg, federation(reg), "kari@unimore.it", reg.session.get(Patron, patron_id), how="operator")
    before = state(desk, patron_id)
    refused = desk.call("PATCH", f"/patrons/{patron_id}/contact", headers={"If-Match": etag(desk, patron_id)},
                        json={"email": "k@example.org", "phone": "+4712345678"})
    assert refused.status_code == 403 and refused.json()["type"] == "/api/v1/problems/field-owned"
    assert refused.json()["errors"] == [{"field": "email", "message": refused.json()["detail"]}]
    assert "UniMoRe" in refused.json()["detail"]
    assert state(desk, patron_id) == before


def test_only_patrons_of_this_library_and_only_once_they_are_active_here(desk: Desk, make_desk: MakeDesk) -> None:
    patron_id = register(desk)
    bergen = make_desk(isil=BERGEN, name="Bergen")
    stranger = bergen.call("PATCH", f"/patrons/{patron_id}/contact", headers={"If-Match": "*"},
                           json={"email": "x@example.org"})
    stranger_ban = bergen.call("PUT", f"/patrons/{patron_id}/loan-ban", headers={"If-Match": "*"}, json={})
    assert stranger.status_code == stranger_ban.status_code == 404
    with desk.live.services.registry("test") as reg:
        memberships.add_to_library(reg, reg.session.get(Patron, patron_id), BERGEN)  # not yet active in Bergen
    before = state(desk, patron_id)
    inactive = bergen.call("PATCH", f"/patrons/{patron_id}/contact", headers={"If-Match": etag(bergen, patron_id)},
                           json={"email": "x@example.org"})
    assert inactive.status_code == 403, inactive.text
    assert state(desk, patron_id) == before
    reader = make_desk(name="Oslo reader", scope="register.read")
    assert reader.call("PATCH", f"/patrons/{patron_id}/contact", headers={"If-Match": "*"},
                       json={"email": "x@example.org"}).status_code == 403


def test_each_library_sets_and_clears_its_own_ban_and_the_patron_is_banned_while_any_has_one(
        desk: Desk, make_desk: MakeDesk) -> None:
    patron_id = register(desk)
    bergen = make_desk(isil=BERGEN, name="Bergen")
    with desk.live.services.registry("test") as reg:
        memberships.accept_lending_rules(reg, reg.session.get(Patron, patron_id), BERGEN)
    oslo_ban = desk.call("PUT", f"/patrons/{patron_id}/loan-ban", headers={"If-Match": etag(desk, patron_id)},
                         json={"reason": "lost books"})
    assert oslo_ban.status_code == 200, oslo_ban.text
    assert oslo_ban.json()["patron"]["loan_ban"] is True and oslo_ban.headers["ETag"] == etag(desk, patron_id)
    assert bergen.call("GET", f"/patrons/{patron_id}").json()["patron"]["loan_ban"] is True
    # Bergen has no ban to lift: Oslo's stays.
    lifted = bergen.call("DELETE", f"/patrons/{patron_id}/loan-ban", headers={"If-Match": etag(bergen, patron_id)})
    assert lifted.status_code == 200 and lifted.json()["patron"]["loan_ban"] is True
    bergen.call("PUT", f"/patrons/{patron_id}/loan-ban", headers={"If-Match": etag(bergen, patron_id)}, json={})
    cleared = desk.call("DELETE", f"/patrons/{patron_id}/loan-ban", headers={"If-Match": etag(desk, patron_id)})
    assert cleared.status_code == 200 and cleared.json()["patron"]["loan_ban"] is True  # Bergen's remains
    bergen.call("DELETE", f"/patrons/{patron_id}/loan-ban", headers={"If-Match": etag(bergen, patron_id)})
    assert desk.call("GET", f"/patrons/{patron_id}").json()["patron"]["loan_ban"] is False
    with desk.live.services.registry("test") as reg:
        assert reg.session.scalars(select(LoanBan)).all() == []


def test_a_bad_reason_or_body_names_the_field_and_sets_no_ban(desk: Desk) -> None:
    patron_id = register(desk)
    before = state(desk, patron_id)
    tag = etag(desk, patron_id)
    for sent, field in (({"reason": "x" * 201}, "reason"), ({"reason": 5}, "reason"), ({"until": "2027"}, "until")):
        refused = desk.call("PUT", f"/patrons/{patron_id}/loan-ban", headers={"If-Match": tag}, json=sent)
        assert refused.status_code == 400 and refused.json()["errors"][0]["field"] == field, refused.text
    assert state(desk, patron_id) == before
