"""email replies: inbound mail, reply tokens, unmatched mail

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07 04:20:00
"""
import secrets
from datetime import datetime, timezone

from alembic import op
import sqlalchemy as sa
import claims_core.infra.db


revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


REPLY_KEY = "reply_token_key"  # services/mail_tokens.py


def upgrade() -> None:
    op.create_table('inbound_mail',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('message_id', sa.String(length=500), nullable=False),
    sa.Column('received_at', claims_core.infra.db.UTCDateTime(), nullable=False),
    sa.Column('from_addr', sa.String(length=254), nullable=False),
    sa.Column('subject', sa.String(length=300), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.String(length=32), nullable=False),
    sa.Column('claim_id', sa.Integer(), nullable=True),
    sa.Column('body_text', sa.Text(), nullable=False),
    sa.Column('raw', sa.LargeBinary(), nullable=True),
    sa.Column('handled_by', sa.String(length=100), nullable=False),
    sa.Column('handled_at', claims_core.infra.db.UTCDateTime(), nullable=True),
    sa.CheckConstraint("status IN ('attached','unmatched','ignored','discarded')",
                       name=op.f('ck_inbound_mail_status')),
    sa.ForeignKeyConstraint(['claim_id'], ['claims.id'], name=op.f('fk_inbound_mail_claim_id_claims')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_inbound_mail')),
    sa.UniqueConstraint('message_id', name=op.f('uq_inbound_mail_message_id'))
    )
    op.create_index(op.f('ix_inbound_mail_claim_id'), 'inbound_mail', ['claim_id'], unique=False)
    op.create_index('ix_inbound_mail_status_received', 'inbound_mail', ['status', 'received_at'],
                    unique=False)
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('reply_to', sa.String(length=254), server_default='',
                                      nullable=False))
    # the server's key for signing reply addresses (never shown; replacing it retires old ones)
    store_secrets = sa.table('store_secrets', sa.column('name', sa.String()),
                             sa.column('value', sa.Text()),
                             sa.column('updated_at', claims_core.infra.db.UTCDateTime()))
    op.bulk_insert(store_secrets, [{"name": REPLY_KEY, "value": secrets.token_hex(32),
                                    "updated_at": datetime.now(timezone.utc)}])


def downgrade() -> None:
    op.execute(sa.text("DELETE FROM store_secrets WHERE name = :n").bindparams(n=REPLY_KEY))
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_column('reply_to')
    op.drop_index('ix_inbound_mail_status_received', table_name='inbound_mail')
    op.drop_index(op.f('ix_inbound_mail_claim_id'), table_name='inbound_mail')
    op.drop_table('inbound_mail')
