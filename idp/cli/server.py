"""Operator commands for running the IdP: keys, serve, demo."""

from __future__ import annotations

import click

from idp import migrate
from idp.cli.common import Context, fail, handle_errors, pass_ctx
from idp.settings import Mode, new_secret, requested_mode


# -- keys -------------------------------------------------------------------------------------

@click.group()
def keys() -> None:
    """Secrets and keys."""


@keys.command("new-secret")
def keys_new_secret() -> None:
    """Print a fresh random 32-byte secret (for IDP_SECRET_KEY or IDP_DATA_KEY)."""
    click.echo(new_secret())


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

