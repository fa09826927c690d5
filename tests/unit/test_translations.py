"""Every text a patron can see has its Norwegian bokmål translation."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from threading import Barrier

from babel.messages.frontend import CommandLineInterface
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

from idp.i18n import compile_catalogues

ROOT = Path(__file__).resolve().parents[2]
WORKERS = 8


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


def test_workers_starting_together_all_get_the_compiled_catalogue(tmp_path: Path) -> None:
    # `idp serve --workers N` compiles the catalogues in every worker at start-up, at the same moment
    # (two workers once both wrote messages.mo.tmp, and the second move found it gone).
    for run in range(20):
        target = tmp_path / f"run-{run}"
        start = Barrier(WORKERS)

        def worker(target: Path = target, start: Barrier = start) -> Path:
            start.wait()
            return compile_catalogues(target)

        with ThreadPoolExecutor(WORKERS) as pool:
            results = [future.result() for future in [pool.submit(worker) for _ in range(WORKERS)]]
        assert results == [target] * WORKERS
        with (target / "nb/LC_MESSAGES/messages.mo").open("rb") as compiled:
            assert read_mo(compiled).get("Logged out").string == "Logget ut"
        assert not list(target.rglob("*.tmp"))
