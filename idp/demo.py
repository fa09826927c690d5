"""Demo data for ``make demo`` (development mode only): made-up libraries and patrons.

National ids are synthetic (Tenor-style, month + 80), so they can never be a real person's.
The passwords are printed on purpose: this is a sandbox for a newcomer to click through.

Beside the patrons, ``idp demo`` registers the demo e-book platform (``demo/ebook``) as a relying
party and keeps its client id and secret in ``var/demo-ebook.json`` (owner-only), because the IdP
shows a secret once and stores only its hash. Likewise a demo library system of the demo city
library (``var/demo-library-system.json``), for which it prints a curl session with the register API.
"""

from __future__ import annotations

import ctypes
import importlib.util
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from sqlalchemy import select

from idp import relying_parties
from idp.errors import NotFound
from idp.registry import guardians, libraries, library_systems, patrons
from idp.registry.cardnumbers import BIBLIOMO_RULES
from idp.registry.context import Registry
from idp.registry.models import Library, LibrarySystem, RelyingParty
from idp.registry.national_id import synthetic_national_ids

DEMO_LIBRARIES = [
    ("NO-2030000", "Demo City Library (Oslo)", None),
    ("NO-2030001", "Demo Town Library (Bergen)", None),
    ("IT-MO0001", "Demo BiblioMo member library (Modena)", BIBLIOMO_RULES),
]
DEMO_PASSWORD = "demo-password-1"  # noqa: S105 - the demo's published development password
DEMO_PIN = "2468"
DEMO_CARD_HOLDER = date(1985, 3, 12)  # Kari's birth date: the adult a newcomer is told to log in as


def _nin(born: date) -> str:
    return next(synthetic_national_ids(born))


def seed(reg: Registry) -> list[str]:
    """Create the demo data once; on later runs say it is there. Returns lines to print."""
    if reg.session.scalar(select(Library.id).where(Library.isil == DEMO_LIBRARIES[0][0])) is not None:
        return ["demo data: already seeded (delete var/idp.sqlite3 to start afresh)"]
    for isil, name, rules in DEMO_LIBRARIES:
        libraries.add_library(reg, isil, name, rules)
        if not isil.startswith("IT-"):
            libraries.reserve_series(reg, isil, 1000, usage="printed")
            libraries.reserve_series(reg, isil, 1000, usage="digital")

    kari, kari_card = patrons.register_patron(reg, patrons.NewPatron(
        name="Kari Nordmann (demo)", national_id=_nin(DEMO_CARD_HOLDER), home_library="NO-2030000",
        email="kari@example.org", phone="+4799999999",
        address=patrons.Address("Storgata 1", "0155", "Oslo"), password=DEMO_PASSWORD, pin=DEMO_PIN))
    _, ola_card = patrons.register_patron(reg, patrons.NewPatron(
        name="Ola Nordmann (demo, secret address)", national_id=_nin(date(1979, 11, 30)),
        home_library="NO-2030001", email="ola@example.org", address_secret=True, password=DEMO_PASSWORD))
    _, child_card = guardians.register_child(reg, kari, patrons.NewPatron(
        name="Emma Nordmann (demo, child)", national_id=_nin(date(2016, 6, 1)), home_library="NO-2030000"))
    giulia_born = date(1992, 4, 12)
    _, giulia_card = patrons.register_patron(reg, patrons.NewPatron(
        name="Giulia Rossi (demo, local card)", home_library="IT-MO0001", local_card="U-0003125",
        birth_date=giulia_born, email="giulia@example.org",
        # BiblioMo's first-access password is the birth date, to be changed at first login.
        password=giulia_born.strftime("%d/%m/%Y"), password_must_change=True))
    return [
        "demo data (DEVELOPMENT ONLY, made-up people):",
        f"  {kari_card.number}  Kari, adult      password {DEMO_PASSWORD}  PIN {DEMO_PIN}",
        f"  {ola_card.number}  Ola, secret address  password {DEMO_PASSWORD}",
        f"  {child_card.number}  Emma, child of Kari (no password)",
        f"  {giulia_card.number}  Giulia, local BiblioMo card (type it as U0003125)  "
        f"password {giulia_born:%d/%m/%Y} (must change)",
    ]


# -- the demo e-book platform (demo/ebook), a relying party to click through ------------------

PLATFORM_NAME = "Demo e-book platform (development only)"
PLATFORM_PORT = 5001
PLATFORM_CLAIMS = ["valid_patron"]
# Relative to IDP_HOME; git-ignored with the rest of var/.
PLATFORM_CLIENT_FILE = Path("var") / "demo-ebook.json"


@dataclass(frozen=True)
class PlatformClient:
    """What the demo platform needs to log patrons in: its client id and secret at the IdP."""

    client_id: str
    client_secret: str = field(repr=False)


def platform_base_url(port: int) -> str:
    return f"http://127.0.0.1:{port}"


def platform_redirect_uris(base_url: str) -> list[str]:
    # The home page too: it is where RP-initiated logout returns (post_logout_redirect_uri).
    return [f"{base_url}/callback", f"{base_url}/"]


def load_platform_client(path: Path) -> PlatformClient | None:
    """The stored client, or None when there is none or it is unreadable (it is then re-registered)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return PlatformClient(str(data["client_id"]), str(data["client_secret"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def save_platform_client(path: Path, client: PlatformClient,
                         note: str = "the demo e-book platform's credentials") -> None:
    """Owner-only (0600), written whole or not at all: the secret exists nowhere else."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump({"client_id": client.client_id, "client_secret": client.client_secret,
                   "note": f"DEVELOPMENT ONLY: {note}, written by `idp demo`"},
                  out, indent=2)
        out.write("\n")
    os.chmod(tmp, 0o600)  # O_CREAT's mode is masked by the umask and ignored for an existing file
    tmp.replace(path)


def _find_platform(reg: Registry, stored: PlatformClient | None) -> RelyingParty | None:
    if stored is not None:
        try:
            return relying_parties.get(reg, stored.client_id)
        except NotFound:
            pass  # the database was reset but var/demo-ebook.json survived
    # The file was lost: reuse the platform registered before rather than pile up new ones.
    return next((rp for rp in relying_parties.list_all(reg)
                 if rp.name == PLATFORM_NAME and rp.protocol == relying_parties.PROTOCOL_OIDC and not rp.public),
                None)


def ensure_platform(reg: Registry, stored: PlatformClient | None,
                    base_url: str) -> tuple[PlatformClient, list[str]]:
    """Register the demo platform, or bring the one registered before up to date.

    Returns the client (whose secret the caller stores once this transaction commits) and lines
    to print. Idempotent: a second run with the same stored client changes nothing.
    """
    wanted_uris = platform_redirect_uris(base_url)
    rp = _find_platform(reg, stored)
    if rp is None:
        rp, secret = relying_parties.add_oidc(reg, PLATFORM_NAME, wanted_uris, claims=PLATFORM_CLAIMS,
                                              dpa_signed=reg.today())
        assert secret is not None  # noqa: S101 - a confidential client always gets one
        return PlatformClient(rp.client_id, secret), [f"demo platform: registered as relying party {rp.client_id}"]

    lines = [f"demo platform: relying party {rp.client_id} (registered before)"]
    missing = [uri for uri in wanted_uris if uri not in rp.redirect_uris]
    if missing:
        # Another --platform-port: add its URIs and keep the old ones, so either port works.
        rp.redirect_uris = relying_parties.clean_redirect_uris([*rp.redirect_uris, *missing])
        reg.session.flush()
        reg.audit("rp.demo_redirect_uris", client_id=rp.client_id, added=missing)
    if rp.dpa_signed is None:
        relying_parties.set_dpa(reg, rp.client_id, reg.today())
    if rp.disabled:
        lines.append(f"demo platform: note: it is disabled; `idp rp enable {rp.client_id}` lets it log patrons in")
        secret = stored.client_secret if stored is not None and stored.client_id == rp.client_id else None
    elif stored is not None and stored.client_id == rp.client_id and \
            relying_parties.authenticate(reg, rp.client_id, stored.client_secret) is not None:
        secret = stored.client_secret
    else:
        secret = None
    if secret is None:
        # The stored secret is gone or stale and the IdP keeps only its hash: issue a fresh one.
        _, secret = relying_parties.rotate_secret(reg, rp.client_id)
        lines.append("demo platform: issued a new client secret (the stored one was missing or outdated)")
    return PlatformClient(rp.client_id, secret), lines


def demo_card(reg: Registry) -> str | None:
    """The card number the newcomer is told to log in with (Kari's active national card)."""
    kari = patrons.find_by_national_id(reg, _nin(DEMO_CARD_HOLDER))
    if kari is None:
        return None
    return next((card.number for card in kari.cards if card.status == "active"), None)


# -- the demo library system: the register API with curl ---------------------------------------

LIBRARY_SYSTEM_NAME = "Demo library system (development only)"
LIBRARY_SYSTEM_ISIL = DEMO_LIBRARIES[0][0]
LIBRARY_SYSTEM_NOTE = "the demo library system's credentials (register API)"
# Relative to IDP_HOME, beside the platform's.
LIBRARY_SYSTEM_FILE = Path("var") / "demo-library-system.json"


def _find_library_system(reg: Registry, stored: PlatformClient | None) -> LibrarySystem | None:
    if stored is not None:
        try:
            return library_systems.get(reg, stored.client_id)
        except NotFound:
            pass  # the database was reset but the file survived
    return next((system for system in library_systems.list_all(reg, LIBRARY_SYSTEM_ISIL)
                 if system.name == LIBRARY_SYSTEM_NAME and system.secret_hash is not None), None)


def ensure_library_system(reg: Registry, stored: PlatformClient | None) -> tuple[PlatformClient, list[str]]:
    """Register the demo city library's system (client_secret_basic), or reuse the one registered
    before; a stored secret that no longer works is replaced. Idempotent, like ensure_platform."""
    system = _find_library_system(reg, stored)
    if system is None:
        system, secret = library_systems.add(reg, LIBRARY_SYSTEM_ISIL, LIBRARY_SYSTEM_NAME)
        assert secret is not None  # noqa: S101 - a system without a JWKS always gets one
        return PlatformClient(system.client_id, secret), [
            f"demo library system: registered as {system.client_id} for {LIBRARY_SYSTEM_ISIL}"]
    if system.disabled:
        library_systems.enable(reg, system.client_id)
    if stored is not None and library_systems.secret_matches(system, stored.client_secret):
        return stored, [f"demo library system: {system.client_id} (registered before)"]
    _, secret = library_systems.rotate_secret(reg, system.client_id)
    return PlatformClient(system.client_id, secret), [
        f"demo library system: {system.client_id}, with a new client secret (the stored one was missing or outdated)"]


def curl_session(issuer: str, system: PlatformClient, card: str | None) -> list[str]:
    """A token with the client credentials grant (client_secret_basic), then a lookup of ``card``:
    lines a newcomer pastes into a shell (bash, curl and python3)."""
    base = issuer.rstrip("/")
    token = (f"TOKEN=$(curl -s -u '{system.client_id}:{system.client_secret}' -d grant_type=client_credentials "
             f"-d scope=register.read {base}/token "
             """| python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')""")
    body = json.dumps({"card_number": card or "N000000000"})
    lookup = (f"""curl -s -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' """
              f"-d '{body}' {base}/api/v1/patrons/lookup")
    return [f"register API (DEVELOPMENT ONLY): the demo library system's token, then a lookup of Kari's card "
            f"(reference: {base}/api/v1/docs):", f"  {token}", f"  {lookup}"]


# -- running the platform beside the IdP --------------------------------------------------------

class PlatformUnavailable(Exception):
    """The platform cannot start here; the IdP still serves, and the message says why."""


def platform_source() -> Path | None:
    """The checkout's demo/ebook, or None when the IdP was installed without its source tree."""
    checkout = Path(__file__).resolve().parent.parent
    return checkout if (checkout / "demo" / "ebook" / "app.py").is_file() else None


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as probe:
        # As the platform's own server binds: a port left in TIME_WAIT by the last run is free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def _die_with_parent() -> None:
    # Linux: should the IdP be killed outright (no finally runs), the platform goes with it
    # instead of holding its port until someone finds it.
    PR_SET_PDEATHSIG = 1  # noqa: N806 - its name in <sys/prctl.h>
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def start_platform(client: PlatformClient, issuer: str, port: int) -> subprocess.Popen[bytes]:
    """Start demo/ebook as a child process serving on 127.0.0.1:PORT. Raises PlatformUnavailable when it cannot."""
    checkout = platform_source()
    if checkout is None:
        raise PlatformUnavailable("the demo platform comes with the source checkout (demo/ebook), which is not here")
    if importlib.util.find_spec("authlib") is None:
        # A test extra today: `make demo` installs it, a bare `pip install patron-idp` does not.
        raise PlatformUnavailable("it needs authlib (pip install -e '.[test]', as `make demo` does)")
    if not port_is_free(port):
        raise PlatformUnavailable(f"port {port} is in use (another `idp demo`?); choose one with --platform-port")
    # The platform is a partner, not part of the IdP: none of the IdP's own settings or secrets.
    env = {key: value for key, value in os.environ.items() if not key.startswith("IDP_")}
    env.update(DEMO_EBOOK_ISSUER=issuer, DEMO_EBOOK_CLIENT_ID=client.client_id,
               DEMO_EBOOK_CLIENT_SECRET=client.client_secret, DEMO_EBOOK_BASE_URL=platform_base_url(port),
               DEMO_EBOOK_SECRET_KEY=secrets.token_urlsafe(32), PYTHONUNBUFFERED="1",
               PYTHONPATH=os.pathsep.join(filter(None, [str(checkout), env.get("PYTHONPATH")])))
    # preexec_fn is unsafe only with threads, and the CLI has started none at this point.
    return subprocess.Popen([sys.executable, "-m", "demo.ebook.app"], cwd=checkout, env=env,
                            preexec_fn=_die_with_parent if sys.platform == "linux" else None)  # noqa: PLW1509


NOTICE_INTERVAL = 5.0  # seconds between the demo's notice runs


def start_notice_deliverer(interval: float = NOTICE_INTERVAL) -> subprocess.Popen[bytes]:
    """``idp notifications deliver --every`` as a child process, with the IdP's own settings: a
    demo patron's notices (a locked login, a changed PIN) land in var/outbox/ within seconds."""
    from idp.cli.common import idp_command  # noqa: PLC0415 - the whole CLI (pysaml2 too), only when started

    command = [*idp_command(), "notifications", "deliver", "--every", str(interval)]
    # preexec_fn is unsafe only with threads, and the CLI has started none at this point.
    return subprocess.Popen(command, env={**os.environ, "PYTHONUNBUFFERED": "1"},  # noqa: S603 - our own CLI, no shell
                            preexec_fn=_die_with_parent if sys.platform == "linux" else None)  # noqa: PLW1509


def stop_child(process: subprocess.Popen[bytes], timeout: float = 10) -> None:
    """Stop one of the demo's child processes: politely, then firmly."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)
