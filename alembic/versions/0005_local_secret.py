"""A local install keeps the secret it made for itself, so its links stay valid across restarts

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05 13:00:00
"""
import sqlalchemy as sa
from alembic import op

import outbound.db.types


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'local_secrets',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('value', sa.String(length=100), nullable=False),
        sa.Column('created_at', outbound.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )


def downgrade() -> None:
    op.drop_table('local_secrets')
