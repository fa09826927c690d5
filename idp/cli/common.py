"""Shared pieces of the operator CLI: the context, error handling, output, reading secrets.

Every error ends as one clear line on stderr and a non-zero exit, never a traceback. Secrets
(passwords, PINs) are read from stdin or a hidden prompt, never taken as arguments, which
would leave them in shell history and the process list.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from pathlib import Path
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from functools import wraps
from typing import Any, TypeVar

import click
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from idp.errors import IdpError, ValidationError
from idp.registry.context import Registry
from idp.services import Services, build_services
from idp.settings import load_settings

log = logging.getLogger("idp.cli")
F = TypeVar("F", bound=Callable[..., Any])
OPERATOR = "cli"



def idp_command() -> list[str]:
    """How to run ``idp`` in a child process: the console script of this interpreter's environment,
    or the interpreter itself where there is none (a checkout not installed)."""
    script = Path(sys.executable).with_name("idp")
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from idp.cli import main; sys.exit(main())"]

class Context:
    """Settings and services, built on first use so ``idp --help`` needs no configuration."""

    def __init__(self) -> None:
        self._services: Services | None = None

    @property
    def services(self) -> Services:
        if self._services is None:
            self._services = build_services(load_settings())
        return self._services

    @contextmanager
    def registry(self, *, migrated: bool = True) -> Iterator[Registry]:
        if migrated:
            self.services.require_current_schema()
        actor = f"{OPERATOR}:{os.environ.get('USER', 'unknown')}"
        with self.services.registry(actor) as reg:
            yield reg

    def close(self) -> None:
        if self._services is not None:
            self._services.close()


def fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(1)


def handle_errors(fn: F) -> F:
    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except IdpError as exc:
            fail(exc.message)
        except OperationalError as exc:
            fail(f"cannot use the database: {type(exc.orig).__name__ if exc.orig else 'connection failed'} "
                 "(check IDP_DATABASE_URL and that the server is running)")
        except SQLAlchemyError as exc:
            log.debug("database error", exc_info=True)
            fail(f"the database refused the change ({type(exc).__name__}); nothing was saved")
        except (click.ClickException, click.Abort, click.exceptions.Exit):
            raise
        except Exception as exc:  # the operator gets one line, the debug log the rest
            log.debug("unexpected failure", exc_info=True)
            fail(f"unexpected failure ({type(exc).__name__}); nothing was saved. "
                 "Run again with IDP_LOG_LEVEL=DEBUG for details.")
    return wrapper  # type: ignore[return-value]


def out(**fields: Any) -> None:
    for key, value in fields.items():
        click.echo(f"{key}: {value}")


_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def parse_date(value: str, option: str) -> date:
    # Parsed here rather than by click.DateTime, so a bad date ends as one `error:` line with exit 1
    # like every other refused input, not as a usage error with exit 2.
    try:
        if _ISO_DATE.fullmatch(value.strip()):
            return date.fromisoformat(value.strip())
    except ValueError:
        pass
    raise ValidationError(f"{option} is a date as YYYY-MM-DD, e.g. 2026-11-23.")


def parse_claims(value: str | None) -> list[str] | None:
    """A comma-separated --claims option: None when not given, [] when given empty."""
    if value is None:
        return None
    return [c.strip() for c in value.split(",")] if value.strip() else []


def yes(flag: bool) -> str:
    return "yes" if flag else "no"


def read_secret(label: str, *, optional: bool) -> str | None:
    """From the terminal with a hidden, confirmed prompt; otherwise one line of stdin."""
    if sys.stdin.isatty():
        value = click.prompt(f"{label}{' (empty for none)' if optional else ''}", hide_input=True,
                             confirmation_prompt=True, default="" if optional else None, show_default=False)
    else:
        value = sys.stdin.readline(1024).rstrip("\r\n")
    if not value:
        if optional:
            return None
        fail(f"no {label.lower()} given on stdin")
    return value


pass_ctx = click.make_pass_decorator(Context)
