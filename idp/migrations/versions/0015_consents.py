"""Consents move from the short-lived state store into the register: one row per patron and
service (OIDC relying party or SAML SP), deleted with either. The consents Redis holds are carried
over by `idp db upgrade` after this revision (idp.registry.consents.carry_over_state_consents): a
migration has no state store to read.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07
"""
from alembic import op
import sqlalchemy as sa
import idp.registry.models


revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('consent',
    sa.Column('patron_id', sa.Integer(), nullable=False),
    sa.Column('relying_party_id', sa.Integer(), nullable=False),
    sa.Column('protocol', sa.String(length=8), nullable=False),
    sa.Column('claims', sa.JSON(), nullable=False),
    sa.Column('given_at', idp.registry.models.Timestamp(timezone=True), nullable=False),
    sa.Column('updated_at', idp.registry.models.Timestamp(timezone=True), nullable=False),
    sa.CheckConstraint("protocol IN ('oidc', 'saml')", name=op.f('ck_consent_protocol')),
    sa.ForeignKeyConstraint(['patron_id'], ['patron.id'], name=op.f('fk_consent_patron_id_patron'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['relying_party_id'], ['relying_party.id'], name=op.f('fk_consent_relying_party_id_relying_party'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('patron_id', 'relying_party_id', name=op.f('pk_consent'))
    )
    with op.batch_alter_table('consent', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_consent_relying_party_id'), ['relying_party_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('consent', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_consent_relying_party_id'))

    op.drop_table('consent')
