"""ETag and If-Match on patron records: two desks cannot overwrite each other silently (RFC 9110 13.1.1).

The tag is a keyed digest of the whole record, so it changes with any field and tells a library that
sees only the limited view nothing about the fields it cannot see.
"""

from __future__ import annotations

import hashlib
import hmac
import json

from flask import request

from idp.api.problems import Problem
from idp.registry.models import Patron
from idp.registry.records import full_record
from idp.web import services


def etag(patron: Patron) -> str:
    """The record's current entity tag (a strong, quoted tag)."""
    record = json.dumps(full_record(patron).to_dict(), sort_keys=True, default=str).encode()
    digest = hmac.new(services().settings.data_key_bytes(), b"etag:" + record, hashlib.sha256).hexdigest()
    return f'"{digest[:32]}"'


def require_match(patron: Patron) -> None:
    """A change must name the version it was made on: 428 without If-Match, 412 when it is stale."""
    given = request.headers.get("If-Match", "").strip()
    if not given:  # missing or blank: no version named
        raise Problem(428, "if-match-required", "If-Match is required.",
                      "Send If-Match with the ETag of the record you read, so no other desk's change is lost.")
    tags = [tag.strip() for tag in given.split(",")]
    if "*" not in tags and etag(patron) not in tags:
        raise Problem(412, "stale-record", "The record has changed since it was read.",
                      "Another change came first: read the record again and repeat yours on what it now says.")
