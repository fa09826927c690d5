"""The change feed over the API (issue 15): `GET /changes?after=CURSOR` lists, in order and at least once,
what changed for this library's patrons (contact changed, left this library, deleted or purged, card
replaced, loan ban), with no personal data, so library systems keep their copies current and erase what
the register erased. 90 days are kept: an older cursor is a 410 telling the system to resynchronise."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from idp.registry import memberships, patrons
from idp.registry.models import Patron
from tests.api.conftest import BERGEN, Desk, MakeDesk
from tests.conftest import FakeClock
from tests.nin import person
from tests.unit.changefeed import wait_settled
from tests.unit.factories import ADULT_BORN, patron

pytestmark = pytest.mark.backends  # the feed's order and horizon are SQL of each dialect (transaction ids)

PROBLEM = "application/problem+json"


def register(desk: Desk, nth: int = 0) -> int:
    with desk.live.services.registry("test") as reg:
        found, _ = patron(reg, nth=nth, national_id=person(ADULT_BORN, nth))
        return found.id


def read_all(desk: Desk, after: str | None = None, limit: int = 100) -> tuple[list[dict[str, Any]], str]:
    """Every change after ``after``, following `next` page by page as a library system does."""
    seen: list[dict[str, Any]] = []
    wait_settled(desk.live.services)
    while True:
        query = {"limit": limit, **({"after": after} if after is not None else {})}
        page = desk.call("GET", "/changes", params=query)
        assert page.status_code == 200, page.text
        body = page.json()
        assert page.headers["Cache-Control"] == "no-store"
        seen += body["changes"]
        after = body["next"]
        if len(body["changes"]) < limit:
            return seen, after


def kinds(changes: list[dict[str, Any]]) -> list[tuple[int, str]]:
    return [(c["patron_id"], c["kind"]) for c in changes]


def test_a_desk_day_read_back_from_the_feed_ending_with_the_deletion(desk: Desk, make_desk: MakeDesk) -> None:
    kari, ola = register(desk, 0), register(desk, 1)
    bergen = make_desk(isil=BERGEN, name="Bergen")
    with desk.live.services.registry("test") as reg:
        memberships.accept_lending_rules(reg, reg.session.get(Patron, kari), BERGEN)
    _, start = read_all(desk)
    tag = desk.call("GET", f"/patrons/{kari}").headers["ETag"]
    moved = desk.call("PATCH", f"/patrons/{kari}/contact", headers={"If-Match": tag},
                      json={"address": {"street": "Storgata 1", "postal_code": "0155", "city": "Oslo"}})
    banned = desk.call("PUT", f"/patrons/{ola}/loan-ban",
                       headers={"If-Match": desk.call("GET", f"/patrons/{ola}").headers["ETag"]}, json={})
    assert moved.status_code == banned.status_code == 200
    with desk.live.services.registry("test") as reg:
        memberships.remove_from_library(reg, reg.session.get(Patron, kari), BERGEN)
        patrons.delete_patron(reg, reg.session.get(Patron, ola))
    oslo_changes, _ = read_all(desk, start, limit=1)  # one at a time, following next
    assert kinds(oslo_changes) == [(kari, "contact_changed"), (ola, "loan_ban_set"), (ola, "deleted")]
    bergen_changes, _ = read_all(bergen)
    assert kinds(bergen_changes) == [(kari, "contact_changed"), (kari, "left_library")]
    # Ids, a kind and a time: the library re-reads the record; nothing personal travels in the feed.
    assert set(oslo_changes[0]) == {"cursor", "patron_id", "kind", "at"}
    assert "Storgata" not in str(oslo_changes) and "Nordmann" not in str(oslo_changes)


def test_the_next_cursor_reads_on_and_stays_current_when_nothing_changes(desk: Desk) -> None:
    kari = register(desk)
    _, position = read_all(desk)
    again, same = read_all(desk, position)
    assert again == []
    with desk.live.services.registry("test") as reg:
        patrons.update_patron(reg, reg.session.get(Patron, kari), phone="+4712345678")
    fresh, _ = read_all(desk, same)
    assert kinds(fresh) == [(kari, "contact_changed")]


def test_a_cursor_older_than_90_days_is_gone_and_bad_input_names_the_field(desk: Desk, make_desk: MakeDesk) -> None:
    _, position = read_all(desk)
    for query, field in (({"after": "nonsense"}, "after"), ({"limit": 0}, "limit"), ({"limit": 1001}, "limit"),
                         ({"limit": "many"}, "limit"), ({"since": "x"}, "since")):
        refused = desk.call("GET", "/changes", params=query)
        assert refused.status_code == 400, refused.text
        assert refused.headers["Content-Type"] == PROBLEM
        assert field in [e["field"] for e in refused.json()["errors"]]
    # The live server runs on the real clock: from here on, on one 91 days ahead.
    desk.live.services.clock = FakeClock(datetime.now(UTC) + timedelta(days=91))
    later = make_desk()  # the first desk's token has long expired
    gone = later.call("GET", "/changes", params={"after": position})
    assert gone.status_code == 410 and gone.headers["Content-Type"] == PROBLEM
    assert gone.json()["type"] == "/api/v1/problems/cursor-expired"
    assert "Resynchronise" in gone.json()["detail"]
    assert later.call("GET", "/changes").status_code == 200  # without a cursor: from the oldest kept


def test_the_feed_needs_register_read_and_the_document_links_each_page_to_the_next(
        desk: Desk, make_desk: MakeDesk) -> None:
    assert make_desk(scope="series").call("GET", "/changes").status_code == 403
    document = desk.call("GET", "/openapi.json").json()
    answer = document["paths"]["/changes"]["get"]["responses"]["200"]
    assert answer["links"]["next"] == {"operationId": "listChanges", "parameters": {"after": "$response.body#/next"},
                                       "description": "Read on from where this page ended."}
    operations = {op["operationId"]: method for path in document["paths"].values() for method, op in path.items()}
    assert operations["changeContact"] == "patch" and operations["setLoanBan"] == "put"
    assert operations["clearLoanBan"] == "delete" and operations["listChanges"] == "get"
