"""How an OIDC request names claims: scopes, and the ``claims`` request parameter (OIDC Core 5.5).

Data and parsing only; the OIDC layer feeds the result to ``decide_for``. Anything that is not
the documented shape is ignored, never an error: a partner asking oddly simply gets less.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

from idp.claims.vocabulary import AGE_OVER_CLAIM

SCOPE_CLAIMS: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "patron": ("valid_patron",),
    "profile": ("name",),
    "email": ("email",),
    "library": ("home_library", "libraries", "loan_ban"),
})
# Claims the OIDC layer itself answers (subject, timing, assurance): not ours to release or drop.
PROTOCOL_CLAIMS = frozenset({"iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "azp",
                             "at_hash", "c_hash", "sid"})
_MEMBERS = ("id_token", "userinfo")
_MAX_PARAMETER = 8192  # characters of JSON; far more than any honest request needs
_MAX_NAME = 64


class ClaimsRequest(NamedTuple):
    names: tuple[str, ...]
    essential: tuple[str, ...]


def claims_for_scopes(scopes: Iterable[str] | str) -> tuple[str, ...]:
    """The claim names a set of scopes asks for (``age_over_NN`` is its own scope); others ignored."""
    if isinstance(scopes, str):
        scopes = scopes.split()
    names: list[str] = []
    for scope in scopes:
        if not isinstance(scope, str):
            continue
        if scope in SCOPE_CLAIMS:
            names.extend(SCOPE_CLAIMS[scope])
        elif AGE_OVER_CLAIM.fullmatch(scope):
            names.append(scope)
    return tuple(dict.fromkeys(names))


def parse_claims_parameter(parameter: str | Mapping[str, Any] | None) -> ClaimsRequest:
    """Requested and essential names from the ``claims`` parameter (JSON text or already decoded).

    Both members count; ``null`` asks voluntarily, ``{"essential": true}`` (the JSON true, nothing
    else) makes a name essential. The protocol's own claims (``acr``, ``auth_time``...) are left
    to the OIDC layer.
    """
    decoded = _decode(parameter)
    names: list[str] = []
    essential: list[str] = []
    for member in _MEMBERS:
        requests = decoded.get(member)
        if not isinstance(requests, Mapping):
            continue
        for name, spec in requests.items():
            if not isinstance(name, str) or not 0 < len(name) <= _MAX_NAME or name in PROTOCOL_CLAIMS:
                continue
            if spec is not None and not isinstance(spec, Mapping):
                continue  # neither null nor an object: not a request we understand
            names.append(name)
            if spec is not None and spec.get("essential") is True:
                essential.append(name)
    return ClaimsRequest(tuple(dict.fromkeys(names)), tuple(dict.fromkeys(essential)))


def _decode(parameter: str | Mapping[str, Any] | None) -> Mapping[str, Any]:
    if isinstance(parameter, str):
        if len(parameter) > _MAX_PARAMETER:
            return {}
        try:
            parameter = json.loads(parameter)
        except (ValueError, RecursionError):
            return {}
    return parameter if isinstance(parameter, Mapping) else {}
