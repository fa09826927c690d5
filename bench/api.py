"""Benchmark of the register API on one gunicorn worker, PostgreSQL + Redis, 1 million patrons: client
credentials tokens per second, card lookups per second at the maximum rate, and the lookups' p50/p99
latency at half that rate, each beside the minimal Flask app served the same way (bench/minimal_app.py).

    .venv/bin/python bench/api.py [--quick] [--patrons N] [--database-url URL] [--redis-url URL]
                                  [--seconds S] [--clients C] [--threads T]

Servers, the private database (``idp_bench_oidc_<random>``, dropped at the end), the dedicated Redis
database (flushed before and after) and the raw-socket client are bench/oidc.py's, so the figures of
the two benchmarks read alike. The register is filled with the bulk loader (idp.registry.bulk, as
bench/register.py does); the library system is registered as ``idp library-system add`` does and
authenticates with client_secret_basic.

The latency phase is paced: requests are due at fixed times (half the measured maximum rate, spread
over the client threads) and each one's latency runs from when it was due, not from when it was sent,
so a stall counts for every request it delays (no coordinated omission).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import oidc
from benchlib import positive
from oidc import BenchError, Client, Server, Tally, http, measure, start_server, warm_up
from register import SyntheticPatrons, _percentiles, _sample_cards, _typed_card
from sqlalchemy import text

from idp import migrate
from idp.cli.common import idp_command
from idp.registry import library_systems
from idp.registry.bulk import import_patrons
from idp.registry.libraries import MAX_SERIES_COUNT, add_library, reserve_series
from idp.services import build_services
from idp.settings import Settings, load_settings

LOOKUP_P99_TARGET_MS = 10.0  # at half the maximum rate (issue 15)
SCOPE = "register.read"
SAMPLED_CARDS = 20_000
# The per-system allowance on the register API, raised for the run: the default would bound the phases.
API_LIMIT = "1000000 per minute"
ISIL = oidc.ISIL


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    return oidc.run(lambda cleanup: ApiBenchmark(args, cleanup))


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tiny run of a few seconds (smoke test)")
    parser.add_argument("--patrons", type=positive, help="patrons bulk-loaded (1,000,000)")
    parser.add_argument("--database-url", default=oidc.DEFAULT_DATABASE_URL,
                        help=f"PostgreSQL administration connection ({oidc.DEFAULT_DATABASE_URL})")
    parser.add_argument("--redis-url", default=oidc.DEFAULT_REDIS_URL,
                        help=f"a dedicated Redis database, FLUSHED before and after ({oidc.DEFAULT_REDIS_URL})")
    parser.add_argument("--seconds", type=float, help="timed seconds of each measured phase (20)")
    parser.add_argument("--clients", type=positive, default=2, help="client threads per phase (2)")
    parser.add_argument("--threads", type=positive, default=oidc.DEFAULT_THREADS,
                        help=f"threads of the one gunicorn worker, for both servers ({oidc.DEFAULT_THREADS})")
    parser.add_argument("--seed", type=int, default=2026, help="random seed for names and lookup order")
    args = parser.parse_args(argv)
    for name, quick, full in (("patrons", 2_000, 1_000_000), ("seconds", 2.0, 20.0)):
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    return args


@dataclass
class Latency:
    rate: float  # requests per second asked for
    millis: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    failed: int = 0

    def line(self) -> str:
        p50, p99 = _percentiles(self.millis)
        return (f"p50 {p50:.2f} ms, p99 {p99:.2f} ms at {self.rate:,.0f}/s ({len(self.millis):,} requests, "
                f"{self.failed} failed)")

    @property
    def p99(self) -> float:
        return _percentiles(self.millis)[1]


def paced(clients: int, seconds: float, rate: float, work: Callable[[], str | None]) -> Latency:
    """``rate`` requests a second for ``seconds``, due at fixed times; latency counted from the due time."""
    result, lock = Latency(rate), threading.Lock()
    interval = clients / rate  # each thread's own spacing
    start = time.perf_counter() + 0.05

    def loop(k: int) -> None:
        n = 0
        while (due := start + (k / clients + n) * interval) < start + seconds:
            if (wait := due - time.perf_counter()) > 0:
                time.sleep(wait)
            try:
                failure = work()
            except OSError as exc:
                failure = f"{type(exc).__name__}: {exc}"
            elapsed = (time.perf_counter() - due) * 1000
            with lock:
                if failure is None:
                    result.millis.append(elapsed)
                else:
                    result.failed += 1
                    result.failures[3:] = [failure]
            n += 1

    threads = [threading.Thread(target=loop, args=(k,), daemon=True) for k in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        while thread.is_alive():
            thread.join(0.2)
    if not result.millis:
        raise BenchError(f"no request succeeded at {rate:.0f}/s: {result.failures}")
    return result


class ApiBenchmark(oidc.Benchmark):
    """bench/oidc.py's servers, database, Redis and minimal app; the register API's phases."""

    def run(self) -> None:
        self._facts()
        env = self._environment()
        system, cards = self._seed_register(env)
        port = oidc.free_port()
        command = [*idp_command(), "serve", "--workers", "1", "--threads", str(self.args.threads),
                   "--host", "127.0.0.1", "--port", str(port)]
        idp = start_server("the IdP", command, {**env, "IDP_ISSUER": f"http://127.0.0.1:{port}"}, port,
                           self.home / "idp-server.log", "/healthz", self.cleanup)
        print(f"IdP: `idp serve --workers 1 --threads {self.args.threads}` ({self._serving()}, pid {idp.worker})")
        tokens = self._tokens(idp, system)
        lookup = self._lookup(idp, system, cards)
        warm_up(50, lookup)
        since = idp.log.offset()
        most = measure(self.args.clients, self.args.seconds, 100_000_000, lookup, self._watch(idp))
        print(f"lookups at the maximum rate: {most.rate:,.0f}/s ({most.ok:,} in {most.seconds:.1f} s, "
              f"{most.failed} failed; POST /api/v1/patrons/lookup by a card number typed in groups, bearer token)")
        self._details(most, idp, since)
        half = paced(self.args.clients, self.args.seconds, most.rate / 2, lookup)
        print(f"lookups at half that rate: {half.line()}")
        for failure in half.failures:
            print(f"  failure: {failure}")
        idp.stop()
        self._minimal()
        minimal = self._minimal_paced(half.rate)
        self._api_summary(tokens, most, half, minimal)

    def _environment(self) -> dict[str, str]:
        env = super()._environment()
        if "api_limit_per_system" in Settings.model_fields:  # per-system rate limits, where this IdP has them
            env["IDP_API_LIMIT_PER_SYSTEM"] = API_LIMIT
            print(f"per-system limit (IDP_API_LIMIT_PER_SYSTEM): set to {API_LIMIT} in the IdP's environment")
        return env

    def _seed_register(self, env: Mapping[str, str]) -> tuple[Client, list[str]]:
        services = build_services(load_settings(env))
        try:
            migrate.upgrade(services.engine)
            services.keyring  # noqa: B018 - made here once, so the server starts without generating keys
            with services.registry("bench") as reg:
                add_library(reg, ISIL, "Benchmark bibliotek")
                left = self.args.patrons
                while left > 0:  # one series holds at most a million numbers
                    reserve_series(reg, ISIL, min(left, MAX_SERIES_COUNT), usage="digital")
                    left -= MAX_SERIES_COUNT
                system, secret = library_systems.add(reg, ISIL, "Benchmark library system")
            rng = random.Random(self.args.seed)
            started = time.perf_counter()
            with services.registry("bench") as reg:
                imported = import_patrons(reg, SyntheticPatrons(self.args.patrons, rng, set()), library_isil=ISIL)
            with services.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
                connection.execute(text("ANALYZE"))
            print(f"register: {imported:,} patrons bulk-loaded (idp.registry.bulk) and analyzed in "
                  f"{time.perf_counter() - started:.0f} s; one library system (client_secret_basic)")
            cards = [_typed_card(number) for number in _sample_cards(services.engine, SAMPLED_CARDS, rng)]
        finally:
            services.close()
        assert secret is not None
        return Client(system.client_id, secret), cards

    def _token(self, idp: Server, client: Client, fields: Mapping[str, str]) -> oidc.Reply:
        headers, body = oidc._form(fields)
        return http(idp.port, "POST", "/token", {**headers, "Authorization": client.basic}, body)

    def _new_token(self, idp: Server, system: Client) -> str:
        reply = self._token(idp, system, {"grant_type": "client_credentials", "scope": SCOPE})
        if reply.status != 200:
            raise BenchError(f"no access token: {reply.describe()}")
        return str(json.loads(reply.body)["access_token"])

    def _tokens(self, idp: Server, system: Client) -> Tally:
        def token() -> str | None:
            reply = self._token(idp, system, {"grant_type": "client_credentials", "scope": SCOPE})
            return None if reply.status == 200 else f"token: {reply.describe()}"

        warm_up(20, token)
        since = idp.log.offset()
        tally = measure(self.args.clients, self.args.seconds, 100_000_000, token, self._watch(idp))
        print(f"client credentials tokens: {tally.rate:,.0f}/s ({tally.ok:,} in {tally.seconds:.1f} s, "
              f"{tally.failed} failed; client_secret_basic, scope {SCOPE}, an opaque token stored each time)")
        self._details(tally, idp, since)
        return tally

    def _lookup(self, idp: Server, system: Client, cards: list[str]) -> Callable[[], str | None]:
        # Tokens live 5 minutes: a fresh one per phase is enough, but refresh it if it ages out.
        token, lock = [self._new_token(idp, system), time.monotonic()], threading.Lock()
        order = iter(cards * (1 + 2_000_000 // len(cards)))

        def lookup() -> str | None:
            with lock:
                if time.monotonic() - float(token[1]) > 240:
                    token[:] = [self._new_token(idp, system), time.monotonic()]
                bearer, card = token[0], next(order)
            reply = http(idp.port, "POST", "/api/v1/patrons/lookup",
                         {"Content-Type": "application/json", "Authorization": f"Bearer {bearer}"},
                         json.dumps({"card_number": card}).encode())
            return None if reply.status == 200 else f"lookup: {reply.describe()}"

        return lookup

    def _minimal_paced(self, rate: float) -> Latency:
        app = self._reference("the minimal app", "minimal_app.py")
        hello = oidc.hello_of(app.port)
        warm_up(50, hello)
        latency = paced(self.args.clients, self.args.seconds, rate, hello)
        print(f"minimal Flask app at the lookups' half rate: {latency.line()}")
        app.stop()
        return latency

    def _api_summary(self, tokens: Tally, most: Tally, half: Latency, minimal: Latency) -> None:
        assert self.results.minimal is not None
        floor = self.results.minimal.rate
        print(f"summary (one gunicorn worker, {self._serving()}; {self.args.patrons:,} patrons on PostgreSQL, "
              f"state in Redis):")
        print(f"  client credentials tokens {tokens.rate:,.0f}/s vs minimal Flask {floor:,.0f}/s: "
              f"ratio {tokens.rate / floor:.3f}")
        print(f"  lookups {most.rate:,.0f}/s vs minimal Flask {floor:,.0f}/s: ratio {most.rate / floor:.3f}")
        print(f"  worker CPU per answer: {_cpu_ms(tokens):.2f} ms a token, {_cpu_ms(most):.2f} ms a lookup, "
              f"{_cpu_ms(self.results.minimal):.2f} ms a minimal-app answer (what a quiet core would need)")
        print(f"  lookup latency at half the maximum rate: {half.line()}; target p99 < {LOOKUP_P99_TARGET_MS:g} ms: "
              f"{oidc._met(half.p99 < LOOKUP_P99_TARGET_MS)}")
        print(f"    minimal Flask at the same rate: {minimal.line()}")


def _cpu_ms(tally: Tally) -> float:
    """Milliseconds of the worker's CPU per successful answer in a phase."""
    return tally.cpu.get("worker", 0.0) * tally.seconds / tally.ok * 1000 if tally.ok else 0.0


if __name__ == "__main__":
    sys.exit(main())
