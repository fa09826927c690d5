"""A library system's own limit on register API calls (flask-limiter syntax), where the default
IDP_API_LIMIT_PER_SYSTEM does not fit it; existing systems keep the default (null).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07
"""
from alembic import op
import sqlalchemy as sa


revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('library_system', schema=None) as batch_op:
        batch_op.add_column(sa.Column('rate_limit', sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('library_system', schema=None) as batch_op:
        batch_op.drop_column('rate_limit')
