"""disputes: chargebacks put claims on hold (an order's Shopify dispute, a claim's dispute hold)

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-07 04:20:00
"""
from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401

from claims_core.infra.db import UTCDateTime


revision = '0021'
down_revision = '0020'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.add_column(sa.Column('dispute_id', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('dispute_status', sa.String(length=16), server_default='',
                                      nullable=False))
        batch_op.add_column(sa.Column('dispute_kind', sa.String(length=16), server_default='',
                                      nullable=False))
        batch_op.add_column(sa.Column('dispute_reason', sa.String(length=64), server_default='',
                                      nullable=False))
        batch_op.add_column(sa.Column('dispute_amount_minor', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('dispute_evidence_due_at', UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('disputed_at', UTCDateTime(), nullable=True))
    with op.batch_alter_table('claims', schema=None) as batch_op:
        batch_op.add_column(sa.Column('dispute_held_at', UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('dispute_hold_reason', sa.Text(), server_default='',
                                      nullable=False))


def downgrade() -> None:
    # plain ALTER TABLE … DROP COLUMN: recreating `claims` or `orders` would trip the tables that
    # point at them (foreign keys)
    for c in ('dispute_hold_reason', 'dispute_held_at'):
        op.drop_column('claims', c)
    for c in ('disputed_at', 'dispute_evidence_due_at', 'dispute_amount_minor',
              'dispute_reason', 'dispute_kind', 'dispute_status', 'dispute_id'):
        op.drop_column('orders', c)
