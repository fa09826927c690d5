"""Relying parties: the OIDC (later SAML) partners the national library lets log patrons in.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""
from alembic import op
import sqlalchemy as sa
import idp.registry.models


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('relying_party',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('client_id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('protocol', sa.String(length=8), nullable=False),
    sa.Column('secret_hash', sa.LargeBinary(length=32), nullable=True),
    sa.Column('redirect_uris', sa.JSON(), nullable=False),
    sa.Column('public', sa.Boolean(), nullable=False),
    sa.Column('min_acr', sa.String(length=32), nullable=False),
    sa.Column('pin_allowed', sa.Boolean(), nullable=False),
    sa.Column('claims', sa.JSON(), nullable=False),
    sa.Column('subject_type', sa.String(length=8), nullable=False),
    sa.Column('dpa_signed', sa.Date(), nullable=True),
    sa.Column('disabled', sa.Boolean(), nullable=False),
    sa.Column('created_at', idp.registry.models.Timestamp(timezone=True), nullable=False),
    sa.Column('secret_rotated_at', idp.registry.models.Timestamp(timezone=True), nullable=True),
    sa.CheckConstraint("min_acr <> 'pin' OR pin_allowed", name=op.f('ck_relying_party_pin_needs_pin_allowed')),
    sa.CheckConstraint("min_acr IN ('pin', 'password', 'mfa', 'idporten-loa-substantial', 'idporten-loa-high')", name=op.f('ck_relying_party_min_acr')),
    sa.CheckConstraint("protocol <> 'oidc' OR public = (secret_hash IS NULL)", name=op.f('ck_relying_party_secret_iff_confidential')),
    sa.CheckConstraint("protocol IN ('oidc', 'saml')", name=op.f('ck_relying_party_protocol')),
    sa.CheckConstraint("subject_type IN ('pairwise', 'public')", name=op.f('ck_relying_party_subject_type')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_relying_party')),
    sa.UniqueConstraint('client_id', name=op.f('uq_relying_party_client_id'))
    )


def downgrade() -> None:
    op.drop_table('relying_party')
