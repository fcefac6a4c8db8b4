"""Chargebacks: a Shopify Payments dispute on an order, and what it does to the order's claims.

``record`` applies a ``disputes/create`` or ``disputes/update`` body (from the webhook receipts'
background job, in its transaction): the order is marked disputed with the dispute's status, and
while the dispute is open (``domain.disputes.is_open``)

- every open claim on the order is put on a **dispute hold** (approving is refused with
  ``order_disputed``) with a system note;
- every approved or resolved claim is **flagged** (an event; the claim page and the queue show it
  from the order's dispute status): the shop may be paying twice.

Both are events the handlers answer (the owners get an email through the outbox). When the dispute
closes (won, lost, accepted, charge refunded) the dispute holds are released. A claim filed while
the order is disputed is held as it is filed (``hold_if_disputed``, a handler of
``claim_filed``). A replayed or unchanged body changes nothing.

The owner may release a dispute hold by hand (``decisions.release_dispute_hold``).
"""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy.orm import Session

from ..domain import disputes as rules
from ..domain.errors import InvalidInput
from ..domain.lifecycle import Actor
from ..domain.money import minor_from_amount
from ..domain.vocabulary import GRANTED_STATUSES, OPEN_STATUSES, AuditAction
from ..infra.models import Claim, Event, Message, Order
from .events import record_event

SYSTEM_NAME = "Shopify Payments"
ACTOR = "shopify"


def _when(raw) -> datetime | None:
    if not isinstance(raw, str) or not raw.strip():
        return None
    try:
        dt = datetime.fromisoformat(raw.strip())
    except ValueError:
        return None
    return (dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)).astimezone(timezone.utc)


def _amount(payload: dict, currency: str) -> int | None:
    try:
        return minor_from_amount(payload.get("amount"), payload.get("currency") or currency)
    except (InvalidInput, TypeError, ValueError):
        return None


def parse(payload) -> tuple[str, str, str, str]:
    """(dispute id, status, kind, reason) of a dispute body, or ValueError."""
    if not isinstance(payload, dict):
        raise ValueError("the body is not a JSON object")
    dispute_id = payload.get("id")
    if dispute_id is None or isinstance(dispute_id, (dict, list, bool, float)):
        raise ValueError("the dispute has no id")
    status = rules.check_status(payload.get("status"))
    kind = payload.get("type") if payload.get("type") in ("inquiry", "chargeback") else "chargeback"
    reason = payload.get("reason") if isinstance(payload.get("reason"), str) else ""
    return str(dispute_id)[:64], status, kind, reason[:64]


def record(s: Session, order: Order, payload: dict, *, now: datetime) -> tuple[bool, str]:
    """Apply a dispute body to ``order`` (and its claims). Returns (changed?, what happened)."""
    dispute_id, status, kind, reason = parse(payload)
    before = (order.dispute_id, order.dispute_status)
    was_open = rules.is_open(order.dispute_status) and order.dispute_id == dispute_id
    if before == (dispute_id, status):
        return False, f"dispute {dispute_id} on order {order.name} is already {status}"
    order.dispute_id, order.dispute_status = dispute_id, status
    order.dispute_kind, order.dispute_reason = kind, reason
    order.dispute_amount_minor = _amount(payload, order.currency)
    order.dispute_evidence_due_at = _when(payload.get("evidence_due_by"))
    order.disputed_at = order.disputed_at if before[0] == dispute_id and order.disputed_at \
        else (_when(payload.get("initiated_at")) or now)
    record_event(s, actor=ACTOR, action=AuditAction.DISPUTE_RECEIVED, order_id=order.id, at=now,
                 details={"dispute_id": dispute_id, "status": status, "kind": kind,
                          "reason": reason, "previous_status": before[1] or None,
                          "amount_cents": order.dispute_amount_minor})
    held = flagged = released = 0
    if rules.is_open(status):
        text = rules.hold_reason(kind, reason, status)
        for claim in order.claims:
            if was_open:  # a new status of a dispute already open: holds stay as they are
                break        # (one the owner released stays released)
            if claim.status in OPEN_STATUSES and claim.dispute_held_at is None:
                place_hold(s, claim, text, dispute_id, now=now)
                held += 1
            elif claim.status in GRANTED_STATUSES:
                record_event(s, actor=ACTOR, action=AuditAction.DISPUTE_FLAGGED, claim=claim,
                             at=now, details={"dispute_id": dispute_id, "status": status,
                                              "kind": kind, "reason": reason})
                flagged += 1
    else:
        for claim in order.claims:
            if claim.dispute_held_at is not None:
                release(s, claim, ACTOR, now=now,
                        details={"dispute_id": dispute_id, "status": status})
                released += 1
    return True, (f"dispute {dispute_id} on order {order.name}: {status}; {held} claims held, "
                  f"{flagged} approved claims flagged, {released} holds released")


def place_hold(s: Session, claim: Claim, reason: str, dispute_id: str, *, now: datetime) -> None:
    """Hold ``claim`` because its order is disputed: a system note (staff only) and an event the
    handlers answer (the owners are told by email)."""
    claim.dispute_held_at, claim.dispute_hold_reason, claim.updated_at = now, reason, now
    msg = Message(claim_id=claim.id, author_kind=Actor.SYSTEM, author_name=SYSTEM_NAME,
                  body=f"On hold (dispute): {reason}", internal=True, created_at=now)
    s.add(msg)
    s.flush()
    order = claim.order
    record_event(s, actor=ACTOR, action=AuditAction.DISPUTE_HOLD_PLACED, claim=claim, at=now,
                 details={"dispute_id": dispute_id, "status": order.dispute_status,
                          "kind": order.dispute_kind, "reason": order.dispute_reason,
                          "message_id": msg.id})


def release(s: Session, claim: Claim, actor: str, *, now: datetime, details: dict | None = None,
            note: str = "") -> None:
    claim.dispute_held_at, claim.dispute_hold_reason, claim.updated_at = None, "", now
    record_event(s, actor=actor, action=AuditAction.DISPUTE_HOLD_RELEASED, claim=claim, at=now,
                 details=details or {}, notes={"note": note})


def hold_if_disputed(s: Session, ev: Event, claim: Claim) -> None:
    """A claim filed while its order's dispute is open is held as it is filed (a handler of
    ``claim_filed``, before the owner's auto-approve rules)."""
    order = claim.order
    if rules.is_open(order.dispute_status) and claim.dispute_held_at is None \
            and claim.status in OPEN_STATUSES:
        place_hold(s, claim, rules.hold_reason(order.dispute_kind, order.dispute_reason,
                                               order.dispute_status),
                   order.dispute_id or "", now=ev.at)
