"""What staff see of one claim, and the smaller staff actions (assign, photo review, exceptions)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import Engine, select
from sqlalchemy.orm import selectinload

from . import risk, rules, services, states
from .db import read_session, utcnow, write_session
from .decisions import StaleClaim, _load, _run
from .models import Claim, ClaimItem, Event, Evidence, Order, ShipmentItem, StaffUser


@dataclass(frozen=True)
class StaffPhoto:
    id: int
    filename: str
    thumbnail: bytes
    width: int
    height: int
    review_status: str
    review_note: str
    reused_in: tuple[str, ...]
    sha256: str


@dataclass(frozen=True)
class EventView:
    at: datetime
    actor: str
    action: str
    from_status: str | None
    to_status: str | None
    details: dict


@dataclass(frozen=True)
class ItemFact:
    name: str
    sku: str
    quantity: int
    unit_cents: int
    amount_cents: int


@dataclass(frozen=True)
class StaffClaimView:
    claim: services.ClaimView  # what the customer sees, for the shared parts
    order_id: int
    order_number: str
    customer_name: str
    email: str
    order_total_cents: int
    order_created_at: datetime
    shipping_address: str
    shipping_method: str
    protected: bool
    shipment_status: str
    shipped_at: datetime
    delivered_at: datetime | None
    last_scan_at: datetime | None
    deadline: date
    items: tuple[ItemFact, ...]
    signature_png: bytes | None
    photos: tuple[StaffPhoto, ...]
    risk_score: int
    risk_level: str
    signals: tuple[risk.Signal, ...]
    events: tuple[EventView, ...]
    internal_notes: tuple[services.MessageView, ...]
    assignee_id: int | None
    assignee: str | None
    allowed: frozenset[str]  # status changes allowed from here
    filed_by: str


def claim_for_staff(engine: Engine, claim_id: int) -> StaffClaimView:
    with read_session(engine) as s:
        claim = s.scalars(select(Claim).where(Claim.id == claim_id).options(
            *services._claim_options(),
            selectinload(Claim.items).selectinload(ClaimItem.shipment_item)
            .selectinload(ShipmentItem.line_item),
        )).first()
        if claim is None:
            raise rules.ClaimRuleError("That claim doesn't exist.")
        settings = services.get_settings(s)
        view = services.build_claim_view(s, claim)
        order: Order = claim.order
        sh = claim.shipment
        reused = risk.reused_photos(s, claim)
        score, level, sig = risk.assess(s, claim, reused)
        events = s.scalars(select(Event).where(Event.claim_id == claim.id).order_by(Event.id)).all()
        assignee = s.get(StaffUser, claim.assignee_id) if claim.assignee_id else None
        address = ", ".join(x for x in (order.shipping_address1, order.shipping_city,
                                        order.shipping_province, order.shipping_zip,
                                        order.shipping_country) if x)
        return StaffClaimView(
            claim=view, order_id=order.id, order_number=order.name,
            customer_name=order.customer_name, email=order.email,
            order_total_cents=order.total_cents, order_created_at=order.created_at,
            shipping_address=address, shipping_method=order.shipping_method,
            protected=order.is_protected, shipment_status=sh.status, shipped_at=sh.shipped_at,
            delivered_at=sh.delivered_at, last_scan_at=sh.last_scan_at,
            deadline=rules.filing_deadline(sh.shipped_at, settings.filing_window_days,
                                           settings.timezone, order.claim_deadline_override),
            items=tuple(ItemFact(ci.shipment_item.line_item.name, ci.shipment_item.line_item.sku,
                                 ci.quantity, ci.unit_cents, ci.amount_cents) for ci in claim.items),
            signature_png=claim.signature_png,
            photos=tuple(StaffPhoto(e.id, e.filename, e.thumbnail, e.width, e.height,
                                    e.review_status, e.review_note, tuple(reused.get(e.id, ())),
                                    e.sha256) for e in claim.evidence),
            risk_score=score, risk_level=level, signals=tuple(sig),
            events=tuple(EventView(e.at, e.actor, e.action, e.from_status, e.to_status,
                                   json.loads(e.details or "{}")) for e in events),
            internal_notes=tuple(services.MessageView(m.author_kind, m.author_name, m.body,
                                                      m.created_at)
                                 for m in claim.messages if m.internal),
            assignee_id=claim.assignee_id,
            assignee=assignee.display_name or assignee.username if assignee else None,
            allowed=states.TRANSITIONS[claim.status],
            filed_by=claim.filed_by,
        )


def photo_data(engine: Engine, claim_id: int, evidence_id: int) -> bytes:
    with read_session(engine) as s:
        e = s.get(Evidence, evidence_id)
        if e is None or e.claim_id != claim_id:
            raise rules.ClaimRuleError("That photo isn't part of this claim.")
        return e.data


def review_photo(engine: Engine, claim_id: int, evidence_id: int, actor: str, verdict: str,
                 note: str = "", *, now: datetime | None = None) -> None:
    if verdict not in ("accepted", "rejected", "pending"):
        raise rules.InvalidInput("Mark the photo accepted or rejected.")
    note = rules.clean_comment(note, "The note")
    if verdict == "rejected" and not note:
        raise rules.InvalidInput("Say why the photo is rejected.")

    def go(s):
        claim = _load(s, claim_id, None)
        e = s.get(Evidence, evidence_id)
        if e is None or e.claim_id != claim.id:
            raise rules.ClaimRuleError("That photo isn't part of this claim.")
        before = e.review_status
        e.review_status, e.review_note = verdict, note
        states.record_event(s, actor=actor, action="photo_reviewed", claim=claim,
                            details={"evidence_id": e.id, "from": before, "to": verdict,
                                     "note": note}, at=now)
    _run(engine, go)


def assign(engine: Engine, claim_id: int, actor: str, assignee_id: int | None, *,
           expected_version: int | None = None, now: datetime | None = None) -> None:
    def go(s):
        claim = _load(s, claim_id, expected_version)
        if assignee_id is not None:
            user = s.get(StaffUser, assignee_id)
            if user is None or not user.active or user.role not in ("owner", "agent"):
                raise rules.InvalidInput("Claims can be assigned to owners and agents only.")
        before = claim.assignee_id
        claim.assignee_id = assignee_id
        claim.updated_at = now or utcnow()
        states.record_event(s, actor=actor, action="assigned", claim=claim,
                            details={"from": before, "to": assignee_id}, at=now)
    _run(engine, go)


def grant_exception(engine: Engine, order_id: int, actor: str, until: date, reason: str, *,
                    now: datetime | None = None) -> None:
    """Let one order be claimed until a later date than the filing window allows."""
    reason = rules.required_text(reason, "The reason", "Say why this order gets more time.")
    now = now or utcnow()
    if until < now.date():
        raise rules.InvalidInput("The new deadline must be today or later.")
    with write_session(engine) as s:
        order = s.get(Order, order_id)
        if order is None:
            raise rules.ClaimRuleError("That order doesn't exist.")
        before = order.claim_deadline_override
        order.claim_deadline_override = until
        states.record_event(s, actor=actor, action="window_exception", order_id=order.id,
                            details={"from": str(before) if before else None, "to": str(until),
                                     "reason": reason}, at=now)


def assignable_staff(engine: Engine) -> list[tuple[int, str]]:
    with read_session(engine) as s:
        return [(u.id, u.display_name or u.username) for u in s.scalars(
            select(StaffUser).where(StaffUser.active, StaffUser.role.in_(("owner", "agent")))
            .order_by(StaffUser.username))]


def find_order_for_staff(engine: Engine, query: str, *, now: datetime | None = None
                         ) -> services.OrderView:
    """Staff look up an order (by number or tracking number) to file on a customer's behalf."""
    with read_session(engine) as s:
        number = rules.normalize_order_number(query)
        order = s.scalars(select(Order).where(Order.order_number == number)
                          .options(*services._order_options())).first() if number else None
        if order is None and query.strip():
            from .models import Shipment
            oid = s.scalars(select(Shipment.order_id).where(
                Shipment.tracking_number == rules.normalize_tracking(query)).limit(1)).first()
            order = s.scalars(select(Order).where(Order.id == oid)
                              .options(*services._order_options())).first() if oid else None
        if order is None:
            raise rules.OrderNotFound("No order with that number or tracking number.")
        return services.build_order_view(s, order, now)


def order_email(engine: Engine, order_id: int) -> str:
    with read_session(engine) as s:
        order = s.get(Order, order_id)
        if order is None:
            raise rules.OrderNotFound("No such order.")
        return order.email


__all__ = ["StaleClaim", "claim_for_staff", "review_photo", "assign", "grant_exception"]
