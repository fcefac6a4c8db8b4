"""Staff reviewing one claim: what they see of it, and the smaller actions (assign, photo review,
a filing-window exception, finding an order to file for a customer)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import Engine, select
from sqlalchemy.orm import selectinload

from sqlalchemy.orm import Session

from .. import domain
from ..domain import disputes, eligibility
from ..domain.resolutions import approval_can_be_undone
from ..domain.tracking import JUDGED_BY_PROOF
from ..domain.vocabulary import AuditAction, PhotoVerdict
from ..infra.db import read_session, utcnow
from ..infra.models import (Claim, ClaimItem, Event, EventNote, Evidence, Order, ShipmentItem,
                            StaffUser, settings_row)
from . import claim_views, order_views, risk, shopify_write_back, shopify_write_back_queue
from .approvals import bonus_cap_pct, default_bonus_pct
from .decisions import load_claim
from .events import record_event
from .unit_of_work import transactional


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
    tz: str = "UTC"  # the store's zone: the time a person reads is the store's local time

    @property
    def line(self) -> str:
        """One line of the claim's timeline: when (the store's local time), who, what, and the
        status change if any."""
        move = ""
        if self.to_status:
            before = domain.STATUS_LABELS.get(self.from_status, "—") if self.from_status else "new"
            move = f" ({before} → {domain.STATUS_LABELS.get(self.to_status, self.to_status)})"
        when = domain.format_moment(self.at, self.tz)
        return f"{when} · {self.actor} · {self.action.replace('_', ' ')}{move}"


@dataclass(frozen=True)
class ItemFact:
    name: str
    sku: str
    quantity: int
    unit_cents: int
    amount_cents: int


@dataclass(frozen=True)
class StaffClaimView:
    claim: claim_views.ClaimView  # what the customer sees, for the shared parts
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
    internal_notes: tuple[claim_views.MessageView, ...]
    assignee_id: int | None
    assignee: str | None
    actions: tuple[domain.Action, ...]  # what staff can do with it now (the action table)
    filed_by: str
    held_at: datetime | None = None  # live tracking put the claim on hold (approval waits)
    hold_reason: str = ""
    order_risk_level: str = ""  # Shopify's fraud analysis of the order
    refunded_cents: int = 0  # refunded in Shopify outside this claim
    writes: tuple[shopify_write_back.WriteView, ...] = ()  # the decision on its way into Shopify
    language: str = "en"  # the customer's: their pages and emails are in it
    bonus_default_pct: int = 0  # the approval form's store-credit bonus to start with (the service's)
    bonus_cap_pct: int = 0  # the most bonus staff may give
    # the order's Shopify Payments dispute (chargeback), if any: domain/disputes.py
    dispute_status: str = ""
    dispute_kind: str = ""
    dispute_reason: str = ""
    dispute_amount_minor: int | None = None
    dispute_evidence_due_at: datetime | None = None
    dispute_held_at: datetime | None = None  # on hold for it (approval waits)
    dispute_hold_reason: str = ""

    @property
    def disputed(self) -> bool:
        """The order has a dispute (open or closed): its evidence pack is the dispute's evidence."""
        return bool(self.dispute_status)

    @property
    def dispute_open(self) -> bool:
        return disputes.is_open(self.dispute_status)

    @property
    def paying_twice(self) -> bool:
        """Approved, and the customer's bank may give the money back too."""
        return disputes.paying_twice(self.claim.status in domain.GRANTED_STATUSES,
                                     self.dispute_status)

    @property
    def dispute_summary(self) -> str:
        return disputes.describe(self.dispute_kind, self.dispute_reason, self.dispute_status)

    @property
    def proof_matters(self) -> bool:
        """Show the carrier's proof of delivery beside the customer's statement."""
        return self.claim.issue_type in JUDGED_BY_PROOF


def claim_for_staff(engine: Engine, claim_id: int) -> StaffClaimView:
    with read_session(engine) as s:
        claim = s.scalars(select(Claim).where(Claim.id == claim_id).options(
            *claim_views.claim_options(),
            selectinload(Claim.items).selectinload(ClaimItem.shipment_item)
            .selectinload(ShipmentItem.line_item),
        )).first()
        if claim is None:
            raise domain.ClaimNotFound("That claim doesn't exist.")
        settings = settings_row(s)
        view = claim_views.build_claim_view(s, claim)
        order: Order = claim.order
        sh = claim.shipment
        reused = risk.reused_photos(s, claim)
        score, level, sig = risk.assess(s, claim, reused)
        events = s.scalars(select(Event).where(Event.claim_id == claim.id).order_by(Event.id)).all()
        notes: dict[int, dict[str, str]] = {}
        for n in s.scalars(select(EventNote).where(EventNote.claim_id == claim.id)):
            notes.setdefault(n.event_id, {})[n.field] = n.body
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
            deadline=eligibility.deadline_for(order, sh, settings),
            items=tuple(ItemFact(ci.shipment_item.line_item.name, ci.shipment_item.line_item.sku,
                                 ci.quantity, ci.unit_cents, ci.amount_cents) for ci in claim.items),
            signature_png=claim.signature_png,
            photos=tuple(StaffPhoto(e.id, e.filename, e.thumbnail, e.width, e.height,
                                    e.review_status, e.review_note, tuple(reused.get(e.id, ())),
                                    e.sha256) for e in claim.evidence),
            risk_score=score, risk_level=level, signals=tuple(sig),
            events=tuple(EventView(e.at, e.actor, e.action, e.from_status, e.to_status,
                                   {**json.loads(e.details or "{}"), **notes.get(e.id, {})},
                                   settings.timezone or "UTC")
                          for e in events),
            internal_notes=tuple(claim_views.MessageView(m.author_kind, m.author_name, m.body,
                                                      m.created_at)
                                 for m in claim.messages if m.internal),
            assignee_id=claim.assignee_id,
            assignee=assignee.display_name or assignee.username if assignee else None,
            actions=_staff_actions(s, claim),
            filed_by=claim.filed_by,
            held_at=claim.held_at, hold_reason=claim.hold_reason,
            order_risk_level=order.risk_level, refunded_cents=order.refunded_cents,
            writes=tuple(shopify_write_back.writes_in(s, claim.id)),
            language=claim.language or "en",
            bonus_default_pct=default_bonus_pct(settings), bonus_cap_pct=bonus_cap_pct(settings),
            dispute_status=order.dispute_status, dispute_kind=order.dispute_kind,
            dispute_reason=order.dispute_reason, dispute_amount_minor=order.dispute_amount_minor,
            dispute_evidence_due_at=order.dispute_evidence_due_at,
            dispute_held_at=claim.dispute_held_at, dispute_hold_reason=claim.dispute_hold_reason,
        )


def _staff_actions(s: Session, claim: Claim) -> tuple[domain.Action, ...]:
    """What staff can do with the claim now: the action table, less an undo the approval's
    resolutions don't allow, and less approving while the claim is on hold."""
    live = [r for r in claim.resolutions if r.voided_at is None]
    undoable = approval_can_be_undone([r.kind for r in live],
                                      shopify_write_back_queue.sent_to_shop(
                                          s, [r.id for r in live]))
    return tuple(a for a in domain.available_actions(claim.status, domain.Actor.STAFF)
                 if (a != domain.Action.UNDO_APPROVAL or undoable)
                 and (a != domain.Action.APPROVE
                      or (claim.held_at is None and claim.dispute_held_at is None)))


def photo_data(engine: Engine, claim_id: int, evidence_id: int) -> bytes:
    with read_session(engine) as s:
        e = s.get(Evidence, evidence_id)
        if e is None or e.claim_id != claim_id:
            raise domain.PhotoNotFound(domain.PHOTO_NOT_IN_CLAIM)
        return e.data


def review_photo(engine: Engine, claim_id: int, evidence_id: int, actor: str, verdict: str,
                 note: str = "", *, now: datetime | None = None) -> None:
    if verdict not in tuple(PhotoVerdict):
        raise domain.InvalidInput("Mark the photo accepted or rejected.",
                                  domain.ErrorCode.PHOTO_VERDICT_INVALID)
    note = domain.clean_comment(note, "The note")
    if verdict == PhotoVerdict.REJECTED and not note:
        raise domain.InvalidInput("Say why the photo is rejected.", domain.ErrorCode.TEXT_REQUIRED)
    _review_photo(engine, claim_id, evidence_id, actor, verdict, note, now)


@transactional
def _review_photo(s: Session, claim_id: int, evidence_id: int, actor: str, verdict: str,
                  note: str, now: datetime | None) -> None:
    claim = load_claim(s, claim_id)
    e = s.get(Evidence, evidence_id)
    if e is None or e.claim_id != claim.id:
        raise domain.PhotoNotFound(domain.PHOTO_NOT_IN_CLAIM)
    before = e.review_status
    e.review_status, e.review_note = verdict, note
    record_event(s, actor=actor, action=AuditAction.PHOTO_REVIEWED, claim=claim,
                 details={"evidence_id": e.id, "from": before, "to": verdict}, notes={"note": note},
                 at=now)


@transactional
def assign(s: Session, claim_id: int, actor: str, assignee_id: int | None, *,
           expected_version: int | None = None, now: datetime | None = None) -> None:
    claim = load_claim(s, claim_id, expected_version)
    if assignee_id is not None:
        user = s.get(StaffUser, assignee_id)
        if user is None or not user.active or not domain.can(user.role, "work_claims"):
            raise domain.InvalidInput("Claims can be assigned to owners and agents only.",
                                      domain.ErrorCode.ASSIGNEE_INVALID)
    before = claim.assignee_id
    claim.assignee_id = assignee_id
    claim.updated_at = now or utcnow()
    record_event(s, actor=actor, action=AuditAction.ASSIGNED, claim=claim,
                 details={"from": before, "to": assignee_id}, at=now)


def grant_exception(engine: Engine, order_id: int, actor: str, until: date, reason: str, *,
                    now: datetime | None = None) -> None:
    """Let one order be claimed until a later date than the filing window allows."""
    reason = domain.required_text(reason, "The reason", "Say why this order gets more time.")
    _grant_exception(engine, order_id, actor, until, reason, now or utcnow())


@transactional
def _grant_exception(s: Session, order_id: int, actor: str, until: date, reason: str,
                     now: datetime) -> None:
    if until < domain.local_date(now, settings_row(s).timezone):  # today in the store's calendar
        raise domain.InvalidInput("The new deadline must be today or later.",
                                  domain.ErrorCode.DEADLINE_IN_PAST)
    order = s.get(Order, order_id)
    if order is None:
        raise domain.OrderNotFound("That order doesn't exist.")
    before = order.claim_deadline_override
    order.claim_deadline_override = until
    record_event(s, actor=actor, action=AuditAction.WINDOW_EXCEPTION, order_id=order.id,
                 details={"from": str(before) if before else None, "to": str(until)},
                 notes={"reason": reason}, at=now)


def assignable_staff(engine: Engine) -> list[tuple[int, str]]:
    with read_session(engine) as s:
        return [(u.id, u.display_name or u.username) for u in s.scalars(
            select(StaffUser).where(StaffUser.active,
                                    StaffUser.role.in_(domain.PERMISSIONS["work_claims"]))
            .order_by(StaffUser.username))]


def find_order_for_staff(engine: Engine, query: str, *, now: datetime | None = None
                         ) -> order_views.OrderView:
    """Staff look up an order (by number or tracking number) to file on a customer's behalf."""
    with read_session(engine) as s:
        order = order_views.find_order(s, query)
        if order is None:
            raise domain.OrderNotFound("No order with that number or tracking number.")
        return order_views.build_order_view(s, order, now)


def order_email(engine: Engine, order_id: int) -> str:
    with read_session(engine) as s:
        order = s.get(Order, order_id)
        if order is None:
            raise domain.OrderNotFound("No such order.")
        return order.email


