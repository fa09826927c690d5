"""The claims the IdP ships with, one small plugin each (registered in pyproject.toml).

Each declares the few facts it reads; the engine gives it nothing else.
"""

from __future__ import annotations

from collections.abc import Callable

from idp.claims.facts import Facts
from idp.claims.plugin import ClaimPlugin, NameFamily, RequestContext, Value
from idp.claims.vocabulary import AGE_OVER_CLAIM
from idp.claims.wording import N_, Wording
from idp.registry.dates import age_on

AGE_PREFIX = "age_over_"


def _valid_patron(name: str, facts: Facts, request: RequestContext) -> Value:
    # A deleted patron has no row, so every fact is None and this is False, never an error.
    # A patron active at no compliant library is a local patron only (idp.registry.agreements).
    return facts.status == "active" and facts.card_active is True and facts.at_compliant_library is True


def _why_not_valid(name: str, facts: Facts, request: RequestContext) -> str | None:
    """For the audit: a card holder refused only because no library of theirs is compliant."""
    if facts.status == "active" and facts.card_active is True and facts.at_compliant_library is False:
        return "no_compliant_library"
    return None


def _age_over(name: str, facts: Facts, request: RequestContext) -> Value | None:
    if facts.birth_date is None:
        return None  # no birth date registered: say nothing rather than guess
    # age_on is the register's one age rule (guardians use it too): a 29 February birthday is
    # reached on 1 March in other years; "today" is the Oslo date of the register's clock.
    return age_on(facts.birth_date, request.today) >= int(name[len(AGE_PREFIX):])


def _age_wording(name: str) -> Wording:
    return Wording(N_("that you are at least %(age)d years old"), {"age": int(name[len(AGE_PREFIX):])})


def _fact(field: str) -> Callable[[str, Facts, RequestContext], Value | None]:
    """A claim that is one fact as it stands (None, and so omitted, when the register has none)."""
    def compute(name: str, facts: Facts, request: RequestContext) -> Value | None:
        value = getattr(facts, field)
        return list(value) if isinstance(value, tuple) else value
    return compute


VALID_PATRON = ClaimPlugin(names=("valid_patron",), needs=frozenset({"status", "card_active", "at_compliant_library"}),
                           compute=_valid_patron, reason=_why_not_valid,
                           wording=Wording(N_("that you hold a valid library card")))

AGE_OVER = ClaimPlugin(family=NameFamily(AGE_PREFIX, lambda nn: AGE_OVER_CLAIM.fullmatch(AGE_PREFIX + nn) is not None,
                                         label="age_over_NN"),
                       needs=frozenset({"birth_date"}), compute=_age_over, wording=_age_wording)

LOAN_BAN = ClaimPlugin(names=("loan_ban",), needs=frozenset({"loan_ban"}), compute=_fact("loan_ban"),
                       wording=Wording(N_("whether you are barred from borrowing")))

HOME_LIBRARY = ClaimPlugin(names=("home_library",), needs=frozenset({"home_library"}), compute=_fact("home_library"),
                           wording=Wording(N_("your home library")))

LIBRARIES = ClaimPlugin(names=("libraries",), needs=frozenset({"libraries"}), compute=_fact("libraries"),
                        wording=Wording(N_("the libraries you are a member of")))

# Personal data: released only to partners whose policy lists them, like every claim.
NAME = ClaimPlugin(names=("name",), needs=frozenset({"name"}), compute=_fact("name"), wording=Wording(N_("your name")))

EMAIL = ClaimPlugin(names=("email",), needs=frozenset({"email"}), compute=_fact("email"),
                    wording=Wording(N_("your e-mail address")))
