"""`idp demo` registers the demo e-book platform (demo/ebook) as a relying party and starts it.

Registration is driven in-process (embedded backend) and checked in the register; starting and
stopping the platform beside the IdP is checked with real processes, as `make demo` runs them.
"""

from __future__ import annotations

import json
from email import message_from_bytes, policy
import socket
import stat
import subprocess
import time
import urllib.error
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import func, select

from idp import relying_parties as rps
from idp.delivery import DevOutbox
from idp.demo import DEMO_PASSWORD, PLATFORM_NAME, PlatformClient, demo_card, load_platform_client
from idp.registry import patrons
from idp.registry.dates import oslo_date, utcnow
from idp.registry.models import AuditEvent, RelyingParty
from idp.services import Services, build_services
from idp.settings import Settings, load_settings
from tests.cli.test_cli import Idp, make_idp, succeeded
from tests.cli.test_cli import cli_env  # noqa: F401  - a fixture: the environment pointing at this test's register
from tests.serving import free_port, get, idp_env, run_idp, running

PLATFORM = "http://127.0.0.1:5001"


@pytest.fixture
def idp(cli_env: dict[str, str]) -> Idp:  # cli_env is the imported fixture, injected by name
    return make_idp(cli_env)


@pytest.fixture
def client_file(settings: Settings) -> Path:
    return settings.home / "var" / "demo-ebook.json"


def platforms(services: Services) -> list[RelyingParty]:
    with services.registry("test") as reg:
        found = [rp for rp in rps.list_all(reg) if rp.name == PLATFORM_NAME]
        reg.session.expunge_all()
        return found


def authenticates(services: Services, client: PlatformClient) -> bool:
    with services.registry("test") as reg:
        return rps.authenticate(reg, client.client_id, client.client_secret) is not None


def rp_adds(services: Services) -> int:
    with services.registry("test") as reg:
        return reg.session.scalar(select(func.count()).select_from(AuditEvent)
                                  .where(AuditEvent.action == "rp.add")) or 0


def stored(client_file: Path) -> PlatformClient:
    client = load_platform_client(client_file)
    assert client is not None, client_file
    return client


def test_demo_registers_the_platform_once_and_keeps_its_secret_owner_only(
        idp: Idp, services: Services, client_file: Path) -> None:
    output = idp("demo", "--no-serve")
    succeeded(output)
    [rp] = platforms(services)
    assert rp.redirect_uris == [f"{PLATFORM}/callback", f"{PLATFORM}/"]
    assert rp.claims == ["valid_patron"] and rp.min_acr == "password" and not rp.public
    assert rp.subject_type == rps.PAIRWISE
    today = oslo_date(utcnow())  # the register's calendar, not this machine's time zone
    assert rp.dpa_signed is not None and rp.dpa_signed <= today
    assert rps.status(rp, today) == "active"
    assert f"registered as relying party {rp.client_id}" in output.stdout

    assert stat.S_IMODE(client_file.stat().st_mode) == 0o600
    client = stored(client_file)
    assert client.client_id == rp.client_id and authenticates(services, client)
    assert client.client_secret not in output.stdout, "the secret belongs in the file, not on the screen"

    again = idp("demo", "--no-serve")
    succeeded(again)
    assert "registered before" in again.stdout
    assert [p.client_id for p in platforms(services)] == [rp.client_id] and rp_adds(services) == 1
    assert stored(client_file) == client and authenticates(services, client)


def test_a_reset_database_gets_the_platform_registered_afresh(idp: Idp, services: Services,
                                                              client_file: Path) -> None:
    client_file.parent.mkdir(parents=True, exist_ok=True)
    stale = PlatformClient("goneWithTheOldDatabase", "x" * 43)
    client_file.write_text(json.dumps({"client_id": stale.client_id, "client_secret": stale.client_secret}))
    succeeded(idp("demo", "--no-serve"))
    [rp] = platforms(services)
    client = stored(client_file)
    assert client.client_id == rp.client_id != stale.client_id and authenticates(services, client)


def test_a_lost_credentials_file_reuses_the_platform_with_a_new_secret(idp: Idp, services: Services,
                                                                       client_file: Path) -> None:
    succeeded(idp("demo", "--no-serve"))
    first = stored(client_file)
    client_file.unlink()
    result = idp("demo", "--no-serve")
    succeeded(result)
    second = stored(client_file)
    assert "new client secret" in result.stdout
    assert second.client_id == first.client_id and len(platforms(services)) == 1
    assert authenticates(services, second) and not authenticates(services, first)
    assert stat.S_IMODE(client_file.stat().st_mode) == 0o600


def test_another_platform_port_adds_its_redirect_uris(idp: Idp, services: Services) -> None:
    succeeded(idp("demo", "--no-serve"))
    succeeded(idp("demo", "--no-serve", "--platform-port", "5002"))
    [rp] = platforms(services)
    assert rp.redirect_uris == [f"{PLATFORM}/callback", f"{PLATFORM}/",
                                "http://127.0.0.1:5002/callback", "http://127.0.0.1:5002/"]


# -- the platform as a child of `idp demo` --------------------------------------------------------

def answers(url: str) -> bool:
    try:
        return get(url)[0] == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def wait_for(url: str, seconds: float = 15) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if answers(url):
            return True
        time.sleep(0.2)
    return False


def fake_idporten_port() -> list[str]:
    """A free port for the fake ID-porten `idp demo` starts: its default (5002) is one for the whole
    machine, which parallel workers (pytest -n) would fight over."""
    return ["--idporten-port", str(free_port())]


@pytest.mark.slow
def test_demo_starts_the_platform_beside_the_idp_and_stops_it_with_the_idp(tmp_path: Path) -> None:
    port, platform_port = free_port(), free_port()
    env = idp_env(tmp_path)
    env["IDP_ISSUER"] = f"http://127.0.0.1:{port}"
    platform = f"http://127.0.0.1:{platform_port}/"
    log = tmp_path / "demo.log"
    with running(["demo", "--port", str(port), "--platform-port", str(platform_port), *fake_idporten_port()], env,
                 log) as (_, process):
        assert wait_for(platform), f"the platform did not answer:\n{log.read_text()}"
        _, _, body = get(platform)
        assert "Demo e-book platform (development only)" in body and "DEVELOPMENT ONLY" in body
        assert "Log in with your library card" in body
        # Configured by `idp demo`: "Log in" discovers the IdP and lands on its login form.
        status, _, body = get(f"{platform}login")
        assert status == 200 and 'name="username"' in body, body[:500]
        output = log.read_text()
        assert f"open {platform}" in output and f"password {DEMO_PASSWORD}" in output
        assert process.poll() is None
    assert process.returncode == 0, log.read_text()
    assert not answers(platform), "the platform must stop when the IdP stops"


@pytest.mark.slow
def test_demo_without_the_platform_serves_the_idp_alone(tmp_path: Path) -> None:
    port, platform_port = free_port(), free_port()
    log = tmp_path / "demo.log"
    with running(["demo", "--port", str(port), "--no-platform", "--platform-port", str(platform_port),
                  *fake_idporten_port()],
                 idp_env(tmp_path), log):
        assert not answers(f"http://127.0.0.1:{platform_port}/")
    assert "open http" not in log.read_text()


@contextmanager
def socket_listening() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


@pytest.mark.slow
def test_a_busy_platform_port_leaves_the_idp_serving(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "demo.log"
    with socket_listening() as busy, running(["demo", "--port", str(port), "--platform-port", str(busy),
                                              *fake_idporten_port()],
                                             idp_env(tmp_path), log) as (base, _):
        assert answers(f"{base}/healthz")
    assert f"not started: port {busy} is in use" in log.read_text()


def deliverers_of(demo: int) -> list[int]:
    """The children of the `idp demo` process ``demo`` that run `idp notifications deliver --every`.

    Found by parent and command line, not by environment: a process that sets its title
    (setproctitle, which gunicorn's import pulls in) rewrites the memory /proc shows as its
    environ, and joins its argv with spaces."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            # The parent pid is the 2nd field after the ")" that ends the command name.
            parent = int((proc / "stat").read_bytes().rsplit(b")", 1)[1].split()[1])
            command = (proc / "cmdline").read_bytes()
        except (OSError, ValueError, IndexError):  # not a process, or gone meanwhile
            continue
        if parent == demo and b"deliver" in command and b"--every" in command:
            found.append(int(proc.name))
    return found


def gone(pid: int, seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
        time.sleep(0.1)
    return not Path(f"/proc/{pid}").exists()


def mail_texts(outbox: DevOutbox) -> list[str]:
    """The bodies of the e-mails in the outbox, decoded (quoted-printable folds long lines)."""
    return [message_from_bytes(m.read_bytes(), policy=policy.default).get_body().get_content()  # type: ignore[union-attr]
            for m in outbox.messages() if m.suffix == ".eml"]


@pytest.mark.slow
def test_demo_writes_patrons_notices_to_the_outbox_and_stops_its_deliverer_with_it(tmp_path: Path) -> None:
    port = free_port()
    env = {**idp_env(tmp_path), "IDP_ISSUER": f"http://127.0.0.1:{port}"}
    log = tmp_path / "demo.log"
    with running(["demo", "--port", str(port), "--no-platform", "--no-idporten"], env, log) as (_, demo):
        assert "notices to patrons: delivered every 5 s" in log.read_text()
        # Started before the IdP answers, but a forked child shows its own command line only once it
        # has exec'd: on a busy machine that can come a moment after /healthz.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not deliverers_of(demo.pid):
            time.sleep(0.1)
        deliverers = deliverers_of(demo.pid)
        assert len(deliverers) == 1, log.read_text()
        services = build_services(load_settings(env))
        try:
            with services.registry("test") as reg:
                card = demo_card(reg)
                assert card is not None
                patrons.update_patron(reg, patrons.patron_by_card(reg, card), phone=None,
                                      email="demo.new@example.org")
        finally:
            services.close()
        outbox = DevOutbox(tmp_path / "var" / "outbox")
        changed = "E-postadressen for bibliotekinnloggingen din er endret"
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not any(changed in text for text in mail_texts(outbox)):
            time.sleep(0.2)
        assert any(changed in text for text in mail_texts(outbox)), [t[:80] for t in mail_texts(outbox)]
    assert gone(deliverers[0]), "the deliverer must stop when the IdP stops"


def curl_session(output: str) -> list[str]:
    """The shell lines `idp demo` prints for the register API: a token, then a lookup."""
    return [line.strip() for line in output.splitlines() if line.strip().startswith(("TOKEN=", "curl "))]


@pytest.mark.slow
def test_demo_prints_a_curl_session_for_the_register_api_that_works(tmp_path: Path) -> None:
    """README and issue 15: `make demo` registers a demo library system and prints a token request
    (client_secret_basic at /token) and a lookup of a demo patron's card, which work as printed."""
    port = free_port()
    env = idp_env(tmp_path)
    env["IDP_ISSUER"] = f"http://127.0.0.1:{port}"
    log = tmp_path / "demo.log"
    with running(["demo", "--port", str(port), "--no-platform", "--no-idporten"], env, log):
        lines = curl_session(log.read_text())
        assert [line.split("=", 1)[0].split()[0] for line in lines] == ["TOKEN", "curl"], log.read_text()
        assert f"http://127.0.0.1:{port}/token" in lines[0] and "-u " in lines[0]
        assert f"http://127.0.0.1:{port}/api/v1/patrons/lookup" in lines[1]
        # Run as printed, by a shell, with the system's curl.
        shell = subprocess.run(["/bin/bash", "-c", "set -eo pipefail\n" + "\n".join(lines)], capture_output=True,
                               text=True, timeout=60, check=False)
        assert shell.returncode == 0, shell.stderr + shell.stdout
        found = json.loads(shell.stdout)["patron"]
        assert found["name"].startswith("Kari Nordmann") and found["cards"], found
    # A second run keeps the same system (its secret in var/, owner-only) and prints a session that works.
    stored = json.loads((tmp_path / "var" / "demo-library-system.json").read_text())
    assert stat.S_IMODE((tmp_path / "var" / "demo-library-system.json").stat().st_mode) == 0o600
    again = run_idp("demo", "--no-serve", env=env)
    assert again.returncode == 0, again.stderr
    token_line = curl_session(again.stdout)[0]
    assert stored["client_id"] in token_line and stored["client_secret"] in token_line
