"""schemathesis against the SERVED OpenAPI document (issue 15, "Done means"): every operation the
document lists, whatever is added later, is called with generated valid and invalid input over real
HTTP, authenticated as the document says (a library system's bearer token, a partner's client
credentials), with real patrons in the register so that lookups find someone; then stateful runs
follow the document's OpenAPI links (a lookup's patron id into the next call). No answer may be a
5xx, and every answer must conform: a documented status code, its content type, a body valid
against its schema, the documented headers.

Bounded and repeatable for CI: a fixed number of examples per operation, derandomized, no example
database; both backends, since SQL and Redis sit behind every call.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import hypothesis
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from idp import relying_parties
from idp.registry import memberships
from tests.api.conftest import BERGEN, MakeDesk
from tests.flows.conftest import LiveIdp
from tests.nin import person
from tests.unit.factories import ADULT_BORN, patron

PASSWORD = "correct horse battery"
CONFORMS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
            response_headers_conformance]
# Per operation and generation mode; with the stateful runs below, about 40 s per backend here (20 operations).
EXAMPLES = 50
SCENARIOS = 25  # per chain of links


def _settings(examples: int) -> hypothesis.settings:
    return hypothesis.settings(max_examples=examples, derandomize=True, database=None, deadline=None,
                               # No shrinking: it replays calls against a register they have changed, and
                               # Hypothesis takes the different answers for a flaky strategy. A failure is
                               # reported as found, with its curl line.
                               phases=[Phase.explicit, Phase.generate],
                               suppress_health_check=list(HealthCheck), stateful_step_count=4)


# Registering makes what a later scenario finds answer differently (the same generated person is a 201,
# then a 409), and Hypothesis replays earlier scenarios' choices: it takes that for a flaky strategy. So
# stateful chains do not start there; registration is run on its own above and through its links in
# tests/api/test_desk.py, and its links' targets are reached from the other chains.
STATE_MAKING = {"registerPatron"}


@dataclass
class Register:
    """What the generated calls are given to find, and who makes them."""

    bodies: dict[str, list[dict[str, Any]]]  # operationId -> bodies naming real patrons
    credentials: dict[str, dict[str, str]]  # security scheme -> headers

    def headers(self, operation: schemathesis.APIOperation) -> dict[str, str]:
        schemes = [name for requirement in operation.definition.raw.get("security", []) for name in requirement]
        return dict(self.credentials[schemes[0]]) if schemes else {}


@pytest.fixture
def register(live: LiveIdp, make_desk: MakeDesk) -> Register:
    """Bergen's system, with patrons at home in Oslo: one has accepted Bergen's rules (the full record),
    one is a member who has not (the limited view, a record Bergen may read), one is Oslo's only (not
    readable by id); a partner with a signed DPA for /verify."""
    make_desk()  # Oslo, the patrons' home library
    desk = make_desk(isil=BERGEN, name="Bergen")
    cards, nids = [], []
    with live.services.registry("test") as reg:
        for nth in range(3):
            nid = person(ADULT_BORN, nth)
            found, card = patron(reg, nth=nth, national_id=nid, password=PASSWORD)
            if nth == 0:
                memberships.accept_lending_rules(reg, found, BERGEN)
            elif nth == 1:
                memberships.add_to_library(reg, found, BERGEN)
            cards.append(card.number)
            nids.append(nid)
        partner, secret = relying_parties.add_oidc(
            reg, "Conformance partner", ["https://partner.example/cb"], claims=["valid_patron", "age_over_18"],
            dpa_signed=reg.today() - timedelta(days=1))
        basic = base64.b64encode(f"{partner.client_id}:{secret}".encode()).decode()
    spelled = [" ".join(number[i:i + 3] for i in range(0, len(number), 3)).lower() for number in cards]
    return Register(
        bodies={"lookupPatron": [{"card_number": n} for n in cards + spelled] + [{"national_id": n} for n in nids],
                "verifyCard": [{"card_number": n, "password": PASSWORD, "age_over": [18]} for n in cards]},
        credentials={"libraryToken": {"Authorization": f"Bearer {desk.token}"},
                     "partnerCredentials": {"Authorization": f"Basic {basic}"}})


def _served(live: LiveIdp, register: Register) -> schemathesis.BaseSchema:
    """The document as the server serves it, with generated bodies sometimes swapped for ones naming
    real patrons (otherwise a lookup almost never finds anyone and the links are never followed)."""
    schema = schemathesis.openapi.from_url(f"{live.url}/api/v1/openapi.json")

    @schema.hook
    def flatmap_case(context: schemathesis.HookContext, case: schemathesis.Case) -> st.SearchStrategy[Any]:
        known = register.bodies.get(case.operation.definition.raw.get("operationId", ""))
        meta = case.meta
        if not known or meta is None or meta.generation.mode is not GenerationMode.POSITIVE:
            return st.just(case)  # invalid input stays invalid: its answer must be a 4xx
        return st.sampled_from([None, *known]).map(lambda found: case if found is None else _with_body(case, found))

    return schema


def _with_body(case: schemathesis.Case, found: dict[str, Any]) -> schemathesis.Case:
    case.body = dict(found)
    return case


def _generated_calls(operation: schemathesis.APIOperation, mode: GenerationMode,
                     register: Register) -> Callable[[], None]:
    """Valid input must get a documented answer; invalid input, in addition, a 4xx."""
    checks = CONFORMS + ([negative_data_rejection] if mode is GenerationMode.NEGATIVE else [])

    @hypothesis.given(case=operation.as_strategy(mode, headers=register.headers(operation)))
    @_settings(EXAMPLES)
    def conforms(case: schemathesis.Case) -> None:
        case.call_and_validate(checks=checks, timeout=30)

    return conforms


def _run(check: Callable[[], None], mode: GenerationMode) -> str | None:
    try:
        check()
    except Unsatisfiable:
        if mode is GenerationMode.NEGATIVE:
            return None  # nothing to get wrong: no parameters and no body (e.g. a plain GET of a list)
        raise
    except Exception as failure:  # noqa: BLE001 - every operation is run; the failures are reported together
        return f"{type(failure).__name__}: {failure}"
    return None


@pytest.mark.backends
def test_every_operation_answers_as_documented(live: LiveIdp, register: Register) -> None:
    schema = _served(live, register)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {"lookupPatron", "getPatron", "verifyCard"} <= {op.definition.raw["operationId"] for op in operations}
    failures = {}
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            failed = _run(_generated_calls(operation, mode, register), mode)
            if failed:
                failures[f"{operation.label} ({mode.value})"] = failed
    assert not failures, "\n\n".join(f"{label}:\n{text}" for label, text in failures.items())


def chains(document: dict[str, Any]) -> list[set[str]]:
    """The operations reachable along links from each operation that has links, largest first, leaving
    out a chain inside one already listed. schemathesis starts its scenarios only at operations it
    judges likely to succeed with generated data, and over the whole document that can leave out a
    lookup (its card number looks like a reference to something); run chain by chain, each chain's
    first operations are where its scenarios start."""
    links: dict[str, set[str]] = {}
    for item in document["paths"].values():
        for operation in item.values():
            if operation["operationId"] in STATE_MAKING:
                continue
            targets = {link["operationId"] for response in operation["responses"].values()
                       for link in response.get("links", {}).values()}
            if targets:
                links[operation["operationId"]] = targets
    reachable = []
    for start in links:
        found, todo = {start}, [start]
        while todo:
            for target in links.get(todo.pop(), set()) - found:
                found.add(target)
                todo.append(target)
        reachable.append(found)
    kept: list[set[str]] = []
    for chain in sorted(reachable, key=len, reverse=True):
        if not any(chain <= other for other in kept):
            kept.append(chain)
    return kept


@pytest.mark.backends
def test_calls_that_follow_the_documents_links_answer_as_documented(live: LiveIdp, register: Register) -> None:
    schema = _served(live, register)
    document = requests.get(f"{live.url}/api/v1/openapi.json", timeout=30).json()
    found = chains(document)
    assert any({"lookupPatron", "getPatron"} <= chain for chain in found), found
    for chain in found:
        class Desk(schema.include(operation_id=sorted(chain)).as_state_machine()):  # type: ignore[misc]
            def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, Any]:
                # A generated Idempotency-Key is drawn again in later scenarios and the server answers
                # the first request's outcome (or 422): state across scenarios, which Hypothesis takes
                # for a flaky strategy. Keys are tested on their own (tests/api/test_desk.py).
                if case.headers:
                    case.headers.pop("Idempotency-Key", None)
                return {"headers": register.headers(case.operation), "timeout": 30}

            def validate_response(self, response: schemathesis.Response, case: schemathesis.Case,
                                  additional_checks: Any = None, **kwargs: Any) -> None:
                case.validate_response(response, checks=CONFORMS, headers=kwargs.get("headers"),
                                       transport_kwargs=kwargs)

        Desk.run(settings=_settings(SCENARIOS))


# -- what schemathesis found, kept as plain tests ------------------------------------------------

@pytest.mark.backends
def test_a_patron_id_beyond_the_registers_range_is_not_found(live: LiveIdp, register: Register) -> None:
    """An id too big for the database's integer (SQLite's 64 bits, PostgreSQL's 32) was a 500. It is
    checked once for every operation (any path parameter named *_id), so later operations are safe too."""
    for patron_id in (2**31, 2**63, 10899056097485246464):
        answer = requests.get(f"{live.url}/api/v1/patrons/{patron_id}", headers=register.credentials["libraryToken"],
                              timeout=30)
        assert answer.status_code == 404, answer.text
        assert answer.headers["Content-Type"] == "application/problem+json"
        assert answer.json()["type"] == "/api/v1/problems/patron-not-found"
