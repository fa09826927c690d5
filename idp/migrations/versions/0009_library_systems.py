"""Library systems: each library's own system (Bibliofil, Quria, Koha...) is an OAuth 2.0 client of
our provider, serving one library, authenticating with a JWKS (inline or by https URL) or a client
secret (stored as its SHA-256), optionally only from listed networks.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""
from alembic import op
import sqlalchemy as sa
import idp.registry.models


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('library_system',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('client_id', sa.String(length=64), nullable=False),
    sa.Column('library_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('jwks', sa.Text(), nullable=True),
    sa.Column('jwks_uri', sa.String(length=2000), nullable=True),
    sa.Column('secret_hash', sa.LargeBinary(length=32), nullable=True),
    sa.Column('allowed_ips', sa.JSON(), nullable=False),
    sa.Column('disabled', sa.Boolean(), nullable=False),
    sa.Column('created_at', idp.registry.models.Timestamp(timezone=True), nullable=False),
    sa.Column('updated_at', idp.registry.models.Timestamp(timezone=True), nullable=False),
    sa.CheckConstraint('jwks IS NULL OR jwks_uri IS NULL', name=op.f('ck_library_system_one_jwks')),
    sa.CheckConstraint('(secret_hash IS NULL) <> (jwks IS NULL AND jwks_uri IS NULL)', name=op.f('ck_library_system_one_credential')),
    sa.ForeignKeyConstraint(['library_id'], ['library.id'], name=op.f('fk_library_system_library_id_library')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_library_system')),
    sa.UniqueConstraint('client_id', name=op.f('uq_library_system_client_id'))
    )
    with op.batch_alter_table('library_system', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_library_system_library_id'), ['library_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('library_system', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_library_system_library_id'))
    op.drop_table('library_system')
