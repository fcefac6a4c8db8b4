"""the customer's language: claims remember it; the store's default language and texts per
language

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-29 17:10:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('claims', schema=None) as batch_op:
        batch_op.add_column(sa.Column('language', sa.String(length=8), server_default='en',
                                      nullable=False))
    with op.batch_alter_table('store_settings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('default_language', sa.String(length=8), server_default='en',
                                      nullable=False))
        batch_op.add_column(sa.Column('texts', sa.Text(), server_default='{}', nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('store_settings', schema=None) as batch_op:
        batch_op.drop_column('texts')
        batch_op.drop_column('default_language')
    with op.batch_alter_table('claims', schema=None) as batch_op:
        batch_op.drop_column('language')
