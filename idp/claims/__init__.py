"""Claim minimisation, protocol-neutral and without Flask.

Each releasable claim comes from a small plugin (entry-point group ``idp.claims``) that declares
the register facts it needs and gets only those. A relying party's policy (its ``claims`` list)
says which claims it may receive; anything else it asks for is dropped. Every release is
recorded for the patron, by claim name, never by value.

The protocol layers use it like this::

    asked = parse_claims_parameter(request_claims)                # OIDC: the claims parameter
    decision = decide_for(rp, claims_for_scopes(scopes) + asked.names, asked.essential)
    # refuse the request if decision.forbidden_essential; otherwise, when issuing tokens:
    result = release(reg, patron_id, rp, decision.released, protocol="oidc")

and the consent page shows ``installed_claims().describe(name)`` for each released name,
translated with the web layer's gettext.
"""

from __future__ import annotations

from idp.claims.catalogue import GROUP, ClaimCatalogue, installed_claims, is_known_claim, load_claims
from idp.claims.facts import FIELDS, Facts, UndeclaredFact
from idp.claims.plugin import ClaimPlugin, NameFamily, RequestContext, Value
from idp.claims.policy import Decision, decide, decide_for
from idp.claims.release import Release, preview, release
from idp.claims.release_log import PROTOCOLS, ReleaseEntry, releases_for
from idp.claims.scopes import PROTOCOL_CLAIMS, SCOPE_CLAIMS, ClaimsRequest, claims_for_scopes, parse_claims_parameter
from idp.claims.wording import N_, Wording

__all__ = ["FIELDS", "GROUP", "N_", "PROTOCOLS", "PROTOCOL_CLAIMS", "SCOPE_CLAIMS", "ClaimCatalogue", "ClaimPlugin",
           "ClaimsRequest", "Decision", "Facts", "NameFamily", "Release", "ReleaseEntry", "RequestContext",
           "UndeclaredFact", "Value", "Wording", "claims_for_scopes", "decide", "decide_for", "installed_claims",
           "is_known_claim", "load_claims", "parse_claims_parameter", "preview", "release", "releases_for"]
