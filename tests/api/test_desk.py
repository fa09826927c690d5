"""The desk's operations over real HTTP (issue 15: Register, Memberships, Cards, Activity, Credentials):
a library system registers patrons, adds them to its library, records the lending rules they accepted,
prints cards, merges local cards, reports loans and resets passwords; every change is audited as the
system, needs If-Match where it edits a record, and bad input writes nothing."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from openapi_spec_validator import validate
from sqlalchemy import func, select

from idp import relying_parties
from idp.auth.password import Outcome, password_login
from idp.registry import agreements, libraries, patrons
from idp.registry.cardnumbers import national_number
from idp.registry.models import (AuditEvent, Card, CardSeries, Credential, Membership, Notification,
                                 PasswordResetToken, Patron)
from idp.registry.purge import purge_inactive
from tests.api.conftest import BERGEN, OSLO, Desk, MakeDesk
from tests.nin import duf, person
from tests.unit.factories import ADULT_BORN, patron

PROBLEM = "application/problem+json"


@dataclass
class Outbox:
    """Stands in for the mail server: keeps what would have been sent."""

    sent: list[tuple[str, str]] = field(default_factory=list)

    def can_send(self, channel: Any) -> bool:
        return True

    def send(self, channel: Any, to: str, message: Any) -> None:
        self.sent.append((to, message.text))


def printed_number(desk: Desk, isil: str = OSLO, offset: int = 0) -> str:
    """A number of ``isil``'s printed series, as printed."""
    with desk.live.services.registry("test") as reg:
        library = libraries.get_library(reg, isil)
        first = reg.session.scalar(select(CardSeries.first_number).where(
            CardSeries.library_id == library.id, CardSeries.usage == "printed"))
        assert first is not None
        return national_number(first + offset)


def counts(desk: Desk) -> tuple[int, int, int]:
    """Patrons, cards and memberships in the register: unchanged by refused input."""
    with desk.live.services.registry("test") as reg:
        return tuple(reg.session.scalar(select(func.count()).select_from(model))  # type: ignore[return-value]
                     for model in (Patron, Card, Membership))


def audits(desk: Desk, action: str) -> list[AuditEvent]:
    with desk.live.services.registry("test") as reg:
        found = list(reg.session.scalars(select(AuditEvent).where(AuditEvent.action == action)))
        reg.session.expunge_all()
        return found


def registration(nth: int = 0, **fields: Any) -> dict[str, Any]:
    return {"name": "Kari Nordmann", "national_id": person(ADULT_BORN, nth), "email": "kari@example.org",
            "phone": "+47 999 99 999", "address": {"street": "Storgata 1", "postal_code": "0155", "city": "Oslo"},
            "card": {"kind": "digital"}, **fields}


def oslo_patron(desk: Desk, nth: int = 0, **fields: Any) -> tuple[int, str]:
    with desk.live.services.registry("test") as reg:
        found, card = patron(reg, nth=nth, **fields)
        return found.id, card.number


def problem(answer: requests.Response, status: int, slug: str, field_name: str | None = None) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    assert answer.headers["Content-Type"] == PROBLEM
    document: dict[str, Any] = answer.json()
    assert document["type"] == f"/api/v1/problems/{slug}", document
    if field_name is not None:
        assert [e["field"] for e in document["errors"]] == [field_name], document
    return document


# --- Registering -----------------------------------------------------------------------------------

def test_a_national_id_registers_a_national_account_at_home_here_with_a_digital_card(desk: Desk) -> None:
    answer = desk.call("POST", "/patrons", json=registration())
    assert answer.status_code == 201, answer.text
    seen = answer.json()["patron"]
    assert answer.headers["Location"] == f"/api/v1/patrons/{seen['id']}"
    assert answer.headers["ETag"] and answer.headers["Cache-Control"] == "no-store"
    assert (seen["view"], seen["account"], seen["home_library"]) == ("full", "national", OSLO)
    assert [(c["kind"], c["library"]) for c in seen["cards"]] == [("digital", OSLO)]
    assert seen["address"] == {"street": "Storgata 1", "postal_code": "0155", "city": "Oslo"}
    assert desk.call("GET", answer.headers["Location"].removeprefix("/api/v1")).json()["patron"]["id"] == seen["id"]
    created = audits(desk, "patron.create")
    assert [(e.actor, e.patron_id) for e in created] == [(f"library-system:{desk.client_id}", seen["id"])]


def test_a_printed_card_must_lie_in_this_librarys_printed_series(desk: Desk, make_desk: MakeDesk) -> None:
    bergen = make_desk(isil=BERGEN, name="Bergen")
    before = counts(desk)
    outside = desk.call("POST", "/patrons", json=registration(card={"kind": "printed",
                                                                    "number": printed_number(desk, BERGEN)}))
    document = problem(outside, 409, "card-outside-series", "card.number")
    assert OSLO in document["detail"] and "printed" in document["detail"]
    assert counts(desk) == before
    inside = desk.call("POST", "/patrons", json=registration(card={"kind": "printed", "number": printed_number(desk)}))
    assert inside.status_code == 201, inside.text
    assert [(c["kind"], c["number"]) for c in inside.json()["patron"]["cards"]] == [
        ("printed", printed_number(desk))]
    assert bergen.isil == BERGEN


def test_a_duf_number_or_no_number_gives_a_local_card_of_this_library(desk: Desk) -> None:
    with_duf = desk.call("POST", "/patrons", json=registration(
        national_id=None, duf=duf(2015, 1234), card={"kind": "printed", "number": "OSL-1001"}))
    without = desk.call("POST", "/patrons", json=registration(
        national_id=None, birth_date="1990-05-01", card={"kind": "printed", "number": "OSL-1002"}))
    for answer in (with_duf, without):
        assert answer.status_code == 201, answer.text
        seen = answer.json()["patron"]
        assert (seen["account"], [c["kind"] for c in seen["cards"]]) == (OSLO, ["local"])
    assert without.json()["patron"]["birth_date"] == "1990-05-01"
    again = desk.call("POST", "/patrons", json=registration(
        national_id=None, duf=duf(2015, 1234), card={"kind": "printed", "number": "OSL-1003"}))
    assert problem(again, 409, "patron-exists", "duf")["patron"]["id"] == with_duf.json()["patron"]["id"]
    before = counts(desk)
    digital = desk.call("POST", "/patrons", json=registration(national_id=None, card={"kind": "digital"}))
    problem(digital, 400, "invalid-input", "card.kind")
    assert counts(desk) == before


def test_a_non_compliant_library_registers_local_patrons_only(desk: Desk) -> None:
    # Issue 15 / seed progress note: a non-compliant library's patrons are local only.
    with desk.live.services.registry("test") as reg:
        agreements.update(reg, OSLO, compliant=False)
    before = counts(desk)
    national = desk.call("POST", "/patrons", json=registration())
    problem(national, 403, "library-not-compliant", "national_id")
    assert counts(desk) == before
    local = desk.call("POST", "/patrons", json=registration(
        national_id=None, birth_date="1990-05-01", card={"kind": "printed", "number": "OSL-2001"}))
    assert local.status_code == 201, local.text
    assert local.json()["patron"]["account"] == OSLO


@pytest.mark.backends  # PostgreSQL runs the four transactions truly at once
def test_two_desks_registering_one_person_at_once_make_one_account(desk: Desk) -> None:
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: desk.call("POST", "/patrons", json=registration()), range(4)))
    assert sorted(a.status_code for a in answers) == [201, 409, 409, 409], [a.text for a in answers]
    created = next(a for a in answers if a.status_code == 201).json()["patron"]["id"]
    for refused in (a for a in answers if a.status_code == 409):
        assert problem(refused, 409, "patron-exists", "national_id")["patron"]["id"] == created


def test_an_existing_person_is_a_409_with_the_limited_view_never_a_second_account(desk: Desk,
                                                                                  make_desk: MakeDesk) -> None:
    patron_id, number = oslo_patron(desk)
    bergen = make_desk(isil=BERGEN, name="Bergen")
    before = counts(desk)
    again = bergen.call("POST", "/patrons", json=registration())
    document = problem(again, 409, "patron-exists", "national_id")
    assert document["patron"] == {"id": patron_id, "view": "limited", "name": "Kari Nordmann",
                                  "cards": [{"number": number, "kind": "digital", "library": OSLO}]}
    assert "kari@example.org" not in again.text and person(ADULT_BORN) not in again.text
    assert counts(desk) == before


def test_a_retried_registration_registers_once_and_another_body_under_its_key_is_refused(desk: Desk) -> None:
    key = {"Idempotency-Key": "desk-7-registration-1"}
    first = desk.call("POST", "/patrons", json=registration(), headers=key)
    retried = desk.call("POST", "/patrons", json=registration(), headers=key)
    assert first.status_code == retried.status_code == 201, retried.text
    assert retried.json()["patron"]["id"] == first.json()["patron"]["id"]
    assert retried.headers["Location"] == first.headers["Location"]
    assert retried.headers["Idempotent-Replayed"] == "true"
    with desk.live.services.registry("test") as reg:
        assert reg.session.scalar(select(func.count()).select_from(Patron)) == 1
    before = counts(desk)
    other = desk.call("POST", "/patrons", json=registration(nth=1), headers=key)
    problem(other, 422, "idempotency-key-reused")
    assert counts(desk) == before


@pytest.mark.parametrize(("change", "field_name"), [
    ({"national_id": "01010112345"}, "national_id"),          # control digits wrong
    ({"national_id": 1234567890}, "national_id"),             # not a string
    ({"duf": "123456789012"}, "duf"),                         # both numbers
    ({"email": "not-an-address"}, "email"),
    ({"phone": "12"}, "phone"),
    ({"name": "   "}, "name"),
    ({"birth_date": "1990-01-01"}, "birth_date"),              # does not match the national id
    ({"birth_date": 19900101}, "birth_date"),
    ({"address_secret": True}, "address"),                    # a secret address is never sent
    ({"card": {"kind": "printed"}}, "card.printed.number"),
    ({"card": {"kind": "plastic"}}, "card"),
    ({"card": {"kind": "printed", "number": "ABC-12"}}, "card.number"),   # not a national number
    ({"nickname": "Kari"}, "nickname"),
])
def test_bad_registrations_name_the_field_and_write_nothing(desk: Desk, change: dict[str, Any],
                                                            field_name: str) -> None:
    body = registration(**change)
    if "duf" in change:
        body["duf"] = duf(2015, 1234)
    before = counts(desk)
    answer = desk.call("POST", "/patrons", json=body)
    assert 400 <= answer.status_code < 500 and answer.headers["Content-Type"] == PROBLEM, answer.text
    assert field_name in [e["field"] for e in answer.json().get("errors", [])], answer.text
    assert counts(desk) == before
    assert person(ADULT_BORN) not in answer.text and "Storgata" not in answer.text


# --- Memberships -----------------------------------------------------------------------------------

def test_another_library_adds_the_patron_records_the_rules_version_and_ends_the_membership(
        desk: Desk, make_desk: MakeDesk) -> None:
    patron_id, number = oslo_patron(desk)
    bergen = make_desk(isil=BERGEN, name="Bergen")
    found = bergen.call("POST", "/patrons/lookup", json={"card_number": number})
    tag = found.headers["ETag"]
    path = f"/patrons/{patron_id}/membership"
    problem(bergen.call("PUT", path), 428, "if-match-required")
    problem(bergen.call("PUT", path, headers={"If-Match": '"stale"'}), 412, "stale-record")
    # A stranger's id is not enough: only the tag of the lookup that found them (no walking the ids).
    problem(bergen.call("PUT", path, headers={"If-Match": "*"}), 428, "if-match-required")
    problem(bergen.call("POST", f"{path}/rules-accepted", json={}, headers={"If-Match": "*"}), 428, "if-match-required")
    added = bergen.call("PUT", path, headers={"If-Match": tag})
    assert added.status_code == 200 and added.json()["patron"]["view"] == "limited", added.text
    with desk.live.services.registry("test") as reg:
        notes = reg.session.scalars(select(Notification).where(Notification.patron_id == patron_id)).all()
        assert [(n.kind, n.data) for n in notes] == [("library_added", {"library": BERGEN})]
        agreements.update(reg, BERGEN, rules="Lånereglement for Bergen, første utgave.")
        agreements.update(reg, BERGEN, rules="Lånereglement for Bergen, andre utgave.")
    tag = added.headers["ETag"]
    accepted_path = f"{path}/rules-accepted"
    old = bergen.call("POST", accepted_path, json={"version": 1}, headers={"If-Match": tag})
    assert "version 2" in problem(old, 409, "conflict", "version")["detail"]
    problem(bergen.call("POST", accepted_path, json={}, headers={"If-Match": tag}), 409, "conflict", "version")
    problem(bergen.call("POST", accepted_path, json={"version": "2"}, headers={"If-Match": tag}),
            400, "invalid-input", "version")
    accepted = bergen.call("POST", accepted_path, json={"version": 2}, headers={"If-Match": tag})
    assert accepted.status_code == 200 and accepted.json()["patron"]["view"] == "full", accepted.text
    with desk.live.services.registry("test") as reg:
        membership = reg.session.get(Membership, (patron_id, libraries.get_library(reg, BERGEN).id))
        assert membership is not None and membership.rules_version == 2
    problem(bergen.call("DELETE", path, headers={"If-Match": tag}), 412, "stale-record")
    ended = bergen.call("DELETE", path, headers={"If-Match": accepted.headers["ETag"]})
    assert ended.status_code == 204, ended.text
    assert bergen.call("GET", f"/patrons/{patron_id}").status_code == 404
    actor = f"library-system:{bergen.client_id}"
    for action in ("membership.add", "membership.activate", "membership.remove"):
        assert [e.actor for e in audits(desk, action)] == [actor], action


def test_a_library_without_rules_text_records_acceptance_without_a_version(desk: Desk, make_desk: MakeDesk) -> None:
    patron_id, number = oslo_patron(desk)
    bergen = make_desk(isil=BERGEN, name="Bergen")
    tag = bergen.call("POST", "/patrons/lookup", json={"card_number": number}).headers["ETag"]
    path = f"/patrons/{patron_id}/membership/rules-accepted"
    problem(bergen.call("POST", path, json={"version": 1}, headers={"If-Match": tag}), 409, "conflict", "version")
    accepted = bergen.call("POST", path, json={"version": None}, headers={"If-Match": tag})
    assert accepted.status_code == 200 and accepted.json()["patron"]["view"] == "full", accepted.text


def test_a_local_account_of_another_library_cannot_join_and_the_home_library_cannot_be_left(
        desk: Desk, make_desk: MakeDesk) -> None:
    local_id, _ = oslo_patron(desk, national_id=None, local_card="OSL-77")
    national_id, _ = oslo_patron(desk, nth=1)
    bergen = make_desk(isil=BERGEN, name="Bergen")
    tag = desk.call("GET", f"/patrons/{local_id}").headers["ETag"]
    problem(bergen.call("PUT", f"/patrons/{local_id}/membership", headers={"If-Match": tag}),
            403, "not-allowed", "patron_id")
    home_tag = desk.call("GET", f"/patrons/{national_id}").headers["ETag"]
    problem(desk.call("DELETE", f"/patrons/{national_id}/membership", headers={"If-Match": home_tag}),
            403, "not-allowed", "patron_id")
    assert counts(desk)[2] == 2


# --- Cards -----------------------------------------------------------------------------------------

def test_a_printed_card_replaces_the_digital_one_and_a_number_outside_the_series_is_refused(
        desk: Desk, make_desk: MakeDesk) -> None:
    patron_id, digital = oslo_patron(desk)
    make_desk(isil=BERGEN, name="Bergen")
    path = f"/patrons/{patron_id}/cards"
    tag = desk.call("GET", f"/patrons/{patron_id}").headers["ETag"]
    problem(desk.call("POST", path, json={"number": printed_number(desk)}), 428, "if-match-required")
    before = counts(desk)
    outside = desk.call("POST", path, json={"number": printed_number(desk, BERGEN)}, headers={"If-Match": tag})
    assert OSLO in problem(outside, 409, "card-outside-series", "number")["detail"]
    problem(desk.call("POST", path, json={"number": "ABC-12"}, headers={"If-Match": tag}),
            400, "invalid-card-number", "number")
    assert counts(desk) == before
    issued = desk.call("POST", path, json={"number": printed_number(desk)}, headers={"If-Match": tag})
    assert issued.status_code == 201, issued.text
    assert [(c["kind"], c["number"]) for c in issued.json()["patron"]["cards"]] == [("printed", printed_number(desk))]
    assert desk.call("POST", "/patrons/lookup", json={"card_number": digital}).status_code == 404
    assert [e.actor for e in audits(desk, "card.issue")][-1] == f"library-system:{desk.client_id}"


def test_a_local_card_of_this_library_merges_into_the_national_account(desk: Desk, make_desk: MakeDesk) -> None:
    nid = person(ADULT_BORN, 3)
    local_id, _ = oslo_patron(desk, nth=3, national_id=nid, local_card="OSL-500")
    national_id, _ = oslo_patron(desk, nth=3, national_id=nid)
    bergen = make_desk(isil=BERGEN, name="Bergen")
    tag = desk.call("GET", f"/patrons/{national_id}").headers["ETag"]
    path = f"/patrons/{national_id}/merge"
    problem(bergen.call("POST", path, json={"local_card": "OSL-500"}, headers={"If-Match": tag}),
            403, "not-allowed", "local_card")
    problem(desk.call("POST", path, json={"local_card": "OSL-404"}, headers={"If-Match": tag}),
            404, "not-found", "local_card")
    merged = desk.call("POST", path, json={"local_card": "osl-500"}, headers={"If-Match": tag})
    assert merged.status_code == 200 and merged.json()["patron"]["id"] == national_id, merged.text
    assert desk.call("POST", "/patrons/lookup", json={"card_number": "OSL-500"}).status_code == 404
    with desk.live.services.registry("test") as reg:
        assert reg.session.get(Patron, local_id) is None
    assert [e.actor for e in audits(desk, "patron.merge")] == [f"library-system:{desk.client_id}"]


# --- Activity --------------------------------------------------------------------------------------

def test_a_loan_reported_at_the_desk_keeps_a_patron_without_logins_from_the_purge(desk: Desk) -> None:
    patron_id, _ = oslo_patron(desk)
    long_ago = datetime.now(UTC) - timedelta(days=3 * 365 + 10)
    with desk.live.services.registry("test") as reg:
        found = reg.session.get(Patron, patron_id)
        assert found is not None
        found.last_activity_at = found.created_at = long_ago
    path = f"/patrons/{patron_id}/activity"
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    problem(desk.call("POST", path, json={"kind": "loan", "at": future}), 400, "invalid-input", "at")
    problem(desk.call("POST", path, json={"kind": "fine"}), 400, "invalid-input", "kind")
    problem(desk.call("POST", path, json={"kind": "loan", "at": "2026-12-01T10:00:00"}), 400, "invalid-input", "at")
    a_minute_ago = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    reported = desk.call("POST", path, json={"kind": "loan", "at": a_minute_ago})
    assert reported.status_code == 200 and reported.json()["recorded"] is True, reported.text
    with desk.live.services.registry("test") as reg:
        assert purge_inactive(reg).warned == []
        assert reg.session.get(Patron, patron_id) is not None
    again = desk.call("POST", path, json={"kind": "return"})
    assert again.status_code == 200 and again.json()["recorded"] is False  # the same day: no second write
    assert [(e.actor, e.detail["kind"]) for e in audits(desk, "patron.activity")] == [
        (f"library-system:{desk.client_id}", "loan")]


# --- Credentials -----------------------------------------------------------------------------------

def test_a_reset_link_goes_to_the_patrons_email_and_without_one_the_desk_is_told(desk: Desk) -> None:
    box = Outbox()
    desk.live.services.messenger = box  # type: ignore[misc]
    patron_id, _ = oslo_patron(desk)
    sent = desk.call("POST", f"/patrons/{patron_id}/password-reset", json={"delivery": "email"})
    assert sent.status_code == 200, sent.text
    assert sent.json()["delivery"] == "email" and sent.json()["sent_to"].endswith("@example.org")
    assert [to for to, _ in box.sent] == ["kari@example.org"] and "/password/reset#" in box.sent[0][1]
    no_email_id, _ = oslo_patron(desk, nth=1, email=None)
    refused = desk.call("POST", f"/patrons/{no_email_id}/password-reset", json={"delivery": "email"})
    problem(refused, 409, "no-email-address", "delivery")
    with desk.live.services.registry("test") as reg:
        assert reg.session.scalar(select(func.count()).select_from(PasswordResetToken)) == 1


def test_a_temporary_password_is_shown_once_must_be_changed_and_is_never_audited(desk: Desk) -> None:
    patron_id, _ = oslo_patron(desk)
    status = desk.call("GET", f"/patrons/{patron_id}/credentials")
    assert status.status_code == 200, status.text
    assert {k: v for k, v in status.json().items() if k != "last_used"} == {
        "warnings": None, "has_password": False, "has_pin": False, "must_change": False,
        "first_credentials_changed": False, "last_login": None, "locked_until": None}
    key = {"Idempotency-Key": "reset-1"}
    reset = desk.call("POST", f"/patrons/{patron_id}/password-reset", json={"delivery": "temporary"}, headers=key)
    assert reset.status_code == 200, reset.text
    temporary = reset.json()["temporary_password"]
    assert reset.json()["must_change"] is True and len(temporary) >= 16
    retried = desk.call("POST", f"/patrons/{patron_id}/password-reset", json={"delivery": "temporary"}, headers=key)
    assert retried.json()["temporary_password"] == temporary  # a lost answer is not a lost password
    after = desk.call("GET", f"/patrons/{patron_id}/credentials").json()
    assert (after["has_password"], after["must_change"], after["first_credentials_changed"]) == (True, True, False)
    assert temporary not in desk.call("GET", f"/patrons/{patron_id}/credentials").text
    with desk.live.services.registry("test") as reg:
        assert patrons.verify_secret(reg, reg.session.get(Patron, patron_id), "password", temporary).must_change
        events = reg.session.scalars(select(AuditEvent).where(AuditEvent.patron_id == patron_id)).all()
        assert all(temporary not in repr(e.detail) for e in events)
        assert [e.actor for e in events if e.action == "patron.reset_password"] == [f"library-system:{desk.client_id}"]
        found = reg.session.get(Patron, patron_id)
        assert found is not None
        patrons.set_secret(reg, found, "password", "my own long passphrase")  # the patron's first change
        assert "hash" not in repr(reg.session.get(Credential, (patron_id, "password")))
    changed = desk.call("GET", f"/patrons/{patron_id}/credentials").json()
    assert (changed["must_change"], changed["first_credentials_changed"]) == (False, True)
    assert "$argon2" not in str(changed)


def test_the_desk_sees_the_last_login_and_until_when_wrong_guesses_lock_the_card(desk: Desk) -> None:
    # Issue 15: the credential status includes the last login date and "locked until"; README: each card
    # allows 10 wrong guesses a day, counted together on the login page and the verify API.
    patron_id, number = oslo_patron(desk, password="correct horse battery", pin="4711")
    before = desk.call("GET", f"/patrons/{patron_id}/credentials").json()
    assert (before["last_login"], before["locked_until"]) == (None, None)
    with desk.live.services.registry("web") as reg:
        assert password_login(reg, number, "correct horse battery").outcome is Outcome.OK
    with desk.live.services.registry("test") as reg:
        door, secret = relying_parties.add_oidc(reg, "Door", ["https://door.example/cb"], claims=["valid_patron"],
                                                pin_allowed=True, dpa_signed=reg.today() - timedelta(days=1))
    answers = [requests.post(f"{desk.live.url}/api/v1/verify", auth=(door.client_id, secret or ""), timeout=30,
                             json={"card_number": number, "pin": f"{1000 + guess}"}) for guess in range(11)]
    assert [a.status_code for a in answers] == [200] * 10 + [429]
    after = desk.call("GET", f"/patrons/{patron_id}/credentials").json()
    assert after["last_login"] is not None
    locked = datetime.fromisoformat(after["locked_until"])
    assert timedelta(hours=23) < locked - datetime.now(UTC) <= timedelta(hours=24, seconds=2)  # whole seconds
    assert "4711" not in str(after) and "correct horse" not in str(after)


def test_credentials_need_the_right_scope_and_a_patron_of_this_library(desk: Desk, make_desk: MakeDesk) -> None:
    patron_id, _ = oslo_patron(desk)
    reader = make_desk(scope="register.read")
    assert reader.call("GET", f"/patrons/{patron_id}/credentials").status_code == 200
    refused = reader.call("POST", f"/patrons/{patron_id}/password-reset", json={"delivery": "temporary"})
    assert refused.status_code == 403
    bergen = make_desk(isil=BERGEN, name="Bergen")
    problem(bergen.call("GET", f"/patrons/{patron_id}/credentials"), 404, "patron-not-found")
    with desk.live.services.registry("test") as reg:
        assert reg.session.get(Credential, (patron_id, "password")) is None


def test_the_document_describes_the_desk_operations_and_their_links(desk: Desk) -> None:
    spec = requests.get(f"{desk.live.url}/api/v1/openapi.json", timeout=30).json()
    validate(spec)  # a valid OpenAPI 3.1 document with the desk's models in it
    operations = {op["operationId"]: (path, method) for path, item in spec["paths"].items()
                  for method, op in item.items()}
    assert operations["registerPatron"] == ("/patrons", "post")
    assert operations["addMembership"] == ("/patrons/{patron_id}/membership", "put")
    for name in ("acceptLendingRules", "endMembership", "issueCard", "mergeLocalCard", "reportActivity",
                 "startPasswordReset", "credentialStatus"):
        assert name in operations
    created = spec["paths"]["/patrons"]["post"]["responses"]["201"]
    assert created["links"]["patron"]["operationId"] == "getPatron"
    scopes = {op["operationId"]: op["security"][0]["libraryToken"] for item in spec["paths"].values()
              for op in item.values() if "libraryToken" in op.get("security", [{}])[0]}
    assert scopes["issueCard"] == scopes["mergeLocalCard"] == ["cards"]
    assert scopes["credentialStatus"] == ["register.read"] and scopes["startPasswordReset"] == ["register.write"]
