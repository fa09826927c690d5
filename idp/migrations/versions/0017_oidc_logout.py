"""OIDC single logout: a relying party may register a back-channel and a front-channel logout URI
(``idp rp add-oidc/update --backchannel-logout-uri/--frontchannel-logout-uri``; existing ones have
none), and back-channel logouts wait in a queue until delivered (idp.oidc.backchannel). A queued row
holds no token: the logout token is signed afresh at each attempt.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07
"""
from alembic import op
import sqlalchemy as sa
import idp.registry.models


revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('relying_party', schema=None) as batch_op:
        batch_op.add_column(sa.Column('backchannel_logout_uri', sa.String(length=2000), nullable=True))
        batch_op.add_column(sa.Column('frontchannel_logout_uri', sa.String(length=2000), nullable=True))
    op.create_table(
        'backchannel_logout',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('client_id', sa.String(length=64), nullable=False),
        sa.Column('sub', sa.String(length=255), nullable=False),
        sa.Column('sid', sa.String(length=255), nullable=False),
        sa.Column('created_at', idp.registry.models.Timestamp(timezone=True), nullable=False),
        sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
        sa.Column('next_attempt_at', idp.registry.models.Timestamp(timezone=True), nullable=False),
        sa.Column('last_error', sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_backchannel_logout')),
    )
    op.create_index(op.f('ix_backchannel_logout_next_attempt_at'), 'backchannel_logout', ['next_attempt_at'],
                    unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_backchannel_logout_next_attempt_at'), table_name='backchannel_logout')
    op.drop_table('backchannel_logout')
    with op.batch_alter_table('relying_party', schema=None) as batch_op:
        batch_op.drop_column('frontchannel_logout_uri')
        batch_op.drop_column('backchannel_logout_uri')
