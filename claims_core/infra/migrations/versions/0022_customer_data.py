"""customer data: personal data out of the event log, erasure records

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-07 04:55:00

Free text staff wrote into events (a photo review's note, a hold release's note, the reason for
undoing an approval or for a window exception) moves to ``event_notes``, beside the append-only
log, so erasing a customer can redact it while no event is ever changed again. The log's
triggers are lifted for this one rewrite and put back.
"""
import json

from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401

import claims_core.infra.db


revision = '0022'
down_revision = '0021'
branch_labels = None
depends_on = None

# (action, details key): the free text events held until now (services write event_notes since)
MOVED = (("photo_reviewed", "note"), ("hold_released", "note"), ("approval_undone", "reason"),
         ("window_exception", "reason"))


def upgrade() -> None:
    op.create_table('event_notes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('event_id', sa.Integer(), nullable=False),
    sa.Column('claim_id', sa.Integer(), nullable=True),
    sa.Column('order_id', sa.Integer(), nullable=True),
    sa.Column('field', sa.String(length=32), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['event_id'], ['events.id'], name=op.f('fk_event_notes_event_id_events')),
    sa.ForeignKeyConstraint(['claim_id'], ['claims.id'], name=op.f('fk_event_notes_claim_id_claims')),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_event_notes_order_id_orders')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_event_notes'))
    )
    op.create_index(op.f('ix_event_notes_event_id'), 'event_notes', ['event_id'], unique=False)
    op.create_index(op.f('ix_event_notes_claim_id'), 'event_notes', ['claim_id'], unique=False)
    op.create_index(op.f('ix_event_notes_order_id'), 'event_notes', ['order_id'], unique=False)
    op.create_table('customer_erasures',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', claims_core.infra.db.UTCDateTime(), nullable=False),
    sa.Column('actor', sa.String(length=100), nullable=False),
    sa.Column('request_ref', sa.String(length=200), nullable=False),
    sa.Column('scope', sa.String(length=16), nullable=False),
    sa.Column('orders', sa.Integer(), nullable=False),
    sa.Column('claims', sa.Integer(), nullable=False),
    sa.Column('rows', sa.Integer(), nullable=False),
    sa.Column('counts', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_customer_erasures'))
    )
    with op.batch_alter_table('store_settings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('keep_photo_hashes', sa.Boolean(),
                                      server_default=sa.text('false'), nullable=False))
    _move_event_text()


def _move_event_text() -> None:
    bind = op.get_bind()
    rows = bind.execute(sa.text(
        "SELECT id, claim_id, order_id, action, details FROM events WHERE action IN "
        "('photo_reviewed', 'hold_released', 'approval_undone', 'window_exception')")).all()
    keys = dict(MOVED)
    changes = []
    for eid, claim_id, order_id, action, details in rows:
        try:
            d = json.loads(details or "{}")
        except ValueError:
            continue
        key = keys[action]
        if not isinstance(d, dict) or key not in d:
            continue
        body = d.pop(key)
        changes.append((eid, claim_id, order_id, key, "" if body is None else str(body),
                        json.dumps(d, sort_keys=True)))
    if not changes:
        return
    _lift_append_only(bind, True)
    for eid, claim_id, order_id, key, body, details in changes:
        bind.execute(sa.text("INSERT INTO event_notes (event_id, claim_id, order_id, field, body) "
                             "VALUES (:e, :c, :o, :f, :b)"),
                     {"e": eid, "c": claim_id, "o": order_id, "f": key, "b": body})
        bind.execute(sa.text("UPDATE events SET details = :d WHERE id = :e"),
                     {"d": details, "e": eid})
    _lift_append_only(bind, False)


def _lift_append_only(bind, lift: bool) -> None:
    """Take the event log's triggers off for the rewrite (``lift``) and put them back."""
    if bind.dialect.name == "sqlite":
        for verb in ("UPDATE", "DELETE"):
            if lift:
                op.execute(f"DROP TRIGGER IF EXISTS events_no_{verb.lower()}")
            else:
                op.execute(
                    f"CREATE TRIGGER events_no_{verb.lower()} BEFORE {verb} ON events "
                    "BEGIN SELECT RAISE(ABORT, 'the event log is append-only'); END")
    else:
        op.execute(f"ALTER TABLE events {'DISABLE' if lift else 'ENABLE'} TRIGGER events_append_only")


def downgrade() -> None:
    bind = op.get_bind()
    rows = bind.execute(sa.text(
        "SELECT n.event_id, n.field, n.body, e.details FROM event_notes n "
        "JOIN events e ON e.id = n.event_id ORDER BY n.id")).all()
    if rows:
        _lift_append_only(bind, True)
        for eid, field, body, details in rows:
            d = json.loads(details or "{}")
            d[field] = body
            bind.execute(sa.text("UPDATE events SET details = :d WHERE id = :e"),
                         {"d": json.dumps(d, sort_keys=True), "e": eid})
        _lift_append_only(bind, False)
    with op.batch_alter_table('store_settings', schema=None) as batch_op:
        batch_op.drop_column('keep_photo_hashes')
    op.drop_table('customer_erasures')
    with op.batch_alter_table('event_notes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_event_notes_order_id'))
        batch_op.drop_index(batch_op.f('ix_event_notes_claim_id'))
        batch_op.drop_index(batch_op.f('ix_event_notes_event_id'))
    op.drop_table('event_notes')
