"""The settings reference in docs/configuration.md, generated from ``idp/settings.py`` (``make docs``).

The settings model is the one source of truth: each field's ``description`` (and, where the
default in the code would not tell an operator what happens, its ``shown_default``) becomes one
row of the table between the markers below. ``--check`` exits 1 when the file differs from what
would be written, so a hand edit or a new setting without a regenerated table is caught.

    python -m idp.devtools.settings_doc [--check] [PATH]
"""

from __future__ import annotations

import argparse
import sys
from enum import Enum
from pathlib import Path
from typing import Any

from pydantic.fields import FieldInfo

from idp.settings import ENV_PREFIX, Settings

BEGIN = "<!-- settings table: generated from idp/settings.py by `make docs`; do not edit by hand -->"
END = "<!-- end of the generated settings table -->"
DEFAULT_PATH = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def settings_table() -> str:
    """The Markdown table of every setting, in the order settings.py declares them."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        if not field.description:
            raise ValueError(f"idp/settings.py: {name} has no description for docs/configuration.md")
        rows.append(f"| `{ENV_PREFIX}{name.upper()}` | {_cell(_shown_default(field))} | {_cell(field.description)} |")
    return "\n".join(rows)


def _shown_default(field: FieldInfo) -> str:
    extra = field.json_schema_extra
    if isinstance(extra, dict) and isinstance(extra.get("shown_default"), str):
        return str(extra["shown_default"])
    value: Any = field.default
    if value is None:
        return "unset"
    if isinstance(value, bool | int):
        return str(value)
    if isinstance(value, Enum):
        value = value.value
    return f"`{value}`"


def _cell(text: str) -> str:
    """A table cell: one line, and a literal | cannot end the cell early."""
    return " ".join(text.split()).replace("|", "\\|")


def render(document: str) -> str:
    """``document`` with the text between the markers replaced by the current table."""
    try:
        head, rest = document.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
    except ValueError:
        raise ValueError(f"the settings table's markers are missing; expected:\n{BEGIN}\n...\n{END}") from None
    return f"{head}{BEGIN}\n{settings_table()}\n{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m idp.devtools.settings_doc", description=__doc__.split("\n")[0])
    parser.add_argument("path", nargs="?", type=Path, default=DEFAULT_PATH)
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is not up to date; write nothing")
    args = parser.parse_args(argv)
    current = args.path.read_text(encoding="utf-8")
    wanted = render(current)
    if current == wanted:
        return 0
    if args.check:
        print(f"{args.path} is out of date with idp/settings.py: run `make docs`", file=sys.stderr)
        return 1
    args.path.write_text(wanted, encoding="utf-8")
    print(f"wrote {args.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
