"""Deadlines for the libraries' data processing agreements: each library may get a deadline and
counts the reminders queued since it passed; a notification may go to a library (its contact
address) instead of a patron, exactly one of the two.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07
"""
from alembic import op
import sqlalchemy as sa


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None

_ONE_RECIPIENT = "(patron_id IS NULL) <> (library_id IS NULL)"


def upgrade() -> None:
    with op.batch_alter_table('library', schema=None) as batch_op:
        batch_op.add_column(sa.Column('dpa_deadline', sa.Date(), nullable=True))
        batch_op.add_column(sa.Column('dpa_reminders_sent', sa.Integer(), server_default='0', nullable=False))
    with op.batch_alter_table('notification', schema=None) as batch_op:
        batch_op.alter_column('patron_id', existing_type=sa.Integer(), nullable=True)
        batch_op.add_column(sa.Column('library_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(op.f('fk_notification_library_id_library'), 'library', ['library_id'], ['id'],
                                    ondelete='CASCADE')
        batch_op.create_check_constraint(op.f('ck_notification_one_recipient'), _ONE_RECIPIENT)


def downgrade() -> None:
    # A notice to a library has no place in the older schema (every notice had a patron).
    op.execute("DELETE FROM notification WHERE patron_id IS NULL")
    with op.batch_alter_table('notification', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_notification_one_recipient'), type_='check')
        batch_op.drop_constraint(op.f('fk_notification_library_id_library'), type_='foreignkey')
        batch_op.drop_column('library_id')
        batch_op.alter_column('patron_id', existing_type=sa.Integer(), nullable=False)
    # Plain ALTER TABLE, not a batch: on SQLite a batch copies the table and drops the old one, which
    # the foreign keys of every patron, card and series refuse while the register holds any.
    op.drop_column('library', 'dpa_reminders_sent')
    op.drop_column('library', 'dpa_deadline')
