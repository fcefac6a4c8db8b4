"""the signed order link for the shop's own emails

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07 04:20:00
"""
from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401

import claims_core.infra.db


revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # the key of the signed order link (empty until first needed: the app makes one then);
    # whether the owner has been shown it (it is shown once); when it was last rotated
    with op.batch_alter_table('store_settings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('order_link_secret', sa.String(length=64), server_default='',
                                      nullable=False))
        batch_op.add_column(sa.Column('order_link_secret_shown', sa.Boolean(),
                                      server_default=sa.text('false'), nullable=False))
        batch_op.add_column(sa.Column('order_link_rotated_at', claims_core.infra.db.UTCDateTime(),
                                      nullable=True))
    # a typed signature given because the customer can't draw one (WCAG 2.5.7), recorded as such
    with op.batch_alter_table('claims', schema=None) as batch_op:
        batch_op.add_column(sa.Column('signature_cannot_draw', sa.Boolean(),
                                      server_default=sa.text('false'), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('claims', schema=None) as batch_op:
        batch_op.drop_column('signature_cannot_draw')
    with op.batch_alter_table('store_settings', schema=None) as batch_op:
        batch_op.drop_column('order_link_rotated_at')
        batch_op.drop_column('order_link_secret_shown')
        batch_op.drop_column('order_link_secret')
