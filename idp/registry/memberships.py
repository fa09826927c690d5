"""Being a patron of several libraries: joining, activation (accepting the lending rules), the
home library, and what a library may see of a patron."""

from __future__ import annotations

from idp.errors import Conflict, NotAllowed, NotFound
from idp.registry import changes
from idp.registry.context import Registry
from idp.registry.libraries import current_rules, get_library
from idp.registry.models import Library, Membership, Patron
from idp.registry.patrons import read_full_record
from idp.registry.records import LimitedRecord, PatronRecord, limited_record


def _membership(patron: Patron, library: Library) -> Membership | None:
    return next((m for m in patron.memberships if m.library_id == library.id), None)


def add_to_library(reg: Registry, patron: Patron, isil: str) -> Membership:
    """A library adds the patron. Until they accept its rules it sees only name and card numbers."""
    library = get_library(reg, isil)
    if patron.local_library_id is not None and patron.local_library_id != library.id:
        raise NotAllowed("A local account lives in one library only; issue a national card to join others.")
    existing = _membership(patron, library)
    if existing is not None:
        return existing
    membership = Membership(library_id=library.id, added_at=reg.now())
    patron.memberships.append(membership)
    reg.session.flush()
    reg.notify(patron.id, "library_added", library=library.isil)
    reg.audit("membership.add", patron_id=patron.id, library_id=library.id)
    return membership


def accept_lending_rules(reg: Registry, patron: Patron, isil: str) -> Membership:
    """The patron accepts the library's lending rules as they stand now (the current version)."""
    library = get_library(reg, isil)
    rules = current_rules(reg, library)
    return _accept(reg, patron, library, rules.version if rules else None)


def accept_stated_rules(reg: Registry, patron: Patron, isil: str, version: int | None) -> Membership:
    """The patron accepted the rules text with ``version`` (a desk saying what it showed): it must be the
    library's current one, so nobody is recorded as accepting a text they never saw. A library with
    no rules text yet takes no version (None)."""
    library = get_library(reg, isil)
    rules = current_rules(reg, library)
    current = rules.version if rules else None
    if version != current:
        if current is None:
            raise Conflict(f"{library.isil} has no lending rules text yet: accept without a version.")
        raise Conflict(f"The current lending rules of {library.isil} are version {current}; "
                       "show the patron that text and send its version.")
    return _accept(reg, patron, library, current)


def _accept(reg: Registry, patron: Patron, library: Library, version: int | None) -> Membership:
    membership = _membership(patron, library) or add_to_library(reg, patron, library.isil)
    # Accepting a newer text is recorded too; the same one again changes nothing.
    if membership.rules_accepted_at is None or (version is not None and membership.rules_version != version):
        membership.rules_accepted_at, membership.rules_version = reg.now(), version
        reg.session.flush()
        reg.audit("membership.activate", patron_id=patron.id, library_id=library.id, rules_version=version)
    return membership


def set_home_library(reg: Registry, patron: Patron, isil: str) -> None:
    library = get_library(reg, isil)
    membership = _membership(patron, library)
    if membership is None or membership.rules_accepted_at is None:
        raise NotAllowed(f"The home library must be one where the patron is active; activate at {library.isil} first.")
    if patron.home_library_id != library.id:
        patron.home_library_id = library.id
        reg.session.flush()
        reg.session.refresh(patron, ["home_library"])
        reg.audit("patron.update", patron_id=patron.id, library_id=library.id, fields=["home_library"])


def library_view(reg: Registry, patron: Patron, isil: str) -> LimitedRecord | PatronRecord:
    """What ``isil`` may see: the full record once the patron is active there, else the minimum."""
    library = get_library(reg, isil)
    membership = _membership(patron, library)
    if membership is not None and membership.rules_accepted_at is not None:
        return read_full_record(reg, patron, purpose=f"library:{library.isil}")
    return limited_record(patron)


def require_active(reg: Registry, patron: Patron, isil: str) -> None:
    """A library changes a patron's details only once the patron is active there: before that it sees
    only the minimum, so it cannot know what it would overwrite."""
    library = get_library(reg, isil)
    membership = _membership(patron, library)
    if membership is None or membership.rules_accepted_at is None:
        raise NotAllowed(f"The patron has not accepted the lending rules of {library.isil}: record that first, "
                         "then change their details.")


def remove_from_library(reg: Registry, patron: Patron, isil: str) -> None:
    library = get_library(reg, isil)
    membership = _membership(patron, library)
    if membership is None:
        raise NotFound(f"The patron is not a patron of {library.isil}.")
    if patron.home_library_id == library.id:
        raise NotAllowed("That is the patron's home library; choose another home library first.")
    patron.memberships.remove(membership)
    reg.session.flush()
    reg.audit("membership.remove", patron_id=patron.id, library_id=library.id)
    # Told to the library left only: "left this library" is news to it alone, and it keeps no copy now.
    changes.record(reg, patron.id, [library.id], "left_library")
