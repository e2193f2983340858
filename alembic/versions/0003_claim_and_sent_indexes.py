"""The claim index takes the message id after due_at; messages sent by tenant and channel; offer codes by contact

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30 23:22:37.795479
"""
from alembic import op


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_messages_due'))
        batch_op.create_index('ix_messages_due', ['status', 'due_at', 'id'], unique=False)
        batch_op.create_index('ix_messages_sent', ['tenant_id', 'channel', 'sent_at'], unique=False)

    with op.batch_alter_table('offer_codes', schema=None) as batch_op:
        batch_op.create_index('ix_offer_codes_contact', ['tenant_id', 'campaign', 'contact_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('offer_codes', schema=None) as batch_op:
        batch_op.drop_index('ix_offer_codes_contact')

    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_index('ix_messages_sent')
        batch_op.drop_index('ix_messages_due')
        batch_op.create_index(batch_op.f('ix_messages_due'), ['status', 'due_at'], unique=False)
