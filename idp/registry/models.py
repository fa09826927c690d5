"""Tables of the patron register (SQLAlchemy 2.x). No behaviour here: services own the rules.

``__repr__`` is overridden wherever a row holds personal data, so that a stray log line or
traceback shows ids, never names, national ids or contact details.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, ClassVar

from sqlalchemy import (JSON, BigInteger, Boolean, CheckConstraint, Date, DateTime, ForeignKey, Index,
                        Integer, LargeBinary, MetaData, String, Table, Text, TypeDecorator, UniqueConstraint, false,
                        text, true)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}



class Timestamp(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite would otherwise hand back naive ones)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the register; use an aware UTC datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    if TYPE_CHECKING:
        # Every class here maps one Table (none maps a join or a select); SQLAlchemy types it FromClause.
        __table__: ClassVar[Table]

    def __repr__(self) -> str:
        return f"<{type(self).__name__} id={getattr(self, 'id', '?')}>"


class Library(Base):
    __tablename__ = "library"

    id: Mapped[int] = mapped_column(primary_key=True)
    isil: Mapped[str] = mapped_column(String(16), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    # Canonicalisation rules for this library's local card numbers (see cardnumbers.py): data.
    card_rules: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(Timestamp())
    # The agreement with the national library (idp.registry.agreements): where notices to the library
    # go, whether it meets the national terms (a non-compliant library's patrons become local only),
    # and when its data processing agreement was signed (NULL: none recorded).
    contact_email: Mapped[str | None] = mapped_column(String(254))
    compliant: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    dpa_signed: Mapped[date | None] = mapped_column(Date)
    # By when the DPA must be signed (NULL: no deadline set), and how many of the reminders due
    # after it (agreements.REMINDER_DAYS) were queued: the daily run sends each one once.
    dpa_deadline: Mapped[date | None] = mapped_column(Date)
    dpa_reminders_sent: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    series: Mapped[list[CardSeries]] = relationship(back_populates="library", order_by="CardSeries.first_number")
    lending_rules: Mapped[list[LendingRules]] = relationship(order_by="LendingRules.version")


class LendingRules(Base):
    """One version of a library's lending rules; a new text is a new version, old ones stay
    (a patron's acceptance names the version they accepted)."""

    __tablename__ = "lending_rules"
    __table_args__ = (
        UniqueConstraint("library_id", "version"),
        CheckConstraint("version >= 1", name="version"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    library_id: Mapped[int] = mapped_column(ForeignKey("library.id"))
    version: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(Timestamp())


class LibrarySystem(Base):
    """A library's own system (Bibliofil, Quria, Koha...): an OAuth 2.0 client of our provider that
    serves exactly one library. It authenticates with a key from its JWKS (private_key_jwt; inline
    or at an https URL) or with a client secret (client_secret_basic), never both.
    The rules live in idp.registry.library_systems; the checks here are the backstop.
    """

    __tablename__ = "library_system"
    __table_args__ = (
        CheckConstraint("jwks IS NULL OR jwks_uri IS NULL", name="one_jwks"),
        CheckConstraint("(secret_hash IS NULL) <> (jwks IS NULL AND jwks_uri IS NULL)", name="one_credential"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64), unique=True)
    library_id: Mapped[int] = mapped_column(ForeignKey("library.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    # The JWKS as JSON text, or where to fetch it.
    jwks: Mapped[str | None] = mapped_column(Text)
    jwks_uri: Mapped[str | None] = mapped_column(String(2000))
    # SHA-256 of the client secret (idp.registry.client_secrets); the secret is shown once, never stored.
    secret_hash: Mapped[bytes | None] = mapped_column(LargeBinary(32))
    # CIDRs it may call from; empty: from anywhere.
    allowed_ips: Mapped[list[str]] = mapped_column(JSON, default=list)
    # Its limit on register API calls (flask-limiter syntax); null: IDP_API_LIMIT_PER_SYSTEM.
    rate_limit: Mapped[str | None] = mapped_column(String(200))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(Timestamp())
    updated_at: Mapped[datetime] = mapped_column(Timestamp())

    library: Mapped[Library] = relationship()


class CardSeries(Base):
    """A contiguous range of national card numbers (the 9 digits after ``N``) a library reserved.

    Ranges never overlap: PostgreSQL enforces it with an exclusion constraint, SQLite with a
    trigger (both created by the migration), so a race between two reservations cannot win.
    """

    __tablename__ = "card_series"
    __table_args__ = (
        CheckConstraint("first_number >= 1 AND last_number >= first_number AND last_number <= 999999999",
                        name="range"),
        CheckConstraint("usage IN ('printed', 'digital')", name="usage"),
        CheckConstraint("next_number >= first_number AND next_number <= last_number + 1", name="next"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    library_id: Mapped[int] = mapped_column(ForeignKey("library.id"), index=True)
    first_number: Mapped[int] = mapped_column(BigInteger)
    last_number: Mapped[int] = mapped_column(BigInteger)
    # printed: numbers the library prints on cards; digital: numbers the register hands out itself.
    usage: Mapped[str] = mapped_column(String(8))
    next_number: Mapped[int] = mapped_column(BigInteger)
    reserved_at: Mapped[datetime] = mapped_column(Timestamp())

    library: Mapped[Library] = relationship(back_populates="series")


_NATIONAL = text("local_library_id IS NULL")
_LOCAL = text("local_library_id IS NOT NULL")


class Patron(Base):
    __tablename__ = "patron"
    __table_args__ = (
        # One national account per person; at most one local account per person and library.
        Index("uq_patron_national_id", "national_id_hash", unique=True,
              sqlite_where=_NATIONAL, postgresql_where=_NATIONAL),
        Index("uq_patron_local_national_id", "national_id_hash", "local_library_id", unique=True,
              sqlite_where=_LOCAL, postgresql_where=_LOCAL),
        CheckConstraint("local_library_id IS NOT NULL OR national_id_hash IS NOT NULL", name="national_needs_id"),
        CheckConstraint("status IN ('active', 'blocked')", name="status"),
        CheckConstraint("NOT (address_secret AND (street IS NOT NULL OR postal_code IS NOT NULL OR city IS NOT NULL))",
                        name="secret_address_not_stored"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    id_kind: Mapped[str | None] = mapped_column(String(8))
    national_id_cipher: Mapped[bytes | None] = mapped_column(LargeBinary)
    national_id_hash: Mapped[bytes | None] = mapped_column(LargeBinary(32))
    # NULL: a national account. Set: a local account that lives in that one library only.
    local_library_id: Mapped[int | None] = mapped_column(ForeignKey("library.id"))
    birth_date: Mapped[date | None] = mapped_column(Date)
    street: Mapped[str | None] = mapped_column(String(200))
    postal_code: Mapped[str | None] = mapped_column(String(16))
    city: Mapped[str | None] = mapped_column(String(100))
    address_secret: Mapped[bool] = mapped_column(Boolean, default=False)
    phone: Mapped[str | None] = mapped_column(String(32))
    email: Mapped[str | None] = mapped_column(String(254))
    status: Mapped[str] = mapped_column(String(16), default="active")
    home_library_id: Mapped[int] = mapped_column(ForeignKey("library.id"))
    created_at: Mapped[datetime] = mapped_column(Timestamp())
    last_activity_at: Mapped[datetime] = mapped_column(Timestamp(), index=True)
    inactivity_warned_at: Mapped[datetime | None] = mapped_column(Timestamp())

    cards: Mapped[list[Card]] = relationship(back_populates="patron", order_by="Card.id")
    memberships: Mapped[list[Membership]] = relationship(back_populates="patron", cascade="all, delete-orphan",
                                                         passive_deletes=True)
    home_library: Mapped[Library] = relationship(foreign_keys=[home_library_id])
    local_library: Mapped[Library | None] = relationship(foreign_keys=[local_library_id])
    loan_bans: Mapped[list[LoanBan]] = relationship(cascade="all, delete-orphan", passive_deletes=True)


class Card(Base):
    __tablename__ = "card"
    __table_args__ = (
        CheckConstraint("kind IN ('digital', 'printed', 'local')", name="kind"),
        CheckConstraint("status IN ('active', 'retired')", name="status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # Canonical form; unique nationally, and kept when retired so a number is never handed out twice.
    number: Mapped[str] = mapped_column(String(32), unique=True)
    kind: Mapped[str] = mapped_column(String(8))
    library_id: Mapped[int] = mapped_column(ForeignKey("library.id"))
    patron_id: Mapped[int | None] = mapped_column(ForeignKey("patron.id", ondelete="SET NULL"), index=True)
    status: Mapped[str] = mapped_column(String(8), default="active")
    issued_at: Mapped[datetime] = mapped_column(Timestamp())
    retired_at: Mapped[datetime | None] = mapped_column(Timestamp())
    retired_reason: Mapped[str | None] = mapped_column(String(32))

    patron: Mapped[Patron | None] = relationship(back_populates="cards")
    library: Mapped[Library] = relationship()

    def __repr__(self) -> str:
        return f"<Card id={self.id} kind={self.kind} status={self.status}>"


class Membership(Base):
    """A patron is a patron of a library; full data flows only after the lending rules are accepted."""

    __tablename__ = "membership"

    patron_id: Mapped[int] = mapped_column(ForeignKey("patron.id", ondelete="CASCADE"), primary_key=True)
    library_id: Mapped[int] = mapped_column(ForeignKey("library.id"), primary_key=True, index=True)
    added_at: Mapped[datetime] = mapped_column(Timestamp())
    rules_accepted_at: Mapped[datetime | None] = mapped_column(Timestamp())
    # The version of the library's lending rules accepted (idp.registry.agreements); NULL when the
    # library had no rules text then, or the acceptance predates versioned rules.
    rules_version: Mapped[int | None] = mapped_column(Integer)

    patron: Mapped[Patron] = relationship(back_populates="memberships")
    library: Mapped[Library] = relationship()

    def __repr__(self) -> str:
        return f"<Membership patron={self.patron_id} library={self.library_id}>"


class LoanBan(Base):
    """A library bars the patron from borrowing there. It counts while the patron is a member of that
    library (idp.registry.loan_bans); the reason, if given, is the library's own note, never released."""

    __tablename__ = "loan_ban"

    patron_id: Mapped[int] = mapped_column(ForeignKey("patron.id", ondelete="CASCADE"), primary_key=True)
    library_id: Mapped[int] = mapped_column(ForeignKey("library.id"), primary_key=True, index=True)
    set_at: Mapped[datetime] = mapped_column(Timestamp())
    reason: Mapped[str | None] = mapped_column(String(200))

    def __repr__(self) -> str:
        return f"<LoanBan patron={self.patron_id} library={self.library_id}>"


# What a library system's change feed tells it (idp.registry.changes).
CHANGE_KINDS = ("contact_changed", "status_changed", "left_library", "deleted", "card_replaced", "loan_ban_set",
                "loan_ban_cleared")


class ChangeEvent(Base):
    """Something changed for a patron of ``library_id``: ids and a kind only, no personal data (the library
    re-reads the record). No FK to the patron: the event of a deletion outlives the patron.

    ``txid`` orders events by the transaction that wrote them (PostgreSQL's transaction id; 0 on SQLite,
    whose one writer commits in id order), so the feed never passes an event still being committed."""

    __tablename__ = "change_event"
    __table_args__ = (
        Index("ix_change_event_feed", "library_id", "txid", "id"),
        CheckConstraint(f"kind IN ({', '.join(repr(k) for k in CHANGE_KINDS)})", name="kind"),
        # Ids are never reused, even after the retention purge empties the table (a cursor holds one).
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    txid: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    library_id: Mapped[int] = mapped_column(ForeignKey("library.id"))
    patron_id: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(20))
    at: Mapped[datetime] = mapped_column(Timestamp(), index=True)

    def __repr__(self) -> str:
        return f"<ChangeEvent id={self.id} library={self.library_id} kind={self.kind}>"


class Guardianship(Base):
    __tablename__ = "guardianship"

    guardian_id: Mapped[int] = mapped_column(ForeignKey("patron.id", ondelete="CASCADE"), primary_key=True)
    child_id: Mapped[int] = mapped_column(ForeignKey("patron.id", ondelete="CASCADE"), primary_key=True,
                                          index=True)
    created_at: Mapped[datetime] = mapped_column(Timestamp())

    def __repr__(self) -> str:
        return f"<Guardianship guardian={self.guardian_id} child={self.child_id}>"


class Credential(Base):
    __tablename__ = "credential"
    __table_args__ = (CheckConstraint("kind IN ('password', 'pin')", name="kind"),)

    patron_id: Mapped[int] = mapped_column(ForeignKey("patron.id", ondelete="CASCADE"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(8), primary_key=True)
    hash: Mapped[str] = mapped_column(String(255))
    must_change: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(Timestamp())
    # When a first (or temporary) secret was first replaced by one the patron need not change: the
    # librarian's "are the first-time credentials still in use?" (the seeds' BiblioMo desk question).
    first_changed_at: Mapped[datetime | None] = mapped_column(Timestamp())

    def __repr__(self) -> str:
        return f"<Credential patron={self.patron_id} kind={self.kind}>"


# What a notification may tell a patron; idp.delivery.texts has the words for each.
NOTIFICATION_KINDS = frozenset({"login_locked", "account_changed", "library_added", "inactivity_warning",
                                # to a library's contact address (Notification.library_id)
                                "dpa_reminder", "dpa_last_notice"})
# How a notification ended (NULL while it waits): sent by e-mail or SMS, or given up because the
# patron has no address, it kept failing, or it waited too long to be worth sending.
NOTIFICATION_OUTCOMES = ("email", "sms", "no_address", "failed", "expired")
_PENDING = text("outcome IS NULL")
_ONE_RECIPIENT = "(patron_id IS NULL) <> (library_id IS NULL)"


class Notification(Base):
    """A message owed to a patron, or to a library (its contact address: the DPA reminders); exactly
    one of the two is set. ``data`` holds identifiers (an ISIL, a date), never personal data.

    Written in the transaction of the change it reports and sent later by idp.notifications, so a
    slow or failing mail server never holds up a login or loses a notice."""

    __tablename__ = "notification"
    __table_args__ = (
        # The deliverer's queue: only what still waits, in order.
        Index("ix_notification_pending", "id", sqlite_where=_PENDING, postgresql_where=_PENDING),
        CheckConstraint(f"outcome IS NULL OR outcome IN ({', '.join(repr(o) for o in NOTIFICATION_OUTCOMES)})",
                        name="outcome"),
        CheckConstraint(_ONE_RECIPIENT, name="one_recipient"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    patron_id: Mapped[int | None] = mapped_column(ForeignKey("patron.id", ondelete="CASCADE"), index=True)
    library_id: Mapped[int | None] = mapped_column(ForeignKey("library.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(Timestamp())
    delivered_at: Mapped[datetime | None] = mapped_column(Timestamp())
    outcome: Mapped[str | None] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # After a failed send: not tried again before this time (the deliverer backs off).
    retry_after: Mapped[datetime | None] = mapped_column(Timestamp())
    # Where to write instead of the patron's current address: the old address of a changed e-mail
    # or phone, so that a takeover is reported to the owner. Encrypted; erased once settled.
    address_cipher: Mapped[bytes | None] = mapped_column(LargeBinary)


class AuditEvent(Base):
    """Who read or changed what. Survives the patron's deletion, so it holds ids only, no FK."""

    __tablename__ = "audit_event"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    at: Mapped[datetime] = mapped_column(Timestamp(), index=True)
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(40))
    patron_id: Mapped[int | None] = mapped_column(Integer, index=True)
    library_id: Mapped[int | None] = mapped_column(Integer)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class RelyingParty(Base):
    """A partner the national library lets log patrons in, over OIDC or SAML.

    The rules (redirect URIs, claims, levels) live in idp.relying_parties; the checks here are
    the backstop for anything that writes rows without going through it.
    """

    __tablename__ = "relying_party"
    __table_args__ = (
        CheckConstraint("protocol IN ('oidc', 'saml')", name="protocol"),
        CheckConstraint("subject_type IN ('pairwise', 'public')", name="subject_type"),
        # No HMAC: a client holding the shared secret could forge id_tokens.
        CheckConstraint("id_token_alg IN ('ES256', 'RS256')", name="id_token_alg"),
        CheckConstraint("min_acr IN ('pin', 'password', 'mfa', 'idporten-loa-substantial', 'idporten-loa-high')",
                        name="min_acr"),
        # A PIN alone is for kiosks and open-library doors, never for a web partner.
        CheckConstraint("min_acr <> 'pin' OR pin_allowed", name="pin_needs_pin_allowed"),
        # An OIDC client is confidential exactly when it holds a secret.
        CheckConstraint("protocol <> 'oidc' OR public = (secret_hash IS NULL)", name="secret_iff_confidential"),
        # A SAML service provider is known by its entity id and described by its metadata.
        CheckConstraint("protocol <> 'saml' OR (entity_id IS NOT NULL AND saml_metadata IS NOT NULL)",
                        name="saml_has_metadata"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    protocol: Mapped[str] = mapped_column(String(8))
    # SHA-256 of the client secret; the secret itself is shown once and never stored.
    secret_hash: Mapped[bytes | None] = mapped_column(LargeBinary(32))
    redirect_uris: Mapped[list[str]] = mapped_column(JSON, default=list)
    public: Mapped[bool] = mapped_column(Boolean, default=False)
    min_acr: Mapped[str] = mapped_column(String(32), default="password")
    pin_allowed: Mapped[bool] = mapped_column(Boolean, default=False)
    claims: Mapped[list[str]] = mapped_column(JSON, default=lambda: ["valid_patron"])
    subject_type: Mapped[str] = mapped_column(String(8), default="pairwise")
    # OIDC: how its id_tokens are signed (id_token_signed_response_alg), one of idp.keys.ALGORITHMS.
    id_token_alg: Mapped[str] = mapped_column(String(8), default="RS256", server_default="RS256")
    # NULL until the data processing agreement is signed; without it the partner logs nobody in.
    dpa_signed: Mapped[date | None] = mapped_column(Date)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(Timestamp())
    # When the current secret was issued (at creation or by the last rotation); NULL for public clients.
    secret_rotated_at: Mapped[datetime | None] = mapped_column(Timestamp())
    # SAML only (NULL for OIDC clients): the SP's entity id, its own EntityDescriptor, the NameID
    # formats it may get, and whether it accepts logins started at the IdP (unsolicited responses).
    entity_id: Mapped[str | None] = mapped_column(String(1024), unique=True)
    saml_metadata: Mapped[str | None] = mapped_column(Text)
    metadata_updated_at: Mapped[datetime | None] = mapped_column(Timestamp())
    name_id_formats: Mapped[list[str] | None] = mapped_column(JSON)
    allow_unsolicited: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # OIDC single logout (NULL: none registered): where logout tokens are POSTed (Back-Channel Logout
    # 1.0) and the page loaded in an iframe at logout (Front-Channel Logout 1.0).
    backchannel_logout_uri: Mapped[str | None] = mapped_column(String(2000))
    frontchannel_logout_uri: Mapped[str | None] = mapped_column(String(2000))

    def __repr__(self) -> str:
        return f"<RelyingParty id={self.id} client_id={self.client_id} protocol={self.protocol}>"


class BackchannelLogout(Base):
    """A back-channel logout owed to an OIDC relying party: the queue idp.oidc.backchannel delivers.

    Written in the transaction that ends the session; deleted when delivered or given up. No token
    is stored (it is signed afresh at each attempt, with a fresh jti and exp), and no FK to the
    relying party: a row whose client is gone is dropped at delivery.
    """

    __tablename__ = "backchannel_logout"

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64))
    # The subject as this client knows it (pairwise or public) and the session id its id_token carried.
    sub: Mapped[str] = mapped_column(String(255))
    sid: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(Timestamp())
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Due from this time; a deliverer claims a row by moving it forward (a lease), so another
    # worker or process skips it while it is being sent.
    next_attempt_at: Mapped[datetime] = mapped_column(Timestamp(), index=True)
    # Why the last attempt failed, in words for operators (never the token).
    last_error: Mapped[str | None] = mapped_column(String(200))

    def __repr__(self) -> str:
        return f"<BackchannelLogout id={self.id} client_id={self.client_id} attempts={self.attempts}>"


class ClaimRelease(Base):
    """Which claims a partner received about a patron, and when: names only, never values.

    Patron-visible ("what did I share with whom"), so it goes with the patron (ON DELETE
    CASCADE), unlike the audit trail, which outlives them.
    """

    __tablename__ = "claim_release"
    __table_args__ = (CheckConstraint("protocol IN ('oidc', 'saml', 'api')", name="protocol"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    patron_id: Mapped[int] = mapped_column(ForeignKey("patron.id", ondelete="CASCADE"), index=True)
    relying_party_id: Mapped[int] = mapped_column(ForeignKey("relying_party.id"))
    claims: Mapped[list[str]] = mapped_column(JSON, default=list)
    protocol: Mapped[str] = mapped_column(String(8))
    released_at: Mapped[datetime] = mapped_column(Timestamp())

    def __repr__(self) -> str:
        return f"<ClaimRelease id={self.id} patron={self.patron_id} relying_party={self.relying_party_id}>"


class Consent(Base):
    """What a patron agreed that one service (an OIDC relying party or a SAML SP alike) may receive.

    Register data, not session state: it survives restarts and Redis flushes, goes with the patron
    (ON DELETE CASCADE) and with the service. One row per patron and service; a wider consent widens
    the row (idp.registry.consents.give_consent), so the pages ask again only for what is new.
    """

    __tablename__ = "consent"
    __table_args__ = (CheckConstraint("protocol IN ('oidc', 'saml')", name="protocol"),)

    patron_id: Mapped[int] = mapped_column(ForeignKey("patron.id", ondelete="CASCADE"), primary_key=True)
    relying_party_id: Mapped[int] = mapped_column(ForeignKey("relying_party.id", ondelete="CASCADE"),
                                                  primary_key=True, index=True)
    # The service's kind, as its relying_party row says (kept here so a listing needs no join to tell it).
    protocol: Mapped[str] = mapped_column(String(8))
    claims: Mapped[list[str]] = mapped_column(JSON, default=list)
    given_at: Mapped[datetime] = mapped_column(Timestamp())  # the first consent to this service
    updated_at: Mapped[datetime] = mapped_column(Timestamp())  # the last time it was widened

    def __repr__(self) -> str:
        return f"<Consent patron={self.patron_id} relying_party={self.relying_party_id}>"


class Federation(Base):
    """A university or municipal identity federation whose members log in with their home account.

    We are a SAML service provider to its identity provider (idp/auth/federation.py). The rules
    (names, attributes, levels) live in idp.registry.upstream; the checks here are the backstop.
    """

    __tablename__ = "federation"

    id: Mapped[int] = mapped_column(primary_key=True)
    # Short, URL-safe name the operator uses (``idp federation ... unimore``) and the login URL shows.
    name: Mapped[str] = mapped_column(String(32), unique=True)
    display_name: Mapped[str] = mapped_column(String(100))
    # The upstream identity provider's SAML entityID and its metadata (as loaded by the operator).
    entity_id: Mapped[str] = mapped_column(String(1024))
    metadata_xml: Mapped[str] = mapped_column(Text)
    # The certificate (PEM) the metadata's signature must verify with; None: unverified (warned about).
    metadata_cert: Mapped[str | None] = mapped_column(Text)
    # The attribute whose value identifies a member for good (e.g. eduPersonPrincipalName).
    link_attribute: Mapped[str] = mapped_column(String(64))
    # An attribute carrying a Norwegian national identity number, used to link a first login.
    national_id_attribute: Mapped[str | None] = mapped_column(String(64))
    # Patron field -> attribute: the upstream owns these fields (read-only here, refreshed at login).
    attribute_map: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    # AuthnContextClassRef -> assurance level ("password" or "mfa"); anything else counts as "password".
    authn_contexts: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(Timestamp())
    updated_at: Mapped[datetime] = mapped_column(Timestamp())

    def __repr__(self) -> str:
        return f"<Federation id={self.id} name={self.name}>"


class UpstreamIdentity(Base):
    """A federation account linked to a patron. The account's identifier is kept only as a keyed
    hash (like the national id's lookup hash): enough to recognise it, useless to a reader."""

    __tablename__ = "upstream_identity"
    __table_args__ = (
        UniqueConstraint("federation_id", "subject_hash", name="uq_upstream_identity_subject"),
        # One account per federation and patron: a second one would make "who owns the name" ambiguous.
        UniqueConstraint("federation_id", "patron_id", name="uq_upstream_identity_patron"),
        CheckConstraint("linked_by IN ('national_id', 'one_time_code', 'operator')", name="linked_by"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    federation_id: Mapped[int] = mapped_column(ForeignKey("federation.id", ondelete="CASCADE"))
    subject_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    patron_id: Mapped[int] = mapped_column(ForeignKey("patron.id", ondelete="CASCADE"), index=True)
    linked_by: Mapped[str] = mapped_column(String(16))
    linked_at: Mapped[datetime] = mapped_column(Timestamp())
    last_login_at: Mapped[datetime | None] = mapped_column(Timestamp())

    federation: Mapped[Federation] = relationship()

    def __repr__(self) -> str:
        return f"<UpstreamIdentity id={self.id} federation={self.federation_id} patron={self.patron_id}>"



class TotpCredential(Base):
    """A patron's TOTP authenticator (second factor). The seed is encrypted with the data key
    (FieldCipher.seal, bound to the patron), never stored or shown in the clear after enrolment."""

    __tablename__ = "totp_credential"

    patron_id: Mapped[int] = mapped_column(ForeignKey("patron.id", ondelete="CASCADE"), primary_key=True)
    secret_cipher: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(Timestamp())
    last_used_at: Mapped[datetime | None] = mapped_column(Timestamp())

    def __repr__(self) -> str:
        return f"<TotpCredential patron={self.patron_id}>"


class RecoveryCode(Base):
    """A single-use code that stands in for the TOTP authenticator (lost phone). Only a keyed
    hash is kept (FieldCipher.code_hash); ``used_at`` is set on its one use."""

    __tablename__ = "recovery_code"

    id: Mapped[int] = mapped_column(primary_key=True)
    patron_id: Mapped[int] = mapped_column(ForeignKey("patron.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    created_at: Mapped[datetime] = mapped_column(Timestamp())
    used_at: Mapped[datetime | None] = mapped_column(Timestamp())

    def __repr__(self) -> str:
        return f"<RecoveryCode id={self.id} patron={self.patron_id}>"


class PasswordResetToken(Base):
    """A librarian's reset link (``idp patron reset-password``). Kept in the database, not the state
    store, so the CLI and the servers see the same links even in the embedded single-process setup.
    Only the SHA-256 of the 256-bit token is stored; ``used_at`` is set on its one use."""

    __tablename__ = "password_reset_token"

    id: Mapped[int] = mapped_column(primary_key=True)
    patron_id: Mapped[int] = mapped_column(ForeignKey("patron.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    created_at: Mapped[datetime] = mapped_column(Timestamp())
    expires_at: Mapped[datetime] = mapped_column(Timestamp())
    used_at: Mapped[datetime | None] = mapped_column(Timestamp())

    def __repr__(self) -> str:
        return f"<PasswordResetToken id={self.id} patron={self.patron_id}>"


__all__ = ["AuditEvent", "Base", "Card", "CardSeries", "ClaimRelease", "Credential", "Federation", "Guardianship",
           "Library", "Membership", "Notification", "PasswordResetToken", "Patron", "RecoveryCode", "RelyingParty",
           "TotpCredential",
           "UpstreamIdentity"]
