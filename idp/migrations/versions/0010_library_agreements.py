"""The libraries' agreements with the national library: a contact e-mail, a compliance flag (every
existing library starts compliant), the date of the data processing agreement, and the library's
lending rules, kept as numbered versions (a patron's acceptance names one).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""
from alembic import op
import sqlalchemy as sa
import idp.registry.models


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('library', schema=None) as batch_op:
        batch_op.add_column(sa.Column('contact_email', sa.String(length=254), nullable=True))
        batch_op.add_column(sa.Column('compliant', sa.Boolean(), server_default=sa.true(), nullable=False))
        batch_op.add_column(sa.Column('dpa_signed', sa.Date(), nullable=True))
    op.create_table('lending_rules',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('library_id', sa.Integer(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('created_at', idp.registry.models.Timestamp(timezone=True), nullable=False),
    sa.CheckConstraint('version >= 1', name=op.f('ck_lending_rules_version')),
    sa.ForeignKeyConstraint(['library_id'], ['library.id'], name=op.f('fk_lending_rules_library_id_library')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_lending_rules')),
    sa.UniqueConstraint('library_id', 'version', name=op.f('uq_lending_rules_library_id'))
    )


def downgrade() -> None:
    op.drop_table('lending_rules')
    with op.batch_alter_table('library', schema=None) as batch_op:
        batch_op.drop_column('dpa_signed')
        batch_op.drop_column('compliant')
        batch_op.drop_column('contact_email')
