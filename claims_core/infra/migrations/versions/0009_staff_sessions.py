"""staff sessions: a server-side row per signed-in browser (the cookie holds its token)

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29 12:20:00
"""
from alembic import op
import sqlalchemy as sa

import claims_core.infra.db


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'staff_sessions',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('token_hash', sa.String(length=64), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('created_at', claims_core.infra.db.UTCDateTime(), nullable=False),
        sa.Column('last_seen_at', claims_core.infra.db.UTCDateTime(), nullable=False),
        sa.Column('expires_at', claims_core.infra.db.UTCDateTime(), nullable=False),
        sa.Column('client', sa.String(length=300), nullable=False),
        sa.ForeignKeyConstraint(['user_id'], ['staff_users.id'],
                                name=op.f('fk_staff_sessions_user_id_staff_users'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_staff_sessions')),
        sa.UniqueConstraint('token_hash', name=op.f('uq_staff_sessions_token_hash')),
    )
    op.create_index(op.f('ix_staff_sessions_user_id'), 'staff_sessions', ['user_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_staff_sessions_user_id'), table_name='staff_sessions')
    op.drop_table('staff_sessions')
