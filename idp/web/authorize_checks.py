"""What /authorize refuses before pyop reads the request, and what pyop may raise on bad input.

pyop and oic turn malformed input into whatever their parsers raise (AssertionError on a request
object, DecodeError on a bad ``claims``, ValueError on ``max_age=soon``, RecursionError on deep
JSON): each must end as the protocol's error, never a 500 (OpenID Connect Core 3.1.2.6).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

from jwkest import JWKESTException
from oic.exception import PyoidcError
from werkzeug.datastructures import MultiDict

# Whatever parsing a hostile authentication request can raise in pyop, oic and pyjwkest.
UNPARSEABLE: tuple[type[BaseException], ...] = (PyoidcError, JWKESTException, AssertionError, ValueError, TypeError,
                                                KeyError, RecursionError, UnicodeError)

# Parameters whose features we do not offer: the spec names the error for each (Core 6.1, 6.2, Registration 2.1).
_UNSUPPORTED = {"request": "request_not_supported", "request_uri": "request_uri_not_supported",
                "registration": "registration_not_supported"}
_MAX_AGE = re.compile(r"[0-9]{1,9}")  # seconds: up to about 31 years


def request_problem(values: MultiDict[str, str]) -> tuple[str, str] | None:
    """The OAuth error code and description for a request we refuse on sight, else None."""
    repeated = sorted(name for name in values if len(values.getlist(name)) > 1)
    if repeated:
        # RFC 6749 3.1: parameters MUST NOT be included more than once.
        return "invalid_request", f"repeated parameter(s): {', '.join(repeated)}"
    for name, error in _UNSUPPORTED.items():
        if name in values:
            return error, f"the {name} parameter is not supported"
    max_age = values.get("max_age")
    if max_age is not None and not _MAX_AGE.fullmatch(max_age):
        return "invalid_request", "max_age must be a number of seconds"
    claims = values.get("claims")
    if claims is not None and not isinstance(_json_object(claims), Mapping):
        return "invalid_request", "claims must be a JSON object"
    return None


def unambiguous_target(values: MultiDict[str, str]) -> bool:
    """Whether client and redirect URI are each given once: only then may an error be redirected."""
    return all(len(values.getlist(name)) == 1 for name in ("client_id", "redirect_uri"))


def _json_object(text: str) -> object:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None
