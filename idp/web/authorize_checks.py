"""What /authorize refuses before pyop reads the request (what pyop may raise on bad input is
idp.oidc.authorization.UNPARSEABLE)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

from werkzeug.datastructures import MultiDict

from idp.oidc.errors import (InvalidRequest, OidcError, RegistrationNotSupported, RequestNotSupported,
                             RequestUriNotSupported)

# Parameters whose features we do not offer: the spec names the error for each (Core 6.1, 6.2, Registration 2.1).
_UNSUPPORTED: dict[str, type[OidcError]] = {"request": RequestNotSupported, "request_uri": RequestUriNotSupported,
                                            "registration": RegistrationNotSupported}
_MAX_AGE = re.compile(r"[0-9]{1,9}")  # seconds: up to about 31 years


def request_problem(values: MultiDict[str, str]) -> OidcError | None:
    """The error for a request we refuse on sight, else None."""
    repeated = sorted(name for name in values if len(values.getlist(name)) > 1)
    if repeated:
        # RFC 6749 3.1: parameters MUST NOT be included more than once.
        return InvalidRequest(f"repeated parameter(s): {', '.join(repeated)}")
    for name, error in _UNSUPPORTED.items():
        if name in values:
            return error(f"the {name} parameter is not supported")
    max_age = values.get("max_age")
    if max_age is not None and not _MAX_AGE.fullmatch(max_age):
        return InvalidRequest("max_age must be a number of seconds")
    claims = values.get("claims")
    if claims is not None and not isinstance(_json_object(claims), Mapping):
        return InvalidRequest("claims must be a JSON object")
    return None


def unambiguous_target(values: MultiDict[str, str]) -> bool:
    """Whether client and redirect URI are each given once: only then may an error be redirected."""
    return all(len(values.getlist(name)) == 1 for name in ("client_id", "redirect_uri"))


def _json_object(text: str) -> object:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None
