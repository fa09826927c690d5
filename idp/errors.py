"""One error hierarchy for the whole product.

Domain code raises these; each surface (CLI, HTML pages, OAuth JSON, SAML status) renders them
its own way. Messages are written for the person who will read them and never contain personal
data: no national id, address, password or PIN is ever interpolated into one.
"""

from __future__ import annotations


class IdpError(Exception):
    """Base class. ``code`` is a stable machine-readable name; ``str()`` is the human message."""

    code = "error"
    http_status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigError(IdpError):
    code = "configuration_error"
    http_status = 500


class ValidationError(IdpError):
    """Input that can never be right as given (malformed national id, card number, PIN...)."""

    code = "invalid_input"


class InvalidNationalId(ValidationError):
    code = "invalid_national_id"


class InvalidCardNumber(ValidationError):
    code = "invalid_card_number"


class NotFound(IdpError):
    code = "not_found"
    http_status = 404


class Conflict(IdpError):
    """The request is well-formed but clashes with what the register holds."""

    code = "conflict"
    http_status = 409


class SeriesOverlap(Conflict):
    code = "series_overlap"


class CardOutsideSeries(Conflict):
    code = "card_outside_series"


class NotAllowed(IdpError):
    """A rule of the register forbids this (e.g. a DUF number on a national card)."""

    code = "not_allowed"
    http_status = 403
