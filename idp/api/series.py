"""Number series: a library reserves and lists its own ranges of national card numbers.

Thin over idp.registry.libraries.reserve_series, capped at MAX_LIBRARY_SERIES_COUNT numbers a call
(the national library's `idp library reserve-series` may take more). A reservation is audited as the
library system; an Idempotency-Key makes a retried reservation safe (no second series).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from flask import Blueprint, Response, jsonify
from pydantic import BaseModel, Field
from spectree import Response as Answers

from idp.api import caller
from idp.api.models import Answer, Strict
from idp.api.problems import field
from idp.api.spec import body, link, operation, problems
from idp.registry.cardnumbers import national_number
from idp.registry.libraries import MAX_LIBRARY_SERIES_COUNT, USAGES, get_library, reserve_series
from idp.registry.models import CardSeries
from idp.web import services

bp = Blueprint("api_series", __name__, url_prefix="/api/v1")
Usage = Literal["printed", "digital"]
assert set(USAGES) == {"printed", "digital"}  # noqa: S101 - the schema's enum is the register's


class Reservation(Strict):
    count: int = Field(ge=1, le=MAX_LIBRARY_SERIES_COUNT, description=(
        f"How many consecutive numbers (at most {MAX_LIBRARY_SERIES_COUNT:,} at once)."))
    usage: Usage = Field(description="printed: numbers the library prints on cards; digital: numbers the "
                                     "register hands out itself to patrons registering here.")


class Series(BaseModel):
    first: str = Field(description="The first national card number of the range (e.g. N000000001).")
    last: str = Field(description="The last number of the range, included.")
    usage: Usage
    count: int
    left: int | None = Field(description="Digital series: numbers the register has not handed out yet. "
                                         "Printed series: null (the library prints them).")
    reserved_at: datetime


class SeriesAnswer(Answer):
    series: Series


class SeriesList(Answer):
    series: list[Series] = Field(description="This library's series, by first number.")


def _series(found: CardSeries) -> Series:
    return Series(first=national_number(found.first_number), last=national_number(found.last_number),
                  usage=found.usage, count=found.last_number - found.first_number + 1,  # type: ignore[arg-type]
                  left=found.last_number - found.next_number + 1 if found.usage == "digital" else None,
                  reserved_at=found.reserved_at)


@bp.post("/series")
@operation("series", "reserveSeries", json=Reservation, once=True, resp=Answers(
    HTTP_201=(SeriesAnswer, "The series reserved for this library."), **problems(400, 401, 403, 409, 422, 429)))
def reserve() -> Response:
    """Reserve a number series for this library

    The next free range of national card numbers after every existing reservation. Send an
    Idempotency-Key so that a retry after a lost answer does not reserve a second series.
    """
    asked = body(Reservation)
    with services().registry(caller.current().actor) as reg, field("count"):
        found = reserve_series(reg, caller.current().isil, asked.count, usage=asked.usage,
                               at_most=MAX_LIBRARY_SERIES_COUNT)
        response = jsonify(SeriesAnswer(series=_series(found)).model_dump(mode="json"))
    response.status_code = 201
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/series")
@operation("series", "listSeries", resp=Answers(
    HTTP_200=(SeriesList, "This library's series."), **problems(401, 403, 429)))
def list_series() -> Response:
    """List this library's number series"""
    with services().registry(caller.current().actor) as reg:
        library = get_library(reg, caller.current().isil)
        response = jsonify(SeriesList(series=[_series(s) for s in library.series]).model_dump(mode="json"))
    response.headers["Cache-Control"] = "no-store"
    return response


link("reserveSeries", 201, "series", "listSeries", {}, "List the library's series, the new one among them.")
