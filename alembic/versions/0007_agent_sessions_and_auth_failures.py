"""Agents' sessions are kept on the server (logout and disabling end them); failed logins and keys are counted

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05 14:00:00
"""
import sqlalchemy as sa
from alembic import op

import outbound.db.types


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'agent_sessions',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
        sa.Column('tenant_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
        sa.Column('agent_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
        sa.Column('token_hash', sa.String(length=64), nullable=False),
        sa.Column('started_at', outbound.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column('seen_at', outbound.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column('ended_at', outbound.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['agent_id'], ['agents.id']),
        sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('token_hash'),
    )
    op.create_index('ix_agent_sessions_agent_id', 'agent_sessions', ['agent_id'])
    op.create_table(
        'auth_failures',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
        sa.Column('scope', sa.String(length=16), nullable=False),
        sa.Column('key_hash', sa.String(length=64), nullable=False),
        sa.Column('at', outbound.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_auth_failures_scope_key_at', 'auth_failures', ['scope', 'key_hash', 'at'])


def downgrade() -> None:
    op.drop_index('ix_auth_failures_scope_key_at', table_name='auth_failures')
    op.drop_table('auth_failures')
    op.drop_index('ix_agent_sessions_agent_id', table_name='agent_sessions')
    op.drop_table('agent_sessions')
