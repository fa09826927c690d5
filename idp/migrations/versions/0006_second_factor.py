"""Second factor: TOTP authenticators (seed encrypted), single-use recovery codes (keyed hash), and
the librarian's password reset links (token digest).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23
"""
from alembic import op
import sqlalchemy as sa
import idp.registry.models


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('totp_credential',
    sa.Column('patron_id', sa.Integer(), nullable=False),
    sa.Column('secret_cipher', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', idp.registry.models.Timestamp(timezone=True), nullable=False),
    sa.Column('last_used_at', idp.registry.models.Timestamp(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['patron_id'], ['patron.id'], name=op.f('fk_totp_credential_patron_id_patron'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('patron_id', name=op.f('pk_totp_credential'))
    )
    op.create_table('recovery_code',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('patron_id', sa.Integer(), nullable=False),
    sa.Column('code_hash', sa.LargeBinary(length=32), nullable=False),
    sa.Column('created_at', idp.registry.models.Timestamp(timezone=True), nullable=False),
    sa.Column('used_at', idp.registry.models.Timestamp(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['patron_id'], ['patron.id'], name=op.f('fk_recovery_code_patron_id_patron'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_recovery_code'))
    )
    with op.batch_alter_table('recovery_code', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_recovery_code_patron_id'), ['patron_id'], unique=False)
    op.create_table('password_reset_token',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('patron_id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sa.LargeBinary(length=32), nullable=False),
    sa.Column('created_at', idp.registry.models.Timestamp(timezone=True), nullable=False),
    sa.Column('expires_at', idp.registry.models.Timestamp(timezone=True), nullable=False),
    sa.Column('used_at', idp.registry.models.Timestamp(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['patron_id'], ['patron.id'], name=op.f('fk_password_reset_token_patron_id_patron'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_password_reset_token')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_password_reset_token_token_hash'))
    )
    with op.batch_alter_table('password_reset_token', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_password_reset_token_patron_id'), ['patron_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('password_reset_token', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_password_reset_token_patron_id'))

    op.drop_table('password_reset_token')
    with op.batch_alter_table('recovery_code', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_recovery_code_patron_id'))

    op.drop_table('recovery_code')
    op.drop_table('totp_credential')
