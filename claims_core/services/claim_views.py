"""What a customer (and staff, the API) reads about a claim: its items, photos, messages,
timeline, resolutions and the carrier's tracking; found by the link's token. Read models only;
the customer's actions are ``services/customer.py``, the order side ``services/order_views.py``.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Sequence

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, selectinload

from .. import domain
from ..domain.lifecycle import Action
from ..domain.messages import Msg, N_
from ..domain.text import joined, verbatim
from ..infra.db import read_session, utcnow
from ..infra.models import Claim, ClaimItem, Event, Order, ShipmentItem, settings_row
from .order_views import ClaimLabels, shipment_label
from .tracking import ShipmentTracking, shipment_tracking


@dataclass(frozen=True)
class TimelineStep:
    label: str  # a catalog message (N_)
    at: datetime | None
    done: bool
    current: bool


@dataclass(frozen=True)
class EvidenceView:
    id: int
    filename: str
    thumbnail: bytes
    width: int
    height: int
    created_at: datetime


@dataclass(frozen=True)
class MessageView:
    author_kind: str
    author_name: str
    body: str
    created_at: datetime


@dataclass(frozen=True)
class ClaimedItemView:
    name: str
    sku: str
    quantity: int
    amount_cents: int


@dataclass(frozen=True)
class ResolutionView:
    kind: str
    amount_cents: int
    bonus_pct: int
    store_credit_code: str | None


@dataclass(frozen=True)
class ClaimView(ClaimLabels):
    id: int
    reference: str
    access_token: str
    order_name: str
    status: str
    issue_type: str
    category: str
    description: str
    desired_resolution: str
    claimed_cents: int
    currency: str
    created_at: datetime
    shipment_label: Msg  # "Shipment 1" (a message)
    tracking_number: str | None
    carrier: str
    items: tuple[ClaimedItemView, ...]
    evidence: tuple[EvidenceView, ...]
    messages: tuple[MessageView, ...]
    timeline: tuple[TimelineStep, ...]
    resolutions: tuple[ResolutionView, ...]
    denial_reason: Msg | str  # why it was denied, for the customer ("" when not denied)
    signature_kind: str
    signature_name: str
    version: int
    decision_note: str = ""  # the staff note with the approval standing now
    partial: bool = False  # granted less than was paid for the items
    tracking: ShipmentTracking | None = None  # the carrier's timeline of the claimed shipment
    signature_cannot_draw: bool = False  # typed because the customer can't draw a signature


    @property
    def can_add_photos(self) -> bool:
        """Photos come with the reply the shop asked for (the action that answers it)."""
        return domain.allows(Action.CUSTOMER_REPLY, self.status)


def _timeline(claim: Claim, events: Sequence[Event]) -> tuple[TimelineStep, ...]:
    first_at: dict[str, datetime] = {}
    for ev in events:
        if ev.to_status and ev.to_status not in first_at:
            first_at[ev.to_status] = ev.at
    last_at = {ev.to_status: ev.at for ev in events if ev.to_status}
    status = claim.status
    decided = status not in domain.OPEN_STATUSES  # the last step: decided, or closed
    decision_label = domain.STATUS_LABELS[status] if decided else N_("Decision")
    steps = [
        TimelineStep(domain.STATUS_LABELS[domain.SUBMITTED],
                     first_at.get(domain.SUBMITTED, claim.created_at), True,
                     status == domain.SUBMITTED),
        TimelineStep(domain.STATUS_LABELS[domain.IN_REVIEW], first_at.get(domain.IN_REVIEW),
                     domain.IN_REVIEW in first_at or decided or status == domain.NEEDS_INFO,
                     status == domain.IN_REVIEW),
    ]
    if domain.NEEDS_INFO in first_at:
        steps.append(TimelineStep(domain.STATUS_LABELS[domain.NEEDS_INFO],
                                  last_at.get(domain.NEEDS_INFO), True,
                                  status == domain.NEEDS_INFO))
    steps.append(TimelineStep(decision_label, last_at.get(status) if decided else None, decided,
                              decided))
    return tuple(steps)


def build_claim_view(s: Session, claim: Claim, *, include_internal: bool = False) -> ClaimView:
    events = s.scalars(select(Event).where(Event.claim_id == claim.id).order_by(Event.id)).all()
    shipments = claim.order.shipments
    index = next((i + 1 for i, sh in enumerate(shipments) if sh.id == claim.shipment_id), 1)
    label = shipment_label(index)
    denial: Msg | str = ""
    if claim.status == domain.DENIED and claim.decisions:
        d = claim.decisions[-1]
        # the store's explanation of the reason (translated) and the agent's note (as written)
        denial = joined(domain.DENIAL_EXPLANATIONS.get(d.reason_code, ""),
                        verbatim(d.note) if d.note else "")
    live = [r for r in claim.resolutions if r.voided_at is None] \
        if claim.status in domain.GRANTED_STATUSES else []
    granted = next((d for d in claim.decisions if live and d.id == live[0].decision_id), None)
    return ClaimView(
        id=claim.id, reference=claim.reference, access_token=claim.access_token,
        order_name=claim.order.name, status=claim.status, issue_type=claim.issue_type,
        category=claim.category, description=claim.description,
        desired_resolution=claim.desired_resolution, claimed_cents=claim.claimed_cents,
        currency=claim.order.currency, created_at=claim.created_at, shipment_label=label,
        tracking_number=claim.shipment.tracking_number, carrier=claim.shipment.carrier,
        items=tuple(
            ClaimedItemView(ci.shipment_item.line_item.name, ci.shipment_item.line_item.sku,
                            ci.quantity, ci.amount_cents)
            for ci in claim.items
        ),
        evidence=tuple(
            EvidenceView(e.id, e.filename, e.thumbnail, e.width, e.height, e.created_at)
            for e in claim.evidence
        ),
        messages=tuple(
            MessageView(m.author_kind, m.author_name, m.body, m.created_at)
            for m in claim.messages if include_internal or not m.internal
        ),
        timeline=_timeline(claim, events),
        resolutions=tuple(
            ResolutionView(r.kind, r.amount_cents, r.bonus_pct, r.store_credit_code)
            for r in claim.resolutions if r.voided_at is None
        ) if claim.status in domain.GRANTED_STATUSES else (),
        denial_reason=denial,
        signature_kind=claim.signature_kind,
        signature_name=claim.signature_name,
        version=claim.version,
        decision_note=granted.note if granted is not None else "",
        partial=bool(live) and domain.is_partial([(r.kind, r.amount_cents) for r in live],
                                                 claim.claimed_cents),
        tracking=_claim_tracking(s, claim),
        signature_cannot_draw=claim.signature_cannot_draw,
    )


def _claim_tracking(s: Session, claim: Claim) -> ShipmentTracking | None:
    if not claim.shipment.tracking_number:
        return None
    settings = settings_row(s)
    return shipment_tracking(s, claim.shipment, now=utcnow(), lost_wait_days=settings.lost_wait_days,
                             tz_name=settings.timezone)


def claim_options():
    return (
        selectinload(Claim.order).selectinload(Order.shipments),
        selectinload(Claim.shipment),
        selectinload(Claim.items).selectinload(ClaimItem.shipment_item).selectinload(ShipmentItem.line_item),
        selectinload(Claim.evidence),
        selectinload(Claim.messages),
        selectinload(Claim.resolutions),
        selectinload(Claim.decisions),
    )


def claim_by_token(s: Session, token: str) -> Claim:
    token = (token or "").strip()
    claim = s.scalars(
        select(Claim).where(Claim.access_token == token).options(*claim_options())
    ).first() if 16 <= len(token) <= 64 else None
    if claim is None:
        raise domain.ClaimNotFound(
            N_("This claim link isn't valid. Check you copied the whole link, or look the claim up "
               "with your order number and email.")
        )
    return claim


def get_claim_for_customer(engine: Engine, token: str) -> ClaimView:
    """View My Claim by the link's unguessable token."""
    with read_session(engine) as s:
        return build_claim_view(s, claim_by_token(s, token))


def get_evidence_image(engine: Engine, token: str, evidence_id: int) -> bytes:
    """Full-size photo of a claim, for its customer."""
    with read_session(engine) as s:
        claim = claim_by_token(s, token)
        for e in claim.evidence:
            if e.id == evidence_id:
                return e.data
        raise domain.PhotoNotFound(domain.PHOTO_NOT_IN_CLAIM)
