"""The operator's interface: ``idp --help``.

Every error ends as one clear line on stderr and a non-zero exit, never a traceback. Secrets
(passwords, PINs) are read from stdin or a hidden prompt, never taken as arguments, which
would leave them in shell history and the process list.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import click

from idp import logsafe
from idp.cli import federation, library_systems, register, rp, saml, server
from idp.cli.common import Context


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--config", type=click.Path(dir_okay=False, path_type=Path), envvar="IDP_CONFIG",
              help="TOML settings file (also IDP_CONFIG). IDP_* variables override it.")
@click.pass_context
def main(ctx: click.Context, config: Path | None) -> None:
    """patron-idp: the identity provider in front of the national patron register.

    Settings come from IDP_* environment variables and the TOML file in IDP_CONFIG; see
    docs/configuration.md. Every command prints plain `key: value` lines and exits non-zero on error.
    """
    if config is not None:
        os.environ["IDP_CONFIG"] = str(config.resolve())
    logging.basicConfig(level=os.environ.get("IDP_LOG_LEVEL", "WARNING").upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logsafe.install()
    ctx.obj = Context()
    ctx.call_on_close(ctx.obj.close)


for command in (register.db, server.keys, register.library, register.series, register.patron, register.card,
                register.purge_inactive, register.notifications_group, rp.rp, saml.saml, server.serve, server.demo):
    main.add_command(command)
main.add_command(federation.federation)
main.add_command(library_systems.library_system)
for command in (library_systems.library_update, library_systems.library_show, library_systems.library_set_dpa,
                library_systems.library_set_dpa_deadline):
    register.library.add_command(command)
for command in (saml.rp_add_saml, saml.rp_load_saml_metadata):
    rp.rp.add_command(command)

if __name__ == "__main__":
    main()
