"""background jobs: job runs, leases on the database's clock, a message's Message-ID fixed when queued

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07 04:20:00
"""
from alembic import op
import sqlalchemy as sa

import claims_core.infra.db


revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'background_jobs',
        sa.Column('name', sa.String(length=64), nullable=False),
        sa.Column('last_started_at', claims_core.infra.db.UTCDateTime(), nullable=True),
        sa.Column('last_finished_at', claims_core.infra.db.UTCDateTime(), nullable=True),
        sa.Column('last_success_at', claims_core.infra.db.UTCDateTime(), nullable=True),
        sa.Column('last_error', sa.Text(), server_default='', nullable=False),
        sa.Column('last_result', sa.String(length=500), server_default='', nullable=False),
        sa.Column('runs', sa.Integer(), server_default='0', nullable=False),
        sa.Column('failures', sa.Integer(), server_default='0', nullable=False),
        sa.PrimaryKeyConstraint('name', name=op.f('pk_background_jobs')),
    )
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('message_id', sa.String(length=255), server_default='',
                                      nullable=False))
    # daily digests go out at the owner's hour, in the store's time zone
    with op.batch_alter_table('store_settings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('digest_hour', sa.Integer(), server_default='8',
                                      nullable=False))
    # messages queued before this revision: one fixed Message-ID each from now on
    op.execute("UPDATE outbox SET message_id = '<outbox-' || CAST(id AS VARCHAR(20)) || "
               "'@claims.local>' WHERE message_id = ''")


def downgrade() -> None:
    with op.batch_alter_table('store_settings', schema=None) as batch_op:
        batch_op.drop_column('digest_hour')
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_column('message_id')
    op.drop_table('background_jobs')
