"""SAML service providers: relying parties known by entity id and described by their metadata.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""
from alembic import op
import sqlalchemy as sa
import idp.registry.models


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('relying_party', schema=None) as batch_op:
        batch_op.add_column(sa.Column('entity_id', sa.String(length=1024), nullable=True))
        batch_op.add_column(sa.Column('saml_metadata', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('metadata_updated_at', idp.registry.models.Timestamp(timezone=True),
                                      nullable=True))
        batch_op.add_column(sa.Column('name_id_formats', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('allow_unsolicited', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.create_unique_constraint(batch_op.f('uq_relying_party_entity_id'), ['entity_id'])
        batch_op.create_check_constraint(
            'saml_has_metadata', "protocol <> 'saml' OR (entity_id IS NOT NULL AND saml_metadata IS NOT NULL)")


def downgrade() -> None:
    with op.batch_alter_table('relying_party', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('ck_relying_party_saml_has_metadata'), type_='check')
        batch_op.drop_constraint(batch_op.f('uq_relying_party_entity_id'), type_='unique')
        batch_op.drop_column('allow_unsolicited')
        batch_op.drop_column('name_id_formats')
        batch_op.drop_column('metadata_updated_at')
        batch_op.drop_column('saml_metadata')
        batch_op.drop_column('entity_id')
