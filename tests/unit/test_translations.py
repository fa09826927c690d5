"""Every text a patron can see has its Norwegian bokmål translation."""

from __future__ import annotations

from pathlib import Path

from babel.messages.frontend import CommandLineInterface
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parents[2]


def test_every_extracted_message_is_translated_to_bokmal(tmp_path: Path) -> None:
    pot = tmp_path / "messages.pot"
    CommandLineInterface().run(["pybabel", "-q", "extract", "-F", str(ROOT / "babel.cfg"), "-k", "_l",
                                "-k", "lazy_gettext", "--no-location", "-o", str(pot), str(ROOT)])
    with pot.open("rb") as source:
        wanted = {message.id for message in read_po(source) if message.id}
    with (ROOT / "idp/translations/nb/LC_MESSAGES/messages.po").open("rb") as source:
        catalogue = read_po(source, locale="nb")
    translated = {message.id for message in catalogue if message.id and message.string and not message.fuzzy}
    missing = sorted(str(m) for m in wanted - translated)
    assert not missing, f"untranslated in nb: {missing}"
    assert len(wanted) > 50  # the extraction found the templates and the code, not nothing
