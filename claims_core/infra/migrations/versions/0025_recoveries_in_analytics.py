"""recoveries in analytics: the recoveries roll-up, and what came back per protected order
(``rollup_orders.recovered``); ``migrate.upgrade`` rebuilds the roll-ups right after

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-07 05:50:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0025'
down_revision = '0024'
branch_labels = None
depends_on = None

MEASURES = ('recoveries', 'paid_out', 'claimable', 'filed', 'recovered', 'rejected',
            'written_off', 'lost_deadline', 'lost_deadline_cents')


def upgrade() -> None:
    op.create_table(
        'rollup_recoveries',
        sa.Column('day', sa.Date(), nullable=False),
        sa.Column('carrier', sa.String(length=64), nullable=False),
        sa.Column('country', sa.String(length=2), nullable=False),
        sa.Column('issue_type', sa.String(length=32), nullable=False),
        *(sa.Column(m, sa.BigInteger(), server_default='0', nullable=False) for m in MEASURES),
        sa.PrimaryKeyConstraint('day', 'carrier', 'country', 'issue_type', name='pk_rollup_recoveries'))
    with op.batch_alter_table('rollup_orders') as b:
        b.add_column(sa.Column('recovered', sa.BigInteger(), server_default='0', nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('rollup_orders') as b:
        b.drop_column('recovered')
    op.drop_table('rollup_recoveries')
