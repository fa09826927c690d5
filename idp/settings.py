"""The one settings object: defaults < TOML file (``IDP_CONFIG``) < ``IDP_*`` environment.

Validated once at start-up. Unknown keys are refused rather than ignored, so a typo such as
``IDP_DATABSE_URL`` cannot silently leave production on the embedded SQLite default.

Relative paths resolve against the *home* directory, never the working directory, so every
command behaves the same wherever it is started: ``IDP_HOME`` if set, else the source checkout
that holds this package (``make demo``), else ``~/.local/share/patron-idp``.
"""

from __future__ import annotations

import base64
import os
import secrets
import tomllib
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from limits import parse_many
from pydantic import (BaseModel, ConfigDict, Field, SecretStr, ValidationError, ValidationInfo, field_validator,
                      model_validator)
from sqlalchemy.engine import make_url

from idp.errors import ConfigError
from idp.net import is_loopback

ENV_PREFIX = "IDP_"
# IDP_* variables that steer loading or the test suite rather than name a setting.
_NOT_SETTINGS = {"IDP_CONFIG", "IDP_HOME"}
_NOT_SETTINGS_PREFIXES = ("IDP_TEST_",)

# OWASP Password Storage Cheat Sheet, argon2id minimum: m=19 MiB, t=2, p=1.
OWASP_ARGON2_MIN_MEMORY_KIB = 19 * 1024
OWASP_ARGON2_MIN_TIME_COST = 2

SECRET_FILES = {"secret_key": "secret_key", "data_key": "data_key"}


class Mode(StrEnum):
    PRODUCTION = "production"
    DEVELOPMENT = "development"


def default_home() -> Path:
    checkout = Path(__file__).resolve().parent.parent
    if (checkout / "pyproject.toml").is_file() and (checkout / "idp").is_dir():
        return checkout
    return Path.home() / ".local" / "share" / "patron-idp"


class Settings(BaseModel):
    """Every setting, with the description docs/configuration.md shows (``make docs`` writes its table).

    ``shown_default`` (in ``json_schema_extra``) is the default as the reference states it, where
    the value in the code (computed, or empty) would not tell an operator what happens.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Mode = Field(default=Mode.PRODUCTION, description=(
        "`production` or `development`. Only development generates missing secrets and allows `idp demo`, "
        "weak argon2 parameters and a plain-http issuer on a non-loopback host."))
    home: Path = Field(default_factory=default_home, description="where relative paths point",
                       json_schema_extra={"shown_default": "the source checkout, else `~/.local/share/patron-idp`"})
    database_url: str = Field(default="", description=(
        "SQLAlchemy URL; production: `postgresql+psycopg://user@host/db` (`postgresql://` also works)"),
        json_schema_extra={"shown_default": "`sqlite:///$IDP_HOME/var/idp.sqlite3`"})
    redis_url: str | None = Field(default=None, description=(
        "short-lived state (sessions, codes, counters); one Redis server (with replicas if you like), not a "
        "Redis Cluster: the token endpoint's Lua scripts read keys they compute"),
        json_schema_extra={"shown_default": "unset: in-memory state, single process"})
    redis_prefix: str = Field(default="idp:", min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$", description=(
        "begins every key this deployment writes to Redis (state and rate-limit counters), so that two "
        "deployments (say test and staging) can share one Redis server: give each its own"))
    issuer: str = Field(default="http://127.0.0.1:5000", description=(
        "public base URL; must be https in production (loopback excepted)"))
    secret_key: SecretStr | None = Field(default=None, description=(
        "signs CSRF tokens (sessions themselves are server-side)"),
        json_schema_extra={"shown_default": "none (generated in development)"})
    data_key: SecretStr | None = Field(default=None, description=(
        "32 bytes, base64url: encrypts national ids, keys their lookup hash and derives pairwise subjects. "
        "**Losing it loses every stored national id and changes every subject a partner knows.**"),
        json_schema_extra={"shown_default": "none (generated in development)"})
    keys_dir: Path = Field(default=Path("keys"), description=(
        "the signing keys (`signing-keys.json`, made by `idp keys rotate`); `secret_key` and `data_key` may be "
        "files here too (e.g. mounted from a secret store)"),
        json_schema_extra={"shown_default": "`keys/`"})
    log_level: str = Field(default="INFO", description=(
        "logs never contain national ids, addresses, passwords or PINs"))
    proxy_hops: int = Field(default=0, ge=0, le=5, description=(
        "reverse proxies in front that set `X-Forwarded-For/-Proto/-Host`; 0 trusts none (rate limits then "
        "count the proxy's address). The only setting that decides: gunicorn itself trusts no forwarded "
        "header, whoever sends it"))
    # Rate limits are in flask-limiter's syntax ("10 per hour;20 per day"), checked at start-up.
    login_limit_per_ip: str = Field(default="30 per minute;300 per hour", description=(
        "login attempts per client address; raise it where many patrons share one address (public PCs, NAT). "
        "The per-card limit (10 wrong guesses a day) is fixed"))
    verify_limit_per_client: str = Field(default="6000 per minute", description=(
        "checks per partner and sending address on `POST /api/v1/verify` (a door or platform sends every "
        "patron's check from one address, far more than a per-IP login limit allows)"))
    api_limit_per_system: str = Field(default="3000 per minute", description=(
        "calls per library system to the register API (`/api/v1/`, all operations together, verify aside), "
        "sized for a big library's busy desks and its nightly jobs; `idp library-system update CLIENT_ID "
        "--rate-limit` sets another for one system"))
    # Retention, applied by the daily `idp purge-inactive` (idp.registry.retention).
    release_log_retention_days: int = Field(default=396, ge=31, le=3660, description=(
        "days the release log (which claims each service received about a patron, shown on My account) is "
        "kept: 13 months lets a patron look back over a full year of releases, with a month's margin for "
        "questions about the oldest; erased with the patron in any case"))
    audit_retention_days: int = Field(default=1826, ge=365, le=7305, description=(
        "days audit events (who read or changed which record) are kept: 5 years, in line with the "
        "bookkeeping and limitation periods commonly applied to audit trails; shorten it if your legal "
        "advice says less is enough"))
    argon2_time_cost: int = Field(default=OWASP_ARGON2_MIN_TIME_COST, ge=1, description=(
        "argon2id iterations; production refuses less than the OWASP minimum (m=19 MiB, t=2)"))
    argon2_memory_kib: int = Field(default=OWASP_ARGON2_MIN_MEMORY_KIB, ge=8, description=(
        "argon2id memory in KiB; production refuses less than the OWASP minimum (m=19 MiB, t=2)"))
    argon2_parallelism: int = Field(default=1, ge=1, le=16, description="argon2id lanes")
    # argon2 runs at once per process (each takes argon2_memory_kib and a core): with N workers
    # at most N x this many, however many requests arrive together.
    argon2_concurrency: int = Field(default=1, ge=1, le=64, description=(
        "argon2 runs at once per worker process, whatever its threads: memory and CPU for hashing stay "
        "bounded under a burst of logins"))
    xmlsec_binary: Path = Field(default=Path("/usr/bin/xmlsec1"), description=(
        "the xmlsec1 program pysaml2 signs and verifies SAML messages with (Debian package `xmlsec1`); "
        "never searched for"))
    # -- ID-porten (the Norwegian national eID) as an upstream OpenID provider (idp/auth/idporten.py) --
    idporten_issuer: str | None = Field(default=None, description=(
        "ID-porten's issuer, e.g. `https://idporten.no` (test: `https://test.idporten.no`); discovery and "
        "keys are read from it. https in production; plain http only on loopback in development (a test "
        "provider). Set all three `IDP_IDPORTEN_*` or none"),
        json_schema_extra={"shown_default": "unset: no ID-porten"})
    idporten_client_id: str | None = Field(default=None, description=(
        "our client id at ID-porten (Digdir's self-service). Register there: redirect URI "
        "`$IDP_ISSUER/idporten/callback`, post-logout redirect URI `$IDP_ISSUER/idporten/logged-out`, "
        "front-channel logout URI `$IDP_ISSUER/idporten/logout/frontchannel`, scope `openid`, "
        "`client_secret_basic` (or `_post`)"))
    idporten_client_secret: SecretStr | None = Field(default=None, description=(
        "that client's secret (keep it in the TOML file or a secret store, not a shell history)"))
    # -- second factor and one-time codes (idp/auth/totp.py, idp/auth/otp.py, idp/delivery/) --
    smtp_host: str | None = Field(default=None, description=(
        "mail server for one-time codes, reset links and notices. Unset: in development mails go to the "
        "**dev outbox** `var/outbox/*.eml` (each file marked \"NOT sent\"); in production sending fails with "
        "an error naming this setting"))
    smtp_port: int = Field(default=587, ge=1, le=65535, description=(
        "its port (465 for implicit TLS, 25 for a local relay)"))
    smtp_tls: Literal["none", "starttls", "tls"] = Field(default="starttls", description=(
        "`starttls`, `tls` (implicit) or `none`; certificates are verified against the system's trust store. "
        "`none` is refused in production unless the host is loopback (a local relay)"))
    smtp_username: str | None = Field(default=None, description=(
        "SMTP login, sent only when a username is set"))
    smtp_password: SecretStr | None = Field(default=None, description=(
        "the SMTP login's password, sent only when a username is set (a secret: TOML file or secret store)"))
    mail_from: str | None = Field(default=None, description="the From address",
                                  json_schema_extra={"shown_default": "`noreply@<issuer host>`"})
    sms_url: str | None = Field(default=None, description=(
        "the SMS gateway: we POST `{\"to\": \"+4799999999\", \"message\": \"...\"}` as JSON, 10 s timeout, any "
        "2xx is success, redirects are not followed. https in production (loopback excepted). Unset: the dev "
        "outbox `var/outbox/*.sms.txt` in development, an error naming it in production (and SMS is not "
        "offered as a channel)"))
    sms_token: SecretStr | None = Field(default=None, description=(
        "sent as `Authorization: Bearer ...` to the gateway"))
    otp_code_ttl: int = Field(default=600, ge=60, le=3600, description=(
        "seconds a one-time code by e-mail or SMS stays valid (60-3600)"))
    otp_sends_per_hour: int = Field(default=5, ge=1, le=100, description=(
        "codes sent per patron in an hour, counted from the first send"))
    otp_limit_per_account: str = Field(default="10 per hour;20 per day", description=(
        "wrong one-time codes (and wrong current passwords on My account) per account"))
    totp_limit_per_account: str = Field(default="10 per hour;20 per day", description=(
        "wrong authenticator or recovery codes per account (step-up page, removing two-step login)"))
    reset_link_ttl: int = Field(default=3600, ge=300, le=7 * 24 * 3600, description=(
        "seconds a reset link from `idp patron reset-password` stays valid"))
    # -- OIDC single logout (idp/oidc/backchannel.py) --
    backchannel_logout_timeout: float = Field(default=5, gt=0, le=60, description=(
        "seconds a relying party's back-channel logout endpoint has to answer each POST of a logout token "
        "(connecting, then answering); a slower one counts as a failed attempt and is tried again later"))

    @field_validator("smtp_host", "smtp_username", "smtp_password", "mail_from", "sms_url", "sms_token",
                     mode="before")
    @classmethod
    def _blank_delivery_is_unset(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("otp_limit_per_account", "totp_limit_per_account")
    @classmethod
    def _account_limit_parses(cls, value: str, info: ValidationInfo) -> str:
        try:
            parse_many(value)
        except ValueError:
            raise ValueError(f"IDP_{str(info.field_name).upper()} must look like '10 per hour;20 per day'") from None
        return value

    @field_validator("mail_from")
    @classmethod
    def _mail_from_is_an_address(cls, value: str | None) -> str | None:
        if value is not None and ("@" not in value or any(c in value for c in "\r\n")):
            raise ValueError("IDP_MAIL_FROM must be an e-mail address, e.g. noreply@bibliotekkortet.no")
        return value

    @field_validator("sms_url")
    @classmethod
    def _sms_url_is_http(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ValueError("IDP_SMS_URL must be the gateway's absolute http(s) URL")
        return value

    @model_validator(mode="after")
    def _delivery_is_safe_in_production(self) -> Settings:
        if self.mode is not Mode.PRODUCTION:
            return self
        if self.smtp_host and self.smtp_tls == "none" and not is_loopback(self.smtp_host):
            raise ValueError("IDP_SMTP_TLS=none sends codes and passwords in clear text: in production only "
                             "towards a relay on loopback; use starttls or tls")
        sms = urlsplit(self.sms_url) if self.sms_url else None
        if sms is not None and sms.scheme != "https" and not is_loopback(sms.hostname):
            raise ValueError("IDP_SMS_URL must use https in production (plain http only on loopback)")
        return self

    @field_validator("redis_url", "idporten_issuer", "idporten_client_id", "idporten_client_secret", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("idporten_issuer")
    @classmethod
    def _idporten_issuer_is_base_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in {"http", "https"} or not parts.hostname or parts.query or parts.fragment:
            raise ValueError("IDP_IDPORTEN_ISSUER must be ID-porten's issuer URL, e.g. https://idporten.no")
        if parts.scheme != "https" and not is_loopback(parts.hostname):
            raise ValueError("IDP_IDPORTEN_ISSUER must use https (plain http only on loopback, for a test provider)")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _idporten_all_or_none(self) -> Settings:
        given = [self.idporten_issuer is not None, self.idporten_client_id is not None,
                 self.idporten_client_secret is not None]
        if any(given) and not all(given):
            raise ValueError("ID-porten needs IDP_IDPORTEN_ISSUER, IDP_IDPORTEN_CLIENT_ID and "
                             "IDP_IDPORTEN_CLIENT_SECRET together (or none of them)")
        return self

    @field_validator("issuer")
    @classmethod
    def _issuer_is_base_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ValueError("IDP_ISSUER must be an absolute http(s) URL, e.g. https://login.example.no")
        if parts.query or parts.fragment:
            raise ValueError("IDP_ISSUER must not have a query or fragment")
        return value.rstrip("/")

    @field_validator("secret_key")
    @classmethod
    def _secret_key_is_long(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value().strip()) < 32:
            raise ValueError("IDP_SECRET_KEY must have at least 32 characters (generate one with: idp keys new-secret)")
        return value

    @field_validator("login_limit_per_ip", "verify_limit_per_client", "api_limit_per_system")
    @classmethod
    def _limit_parses(cls, value: str, info: ValidationInfo) -> str:
        try:
            parse_many(value)
        except ValueError:
            raise ValueError(f"IDP_{str(info.field_name).upper()} must look like "
                             "'30 per minute;300 per hour'") from None
        return value

    @field_validator("data_key")
    @classmethod
    def _data_key_is_32_bytes(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(_decode_key(value.get_secret_value())) != 32:
            raise ValueError("IDP_DATA_KEY must be 32 bytes, base64url-encoded "
                             "(generate one with: idp keys new-secret)")
        return value

    @model_validator(mode="after")
    def _resolve_paths(self) -> Settings:
        home = self.home.expanduser().resolve()
        object.__setattr__(self, "home", home)
        object.__setattr__(self, "keys_dir", home / self.keys_dir.expanduser())  # an absolute path stays as is
        if not self.database_url:
            object.__setattr__(self, "database_url", f"sqlite:///{home / 'var' / 'idp.sqlite3'}")
        url = make_url(self.database_url)
        if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
            database = home / Path(url.database).expanduser()
            object.__setattr__(self, "database_url", url.set(database=str(database)).render_as_string(False))
        return self

    @model_validator(mode="after")
    def _production_is_strict(self) -> Settings:
        if self.mode is not Mode.PRODUCTION:
            return self
        parts = urlsplit(self.issuer)
        if parts.scheme != "https" and not is_loopback(parts.hostname):
            raise ValueError("IDP_ISSUER must use https in production")
        if (self.argon2_memory_kib < OWASP_ARGON2_MIN_MEMORY_KIB
                or self.argon2_time_cost < OWASP_ARGON2_MIN_TIME_COST):
            raise ValueError("argon2 parameters below the OWASP minimum (m=19 MiB, t=2) are for tests only, "
                             "not production")
        if self.idporten_issuer is not None and urlsplit(self.idporten_issuer).scheme != "https":
            # Plain http on loopback is a test or development provider, never the real ID-porten.
            raise ValueError("IDP_IDPORTEN_ISSUER must use https in production (a loopback http provider is for "
                             "development and tests only)")
        return self

    @property
    def is_development(self) -> bool:
        return self.mode is Mode.DEVELOPMENT

    @property
    def idporten_enabled(self) -> bool:
        return self.idporten_issuer is not None

    def data_key_bytes(self) -> bytes:
        if self.data_key is None:
            raise ConfigError("IDP_DATA_KEY is not set")
        return _decode_key(self.data_key.get_secret_value())


def _decode_key(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text.strip() + "=" * (-len(text.strip()) % 4))
    except (ValueError, TypeError):
        return b""


def new_secret() -> str:
    """A fresh 32-byte secret, base64url without padding (the format of both keys)."""
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"IDP_CONFIG names {path}, which does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    return {str(k).lower(): v for k, v in data.items()}


def _from_env(env: Mapping[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX) or name in _NOT_SETTINGS or name.startswith(_NOT_SETTINGS_PREFIXES):
            continue
        values[name[len(ENV_PREFIX):].lower()] = value
    return values


def _secrets_from_files(keys_dir: Path, values: dict[str, Any]) -> None:
    """Secrets not given directly may sit in files in the keys directory (e.g. a mounted secret)."""
    for field, filename in SECRET_FILES.items():
        path = keys_dir / filename
        if _blank(values.get(field)) and path.is_file():
            values[field] = path.read_text().strip()


def _blank(value: Any) -> bool:
    """An empty secret is a missing one, never a usable key."""
    return value is None or (isinstance(value, str) and not value.strip())


def _generate_dev_secrets(keys_dir: Path, values: dict[str, Any]) -> None:
    keys_dir.mkdir(parents=True, exist_ok=True)
    for field, filename in SECRET_FILES.items():
        if _blank(values.get(field)):
            path = keys_dir / filename
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(new_secret() + "\n")
            values[field] = path.read_text().strip()


def requested_mode(env: Mapping[str, str] | None = None) -> str:
    """The mode asked for, before validating anything else (so ``idp demo`` can explain itself)."""
    env = os.environ if env is None else env
    if env.get("IDP_MODE"):
        return env["IDP_MODE"].strip().lower()
    if env.get("IDP_CONFIG"):
        return str(_read_toml(Path(env["IDP_CONFIG"]).expanduser()).get("mode", Mode.PRODUCTION)).lower()
    return Mode.PRODUCTION.value


def load_settings(env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Load and validate the settings; raise ConfigError with a message naming what is wrong.

    In development mode missing secrets are generated into the keys directory; in production a
    missing one refuses to start.
    """
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    if env.get("IDP_HOME"):
        values["home"] = env["IDP_HOME"]
    if env.get("IDP_CONFIG"):
        values.update(_read_toml(Path(env["IDP_CONFIG"]).expanduser()))
    values.update(_from_env(env))
    values.update(overrides)
    try:
        # First pass resolves paths and mode; secrets from files are added before the final one.
        draft = Settings(**{k: v for k, v in values.items() if k not in SECRET_FILES})
    except ValidationError as exc:
        raise ConfigError(_explain(exc)) from None
    _secrets_from_files(draft.keys_dir, values)
    if draft.is_development:
        _generate_dev_secrets(draft.keys_dir, values)
    missing = [f for f in SECRET_FILES if _blank(values.get(f))]
    if missing:
        names = ", ".join(f"IDP_{f.upper()}" for f in missing)
        raise ConfigError(f"{names} not set: give it in the environment, in IDP_CONFIG, or as a file in "
                          f"{draft.keys_dir}; refusing to start in production mode without it")
    try:
        return Settings(**values)
    except ValidationError as exc:
        raise ConfigError(_explain(exc)) from None


def _explain(exc: ValidationError) -> str:
    """One readable line per problem, naming the setting as the operator writes it; never the value."""
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        name = f"IDP_{loc.upper()}" if loc else "settings"
        if err["type"] == "extra_forbidden":
            lines.append(f"{name}: unknown setting")
        else:
            lines.append(f"{name}: {err['msg'].removeprefix('Value error, ')}")
    return "invalid configuration: " + "; ".join(lines)
