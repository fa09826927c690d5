"""NameIDs: persistent (pairwise per SP, derived, never stored) or transient (new at each login).

A persistent NameID is the subject the OIDC pairwise logic gives the sector named by the SP's
entity id (``idp.oidc.subjects.Subjects``): stable for one SP on every worker and after every
restart, different between SPs, and unlinkable without the data key. No email or other
personal format is offered.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence

from saml2.saml import NAMEID_FORMAT_PERSISTENT, NAMEID_FORMAT_TRANSIENT, NAMEID_FORMAT_UNSPECIFIED, NameID

from idp.subjects import Subjects

PERSISTENT = NAMEID_FORMAT_PERSISTENT
TRANSIENT = NAMEID_FORMAT_TRANSIENT
UNSPECIFIED = NAMEID_FORMAT_UNSPECIFIED
SUPPORTED: tuple[str, ...] = (PERSISTENT, TRANSIENT)


def allowed_formats(declared: Iterable[str]) -> list[str]:
    """The formats an SP may get: those its metadata declares that we support, in its order;
    both when it declares none of them."""
    chosen = [f for f in dict.fromkeys(declared) if f in SUPPORTED]
    return chosen or list(SUPPORTED)


def choose_format(requested: str | None, allowed: Sequence[str]) -> str | None:
    """The format to answer with: the requested one when allowed, the SP's first when it leaves
    the choice to us; None when it insists on one it may not have."""
    if not requested or requested == UNSPECIFIED:
        return allowed[0] if allowed else PERSISTENT
    return requested if requested in allowed else None


def name_id(fmt: str, patron_id: int, *, sp_entity_id: str, idp_entity_id: str, subjects: Subjects) -> NameID:
    value = subjects.subject(patron_id, sp_entity_id) if fmt == PERSISTENT else secrets.token_urlsafe(24)
    return NameID(format=fmt, text=value, name_qualifier=idp_entity_id, sp_name_qualifier=sp_entity_id)
