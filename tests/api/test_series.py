"""Number series (issue 15, "Series"): a library reserves and lists its own card number series; a
reservation is capped at 100,000 numbers at once, is audited as the library system, and a retry under
the same Idempotency-Key reserves nothing more."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from idp.registry.libraries import reserve_series
from idp.registry.models import AuditEvent, CardSeries
from tests.api.conftest import BERGEN, Desk, MakeDesk

PROBLEM = "application/problem+json"


def _series_rows(desk: Desk) -> list[tuple[str, int, int, str]]:
    with desk.live.services.registry("test") as reg:
        rows = reg.session.scalars(select(CardSeries).order_by(CardSeries.first_number)).all()
        return [(s.library.isil, s.first_number, s.last_number, s.usage) for s in rows]


def test_a_reservation_answers_the_series_and_the_list_shows_only_this_librarys(desk: Desk,
                                                                                make_desk: MakeDesk) -> None:
    before = _series_rows(desk)
    printed = desk.call("POST", "/series", json={"count": 500, "usage": "printed"})
    assert printed.status_code == 201, printed.text
    series = printed.json()["series"]
    first = int(series["first"][1:])
    assert series["first"].startswith("N") and len(series["first"]) == 10
    assert int(series["last"][1:]) == first + 499 and series["usage"] == "printed" and series["count"] == 500
    assert _series_rows(desk) == [*before, (desk.isil, first, first + 499, "printed")]

    digital = desk.call("POST", "/series", json={"count": 100_000, "usage": "digital"}).json()["series"]
    assert int(digital["first"][1:]) == first + 500 and digital["left"] == 100_000
    bergen = make_desk(isil=BERGEN, name="Bergen")
    assert bergen.call("POST", "/series", json={"count": 10, "usage": "printed"}).status_code == 201

    listed = desk.call("GET", "/series")
    assert listed.status_code == 200, listed.text
    assert [(s["first"], s["last"], s["usage"]) for s in listed.json()["series"]] == [
        (f"N{low:09d}", f"N{high:09d}", usage) for isil, low, high, usage in _series_rows(desk) if isil == desk.isil]
    assert (series["first"], series["last"], "printed") in [(s["first"], s["last"], s["usage"])
                                                            for s in listed.json()["series"]]
    assert {s["first"] for s in bergen.call("GET", "/series").json()["series"]}.isdisjoint(
        s["first"] for s in listed.json()["series"])

    with desk.live.services.registry("test") as reg:
        events = reg.session.scalars(select(AuditEvent).where(AuditEvent.action == "series.reserve",
                                                              AuditEvent.actor != "test")).all()
        assert [e.actor for e in events] == [f"library-system:{desk.client_id}"] * 2 + [
            f"library-system:{bergen.client_id}"]


def test_a_retry_under_the_same_idempotency_key_reserves_nothing_more(desk: Desk) -> None:
    key = {"Idempotency-Key": "order-2026-12-07"}
    before = len(_series_rows(desk))
    first = desk.call("POST", "/series", json={"count": 20, "usage": "printed"}, headers=key)
    again = desk.call("POST", "/series", json={"count": 20, "usage": "printed"}, headers=key)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"
    assert len(_series_rows(desk)) == before + 1
    other = desk.call("POST", "/series", json={"count": 21, "usage": "printed"}, headers=key)
    assert other.status_code == 422 and len(_series_rows(desk)) == before + 1


@pytest.mark.parametrize(("sent", "named"), [
    ({"count": 100_001, "usage": "printed"}, "count"),
    ({"count": 0, "usage": "printed"}, "count"),
    ({"count": -5, "usage": "digital"}, "count"),
    ({"count": "10", "usage": "printed"}, "count"),
    ({"count": 10.0, "usage": "printed"}, "count"),
    ({"count": True, "usage": "printed"}, "count"),
    ({"usage": "printed"}, "count"),
    ({"count": 10, "usage": "paper"}, "usage"),
    ({"count": 10}, "usage"),
    ({"count": 10, "usage": "printed", "first": 1}, "first"),
])
def test_bad_reservations_are_problems_naming_the_field_and_reserve_nothing(desk: Desk, sent: dict[str, object],
                                                                            named: str) -> None:
    before = _series_rows(desk)
    answer = desk.call("POST", "/series", json=sent)
    assert answer.status_code == 400, answer.text
    assert answer.headers["Content-Type"] == PROBLEM
    assert named in [e["field"] for e in answer.json()["errors"]]
    assert _series_rows(desk) == before


def test_malformed_json_reserves_nothing(desk: Desk) -> None:
    before = _series_rows(desk)
    answer = desk.call("POST", "/series", data="{count: 5", headers={"Content-Type": "application/json"})
    assert answer.status_code == 400 and answer.headers["Content-Type"] == PROBLEM
    assert _series_rows(desk) == before


def test_no_room_left_in_the_national_range_is_a_conflict_naming_count(desk: Desk) -> None:
    with desk.live.services.registry("test") as reg:
        # The operator reserved up to ten numbers short of the end of the national range.
        reserve_series(reg, desk.isil, 10, first=999_999_980)
    before = _series_rows(desk)
    answer = desk.call("POST", "/series", json={"count": 100, "usage": "printed"})
    assert answer.status_code == 409 and answer.json()["errors"][0]["field"] == "count"
    assert _series_rows(desk) == before

def test_series_need_the_series_scope(make_desk: MakeDesk) -> None:
    reader = make_desk(scope="register.read register.write cards")
    before = _series_rows(reader)
    refused = reader.call("POST", "/series", json={"count": 10, "usage": "printed"})
    listed = reader.call("GET", "/series")
    assert refused.status_code == listed.status_code == 403
    assert refused.json()["type"].endswith("/insufficient-scope")
    assert _series_rows(reader) == before


def test_the_document_links_a_reservation_to_the_list(desk: Desk) -> None:
    document = desk.http.get(f"{desk.live.url}/api/v1/openapi.json", timeout=30).json()
    reserve = document["paths"]["/series"]["post"]
    assert reserve["operationId"] == "reserveSeries"
    assert reserve["responses"]["201"]["links"]["series"]["operationId"] == "listSeries"
    assert document["paths"]["/series"]["get"]["operationId"] == "listSeries"
    count = document["components"]["schemas"]["Reservation"]["properties"]["count"]
    assert count["maximum"] == 100_000
    page = desk.http.get(f"{desk.live.url}/api/v1/docs", timeout=30)
    assert page.status_code == 200 and "reserveSeries" in page.text and "listSeries" in page.text
