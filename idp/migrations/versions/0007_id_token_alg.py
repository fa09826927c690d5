"""Relying parties choose how their id_tokens are signed (OIDC id_token_signed_response_alg):
RS256, which every client supports and all had so far, or ES256 (smaller, much cheaper to sign).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""
from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('relying_party', schema=None) as batch_op:
        batch_op.add_column(sa.Column('id_token_alg', sa.String(length=8), server_default='RS256', nullable=False))
        batch_op.create_check_constraint(op.f('ck_relying_party_id_token_alg'), "id_token_alg IN ('ES256', 'RS256')")


def downgrade() -> None:
    with op.batch_alter_table('relying_party', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_relying_party_id_token_alg'), type_='check')
        batch_op.drop_column('id_token_alg')
