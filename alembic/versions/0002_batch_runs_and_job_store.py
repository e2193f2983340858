"""Batch campaign runs, and the table of APScheduler's job store (cron campaigns)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30 23:02:35.914252
"""
from alembic import op
import sqlalchemy as sa
import outbound.db.types


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('apscheduler_jobs',
    sa.Column('id', sa.Unicode(length=191), nullable=False),
    sa.Column('next_run_time', sa.Float(precision=25), nullable=True),
    sa.Column('job_state', sa.LargeBinary(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_apscheduler_jobs'))
    )
    with op.batch_alter_table('apscheduler_jobs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_apscheduler_jobs_next_run_time'), ['next_run_time'], unique=False)

    op.create_table('batch_runs',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('tenant_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('campaign', sa.String(length=100), nullable=False),
    sa.Column('fire_time', outbound.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('started_at', outbound.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('audience', sa.Integer(), nullable=False),
    sa.Column('enrolled', sa.Integer(), nullable=False),
    sa.Column('held_out', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_batch_runs_tenant_id_tenants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_batch_runs')),
    sa.UniqueConstraint('tenant_id', 'campaign', 'fire_time', name=op.f('uq_batch_runs_tenant_id'))
    )


def downgrade() -> None:
    op.drop_table('batch_runs')
    with op.batch_alter_table('apscheduler_jobs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_apscheduler_jobs_next_run_time'))

    op.drop_table('apscheduler_jobs')
