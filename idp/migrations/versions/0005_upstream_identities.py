"""Upstream identities: federations we are a SAML service provider to, and the federation
accounts linked to patrons (a keyed hash of the account's identifier, never the identifier).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""
from alembic import op
import sqlalchemy as sa
import idp.registry.models


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('federation',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=32), nullable=False),
    sa.Column('display_name', sa.String(length=100), nullable=False),
    sa.Column('entity_id', sa.String(length=1024), nullable=False),
    sa.Column('metadata_xml', sa.Text(), nullable=False),
    sa.Column('link_attribute', sa.String(length=64), nullable=False),
    sa.Column('national_id_attribute', sa.String(length=64), nullable=True),
    sa.Column('attribute_map', sa.JSON(), nullable=False),
    sa.Column('authn_contexts', sa.JSON(), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('created_at', idp.registry.models.Timestamp(timezone=True), nullable=False),
    sa.Column('updated_at', idp.registry.models.Timestamp(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_federation')),
    sa.UniqueConstraint('name', name=op.f('uq_federation_name'))
    )
    op.create_table('upstream_identity',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('federation_id', sa.Integer(), nullable=False),
    sa.Column('subject_hash', sa.LargeBinary(length=32), nullable=False),
    sa.Column('patron_id', sa.Integer(), nullable=False),
    sa.Column('linked_by', sa.String(length=16), nullable=False),
    sa.Column('linked_at', idp.registry.models.Timestamp(timezone=True), nullable=False),
    sa.Column('last_login_at', idp.registry.models.Timestamp(timezone=True), nullable=True),
    sa.CheckConstraint("linked_by IN ('national_id', 'one_time_code', 'operator')",
                       name=op.f('ck_upstream_identity_linked_by')),
    sa.ForeignKeyConstraint(['federation_id'], ['federation.id'],
                            name=op.f('fk_upstream_identity_federation_id_federation'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['patron_id'], ['patron.id'], name=op.f('fk_upstream_identity_patron_id_patron'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_upstream_identity')),
    sa.UniqueConstraint('federation_id', 'patron_id', name='uq_upstream_identity_patron'),
    sa.UniqueConstraint('federation_id', 'subject_hash', name='uq_upstream_identity_subject')
    )
    with op.batch_alter_table('upstream_identity', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_upstream_identity_patron_id'), ['patron_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('upstream_identity', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_upstream_identity_patron_id'))

    op.drop_table('upstream_identity')
    op.drop_table('federation')
