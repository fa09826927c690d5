"""Thin Flask blueprints for the pages a person sees."""

from __future__ import annotations

from flask import current_app

from idp.services import Services


def services() -> Services:
    return current_app.extensions["idp"]
