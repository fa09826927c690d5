"""The change feed (issue 15): what changed for this library's patrons, in order and at least once, so a
library system keeps its copy current and erases what the register erased. Thin over
idp.registry.changes, which holds the rules (ordering, the 90 days kept, the cursor)."""

from __future__ import annotations

from typing import Literal

from flask import Blueprint, Response, jsonify, request
from pydantic import BaseModel, ConfigDict, Field
from spectree import Response as Answers

from idp.api import caller
from idp.api.models import Answer
from idp.api.problems import field
from idp.api.spec import link, operation, problems
from idp.registry import changes
from idp.web import services

bp = Blueprint("api_changes", __name__, url_prefix="/api/v1")


class ChangesQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    after: str | None = Field(default=None, max_length=64, description=(
        "The `next` of the previous answer; leave it out to start from the oldest change kept."))
    limit: int = Field(default=100, ge=1, le=changes.MAX_LIMIT)


class FeedChange(BaseModel):
    cursor: str = Field(description="Opaque: where this change stands in the feed.")
    patron_id: int
    kind: Literal["contact_changed", "status_changed", "left_library", "deleted", "card_replaced",
                  "loan_ban_set", "loan_ban_cleared"] = Field(description=(
                      "What to do: re-read the record (getPatron), or erase your copy (deleted, left_library)."))
    at: str = Field(description="When it changed (ISO 8601, UTC).")


class ChangesAnswer(Answer):
    changes: list[FeedChange]
    next: str = Field(description="Send as `after` to read on; it is current even when no change came.")


@bp.get("/changes")
@operation("register.read", "listChanges", query=ChangesQuery, resp=Answers(
    HTTP_200=(ChangesAnswer, "The changes after the cursor, oldest first."), **problems(400, 401, 403, 410, 429)))
def list_changes() -> Response:
    """What changed for this library's patrons

    Each change names a patron and a kind, never personal data: re-read the record, or erase your copy
    when the patron was deleted or left this library. A change may come twice, never not at all.
    Changes are kept 90 days: a cursor older than that answers 410, and the library resynchronises
    its patrons and reads on without a cursor.
    """
    asked: ChangesQuery = request.context.query  # type: ignore[attr-defined]  # spectree sets it
    me = caller.current()
    with services().registry(me.actor) as reg, field("after"):
        page = changes.list_changes(reg, me.library_id, asked.after, asked.limit)
    found = ChangesAnswer(changes=[FeedChange(cursor=c.cursor, patron_id=c.patron_id, kind=c.kind,  # type: ignore[arg-type]
                                              at=c.at.isoformat()) for c in page.changes], next=page.next)
    response = jsonify(found.model_dump(mode="json"))
    response.headers["Cache-Control"] = "no-store"
    return response


link("listChanges", 200, "next", "listChanges", {"after": "$response.body#/next"},
     "Read on from where this page ended.")
