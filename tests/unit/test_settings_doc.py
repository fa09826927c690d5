"""docs/configuration.md's settings table is generated from idp/settings.py, never kept by hand.

When this fails, run `make docs` (python -m idp.devtools.settings_doc) and commit the result.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from idp.devtools import settings_doc
from idp.settings import Settings

CONFIGURATION_MD = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_the_settings_table_is_what_make_docs_writes() -> None:
    text = CONFIGURATION_MD.read_text(encoding="utf-8")
    assert settings_doc.render(text) == text, "docs/configuration.md is out of date: run `make docs`"


def test_every_setting_has_a_row_with_its_description() -> None:
    table = settings_doc.settings_table()
    for name, field in Settings.model_fields.items():
        assert f"| `IDP_{name.upper()}` |" in table
        assert " ".join(str(field.description).split()) in table


def test_the_table_states_defaults_as_an_operator_reads_them() -> None:
    table = settings_doc.settings_table()
    assert "| `IDP_MODE` | `production` |" in table
    assert "| `IDP_SMTP_PORT` | 587 |" in table
    assert "| `IDP_REDIS_URL` | unset: in-memory state, single process |" in table
    assert "| `IDP_LOGIN_LIMIT_PER_IP` | `30 per minute;300 per hour` |" in table


def test_check_refuses_a_hand_edited_table_and_writing_mends_it(tmp_path: Path) -> None:
    stale = tmp_path / "configuration.md"
    stale.write_text(f"# Configuration\n\n{settings_doc.BEGIN}\n| a row by hand |\n{settings_doc.END}\n\nafter\n")
    assert settings_doc.main(["--check", str(stale)]) == 1
    assert "| a row by hand |" in stale.read_text()
    assert settings_doc.main([str(stale)]) == 0
    assert settings_doc.main(["--check", str(stale)]) == 0
    mended = stale.read_text()
    assert "| a row by hand |" not in mended and "| `IDP_ISSUER` |" in mended and mended.endswith("\n\nafter\n")


def test_a_document_without_the_markers_is_refused() -> None:
    with pytest.raises(ValueError, match="markers"):
        settings_doc.render("# Configuration\n\nno table here\n")
