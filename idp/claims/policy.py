"""Which requested claims a relying party gets: those its policy lists and a plugin provides.

Asking for more is never an error: the extra names are dropped (and logged, names only). Only
the protocol layer decides what to do about an *essential* claim that cannot be released.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from idp.claims.catalogue import ClaimCatalogue, installed_claims
from idp.registry.models import RelyingParty

log = logging.getLogger("idp.claims")


@dataclass(frozen=True)
class Decision:
    released: tuple[str, ...]  # in the order of the policy
    dropped: tuple[str, ...]  # requested but not allowed, or no plugin knows them
    forbidden_essential: tuple[str, ...]  # essential, yet not released: the protocol layer refuses

    @property
    def refused(self) -> bool:
        return bool(self.forbidden_essential)


def _names(items: Iterable[object] | str | None) -> list[str]:
    # Requests come from the outside: skip anything that is not a string, keep the first of repeats.
    if isinstance(items, str):
        items = (items,)  # one name, not its letters
    return list(dict.fromkeys(n for n in (items or ()) if isinstance(n, str)))


def decide(policy: Iterable[str] | None, requested: Iterable[str], essential: Iterable[str] = (), *,
           known: Callable[[str], bool]) -> Decision:
    """Pure: released = requested (essential ones included) ∩ policy ∩ known."""
    essential_names = _names(essential)
    asked = _names([*_names(requested), *essential_names])
    wanted = set(asked)
    released = tuple(n for n in _names(policy) if n in wanted and known(n))
    kept = set(released)
    return Decision(released=released, dropped=tuple(n for n in asked if n not in kept),
                    forbidden_essential=tuple(n for n in essential_names if n not in kept))


def decide_for(relying_party: RelyingParty, requested: Iterable[str], essential: Iterable[str] = (), *,
               claims: ClaimCatalogue | None = None) -> Decision:
    """``decide`` with the relying party's policy and the installed plugins, logged (names only)."""
    catalogue = claims if claims is not None else installed_claims()
    decision = decide(relying_party.claims, requested, essential, known=catalogue.provides)
    # %r of a tuple escapes control characters, so a name from a request cannot forge a log line.
    level = logging.INFO if decision.dropped else logging.DEBUG
    log.log(level, "claims for %s: released %r, dropped %r, essential refused %r", relying_party.client_id,
            decision.released, decision.dropped, decision.forbidden_essential)
    return decision
