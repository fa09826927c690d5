"""Benchmark of the OIDC provider on one gunicorn worker: password logins and the partners' verify
API against bare argon2, the token endpoint against a minimal Flask app served the same way.

The token requests are measured once more against bench/floor_app.py, which makes only the calls
no token endpoint on this stack can avoid (form, client secret digest, oic's request and response
classes, one state read and one transactional write, a jwcrypto signature for an exchange). Its
rate over the minimal app's is the best any code on the chosen stack could reach; the IdP's rate
over the floor's is the share of the IdP's own logic.

    .venv/bin/python bench/oidc.py [--quick] [--database-url URL|sqlite] [--redis-url URL|memory]
                                   [--seconds S] [--patrons N] [--clients C] [--chains K] [--codes M]

The IdP runs as ``idp serve --workers 1`` (one gunicorn worker, with idp serve's default threads
unless --threads says otherwise) in a temporary IDP_HOME, in
development mode for its secrets and signing keys but with the production argon2 parameters, on
a fresh database: with a PostgreSQL URL (the default) the benchmark creates ``idp_bench_oidc_<random>``
there and drops it at the end; ``sqlite`` gives a new file in the temporary home. Its Redis state
goes to a dedicated logical database (default /15), emptied with FLUSHDB before and after, because
the app's keys carry no per-instance prefix; ``memory`` keeps the state in the one worker instead.
Servers are stopped, the database dropped and the home removed also after a failure, Ctrl-C or
SIGTERM.

Load comes from threads in this process, each a small HTTP/1.1 client on raw sockets sending one
request per connection (what gunicorn's sync worker allows; the threaded worker is given the
same), so a heavier client (requests) is not itself the limit on the minimal app. With ``wrk`` installed the
minimal app is measured with it as well, as a check that the client side is not what limits it.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import itertools
import json
import os
import queue
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, suppress
from dataclasses import dataclass, field
from datetime import date, timedelta
from importlib.metadata import version
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import redis
from argon2 import PasswordHasher, Type
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

import floor_app
from benchlib import cores, machine_line, positive, private_database, stop_on_signals
from idp import migrate, relying_parties
from idp.cli.common import idp_command
from idp.oidc.provider import CODE_LIFETIME
from idp.registry.context import Registry
from idp.registry.libraries import add_library, reserve_series
from idp.registry.national_id import synthetic_national_ids
from idp.registry.patrons import NewPatron, register_patron
from idp.services import build_services
from idp.server import DEFAULT_THREADS
from idp.settings import OWASP_ARGON2_MIN_MEMORY_KIB, OWASP_ARGON2_MIN_TIME_COST, Settings, load_settings

DEFAULT_DATABASE_URL = "postgresql+psycopg://127.0.0.1:5432/test"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/15"
LOGIN_TARGET = 0.9  # logins/s per worker over bare argon2 verifies/s
VERIFY_TARGET = 0.9  # POST /api/v1/verify answers/s per worker over bare argon2 verifies/s
TOKEN_TARGET = 0.5  # token requests/s per worker over minimal-app requests/s
ARGON2_MEMORY_KIB, ARGON2_TIME_COST, ARGON2_PARALLELISM = OWASP_ARGON2_MIN_MEMORY_KIB, OWASP_ARGON2_MIN_TIME_COST, 1
ISIL = "NO-9999998"
PASSWORD = "benchmark passphrase 1"
# Registered and sent, never contacted: the benchmark reads the code from the Location header.
CALLBACK = "http://127.0.0.1:9/callback"
# The flows run once per algorithm a client may have its id_tokens signed with (the default first);
# the refresh phase continues the last one's tokens (a refresh signs no id_token).
ID_TOKEN_ALGS = ("RS256", "ES256")
AGE_OVER = [15, 18]  # thresholds each verify request asks about, all in the partner's policy
# The partner's limit on POST /api/v1/verify for the run: the default could bound the phase.
VERIFY_LIMIT = "1000000 per minute"
IO_PAUSE = 0.0002  # seconds: about one database round trip on loopback
CODE_MARGIN = 15  # seconds before CODE_LIFETIME at which exchanging stops, so no code is tried expired
READY_TIMEOUT = 60.0
MAX_REDIRECTS = 10
REQUEST_TIMEOUT = 15.0


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    return run(lambda cleanup: Benchmark(args, cleanup))


def hello_of(port: int) -> Callable[[], str | None]:
    """One request to the minimal app's /hello on ``port``: None when it answered 200, else what went wrong."""
    def hello() -> str | None:
        reply = http(port, "GET", "/hello")
        return None if reply.status == 200 else f"hello: {reply.describe()}"
    return hello


def run(benchmark: Callable[[ExitStack], Benchmark]) -> int:
    """Run a benchmark built on ``cleanup`` (servers and databases it removes afterwards); the exit status."""
    stop_on_signals()
    try:
        with ExitStack() as cleanup:
            benchmark(cleanup).run()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


class BenchError(Exception):
    """The benchmark cannot go on; the message says why in one line."""


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tiny run of a few seconds (smoke test)")
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL,
                        help=f"PostgreSQL administration connection, or 'sqlite' ({DEFAULT_DATABASE_URL})")
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL,
                        help=f"a dedicated Redis database, FLUSHED before and after, or 'memory' ({DEFAULT_REDIS_URL})")
    parser.add_argument("--seconds", type=_positive_float, help="timed seconds of each measured phase (20)")
    parser.add_argument("--argon2-seconds", type=_positive_float,
                        help="seconds of bare argon2 verifies at the start (5); half as long around each "
                             "password phase")
    parser.add_argument("--patrons", type=positive, help="patrons seeded, each with a password (200)")
    parser.add_argument("--clients", type=positive, default=2, help="client threads per phase (2)")
    parser.add_argument("--threads", type=positive, default=DEFAULT_THREADS,
                        help=f"threads of the one gunicorn worker, for both servers ({DEFAULT_THREADS}, as idp serve)")
    parser.add_argument("--chains", type=positive, help="independent refresh-token chains (4)")
    parser.add_argument("--codes", type=positive, help="authorization codes made before the exchange (3000)")
    args = parser.parse_args(argv)
    quick = {"seconds": 1.0, "argon2_seconds": 1.0, "patrons": 6, "chains": 2, "codes": 60}
    full = {"seconds": 20.0, "argon2_seconds": 5.0, "patrons": 200, "chains": 4, "codes": 3000}
    for name, value in (quick if args.quick else full).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    return args


def _positive_float(value: str) -> float:
    number = float(value)
    if number <= 0:
        raise argparse.ArgumentTypeError("must be more than 0")
    return number


# -- a small HTTP client ------------------------------------------------------------------------

@dataclass
class Reply:
    status: int
    headers: dict[str, list[str]]
    body: bytes

    def header(self, name: str) -> str | None:
        values = self.headers.get(name.lower())
        return values[0] if values else None

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def describe(self) -> str:
        return f"HTTP {self.status} {self.text[:200]!r}"


def http(port: int, method: str, target: str, headers: Mapping[str, str] | None = None,
         body: bytes = b"") -> Reply:
    """One request on its own connection (gunicorn's sync worker closes each after answering)."""
    lines = [f"{method} {target} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if body or method == "POST":
        lines.append(f"Content-Length: {len(body)}")
    with socket.create_connection(("127.0.0.1", port), timeout=REQUEST_TIMEOUT) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("the server closed the connection before the headers were complete")
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        parsed: dict[str, list[str]] = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            parsed.setdefault(name.strip().lower(), []).append(value.strip())
        if "chunked" in ",".join(parsed.get("transfer-encoding", [])).lower():
            raise ConnectionError("chunked responses are not expected from these endpoints")
        length = int(parsed["content-length"][0]) if "content-length" in parsed else None
        while length is None or len(rest) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            rest += chunk
    return Reply(int(status_line.split()[1]), parsed, rest if length is None else rest[:length])


def _form(fields: Mapping[str, str]) -> tuple[dict[str, str], bytes]:
    return {"Content-Type": "application/x-www-form-urlencoded"}, urlencode(fields).encode()


def _json(value: object) -> tuple[dict[str, str], bytes]:
    return {"Content-Type": "application/json"}, json.dumps(value).encode()


_CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
_NEXT = re.compile(r'name="next"[^>]*value="([^"]*)"')
_addresses = itertools.count(1)


def next_address() -> str:
    """A client address of its own, as a proxy in front of the IdP would report it."""
    n = next(_addresses)
    return f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"


class Browser:
    """A patron's browser: one cookie jar, one client address, stops at the relying party's callback."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.cookies: dict[str, str] = {}
        self.address = next_address()

    def request(self, method: str, target: str, fields: Mapping[str, str] | None = None) -> Reply:
        headers = {"X-Forwarded-For": self.address, "Accept-Language": "en"}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = b""
        if fields is not None:
            form_headers, body = _form(fields)
            headers.update(form_headers)
        reply = http(self.port, method, target, headers, body)
        for cookie in reply.headers.get("set-cookie", []):
            name, _, value = cookie.split(";", 1)[0].partition("=")
            if value:
                self.cookies[name.strip()] = value
            else:
                self.cookies.pop(name.strip(), None)
        return reply

    def follow(self, reply: Reply) -> Reply:
        for _ in range(MAX_REDIRECTS):
            if reply.status not in (302, 303) or (reply.header("location") or "").startswith(CALLBACK):
                return reply
            parts = urlsplit(reply.header("location") or "/")
            reply = self.request("GET", parts.path + (f"?{parts.query}" if parts.query else ""))
        raise BenchError(f"more than {MAX_REDIRECTS} redirects")

    def log_in(self, card: str, start: str = "/login") -> Reply:
        """The login form, then its submission; the reply to the POST (303 on success)."""
        page = self.follow(self.request("GET", start))
        token, after = _CSRF.search(page.text), _NEXT.search(page.text)
        if page.status != 200 or token is None:
            raise BenchError(f"no login form at {start}: {page.describe()}")
        return self.request("POST", "/login", {"username": card, "password": PASSWORD, "csrf_token": token.group(1),
                                               "next": after.group(1) if after else ""})


# -- measuring --------------------------------------------------------------------------------

class Exhausted(Exception):
    """No work left for this phase (all codes used, all chains broken)."""


@dataclass
class Tally:
    ok: int = 0
    failed: int = 0
    seconds: float = 0.0
    failures: list[str] = field(default_factory=list)
    exhausted: bool = False  # the work ran out before the time or count did
    # Cores' worth of CPU each watched group of processes used while the phase ran.
    cpu: dict[str, float] = field(default_factory=dict)
    machine: float | None = None  # cores' worth of CPU the whole machine used meanwhile

    @property
    def rate(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    def load_line(self) -> str:
        """Where the CPU went: a worker below 1.0 with the machine near its core count means
        something else took the cores (the client, the services or another program)."""
        parts = [f"{name} {cores:.2f}" for name, cores in self.cpu.items()]
        if self.machine is not None:
            parts.append(f"everything else {max(0.0, self.machine - sum(self.cpu.values())):.2f}")
            parts.append(f"whole machine {self.machine:.2f} of {cores()}")
        return "  CPU used, in cores: " + ", ".join(parts)


def measure(clients: int, seconds: float, limit: int, work: Callable[[], str | None],
            watched: Mapping[str, list[int]]) -> Tally:
    """Run ``work`` from ``clients`` threads until ``seconds`` pass or ``limit`` calls were made.

    ``work`` returns None for a success or a short reason for a failure, and raises Exhausted
    when it has nothing left to do. ``watched`` names groups of processes whose CPU is reported.
    """
    tally, lock, stop = Tally(), threading.Lock(), threading.Event()
    calls = itertools.count()

    def loop(deadline: float) -> None:
        while not stop.is_set() and time.perf_counter() < deadline and next(calls) < limit:
            try:
                failure = work()
            except Exhausted:
                tally.exhausted = True
                return
            except (OSError, BenchError) as exc:
                failure = f"{type(exc).__name__}: {exc}"
            with lock:
                if failure is None:
                    tally.ok += 1
                else:
                    tally.failed += 1
                    if len(tally.failures) < 3:
                        tally.failures.append(failure)

    before = {name: {pid: _process_ticks(pid) for pid in pids} for name, pids in watched.items()}
    machine_before, client_before = _machine_ticks(), time.process_time()
    started = time.perf_counter()
    threads = [threading.Thread(target=loop, args=(started + seconds,), daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            while thread.is_alive():
                thread.join(0.2)  # short joins keep Ctrl-C responsive
    finally:
        stop.set()
    tally.seconds = time.perf_counter() - started
    per_second = os.sysconf("SC_CLK_TCK") * tally.seconds
    for name, pids in before.items():
        # A process that ended meanwhile (a database backend, say) drops out rather than counting negative.
        ticks = [(after - start) for pid, start in pids.items()
                 if start is not None and (after := _process_ticks(pid)) is not None]
        tally.cpu[name] = sum(ticks) / per_second
    tally.cpu["client threads"] = (time.process_time() - client_before) / tally.seconds
    machine_after = _machine_ticks()
    if machine_before is not None and machine_after is not None:
        tally.machine = (machine_after - machine_before) / per_second
    return tally


def _process_ticks(pid: int) -> int | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime + stime
    except (OSError, IndexError, ValueError):
        return None


def _machine_ticks() -> int | None:
    """Busy ticks summed over all cores (everything but idle and iowait)."""
    try:
        values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError):
        return None
    return sum(values[:8]) - values[3] - values[4]  # guest time is already inside user time


def _children(pid: int) -> list[int]:
    try:
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except (OSError, ValueError):
        return []


def _parent(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def _command_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def warm_up(count: int, work: Callable[[], str | None]) -> None:
    """Untimed calls first: a fresh worker connects, compiles templates and fills caches on first use."""
    for _ in range(count):
        failure = work()
        if failure is not None:
            raise BenchError(f"warm-up failed: {failure}")


@dataclass
class AccessLog:
    """Worker time per request as gunicorn logs it (the IdP's format ends in the request time)."""

    path: Path
    _line = re.compile(r'"(\w+) (\S+)" (\d{3}) \S+ ([\d.]+)s$')

    def offset(self) -> int:
        return self.path.stat().st_size

    def summary(self, since: int) -> list[str]:
        times: dict[str, list[float]] = {}
        with self.path.open("rb") as fh:
            fh.seek(since)
            for raw in fh:
                match = self._line.search(raw.decode("utf-8", "replace").rstrip())
                if match:
                    method, target, status, seconds = match.groups()
                    times.setdefault(f"{method} {target} {status}", []).append(float(seconds) * 1000)
        return [f"{key}: {len(ms):,} requests, mean {statistics.fmean(ms):.2f} ms, "
                f"median {statistics.median(ms):.2f} ms" for key, ms in sorted(times.items())]


# -- servers ----------------------------------------------------------------------------------

@dataclass
class Server:
    name: str
    process: subprocess.Popen[bytes]
    port: int
    log: AccessLog

    @property
    def worker(self) -> int | None:
        """The gunicorn worker's pid (the arbiter forks it after starting)."""
        children = _children(self.process.pid)
        return children[0] if len(children) == 1 else None

    def wait_ready(self, path: str) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BenchError(f"{self.name} exited with {self.process.returncode}:\n{self._tail()}")
            try:
                if http(self.port, "GET", path).status == 200 and self.worker is not None:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise BenchError(f"{self.name} did not answer {path} within {READY_TIMEOUT:.0f} s:\n{self._tail()}")

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        # The arbiter leads its own process group: one signal reaches it and its worker.
        with suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(5)

    def _tail(self) -> str:
        lines = self.log.path.read_text(errors="replace").splitlines()
        return "\n".join(lines[-20:])


def start_server(name: str, command: list[str], env: Mapping[str, str], port: int, log_path: Path,
                 ready_path: str, cleanup: ExitStack) -> Server:
    with log_path.open("ab") as log:
        process = subprocess.Popen(command, env={**env, "PYTHONUNBUFFERED": "1"}, stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    server = Server(name, process, port, AccessLog(log_path))
    cleanup.callback(server.stop)
    server.wait_ready(ready_path)
    return server


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- the benchmark ----------------------------------------------------------------------------

@dataclass
class Client:
    client_id: str
    secret: str

    @property
    def basic(self) -> str:
        return "Basic " + base64.b64encode(f"{self.client_id}:{self.secret}".encode()).decode()


@dataclass
class Code:
    code: str
    verifier: str


@dataclass
class Results:
    argon2: float = 0.0  # bare argon2 verifies/s, measured before any server started
    # Each password phase is judged against the fastest bare argon2 rate seen around it.
    baselines: dict[str, float] = field(default_factory=dict)
    logins: Tally | None = None
    verify: Tally | None = None
    exchange: dict[str, Tally] = field(default_factory=dict)  # by the client's id_token algorithm
    refresh: Tally | None = None
    minimal: Tally | None = None
    minimal_wrk: float | None = None
    floor: dict[str, Tally] = field(default_factory=dict)  # by token request, as the summary names them


class Benchmark:
    def __init__(self, args: argparse.Namespace, cleanup: ExitStack) -> None:
        self.args = args
        self.cleanup = cleanup
        self.results = Results()
        self.home = Path(tempfile.mkdtemp(prefix="idp-bench-oidc-"))
        # Processes of the services, found once they are known: their CPU is reported per phase.
        self.service_pids: dict[str, Callable[[], list[int]]] = {}
        self.first_code = 0.0  # when the first code of the exchange phase was asked for (time.monotonic)
        self.hasher = PasswordHasher(time_cost=ARGON2_TIME_COST, memory_cost=ARGON2_MEMORY_KIB,
                                     parallelism=ARGON2_PARALLELISM, hash_len=32, salt_len=16, type=Type.ID)
        self.stored = self.hasher.hash(PASSWORD)
        cleanup.callback(shutil.rmtree, self.home, ignore_errors=True)

    def run(self) -> None:
        self._facts()
        self.results.argon2 = self._bare_argon2()
        env = self._environment()
        cards, clients, partner = self._seed(env)
        port = free_port()
        command = [*idp_command(), "serve", "--workers", "1", "--threads", str(self.args.threads),
                   "--host", "127.0.0.1", "--port", str(port)]
        idp = start_server("the IdP", command, {**env, "IDP_ISSUER": f"http://127.0.0.1:{port}"}, port,
                           self.home / "idp-server.log", "/healthz", self.cleanup)
        print(f"IdP: `idp serve --workers 1 --threads {self.args.threads}` (gunicorn {version('gunicorn')}, "
              f"{self._serving()}, pid {idp.worker}) "
              f"on 127.0.0.1:{port}")
        self._logins(idp, cards)
        self._verify(idp, cards, partner)
        tokens: list[str] = []
        for alg, client in clients.items():
            codes = self._codes(idp, cards, client, alg)
            tokens = self._exchange(idp, client, codes, alg)
        self._refresh(idp, clients[ID_TOKEN_ALGS[-1]], tokens)
        idp.stop()
        self._minimal()
        self._floor()
        self._summary()

    # -- set-up -------------------------------------------------------------------------------
    def _facts(self) -> None:
        wrk = shutil.which("wrk")
        print(machine_line())
        print(f"load average before the run: {', '.join(f'{v:.2f}' for v in os.getloadavg())} (1, 5, 15 min; "
              "anything else running on the machine shares the cores with the measurement)")
        print(f"versions: gunicorn {version('gunicorn')}, Flask {version('flask')}, "
              f"argon2-cffi {version('argon2-cffi')}, pyop {version('pyop')}, jwcrypto {version('jwcrypto')}; "
              f"wrk: {wrk or 'not installed'}")
        print(f"method: each server is {self._serving()}; the load comes from {self.args.clients} client "
              "threads in this process on loopback, each a small raw-socket HTTP/1.1 client sending one request per "
              "connection (no keep-alive, which the sync worker would not offer); a phase "
              f"runs {self.args.seconds:g} s or until its work runs out, after untimed warm-up requests; only "
              "successful answers count")

    def _bare_argon2(self) -> float:
        hasher, stored = self.hasher, self.stored
        for _ in range(3):
            hasher.verify(stored, PASSWORD)
        count, seconds = _verifies(hasher, stored, self.args.argon2_seconds)
        rate = count / seconds
        print(f"bare argon2id verify: {rate:.1f}/s ({1000 / rate:.1f} ms each; argon2-cffi PasswordHasher.verify, "
              f"m={ARGON2_MEMORY_KIB} KiB, t={ARGON2_TIME_COST}, p={ARGON2_PARALLELISM}, one thread in this process, "
              f"{count} verifies in {seconds:.1f} s, before any server started)")
        # argon2 releases the GIL, so two threads keep both cores busy: what a verify costs when the
        # other core works too, as it does beside the worker (PostgreSQL, Redis, the client).
        pair: list[tuple[int, float]] = []
        threads = [threading.Thread(target=lambda: pair.append(_verifies(hasher, stored, self.args.argon2_seconds)))
                   for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        both = sum(n for n, _ in pair) / max(t for _, t in pair) / 2
        print(f"  for context, two such threads at once: {both:.1f}/s each ({1000 / both:.1f} ms a verify): the "
              f"cores share caches and memory bandwidth, so a verify slows down while the other core works")
        # A server never hashes back to back: it waits on its database just before. Some machines
        # (virtual ones especially) run the next stretch of work slower after any wait.
        count, hashing = _verifies(hasher, stored, self.args.argon2_seconds, pause=IO_PAUSE)
        paused = count / hashing
        print(f"  for context, each verify after a {IO_PAUSE * 1000:g} ms sleep (as a server hashes right after a "
              f"database read): {paused:.1f}/s of hashing ({1000 / paused:.1f} ms a verify, the sleeps not counted)")
        return rate

    def _environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("IDP_")}
        env.update(IDP_HOME=str(self.home), IDP_MODE="development", IDP_ARGON2_TIME_COST=str(ARGON2_TIME_COST),
                   IDP_ARGON2_MEMORY_KIB=str(ARGON2_MEMORY_KIB), IDP_ARGON2_PARALLELISM=str(ARGON2_PARALLELISM),
                   # The per-IP login limit cannot be configured; clients are told apart the way a
                   # deployment behind one proxy tells them apart: by the address it forwards.
                   IDP_PROXY_HOPS="1", IDP_VERIFY_LIMIT_PER_CLIENT=VERIFY_LIMIT)
        env.update(self._database())
        env.update(self._redis())
        return env

    def _database(self) -> dict[str, str]:
        if self.args.database_url == "sqlite":
            print("database: SQLite, a new file in the temporary IDP_HOME")
            return {}
        admin_url = make_url(self.args.database_url)
        if admin_url.get_backend_name() != "postgresql":
            raise BenchError("--database-url takes a PostgreSQL URL or 'sqlite'")
        url, name = self.cleanup.enter_context(private_database(admin_url, "idp_bench_oidc"))
        probe = create_engine(url)
        self.cleanup.callback(probe.dispose)
        with probe.connect() as connection:
            server_version = connection.scalar(text("SHOW server_version"))
            backend = int(connection.scalar(text("SELECT pg_backend_pid()")))
        postmaster = _parent(backend)
        if postmaster is not None and _command_name(postmaster).startswith("postgres"):  # a local server
            self.service_pids["PostgreSQL"] = lambda: [postmaster, *_children(postmaster)]
        print(f"database: PostgreSQL {server_version} on {admin_url.host}:{admin_url.port or 5432}, "
              f"a new database {name}")
        return {"IDP_DATABASE_URL": url.render_as_string(hide_password=False)}

    def _redis(self) -> dict[str, str]:
        if self.args.redis_url == "memory":
            print("state: in the worker's memory (no Redis; possible only because there is one worker)")
            return {}
        client = redis.Redis.from_url(self.args.redis_url, socket_connect_timeout=2)
        self.cleanup.callback(client.close)
        db = int(client.connection_pool.connection_kwargs.get("db", 0))
        if db == 0:
            raise BenchError("--redis-url must name a dedicated Redis database (e.g. /15), never /0: "
                             "the benchmark empties it with FLUSHDB")
        try:
            info = client.info("server")
            stale = client.dbsize()
            client.flushdb()
        except redis.RedisError as exc:
            raise BenchError(f"Redis at {self.args.redis_url} unreachable ({type(exc).__name__}: {exc})") from None

        pid = int(info.get("process_id", 0))
        if pid and "redis" in _command_name(pid):  # a local server
            self.service_pids["Redis"] = lambda: [pid]

        def flush() -> None:
            client.flushdb()
            print(f"Redis database {db} flushed")

        self.cleanup.callback(flush)
        print(f"state: Redis {info.get('redis_version')}, logical database {db} used by the IdP alone, "
              f"emptied with FLUSHDB before ({stale} keys were there) and after the run, because the app's "
              f"keys carry no per-instance prefix")
        return {"IDP_REDIS_URL": self.args.redis_url}

    def _seed(self, env: Mapping[str, str]) -> tuple[list[str], dict[str, Client], Client]:
        """The patrons' card numbers, the OIDC clients of the flows (one per id_token algorithm) and
        the partner of the verify API."""
        settings = load_settings(env)
        services = build_services(settings)
        try:
            migrate.upgrade(services.engine)
            services.keyring  # noqa: B018 - made here once, so the server starts without generating keys
            started = time.perf_counter()
            cards = []
            with services.registry("bench") as reg:
                add_library(reg, ISIL, "Benchmark bibliotek")
                reserve_series(reg, ISIL, self.args.patrons, usage="digital")
                for n, national_id in zip(range(self.args.patrons), _national_ids(), strict=False):
                    _, card = register_patron(reg, NewPatron(name=f"Bench Patron {n}", home_library=ISIL,
                                                             national_id=national_id, password=PASSWORD))
                    cards.append(card.number)
                clients = {alg: _confidential_client(reg, f"Benchmark e-books ({alg})", ["valid_patron"], alg)
                           for alg in ID_TOKEN_ALGS}
                partner = _confidential_client(reg, "Benchmark film platform",
                                               ["valid_patron", *(f"age_over_{n:02d}" for n in AGE_OVER)])
        finally:
            services.close()
        flows = " and one with ".join(clients)
        print(f"seeded: {len(cards)} patrons with passwords (argon2 at the production parameters), three "
              f"confidential OIDC clients, each with a DPA date (for the flows one with {flows} id_tokens, and a "
              f"film platform for the verify API), in {time.perf_counter() - started:.1f} s")
        return cards, clients, partner

    # -- a password check each: logins, the verify API -----------------------------------------
    def _logins(self, idp: Server, cards: list[str]) -> None:
        order = itertools.cycle(cards)

        def login() -> str | None:
            reply = Browser(idp.port).log_in(next(order))
            if reply.status == 303 and reply.header("location") == "/":
                return None
            return f"login: {reply.describe()}"

        self.results.logins = self._against_argon2(
            idp, login, "password logins", "login", LOGIN_TARGET,
            "each a GET /login for the form, CSRF token and session cookie, then the POST /login, which answers "
            f"303; patrons taken in turn from {len(cards)}",
            "per-IP limit (IDP_LOGIN_LIMIT_PER_IP, default 30/min): every login came from its own X-Forwarded-For "
            "address, trusted with IDP_PROXY_HOPS=1, as clients reach a server behind a proxy")

    def _verify(self, idp: Server, cards: list[str], partner: Client) -> None:
        order = itertools.cycle(cards)
        ages = [f"age_over_{n:02d}" for n in AGE_OVER]

        def check() -> str | None:
            headers, body = _json({"card_number": next(order), "password": PASSWORD, "age_over": AGE_OVER})
            reply = http(idp.port, "POST", "/api/v1/verify", {**headers, "Authorization": partner.basic}, body)
            answer = json.loads(reply.body) if reply.status == 200 else {}
            if answer.get("valid_patron") is True and all(isinstance(answer.get(age), bool) for age in ages):
                return None
            return f"verify: {reply.describe()}"

        default = Settings.model_fields["verify_limit_per_client"].default
        self.results.verify = self._against_argon2(
            idp, check, "verify API", "verify", VERIFY_TARGET,
            "each a POST /api/v1/verify with the film platform's client_secret_basic and a JSON body of card number, "
            f"password and age_over {AGE_OVER}, which answers 200 with valid_patron true and {' and '.join(ages)}; "
            f"patrons taken in turn from {len(cards)}",
            f"per-partner limit (IDP_VERIFY_LIMIT_PER_CLIENT, default {default}): set to {VERIFY_LIMIT} in the "
            "IdP's environment for the run, as every check comes from the one partner")

    def _against_argon2(self, idp: Server, work: Callable[[], str | None], label: str, short: str, target: float,
                        how: str, limit: str) -> Tally:
        """A phase in which every request checks one password, measured and judged against bare argon2."""
        warm_up(2 * self.args.clients, work)
        # The machine's speed drifts (other tenants of the host): bare argon2 is measured again just
        # before and just after the phase, with the worker idle, and the fastest rate is the baseline.
        before = _rate(*_verifies(self.hasher, self.stored, self.args.argon2_seconds / 2))
        since = idp.log.offset()
        tally = measure(self.args.clients, self.args.seconds, 100_000, work, self._watch(idp))
        after = _rate(*_verifies(self.hasher, self.stored, self.args.argon2_seconds / 2))
        baseline = self.results.baselines[short] = max(self.results.argon2, before, after)
        ratio = tally.rate / baseline
        print(f"{label}: {tally.rate:.1f}/s per worker ({tally.ok:,} successful in {tally.seconds:.1f} s, "
              f"{tally.failed} failed; {how})")
        print(f"  bare argon2 around this phase: {before:.1f}/s just before, {after:.1f}/s just after; baseline "
              f"{baseline:.1f}/s, the fastest of those and the first measurement")
        print(f"  {short}/argon2 ratio: {ratio:.2f} (target >= {target}: {_met(ratio >= target)})")
        if tally.ok:
            # With threads the worker can overlap a request's Python with another's argon2; what
            # each answer costs in CPU says how much work the IdP adds, whatever the overlap.
            spent = tally.cpu.get("worker", 0.0) * tally.seconds / tally.ok * 1000
            alone = 1000 / baseline
            print(f"  worker CPU per answer: {spent:.1f} ms, of which one argon2 verify is {alone:.1f} ms when it "
                  "runs alone")
        print(f"  {limit}")
        self._details(tally, idp, since)
        return tally

    # -- codes, exchange, refresh -------------------------------------------------------------
    def _codes(self, idp: Server, cards: list[str], client: Client, alg: str) -> list[Code]:
        """Codes from real authorization flows: one login and one consent per browser, then SSO."""
        browsers: queue.Queue[Browser] = queue.Queue()
        for card in cards[: max(self.args.clients, min(len(cards), 20))]:
            browser = Browser(idp.port)
            code, failure = self._authorize(browser, client, card)
            if code is None:
                raise BenchError(f"the first authorization flow failed: {failure}")
            browsers.put(browser)
        codes: list[Code] = []
        self.first_code = time.monotonic()
        # Codes live CODE_LIFETIME seconds: leave at least a third of it for exchanging them.
        budget = min(40.0, (CODE_LIFETIME - CODE_MARGIN) * 2 / 3)

        def one() -> str | None:
            browser = browsers.get()
            try:
                code, failure = self._authorize(browser, client, None)
            finally:
                browsers.put(browser)
            if code is not None:
                codes.append(code)  # list.append is atomic; order is roughly issue order
            return failure

        since = idp.log.offset()
        tally = measure(self.args.clients, budget, self.args.codes, one, self._watch(idp))
        print(f"codes for the {alg} client: {len(codes):,} made in {tally.seconds:.1f} s ({tally.rate:.0f}/s; "
              f"{tally.failed} failed) by "
              f"GET /authorize with single sign-on and remembered consent in {browsers.qsize()} browser sessions, "
              f"after one login and consent each; PKCE S256, scope 'openid patron'")
        self._details(tally, idp, since, load=False)
        return codes

    def _authorize(self, browser: Browser, client: Client, card: str | None) -> tuple[Code | None, str | None]:
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        query = urlencode({"response_type": "code", "client_id": client.client_id, "redirect_uri": CALLBACK,
                           "scope": "openid patron", "state": secrets.token_urlsafe(12),
                           "nonce": secrets.token_urlsafe(12), "code_challenge": challenge,
                           "code_challenge_method": "S256"})
        if card is None:
            reply = browser.request("GET", f"/authorize?{query}")
        else:
            reply = browser.follow(browser.log_in(card, start=f"/authorize?{query}"))
            token = _CSRF.search(reply.text)
            if reply.status == 200 and 'name="decision"' in reply.text and token:
                reply = browser.request("POST", "/authorize/consent", {"decision": "allow",
                                                                        "csrf_token": token.group(1)})
        location = reply.header("location") or ""
        code = parse_qs(urlsplit(location).query).get("code") if location.startswith(CALLBACK) else None
        if not code:
            return None, f"authorize: {reply.describe()} {location[:120]}"
        return Code(code[0], verifier), None

    def _exchange(self, idp: Server, client: Client, codes: list[Code], alg: str) -> list[str]:
        pending = iter(codes)  # oldest first: each is exchanged well inside its lifetime
        refresh_tokens: list[str] = []
        lock = threading.Lock()

        def exchange() -> str | None:
            with lock:
                item = next(pending, None)
            if item is None:
                raise Exhausted
            reply = self._token(idp, client, {"grant_type": "authorization_code", "code": item.code,
                                              "redirect_uri": CALLBACK, "code_verifier": item.verifier})
            if reply.status != 200:
                return f"code exchange: {reply.describe()}"
            body = json.loads(reply.body)
            if not body.get("id_token") or not body.get("refresh_token"):
                return f"code exchange without an id_token or refresh token: {sorted(body)}"
            refresh_tokens.append(body["refresh_token"])
            return None

        warm_up(min(len(codes) // 10, 2 * self.args.clients), exchange)
        left = self.first_code + CODE_LIFETIME - CODE_MARGIN - time.monotonic()
        seconds = min(self.args.seconds, left)
        since = idp.log.offset()
        tally = measure(self.args.clients, seconds, len(codes), exchange, self._watch(idp))
        self.results.exchange[alg] = tally
        how = "all codes used" if tally.exhausted else "time up"
        print(f"token endpoint, code exchange ({alg} id_token): {tally.rate:.1f}/s per worker ({tally.ok:,} in "
              f"{tally.seconds:.1f} s, "
              f"{tally.failed} failed, {how}; client_secret_basic, PKCE verifier, answer with id_token, access and "
              f"refresh token)")
        self._details(tally, idp, since)
        return refresh_tokens

    def _token(self, idp: Server, client: Client, fields: Mapping[str, str]) -> Reply:
        headers, body = _form(fields)
        return http(idp.port, "POST", "/token", {**headers, "Authorization": client.basic}, body)

    def _refresh(self, idp: Server, client: Client, refresh_tokens: list[str]) -> None:
        if len(refresh_tokens) < self.args.chains:
            raise BenchError(f"only {len(refresh_tokens)} refresh tokens for {self.args.chains} chains")
        # A chain is in the queue only while its newest refresh token is known, so each refresh
        # uses the token the previous one returned, as rotation demands.
        chains: queue.Queue[str | None] = queue.Queue()
        for token in refresh_tokens[-self.args.chains:]:
            chains.put(token)
        alive, lock = [self.args.chains], threading.Lock()

        def end_chain(reason: str) -> str:
            with lock:
                alive[0] -= 1
                if alive[0] == 0:  # wake every waiting thread: nothing is left to refresh
                    for _ in range(self.args.clients):
                        chains.put(None)
            return f"refresh: {reason} (chain ended)"

        def refresh() -> str | None:
            try:
                token = chains.get(timeout=REQUEST_TIMEOUT)
            except queue.Empty:
                raise Exhausted from None
            if token is None:
                chains.put(None)
                raise Exhausted
            try:
                reply = self._token(idp, client, {"grant_type": "refresh_token", "refresh_token": token})
            except OSError as exc:
                return end_chain(f"{type(exc).__name__}: {exc}")
            if reply.status != 200:
                return end_chain(reply.describe())
            renewed = json.loads(reply.body).get("refresh_token")
            if not renewed or renewed == token:
                return end_chain("no new refresh token")
            chains.put(renewed)
            return None

        warm_up(self.args.chains, refresh)
        since = idp.log.offset()
        tally = measure(self.args.clients, self.args.seconds, 1_000_000, refresh, self._watch(idp))
        self.results.refresh = tally
        print(f"token endpoint, refresh: {tally.rate:.1f}/s per worker ({tally.ok:,} in {tally.seconds:.1f} s, "
              f"{tally.failed} failed; {self.args.chains} independent rotating chains, each refresh using the "
              f"token the previous one returned)")
        self._details(tally, idp, since)

    # -- the baseline -------------------------------------------------------------------------
    def _minimal(self) -> None:
        app = self._reference("the minimal app", "minimal_app.py")
        hello = hello_of(app.port)
        warm_up(50, hello)
        since = app.log.offset()
        tally = measure(self.args.clients, self.args.seconds, 10_000_000, hello, self._watch(app))
        self.results.minimal = tally
        print(f"minimal Flask app (bench/minimal_app.py, GET /hello answering a 30-byte JSON, served by "
              f"idp.server's gunicorn options, {self._serving()}): {tally.rate:,.0f}/s ({tally.ok:,} in "
              f"{tally.seconds:.1f} s, {tally.failed} failed)")
        self._details(tally, app, since)
        wrk = shutil.which("wrk")
        if wrk:
            self.results.minimal_wrk = _wrk(wrk, app.port, self.args.seconds)
            if self.results.minimal_wrk is not None:
                print(f"  cross-check with wrk (1 thread, 2 connections, {self.args.seconds:g} s): "
                      f"{self.results.minimal_wrk:,.0f}/s")
        app.stop()

    def _floor(self) -> None:
        """The same token requests against bench/floor_app.py: the chosen libraries' calls alone."""
        extra = ["--redis-url", self.args.redis_url] if self.args.redis_url != "memory" else []
        app = self._reference("the stack floor app", "floor_app.py", *extra)
        basic = "Basic " + base64.b64encode(f"{floor_app.CLIENT_ID}:{floor_app.CLIENT_SECRET}".encode()).decode()
        exchange = {"grant_type": "authorization_code", "code": secrets.token_urlsafe(32), "redirect_uri": CALLBACK,
                    "code_verifier": secrets.token_urlsafe(48)}
        requests = {**{f"code exchange ({alg} id_token)": (f"/token/exchange/{alg}", exchange)
                       for alg in ID_TOKEN_ALGS},
                    "refresh": ("/token/refresh", {"grant_type": "refresh_token",
                                                   "refresh_token": secrets.token_urlsafe(32)})}
        for what, (path, fields) in requests.items():
            headers, body = _form(fields)

            def call(path: str = path, headers: dict[str, str] = headers, body: bytes = body) -> str | None:
                reply = http(app.port, "POST", path, {**headers, "Authorization": basic}, body)
                return None if reply.status == 200 else f"{path}: {reply.describe()}"

            warm_up(50, call)
            since = app.log.offset()
            tally = measure(self.args.clients, self.args.seconds, 10_000_000, call, self._watch(app))
            self.results.floor[what] = tally
            print(f"stack floor (bench/floor_app.py), {what}: {tally.rate:,.0f}/s ({tally.ok:,} in "
                  f"{tally.seconds:.1f} s, {tally.failed} failed; form, client secret digest, oic request and "
                  f"response, one state read and one transactional write of three entries"
                  f"{', a jwcrypto signature' if 'exchange' in what else ''})")
            self._details(tally, app, since)
        app.stop()

    def _reference(self, name: str, script: str, *arguments: str) -> Server:
        """One of the reference apps next to this file, served as the IdP is and ready to measure."""
        port = free_port()
        command = [sys.executable, str(Path(__file__).with_name(script)), "--port", str(port),
                   "--workers", "1", "--threads", str(self.args.threads), *arguments]
        env = {k: v for k, v in os.environ.items() if not k.startswith("IDP_")}
        return start_server(name, command, env, port, self.home / f"{Path(script).stem}-server.log", "/hello",
                            self.cleanup)

    def _serving(self) -> str:
        if self.args.threads == 1:
            return "one sync worker"
        return f"one gthread worker with {self.args.threads} threads, argon2 on one hashing thread of its own"

    def _watch(self, server: Server) -> dict[str, list[int]]:
        worker = server.worker
        watched = {"worker": [worker] if worker else []}
        watched.update({name: pids() for name, pids in self.service_pids.items()})
        return watched

    # -- output -------------------------------------------------------------------------------
    @staticmethod
    def _details(tally: Tally, server: Server, since: int, *, load: bool = True) -> None:
        """What follows a phase's headline: where the CPU went, the worker's time per request, failures."""
        if load:
            print(tally.load_line())
        for line in server.log.summary(since):
            print(f"  worker time per request (gunicorn access log): {line}")
        for failure in tally.failures:
            print(f"  failure: {failure}")

    def _summary(self) -> None:
        r = self.results
        assert r.logins and r.verify and len(r.exchange) == len(ID_TOKEN_ALGS) and r.refresh and r.minimal
        assert len(r.floor) == len(ID_TOKEN_ALGS) + 1
        baseline = r.minimal.rate
        print(f"summary (per gunicorn worker: {self._serving()}):")
        if r.minimal_wrk is not None:
            print(f"  (the minimal app's figure is with this benchmark's client; wrk measured {r.minimal_wrk:,.0f}/s)")
        for what, short, tally, target in (("logins", "login", r.logins, LOGIN_TARGET),
                                           ("verify API", "verify", r.verify, VERIFY_TARGET)):
            ratio = tally.rate / r.baselines[short]
            print(f"  {what} {tally.rate:.1f}/s vs bare argon2 {r.baselines[short]:.1f}/s: ratio {ratio:.2f}, "
                  f"target >= {target}: {_met(ratio >= target)}")
        exchanges = [(f"code exchange ({alg} id_token)", tally) for alg, tally in r.exchange.items()]
        for what, tally in (*exchanges, ("refresh", r.refresh)):
            ratio = tally.rate / baseline
            print(f"  {what} {tally.rate:.1f}/s vs minimal Flask {baseline:,.0f}/s: ratio {ratio:.3f}, "
                  f"target >= {TOKEN_TARGET}: {_met(ratio >= TOKEN_TARGET)}")
            floor = r.floor[what].rate
            print(f"    stack floor {floor:,.0f}/s: the IdP does {tally.rate / floor:.2f} of it; the floor itself is "
                  f"{floor / baseline:.3f} of the minimal app")


def _verifies(hasher: PasswordHasher, stored: str, seconds: float, pause: float = 0.0) -> tuple[int, float]:
    """Verifies for about ``seconds``, each after a ``pause`` sleep; how many, and the seconds
    spent verifying (sleeps not counted)."""
    count, hashing, started = 0, 0.0, time.perf_counter()
    while time.perf_counter() - started < seconds and count < 10_000:
        if pause:
            time.sleep(pause)
        before = time.perf_counter()
        hasher.verify(stored, PASSWORD)
        hashing += time.perf_counter() - before
        count += 1
    return count, hashing


def _rate(count: int, seconds: float) -> float:
    return count / seconds if seconds else 0.0


def _met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def _confidential_client(reg: Registry, name: str, claims: list[str], id_token_alg: str = "RS256") -> Client:
    """An OIDC client with a secret, the benchmark's callback and a DPA signed yesterday."""
    rp, secret = relying_parties.add_oidc(reg, name, [CALLBACK], claims=claims,
                                          dpa_signed=reg.today() - timedelta(days=1), id_token_alg=id_token_alg)
    assert secret is not None
    return Client(rp.client_id, secret)


def _national_ids() -> Iterator[str]:
    day = date(1970, 1, 1)
    while True:
        yield from itertools.islice(synthetic_national_ids(day), 5)
        day += timedelta(days=1)


def _wrk(wrk: str, port: int, seconds: float) -> float | None:
    try:
        result = subprocess.run([wrk, "-t1", "-c2", f"-d{max(1, round(seconds))}s", f"http://127.0.0.1:{port}/hello"],
                                capture_output=True, text=True, timeout=seconds + 30, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"Requests/sec:\s+([\d.]+)", result.stdout)
    return float(match.group(1)) if match else None


if __name__ == "__main__":
    sys.exit(main())
