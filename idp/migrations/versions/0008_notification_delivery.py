"""Notifications are delivered: each records how it ended (outcome), how often sending was
tried and when it may be tried again, and may carry an encrypted address to use instead of the
patron's current one (the old address of a changed e-mail or phone); a partial index keeps the
waiting queue cheap to read.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""
from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

_PENDING = sa.text("outcome IS NULL")


def upgrade() -> None:
    with op.batch_alter_table('notification', schema=None) as batch_op:
        batch_op.add_column(sa.Column('outcome', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('attempts', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('retry_after', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('address_cipher', sa.LargeBinary(), nullable=True))
        batch_op.create_check_constraint(
            op.f('ck_notification_outcome'),
            "outcome IS NULL OR outcome IN ('email', 'sms', 'no_address', 'failed', 'expired')")
        batch_op.create_index('ix_notification_pending', ['id'], unique=False,
                              sqlite_where=_PENDING, postgresql_where=_PENDING)


def downgrade() -> None:
    with op.batch_alter_table('notification', schema=None) as batch_op:
        batch_op.drop_index('ix_notification_pending', sqlite_where=_PENDING, postgresql_where=_PENDING)
        batch_op.drop_constraint(op.f('ck_notification_outcome'), type_='check')
        batch_op.drop_column('address_cipher')
        batch_op.drop_column('retry_after')
        batch_op.drop_column('attempts')
        batch_op.drop_column('outcome')
