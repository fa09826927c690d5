"""The one settings object: defaults < TOML file (IDP_CONFIG) < IDP_* environment, validated once.

``load_settings`` is given an explicit environment mapping throughout, so nothing here depends
on the shell the suite runs in. Secrets are made here with ``os.urandom``, not with the
product's own generator, so a broken generator cannot make its own output look valid.
"""

from __future__ import annotations

import base64
import os
import stat
import textwrap
from pathlib import Path

import pytest

from idp.errors import ConfigError
from idp.settings import Mode, Settings, load_settings

# OWASP Password Storage Cheat Sheet, argon2id minimum: m=19 MiB (19456 KiB), t=2, p=1.
OWASP_MEMORY_KIB = 19456
OWASP_TIME_COST = 2


def key32() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode()


SECRET_KEY = key32()
DATA_KEY = key32()


def prod_env(home: Path, **extra: str) -> dict[str, str]:
    """A complete production environment: only the secrets a production deployment must supply."""
    return {"IDP_HOME": str(home), "IDP_SECRET_KEY": SECRET_KEY, "IDP_DATA_KEY": DATA_KEY, **extra}


def dev_env(home: Path, **extra: str) -> dict[str, str]:
    return {"IDP_HOME": str(home), "IDP_MODE": "development", **extra}


def refused(env: dict[str, str]) -> str:
    with pytest.raises(ConfigError) as info:
        load_settings(env)
    return info.value.message


def files_under(path: Path) -> list[Path]:
    return sorted(path.rglob("*"))


def write_toml(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# --- defaults ----------------------------------------------------------------------------------


def test_defaults_put_everything_under_home_and_mean_production(tmp_path: Path) -> None:
    s = load_settings(prod_env(tmp_path))
    home = tmp_path.resolve()
    assert s.mode is Mode.PRODUCTION and not s.is_development
    assert s.home == home
    assert s.database_url == f"sqlite:///{home / 'var' / 'idp.sqlite3'}"
    assert s.keys_dir == home / "keys"
    assert s.redis_url is None
    assert (s.argon2_memory_kib, s.argon2_time_cost) == (OWASP_MEMORY_KIB, OWASP_TIME_COST)


def test_an_explicit_environment_mapping_ignores_the_process_environment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Tests and the app factory pass their own mapping; a stray variable in the shell must not leak in.
    monkeypatch.setenv("IDP_MODE", "development")
    monkeypatch.setenv("IDP_DATABSE_URL", "sqlite:///typo.sqlite3")
    s = load_settings(prod_env(tmp_path))
    assert s.mode is Mode.PRODUCTION


# --- TOML file and environment ---------------------------------------------------------------


def test_toml_file_is_read_and_the_environment_overrides_it(tmp_path: Path) -> None:
    config = write_toml(tmp_path / "idp.toml", textwrap.dedent(f"""\
        database_url = "postgresql://db.internal/idp"
        log_level = "DEBUG"
        issuer = "https://login.example.no"
        secret_key = "{SECRET_KEY}"
        data_key = "{DATA_KEY}"
    """))
    s = load_settings({"IDP_HOME": str(tmp_path), "IDP_CONFIG": str(config), "IDP_LOG_LEVEL": "WARNING"})
    assert s.database_url == "postgresql://db.internal/idp"
    assert s.issuer == "https://login.example.no"
    assert s.log_level == "WARNING"
    assert s.secret_key is not None and s.secret_key.get_secret_value() == SECRET_KEY


def test_unknown_key_in_the_toml_file_is_refused_by_name(tmp_path: Path) -> None:
    config = write_toml(tmp_path / "idp.toml", 'databse_url = "postgresql://db.internal/idp"\n')
    message = refused(prod_env(tmp_path, IDP_CONFIG=str(config)))
    assert "databse_url" in message.lower()


def test_unknown_idp_variable_is_refused_by_name(tmp_path: Path) -> None:
    # The typo that would otherwise leave production on the embedded SQLite default.
    message = refused(prod_env(tmp_path, IDP_DATABSE_URL="postgresql://db.internal/idp"))
    assert "IDP_DATABSE_URL" in message


def test_variables_of_the_test_suite_are_not_settings(tmp_path: Path) -> None:
    s = load_settings(prod_env(tmp_path, IDP_TEST_POSTGRES_URL="postgresql://x/y", IDP_TEST_REQUIRE_SERVICES="1"))
    assert s.database_url.startswith("sqlite:///")


def test_an_invalid_mode_is_refused_by_name(tmp_path: Path) -> None:
    assert "IDP_MODE" in refused(prod_env(tmp_path, IDP_MODE="staging"))


def test_malformed_toml_is_a_clear_config_error(tmp_path: Path) -> None:
    config = write_toml(tmp_path / "broken.toml", 'issuer = "https://login.example.no\n')
    message = refused(prod_env(tmp_path, IDP_CONFIG=str(config)))
    assert str(config) in message and "TOML" in message


def test_missing_config_file_is_a_clear_config_error(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "idp.toml"
    message = refused(prod_env(tmp_path, IDP_CONFIG=str(missing)))
    assert str(missing) in message and "does not exist" in message


# --- secrets -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("given", "missing"), [
    pytest.param({}, ["IDP_SECRET_KEY", "IDP_DATA_KEY"], id="neither"),
    pytest.param({"IDP_SECRET_KEY": SECRET_KEY}, ["IDP_DATA_KEY"], id="no-data-key"),
    pytest.param({"IDP_DATA_KEY": DATA_KEY}, ["IDP_SECRET_KEY"], id="no-secret-key"),
])
def test_production_without_secrets_refuses_naming_each_and_creates_nothing(
        tmp_path: Path, given: dict[str, str], missing: list[str]) -> None:
    home = tmp_path / "home"
    home.mkdir()
    message = refused({"IDP_HOME": str(home), **given})
    for name in missing:
        assert name in message
    for name in {"IDP_SECRET_KEY", "IDP_DATA_KEY"} - set(missing):
        assert name not in message
    assert files_under(tmp_path) == [home]


@pytest.mark.parametrize("how", ["empty variable", "blank variable", "empty file"])
def test_production_refuses_an_empty_secret_key(tmp_path: Path, how: str) -> None:
    # An empty signing secret is no secret: it must be refused like a missing one, not accepted.
    env = prod_env(tmp_path)
    if how == "empty file":
        del env["IDP_SECRET_KEY"]
        (tmp_path / "keys").mkdir()
        (tmp_path / "keys" / "secret_key").write_text("\n")
    else:
        env["IDP_SECRET_KEY"] = "" if how == "empty variable" else "   "
    assert "IDP_SECRET_KEY" in refused(env)


def test_development_generates_private_secrets_and_reuses_them(tmp_path: Path) -> None:
    first = load_settings(dev_env(tmp_path))
    keys = tmp_path.resolve() / "keys"
    assert first.keys_dir == keys
    for name, value in (("secret_key", first.secret_key), ("data_key", first.data_key)):
        path = keys / name
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert value is not None and path.read_text().strip() == value.get_secret_value()
    assert len(first.data_key_bytes()) == 32
    assert first.secret_key != first.data_key

    second = load_settings(dev_env(tmp_path))
    assert second.secret_key == first.secret_key
    assert second.data_key == first.data_key


def test_production_reads_secrets_from_files_in_the_keys_dir(tmp_path: Path) -> None:
    secrets_dir = tmp_path / "mounted-secrets"
    secrets_dir.mkdir()
    (secrets_dir / "secret_key").write_text(SECRET_KEY + "\n")
    (secrets_dir / "data_key").write_text(DATA_KEY + "\n")
    s = load_settings({"IDP_HOME": str(tmp_path / "home"), "IDP_KEYS_DIR": str(secrets_dir)})
    assert s.secret_key is not None and s.secret_key.get_secret_value() == SECRET_KEY
    assert s.data_key_bytes() == base64.urlsafe_b64decode(DATA_KEY + "=")


def test_a_secret_in_the_environment_wins_over_the_file(tmp_path: Path) -> None:
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "secret_key").write_text(key32() + "\n")
    s = load_settings(prod_env(tmp_path))
    assert s.secret_key is not None and s.secret_key.get_secret_value() == SECRET_KEY


@pytest.mark.parametrize("bad_key", [
    pytest.param(base64.urlsafe_b64encode(os.urandom(16)).decode(), id="16-bytes"),
    pytest.param(base64.urlsafe_b64encode(os.urandom(48)).decode(), id="48-bytes"),
    pytest.param("not base64 at all!", id="not-base64"),
])
def test_a_data_key_that_is_not_32_bytes_is_refused_without_echoing_it(tmp_path: Path, bad_key: str) -> None:
    message = refused(prod_env(tmp_path, IDP_DATA_KEY=bad_key))
    assert "IDP_DATA_KEY" in message and "32 bytes" in message
    assert bad_key not in message


def test_repr_and_str_never_show_the_secrets(tmp_path: Path) -> None:
    s = load_settings(prod_env(tmp_path))
    for shown in (repr(s), str(s), f"{s}", s.model_dump_json()):
        assert SECRET_KEY not in shown
        assert DATA_KEY not in shown


# --- production strictness -------------------------------------------------------------------


@pytest.mark.parametrize("issuer", ["http://login.example.no", "http://127.0.0.1.example.no"])
def test_production_refuses_a_plain_http_issuer(tmp_path: Path, issuer: str) -> None:
    message = refused(prod_env(tmp_path, IDP_ISSUER=issuer))
    assert "IDP_ISSUER" in message and "https" in message


@pytest.mark.parametrize("issuer", [
    "https://login.example.no", "http://127.0.0.1:5000", "http://localhost:8080", "http://[::1]:5000"])
def test_production_allows_https_and_loopback_http(tmp_path: Path, issuer: str) -> None:
    assert load_settings(prod_env(tmp_path, IDP_ISSUER=issuer)).issuer == issuer


@pytest.mark.parametrize(("memory_kib", "time_cost"), [
    pytest.param(OWASP_MEMORY_KIB - 1, OWASP_TIME_COST, id="memory-below"),
    pytest.param(OWASP_MEMORY_KIB, OWASP_TIME_COST - 1, id="time-below"),
    pytest.param(1024, 1, id="test-suite-values"),
])
def test_weak_argon2_is_refused_in_production_and_allowed_in_development(
        tmp_path: Path, memory_kib: int, time_cost: int) -> None:
    weak = {"IDP_ARGON2_MEMORY_KIB": str(memory_kib), "IDP_ARGON2_TIME_COST": str(time_cost)}
    assert "argon2" in refused(prod_env(tmp_path, **weak))
    dev = load_settings(dev_env(tmp_path, **weak))
    assert (dev.argon2_memory_kib, dev.argon2_time_cost) == (memory_kib, time_cost)


def test_argon2_exactly_at_the_owasp_minimum_is_fine_in_production(tmp_path: Path) -> None:
    s = load_settings(prod_env(tmp_path, IDP_ARGON2_MEMORY_KIB=str(OWASP_MEMORY_KIB),
                               IDP_ARGON2_TIME_COST=str(OWASP_TIME_COST)))
    assert s.mode is Mode.PRODUCTION


# --- paths -------------------------------------------------------------------------------------


@pytest.fixture
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory that is not home, so a path resolved against the cwd shows up."""
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    return cwd


def test_relative_keys_dir_resolves_against_home_not_the_cwd(tmp_path: Path, elsewhere: Path) -> None:
    home = tmp_path / "home"
    s = load_settings(dev_env(home, IDP_KEYS_DIR="secrets"))
    assert s.keys_dir == home.resolve() / "secrets"
    assert (home / "secrets" / "data_key").is_file()
    assert files_under(elsewhere) == []


def test_relative_sqlite_path_resolves_against_home_not_the_cwd(tmp_path: Path, elsewhere: Path) -> None:
    # "Relative paths resolve against the home directory" must hold for the database too, or
    # `idp` run from another directory silently opens (and creates) a different, empty register.
    home = tmp_path / "home"
    s = load_settings(prod_env(home, IDP_DATABASE_URL="sqlite:///var/register.sqlite3"))
    assert s.database_url == f"sqlite:///{home.resolve() / 'var' / 'register.sqlite3'}"


def test_keys_dir_with_a_tilde_means_the_users_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # IDP_HOME expands "~"; a keys_dir written the same way in the TOML file must not become home/"~".
    user_home = tmp_path / "user"
    monkeypatch.setenv("HOME", str(user_home))
    s = load_settings(prod_env(tmp_path / "home", IDP_KEYS_DIR="~/idp-keys"))
    assert s.keys_dir == user_home / "idp-keys"


def test_settings_are_frozen(tmp_path: Path) -> None:
    s: Settings = load_settings(prod_env(tmp_path))
    with pytest.raises(ValueError):
        s.mode = Mode.DEVELOPMENT  # type: ignore[misc]


def test_the_per_ip_login_limit_is_configurable_and_checked(tmp_path: Path) -> None:
    env = {"IDP_HOME": str(tmp_path), "IDP_MODE": "development"}
    assert load_settings({**env, "IDP_LOGIN_LIMIT_PER_IP": "100 per minute"}).login_limit_per_ip == "100 per minute"
    with pytest.raises(ConfigError, match="IDP_LOGIN_LIMIT_PER_IP"):
        load_settings({**env, "IDP_LOGIN_LIMIT_PER_IP": "lots"})


def test_the_per_system_api_limit_defaults_to_a_big_desk_and_is_checked(tmp_path: Path) -> None:
    env = {"IDP_HOME": str(tmp_path), "IDP_MODE": "development"}
    assert load_settings(env).api_limit_per_system == "3000 per minute"
    assert load_settings({**env, "IDP_API_LIMIT_PER_SYSTEM": "50 per second"}).api_limit_per_system == "50 per second"
    with pytest.raises(ConfigError, match="IDP_API_LIMIT_PER_SYSTEM"):
        load_settings({**env, "IDP_API_LIMIT_PER_SYSTEM": "plenty"})
