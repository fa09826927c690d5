"""Fields a federation owns for a patron: read-only here, for the patron and for staff.

A university's name for its student, say: the federation refreshes them at each login
(idp.registry.upstream.refresh_owned_fields); a change in the register (idp.registry.patrons)
asks ``refuse_owned`` first.
"""

from __future__ import annotations

from sqlalchemy import select

from idp.errors import NotAllowed
from idp.registry.context import Registry
from idp.registry.models import Federation, Patron, UpstreamIdentity


def owned_fields(reg: Registry, patron: Patron | int) -> dict[str, str]:
    """Field -> display name of the federation that owns it (read-only for patron and staff)."""
    patron_id = patron if isinstance(patron, int) else patron.id
    owned: dict[str, str] = {}
    rows = reg.session.execute(select(Federation.display_name, Federation.attribute_map)
                               .join(UpstreamIdentity, UpstreamIdentity.federation_id == Federation.id)
                               .where(UpstreamIdentity.patron_id == patron_id).order_by(Federation.id))
    for display_name, mapping in rows:
        for field in mapping or {}:
            owned.setdefault(field, display_name)
    return owned


class FieldOwned(NotAllowed):
    """A change touched fields a federation owns; ``fields`` names them (e.g. for an API's problem)."""

    code = "field_owned"

    def __init__(self, message: str, fields: list[str]) -> None:
        super().__init__(message)
        self.fields = fields


def refuse_owned(reg: Registry, patron: Patron, fields: list[str]) -> None:
    """Raise FieldOwned (a NotAllowed) if any of ``fields`` is owned by a federation (called before a change)."""
    owned = owned_fields(reg, patron)
    clash = [f for f in fields if f in owned]
    if clash:
        owners = sorted({owned[f] for f in clash})
        raise FieldOwned(f"{', '.join(clash)} {'is' if len(clash) == 1 else 'are'} kept up to date by "
                         f"{', '.join(owners)} and cannot be changed here; change it there.", clash)
