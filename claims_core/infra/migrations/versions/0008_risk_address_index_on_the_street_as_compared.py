"""risk: index orders on (zip, lower(street)), the way the address signal compares them

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-22 02:40:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_index('ix_orders_shipping_zip')
    op.create_index('ix_orders_zip_address', 'orders',
                    ['shipping_zip', sa.text('lower(shipping_address1)')], unique=False)


def downgrade() -> None:
    op.drop_index('ix_orders_zip_address', table_name='orders')
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.create_index('ix_orders_shipping_zip', ['shipping_zip'], unique=False)
