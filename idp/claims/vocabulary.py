"""The claim names a relying party's policy may list: a leaf, so every layer can read it.

The built-in names and ``age_over_NN`` (two digits, 01-99, as in ISO/IEC 18013-5); an installed
plugin may add more (idp.claims.catalogue.is_known_claim).
"""

from __future__ import annotations

import re

NAMED_CLAIMS: tuple[str, ...] = ("valid_patron", "loan_ban", "home_library", "libraries", "name", "email")
AGE_OVER_CLAIM = re.compile(r"age_over_(0[1-9]|[1-9][0-9])")
# Every name a policy may list without plugins of its own: each must have a plugin (catalogue checks).
POLICY_VOCABULARY: tuple[str, ...] = (*NAMED_CLAIMS, *(f"age_over_{n:02d}" for n in range(1, 100)))
# What OIDC discovery lists: the named claims and the common film-rating thresholds; any
# age_over_01..99 and any installed plugin's claim can be released where a policy allows it.
CLAIMS_SUPPORTED: tuple[str, ...] = (*NAMED_CLAIMS, *(f"age_over_{n:02d}" for n in (6, 9, 12, 15, 18)))
