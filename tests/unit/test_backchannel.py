"""Back-channel logout delivery (OpenID Connect Back-Channel Logout 1.0), against a real relying party
endpoint on loopback; each logout token it receives is verified with authlib, not with our own code.

The rules, as the spec and the operators' documentation state them:
- section 2.5: the OP POSTs ``logout_token`` form-encoded to the RP's ``backchannel_logout_uri``;
- section 2.4: the token is a signed JWT with iss, aud, iat, exp, jti, events (the back-channel logout
  event, an empty object), sub and/or sid, and NO nonce; section 2.4 recommends ``typ: logout+jwt``;
- section 2.8: 200 (or 204) means the RP logged the session out; anything else is a failure, retried;
- ours: no redirect followed, https only (http only to loopback), a bounded wait per attempt, a
  bounded number of attempts, the queue never holding a row twice in flight.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import pytest
from sqlalchemy import func, select

from idp import relying_parties as rps
from idp.oidc import backchannel
from idp.oidc.backchannel import BackchannelDelivery, enqueue
from idp.registry.models import BackchannelLogout, RelyingParty
from idp.server import _Gunicorn
from idp.services import Services
from tests.fakes import serving
from tests.conftest import FakeClock

with warnings.catch_warnings():
    # authlib.jose announces its move to joserfc at import (here it verifies the logout tokens); its
    # deprecate module installs an "always" filter when first imported, so it goes first (as in test_keys).
    import authlib.deprecate  # type: ignore[import-untyped]

    warnings.simplefilter("ignore", authlib.deprecate.AuthlibDeprecationWarning)
    from authlib.jose import JsonWebKey, JsonWebToken  # type: ignore[import-untyped]

pytestmark = pytest.mark.backends  # the queue's claims are SQL that each dialect runs its own way

EVENT = "http://schemas.openid.net/event/backchannel-logout"
ISSUER = "https://idp.bibliotekkortet.example"


# -- a relying party's back-channel logout endpoint ------------------------------------------------

@dataclass
class Endpoint:
    """A relying party's endpoint: answers each POST with the next status in ``statuses`` (the last
    one repeats), after ``delay`` seconds; records what it received."""

    host: str = "127.0.0.1"
    statuses: list[int] = field(default_factory=lambda: [200])
    delay: float = 0.0
    location: str | None = None
    received: list[dict[str, Any]] = field(default_factory=list)
    port: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str = "/logout/backchannel") -> str:
        return f"http://{self.host}:{self.port}{path}"

    def tokens(self) -> list[str]:
        return [r["form"]["logout_token"][0] for r in self.received if r["path"] == "/logout/backchannel"]


@contextmanager
def serve(endpoint: Endpoint) -> Iterator[Endpoint]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with endpoint._lock:
                endpoint.received.append({"path": self.path, "content_type": self.headers.get("Content-Type"),
                                          "form": parse_qs(body.decode()), "at": time.monotonic()})
                status = endpoint.statuses.pop(0) if len(endpoint.statuses) > 1 else endpoint.statuses[0]
            time.sleep(endpoint.delay)
            self.send_response(status)
            if endpoint.location:
                self.send_header("Location", endpoint.location)
            self.send_header("Cache-Control", "no-store")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer((endpoint.host, 0), Handler)
    endpoint.port = server.server_address[1]
    with serving(server):
        yield endpoint


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    with serve(Endpoint()) as running:
        yield running


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A socket that accepts connections (the kernel completes them) and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield sock.getsockname()[1]


# -- helpers --------------------------------------------------------------------------------------

def delivery(services: Services, clock: FakeClock, *, timeout: float = 5.0) -> BackchannelDelivery:
    settings = services.settings.model_copy(update={"backchannel_logout_timeout": timeout})
    return BackchannelDelivery(settings=settings, registry=services.registry, keyring=services.keyring,
                               issuer=ISSUER, clock=clock)


def add_rp(services: Services, uri: str | None, *, alg: str = "RS256") -> str:
    with services.registry("test") as reg:
        rp, _ = rps.add_oidc(reg, "Film platform", ["https://film.example/cb"], id_token_alg=alg,
                             backchannel_logout_uri=uri)
        return rp.client_id


def queue(services: Services, client_id: str, sub: str = "pairwise-sub-1", sid: str = "sid-1") -> None:
    with services.registry("test") as reg:
        enqueue(reg, client_id=client_id, sub=sub, sid=sid)


def rows(services: Services) -> list[BackchannelLogout]:
    with services.registry("test") as reg:
        found = list(reg.session.scalars(select(BackchannelLogout).order_by(BackchannelLogout.id)))
        reg.session.expunge_all()
        return found


def verified(services: Services, token: str, client_id: str,
             now: int | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The token's header and claims, checked by authlib against our published JWKS (its times as of
    ``now``, or of its own iat)."""
    return verified_with(services.keyring.public_jwks(), token, client_id, issuer=ISSUER, now=now)


def verified_with(jwks: dict[str, Any], token: str, client_id: str, *, issuer: str,
                  now: int | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """What a relying party does on receipt (Back-Channel Logout 1.0 section 2.6): the signature
    against the OP's JWKS, iss, aud, iat and exp, with authlib."""
    claims = JsonWebToken(["RS256", "ES256"]).decode(token, JsonWebKey.import_key_set(jwks), claims_options={
        "iss": {"essential": True, "value": issuer}, "aud": {"essential": True, "value": client_id},
        "iat": {"essential": True}, "exp": {"essential": True}, "jti": {"essential": True}})
    claims.validate(now=now if now is not None else claims["iat"])
    return dict(claims.header), dict(claims)


def epoch(clock: FakeClock) -> int:
    return int(clock().timestamp())


# -- delivered ------------------------------------------------------------------------------------

@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_a_logout_is_delivered_once_as_a_logout_token_the_client_can_verify(
        services: Services, clock: FakeClock, endpoint: Endpoint, alg: str) -> None:
    client_id = add_rp(services, endpoint.url(), alg=alg)
    queue(services, client_id, sub="pairwise-sub-1", sid="sid-1")
    sender = delivery(services, clock)

    assert sender.deliver_due() == 1
    assert len(endpoint.received) == 1
    request = endpoint.received[0]
    assert request["content_type"] == "application/x-www-form-urlencoded"
    header, claims = verified(services, endpoint.tokens()[0], client_id, epoch(clock))
    assert header["typ"] == "logout+jwt" and header["alg"] == alg
    assert claims["iss"] == ISSUER and claims["aud"] == client_id
    assert claims["iat"] == epoch(clock) and 0 < claims["exp"] - claims["iat"] <= 120
    assert claims["events"] == {EVENT: {}}
    assert (claims["sub"], claims["sid"]) == ("pairwise-sub-1", "sid-1")
    assert "nonce" not in claims and len(claims["jti"]) >= 16
    assert rows(services) == []

    assert sender.deliver_due() == 0
    clock.advance(hours=2)
    assert sender.deliver_due() == 0
    assert len(endpoint.received) == 1


def test_204_counts_as_delivered(services: Services, clock: FakeClock, endpoint: Endpoint) -> None:
    endpoint.statuses = [204]
    queue(services, add_rp(services, endpoint.url()))
    assert delivery(services, clock).deliver_due() == 1
    assert rows(services) == []


# -- failures -------------------------------------------------------------------------------------

def test_a_failing_endpoint_is_retried_with_backoff_then_given_up(
        services: Services, clock: FakeClock, endpoint: Endpoint, caplog: pytest.LogCaptureFixture) -> None:
    endpoint.statuses = [500]
    client_id = add_rp(services, endpoint.url())
    queue(services, client_id, sub="pairwise-sub-secret", sid="sid-9")
    sender = delivery(services, clock)
    caplog.set_level(logging.INFO, logger="idp.oidc.backchannel")

    waits = [timedelta(seconds=30), timedelta(minutes=2), timedelta(minutes=10), timedelta(hours=1)]
    for attempt, wait in enumerate(waits, start=1):
        assert sender.deliver_due() == 0
        assert len(endpoint.received) == attempt
        (row,) = rows(services)
        assert row.attempts == attempt and "500" in (row.last_error or "")
        assert row.next_attempt_at == clock() + wait
        clock.advance(seconds=wait.total_seconds() - 1)
        assert sender.deliver_due() == 0 and len(endpoint.received) == attempt  # not before its time
        clock.advance(seconds=1)
    assert sender.deliver_due() == 0
    assert len(endpoint.received) == 5
    assert rows(services) == []  # given up: nothing left to retry forever

    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(warnings) == 4 and len(errors) == 1
    for number, record in enumerate(warnings, start=1):
        assert client_id in record.getMessage() and f"attempt {number}" in record.getMessage()
        assert "500" in record.getMessage()
    assert client_id in errors[0].getMessage() and "given up" in errors[0].getMessage()
    tokens = endpoint.tokens()
    assert len({verified(services, t, client_id)[1]["jti"] for t in tokens}) == 5  # signed afresh each time
    for token in tokens:
        assert token not in caplog.text
    assert "pairwise-sub-secret" not in caplog.text and "sid-9" not in caplog.text


def test_a_retry_that_succeeds_removes_the_row(services: Services, clock: FakeClock, endpoint: Endpoint) -> None:
    endpoint.statuses = [503, 200]
    queue(services, add_rp(services, endpoint.url()))
    sender = delivery(services, clock)
    assert sender.deliver_due() == 0
    clock.advance(seconds=30)
    assert sender.deliver_due() == 1
    assert rows(services) == [] and len(endpoint.received) == 2


def test_a_redirect_is_not_followed(services: Services, clock: FakeClock, endpoint: Endpoint) -> None:
    endpoint.statuses, endpoint.location = [302], endpoint.url("/elsewhere")
    queue(services, add_rp(services, endpoint.url()))
    assert delivery(services, clock).deliver_due() == 0
    assert [r["path"] for r in endpoint.received] == ["/logout/backchannel"]
    (row,) = rows(services)
    assert row.attempts == 1 and "redirect" in (row.last_error or "")


def test_a_dead_endpoint_costs_at_most_the_timeout_and_enqueue_never_waits(
        services: Services, clock: FakeClock, silent_port: int) -> None:
    dead = f"http://127.0.0.1:{silent_port}/logout"
    first, second = add_rp(services, dead), add_rp(services, dead)
    sender = delivery(services, clock, timeout=0.5)
    sender.start()
    try:
        started = time.monotonic()
        queue(services, first, sid="sid-a")
        sender.notify()  # the thread is now stuck on the dead endpoint...
        queue(services, first, sid="sid-b")
        sender.notify()
        assert time.monotonic() - started < 0.4  # ...and the logout never waits for it
    finally:
        sender.stop()
    queue(services, second, sid="sid-c")

    clock.advance(hours=2)  # every row due
    attempts_before = {row.sid: row.attempts for row in rows(services)}
    started = time.monotonic()
    assert sender.deliver_due() == 0
    took = time.monotonic() - started
    # One timeout per client and pass: sid-b waits for the next pass rather than cost another timeout.
    assert 2 * 0.5 <= took < 2 * 0.5 + 1.0, took
    attempts_after = {row.sid: row.attempts for row in rows(services)}
    tried = {sid for sid in attempts_after if attempts_after[sid] > attempts_before[sid]}
    assert tried in ({"sid-a", "sid-c"}, {"sid-b", "sid-c"})
    assert all("did not answer within 0.5 s" in (row.last_error or "") for row in rows(services) if row.sid in tried)


def test_a_client_whose_uri_was_removed_or_that_is_gone_is_dropped(
        services: Services, clock: FakeClock, endpoint: Endpoint, caplog: pytest.LogCaptureFixture) -> None:
    client_id = add_rp(services, endpoint.url())
    queue(services, client_id)
    queue(services, "NoSuchClientAnyMore")
    with services.registry("test") as reg:
        rps.update_oidc_logout(reg, client_id, backchannel_logout_uri=None)
    caplog.set_level(logging.INFO, logger="idp.oidc.backchannel")
    assert delivery(services, clock).deliver_due() == 0
    assert endpoint.received == [] and rows(services) == []
    dropped = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO and "dropped" in r.getMessage()]
    assert len(dropped) == 2 and any(client_id in m for m in dropped)


def test_http_to_a_host_that_is_not_loopback_is_refused_at_send(
        services: Services, clock: FakeClock) -> None:
    # 127.0.0.2 is this machine too, but not a name the loopback rule allows: it stands for any
    # http URI written into the register around the registration check.
    with serve(Endpoint(host="127.0.0.2")) as rp_endpoint:
        client_id = add_rp(services, None)
        with services.registry("test") as reg:
            rp = reg.session.scalar(select(RelyingParty).where(RelyingParty.client_id == client_id))
            assert rp is not None
            rp.backchannel_logout_uri = rp_endpoint.url()
        queue(services, client_id)
        assert delivery(services, clock).deliver_due() == 0
        assert rp_endpoint.received == []
        (row,) = rows(services)
        assert row.attempts == 1 and "https" in (row.last_error or "")


# -- more than one deliverer ----------------------------------------------------------------------

def test_two_deliverers_never_send_one_logout_twice(services: Services, clock: FakeClock) -> None:
    with serve(Endpoint(delay=0.02)) as slow:
        client_id = add_rp(services, slow.url())
        for n in range(30):
            queue(services, client_id, sid=f"sid-{n}")
        senders = [delivery(services, clock), delivery(services, clock)]
        start = threading.Barrier(len(senders))
        counts: list[int] = []

        def run(sender: BackchannelDelivery) -> None:
            start.wait()
            counts.append(sender.deliver_due())

        threads = [threading.Thread(target=run, args=(s,)) for s in senders]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        sids = [verified(services, t, client_id)[1]["sid"] for t in slow.tokens()]
        assert sorted(sids) == sorted(f"sid-{n}" for n in range(30))  # each once
        assert sum(counts) == 30 and rows(services) == []
        assert all(c > 0 for c in counts)  # both worked: the claims really raced


# -- the thread and the wiring --------------------------------------------------------------------

def test_the_thread_delivers_when_notified(services: Services, clock: FakeClock, endpoint: Endpoint) -> None:
    client_id = add_rp(services, endpoint.url())
    sender = delivery(services, clock)
    sender.start()
    sender.start()  # idempotent: still one thread
    try:
        assert [t.name for t in threading.enumerate()].count("backchannel-logout") == 1
        queue(services, client_id)
        sender.notify()
        deadline = time.monotonic() + 3  # well before the 5 s poll
        while not endpoint.received and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(endpoint.received) == 1
    finally:
        sender.stop()
    assert "backchannel-logout" not in [t.name for t in threading.enumerate()]


def test_enqueue_is_part_of_the_callers_transaction(services: Services) -> None:
    client_id = add_rp(services, "https://film.example/bc")
    with pytest.raises(RuntimeError), services.registry("test") as reg:
        enqueue(reg, client_id=client_id, sub="s", sid="x")
        raise RuntimeError("the logout failed")
    with services.registry("test") as reg:
        assert reg.session.scalar(select(func.count()).select_from(BackchannelLogout)) == 0


def test_services_expose_one_deliverer_and_each_served_worker_starts_it(services: Services) -> None:
    assert services.backchannel is services.backchannel
    assert services.backchannel.timeout == services.settings.backchannel_logout_timeout == 5
    app = _Gunicorn(services.settings, {}).load()
    try:
        assert "backchannel-logout" in [t.name for t in threading.enumerate()]
    finally:
        app.extensions["idp"].close()
    assert backchannel.MAX_ATTEMPTS == 5
