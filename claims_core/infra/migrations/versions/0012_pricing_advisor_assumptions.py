"""pricing advisor assumptions; the newest Shopify order update applied

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-29 14:31:35.602573
"""
from alembic import op
import sqlalchemy as sa

import claims_core.infra.db


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.add_column(sa.Column('source_updated_at', claims_core.infra.db.UTCDateTime(),
                                      nullable=True))

    with op.batch_alter_table('store_settings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('target_loss_ratio_pct', sa.Integer(), server_default='60', nullable=False))
        batch_op.add_column(sa.Column('credit_cost_pct', sa.Integer(), server_default='60', nullable=False))
        batch_op.add_column(sa.Column('reship_cost_pct', sa.Integer(), server_default='45', nullable=False))
        batch_op.add_column(sa.Column('reship_shipping_cents', sa.Integer(), server_default='800', nullable=False))




def downgrade() -> None:
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_column('source_updated_at')

    with op.batch_alter_table('store_settings', schema=None) as batch_op:
        batch_op.drop_column('reship_shipping_cents')
        batch_op.drop_column('reship_cost_pct')
        batch_op.drop_column('credit_cost_pct')
        batch_op.drop_column('target_loss_ratio_pct')


