"""The patron register: libraries, card series, patrons, cards, memberships, guardians,
credentials, notifications and the audit trail.

Revision ID: 0001
Revises: 
Create Date: 2026-11-23
"""
from alembic import op
import sqlalchemy as sa
import idp.registry.models


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('audit_event',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('at', idp.registry.models.Timestamp(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=100), nullable=False),
    sa.Column('action', sa.String(length=40), nullable=False),
    sa.Column('patron_id', sa.Integer(), nullable=True),
    sa.Column('library_id', sa.Integer(), nullable=True),
    sa.Column('detail', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_event'))
    )
    with op.batch_alter_table('audit_event', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_event_at'), ['at'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_event_patron_id'), ['patron_id'], unique=False)

    op.create_table('library',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('isil', sa.String(length=16), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('card_rules', sa.JSON(), nullable=False),
    sa.Column('created_at', idp.registry.models.Timestamp(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_library')),
    sa.UniqueConstraint('isil', name=op.f('uq_library_isil'))
    )
    op.create_table('card_series',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('library_id', sa.Integer(), nullable=False),
    sa.Column('first_number', sa.BigInteger(), nullable=False),
    sa.Column('last_number', sa.BigInteger(), nullable=False),
    sa.Column('usage', sa.String(length=8), nullable=False),
    sa.Column('next_number', sa.BigInteger(), nullable=False),
    sa.Column('reserved_at', idp.registry.models.Timestamp(timezone=True), nullable=False),
    sa.CheckConstraint("usage IN ('printed', 'digital')", name=op.f('ck_card_series_usage')),
    sa.CheckConstraint('first_number >= 1 AND last_number >= first_number AND last_number <= 999999999', name=op.f('ck_card_series_range')),
    sa.CheckConstraint('next_number >= first_number AND next_number <= last_number + 1', name=op.f('ck_card_series_next')),
    sa.ForeignKeyConstraint(['library_id'], ['library.id'], name=op.f('fk_card_series_library_id_library')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_card_series'))
    )
    with op.batch_alter_table('card_series', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_card_series_library_id'), ['library_id'], unique=False)
    _forbid_overlapping_series()

    op.create_table('patron',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('id_kind', sa.String(length=8), nullable=True),
    sa.Column('national_id_cipher', sa.LargeBinary(), nullable=True),
    sa.Column('national_id_hash', sa.LargeBinary(length=32), nullable=True),
    sa.Column('local_library_id', sa.Integer(), nullable=True),
    sa.Column('birth_date', sa.Date(), nullable=True),
    sa.Column('street', sa.String(length=200), nullable=True),
    sa.Column('postal_code', sa.String(length=16), nullable=True),
    sa.Column('city', sa.String(length=100), nullable=True),
    sa.Column('address_secret', sa.Boolean(), nullable=False),
    sa.Column('phone', sa.String(length=32), nullable=True),
    sa.Column('email', sa.String(length=254), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('loan_ban', sa.Boolean(), nullable=False),
    sa.Column('home_library_id', sa.Integer(), nullable=False),
    sa.Column('created_at', idp.registry.models.Timestamp(timezone=True), nullable=False),
    sa.Column('last_activity_at', idp.registry.models.Timestamp(timezone=True), nullable=False),
    sa.Column('inactivity_warned_at', idp.registry.models.Timestamp(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('active', 'blocked')", name=op.f('ck_patron_status')),
    sa.CheckConstraint('NOT (address_secret AND (street IS NOT NULL OR postal_code IS NOT NULL OR city IS NOT NULL))', name=op.f('ck_patron_secret_address_not_stored')),
    sa.CheckConstraint('local_library_id IS NOT NULL OR national_id_hash IS NOT NULL', name=op.f('ck_patron_national_needs_id')),
    sa.ForeignKeyConstraint(['home_library_id'], ['library.id'], name=op.f('fk_patron_home_library_id_library')),
    sa.ForeignKeyConstraint(['local_library_id'], ['library.id'], name=op.f('fk_patron_local_library_id_library')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_patron'))
    )
    with op.batch_alter_table('patron', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_patron_last_activity_at'), ['last_activity_at'], unique=False)
        batch_op.create_index('uq_patron_local_national_id', ['national_id_hash', 'local_library_id'], unique=True, sqlite_where=sa.text('local_library_id IS NOT NULL'), postgresql_where=sa.text('local_library_id IS NOT NULL'))
        batch_op.create_index('uq_patron_national_id', ['national_id_hash'], unique=True, sqlite_where=sa.text('local_library_id IS NULL'), postgresql_where=sa.text('local_library_id IS NULL'))

    op.create_table('card',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('number', sa.String(length=32), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('library_id', sa.Integer(), nullable=False),
    sa.Column('patron_id', sa.Integer(), nullable=True),
    sa.Column('status', sa.String(length=8), nullable=False),
    sa.Column('issued_at', idp.registry.models.Timestamp(timezone=True), nullable=False),
    sa.Column('retired_at', idp.registry.models.Timestamp(timezone=True), nullable=True),
    sa.Column('retired_reason', sa.String(length=32), nullable=True),
    sa.CheckConstraint("kind IN ('digital', 'printed', 'local')", name=op.f('ck_card_kind')),
    sa.CheckConstraint("status IN ('active', 'retired')", name=op.f('ck_card_status')),
    sa.ForeignKeyConstraint(['library_id'], ['library.id'], name=op.f('fk_card_library_id_library')),
    sa.ForeignKeyConstraint(['patron_id'], ['patron.id'], name=op.f('fk_card_patron_id_patron'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_card')),
    sa.UniqueConstraint('number', name=op.f('uq_card_number'))
    )
    with op.batch_alter_table('card', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_card_patron_id'), ['patron_id'], unique=False)

    op.create_table('credential',
    sa.Column('patron_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('hash', sa.String(length=255), nullable=False),
    sa.Column('must_change', sa.Boolean(), nullable=False),
    sa.Column('updated_at', idp.registry.models.Timestamp(timezone=True), nullable=False),
    sa.CheckConstraint("kind IN ('password', 'pin')", name=op.f('ck_credential_kind')),
    sa.ForeignKeyConstraint(['patron_id'], ['patron.id'], name=op.f('fk_credential_patron_id_patron'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('patron_id', 'kind', name=op.f('pk_credential'))
    )
    op.create_table('guardianship',
    sa.Column('guardian_id', sa.Integer(), nullable=False),
    sa.Column('child_id', sa.Integer(), nullable=False),
    sa.Column('created_at', idp.registry.models.Timestamp(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['child_id'], ['patron.id'], name=op.f('fk_guardianship_child_id_patron'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['guardian_id'], ['patron.id'], name=op.f('fk_guardianship_guardian_id_patron'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('guardian_id', 'child_id', name=op.f('pk_guardianship'))
    )
    with op.batch_alter_table('guardianship', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_guardianship_child_id'), ['child_id'], unique=False)

    op.create_table('membership',
    sa.Column('patron_id', sa.Integer(), nullable=False),
    sa.Column('library_id', sa.Integer(), nullable=False),
    sa.Column('added_at', idp.registry.models.Timestamp(timezone=True), nullable=False),
    sa.Column('rules_accepted_at', idp.registry.models.Timestamp(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['library_id'], ['library.id'], name=op.f('fk_membership_library_id_library')),
    sa.ForeignKeyConstraint(['patron_id'], ['patron.id'], name=op.f('fk_membership_patron_id_patron'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('patron_id', 'library_id', name=op.f('pk_membership'))
    )
    with op.batch_alter_table('membership', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_membership_library_id'), ['library_id'], unique=False)

    op.create_table('notification',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('patron_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.Column('created_at', idp.registry.models.Timestamp(timezone=True), nullable=False),
    sa.Column('delivered_at', idp.registry.models.Timestamp(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['patron_id'], ['patron.id'], name=op.f('fk_notification_patron_id_patron'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_notification'))
    )
    with op.batch_alter_table('notification', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_notification_patron_id'), ['patron_id'], unique=False)



def _forbid_overlapping_series() -> None:
    """Two reservations can race; the database, not the application, decides who wins."""
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute("ALTER TABLE card_series ADD CONSTRAINT ex_card_series_no_overlap "
                   "EXCLUDE USING gist (int8range(first_number, last_number, '[]') WITH &&)")
    elif dialect == "sqlite":
        # SQLite runs one writer at a time, so a trigger that checks under that lock is enough.
        for event in ("INSERT", "UPDATE OF first_number, last_number"):
            name = "card_series_no_overlap_" + event.split()[0].lower()
            op.execute(f"""
                CREATE TRIGGER {name} BEFORE {event} ON card_series
                WHEN EXISTS (SELECT 1 FROM card_series
                             WHERE first_number <= NEW.last_number AND last_number >= NEW.first_number
                               AND id IS NOT NEW.id)
                BEGIN SELECT RAISE(ABORT, 'card series overlap'); END""")
    else:
        raise RuntimeError(f"the card-series overlap guard is not written for {dialect}")


def downgrade() -> None:
    with op.batch_alter_table('notification', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_notification_patron_id'))

    op.drop_table('notification')
    with op.batch_alter_table('membership', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_membership_library_id'))

    op.drop_table('membership')
    with op.batch_alter_table('guardianship', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_guardianship_child_id'))

    op.drop_table('guardianship')
    op.drop_table('credential')
    with op.batch_alter_table('card', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_card_patron_id'))

    op.drop_table('card')
    with op.batch_alter_table('patron', schema=None) as batch_op:
        batch_op.drop_index('uq_patron_national_id', sqlite_where=sa.text('local_library_id IS NULL'), postgresql_where=sa.text('local_library_id IS NULL'))
        batch_op.drop_index('uq_patron_local_national_id', sqlite_where=sa.text('local_library_id IS NOT NULL'), postgresql_where=sa.text('local_library_id IS NOT NULL'))
        batch_op.drop_index(batch_op.f('ix_patron_last_activity_at'))

    op.drop_table('patron')
    with op.batch_alter_table('card_series', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_card_series_library_id'))

    op.drop_table('card_series')
    op.drop_table('library')
    with op.batch_alter_table('audit_event', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_event_patron_id'))
        batch_op.drop_index(batch_op.f('ix_audit_event_at'))

    op.drop_table('audit_event')
