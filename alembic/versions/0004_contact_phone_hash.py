"""Contacts keep the hash of their phone number, so dispatch looks up suppressions without parsing numbers

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 03:40:00
"""
import sqlalchemy as sa
from alembic import op


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Existing rows keep NULL: readers compute the hash of a contact that has none.
    with op.batch_alter_table('contacts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('phone_hash', sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('contacts', schema=None) as batch_op:
        batch_op.drop_column('phone_hash')
