"""One function per user action, one transaction each.

Pages call these and show what comes back; a :class:`~claims_core.rules.ClaimRuleError` carries the
message to show. Times can be passed in (``now=``) so tests and demo data control the clock.
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Iterable, Sequence

from sqlalchemy import Engine, case, delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from . import autoapprove, notify, risk, rules, states
from .db import read_session, utcnow, write_session
from .models import (
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
)
from .photos import PhotoRejected, ProcessedPhoto, normalize_signature, process_photo, signature_ink
from .rules import ClaimRuleError

REFERENCE_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"  # no 0/O, 1/I


class PhotosRejected(ClaimRuleError):
    """One or more files weren't usable photos; ``errors`` names each file and the reason."""

    def __init__(self, errors: list[PhotoRejected]):
        self.errors = errors
        super().__init__(" ".join(e.message for e in errors))


class ClaimNotFound(ClaimRuleError):
    pass


# --- settings -----------------------------------------------------------------------------------

SETTINGS_DEFAULTS = {
    c.key: c.default.arg
    for c in StoreSettings.__table__.columns
    if c.default is not None and not callable(c.default.arg)
}


def get_settings(session: Session) -> StoreSettings:
    """The store's settings row (a transient copy with defaults if none was saved yet)."""
    row = session.get(StoreSettings, 1)
    return row if row is not None else StoreSettings(id=1, **SETTINGS_DEFAULTS)


def ensure_settings(session: Session) -> StoreSettings:
    row = session.get(StoreSettings, 1)
    if row is None:
        row = StoreSettings(id=1, **SETTINGS_DEFAULTS)
        session.add(row)
        session.flush()
    return row


def load_settings(engine: Engine) -> StoreSettings:
    with read_session(engine) as s:
        st = get_settings(s)
        s.expunge_all()
        return st


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
    label: str
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
    reason: str  # why not claimable ("" when it is)

    @property
    def remaining_items(self) -> tuple[ItemLine, ...]:
        return tuple(i for i in self.items if i.remaining > 0)


class _ClaimLabels:
    """Readable status and issue for a claim-like view with ``status`` and ``issue_type``."""

    status: str
    issue_type: str

    @property
    def status_label(self) -> str:
        return states.STATUS_LABELS[self.status]

    @property
    def issue_label(self) -> str:
        return rules.ISSUE_TYPES[self.issue_type].label


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
    reason: str
    deadline: date | None  # latest filing deadline among claimable shipments
    support_email: str

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
            .where(ClaimItem.shipment_item_id.in_(ids), Claim.status.in_(states.COVERING_STATUSES))
            .group_by(ClaimItem.shipment_item_id)
        ).all()
        for sid, qty, is_open in rows:
            covered[sid] = int(qty)
            if is_open:
                has_open.add(sid)
    return {si.id: rules.remaining_quantity(si.quantity, covered.get(si.id, 0), si.id in has_open)
            for si in items}


def _unit_paid_cents(li: LineItem) -> int:
    """What the customer paid for one unit of a line (line discount spread evenly, rounded down)."""
    if li.quantity <= 0:
        return li.unit_price_cents
    return (li.unit_price_cents * li.quantity - li.discount_cents) // li.quantity


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
            unit_cents=_unit_paid_cents(si.line_item),
        )
        for si in sh.items
        if not si.line_item.is_protection
    )
    deadline = rules.filing_deadline(
        sh.shipped_at, settings.filing_window_days, settings.timezone, order.claim_deadline_override
    )
    issue_types = tuple(rules.available_issue_types(
        sh.status, sh.shipped_at, sh.last_scan_at, now, settings.lost_wait_days
    ))
    reason = ""
    try:
        rules.check_order_not_cancelled(order.cancelled_at)
        rules.check_protection_covers_shipment(order.protection_purchased_at, sh.shipped_at)
        rules.check_filing_window(deadline, now, settings.timezone)
        if not any(i.remaining for i in items):
            raise rules.AlreadyClaimed(
                "Everything in this shipment is already covered by a claim. You can follow it "
                "with View My Claim."
            )
        if not issue_types:
            raise rules.IssueNotAvailable(
                "The carrier's tracking doesn't allow a claim on this shipment yet. "
                "Please check back later or contact the store."
            )
    except ClaimRuleError as e:
        reason = e.message
    label = f"Shipment {index}"
    if sh.is_replacement:
        label += " (replacement)"
    return ShipmentView(
        id=sh.id, label=label, tracking_number=sh.tracking_number, carrier=sh.carrier,
        status=sh.status, shipped_at=sh.shipped_at, delivered_at=sh.delivered_at,
        last_scan_at=sh.last_scan_at, items=items, issue_types=issue_types, deadline=deadline,
        claimable=not reason, reason=reason,
    )


def build_order_view(session: Session, order: Order, now: datetime | None = None) -> OrderView:
    now = now or utcnow()
    settings = get_settings(session)
    remaining = _remaining(session, [si for sh in order.shipments for si in sh.items])
    shipments = tuple(
        _shipment_view(session, order, sh, i + 1, settings, now, remaining)
        for i, sh in enumerate(order.shipments)
    )
    reason = ""
    try:
        rules.check_order_not_cancelled(order.cancelled_at)
        rules.check_protected(order.protection_purchased_at)
        rules.check_has_shipments(len(shipments))
        if not any(s.claimable for s in shipments):
            reason = shipments[0].reason if len(shipments) == 1 else _combined_reason(shipments)
    except ClaimRuleError as e:
        reason = e.message
    claimable = [s for s in shipments if s.claimable]
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
        deadline=max((s.deadline for s in claimable), default=None),
        support_email=settings.support_email,
    )


def _combined_reason(shipments: Sequence[ShipmentView]) -> str:
    reasons = list(dict.fromkeys(s.reason for s in shipments))
    if len(reasons) == 1:
        return reasons[0]
    return " ".join(f"{s.label}: {s.reason}" for s in shipments)


def _claim_summary(c: Claim) -> ClaimSummary:
    return ClaimSummary(c.id, c.reference, c.access_token, c.status, c.issue_type, c.created_at,
                        c.claimed_cents)


def _order_options():
    return (
        selectinload(Order.line_items),
        selectinload(Order.shipments).selectinload(Shipment.items).selectinload(ShipmentItem.line_item),
        selectinload(Order.claims),
    )


def _find_order(session: Session, query: str, email: str) -> Order:
    """Order by number or tracking number, proven by the checkout email; one answer for any miss."""
    number = rules.normalize_order_number(query)
    order = None
    if number:
        order = session.scalars(
            select(Order).where(Order.order_number == number).options(*_order_options())
        ).first()
        if order is None:
            tracking = rules.normalize_tracking(query)
            order_id = session.scalars(
                select(Shipment.order_id).where(Shipment.tracking_number == tracking).limit(1)
            ).first() if tracking else None
            if order_id is not None:
                order = session.scalars(
                    select(Order).where(Order.id == order_id).options(*_order_options())
                ).first()
    on_file = order.email if order is not None else "nobody@invalid.example"
    matched = rules.emails_match(email, on_file)  # always compare, found or not
    if order is None or not matched or not rules.normalize_email(email):
        raise rules.OrderNotFound(rules.LOOKUP_FAILED)
    return order


def lookup_order(engine: Engine, query: str, email: str, *, now: datetime | None = None) -> OrderView:
    """Customer action: find my order (order number or tracking number + checkout email)."""
    with read_session(engine) as s:
        return build_order_view(s, _find_order(s, query, email), now)


def list_claimable(engine: Engine, order_id: int, email: str, *,
                   now: datetime | None = None) -> list[ShipmentView]:
    """The shipments of an order that can take a claim now, with what is left to claim on each."""
    with read_session(engine) as s:
        order = s.scalars(select(Order).where(Order.id == order_id).options(*_order_options())).first()
        if order is None or not rules.emails_match(email, order.email):
            raise rules.OrderNotFound(rules.LOOKUP_FAILED)
        return list(build_order_view(s, order, now).claimable_shipments)


def resolution_choices(engine: Engine, shipment_id: int, items: dict[int, int] | None,
                       issue_type: str) -> list[rules.ResolutionOption]:
    """What the customer may ask for, for these items (all remaining items for shipping issues)."""
    with read_session(engine) as s:
        sh = s.get(Shipment, shipment_id)
        if sh is None:
            raise ClaimNotFound("That shipment no longer exists.")
        settings = get_settings(s)
        chosen = _chosen_items(s, sh, issue_type, items, check=False)
        return _options_for(s, settings, sh, chosen)


def _chosen_items(session: Session, sh: Shipment, issue_type: str, items: dict[int, int] | None,
                  *, check: bool = True) -> dict[int, int]:
    real = [si for si in sh.items if not si.line_item.is_protection]
    remaining = _remaining(session, real)
    names = {si.id: si.line_item.name for si in real}
    if rules.ISSUE_TYPES[issue_type].category == rules.SHIPPING:
        chosen = {sid: q for sid, q in remaining.items() if q > 0}
        if not chosen and check:
            raise rules.AlreadyClaimed(
                "Everything in this shipment is already covered by another claim."
            )
        return chosen
    if not check:
        return {sid: min(int(q), remaining.get(sid, 0)) for sid, q in (items or {}).items()
                if isinstance(q, int) and q > 0 and sid in remaining}
    return rules.check_item_quantities(items or {}, remaining, names)


def _options_for(session: Session, settings: StoreSettings, sh: Shipment,
                 chosen: dict[int, int]) -> list[rules.ResolutionOption]:
    by_id = {si.id: si for si in sh.items}
    amount = sum(_unit_paid_cents(by_id[sid].line_item) * q for sid, q in chosen.items())
    needed: dict[str, int] = {}
    for sid, q in chosen.items():
        sku = by_id[sid].line_item.sku or f"line-{by_id[sid].line_item_id}"
        needed[sku] = needed.get(sku, 0) + q
    on_hand = dict(session.execute(
        select(Stock.sku, Stock.on_hand).where(Stock.sku.in_(list(needed)))
    ).all()) if needed else {}
    return rules.resolution_options(
        offer_refund=settings.offer_refund,
        offer_reshipment=settings.offer_reshipment,
        offer_store_credit=settings.offer_store_credit,
        bonus_pct=settings.store_credit_bonus_pct,
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
        raise PhotosRejected(errors)
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
        raise rules.InvalidInput("This form has expired. Please reload the page and try again.")

    existing = _receipt_for_key(engine, key)
    if existing is not None:
        return existing

    settings = load_settings(engine)
    if req.issue_type not in rules.ISSUE_TYPES:
        raise rules.InvalidInput("Please choose what went wrong from the list.")
    description = rules.clean_comment(req.description)
    photos = list(processed) if processed is not None else process_photos(
        req.photos, settings.max_photo_bytes
    )
    rules.check_photo_count(req.issue_type, len(photos), settings.max_photos)
    ink = signature_ink(req.signature_png) if req.signature_kind == "drawn" else 0

    try:
        with write_session(engine) as s:
            again = s.scalars(select(Claim).where(Claim.idempotency_key == key)).first()
            if again is not None:
                return _receipt(again, created=False)
            claim = _create_claim(s, req, key, description, photos, ink, now)
            return _receipt(claim, created=True)
    except (IntegrityError, rules.ClaimRuleError) as e:
        # A concurrent submission may have just committed this very key (on PostgreSQL the
        # other transaction becomes visible mid-way): then this is a replay, not a conflict.
        existing = _receipt_for_key(engine, key)
        if existing is not None:
            return existing
        if isinstance(e, rules.ClaimRuleError):
            raise
        raise rules.AlreadyClaimed(
            "These items are already part of an open claim on this order. You can follow that "
            "claim with View My Claim."
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
    settings = get_settings(s)
    order = s.get(Order, req.order_id)
    if order is None or not rules.emails_match(req.email, order.email):
        raise rules.OrderNotFound(rules.LOOKUP_FAILED)
    sh = s.get(Shipment, req.shipment_id)
    if sh is None or sh.order_id != order.id:
        raise rules.InvalidInput("Please choose one of this order's shipments.")

    # Every rule again, inside the transaction: the window may have closed while the customer
    # was filling in the form, or another claim may have taken the items.
    rules.check_order_not_cancelled(order.cancelled_at)
    rules.check_protection_covers_shipment(order.protection_purchased_at, sh.shipped_at)
    deadline = rules.filing_deadline(sh.shipped_at, settings.filing_window_days, settings.timezone,
                                     order.claim_deadline_override)
    rules.check_filing_window(deadline, now, settings.timezone)
    available = rules.available_issue_types(sh.status, sh.shipped_at, sh.last_scan_at, now,
                                            settings.lost_wait_days)
    rules.check_issue_available(req.issue_type, available, sh.status, settings.lost_wait_days)
    chosen = _chosen_items(s, sh, req.issue_type, req.items)
    options = _options_for(s, settings, sh, chosen)
    option = rules.check_resolution_choice(req.desired_resolution, options)
    rules.check_signature(
        kind=req.signature_kind, typed_name=req.signature_name, drawn_ink_pixels=ink,
        accurate_confirmed=req.accurate_confirmed, order_total_cents=order.total_cents,
        threshold_cents=settings.signature_threshold_cents,
        filed_by_staff=req.filed_by != "customer",
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
        category=rules.ISSUE_TYPES[req.issue_type].category,
        issue_type=req.issue_type,
        status=states.SUBMITTED,
        description=description,
        desired_resolution=option.kind,
        claimed_cents=option.amount_cents,
        email=rules.normalize_email(req.email),
        carrier=sh.carrier or "",
        signature_kind=req.signature_kind,
        signature_name=rules.strip_controls(req.signature_name).strip()[:200],
        signature_png=normalize_signature(req.signature_png) if req.signature_kind == "drawn" else None,
        signed_at=now,
        filed_by=req.filed_by,
        created_at=now,
        updated_at=now,
        items=[
            ClaimItem(shipment_item_id=sid, quantity=q,
                      unit_cents=_unit_paid_cents(by_id[sid].line_item), is_open=True)
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
    states.record_event(
        s, actor=req.filed_by, action="claim_filed", claim=claim, to_status=states.SUBMITTED,
        details={"reference": reference, "issue_type": req.issue_type,
                 "items": {str(k): v for k, v in chosen.items()}, "photos": len(photos),
                 "desired_resolution": option.kind, "claimed_cents": option.amount_cents},
        at=now,
    )
    notify.on_claim_filed(s, claim, now)
    autoapprove.try_rules(s, claim, now)
    return claim


def _evidence(p: ProcessedPhoto, now: datetime, message: Message | None = None) -> Evidence:
    return Evidence(
        filename=p.filename, content_type=p.content_type, data=p.data, thumbnail=p.thumbnail,
        width=p.width, height=p.height, size_bytes=len(p.data), sha256=p.sha256, phash=p.phash,
        created_at=now, message_id=message.id if message is not None else None,
    )


# --- the customer coming back -------------------------------------------------------------------

@dataclass(frozen=True)
class TimelineStep:
    label: str
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
    shipment_label: str
    tracking_number: str | None
    carrier: str
    items: tuple[ClaimedItemView, ...]
    evidence: tuple[EvidenceView, ...]
    messages: tuple[MessageView, ...]
    timeline: tuple[TimelineStep, ...]
    resolutions: tuple[ResolutionView, ...]
    denial_reason: str
    signature_kind: str
    signature_name: str
    version: int


    @property
    def can_add_photos(self) -> bool:
        return self.status == states.NEEDS_INFO


def _timeline(claim: Claim, events: Sequence[Event]) -> tuple[TimelineStep, ...]:
    first_at: dict[str, datetime] = {}
    for ev in events:
        if ev.to_status and ev.to_status not in first_at:
            first_at[ev.to_status] = ev.at
    last_at = {ev.to_status: ev.at for ev in events if ev.to_status}
    status = claim.status
    decided = status in (states.APPROVED, states.RESOLVED, states.DENIED, states.CLOSED)
    decision_label = {
        states.APPROVED: "Approved", states.RESOLVED: "Resolved", states.DENIED: "Denied",
        states.CLOSED: "Closed",
    }.get(status, "Decision")
    steps = [
        TimelineStep("Received", first_at.get(states.SUBMITTED, claim.created_at), True,
                     status == states.SUBMITTED),
        TimelineStep("In review", first_at.get(states.IN_REVIEW),
                     states.IN_REVIEW in first_at or decided or status == states.NEEDS_INFO,
                     status == states.IN_REVIEW),
    ]
    if states.NEEDS_INFO in first_at:
        steps.append(TimelineStep("Waiting for you", last_at.get(states.NEEDS_INFO),
                                  True, status == states.NEEDS_INFO))
    steps.append(TimelineStep(decision_label, last_at.get(status) if decided else None, decided,
                              decided))
    return tuple(steps)


def build_claim_view(s: Session, claim: Claim, *, include_internal: bool = False) -> ClaimView:
    events = s.scalars(select(Event).where(Event.claim_id == claim.id).order_by(Event.id)).all()
    shipments = claim.order.shipments
    index = next((i + 1 for i, sh in enumerate(shipments) if sh.id == claim.shipment_id), 1)
    label = f"Shipment {index}"
    denial = ""
    if claim.status == states.DENIED and claim.decisions:
        d = claim.decisions[-1]
        from .decisions import DENIAL_REASONS
        denial = " ".join(x for x in (DENIAL_REASONS.get(d.reason_code, ""), d.note) if x)
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
        ) if claim.status in (states.APPROVED, states.RESOLVED) else (),
        denial_reason=denial,
        signature_kind=claim.signature_kind,
        signature_name=claim.signature_name,
        version=claim.version,
    )


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
        raise ClaimNotFound(
            "This claim link isn't valid. Check you copied the whole link, or look the claim up "
            "with your order number and email."
        )
    return claim


def get_claim_for_customer(engine: Engine, token: str) -> ClaimView:
    """View My Claim by the link's unguessable token."""
    with read_session(engine) as s:
        return build_claim_view(s, _claim_by_token(s, token))


def find_claims_for_customer(engine: Engine, query: str, email: str) -> list[ClaimSummary]:
    """View My Claim by order number (or tracking number) + checkout email."""
    with read_session(engine) as s:
        order = _find_order(s, query, email)
        return [_claim_summary(c) for c in order.claims]


def _closed_by_timer(s: Session, claim: Claim) -> bool:
    last = s.scalars(select(Event.action).where(Event.claim_id == claim.id,
                                                Event.to_status == states.CLOSED)
                     .order_by(Event.id.desc()).limit(1)).first()
    return last == "auto_closed"


def get_evidence_image(engine: Engine, token: str, evidence_id: int) -> bytes:
    """Full-size photo of a claim, for its customer."""
    with read_session(engine) as s:
        claim = _claim_by_token(s, token)
        for e in claim.evidence:
            if e.id == evidence_id:
                return e.data
        raise ClaimNotFound("That photo isn't part of this claim.")


def add_customer_message(
    engine: Engine, token: str, body: str, photos: Sequence[tuple[str, bytes]] = (), *,
    now: datetime | None = None,
) -> ClaimView:
    """The customer replies. While the shop waits for information they can add photos, and the
    reply puts the claim back in review."""
    now = now or utcnow()
    text = rules.clean_comment(body, "Your message")
    settings = load_settings(engine)
    processed = process_photos(photos, settings.max_photo_bytes) if photos else []
    if not text and not processed:
        raise rules.InvalidInput("Write a message or add a photo before sending.")
    with write_session(engine) as s:
        claim = _claim_by_token(s, token)
        if processed and claim.status != states.NEEDS_INFO:
            raise rules.InvalidInput(
                "You can add photos when the store asks for more information. "
                "Send a message if there's something to add."
            )
        if len(claim.evidence) + len(processed) > settings.max_photos * 2:
            raise rules.EvidenceRequired(
                f"This claim already has {len(claim.evidence)} photos; no more can be added."
            )
        msg = Message(author_kind="customer", author_name=claim.order.customer_name, body=text,
                      created_at=now)
        claim.messages.append(msg)
        s.flush()
        for p in processed:
            claim.evidence.append(_evidence(p, now, msg))
        states.record_event(s, actor="customer", action="customer_message", claim=claim,
                            details={"message_id": msg.id, "photos": len(processed)}, at=now)
        if claim.status == states.NEEDS_INFO:
            states.transition(s, claim, states.IN_REVIEW, actor="customer",
                              action="customer_replied", at=now)
        elif claim.status == states.CLOSED and _closed_by_timer(s, claim):
            # Closed for lack of an answer: the answer reopens it, within the filing window.
            sh = claim.shipment
            deadline = rules.filing_deadline(sh.shipped_at, settings.filing_window_days,
                                             settings.timezone, claim.order.claim_deadline_override)
            if rules.local_date(now, settings.timezone) <= deadline:
                states.transition(s, claim, states.IN_REVIEW, actor="customer",
                                  action="reopened_by_customer", at=now)
        claim.updated_at = now
        s.flush()
        return build_claim_view(s, claim)


# --- the portal's step checks -------------------------------------------------------------------

def get_order_for_customer(engine: Engine, order_id: int, email: str, *,
                           now: datetime | None = None) -> OrderView:
    """The order again, for a customer who already proved it is theirs."""
    with read_session(engine) as s:
        order = s.scalars(select(Order).where(Order.id == order_id).options(*_order_options())).first()
        if order is None or not rules.emails_match(email, order.email):
            raise rules.OrderNotFound(rules.LOOKUP_FAILED)
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
        raise rules.InvalidInput("Please choose one of this order's shipments.")
    if not ship.claimable:
        raise rules.ClaimRuleError(ship.reason)
    settings = load_settings(engine)
    rules.check_issue_available(issue_type, ship.issue_types, ship.status, settings.lost_wait_days)
    remaining = {i.shipment_item_id: i.remaining for i in ship.items}
    unit = {i.shipment_item_id: i.unit_cents for i in ship.items}
    if rules.ISSUE_TYPES[issue_type].category == rules.ITEM:
        chosen = rules.check_item_quantities(items or {}, remaining,
                                             {i.shipment_item_id: i.name for i in ship.items})
    else:
        chosen = {k: v for k, v in remaining.items() if v > 0}
    rules.check_photo_count(issue_type, photo_count, settings.max_photos)
    text = rules.clean_comment(description)
    return CheckedDetails(chosen, text, sum(unit[k] * q for k, q in chosen.items()))
