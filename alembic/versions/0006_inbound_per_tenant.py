"""An inbound SMS is kept once per tenant it is for: an opt-out to the shared number is every sending tenant's

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-08 10:00:00
"""
from alembic import op


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Twilio's message id was unique on its own; an SMS to the shared number may now be stored for each
    # tenant that sends from it, so it is unique per tenant, and still found by its id alone.
    with op.batch_alter_table('inbound_messages', schema=None) as batch_op:
        batch_op.drop_constraint('uq_inbound_messages_provider_id', type_='unique')
        batch_op.create_unique_constraint(batch_op.f('uq_inbound_messages_tenant_id'), ['tenant_id', 'provider_id'])
        batch_op.create_index('ix_inbound_messages_provider', ['provider_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('inbound_messages', schema=None) as batch_op:
        batch_op.drop_index('ix_inbound_messages_provider')
        batch_op.drop_constraint(batch_op.f('uq_inbound_messages_tenant_id'), type_='unique')
        batch_op.create_unique_constraint(batch_op.f('uq_inbound_messages_provider_id'), ['provider_id'])
