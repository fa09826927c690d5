"""The one delivery failure (part of idp.errors' hierarchy)."""

from __future__ import annotations

from idp.errors import IdpError


class DeliveryError(IdpError):
    """A message could not be handed over. The text is for the operator (it names the setting or
    the server's answer) and never holds the recipient or the message; patrons see a general page."""

    code = "delivery_failed"
    http_status = 502
