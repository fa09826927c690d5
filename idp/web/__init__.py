"""Thin Flask blueprints for the pages a person sees."""

from __future__ import annotations

from flask import current_app

from idp.services import Services


def services() -> Services:
    return current_app.extensions["idp"]


def clock_seconds() -> int:
    """Now by the services' clock, in seconds since the epoch: for the time limits we decide on
    (a proof's window, a waiting registration), so tests can move it. When a patron logged in
    (auth_time) stays wall-clock time: tokens and assertions carry it to other servers."""
    return int(services().clock().timestamp())
