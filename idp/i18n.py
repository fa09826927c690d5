"""Pages in Norwegian bokmål and English (Flask-Babel).

The language is the patron's explicit choice (the switcher, kept in the session) or else the
best match of the browser's Accept-Language. Catalogues are kept as .po sources in
idp/translations and compiled to .mo on start-up, so no generated binary lives in git.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from flask import Flask, request, session
from flask_babel import Babel, get_locale

LANGUAGES = ("nb", "en")
DEFAULT = "nb"
SOURCE = Path(__file__).resolve().parent / "translations"


def compile_catalogues(target: Path) -> Path:
    """Compile every .po under SOURCE into ``target`` when the source is newer; return ``target``."""
    for po in SOURCE.glob("*/LC_MESSAGES/messages.po"):
        mo = target / po.relative_to(SOURCE).with_suffix(".mo")
        if mo.exists() and mo.stat().st_mtime >= po.stat().st_mtime:
            continue
        mo.parent.mkdir(parents=True, exist_ok=True)
        with po.open("rb") as source:
            catalogue = read_po(source, locale=po.parts[-3])
        # A temporary file of this process's own: workers starting together each write theirs and
        # move it into place (atomic), so none reads half a file or loses its file to another's move.
        with tempfile.NamedTemporaryFile("wb", dir=mo.parent, prefix="messages.", suffix=".tmp", delete=False) as out:
            write_mo(out, catalogue)
        Path(out.name).replace(mo)
    return target


def select_locale() -> str:
    chosen = session.get("lang")
    if isinstance(chosen, str) and chosen in LANGUAGES:
        return chosen
    # Nynorsk and generic Norwegian readers get bokmål, the closest catalogue we have.
    best = request.accept_languages.best_match(("nb", "no", "nn", "en"), default=DEFAULT)
    return "en" if best == "en" else "nb"


def install(app: Flask, compiled_dir: Path) -> None:
    Babel(app, locale_selector=select_locale, default_translation_directories=str(compile_catalogues(compiled_dir)))
    app.jinja_env.globals["current_locale"] = lambda: str(get_locale() or DEFAULT)
