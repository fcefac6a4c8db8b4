"""recoveries: the insured value entered by staff (``recoveries.insured_minor``, already a column)
caps what can be claimed; EasyPost claim cancellations, an outbox like the filings
(``recovery_cancellations``: one per recovery, sent by the ``easypost_claims`` job)

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-07 07:20:00
"""
from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401

from claims_core.infra.db import UTCDateTime


revision = '0026'
down_revision = '0025'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "recovery_cancellations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("recovery_id", sa.Integer(), nullable=False),
        sa.Column("easypost_claim_id", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=False),
        sa.Column("lease_until", UTCDateTime(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("sent_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["recovery_id"], ["recoveries.id"],
                                name=op.f("fk_recovery_cancellations_recovery_id_recoveries")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recovery_cancellations")),
        sa.UniqueConstraint("recovery_id", name=op.f("uq_recovery_cancellations_recovery_id")),
    )
    op.create_index("ix_recovery_cancellations_status_next", "recovery_cancellations",
                    ["status", "next_attempt_at"])


def downgrade() -> None:
    op.drop_index("ix_recovery_cancellations_status_next", table_name="recovery_cancellations")
    op.drop_table("recovery_cancellations")
