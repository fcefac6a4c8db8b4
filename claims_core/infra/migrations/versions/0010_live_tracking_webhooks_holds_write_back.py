"""live feeds: checkpoints and tracking per tracking number, webhook receipts, Shopify refunds,
claim holds, the Shopify write-back queue and its settings

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-29 13:47:19.456458
"""
from alembic import op
import sqlalchemy as sa
import claims_core.infra.db


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('checkpoints',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('tracking_number', sa.String(length=64), nullable=False),
    sa.Column('key', sa.String(length=32), nullable=False),
    sa.Column('at', claims_core.infra.db.UTCDateTime(), nullable=False),
    sa.Column('milestone', sa.String(length=24), nullable=False),
    sa.Column('sub_status', sa.String(length=64), nullable=False),
    sa.Column('message', sa.String(length=500), nullable=False),
    sa.Column('place', sa.String(length=200), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('received_at', claims_core.infra.db.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_checkpoints')),
    sa.UniqueConstraint('tracking_number', 'key', name='uq_checkpoints_tracking_key')
    )
    with op.batch_alter_table('checkpoints', schema=None) as batch_op:
        batch_op.create_index('ix_checkpoints_tracking_at', ['tracking_number', 'at'], unique=False)

    op.create_table('store_secrets',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.Column('updated_at', claims_core.infra.db.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_store_secrets'))
    )
    op.create_table('trackings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('tracking_number', sa.String(length=64), nullable=False),
    sa.Column('carrier', sa.String(length=64), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('expected_delivery_at', claims_core.infra.db.UTCDateTime(), nullable=True),
    sa.Column('expected_as_of', claims_core.infra.db.UTCDateTime(), nullable=True),
    sa.Column('pod_signed_by', sa.String(length=200), nullable=False),
    sa.Column('pod_photo_url', sa.String(length=1000), nullable=False),
    sa.Column('pod_location', sa.String(length=300), nullable=False),
    sa.Column('stopped_at', claims_core.infra.db.UTCDateTime(), nullable=True),
    sa.Column('updated_at', claims_core.infra.db.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_trackings')),
    sa.UniqueConstraint('tracking_number', name=op.f('uq_trackings_tracking_number'))
    )
    op.create_table('webhook_receipts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('delivery_id', sa.String(length=200), nullable=False),
    sa.Column('topic', sa.String(length=64), nullable=False),
    sa.Column('received_at', claims_core.infra.db.UTCDateTime(), nullable=False),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('subject', sa.String(length=64), nullable=False),
    sa.Column('detail', sa.Text(), nullable=False),
    sa.Column('payload', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_receipts')),
    sa.UniqueConstraint('source', 'delivery_id', name='uq_webhook_receipts_source_delivery')
    )
    with op.batch_alter_table('webhook_receipts', schema=None) as batch_op:
        batch_op.create_index('ix_webhook_receipts_received_at', ['received_at'], unique=False)
        batch_op.create_index('ix_webhook_receipts_waiting', ['outcome', 'subject'], unique=False)

    op.create_table('order_refunds',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('order_id', sa.Integer(), nullable=False),
    sa.Column('external_id', sa.String(length=64), nullable=False),
    sa.Column('amount_cents', sa.Integer(), nullable=False),
    sa.Column('created_at', claims_core.infra.db.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_order_refunds_order_id_orders')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_order_refunds')),
    sa.UniqueConstraint('order_id', 'external_id', name='uq_order_refunds_order_ext')
    )
    with op.batch_alter_table('order_refunds', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_order_refunds_order_id'), ['order_id'], unique=False)

    op.create_table('shopify_writes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('resolution_id', sa.Integer(), nullable=False),
    sa.Column('claim_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', claims_core.infra.db.UTCDateTime(), nullable=False),
    sa.Column('lease_until', claims_core.infra.db.UTCDateTime(), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=False),
    sa.Column('shopify_id', sa.String(length=200), nullable=False),
    sa.Column('created_at', claims_core.infra.db.UTCDateTime(), nullable=False),
    sa.Column('done_at', claims_core.infra.db.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['claim_id'], ['claims.id'], name=op.f('fk_shopify_writes_claim_id_claims')),
    sa.ForeignKeyConstraint(['resolution_id'], ['resolutions.id'], name=op.f('fk_shopify_writes_resolution_id_resolutions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_shopify_writes')),
    sa.UniqueConstraint('resolution_id', name=op.f('uq_shopify_writes_resolution_id'))
    )
    with op.batch_alter_table('shopify_writes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_shopify_writes_claim_id'), ['claim_id'], unique=False)
        batch_op.create_index('ix_shopify_writes_status_next', ['status', 'next_attempt_at'], unique=False)

    with op.batch_alter_table('claims', schema=None) as batch_op:
        batch_op.add_column(sa.Column('held_at', claims_core.infra.db.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('hold_reason', sa.Text(), server_default='', nullable=False))
    op.create_index('ix_claims_held', 'claims', ['held_at'], unique=False,
                    sqlite_where=sa.text('held_at IS NOT NULL'),
                    postgresql_where=sa.text('held_at IS NOT NULL'))

    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.add_column(sa.Column('risk_level', sa.String(length=8), server_default='', nullable=False))
        batch_op.add_column(sa.Column('refunded_cents', sa.Integer(), server_default='0', nullable=False))

    with op.batch_alter_table('shipments', schema=None) as batch_op:
        batch_op.add_column(sa.Column('milestone', sa.String(length=24), nullable=True))
        batch_op.add_column(sa.Column('expected_delivery_at', claims_core.infra.db.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('external_id', sa.String(length=64), nullable=True))

    with op.batch_alter_table('store_settings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('shopify_shop_domain', sa.String(length=255), server_default='', nullable=False))



def downgrade() -> None:
    with op.batch_alter_table('store_settings', schema=None) as batch_op:
        batch_op.drop_column('shopify_shop_domain')

    with op.batch_alter_table('shipments', schema=None) as batch_op:
        batch_op.drop_column('external_id')
        batch_op.drop_column('expected_delivery_at')
        batch_op.drop_column('milestone')

    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_column('refunded_cents')
        batch_op.drop_column('risk_level')

    op.drop_index('ix_claims_held', table_name='claims')
    with op.batch_alter_table('claims', schema=None) as batch_op:
        batch_op.drop_column('hold_reason')
        batch_op.drop_column('held_at')

    with op.batch_alter_table('shopify_writes', schema=None) as batch_op:
        batch_op.drop_index('ix_shopify_writes_status_next')
        batch_op.drop_index(batch_op.f('ix_shopify_writes_claim_id'))

    op.drop_table('shopify_writes')
    with op.batch_alter_table('order_refunds', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_order_refunds_order_id'))

    op.drop_table('order_refunds')
    with op.batch_alter_table('webhook_receipts', schema=None) as batch_op:
        batch_op.drop_index('ix_webhook_receipts_waiting')
        batch_op.drop_index('ix_webhook_receipts_received_at')

    op.drop_table('webhook_receipts')
    op.drop_table('trackings')
    op.drop_table('store_secrets')
    with op.batch_alter_table('checkpoints', schema=None) as batch_op:
        batch_op.drop_index('ix_checkpoints_tracking_at')

    op.drop_table('checkpoints')
