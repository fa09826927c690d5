"""The OpenAPI document as served at /api/v1/openapi.json, and its browsable page /api/v1/docs (issue 15,
"Conventions"): OpenAPI 3.1 and valid, every $ref resolves, every register operation asks for a library
system's token with its one scope, problem documents are application/problem+json, links lead to
operations that exist, and the page shows every operation (axe-core checks it in a real browser:
tests/flows/test_api_docs_browser.py, beside the suite's one Chromium).

Checked over every operation the document lists, so operations added later are held to the same rules.
"""

from __future__ import annotations

import html
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from openapi_spec_validator import OpenAPIV31SpecValidator, validate

from tests.api.conftest import MakeDesk
from tests.flows.conftest import LiveIdp
from tests.unit.factories import patron

PROBLEM = "application/problem+json"
PARTNER_OPERATIONS = {"verifyCard"}  # the partners' check, authenticated as a relying party
Operation = tuple[str, str, dict[str, Any]]  # path, method, the operation object


@pytest.fixture
def document(live: LiveIdp) -> dict[str, Any]:
    served = requests.get(f"{live.url}/api/v1/openapi.json", timeout=30)
    assert served.status_code == 200 and served.headers["Content-Type"] == "application/json"
    return dict(served.json())


def operations(document: dict[str, Any]) -> Iterator[Operation]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield path, method, operation


def register_operations(document: dict[str, Any]) -> list[Operation]:
    return [op for op in operations(document) if op[2]["operationId"] not in PARTNER_OPERATIONS]


def references(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from references(value)
    elif isinstance(node, list):
        for value in node:
            yield from references(value)


def resolve(document: dict[str, Any], reference: str) -> Any:
    """A local JSON pointer (RFC 6901) into the document; KeyError if it points at nothing."""
    assert reference.startswith("#/"), f"{reference}: only references inside the document are expected"
    node: Any = document
    for part in reference[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def test_the_document_is_valid_openapi_3_1_and_every_reference_resolves(document: dict[str, Any]) -> None:
    assert document["openapi"].startswith("3.1.")
    validate(document, cls=OpenAPIV31SpecValidator)  # raises on the first violation of OpenAPI 3.1
    found = set(references(document))
    assert found, "the document names its schemas by reference"
    unresolved = []
    for reference in sorted(found):
        try:
            resolve(document, reference)
        except (KeyError, IndexError, ValueError):
            unresolved.append(reference)
    assert not unresolved, unresolved
    ids = [operation["operationId"] for _, _, operation in operations(document)]
    assert len(ids) == len(set(ids)), "operationIds are unique"
    assert {"lookupPatron", "getPatron", "verifyCard"} <= set(ids)


def test_every_register_operation_asks_for_a_library_token_with_its_one_scope(document: dict[str, Any]) -> None:
    scheme = document["components"]["securitySchemes"]["libraryToken"]
    scopes = scheme["flows"]["clientCredentials"]["scopes"]
    assert set(scopes) == {"register.read", "register.write", "cards", "series"}
    assert scheme["flows"]["clientCredentials"]["tokenUrl"].endswith("/token")
    assert "security" not in document, "no document-wide default: each operation says what it needs"
    for path, method, operation in register_operations(document):
        label = f"{method.upper()} {path}"
        security = operation.get("security")
        assert security and len(security) == 1 and list(security[0]) == ["libraryToken"], label
        assert len(security[0]["libraryToken"]) == 1 and security[0]["libraryToken"][0] in scopes, label
        assert "register" in operation.get("tags", []), label
        assert {"401", "403"} <= set(operation["responses"]), f"{label}: refusals are documented"
    for _, _, operation in operations(document):
        if operation["operationId"] in PARTNER_OPERATIONS:
            assert operation["security"] == [{"partnerCredentials": []}]


def test_register_errors_are_problem_documents_and_answers_are_json(document: dict[str, Any]) -> None:
    problem_schema = document["components"]["schemas"]["ProblemDocument"]
    assert {"type", "title", "status"} <= set(problem_schema["required"])
    for path, method, operation in register_operations(document):
        for status, response in operation["responses"].items():
            where = f"{method.upper()} {path} {status}"
            content = response.get("content", {})
            if status.startswith(("4", "5")):
                assert list(content) == [PROBLEM], where
                assert content[PROBLEM]["schema"] == {"$ref": "#/components/schemas/ProblemDocument"}, where
            elif content:
                assert list(content) == ["application/json"], where


def test_links_lead_to_operations_that_exist_with_the_parameters_they_fill(document: dict[str, Any]) -> None:
    by_id = {operation["operationId"]: operation for _, _, operation in operations(document)}
    links = [(operation["operationId"], status, name, link)
             for _, _, operation in operations(document)
             for status, response in operation["responses"].items()
             for name, link in response.get("links", {}).items()]
    assert ("lookupPatron", "200", "patron") in {(source, status, name) for source, status, name, _ in links}
    for source, status, name, link in links:
        where = f"{source} {status} link {name}"
        assert link["operationId"] in by_id, where
        # A link names a parameter plainly or qualified by where it goes ("header.If-Match"), as OpenAPI allows.
        accepted = {name for parameter in by_id[link["operationId"]].get("parameters", [])
                    for name in (parameter["name"], f"{parameter['in']}.{parameter['name']}")}
        assert set(link.get("parameters", {})) <= accepted, where
        assert str(status).startswith("2"), f"{where}: only a success leads on"


def test_the_browsable_page_shows_every_operation_with_its_scope(live: LiveIdp, document: dict[str, Any]) -> None:
    page = requests.get(f"{live.url}/api/v1/docs", timeout=30)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    text = html.unescape(page.text)
    for path, method, operation in operations(document):
        assert f'id="op-{operation["operationId"]}"' in text
        assert f"{method.upper()} {path}" in text
        for requirement in operation.get("security", []):
            for scheme, scopes in requirement.items():
                assert scheme in text and all(f"<code>{scope}</code>" in text for scope in scopes)
        for status in operation["responses"]:
            assert f"<td>{status}</td>" in text
    assert "/api/v1/openapi.json" in text



def test_every_operation_documented_to_require_if_match_refuses_a_change_without_it(
        live: LiveIdp, document: dict[str, Any], make_desk: MakeDesk) -> None:
    # Issue 15: "a required If-Match on changes (428 without it)". The document says which operations change
    # a record; each must refuse a call without If-Match, and its links must carry the ETag they need.
    desk = make_desk()
    with live.services.registry("test") as reg:
        kari, _ = patron(reg)
        patron_id = kari.id
    bodies = {"changeContact": {"phone": "+47 400 00 000"}, "acceptLendingRules": {}, "issueCard": {"number": "1"},
              "mergeLocalCard": {"local_card": "L-1"}, "setLoanBan": {}}
    guarded = [(path, method, op) for path, method, op in register_operations(document)
               if any(p["name"] == "If-Match" and p["required"] for p in op["parameters"])]
    assert {op["operationId"] for _, _, op in guarded} >= {"changeContact", "setLoanBan", "addMembership", "issueCard"}
    for path, method, op in guarded:
        assert {"412", "428"} <= set(op["responses"]), op["operationId"]
        answer = desk.call(method.upper(), path.replace("{patron_id}", str(patron_id)),
                           json=bodies.get(op["operationId"]) if method != "delete" else None)
        assert answer.status_code == 428, (op["operationId"], answer.text)
        assert answer.json()["type"] == "/api/v1/problems/if-match-required"
    for _, _, op in operations(document):
        for response in op["responses"].values():
            for link in response.get("links", {}).values():
                target = next(t for _, _, t in operations(document) if t["operationId"] == link["operationId"])
                if any(p["name"] == "If-Match" for p in target["parameters"]):
                    assert link["parameters"]["header.If-Match"] == "$response.header.ETag", link
