"""Waiting for the change feed in tests on PostgreSQL: it shows a change once every older transaction of
the database has ended (idp.registry.changes), and the live server's may still be finishing."""

from __future__ import annotations

import time

from idp.registry import changes
from idp.services import Services


def wait_settled(services: Services, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with services.registry("test") as reg:
            if changes.settled(reg):
                return
        if time.monotonic() > deadline:
            raise AssertionError("the change feed did not settle: a transaction kept running")
        time.sleep(0.05)
