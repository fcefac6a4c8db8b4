"""queue indexes: one per sort order, a queue index that holds every filtered column, carriers

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22 02:10:00
"""
from alembic import op


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('claims', schema=None) as batch_op:
        batch_op.drop_index('ix_claims_status_created')
        batch_op.drop_index('ix_claims_queue')
        batch_op.create_index('ix_claims_status_created',
                              ['status', 'created_at', 'id', 'issue_type', 'carrier', 'desired_resolution',
                               'category', 'claimed_cents', 'risk_level', 'assignee_id'], unique=False)
        batch_op.create_index('ix_claims_status_amount', ['status', 'claimed_cents', 'id'], unique=False)
        batch_op.create_index('ix_claims_status_risk', ['status', 'risk_score', 'id'], unique=False)
        batch_op.create_index('ix_claims_queue', ['status', 'issue_type', 'carrier', 'desired_resolution',
                                                  'created_at', 'category', 'claimed_cents', 'risk_level',
                                                  'assignee_id'], unique=False)
    with op.batch_alter_table('shipments', schema=None) as batch_op:
        batch_op.create_index('ix_shipments_carrier', ['carrier'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('shipments', schema=None) as batch_op:
        batch_op.drop_index('ix_shipments_carrier')
    with op.batch_alter_table('claims', schema=None) as batch_op:
        batch_op.drop_index('ix_claims_queue')
        batch_op.drop_index('ix_claims_status_risk')
        batch_op.drop_index('ix_claims_status_amount')
        batch_op.drop_index('ix_claims_status_created')
        batch_op.create_index('ix_claims_queue', ['status', 'issue_type', 'carrier', 'desired_resolution',
                                                  'created_at'], unique=False)
        batch_op.create_index('ix_claims_status_created', ['status', 'created_at'], unique=False)
