"""What a customer (and staff, the API, the demo) reads about an order: its shipments, what is
left to claim on each and why not, its claims, and the resolutions a claim may ask for. Read
models only; the customer's actions are ``services/customer.py``.

Words for the customer (a shipment's label, why it can't be claimed) are catalog messages
(``domain.messages``): a customer page shows them with ``t(…)``; ``str()`` of one is the English.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Iterable, Sequence

from sqlalchemy import Engine, case, func, select
from sqlalchemy.orm import Session, selectinload

from .. import domain
from ..domain import eligibility
from ..domain.messages import Msg, N_
from ..domain.money import unit_paid_minor
from ..domain.text import as_msg, joined
from ..infra.db import read_session, utcnow
from ..infra.models import (
    Claim,
    ClaimItem,
    LineItem,
    Order,
    Shipment,
    ShipmentItem,
    Stock,
    StoreSettings,
    settings_row,
)
from .approvals import default_bonus_pct
from .tracking import ShipmentTracking, shipment_tracking


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


class ClaimLabels:
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
class ClaimSummary(ClaimLabels):
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


def remaining_quantities(session: Session, shipment_items: Iterable[ShipmentItem]) -> dict[int, int]:
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


def line_unit_paid(li: LineItem) -> int:
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
            unit_cents=line_unit_paid(si.line_item),
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
    remaining = remaining_quantities(session, [si for sh in order.shipments for si in sh.items])
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
        claims=tuple(claim_summary(c) for c in order.claims),
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


def claim_summary(c: Claim) -> ClaimSummary:
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
        chosen = chosen_items(s, sh, issue_type, items, check=False)
        return resolution_options_for(s, settings, sh, chosen)


def chosen_items(session: Session, sh: Shipment, issue_type: str, items: dict[int, int] | None,
                  *, check: bool = True) -> dict[int, int]:
    real = [si for si in sh.items if not si.line_item.is_protection]
    remaining = remaining_quantities(session, real)
    if check:
        return domain.claimed_items(issue_type, items, remaining,
                                    {si.id: si.line_item.name for si in real})
    # a preview while the customer is still choosing (resolution amounts): never refuses
    if domain.ISSUE_TYPES[issue_type].category == domain.SHIPPING:
        return {sid: q for sid, q in remaining.items() if q > 0}
    return {sid: min(int(q), remaining.get(sid, 0)) for sid, q in (items or {}).items()
            if isinstance(q, int) and q > 0 and sid in remaining}


def resolution_options_for(session: Session, settings: StoreSettings, sh: Shipment,
                 chosen: dict[int, int]) -> list[domain.ResolutionOption]:
    by_id = {si.id: si for si in sh.items}
    amount = sum(line_unit_paid(by_id[sid].line_item) * q for sid, q in chosen.items())
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


def _find_claims_for_customer(engine: Engine, query: str, email: str) -> list[ClaimSummary]:
    """View My Claim by order number (or tracking number) + checkout email, unthrottled: the
    customer action is ``services.lookup.guarded_find_claims``."""
    with read_session(engine) as s:
        order = _find_order(s, query, email)
        return [claim_summary(c) for c in order.claims]


def get_order_for_customer(engine: Engine, order_id: int, email: str, *,
                           now: datetime | None = None) -> OrderView:
    """The order again, for a customer who already proved it is theirs."""
    with read_session(engine) as s:
        order = s.scalars(select(Order).where(Order.id == order_id).options(*_order_options())).first()
        if order is None or not domain.emails_match(email, order.email):
            raise domain.OrderNotFound(domain.LOOKUP_FAILED)
        return build_order_view(s, order, now)
