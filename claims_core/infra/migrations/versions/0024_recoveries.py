"""recoveries: carrier and insurer claims, their events and money

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-07 04:55:00
"""
from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401

from claims_core.infra.db import UTCDateTime


revision = '0024'
down_revision = '0023'
branch_labels = None
depends_on = None

STATES = ("to_file", "filed", "needs_action", "approved", "partly_approved", "rejected", "paid",
          "cancelled", "written_off")


def upgrade() -> None:
    with op.batch_alter_table("store_settings") as b:
        b.add_column(sa.Column("recovery_carriers", sa.Text(), nullable=False, server_default=""))
        b.add_column(sa.Column("recovery_issue_types", sa.Text(), nullable=False,
                               server_default=""))
        b.add_column(sa.Column("recovery_min_cents", sa.Integer(), nullable=False,
                               server_default="0"))
        b.add_column(sa.Column("recovery_easypost_off", sa.Text(), nullable=False,
                               server_default=""))
    op.create_table(
        "recoveries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("claim_id", sa.Integer(), nullable=False),
        sa.Column("shipment_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("carrier", sa.String(length=64), nullable=False),
        sa.Column("carrier_key", sa.String(length=16), nullable=False),
        sa.Column("issue_type", sa.String(length=32), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("paid_out_cents", sa.Integer(), nullable=False),
        sa.Column("liability_cents", sa.Integer(), nullable=True),
        sa.Column("insured_minor", sa.Integer(), nullable=True),
        sa.Column("claimable_cents", sa.Integer(), nullable=False),
        sa.Column("approved_cents", sa.Integer(), nullable=True),
        sa.Column("recovered_cents", sa.Integer(), nullable=False),
        sa.Column("deadline", sa.Date(), nullable=True),
        sa.Column("carrier_claim_number", sa.String(length=100), nullable=False,
                  server_default=""),
        sa.Column("easypost_claim_id", sa.String(length=64), nullable=True),
        sa.Column("carrier_message", sa.Text(), nullable=False, server_default=""),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("filed_at", UTCDateTime(), nullable=True),
        sa.CheckConstraint("state IN (" + ", ".join(f"'{x}'" for x in STATES) + ")",
                           name=op.f("ck_recoveries_state")),
        sa.CheckConstraint("paid_out_cents >= 0 AND claimable_cents >= 0 AND recovered_cents >= 0",
                           name=op.f("ck_recoveries_amounts")),
        sa.ForeignKeyConstraint(["claim_id"], ["claims.id"],
                                name=op.f("fk_recoveries_claim_id_claims")),
        sa.ForeignKeyConstraint(["shipment_id"], ["shipments.id"],
                                name=op.f("fk_recoveries_shipment_id_shipments")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recoveries")),
        sa.UniqueConstraint("claim_id", "shipment_id", name="uq_recoveries_claim_shipment"),
    )
    op.create_index("ix_recoveries_state_deadline", "recoveries", ["state", "deadline"])
    op.create_table(
        "recovery_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("recovery_id", sa.Integer(), nullable=False),
        sa.Column("claim_id", sa.Integer(), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("from_state", sa.String(length=16), nullable=True),
        sa.Column("to_state", sa.String(length=16), nullable=True),
        sa.Column("details", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["recovery_id"], ["recoveries.id"],
                                name=op.f("fk_recovery_events_recovery_id_recoveries")),
        sa.ForeignKeyConstraint(["claim_id"], ["claims.id"],
                                name=op.f("fk_recovery_events_claim_id_claims")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recovery_events")),
    )
    op.create_index(op.f("ix_recovery_events_recovery_id"), "recovery_events", ["recovery_id"])
    op.create_index(op.f("ix_recovery_events_claim_id"), "recovery_events", ["claim_id"])
    op.create_table(
        "recovery_filings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("recovery_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=False),
        sa.Column("lease_until", UTCDateTime(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.Column("easypost_claim_id", sa.String(length=64), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("sent_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["recovery_id"], ["recoveries.id"],
                                name=op.f("fk_recovery_filings_recovery_id_recoveries")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recovery_filings")),
        sa.UniqueConstraint("recovery_id", name=op.f("uq_recovery_filings_recovery_id")),
    )
    op.create_index("ix_recovery_filings_status_next", "recovery_filings",
                    ["status", "next_attempt_at"])
    # append-only, like the event log
    if op.get_bind().dialect.name == "sqlite":
        for verb in ("UPDATE", "DELETE"):
            op.execute(f"CREATE TRIGGER recovery_events_no_{verb.lower()} BEFORE {verb} ON "
                       "recovery_events BEGIN SELECT RAISE(ABORT, "
                       "'the recovery events are append-only'); END")
    else:
        op.execute("CREATE FUNCTION recovery_events_append_only() RETURNS trigger "
                   "LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION "
                   "'the recovery events are append-only'; END $$")
        op.execute("CREATE TRIGGER recovery_events_append_only BEFORE UPDATE OR DELETE ON "
                   "recovery_events FOR EACH ROW EXECUTE FUNCTION recovery_events_append_only()")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS recovery_events_no_update")
        op.execute("DROP TRIGGER IF EXISTS recovery_events_no_delete")
    else:
        op.execute("DROP TRIGGER IF EXISTS recovery_events_append_only ON recovery_events")
        op.execute("DROP FUNCTION IF EXISTS recovery_events_append_only()")
    op.drop_index("ix_recovery_filings_status_next", table_name="recovery_filings")
    op.drop_table("recovery_filings")
    op.drop_index(op.f("ix_recovery_events_claim_id"), table_name="recovery_events")
    op.drop_index(op.f("ix_recovery_events_recovery_id"), table_name="recovery_events")
    op.drop_table("recovery_events")
    op.drop_index("ix_recoveries_state_deadline", table_name="recoveries")
    op.drop_table("recoveries")
    with op.batch_alter_table("store_settings") as b:
        b.drop_column("recovery_easypost_off")
        b.drop_column("recovery_min_cents")
        b.drop_column("recovery_issue_types")
        b.drop_column("recovery_carriers")
