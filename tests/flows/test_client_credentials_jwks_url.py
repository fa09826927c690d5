"""private_key_jwt for a library system whose JWKS is at a URL (issue 15: `--jwks FILE-or-URL`), over real
HTTP both ways: authlib signs the assertions, and a loopback HTTP server in the test serves the JWKS.

The rules: the keys are fetched and cached for a short time (one fetch serves many tokens); an assertion
naming a kid the cached set lacks makes one new fetch (key rotation), and no more than one a minute
however many unknown kids arrive; a URL that cannot be fetched, or gives something that is not a JWKS
of public keys (too big, private keys, not JSON), is invalid_client with a description naming the
reason but not the body, and is not tried again for a minute.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests
from jwcrypto.jwk import JWK

from idp.registry import libraries, library_systems
from tests.fakes import serving
from tests.flows.conftest import LiveIdp, free_port
from tests.flows.test_client_credentials import OSLO, System, post_assertion, private, private_key_jwt_sign


class JwksServer(ThreadingHTTPServer):
    """Serves ``body`` with ``status`` at any path, and counts the requests."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.body, self.status, self.hits = b"", 200, 0
        self.url = f"http://127.0.0.1:{self.server_address[1]}/jwks.json"

    def serve_keys(self, *keys: JWK) -> None:
        self.body = json.dumps({"keys": [key.export_public(as_dict=True) for key in keys]}).encode()


class _Handler(BaseHTTPRequestHandler):
    server: JwksServer

    def do_GET(self) -> None:
        self.server.hits += 1
        self.send_response(self.server.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.server.body)))
        self.end_headers()
        self.wfile.write(self.server.body)

    def log_message(self, *_args: Any) -> None:
        pass


@pytest.fixture
def jwks_server() -> Iterator[JwksServer]:
    server = JwksServer()
    with serving(server):
        yield server


def key(kid: str) -> JWK:
    return JWK.generate(kty="EC", crv="P-256", kid=kid)


def add_url_system(live: LiveIdp, url: str, first_key: JWK | None = None) -> System:
    with live.services.registry("test") as reg:
        if not any(found.isil == OSLO for found in libraries.list_libraries(reg)):
            libraries.add_library(reg, OSLO, "Oslo public library")
        system, secret = library_systems.add(reg, OSLO, "Koha", jwks_uri=url)
        assert secret is None
        return System(system.client_id, None, first_key)


def token(live: LiveIdp, system: System, signing_key: JWK) -> requests.Response:
    """An assertion naming its key's kid in the header, as Maskinporten's clients send it."""
    assertion = private_key_jwt_sign(private(signing_key), system.client_id, f"{live.url}/token", alg="ES256",
                                     claims={"exp": int(time.time()) + 60, "jti": uuid.uuid4().hex},
                                     header={"alg": "ES256", "kid": signing_key.get("kid")})
    return post_assertion(live, assertion)


def refused(response: requests.Response) -> str:
    assert response.status_code == 401, response.text
    assert response.json()["error"] == "invalid_client"
    return str(response.json()["error_description"])


@pytest.mark.backends  # the cache lives in Redis in production
def test_a_jwks_url_gives_tokens_and_is_fetched_once_for_many(live: LiveIdp, jwks_server: JwksServer) -> None:
    desk = key("desk-1")
    jwks_server.serve_keys(desk)
    system = add_url_system(live, jwks_server.url, desk)
    for _ in range(3):
        answer = token(live, system, desk)
        assert answer.status_code == 200, answer.text
        assert answer.json()["token_type"] == "Bearer"
    assert jwks_server.hits == 1


@pytest.mark.backends
def test_a_rotated_key_is_fetched_at_once_and_unknown_kids_at_most_once_a_minute(
        live: LiveIdp, jwks_server: JwksServer) -> None:
    old, new = key("desk-1"), key("desk-2")
    jwks_server.serve_keys(old)
    system = add_url_system(live, jwks_server.url, old)
    assert token(live, system, old).status_code == 200
    jwks_server.serve_keys(new)  # the library rotates its key
    rotated = token(live, system, new)
    assert rotated.status_code == 200, rotated.text
    assert jwks_server.hits == 2
    # The old key is gone from the fetched set; assertions with kids nobody published fetch nothing more.
    refused(token(live, system, old))
    for n in range(5):
        refused(token(live, system, key(f"made-up-{n}")))
    assert jwks_server.hits == 2
    assert token(live, system, new).status_code == 200


def test_an_unreachable_url_is_invalid_client_and_not_retried_within_a_minute(live: LiveIdp) -> None:
    nobody = f"http://127.0.0.1:{free_port()}/jwks.json"  # nothing listens there
    desk = key("desk-1")
    system = add_url_system(live, nobody, desk)
    described = refused(token(live, system, desk))
    assert "JWKS" in described and "could not be reached" in described and "Traceback" not in described
    assert "could not be reached" in refused(token(live, system, desk))


@pytest.mark.parametrize(("status", "body", "says"), [
    (404, b'{"keys": []}', "HTTP 404"),
    (302, b"", "HTTP 302"),
    (200, b"<html>secret-looking page</html>", "not valid JSON"),
    (200, b'{"keys": []}', "non-empty"),
    (200, json.dumps({"keys": [key("desk-1").export_private(as_dict=True)]}).encode(), "private"),
    (200, b'{"keys": [' + b'{"kty": "EC"},' * 6000 + b"{}]}", "KiB"),
    (200, b"\xff\xfe not text", "UTF-8"),
])
def test_a_url_that_gives_no_usable_jwks_is_invalid_client_naming_why(
        live: LiveIdp, jwks_server: JwksServer, status: int, body: bytes, says: str) -> None:
    jwks_server.status, jwks_server.body = status, body
    desk = key("desk-1")
    system = add_url_system(live, jwks_server.url, desk)
    described = refused(token(live, system, desk))
    assert says in described and "secret-looking" not in described
    # Tried once; the next request within the minute hears the same without a new fetch.
    assert says in refused(token(live, system, desk))
    assert jwks_server.hits == 1
