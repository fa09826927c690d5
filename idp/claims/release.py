"""The one path by which claim values leave the IdP, whatever the protocol.

OIDC, SAML and the back-channel API all call ``release``: it applies the relying party's policy
again (so a protocol layer cannot release more by mistake), reads only the facts the plugins in
play declared, computes the values and records the names in the patron's release log. Where a
plugin gives a reason for refusing the patron something (valid_patron false because no library of
theirs is compliant), the release writes it to the audit trail: the patron's log holds names only.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from idp.claims.catalogue import ClaimCatalogue, installed_claims
from idp.claims.facts import Facts, load_facts
from idp.claims.plugin import RequestContext, Value, check_value
from idp.claims.policy import decide
from idp.claims.release_log import PROTOCOLS, record_release
from idp.errors import NotAllowed, ValidationError
from idp.registry.context import Registry
from idp.registry.models import RelyingParty
from idp.registry.partners import refusal_reason

log = logging.getLogger("idp.claims")


@dataclass(frozen=True)
class Release:
    """The claims one relying party gets about one patron: ``names`` are the keys of ``values``,
    in policy order. A claim with no value (no birth date, no e-mail) is left out, not guessed.
    ``values`` is a plain dict, ready for a token or an assertion, and new on every call."""

    values: dict[str, Value]
    names: tuple[str, ...]
    reasons: dict[str, str] = field(default_factory=dict)  # claim name -> why it refuses (for the audit)

    def __repr__(self) -> str:
        return f"<Release {', '.join(self.names) or 'nothing'}>"  # names only: values are personal data


def release(reg: Registry, patron_id: int, relying_party: RelyingParty, names: Iterable[str], *, protocol: str,
            claims: ClaimCatalogue | None = None) -> Release:
    """Compute the claims ``names`` allowed by the policy, record the release, return it.

    Nothing is recorded when nothing is released, or when the patron is no longer in the
    register (then ``valid_patron`` is false and every other claim is left out).
    """
    result, patron_exists = _compute(reg, patron_id, relying_party, names, protocol, claims)
    if result.names and patron_exists:
        record_release(reg, patron_id, relying_party, result.names, protocol=protocol)
    _audit_reasons(reg, patron_id, relying_party, result, protocol)
    log.debug("released %r to %s over %s", result.names, relying_party.client_id, protocol)
    return result


def valid_patron(reg: Registry, patron_id: int, relying_party: RelyingParty, *, protocol: str,
                 claims: ClaimCatalogue | None = None) -> bool:
    """``valid_patron`` as a check answers it whatever the partner's policy lists (the back-channel
    check is asked exactly this): computed by the same plugin, its refusal audited, not in the
    patron's release log (it is the answer to the check, not a claim released)."""
    result = _compute(reg, patron_id, relying_party, ["valid_patron"], protocol, claims,
                      policy=["valid_patron"])[0]
    _audit_reasons(reg, patron_id, relying_party, result, protocol)
    return result.values.get("valid_patron") is True


def _audit_reasons(reg: Registry, patron_id: int, relying_party: RelyingParty, result: Release,
                   protocol: str) -> None:
    for name, reason in result.reasons.items():
        reg.audit("claims.refused", patron_id=patron_id, client_id=relying_party.client_id, claim=name,
                  reason=reason, protocol=protocol)


def preview(reg: Registry, patron_id: int, relying_party: RelyingParty, names: Iterable[str], *, protocol: str,
            claims: ClaimCatalogue | None = None) -> Release:
    """What ``release`` would give, without recording it (e.g. to show the patron before consent)."""
    return _compute(reg, patron_id, relying_party, names, protocol, claims)[0]


def _compute(reg: Registry, patron_id: int, relying_party: RelyingParty, names: Iterable[str], protocol: str,
             claims: ClaimCatalogue | None, *, policy: Iterable[str] | None = None) -> tuple[Release, bool]:
    if protocol not in PROTOCOLS:
        raise ValidationError(f"Unknown protocol {protocol!r} for a claim release; use one of: {', '.join(PROTOCOLS)}.")
    today = reg.today()
    reason = refusal_reason(relying_party, today)
    if reason is not None:
        # The protocol layers refuse such partners before login; this is the backstop.
        raise NotAllowed(f"Relying party {relying_party.client_id} may not receive claims ({reason}).")
    catalogue = claims if claims is not None else installed_claims()
    allowed = relying_party.claims if policy is None else policy
    released = decide(allowed, names, known=catalogue.provides).released
    plugins = [(name, plugin) for name in released if (plugin := catalogue.plugin_for(name)) is not None]
    needed = frozenset().union(*(plugin.needs for _, plugin in plugins))
    loaded = load_facts(reg, patron_id, needed) if plugins else {}
    facts_of = loaded if loaded is not None else dict.fromkeys(needed)
    request = RequestContext(client_id=relying_party.client_id, relying_party=relying_party.name,
                             protocol=protocol, today=today)
    values: dict[str, Value] = {}
    reasons: dict[str, str] = {}
    for name, plugin in plugins:
        facts = Facts(repr(plugin.label), {fact: facts_of[fact] for fact in plugin.needs})
        value = check_value(plugin, name, plugin.compute(name, facts, request))
        if value is not None:
            values[name] = value
        reason = plugin.reason(name, facts, request) if plugin.reason is not None else None
        if reason:
            reasons[name] = reason
    return Release(values, tuple(values), reasons), loaded is not None
