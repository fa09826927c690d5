"""Operator commands for running the IdP: keys, serve, demo."""

from __future__ import annotations

import os

import click

from idp import migrate
from idp.cli.common import Context, fail, handle_errors, out, pass_ctx
from idp.keys import KeyRing
from idp.keys import rotate as rotate_keys
from idp.server import DEFAULT_THREADS
from idp.settings import Mode, load_settings, new_secret, requested_mode


# -- keys -------------------------------------------------------------------------------------

@click.group()
def keys() -> None:
    """Secrets and keys."""


@keys.command("new-secret")
def keys_new_secret() -> None:
    """Print a fresh random 32-byte secret (for IDP_SECRET_KEY or IDP_DATA_KEY)."""
    click.echo(new_secret())


@keys.command("rotate")
@handle_errors
def keys_rotate() -> None:
    """Make each next signing key current and publish a fresh next key (creates both the first time).

    Running servers pick the change up by themselves. Rotate no more often than relying parties
    refresh their cached JWKS, or they will meet a key they have not fetched yet.
    """
    # Settings only: rotating keys must not need the database (a keys host may have none).
    _print_kids(rotate_keys(load_settings().keys_dir))


@keys.command("show")
@handle_errors
def keys_show() -> None:
    """Show the kid of the current and the next signing key of each algorithm; changes nothing."""
    _print_kids(KeyRing.load(load_settings().keys_dir))


def _print_kids(ring: KeyRing) -> None:
    for alg in ring.algorithms:
        out(**{f"current_{alg}": ring.current_kid(alg), f"next_{alg}": ring.next_kid(alg)})


# -- serve / demo -----------------------------------------------------------------------------

@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--workers", type=click.IntRange(1, 64), show_default="2 with IDP_REDIS_URL, else 1",
              help="Processes; one per core is the usual choice. More than 1 needs IDP_REDIS_URL "
                   "(without Redis, sessions and codes live in one process).")
@click.option("--threads", default=DEFAULT_THREADS, show_default=True, type=click.IntRange(1, 64),
              help="Threads per worker (1: gunicorn's sync worker).")
@pass_ctx
@handle_errors
def serve(ctx: Context, host: str, port: int, workers: int | None, threads: int) -> None:
    """Serve the IdP (gunicorn)."""
    from idp.server import run, worker_count  # noqa: PLC0415 - gunicorn and the Flask app, only for serving

    workers = worker_count(workers, ctx.services.settings)
    ctx.services.require_current_schema()
    ctx.services.saml  # noqa: B018 - a missing SAML key or xmlsec1: one error line here, not a crashing worker
    run(ctx.services.settings, host=host, port=port, workers=workers, threads=threads)


@click.command("demo")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--no-serve", is_flag=True, help="Only migrate, seed and register the demo platform.")
@click.option("--no-platform", is_flag=True,
              help="Do not start the demo e-book platform (it is still registered, see var/demo-ebook.json).")
@click.option("--platform-port", default=5001, show_default=True, type=click.IntRange(1, 65535),
              help="Port of the demo e-book platform on 127.0.0.1.")
@click.option("--no-idporten", is_flag=True,
              help="Do not start the fake ID-porten (started unless IDP_IDPORTEN_ISSUER names a real one).")
@click.option("--idporten-port", default=5002, show_default=True, type=click.IntRange(1, 65535),
              help="Port of the fake ID-porten (DEVELOPMENT ONLY) on 127.0.0.1.")
@pass_ctx
@handle_errors
def demo(ctx: Context, host: str, port: int, no_serve: bool, no_platform: bool, platform_port: int,
         no_idporten: bool = False, idporten_port: int = 5002) -> None:
    """Development only: migrate, seed demo libraries and patrons, register the demo e-book
    platform as a relying party, and serve the IdP with the platform beside it."""
    from idp import demo as demo_data  # noqa: PLC0415 - development-only code, only for `idp demo`

    if requested_mode() != Mode.DEVELOPMENT or not ctx.services.settings.is_development:
        fail("idp demo seeds made-up patrons and runs only with IDP_MODE=development (make demo sets it)")
    settings = ctx.services.settings
    migrate.upgrade(ctx.services.engine)
    client_file = settings.home / demo_data.PLATFORM_CLIENT_FILE
    stored = demo_data.load_platform_client(client_file)
    system_file = settings.home / demo_data.LIBRARY_SYSTEM_FILE
    stored_system = demo_data.load_platform_client(system_file)
    platform_url = demo_data.platform_base_url(platform_port)
    with ctx.registry() as reg:
        lines = demo_data.seed(reg)
        client, platform_lines = demo_data.ensure_platform(reg, stored, platform_url)
        system, system_lines = demo_data.ensure_library_system(reg, stored_system)
        card = demo_data.demo_card(reg)
    # Only after the commit: a file naming a client the database never got would mislead the next run.
    if client != stored:
        demo_data.save_platform_client(client_file, client)
    if system != stored_system:
        demo_data.save_platform_client(system_file, system, demo_data.LIBRARY_SYSTEM_NOTE)
    for line in [*lines, *platform_lines, f"demo platform: client id and secret in {client_file} (owner-only)",
                 *system_lines, *demo_data.curl_session(settings.issuer, system, card)]:
        click.echo(line)
    if no_serve:
        return
    from idp.server import run  # noqa: PLC0415 - gunicorn and the Flask app, only for serving

    platform = None
    if not no_platform:
        try:
            platform = demo_data.start_platform(client, settings.issuer, platform_port)
        except demo_data.PlatformUnavailable as exc:
            click.echo(f"demo platform: not started: {exc}")
    if platform is not None:
        click.echo(f"demo platform: open {platform_url}/ and click \"Log in with your library card\"; "
                   f"log in with card {card or '(see above)'} and password {demo_data.DEMO_PASSWORD} "
                   "(DEVELOPMENT ONLY)")
    fake_idporten = None
    if not no_idporten and not settings.idporten_enabled:
        from idp.devtools import idporten as dev_idporten  # noqa: PLC0415 - development only, as above

        try:
            fake_idporten = dev_idporten.start(settings, idporten_port)
        except dev_idporten.Unavailable as exc:
            click.echo(f"fake ID-porten: not started: {exc}")
        else:
            settings = dev_idporten.settings_for(settings, fake_idporten)
            click.echo(f"fake ID-porten (DEVELOPMENT ONLY): {fake_idporten.issuer}; \"Log in with ID-porten\" on the "
                       "login page lets you pick a made-up person (one with a card, one who registers)")
    notices = demo_data.start_notice_deliverer()
    click.echo(f"notices to patrons: delivered every {demo_data.NOTICE_INTERVAL:g} s; without IDP_SMTP_HOST and "
               f"IDP_SMS_URL they are written to {settings.home / 'var' / 'outbox'}, not sent")
    click.echo(f"serving on http://{host}:{port} (Ctrl-C to stop)")
    starter = os.getpid()
    try:
        run(settings, host=host, port=port, workers=1)
    finally:
        # gunicorn's forked workers unwind through here too: only the process that started the
        # children may stop them, or a worker's exit would take them down.
        if os.getpid() == starter:
            demo_data.stop_child(notices)
            if platform is not None:
                demo_data.stop_child(platform)
            if fake_idporten is not None:
                dev_idporten.stop(fake_idporten)
