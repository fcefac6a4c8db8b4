"""The customer's actions: find my order, see what I can claim, file a claim, follow it, reply.

One function per user action, one transaction each. Pages call these and show what comes back; a
``domain.ClaimRuleError`` carries a code and the message to show. Times can be passed in (``now=``) so
tests and demo data control the clock.

Words for the customer in the views (a shipment's label, why it can't be claimed, the claim's
timeline and denial) are catalog messages (``domain.messages``): a customer page shows them with
``t(…)`` in the customer's language; ``str()`` of one is the English (staff pages, the API).
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Iterable, Sequence

from sqlalchemy import Engine, case, delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from .. import domain
from ..domain import eligibility
from ..domain.lifecycle import Action
from ..domain.messages import Msg, N_
from ..domain.money import unit_paid_minor
from ..domain.text import as_msg, joined, verbatim
from ..domain.vocabulary import AuditAction
from ..infra import i18n
from ..infra.db import read_session, utcnow
from ..infra.models import (
    Claim,
    ClaimDraft,
    ClaimItem,
    Event,
    Evidence,
    LineItem,
    Message,
    Order,
    Shipment,
    ShipmentItem,
    Stock,
    StoreSettings,
    settings_row,
)
from ..infra.photos import PhotoRejected, ProcessedPhoto, normalize_signature, process_photo, signature_ink
from . import risk
from .approvals import default_bonus_pct
from .events import apply, record_event
from .settings import load_settings
from .tracking import ShipmentTracking, shipment_tracking
from .unit_of_work import run

REFERENCE_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"  # no 0/O, 1/I


# --- views handed to pages ----------------------------------------------------------------------

@dataclass(frozen=True)
class ItemLine:
    shipment_item_id: int
    line_item_id: int
    sku: str
    name: str
    carried: int
    remaining: int
    unit_cents: int


@dataclass(frozen=True)
class ShipmentView:
    id: int
    label: Msg  # "Shipment 1" (a message: ``str()`` for the English)
    tracking_number: str | None
    carrier: str
    status: str
    shipped_at: datetime
    delivered_at: datetime | None
    last_scan_at: datetime | None
    items: tuple[ItemLine, ...]
    issue_types: tuple[str, ...]
    deadline: date | None
    claimable: bool
    reason: Msg | str  # why not claimable, a message ("" when it is)
    reason_codes: tuple[domain.ErrorCode, ...] = ()  # every reason, by code
    tracking: ShipmentTracking | None = None  # the carrier's timeline, when there is one

    @property
    def remaining_items(self) -> tuple[ItemLine, ...]:
        return tuple(i for i in self.items if i.remaining > 0)


class _ClaimLabels:
    """Readable status and issue for a claim-like view with ``status`` and ``issue_type``."""

    status: str
    issue_type: str

    @property
    def status_label(self) -> str:
        return domain.STATUS_LABELS[self.status]

    @property
    def issue_label(self) -> str:
        return domain.ISSUE_TYPES[self.issue_type].label


@dataclass(frozen=True)
class ClaimSummary(_ClaimLabels):
    id: int
    reference: str
    access_token: str
    status: str
    issue_type: str
    created_at: datetime
    claimed_cents: int



@dataclass(frozen=True)
class OrderLine:
    name: str
    sku: str
    quantity: int
    paid_cents: int


@dataclass(frozen=True)
class OrderView:
    id: int
    name: str
    customer_name: str
    created_at: datetime
    currency: str
    total_cents: int
    protected: bool
    items: tuple[OrderLine, ...]
    shipments: tuple[ShipmentView, ...]
    claims: tuple[ClaimSummary, ...]
    claimable: bool
    reason: Msg | str  # why nothing can be claimed, a message ("" when something can)
    support_email: str
    reason_codes: tuple[domain.ErrorCode, ...] = ()

    @property
    def window_closed(self) -> bool:
        """Nothing can be claimed only because the filing window closed (staff may extend it)."""
        return domain.ErrorCode.WINDOW_CLOSED in self.reason_codes

    @property
    def claimable_shipments(self) -> tuple[ShipmentView, ...]:
        return tuple(s for s in self.shipments if s.claimable)


def _remaining(session: Session, shipment_items: Iterable[ShipmentItem]) -> dict[int, int]:
    """Claimable quantity per shipment item: what it carried less what open or approved claims
    cover, and nothing while a claim on it is still open."""
    items = list(shipment_items)
    ids = [si.id for si in items]
    covered: dict[int, int] = {}
    has_open: set[int] = set()
    if ids:
        rows = session.execute(
            select(ClaimItem.shipment_item_id, func.sum(ClaimItem.quantity),
                   func.max(case((ClaimItem.is_open, 1), else_=0)))
            .join(Claim, Claim.id == ClaimItem.claim_id)
            .where(ClaimItem.shipment_item_id.in_(ids), Claim.status.in_(domain.COVERING_STATUSES))
            .group_by(ClaimItem.shipment_item_id)
        ).all()
        for sid, qty, is_open in rows:
            covered[sid] = int(qty)
            if is_open:
                has_open.add(sid)
    return {si.id: domain.remaining_quantity(si.quantity, covered.get(si.id, 0), si.id in has_open)
            for si in items}


def _unit_paid_minor(li: LineItem) -> int:
    return unit_paid_minor(li.unit_price_cents, li.quantity, li.discount_cents)


def _shipment_view(
    session: Session, order: Order, sh: Shipment, index: int, settings: StoreSettings,
    now: datetime, remaining: dict[int, int],
) -> ShipmentView:
    items = tuple(
        ItemLine(
            shipment_item_id=si.id,
            line_item_id=si.line_item_id,
            sku=si.line_item.sku,
            name=si.line_item.name,
            carried=si.quantity,
            remaining=remaining.get(si.id, 0),
            unit_cents=_unit_paid_minor(si.line_item),
        )
        for si in sh.items
        if not si.line_item.is_protection
    )
    verdict = eligibility.evaluate(order, sh, [i.remaining for i in items], now, settings)
    deadline, issue_types, reason = verdict.deadline, verdict.issue_types, verdict.reason
    label = shipment_label(index, sh.is_replacement)
    return ShipmentView(
        id=sh.id, label=label, tracking_number=sh.tracking_number, carrier=sh.carrier,
        status=sh.status, shipped_at=sh.shipped_at, delivered_at=sh.delivered_at,
        last_scan_at=sh.last_scan_at, items=items, issue_types=issue_types, deadline=deadline,
        claimable=not reason, reason=reason, reason_codes=verdict.codes,
        tracking=shipment_tracking(session, sh, now=now, lost_wait_days=settings.lost_wait_days,
                                   tz_name=settings.timezone) if sh.tracking_number else None,
    )


def shipment_label(index: int, replacement: bool = False) -> Msg:
    """How the customer tells an order's shipments apart: "Shipment 2", "Shipment 3 (replacement)"."""
    if replacement:
        return Msg.of(N_("Shipment {n} (replacement)"), n=index)
    return Msg.of(N_("Shipment {n}"), n=index)


def build_order_view(session: Session, order: Order, now: datetime | None = None) -> OrderView:
    now = now or utcnow()
    settings = settings_row(session)
    remaining = _remaining(session, [si for sh in order.shipments for si in sh.items])
    shipments = tuple(
        _shipment_view(session, order, sh, i + 1, settings, now, remaining)
        for i, sh in enumerate(order.shipments)
    )
    refusals = eligibility.evaluate_order(order, len(shipments))
    reason: Msg | str = refusals[0].msg if refusals else ""
    codes = tuple(r.code for r in refusals)
    if not reason and not any(s.claimable for s in shipments):
        reason = shipments[0].reason if len(shipments) == 1 else _combined_reason(shipments)
        codes = tuple(dict.fromkeys(c for s in shipments for c in s.reason_codes))
    return OrderView(
        id=order.id,
        name=order.name,
        customer_name=order.customer_name,
        created_at=order.created_at,
        currency=order.currency,
        total_cents=order.total_cents,
        protected=order.is_protected,
        items=tuple(
            OrderLine(li.name, li.sku, li.quantity, li.paid_cents)
            for li in order.line_items if not li.is_protection
        ),
        shipments=shipments,
        claims=tuple(_claim_summary(c) for c in order.claims),
        claimable=not reason,
        reason=reason,
        reason_codes=codes,
        support_email=settings.support_email,
    )


def _combined_reason(shipments: Sequence[ShipmentView]) -> Msg | str:
    reasons = list(dict.fromkeys(s.reason for s in shipments))
    if len(reasons) == 1:
        return reasons[0]
    # TRANSLATORS: why one shipment can't be claimed: "Shipment 2: <the reason>".
    return joined(*(Msg.of(N_("{shipment}: {reason}"), shipment=s.label, reason=as_msg(s.reason))
                    for s in shipments))


def _claim_summary(c: Claim) -> ClaimSummary:
    return ClaimSummary(c.id, c.reference, c.access_token, c.status, c.issue_type, c.created_at,
                        c.claimed_cents)


def _order_options():
    return (
        selectinload(Order.line_items),
        selectinload(Order.shipments).selectinload(Shipment.items).selectinload(ShipmentItem.line_item),
        selectinload(Order.claims),
    )


def find_order(session: Session, query: str) -> Order | None:
    """The order a typed order number or tracking number points to (any spelling), or None.
    The customer look-up and the staff search both find orders this way."""
    number = domain.normalize_order_number(query)
    if not number:
        return None
    order = session.scalars(
        select(Order).where(Order.order_number == number).options(*_order_options())).first()
    if order is not None:
        return order
    tracking = domain.normalize_tracking(query)
    order_id = session.scalars(
        select(Shipment.order_id).where(Shipment.tracking_number == tracking).limit(1)
    ).first() if tracking else None
    if order_id is None:
        return None
    return session.scalars(select(Order).where(Order.id == order_id).options(*_order_options())).first()


def _find_order(session: Session, query: str, email: str) -> Order:
    """Order by number or tracking number, proven by the checkout email; one answer for any miss."""
    order = find_order(session, query)
    on_file = order.email if order is not None else "nobody@invalid.example"
    matched = domain.emails_match(email, on_file)  # always compare, found or not
    if order is None or not matched or not domain.normalize_email(email):
        raise domain.OrderNotFound(domain.LOOKUP_FAILED)
    return order


def _lookup_order(engine: Engine, query: str, email: str, *, now: datetime | None = None) -> OrderView:
    """Find an order by order number or tracking number + checkout email, unthrottled. The
    customer action is ``services.lookup.guarded_lookup`` (slows down, then refuses, repeated
    misses); an API key files through ``claims_api.order_for_key``."""
    with read_session(engine) as s:
        return build_order_view(s, _find_order(s, query, email), now)


def resolution_choices(engine: Engine, shipment_id: int, items: dict[int, int] | None,
                       issue_type: str) -> list[domain.ResolutionOption]:
    """What the customer may ask for, for these items (all remaining items for shipping issues)."""
    with read_session(engine) as s:
        sh = s.get(Shipment, shipment_id)
        if sh is None:
            raise domain.ClaimNotFound(N_("That shipment no longer exists."))
        settings = settings_row(s)
        chosen = _chosen_items(s, sh, issue_type, items, check=False)
        return _options_for(s, settings, sh, chosen)


def _chosen_items(session: Session, sh: Shipment, issue_type: str, items: dict[int, int] | None,
                  *, check: bool = True) -> dict[int, int]:
    real = [si for si in sh.items if not si.line_item.is_protection]
    remaining = _remaining(session, real)
    if check:
        return domain.claimed_items(issue_type, items, remaining,
                                    {si.id: si.line_item.name for si in real})
    # a preview while the customer is still choosing (resolution amounts): never refuses
    if domain.ISSUE_TYPES[issue_type].category == domain.SHIPPING:
        return {sid: q for sid, q in remaining.items() if q > 0}
    return {sid: min(int(q), remaining.get(sid, 0)) for sid, q in (items or {}).items()
            if isinstance(q, int) and q > 0 and sid in remaining}


def _options_for(session: Session, settings: StoreSettings, sh: Shipment,
                 chosen: dict[int, int]) -> list[domain.ResolutionOption]:
    by_id = {si.id: si for si in sh.items}
    amount = sum(_unit_paid_minor(by_id[sid].line_item) * q for sid, q in chosen.items())
    needed = domain.needed_stock((by_id[sid].line_item.sku, by_id[sid].line_item_id, q)
                                 for sid, q in chosen.items())
    on_hand = dict(session.execute(
        select(Stock.sku, Stock.on_hand).where(Stock.sku.in_(list(needed)))
    ).all()) if needed else {}
    return domain.resolution_options(
        offer_refund=settings.offer_refund,
        offer_reshipment=settings.offer_reshipment,
        offer_store_credit=settings.offer_store_credit,
        bonus_pct=default_bonus_pct(settings),  # what an approval of store credit would add
        amount_cents=amount,
        needed_stock=needed,
        on_hand=on_hand,
    )


# --- filing -------------------------------------------------------------------------------------

@dataclass
class ClaimRequest:
    idempotency_key: str
    order_id: int
    email: str
    shipment_id: int
    issue_type: str
    desired_resolution: str
    signature_kind: str  # drawn | typed
    accurate_confirmed: bool
    items: dict[int, int] = field(default_factory=dict)  # shipment_item_id -> quantity
    description: str = ""
    photos: list[tuple[str, bytes]] = field(default_factory=list)  # (filename, raw bytes)
    signature_name: str = ""
    signature_png: bytes | None = None
    filed_by: str = "customer"
    language: str = "en"  # the customer's language (en, es, fr, de): their emails are written in it
    signature_cannot_draw: bool = False  # typed because they can't draw (domain/signature.py)


@dataclass(frozen=True)
class ClaimReceipt:
    claim_id: int
    reference: str
    access_token: str
    status: str
    claimed_cents: int
    created: bool  # False when the idempotency key had already been used


def new_reference() -> str:
    return "CLM-" + "".join(secrets.choice(REFERENCE_ALPHABET) for _ in range(6))


def new_access_token() -> str:
    return secrets.token_urlsafe(32)


def process_photos(photos: Sequence[tuple[str, bytes]], max_bytes: int) -> list[ProcessedPhoto]:
    """Process every photo; report every bad file at once (a rejected file stores nothing)."""
    done, errors = [], []
    for name, raw in photos:
        try:
            done.append(process_photo(raw, name, max_bytes=max_bytes))
        except PhotoRejected as e:
            errors.append(e)
    if errors:
        raise domain.PhotosRejected(errors)
    return done


def file_claim(engine: Engine, req: ClaimRequest, *, now: datetime | None = None,
               processed: Sequence[ProcessedPhoto] | None = None) -> ClaimReceipt:
    """Customer (or staff on their behalf) files a claim.

    Claim, items, photos, signature and the event commit together or not at all. The same
    idempotency key twice returns the first claim. ``processed`` lets a caller that already
    validated the photos (the portal does, to show thumbnails) skip reprocessing them.
    """
    now = now or utcnow()
    key = (req.idempotency_key or "").strip()
    if not key or len(key) > 128:
        raise domain.InvalidInput(
            N_("This form has expired. Please reload the page and try again."),
            domain.ErrorCode.FORM_EXPIRED)

    existing = _receipt_for_key(engine, key)
    if existing is not None:
        return existing

    settings = load_settings(engine)
    domain.check_issue_type(req.issue_type)
    description = domain.clean_comment(req.description)
    photos = list(processed) if processed is not None else process_photos(
        req.photos, settings.max_photo_bytes
    )
    domain.check_photo_count(req.issue_type, len(photos), settings.max_photos)
    ink = signature_ink(req.signature_png) if req.signature_kind == "drawn" else 0

    try:
        def work(s: Session) -> ClaimReceipt:
            again = s.scalars(select(Claim).where(Claim.idempotency_key == key)).first()
            if again is not None:
                return _receipt(again, created=False)
            return _receipt(_create_claim(s, req, key, description, photos, ink, now), created=True)
        return run(engine, work)
    except (IntegrityError, domain.ClaimRuleError) as e:
        # A concurrent submission may have just committed this very key (on PostgreSQL the
        # other transaction becomes visible mid-way): then this is a replay, not a conflict.
        existing = _receipt_for_key(engine, key)
        if existing is not None:
            return existing
        if isinstance(e, domain.ClaimRuleError):
            raise
        raise domain.AlreadyClaimed(
            N_("These items are already part of an open claim on this order. You can follow that "
               "claim with View My Claim.")
        )


def _receipt(claim: Claim, *, created: bool) -> ClaimReceipt:
    return ClaimReceipt(claim.id, claim.reference, claim.access_token, claim.status,
                        claim.claimed_cents, created)


def _receipt_for_key(engine: Engine, key: str) -> ClaimReceipt | None:
    with read_session(engine) as s:
        c = s.scalars(select(Claim).where(Claim.idempotency_key == key)).first()
        return _receipt(c, created=False) if c is not None else None


def _create_claim(s: Session, req: ClaimRequest, key: str, description: str,
                  photos: Sequence[ProcessedPhoto], ink: int, now: datetime) -> Claim:
    settings = settings_row(s)
    order = s.get(Order, req.order_id)
    if order is None or not domain.emails_match(req.email, order.email):
        raise domain.OrderNotFound(domain.LOOKUP_FAILED)
    sh = s.get(Shipment, req.shipment_id)
    if sh is None or sh.order_id != order.id:
        raise domain.InvalidInput(domain.CHOOSE_A_SHIPMENT, domain.ErrorCode.SHIPMENT_NOT_IN_ORDER)

    # Every rule again, inside the transaction: the window may have closed while the customer
    # was filling in the form, or another claim may have taken the items.
    real = [si for si in sh.items if not si.line_item.is_protection]
    verdict = eligibility.evaluate(order, sh, list(_remaining(s, real).values()), now, settings)
    for refusal in verdict.reasons:
        if refusal.code != domain.ErrorCode.NOTHING_LEFT_TO_CLAIM:  # said per item below
            raise refusal
    domain.check_issue_available(req.issue_type, verdict.issue_types, sh.status,
                                 settings.lost_wait_days, sh.expected_delivery_at, settings.timezone)
    chosen = _chosen_items(s, sh, req.issue_type, req.items)
    options = _options_for(s, settings, sh, chosen)
    option = domain.check_resolution_choice(req.desired_resolution, options)
    domain.check_signature(
        kind=req.signature_kind, typed_name=req.signature_name, drawn_ink_pixels=ink,
        accurate_confirmed=req.accurate_confirmed, order_total_cents=order.total_cents,
        threshold_cents=settings.signature_threshold_cents,
        filed_by_staff=req.filed_by != "customer", cannot_draw_confirmed=req.signature_cannot_draw,
    )

    reference = new_reference()
    while s.scalars(select(Claim.id).where(Claim.reference == reference)).first() is not None:
        reference = new_reference()  # pragma: no cover - 1 in a billion
    by_id = {si.id: si for si in sh.items}
    claim = Claim(
        reference=reference,
        access_token=new_access_token(),
        idempotency_key=key,
        order_id=order.id,
        shipment_id=sh.id,
        category=domain.ISSUE_TYPES[req.issue_type].category,
        issue_type=req.issue_type,
        status=domain.SUBMITTED,
        description=description,
        desired_resolution=option.kind,
        claimed_cents=option.amount_cents,
        email=domain.normalize_email(req.email),
        carrier=sh.carrier or "",
        signature_kind=req.signature_kind,
        signature_name=domain.clean_signature_name(req.signature_name),
        signature_png=normalize_signature(req.signature_png) if req.signature_kind == "drawn" else None,
        signature_cannot_draw=domain.records_cannot_draw(req.signature_kind,
                                                         req.signature_cannot_draw),
        signed_at=now,
        filed_by=req.filed_by,
        language=claim_language(req.language),
        created_at=now,
        updated_at=now,
        items=[
            ClaimItem(shipment_item_id=sid, quantity=q,
                      unit_cents=_unit_paid_minor(by_id[sid].line_item), is_open=True)
            for sid, q in chosen.items()
        ],
        evidence=[_evidence(p, now) for p in photos],
    )
    s.add(claim)
    s.flush()
    claim.risk_score, claim.risk_level, _signals = risk.assess(s, claim)
    # The portal's saved progress for this order is used up.
    s.execute(delete(ClaimDraft).where(ClaimDraft.order_id == order.id,
                                       ClaimDraft.email == claim.email))
    record_event(
        s, actor=req.filed_by, action=AuditAction.CLAIM_FILED, claim=claim,
        to_status=domain.SUBMITTED,
        details={"reference": reference, "issue_type": req.issue_type,
                 "items": {str(k): v for k, v in chosen.items()}, "photos": len(photos),
                 "desired_resolution": option.kind, "claimed_cents": option.amount_cents},
        at=now,
    )
    return claim


def claim_language(lang: str | None) -> str:
    """The language a claim is kept in: one the portal speaks (``de-AT`` is ``de``), else English."""
    code = i18n.supported(lang)
    return code if code in i18n.LANGUAGES else i18n.DEFAULT


def _evidence(p: ProcessedPhoto, now: datetime, message: Message | None = None) -> Evidence:
    return Evidence(
        filename=p.filename, content_type=p.content_type, data=p.data, thumbnail=p.thumbnail,
        width=p.width, height=p.height, size_bytes=len(p.data), sha256=p.sha256, phash=p.phash,
        created_at=now, message_id=message.id if message is not None else None,
    )


# --- the customer coming back -------------------------------------------------------------------

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
class ClaimView(_ClaimLabels):
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


def _claim_options():
    return (
        selectinload(Claim.order).selectinload(Order.shipments),
        selectinload(Claim.shipment),
        selectinload(Claim.items).selectinload(ClaimItem.shipment_item).selectinload(ShipmentItem.line_item),
        selectinload(Claim.evidence),
        selectinload(Claim.messages),
        selectinload(Claim.resolutions),
        selectinload(Claim.decisions),
    )


def _claim_by_token(s: Session, token: str) -> Claim:
    token = (token or "").strip()
    claim = s.scalars(
        select(Claim).where(Claim.access_token == token).options(*_claim_options())
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
        return build_claim_view(s, _claim_by_token(s, token))


def _find_claims_for_customer(engine: Engine, query: str, email: str) -> list[ClaimSummary]:
    """View My Claim by order number (or tracking number) + checkout email, unthrottled: the
    customer action is ``services.lookup.guarded_find_claims``."""
    with read_session(engine) as s:
        order = _find_order(s, query, email)
        return [_claim_summary(c) for c in order.claims]


def _closed_by_timer(s: Session, claim: Claim) -> bool:
    last = s.scalars(select(Event.action).where(Event.claim_id == claim.id,
                                                Event.to_status == domain.CLOSED)
                     .order_by(Event.id.desc()).limit(1)).first()
    return last == domain.AuditAction.AUTO_CLOSED


def get_evidence_image(engine: Engine, token: str, evidence_id: int) -> bytes:
    """Full-size photo of a claim, for its customer."""
    with read_session(engine) as s:
        claim = _claim_by_token(s, token)
        for e in claim.evidence:
            if e.id == evidence_id:
                return e.data
        raise domain.PhotoNotFound(domain.PHOTO_NOT_IN_CLAIM)


def add_customer_message(
    engine: Engine, token: str, body: str, photos: Sequence[tuple[str, bytes]] = (), *,
    now: datetime | None = None,
) -> ClaimView:
    """The customer replies. While the shop waits for information they can add photos, and the
    reply puts the claim back in review."""
    now = now or utcnow()
    text = domain.clean_comment(body, N_("Your message"))
    settings = load_settings(engine)
    processed = process_photos(photos, settings.max_photo_bytes) if photos else []  # outside
    if not text and not processed:
        raise domain.InvalidInput(N_("Write a message or add a photo before sending."),
                                  domain.ErrorCode.TEXT_REQUIRED)
    return run(engine, lambda s: _customer_message(s, token, text, processed, now))


def _customer_message(s: Session, token: str, text: str, processed: Sequence[ProcessedPhoto],
                      now: datetime) -> ClaimView:
    return reply_on_claim(s, _claim_by_token(s, token), text, processed, now)


def reply_on_claim(s: Session, claim: Claim, text: str, processed: Sequence[ProcessedPhoto],
                   now: datetime, *, via: str = "portal") -> ClaimView:
    """The customer's reply on a claim, however it came (the page, an email: ``via``): the same
    message, event and status change (back to review; an auto-closed claim reopens in the window)."""
    settings = settings_row(s)
    if processed and not domain.allows(Action.CUSTOMER_REPLY, claim.status):
        raise domain.InvalidInput(
            N_("You can add photos when the store asks for more information. "
               "Send a message if there's something to add."),
            domain.ErrorCode.PHOTOS_NOT_REQUESTED)
    if len(claim.evidence) + len(processed) > domain.reply_photo_limit(settings.max_photos):
        raise domain.EvidenceRequired(
            Msg.of(N_("This claim already has {n} photos; no more can be added."),
                   n=len(claim.evidence)),
            domain.ErrorCode.TOO_MANY_PHOTOS)
    msg = Message(author_kind="customer", author_name=claim.order.customer_name, body=text,
                  created_at=now)
    claim.messages.append(msg)
    s.flush()
    for p in processed:
        claim.evidence.append(_evidence(p, now, msg))
    record_event(s, actor="customer", action=AuditAction.CUSTOMER_MESSAGE, claim=claim,
                 details={"message_id": msg.id, "photos": len(processed),
                          **({"via": via} if via != "portal" else {})}, at=now)
    if domain.allows(Action.CUSTOMER_REPLY, claim.status):
        apply(s, claim, Action.CUSTOMER_REPLY, actor="customer", at=now)
    elif domain.allows(Action.REOPEN_BY_CUSTOMER, claim.status) and _closed_by_timer(s, claim):
        # Closed for lack of an answer: the answer reopens it, within the filing window.
        deadline = eligibility.deadline_for(claim.order, claim.shipment, settings)
        if domain.within_window(deadline, now, settings.timezone):
            apply(s, claim, Action.REOPEN_BY_CUSTOMER, actor="customer", at=now)
    claim.updated_at = now
    s.flush()
    return build_claim_view(s, claim)


# --- the portal's step checks -------------------------------------------------------------------

def get_order_for_customer(engine: Engine, order_id: int, email: str, *,
                           now: datetime | None = None) -> OrderView:
    """The order again, for a customer who already proved it is theirs."""
    with read_session(engine) as s:
        order = s.scalars(select(Order).where(Order.id == order_id).options(*_order_options())).first()
        if order is None or not domain.emails_match(email, order.email):
            raise domain.OrderNotFound(domain.LOOKUP_FAILED)
        return build_order_view(s, order, now)


@dataclass(frozen=True)
class CheckedDetails:
    items: dict[int, int]
    description: str
    amount_cents: int


def check_claim_details(engine: Engine, order_id: int, email: str, shipment_id: int,
                        issue_type: str, items: dict[int, int] | None, photo_count: int,
                        description: str, *, now: datetime | None = None) -> CheckedDetails:
    """Everything filing will check about the chosen shipment, scenario, items, photos and text,
    checked now so the customer hears about a problem at the step that can fix it."""
    view = get_order_for_customer(engine, order_id, email, now=now)
    ship = next((s for s in view.shipments if s.id == shipment_id), None)
    if ship is None:
        raise domain.InvalidInput(domain.CHOOSE_A_SHIPMENT, domain.ErrorCode.SHIPMENT_NOT_IN_ORDER)
    if not ship.claimable:  # the first reason's code, as the order view gives it
        raise domain.ClaimRuleError(ship.reason, ship.reason_codes[0] if ship.reason_codes
                                    else domain.ErrorCode.NOT_SHIPPED)
    settings = load_settings(engine)
    domain.check_issue_available(issue_type, ship.issue_types, ship.status, settings.lost_wait_days,
                                 ship.tracking.expected_delivery_at if ship.tracking else None,
                                 settings.timezone)
    unit = {i.shipment_item_id: i.unit_cents for i in ship.items}
    chosen = domain.claimed_items(issue_type, items,
                                  {i.shipment_item_id: i.remaining for i in ship.items},
                                  {i.shipment_item_id: i.name for i in ship.items})
    domain.check_photo_count(issue_type, photo_count, settings.max_photos)
    text = domain.clean_comment(description)
    return CheckedDetails(chosen, text, sum(unit[k] * q for k, q in chosen.items()))
