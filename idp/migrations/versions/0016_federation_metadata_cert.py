"""The certificate a federation's metadata must be signed with (PEM; ``idp federation add/update
--metadata-cert``). Existing federations have none (null): they keep working, with a warning.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07
"""
from alembic import op
import sqlalchemy as sa


revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('federation', schema=None) as batch_op:
        batch_op.add_column(sa.Column('metadata_cert', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('federation', schema=None) as batch_op:
        batch_op.drop_column('metadata_cert')
