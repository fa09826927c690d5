"""Claim releases: which claims each partner received about a patron, and when (names, no values).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""
from alembic import op
import sqlalchemy as sa
import idp.registry.models


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('claim_release',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('patron_id', sa.Integer(), nullable=False),
    sa.Column('relying_party_id', sa.Integer(), nullable=False),
    sa.Column('claims', sa.JSON(), nullable=False),
    sa.Column('protocol', sa.String(length=8), nullable=False),
    sa.Column('released_at', idp.registry.models.Timestamp(timezone=True), nullable=False),
    sa.CheckConstraint("protocol IN ('oidc', 'saml', 'api')", name=op.f('ck_claim_release_protocol')),
    sa.ForeignKeyConstraint(['patron_id'], ['patron.id'], name=op.f('fk_claim_release_patron_id_patron'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['relying_party_id'], ['relying_party.id'], name=op.f('fk_claim_release_relying_party_id_relying_party')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_claim_release'))
    )
    with op.batch_alter_table('claim_release', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_claim_release_patron_id'), ['patron_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('claim_release', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_claim_release_patron_id'))

    op.drop_table('claim_release')
