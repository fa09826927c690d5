"""A desk day through ``idp serve`` as an operator runs it (issue 15, "Done means"): production mode,
libraries and library systems set up with the operator's commands only, the API called over real HTTP
by two library systems that get their tokens with authlib, the independent OAuth client: Oslo's with
client_secret_basic, Bergen's with private_key_jwt (a JWKS file given to ``idp library-system add``).

On the embedded default (one worker) and on PostgreSQL + Redis (two workers, so consecutive calls land
on different processes): register, look up (limited, then full), activate, print a card, change an
address, set a loan ban, report activity, reset a password, and consume the change feed after the
patron is deleted.
"""

from __future__ import annotations

import json
import time
import uuid
import warnings
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
from authlib.integrations.requests_client import OAuth2Session
from joserfc.jwk import import_key
from jwcrypto.jwk import JWK

from tests.conftest import BACKENDS, fresh_postgres_database
from tests.flows.test_served_oidc import own_redis_db
from tests.nin import person
from tests.serving import free_port, idp_ok, production_env, running

with warnings.catch_warnings():
    # authlib.jose announces its move to joserfc at import; here it signs Bergen's client assertions.
    warnings.simplefilter("ignore", DeprecationWarning)
    from authlib.oauth2.rfc7523 import PrivateKeyJWT

pytestmark = [pytest.mark.slow, pytest.mark.backends]

OSLO, BERGEN = "NO-2030000", "NO-1201000"
SCOPES = "register.read register.write cards"
PROBLEM = "application/problem+json"


@dataclass
class System:
    """A library system as its vendor holds it: an id and a secret, or an id and a private key."""

    url: str
    client_id: str
    secret: str | None = None
    key: JWK | None = None

    def token(self) -> str:
        token_url = f"{self.url}/token"
        if self.key is None:
            session = OAuth2Session(self.client_id, self.secret, scope=SCOPES,
                                    token_endpoint_auth_method="client_secret_basic")
        else:
            private = import_key(self.key.export_private(as_dict=True))
            session = OAuth2Session(self.client_id, private, scope=SCOPES, token_endpoint_auth_method="private_key_jwt")
            session.register_client_auth_method(PrivateKeyJWT(token_url, alg="ES256",
                                                              claims={"exp": int(time.time()) + 60}))
        with session:
            return str(session.fetch_token(token_url, grant_type="client_credentials")["access_token"])


class Desk:
    def __init__(self, system: System) -> None:
        self.system, self.http = system, requests.Session()
        self.http.headers["Authorization"] = f"Bearer {system.token()}"

    def __call__(self, method: str, path: str, *, json: Any = None, etag: str | None = None,
                 key: str | None = None) -> requests.Response:
        headers = {}
        if etag is not None:
            headers["If-Match"] = etag
        if key is not None:
            headers["Idempotency-Key"] = key
        return self.http.request(method, f"{self.system.url}/api/v1{path}", json=json, headers=headers, timeout=30)


@dataclass
class Served:
    url: str
    env: dict[str, str]
    oslo: System
    bergen: System
    bergen_printed: str  # the first number of Bergen's printed series


def set_up_with_the_cli(env: dict[str, str], url: str, home: Path) -> Served:
    """Two libraries with their series, Bergen's lending rules and DPAs, and one system each."""
    for isil, name in ((OSLO, "Oslo public library"), (BERGEN, "Bergen public library")):
        idp_ok("library", "add", isil, name, env=env)
        idp_ok("series", "reserve", isil, "--count", "100", "--digital", env=env)
        idp_ok("library", "set-dpa", isil, "2026-01-15", env=env)
    bergen_printed = idp_ok("series", "reserve", BERGEN, "--count", "100", env=env)["first"]
    rules = home / "bergen-rules.txt"
    rules.write_text("Loans are for four weeks. Lost items are replaced.", encoding="utf-8")
    idp_ok("library", "update", BERGEN, "--contact", "post@bergen.example", "--rules", str(rules), env=env)
    oslo = idp_ok("library-system", "add", OSLO, "--name", "Bibliofil at Oslo", env=env)
    key = JWK.generate(kty="EC", crv="P-256", kid="quria-1")
    jwks = home / "quria-jwks.json"
    jwks.write_text(json.dumps({"keys": [key.export_public(as_dict=True)]}), encoding="utf-8")
    bergen = idp_ok("library-system", "add", BERGEN, "--name", "Quria at Bergen", "--jwks", str(jwks), env=env)
    assert "client_secret" not in bergen and bergen["auth_method"] == "private_key_jwt"
    return Served(url, env, System(url, oslo["client_id"], secret=oslo["client_secret"]),
                  System(url, bergen["client_id"], key=key), bergen_printed)


@pytest.fixture(params=BACKENDS)
def served(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Served]:
    port = free_port()
    with ExitStack() as stack:
        if request.param == "embedded":
            settings: dict[str, str] = {}
            workers: list[str] = []
        else:
            redis_url = own_redis_db(request.getfixturevalue("redis_url"))
            stack.callback(lambda: redis.Redis.from_url(redis_url).flushdb())
            settings = {"IDP_DATABASE_URL": stack.enter_context(fresh_postgres_database("idp_api")),
                        "IDP_REDIS_URL": redis_url}
            workers = ["--workers", "2"]
        env = production_env(tmp_path, port, **settings)
        base = f"http://127.0.0.1:{port}"
        ready = set_up_with_the_cli(env, base, tmp_path)
        stack.enter_context(running(["serve", "--host", "127.0.0.1", "--port", str(port), *workers], env,
                                    tmp_path / "serve.log"))
        yield ready


def test_a_desk_day_through_idp_serve(served: Served) -> None:
    oslo, bergen = Desk(served.oslo), Desk(served.bergen)
    nid = person(date(1985, 3, 12))
    kari = {"name": "Kari Nordmann", "national_id": nid, "email": "kari@example.org",
            "address": {"street": "Storgata 1", "postal_code": "0155", "city": "Oslo"}, "card": {"kind": "digital"}}

    # Oslo registers Kari; the desk's retry (same Idempotency-Key) gets the same patron, not a second one.
    key = str(uuid.uuid4())
    first, retry = oslo("POST", "/patrons", json=kari, key=key), oslo("POST", "/patrons", json=kari, key=key)
    assert first.status_code == retry.status_code == 201, first.text
    assert retry.headers["Idempotent-Replayed"] == "true" and retry.json() == first.json()
    patron_id = first.json()["patron"]["id"]
    card = first.json()["patron"]["cards"][0]["number"]
    again = oslo("POST", "/patrons", json=kari)  # without the key: the person exists
    assert again.status_code == 409 and again.json()["patron"]["id"] == patron_id

    # Bergen looks Kari up: the limited view until she accepts Bergen's lending rules at its desk.
    limited = bergen("POST", "/patrons/lookup", json={"national_id": nid})
    assert limited.status_code == 200, limited.text
    assert limited.json()["patron"] == {"id": patron_id, "view": "limited", "name": "Kari Nordmann",
                                        "cards": [{"number": card, "kind": "digital", "library": OSLO}]}
    joined = bergen("PUT", f"/patrons/{patron_id}/membership", etag=limited.headers["ETag"])
    assert joined.status_code == 200, joined.text
    accepted = bergen("POST", f"/patrons/{patron_id}/membership/rules-accepted", json={"version": 1},
                      etag=joined.headers["ETag"])
    assert accepted.status_code == 200, accepted.text
    full = bergen("POST", "/patrons/lookup", json={"card_number": card})
    assert full.json()["patron"]["view"] == "full" and full.json()["patron"]["email"] == "kari@example.org"

    # Bergen prints her a card from its printed series.
    printed = bergen("POST", f"/patrons/{patron_id}/cards", json={"number": served.bergen_printed},
                     etag=full.headers["ETag"])
    assert printed.status_code in (200, 201), printed.text
    assert [c["number"] for c in printed.json()["patron"]["cards"]] == [served.bergen_printed]

    # A new address; a second desk still holding the old ETag cannot overwrite it.
    moved = {"address": {"street": "Bryggen 2", "postal_code": "5003", "city": "Bergen"}}
    changed = bergen("PATCH", f"/patrons/{patron_id}/contact", json=moved, etag=printed.headers["ETag"])
    assert changed.status_code == 200, changed.text
    assert changed.json()["patron"]["address"]["city"] == "Bergen"
    stale = bergen("PATCH", f"/patrons/{patron_id}/contact", json={"phone": "+47 400 00 000"},
                   etag=printed.headers["ETag"])
    assert stale.status_code == 412 and stale.headers["Content-Type"] == PROBLEM

    # A loan ban at Bergen shows in the record; activity at the desk is recorded.
    banned = bergen("PUT", f"/patrons/{patron_id}/loan-ban", etag=changed.headers["ETag"])
    assert banned.status_code == 200, banned.text
    assert banned.json()["patron"]["loan_ban"] is True
    loan = bergen("POST", f"/patrons/{patron_id}/activity", json={"kind": "loan"})
    assert loan.status_code == 200, loan.text

    # A temporary password, shown once, to be changed at the next login.
    reset = bergen("POST", f"/patrons/{patron_id}/password-reset", json={"delivery": "temporary"})
    assert reset.status_code == 200, reset.text
    assert reset.json()["temporary_password"] and reset.json()["must_change"] is True
    status = bergen("GET", f"/patrons/{patron_id}/credentials").json()
    assert status["has_password"] is True and status["must_change"] is True

    # Bergen's system keeps its copy current from the change feed, and erases what the register erased.
    feed = bergen("GET", "/changes")
    assert feed.status_code == 200, feed.text
    kinds = [(c["patron_id"], c["kind"]) for c in feed.json()["changes"]]
    assert (patron_id, "contact_changed") in kinds and (patron_id, "loan_ban_set") in kinds
    # The printed card replaced the digital one: the operator deletes by the card she now holds.
    idp_ok("patron", "delete", served.bergen_printed, "--yes", env=served.env)
    after = bergen("GET", f"/changes?after={feed.json()['next']}").json()
    assert [(c["patron_id"], c["kind"]) for c in after["changes"]] == [(patron_id, "deleted")]
    assert bergen("GET", f"/patrons/{patron_id}").status_code == 404
