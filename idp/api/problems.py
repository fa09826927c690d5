"""RFC 9457 problem documents: every error of the library systems' API, one shape.

``type`` is a stable URI per kind of error (relative to the API, e.g. ``/api/v1/problems/not-found``):
a library system branches on it, never on the wording of ``detail``. ``errors`` names the fields at
fault. No problem document carries personal data: details are written from fixed text.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import Response

from idp.errors import IdpError

MEDIA_TYPE = "application/problem+json"
TYPE_PREFIX = "/api/v1/problems/"


class Problem(Exception):
    """Raised by an API view (or its checks) to answer with a problem document."""

    def __init__(self, status: int, slug: str, title: str, detail: str | None = None, *,
                 errors: list[dict[str, str]] | None = None, headers: dict[str, str] | None = None,
                 **extra: Any) -> None:
        super().__init__(detail or title)
        self.status, self.slug, self.title, self.detail = status, slug, title, detail
        self.errors, self.headers, self.extra = errors, headers or {}, extra

    def document(self) -> dict[str, Any]:
        body: dict[str, Any] = {"type": TYPE_PREFIX + self.slug, "title": self.title, "status": self.status}
        if self.detail:
            body["detail"] = self.detail
        if self.errors:
            body["errors"] = self.errors
        body.update(self.extra)
        return body

    def response(self) -> Response:
        response = Response(json.dumps(self.document()), status=self.status, mimetype=MEDIA_TYPE)
        for name, value in self.headers.items():
            response.headers[name] = value
        response.headers["Cache-Control"] = "no-store"
        return response


def invalid(field: str, message: str) -> Problem:
    """Bad input in one field: 400, naming it."""
    return Problem(400, "invalid-input", "The request is not valid.", message,
                   errors=[{"field": field, "message": message}])


def from_domain(exc: IdpError, field: str | None = None) -> Problem:
    """The register's error as a problem: its stable code becomes the type, its message the detail."""
    slug = exc.code.replace("_", "-")
    errors = [{"field": field, "message": exc.message}] if field else None
    return Problem(exc.http_status, slug, _TITLES.get(exc.http_status, "The request cannot be carried out."),
                   exc.message, errors=errors)


@contextmanager
def field(name: str) -> Iterator[None]:
    """Domain errors raised inside name ``name`` as the field at fault (e.g. the e-mail's shape)."""
    try:
        yield
    except IdpError as exc:
        if exc.http_status >= 500:
            raise
        raise from_domain(exc, name) from None


def for_status(status: int, code: str, message: str) -> Problem:
    """A problem for an HTTP error raised outside the API's own checks (404 route, 405, 413, 429...)."""
    return Problem(status, code.replace("_", "-"), _TITLES.get(status, "The request cannot be carried out."), message)


_TITLES = {
    400: "The request is not valid.",
    401: "Authentication is required.",
    403: "This is not allowed.",
    404: "Not found.",
    405: "Method not allowed.",
    409: "The request conflicts with the register.",
    410: "Gone.",
    412: "The record has changed since it was read.",
    413: "The request body is too large.",
    415: "Send the body as JSON.",
    422: "The request cannot be processed.",
    428: "If-Match is required.",
    429: "Too many requests.",
    500: "Something went wrong on our side.",
    503: "The register is briefly unavailable.",
}
