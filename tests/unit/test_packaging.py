"""What the project declares matches what its code imports, and the wheel carries what the IdP
reads at run time besides its modules."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_every_package_the_code_imports_is_declared() -> None:
    """deptry checks every module outside tests/ against pyproject.toml: a package imported but not
    declared (DEP001) or arriving only as another package's dependency (DEP003) fails, as would one
    from the test extra imported by the code (DEP004)."""
    result = subprocess.run([sys.executable, "-m", "deptry", "--no-ansi", "."], cwd=ROOT, capture_output=True,
                            text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow  # builds the wheel with pip
def test_the_wheel_ships_pages_migrations_translations_static_files_and_the_api_description(tmp_path: Path) -> None:
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".git", ".venv", "var", "keys", "build", "dist",
                                                                "*.egg-info", "__pycache__", ".*_cache"))
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation",
                            "--quiet", "--wheel-dir", str(tmp_path / "wheel")],
                           capture_output=True, text=True, timeout=300, check=False)
    assert built.returncode == 0, built.stderr
    [wheel] = (tmp_path / "wheel").glob("patron_idp-*.whl")
    shipped = set(zipfile.ZipFile(wheel).namelist())

    pages = {f"idp/templates/{page.name}" for page in (ROOT / "templates").glob("*.html")}
    assert pages and pages <= shipped, sorted(pages - shipped)
    migrations = {f"idp/migrations/versions/{m.name}" for m in (ROOT / "idp" / "migrations" / "versions").glob("*.py")}
    assert migrations and migrations <= shipped, sorted(migrations - shipped)
    for needed in ("idp/templates/__init__.py", "idp/migrations/env.py", "idp/migrations/script.py.mako",
                   "idp/translations/nb/LC_MESSAGES/messages.po", "idp/static/idp.css", "idp/api/spec.py",
                   "idp/cli/__init__.py", "idp/registry/__init__.py"):
        assert needed in shipped, needed
