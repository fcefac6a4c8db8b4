"""analytics roll-ups (filled by ``migrate.upgrade`` right after, from the rows)

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-29 16:50:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None

ROLLUPS_FROM = '0013'  # ``migrate.upgrade`` rebuilds the roll-ups when it crosses this revision


def _measures(*names):
    return [sa.Column(n, sa.BigInteger(), server_default='0', nullable=False) for n in names]


def _dim(name, length=100):
    return sa.Column(name, sa.String(length=length), nullable=False)


def _table(name, keys, measures):
    op.create_table(name, *keys, *_measures(*measures),
                    sa.PrimaryKeyConstraint(*(k.name for k in keys), name=f'pk_{name}'))


def upgrade() -> None:
    day = lambda: sa.Column('day', sa.Date(), nullable=False)  # noqa: E731
    _table('rollup_shipments',
           [day(), _dim('carrier', 64), _dim('country', 2), _dim('province'), _dim('method'),
            _dim('issue_type', 32)],
           ('shipments', 'orders', 'claims'))
    _table('rollup_units', [day(), _dim('carrier', 64), _dim('country', 2), _dim('sku'),
                            _dim('issue_type', 32)],
           ('shipped', 'claimed'))
    _table('rollup_claims', [day(), _dim('carrier', 64), _dim('country', 2), _dim('issue_type', 32)],
           ('filed', 'approved', 'denied', 'filed_granted', 'filed_denied', 'filed_waiting'))
    _table('rollup_durations',
           [day(), _dim('carrier', 64), _dim('country', 2), _dim('issue_type', 32), _dim('kind', 16),
            sa.Column('bucket_s', sa.BigInteger(), nullable=False)],
           ('claims',))
    _table('rollup_payouts', [day(), _dim('carrier', 64), _dim('country', 2), _dim('issue_type', 32)],
           ('refunds', 'store_credit', 'reshipments'))
    _table('rollup_orders',
           [day(), sa.Column('has_shipment', sa.Integer(), nullable=False), _dim('carrier', 64),
            _dim('country', 2), _dim('province'), _dim('value_band', 32)],
           ('fees', 'protected_orders', 'protected_fees', 'protected_value', 'paid_claims',
            'refunds', 'store_credit', 'reshipments', 'reshipped'))
    op.create_table('rollup_generation',
                    sa.Column('id', sa.Integer(), nullable=False),
                    sa.Column('generation', sa.BigInteger(), server_default='0', nullable=False),
                    sa.PrimaryKeyConstraint('id', name='pk_rollup_generation'))


def downgrade() -> None:
    for name in ('rollup_generation', 'rollup_orders', 'rollup_payouts', 'rollup_durations', 'rollup_claims',
                 'rollup_units', 'rollup_shipments'):
        op.drop_table(name)
