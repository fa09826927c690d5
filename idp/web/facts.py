"""Claims in the patron's words: the consent page and My account say what each one reveals."""

from __future__ import annotations

from datetime import datetime

from flask import Flask
from flask_babel import gettext

from idp.claims import installed_claims
from idp.registry.dates import OSLO


def in_words(name: str) -> str:
    """"that you are at least 15 years old", in the page's language."""
    catalogue = installed_claims()
    if not catalogue.provides(name):
        return name  # remembered from a plugin no longer installed: its name is all we can say
    wording = catalogue.describe(name)
    return gettext(wording.msgid, **wording.params)


def oslo_time(moment: datetime) -> str:
    return moment.astimezone(OSLO).strftime("%Y-%m-%d %H:%M")


def install(app: Flask) -> None:
    app.jinja_env.filters["fact"] = in_words
    app.jinja_env.filters["oslo_time"] = oslo_time
