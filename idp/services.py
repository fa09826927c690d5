"""Wiring from settings to the long-lived parts (database, keys, hasher, state).

Built once per process by the CLI and by the app factory; holds no request data.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any
from datetime import datetime

from sqlalchemy import Engine, Executable, Row
from sqlalchemy.orm import Session, sessionmaker

from idp import migrate
from idp.db import make_engine, session_factory, transaction
from idp.errors import ConfigError
from idp.keys import KeyRing
from idp.registry.context import Registry
from idp.registry.credentials import SecretHasher
from idp.registry.crypto import FieldCipher
from idp.registry.dates import utcnow
from idp.settings import Settings
from idp.state import MemoryState, RedisState, make_state

if TYPE_CHECKING:
    from idp.delivery import Messenger
    from idp.oidc.backchannel import BackchannelDelivery
    from idp.oidc.wiring import OidcParts
    from idp.saml import SamlParts
    from idp.single_logout import SingleLogout


@dataclass
class Services:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    cipher: FieldCipher
    hasher: SecretHasher
    state: RedisState | MemoryState
    clock: Callable[[], datetime] = utcnow
    # What apps built on these services hold open (a limiter's Redis connections): closed with them.
    closers: list[Callable[[], None]] = field(default_factory=list)

    @contextmanager
    def registry(self, actor: str) -> Iterator[Registry]:
        """A register transaction: committed if the block returns, rolled back if it raises."""
        with transaction(self.sessions) as session:
            yield Registry(session=session, cipher=self.cipher, hasher=self.hasher, actor=actor, clock=self.clock)

    def read(self, statement: Executable,
             params: Mapping[str, Any] | None = None) -> Sequence[Row[*tuple[Any, ...]]]:
        """One read outside any transaction, for hot paths that need no snapshot across statements
        (the login page's federations): no BEGIN and COMMIT round trips, no ORM session."""
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            return connection.execute(statement, params or {}).all()

    def require_current_schema(self) -> None:
        current, head = migrate.current_revision(self.engine), migrate.head_revision()
        if current != head:
            raise ConfigError("the database schema is not current "
                              f"({current or 'empty'}, expected {head}); run: idp db upgrade")

    @cached_property
    def keyring(self) -> KeyRing:
        """Signing keys; development creates them on first use, production refuses without them."""
        keys_dir = self.settings.keys_dir
        return KeyRing.ensure(keys_dir) if self.settings.is_development else KeyRing.load(keys_dir)

    @cached_property
    def saml(self) -> SamlParts:
        """The SAML IdP; its signing key is created in development, required in production."""
        from idp.saml import build_saml  # noqa: PLC0415 - pysaml2 is slow to import; only SAML requests need it

        return build_saml(self)

    @cached_property
    def oidc(self) -> OidcParts:
        from idp.oidc.wiring import build_oidc  # noqa: PLC0415 - pyop, built on first use, like SAML

        return build_oidc(self)

    @cached_property
    def single_logout(self) -> SingleLogout:
        """What each login session reached, and ending it everywhere (idp.single_logout)."""
        from idp.single_logout import SingleLogout  # noqa: PLC0415 - it needs pyop and pysaml2, like OIDC

        return SingleLogout(self)

    @cached_property
    def messenger(self) -> Messenger:
        """E-mail and SMS to patrons (one-time codes, reset links, notices); tests may replace it."""
        from idp.delivery import build_messenger  # noqa: PLC0415 - built on first use, like SAML

        return build_messenger(self.settings)

    @cached_property
    def backchannel(self) -> BackchannelDelivery:
        """Back-channel logout delivery; its thread runs only where started (each ``idp serve`` worker),
        and ``notify()`` after a commit that queued logouts wakes it."""
        from idp.oidc.backchannel import BackchannelDelivery  # noqa: PLC0415 - built on first use, like SAML

        delivery = BackchannelDelivery(settings=self.settings, registry=self.registry, keyring=self.keyring,
                                       issuer=self.settings.issuer.rstrip("/"), clock=lambda: self.clock())
        self.closers.append(delivery.stop)
        return delivery

    def close(self) -> None:
        for close in self.closers:
            close()
        self.state.close()
        self.hasher.close()
        self.engine.dispose()


def build_services(settings: Settings) -> Services:
    engine = make_engine(settings.database_url)
    return Services(
        settings=settings, engine=engine, sessions=session_factory(engine),
        cipher=FieldCipher(settings.data_key_bytes()),
        hasher=SecretHasher(time_cost=settings.argon2_time_cost, memory_kib=settings.argon2_memory_kib,
                            parallelism=settings.argon2_parallelism, concurrency=settings.argon2_concurrency),
        state=make_state(settings.redis_url, settings.redis_prefix))
