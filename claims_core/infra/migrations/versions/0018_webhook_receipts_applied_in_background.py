"""webhooks acknowledged at once and applied in the background; tracking numbers registered with 17TRACK

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07 04:20:00
"""
from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401
import claims_core.infra.db


revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # receipts stored before this revision were applied when received: they are "done"
    with op.batch_alter_table('webhook_receipts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('status', sa.String(length=16), nullable=False,
                                      server_default='done'))
        batch_op.add_column(sa.Column('sequence_key', sa.String(length=80), nullable=False,
                                      server_default=''))
        batch_op.add_column(sa.Column('attempts', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('next_attempt_at', claims_core.infra.db.UTCDateTime(),
                                      nullable=True))
        batch_op.add_column(sa.Column('last_error', sa.Text(), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('applied_at', claims_core.infra.db.UTCDateTime(),
                                      nullable=True))
        batch_op.create_index('ix_webhook_receipts_status_next', ['status', 'next_attempt_at'],
                              unique=False)
        batch_op.create_check_constraint(op.f('ck_webhook_receipts_status'),
                                         "status IN ('pending','done','failed')")
    op.create_table('track17_registrations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('tracking_number', sa.String(length=64), nullable=False),
    sa.Column('carrier', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', claims_core.infra.db.UTCDateTime(), nullable=False),
    sa.Column('lease_until', claims_core.infra.db.UTCDateTime(), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=False),
    sa.Column('error_code', sa.BigInteger(), nullable=True),
    sa.Column('created_at', claims_core.infra.db.UTCDateTime(), nullable=False),
    sa.Column('registered_at', claims_core.infra.db.UTCDateTime(), nullable=True),
    sa.CheckConstraint("status IN ('pending','sending','registered','rejected','failed')",
                       name=op.f('ck_track17_registrations_status')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_track17_registrations')),
    sa.UniqueConstraint('tracking_number', name=op.f('uq_track17_registrations_tracking_number'))
    )
    with op.batch_alter_table('track17_registrations', schema=None) as batch_op:
        batch_op.create_index('ix_track17_registrations_status_next', ['status', 'next_attempt_at'],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table('track17_registrations', schema=None) as batch_op:
        batch_op.drop_index('ix_track17_registrations_status_next')
    op.drop_table('track17_registrations')
    with op.batch_alter_table('webhook_receipts', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_webhook_receipts_status'), type_='check')
        batch_op.drop_index('ix_webhook_receipts_status_next')
        batch_op.drop_column('applied_at')
        batch_op.drop_column('last_error')
        batch_op.drop_column('next_attempt_at')
        batch_op.drop_column('attempts')
        batch_op.drop_column('sequence_key')
        batch_op.drop_column('status')
