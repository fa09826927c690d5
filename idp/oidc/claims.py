"""What a relying party learns: the claims its policy lists, that it asked for, that the patron
agreed to. A small first version; the plugin seam (issue: claim minimisation) replaces it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from flask_babel import lazy_gettext as _l

from idp.registry.models import Patron

# Which claims each scope asks for.
SCOPE_CLAIMS: Mapping[str, tuple[str, ...]] = {"patron": ("valid_patron",), "profile": ("name",),
                                               "email": ("email",)}
# The words the consent page uses for each fact.
DESCRIPTIONS: Mapping[str, Any] = {
    "valid_patron": _l("that you hold a valid library card"),
    "name": _l("your name"),
    "email": _l("your e-mail address"),
}


def requested(scopes: Iterable[str], claims_parameter: Mapping[str, Any] | None = None) -> set[str]:
    names = {claim for scope in scopes for claim in SCOPE_CLAIMS.get(scope, ())}
    for member in ("id_token", "userinfo"):
        names.update((claims_parameter or {}).get(member, {}) or {})
    return names


def releasable(policy: Iterable[str], asked: set[str]) -> list[str]:
    """Asked for, allowed by policy and known here; anything else is dropped silently."""
    return [name for name in policy if name in asked and name in DESCRIPTIONS]


def values(patron: Patron, names: Iterable[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in names:
        if name == "valid_patron":
            out[name] = patron.status == "active" and any(c.status == "active" for c in patron.cards)
        elif name == "name":
            out[name] = patron.name
        elif name == "email" and patron.email:
            out[name] = patron.email
    return out
