"""SMS through a gateway: the ``SmsGateway`` protocol and its HTTP implementation.

``HttpSmsGateway`` POSTs ``{"to": "+4799999999", "message": "..."}`` as JSON to ``IDP_SMS_URL``
with ``Authorization: Bearer IDP_SMS_TOKEN`` and waits at most ``TIMEOUT`` seconds. Any 2xx
answer is success; anything else (an error status, a redirect, a timeout) is a DeliveryError
naming the status or the failure, never the number or the text.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any, Protocol

from idp.delivery.errors import DeliveryError

TIMEOUT = 10.0


class SmsGateway(Protocol):
    def send_sms(self, to: str, text: str) -> None:
        """Hand one text message to the gateway; raise DeliveryError if it is not accepted."""


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A gateway that redirects a POST is misconfigured: report it rather than re-send elsewhere."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class HttpSmsGateway:
    def __init__(self, url: str, token: str | None, timeout: float = TIMEOUT) -> None:
        self.url = url
        self._token = token
        self.timeout = timeout
        self._opener = urllib.request.build_opener(_NoRedirects())

    def __repr__(self) -> str:
        return "<HttpSmsGateway>"

    def send_sms(self, to: str, text: str) -> None:
        headers = {"Content-Type": "application/json", "Accept": "application/json",
                   "User-Agent": "patron-idp"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        # IDP_SMS_URL is an absolute http(s) URL, https in production (idp.settings checks it).
        request = urllib.request.Request(self.url, data=json.dumps({"to": to, "message": text}).encode(),  # noqa: S310
                                         headers=headers, method="POST")
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                response.read(65536)
                status = response.status
        except urllib.error.HTTPError as exc:
            exc.close()
            hint = " (check IDP_SMS_TOKEN)" if exc.code in (401, 403) else ""
            raise DeliveryError(f"the SMS gateway refused the message (HTTP {exc.code}){hint}") from None
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise DeliveryError(f"the SMS gateway could not be reached ({type(reason).__name__}; "
                                "check IDP_SMS_URL)") from None
        if not 200 <= status < 300:
            raise DeliveryError(f"the SMS gateway did not accept the message (HTTP {status})")
