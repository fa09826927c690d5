"""Loan bans per library, and the library systems' change feed.

The national ``patron.loan_ban`` flag becomes a ban of the patron's home library (a row of
``loan_ban``), then the column goes; downgrading sets the flag again for a patron with any ban.
``change_event`` holds what changed for each library's patrons (ids and a kind), kept 90 days.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07
"""
from datetime import UTC, datetime

from alembic import op
import sqlalchemy as sa
import idp.registry.models


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None

_patron = sa.table('patron', sa.column('id', sa.Integer()), sa.column('home_library_id', sa.Integer()),
                   sa.column('loan_ban', sa.Boolean()))
_ban = sa.table('loan_ban', sa.column('patron_id', sa.Integer()), sa.column('library_id', sa.Integer()),
                sa.column('set_at', idp.registry.models.Timestamp()), sa.column('reason', sa.String()))


def upgrade() -> None:
    op.create_table('loan_ban',
    sa.Column('patron_id', sa.Integer(), nullable=False),
    sa.Column('library_id', sa.Integer(), nullable=False),
    sa.Column('set_at', idp.registry.models.Timestamp(timezone=True), nullable=False),
    sa.Column('reason', sa.String(length=200), nullable=True),
    sa.ForeignKeyConstraint(['library_id'], ['library.id'], name=op.f('fk_loan_ban_library_id_library')),
    sa.ForeignKeyConstraint(['patron_id'], ['patron.id'], name=op.f('fk_loan_ban_patron_id_patron'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('patron_id', 'library_id', name=op.f('pk_loan_ban'))
    )
    with op.batch_alter_table('loan_ban', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_loan_ban_library_id'), ['library_id'], unique=False)

    # Each national flag becomes a ban of the patron's home library.
    now = sa.literal(datetime.now(UTC), idp.registry.models.Timestamp())
    op.execute(_ban.insert().from_select(
        ['patron_id', 'library_id', 'set_at', 'reason'],
        sa.select(_patron.c.id, _patron.c.home_library_id, now, sa.null()).where(_patron.c.loan_ban == sa.true())))
    # Not in batch mode: on SQLite that copies the table and drops the old one, and with foreign keys on,
    # dropping it deletes every row that cascades from a patron (memberships, credentials, the bans above).
    # A plain column without index or constraint is dropped in place (SQLite 3.35 and later).
    op.drop_column('patron', 'loan_ban')

    op.create_table('change_event',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('txid', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('library_id', sa.Integer(), nullable=False),
    sa.Column('patron_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('at', idp.registry.models.Timestamp(timezone=True), nullable=False),
    sa.CheckConstraint("kind IN ('contact_changed', 'status_changed', 'left_library', 'deleted', 'card_replaced', "
                       "'loan_ban_set', 'loan_ban_cleared')", name=op.f('ck_change_event_kind')),
    sa.ForeignKeyConstraint(['library_id'], ['library.id'], name=op.f('fk_change_event_library_id_library')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_change_event')),
    sqlite_autoincrement=True
    )
    with op.batch_alter_table('change_event', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_change_event_at'), ['at'], unique=False)
        batch_op.create_index('ix_change_event_feed', ['library_id', 'txid', 'id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('change_event', schema=None) as batch_op:
        batch_op.drop_index('ix_change_event_feed')
        batch_op.drop_index(batch_op.f('ix_change_event_at'))
    op.drop_table('change_event')

    # In place, as in upgrade(); the server default fills existing rows and stays (harmless).
    op.add_column('patron', sa.Column('loan_ban', sa.Boolean(), server_default=sa.false(), nullable=False))
    # The national flag again: set for a patron banned by any library.
    op.execute(_patron.update().values(loan_ban=True)
               .where(sa.exists().where(_ban.c.patron_id == _patron.c.id)))

    with op.batch_alter_table('loan_ban', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_loan_ban_library_id'))
    op.drop_table('loan_ban')
