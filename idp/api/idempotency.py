"""Idempotency-Key on state-changing POSTs: a retried request is answered, not repeated.

The first answer under a key is kept 24 hours with a fingerprint of the request (method, path and
body): the same request again gets that answer (``Idempotent-Replayed: true``), a different request
under the same key is a 422, and one arriving while the first is still running is a 409. Keys are
per library system. Errors are not kept: a refused request may be corrected and sent again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast

from flask import Response, make_response, request

from idp.api.caller import current
from idp.api.problems import Problem
from idp.web import services

F = TypeVar("F", bound=Callable[..., Any])
KEEP_SECONDS = 24 * 3600
_RUNNING_SECONDS = 60
_MAX_KEY = 255
_REPLAYED_HEADERS = ("Content-Type", "Location", "ETag")


def idempotent(view: F) -> F:
    @wraps(view)
    def once(*args: Any, **kwargs: Any) -> Any:
        key = request.headers.get("Idempotency-Key")
        if key is None:
            return view(*args, **kwargs)
        if not 0 < len(key) <= _MAX_KEY or not key.isprintable():
            raise Problem(400, "invalid-idempotency-key", "The request is not valid.",
                          f"Idempotency-Key must be 1 to {_MAX_KEY} printable characters.")
        state = services().state
        slot = "api:idem:" + hashlib.sha256(f"{current().client_id}\0{key}".encode()).hexdigest()
        fingerprint = hashlib.sha256(b"\0".join((request.method.encode(), request.path.encode(),
                                                 request.get_data()))).hexdigest()
        kept = state.get(slot)
        if kept is not None:
            return _replay(json.loads(kept), fingerprint)
        if state.incr(slot + ":running", _RUNNING_SECONDS) != 1:
            raise Problem(409, "idempotency-key-in-use", "The request conflicts with the register.",
                          "A request with this Idempotency-Key is still being processed; retry shortly.")
        try:
            response = make_response(view(*args, **kwargs))
            if response.status_code < 400:
                state.put(slot, json.dumps({
                    "fingerprint": fingerprint, "status": response.status_code,
                    "body": response.get_data(as_text=True),
                    "headers": {h: response.headers[h] for h in _REPLAYED_HEADERS if h in response.headers},
                }).encode(), KEEP_SECONDS)
            return response
        finally:
            state.delete(slot + ":running")
    return cast(F, once)


def _replay(kept: dict[str, Any], fingerprint: str) -> Response:
    if kept["fingerprint"] != fingerprint:
        raise Problem(422, "idempotency-key-reused", "The request cannot be processed.",
                      "This Idempotency-Key was used for a different request; use a new key for a new request.")
    response = Response(kept["body"], status=kept["status"])
    for name, value in kept["headers"].items():
        response.headers[name] = value
    response.headers["Idempotent-Replayed"] = "true"
    return response
