"""How SAML requests are refused: a page for the patron, or a status for the service provider.

``Rejected``: nothing in the message can be trusted enough to answer the SP (malformed XML, a
bad or missing signature, an unknown SP, an ACS URL not in its metadata). The web layer shows an
error page; the ``reason`` picks the patron's wording, the ``detail`` is for the log (entity ids
and reasons, never personal data).

``StatusError``: the request is authentic and its ACS known, so the SP gets a SAML error
Response (top-level status Requester or Responder with a sub-status), never an assertion.
"""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING

from saml2 import samlp

from idp.errors import IdpError

if TYPE_CHECKING:
    from idp.saml.sso import SsoRequest

REQUESTER = samlp.STATUS_REQUESTER
RESPONDER = samlp.STATUS_RESPONDER
REQUEST_DENIED = samlp.STATUS_REQUEST_DENIED
NO_AUTHN_CONTEXT = samlp.STATUS_NO_AUTHN_CONTEXT
NO_PASSIVE = samlp.STATUS_NO_PASSIVE
INVALID_NAME_ID_POLICY = samlp.STATUS_INVALID_NAMEID_POLICY
REQUEST_UNSUPPORTED = samlp.STATUS_REQUEST_UNSUPPORTED


class Reason(Enum):
    MALFORMED = "malformed"  # not a SAML message we can read: bad encoding, XML, DTD, too large
    UNKNOWN_SP = "unknown_sp"
    SIGNATURE = "signature"  # missing where the SP declares it signs, or not verifiable
    UNKNOWN_ACS = "unknown_acs"  # the ACS URL (or binding) asked for is not in the SP's metadata
    UNSOLICITED_REFUSED = "unsolicited_refused"
    EXPIRED = "expired"  # issued too long ago (or in the future)


class Rejected(IdpError):
    code = "saml_rejected"
    http_status = 400

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


class StatusError(IdpError):
    code = "saml_status"

    def __init__(self, request: SsoRequest, status: str, sub_status: str, message: str) -> None:
        super().__init__(message)
        self.request = request
        self.status = status
        self.sub_status = sub_status
