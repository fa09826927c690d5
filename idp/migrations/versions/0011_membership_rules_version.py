"""The version of a library's lending rules a patron accepted (membership.rules_version), and when a
patron's first secret was first replaced by one of their own (credential.first_changed_at).

Existing acceptances keep a NULL version (which text was shown is not known). A password or PIN
stored without the must-change flag and written after the account was created has been changed since
registration: it gets that write's time, the best the register knows; the rest stay NULL.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07
"""
from alembic import op
import sqlalchemy as sa
import idp.registry.models


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('membership', schema=None) as batch_op:
        batch_op.add_column(sa.Column('rules_version', sa.Integer(), nullable=True))
    with op.batch_alter_table('credential', schema=None) as batch_op:
        batch_op.add_column(sa.Column('first_changed_at', idp.registry.models.Timestamp(timezone=True),
                                      nullable=True))
    credential = sa.table('credential', sa.column('patron_id'), sa.column('must_change'),
                          sa.column('updated_at'), sa.column('first_changed_at'))
    patron = sa.table('patron', sa.column('id'), sa.column('created_at'))
    created = sa.select(patron.c.created_at).where(patron.c.id == credential.c.patron_id).scalar_subquery()
    op.execute(credential.update()
               .where(sa.not_(credential.c.must_change), credential.c.updated_at > created)
               .values(first_changed_at=credential.c.updated_at))


def downgrade() -> None:
    with op.batch_alter_table('credential', schema=None) as batch_op:
        batch_op.drop_column('first_changed_at')
    with op.batch_alter_table('membership', schema=None) as batch_op:
        batch_op.drop_column('rules_version')
