"""What the benchmarks share: argument types, clean interruption, a private PostgreSQL database,
and the machine facts every figure must be read with."""

from __future__ import annotations

import argparse
import os
import platform
import secrets
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL

_interrupted = False


def positive(value: str) -> int:
    """An argparse type: a whole number of at least 1 ("1_000_000" and "1,000,000" welcome)."""
    number = int(value.replace("_", "").replace(",", ""))
    if number < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return number


def stop_on_signals() -> None:
    """SIGTERM (a CI job cancelled) and SIGINT unwind like Ctrl-C, so clean-up runs; SIGINT too
    when started in the background, where the shell hands it down ignored."""
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)


def _interrupt(_signum: int, _frame: FrameType | None) -> None:
    # The first signal unwinds (and so cleans up); a second one must not cut the clean-up short.
    global _interrupted
    if not _interrupted:
        _interrupted = True
        raise KeyboardInterrupt
    print("cleaning up, please wait", file=sys.stderr)


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def machine_line() -> str:
    return (f"machine: {cores()} cores available ({os.cpu_count()} online), {platform.machine()}, "
            f"{platform.system()} {platform.release()}, Python {platform.python_version()}")


@contextmanager
def private_database(admin_url: URL, prefix: str) -> Iterator[tuple[URL, str]]:
    """A new database on the server behind ``admin_url``, dropped afterwards whatever happens."""
    name = f"{prefix}_{secrets.token_hex(5)}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield admin_url.set(database=name), name
        finally:
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            print(f"database {name} dropped", flush=True)
    finally:
        admin.dispose()
