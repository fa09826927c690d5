"""A claim plugin from another package, installed with pip, is used with no change to the IdP.

The package in tests/fixtures/claim_plugin is built by its own setuptools backend and installed
into a temporary directory, which is put on sys.path for one test at a time.
"""

from __future__ import annotations

import importlib
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import EntryPoint, entry_points, version
from pathlib import Path

import pytest

from idp import relying_parties
from idp.claims import GROUP, UndeclaredFact, Wording, installed_claims, load_claims, release
from idp.errors import ConfigError
from idp.registry import patrons
from idp.registry.context import Registry
from idp.registry.models import RelyingParty
from tests.unit.factories import library, patron

pytestmark = pytest.mark.slow  # runs pip

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "claim_plugin"
MODULE = "idp_reader_club"


def _builds_offline() -> bool:
    """Whether this venv can build a setuptools package by itself (setuptools with bdist_wheel)."""
    if importlib.util.find_spec("setuptools") is None:
        return False
    major, minor = (int(part) for part in version("setuptools").split(".")[:2])
    return (major, minor) >= (70, 1) or importlib.util.find_spec("wheel") is not None


def pip_install(source: Path, target: Path) -> None:
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target)]
    # Offline when the venv has what the backend needs; otherwise pip puts setuptools in an
    # isolated build environment from its configured index.
    if _builds_offline():
        command.append("--no-build-isolation")
    done = subprocess.run([*command, str(source)], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, f"pip could not install {source.name}:\n{done.stdout}\n{done.stderr}"


def copy_of_fixture(into: Path) -> Path:
    # Built from a copy: setuptools writes build/ and *.egg-info next to the sources it builds.
    return Path(shutil.copytree(FIXTURE, into, ignore=shutil.ignore_patterns("build", "*.egg-info")))


@pytest.fixture(scope="module")
def sites(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two installs: the plugin package as shipped, and a rival package claiming age_over_NN."""
    root = tmp_path_factory.mktemp("claim_plugins")
    pip_install(copy_of_fixture(root / "src-reader-club"), root / "reader-club")
    rival = copy_of_fixture(root / "src-rival")
    project = rival / "pyproject.toml"
    project.write_text(project.read_text()
                       .replace('name = "idp-reader-club"', 'name = "idp-reader-club-rival"')
                       .replace('reader_club = "idp_reader_club.claims:READER_CLUB"',
                                'age_check = "idp_reader_club.misbehaving:RIVAL_AGE_OVER"'))
    pip_install(rival, root / "rival")
    return {"reader-club": root / "reader-club", "rival": root / "rival"}


def _forget_plugin_modules() -> None:
    for name in [m for m in sys.modules if m == MODULE or m.startswith(f"{MODULE}.")]:
        del sys.modules[name]
    importlib.invalidate_caches()  # also drops importlib.metadata's cached directory listings
    installed_claims.cache_clear()


@contextmanager
def installed(*dirs: Path) -> Iterator[None]:
    """As if these directories were site-packages, for the length of the block."""
    sys.path[:0] = [str(d) for d in dirs]
    _forget_plugin_modules()
    try:
        yield
    finally:
        for d in dirs:
            sys.path.remove(str(d))
        _forget_plugin_modules()


def film_partner(reg: Registry, policy: list[str]) -> RelyingParty:
    rp, _ = relying_parties.add_oidc(reg, "Lesesirkel", ["https://club.example/cb"], dpa_signed=reg.today())
    # idp.relying_parties validates policies against the built-in names only, so set it directly.
    rp.claims = policy
    return rp


def test_an_installed_package_adds_a_claim_the_idp_releases(reg: Registry, sites: dict[str, Path]) -> None:
    library(reg)
    member, _ = patron(reg)
    barred, _ = patron(reg, nth=1)
    patrons.update_patron(reg, barred, status="blocked")
    rp = film_partner(reg, ["valid_patron", "reader_club"])
    with installed(sites["reader-club"]):
        assert "reader_club" in {e.name for e in entry_points(group=GROUP)}
        catalogue = installed_claims()  # the start-up load, exactly as the IdP does it
        assert catalogue.source_of("reader_club") == (
            "'reader_club = idp_reader_club.claims:READER_CLUB' (from idp-reader-club)")
        assert catalogue.describe("reader_club") == Wording("that you may join the reader club")
        asked = ["reader_club", "valid_patron", "birthdate"]
        assert release(reg, member.id, rp, asked, protocol="oidc").values == {
            "valid_patron": True, "reader_club": True}
        assert release(reg, barred.id, rp, asked, protocol="oidc").values == {
            "valid_patron": False, "reader_club": False}
    assert not installed_claims().provides("reader_club")  # uninstalled again: gone


def test_an_installed_plugin_reading_an_undeclared_fact_gets_a_clear_error(
        reg: Registry, sites: dict[str, Path]) -> None:
    library(reg)
    p, _ = patron(reg)
    rp = film_partner(reg, ["nosy"])
    with installed(sites["reader-club"]):
        nosy = EntryPoint(name="nosy", value=f"{MODULE}.misbehaving:NOSY", group=GROUP)
        catalogue = load_claims([*entry_points(group=GROUP), nosy])
        with pytest.raises(UndeclaredFact, match=r"'nosy' read the fact 'birth_date' without declaring it "
                                                 r"\(it declared: status\); add 'birth_date' to its needs"):
            release(reg, p.id, rp, ["nosy"], protocol="oidc", claims=catalogue)


def test_a_second_package_answering_for_age_over_stops_the_start(sites: dict[str, Path]) -> None:
    with installed(sites["reader-club"], sites["rival"]), pytest.raises(ConfigError) as refused:
        installed_claims()
    message = str(refused.value)
    assert message.startswith("Two claim plugins answer for claim names age_over_NN:")
    assert "'age_over = idp.claims.builtin:AGE_OVER' (from patron-idp)" in message
    assert "'age_check = idp_reader_club.misbehaving:RIVAL_AGE_OVER' (from idp-reader-club-rival)" in message
    assert installed_claims().provides("age_over_18")  # and the IdP starts again once it is gone
