"""privacy: retention settings, Shopify compliance requests, the privacy notice

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-07 04:55:00
"""
from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401

from claims_core.infra.db import UTCDateTime


revision = '0023'
down_revision = '0022'
branch_labels = None
depends_on = None

RETENTION = (("retain_photos_months", "24"), ("retain_webhook_days", "30"),
             ("retain_outbox_days", "90"), ("retain_draft_days", "7"),
             ("retain_unmatched_mail_days", "30"))


def upgrade() -> None:
    with op.batch_alter_table("store_settings") as b:
        for name, default in RETENTION:
            b.add_column(sa.Column(name, sa.Integer(), nullable=False, server_default=default))
        b.add_column(sa.Column("privacy_texts", sa.Text(), nullable=False, server_default="{}"))
    with op.batch_alter_table("evidence") as b:
        b.add_column(sa.Column("removed_at", UTCDateTime(), nullable=True))
    with op.batch_alter_table("claims") as b:
        b.add_column(sa.Column("signature_removed_at", UTCDateTime(), nullable=True))
    op.create_table(
        "privacy_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("request_key", sa.String(length=64), nullable=False),
        sa.Column("shopify_request_id", sa.String(length=64), nullable=False),
        sa.Column("shop_domain", sa.String(length=255), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("shopify_customer_id", sa.String(length=64), nullable=False),
        sa.Column("order_numbers", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.Column("due_at", UTCDateTime(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("export_zip", sa.LargeBinary(), nullable=True),
        sa.Column("export_ready_at", UTCDateTime(), nullable=True),
        sa.Column("done_at", UTCDateTime(), nullable=True),
        sa.CheckConstraint("status IN ('pending','waiting','done','failed')",
                           name=op.f("ck_privacy_requests_status")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_privacy_requests")),
        sa.UniqueConstraint("request_key", name=op.f("uq_privacy_requests_request_key")),
    )
    op.create_index("ix_privacy_requests_status_next", "privacy_requests",
                    ["status", "next_attempt_at"])


def downgrade() -> None:
    op.drop_index("ix_privacy_requests_status_next", table_name="privacy_requests")
    op.drop_table("privacy_requests")
    # a plain ALTER TABLE … DROP COLUMN: recreating `claims` would trip the tables that point at it
    op.drop_column("claims", "signature_removed_at")
    with op.batch_alter_table("evidence") as b:
        b.drop_column("removed_at")
    with op.batch_alter_table("store_settings") as b:
        b.drop_column("privacy_texts")
        for name, _default in reversed(RETENTION):
            b.drop_column(name)
