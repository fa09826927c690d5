"""Operator commands for running the IdP: keys, serve, demo."""

from __future__ import annotations

import os

import click

from idp import migrate
from idp.cli.common import Context, fail, handle_errors, out, pass_ctx
from idp.keys import KeyRing
from idp.keys import rotate as rotate_keys
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
@click.option("--workers", default=2, show_default=True, type=int)
@pass_ctx
@handle_errors
def serve(ctx: Context, host: str, port: int, workers: int) -> None:
    """Serve the IdP (gunicorn)."""
    from idp.server import run

    ctx.services.require_current_schema()
    run(ctx.services.settings, host=host, port=port, workers=workers)


@click.command("demo")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--no-serve", is_flag=True, help="Only migrate and seed.")
@pass_ctx
@handle_errors
def demo(ctx: Context, host: str, port: int, no_serve: bool) -> None:
    """Development only: migrate, seed demo libraries and patrons, and serve."""
    from idp.demo import seed

    if requested_mode() != Mode.DEVELOPMENT or not ctx.services.settings.is_development:
        fail("idp demo seeds made-up patrons and runs only with IDP_MODE=development (make demo sets it)")
    migrate.upgrade(ctx.services.engine)
    with ctx.registry() as reg:
        lines = seed(reg)
    for line in lines:
        click.echo(line)
    if not no_serve:
        from idp.server import run

        click.echo(f"serving on http://{host}:{port} (Ctrl-C to stop)")
        run(ctx.services.settings, host=host, port=port, workers=1)

