"""Starting the fake ID-porten (``demo/idporten``, DEVELOPMENT ONLY) beside ``idp demo``.

``idp demo`` runs it on http://127.0.0.1:5002 unless a real ID-porten is configured
(``IDP_IDPORTEN_ISSUER``) or ``--no-idporten`` is given, and serves the IdP with its ID-porten
settings pointed at it: a client id of the demo's own and a fresh random secret per start.
Outside development mode nothing here runs (and the fake itself refuses to start).
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import date
import json

from idp.demo import DEMO_CARD_HOLDER, _die_with_parent, platform_source, port_is_free, stop_child
from idp.errors import ConfigError
from idp.registry.dates import oslo_date, utcnow, years_before
from idp.registry.national_id import synthetic_national_ids
from idp.settings import Settings

DEFAULT_PORT = 5002
CLIENT_ID = "patron-idp-demo"


class Unavailable(Exception):
    """The fake cannot start here; the IdP still serves (without ID-porten), and the message says why."""


@dataclass(frozen=True)
class DevIdPorten:
    issuer: str
    client_id: str
    client_secret: str = field(repr=False)
    process: subprocess.Popen[bytes] | None = field(default=None, compare=False)


def people(today: date | None = None) -> list[dict[str, str]]:
    """Made-up people to log in as (synthetic numbers, month + 80: never a real person's)."""
    today = today or oslo_date(utcnow())
    fifteen = years_before(today, 15)
    return [
        {"pid": next(synthetic_national_ids(DEMO_CARD_HOLDER)), "label": "Kari Nordmann (demo): has a library card"},
        {"pid": next(synthetic_national_ids(date(1990, 5, 17))), "label": "Nora Ny (demo): no card yet, registers"},
        {"pid": next(synthetic_national_ids(fifteen)), "label": "Emil (demo): turns 15 today, registers alone"},
    ]


def settings_for(settings: Settings, fake: DevIdPorten) -> Settings:
    """The IdP's settings, pointed at the fake (development only)."""
    if not settings.is_development:
        raise ConfigError("the fake ID-porten is for development only")
    return Settings(**{**settings.model_dump(), "idporten_issuer": fake.issuer, "idporten_client_id": fake.client_id,
                       "idporten_client_secret": fake.client_secret})


def start(settings: Settings, port: int = DEFAULT_PORT) -> DevIdPorten:
    """Start demo/idporten as a child process on 127.0.0.1:PORT. Raises Unavailable when it cannot."""
    if not settings.is_development:
        raise ConfigError("the fake ID-porten is for development only")
    checkout = platform_source()
    if checkout is None or not (checkout / "demo" / "idporten" / "app.py").is_file():
        raise Unavailable("the fake ID-porten comes with the source checkout (demo/idporten), which is not here")
    if not port_is_free(port):
        raise Unavailable(f"port {port} is in use; choose another with --idporten-port")
    fake = DevIdPorten(issuer=f"http://127.0.0.1:{port}", client_id=CLIENT_ID, client_secret=secrets.token_urlsafe(32))
    env = {key: value for key, value in os.environ.items() if not key.startswith("IDP_")}
    env.update(IDP_MODE="development", DEMO_IDPORTEN_ISSUER=fake.issuer, DEMO_IDPORTEN_CLIENT_ID=fake.client_id,
               DEMO_IDPORTEN_CLIENT_SECRET=fake.client_secret,
               DEMO_IDPORTEN_REDIRECT_URIS=f"{settings.issuer}/idporten/callback",
               DEMO_IDPORTEN_LOGOUT_URIS=f"{settings.issuer}/idporten/logged-out",
               DEMO_IDPORTEN_PEOPLE=json.dumps(people()), PYTHONUNBUFFERED="1",
               PYTHONPATH=os.pathsep.join(filter(None, [str(checkout), env.get("PYTHONPATH")])))
    process = subprocess.Popen([sys.executable, "-m", "demo.idporten.app"], cwd=checkout, env=env,
                               preexec_fn=_die_with_parent if sys.platform == "linux" else None)  # noqa: PLW1509
    return DevIdPorten(fake.issuer, fake.client_id, fake.client_secret, process)


def stop(fake: DevIdPorten) -> None:
    if fake.process is not None:
        stop_child(fake.process)
