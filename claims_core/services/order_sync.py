"""Order sync: the one way orders, their shipments and refunds change.

Every source — the orders export and the shipments and stock CSVs (``adapters/importer.py``),
Shopify's webhooks (``adapters/shopify_orders.py``), the REST API (``adapters/api_orders.py``) —
parses what it receives into the domain's snapshots (``domain/orders.py``) and hands them here,
in a unit of work (``unit_of_work.run``: retried, the event handlers run, one commit), or inside
the caller's when it already has one. Each order, shipment or refund that changes records
``ORDER_SYNCED`` (details: the source, what changed; never personal data).

- ``upsert_order``: create or update an order and its lines, its refunds and the export's
  stand-in shipment; a Shopify update older than the one applied changes nothing;
- ``apply_shipment``: a shipment by tracking number (``domain.orders`` says what it may carry);
  ``apply_fulfillment``: a Shopify fulfillment (a corrected tracking number, items named instead
  of SKU'd, the protection line left out), then ``apply_shipment``;
- ``record_refunds``, ``add_refund``: the refund ledger (by refund id; the export's total kept
  apart);
- ``import_orders``, ``import_shipments``, ``set_stock``: a whole file's snapshots in one
  transaction (or, for a preview, one that is rolled back); ``sync_api_order``: one API body.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Callable, Iterable, Sequence

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, selectinload

from ..domain.orders import (EXPORT_REFUND_ID, FROM_EXPORT, OrderDataError, OrderSnapshot,
                             RefundSnapshot, ShipmentSnapshot, ShippedItem, check_shipment,
                             counts_against_order, match_items, over_ordered, refunded_minor,
                             shipment_fields)
from ..domain.vocabulary import AuditAction
from ..infra.db import scratch_session, utcnow
from ..infra.models import ClaimItem, LineItem, Order, OrderRefund, Shipment, ShipmentItem, Stock
from . import track17_registration, tracking
from .events import PENDING, record_event
from .unit_of_work import run

_WITH_SHIPMENTS = (selectinload(Order.line_items),
                   selectinload(Order.shipments).selectinload(Shipment.items))


@dataclass(frozen=True)
class Synced:
    order: Order
    created: bool
    changed: bool
    stale: bool = False  # an older Shopify update than the one applied: nothing was changed


@dataclass
class Counts:
    """What a file's snapshots did; ``errors`` are the ones refused (nothing of them written)."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[OrderDataError] = field(default_factory=list)

    def add(self, outcome: str) -> None:
        setattr(self, outcome, getattr(self, outcome) + 1)


# --- finding orders -------------------------------------------------------------------------------

def find_order(s: Session, number: str) -> Order | None:
    """The order with this (normalised) number, with its lines and shipments."""
    return s.scalars(select(Order).where(Order.order_number == number)
                     .options(*_WITH_SHIPMENTS)).first()


def order_by_external_id(s: Session, external_id: str) -> Order | None:
    """The order with Shopify's id ``external_id`` ("" finds none)."""
    if not external_id:
        return None
    return s.scalars(select(Order).where(Order.external_id == external_id)
                     .options(*_WITH_SHIPMENTS)).first()


def _orders_by_number(s: Session, numbers: Iterable[str]) -> dict[str, Order]:
    wanted = sorted(set(numbers))
    if not wanted:
        return {}
    return {o.order_number: o for o in s.scalars(
        select(Order).where(Order.order_number.in_(wanted)).options(*_WITH_SHIPMENTS))}


def _synced(s: Session, order: Order, source: str, actor: str, now: datetime, **details) -> None:
    record_event(s, actor=actor, action=AuditAction.ORDER_SYNCED, order_id=order.id,
                 details={"source": source, **details}, at=now)


# --- orders -------------------------------------------------------------------------------------

def _order_columns(snap: OrderSnapshot, known_protection: datetime | None) -> dict:
    return dict(
        name=snap.name, email=snap.email, customer_name=snap.customer_name,
        created_at=snap.created_at, financial_status=snap.financial_status,
        fulfillment_status=snap.fulfillment_status, cancelled_at=snap.cancelled_at,
        currency=snap.currency, subtotal_cents=snap.subtotal_minor,
        shipping_cents=snap.shipping_minor, tax_cents=snap.tax_minor,
        total_cents=snap.total_minor, shipping_method=snap.shipping_method,
        shipping_address1=snap.shipping_address1, shipping_city=snap.shipping_city,
        shipping_zip=snap.shipping_zip, shipping_province=snap.shipping_province,
        shipping_country=snap.shipping_country, external_id=snap.external_id,
        risk_level=snap.risk_level, protection_fee_cents=snap.protection_fee_minor(),
        protection_purchased_at=snap.protection_purchased_at(known_protection))


def upsert_order(s: Session, snap: OrderSnapshot, *, actor: str, now: datetime,
                 details: dict | None = None) -> Synced:
    """Create or update the order ``snap`` tells of, in the caller's unit of work."""
    return _upsert(s, find_order(s, snap.number), snap, actor=actor, now=now, details=details)


def _upsert(s: Session, order: Order | None, snap: OrderSnapshot, *, actor: str, now: datetime,
            details: dict | None = None) -> Synced:
    if (order is not None and order.source_updated_at and snap.source_updated_at
            and snap.source_updated_at < order.source_updated_at):
        return Synced(order, False, False, stale=True)  # an older update arriving late
    created = order is None
    if created:
        order = Order(order_number=snap.number, source=snap.source, **_order_columns(snap, None))
        s.add(order)
        changed = True
    else:
        changed = False
        for k, v in _order_columns(snap, order.protection_purchased_at).items():
            if getattr(order, k) != v:
                setattr(order, k, v)
                changed = True
    by_pos = {li.position: li for li in order.line_items}
    written: list[LineItem] = []
    for pos, ln in enumerate(snap.lines, start=1):
        vals = dict(sku=ln.sku, name=ln.name, quantity=ln.quantity,
                    unit_price_cents=ln.unit_price_minor, discount_cents=ln.discount_minor,
                    requires_shipping=ln.requires_shipping, is_protection=ln.is_protection)
        li = by_pos.get(pos)
        if li is None:
            li = LineItem(position=pos, **vals)
            order.line_items.append(li)
            changed = True
        else:
            for k, v in vals.items():
                if getattr(li, k) != v:
                    setattr(li, k, v)
                    changed = True
        written.append(li)
    s.flush()
    if snap.refunds is not None or snap.refunded_total_minor is not None:
        refunds = {r.external_id: r.amount_minor for r in snap.refunds or ()}
        changed |= record_refunds(s, order, refunds, snap.refunded_total_minor)
    if snap.fulfilled_at is not None and not order.shipments:
        # No shipments file for this order (yet): one stand-in from the export's "Fulfilled at".
        items = [ShipmentItem(line_item_id=written[i].id, quantity=written[i].quantity)
                 for i in snap.stand_in_lines()]
        if items:
            order.shipments.append(Shipment(status="fulfilled", shipped_at=snap.fulfilled_at,
                                            source=FROM_EXPORT, items=items))
            changed = True
    if snap.source_updated_at:
        order.source_updated_at = snap.source_updated_at
    if changed:  # order.id is known: the lines were flushed
        _synced(s, order, snap.source, actor, now, created=created, **(details or {}))
    return Synced(order, created, changed)


# --- refunds ------------------------------------------------------------------------------------

def record_refunds(s: Session, order: Order, refunds: dict[str, int],
                   export_total: int | None = None) -> bool:
    """Shopify refunds on ``order``, by refund id (replays and both sources agree). The export
    only has a total, kept as the row "export"; the order's refunded amount follows
    ``domain.orders.refunded_minor``. True when that amount changed."""
    have = {r.external_id: r for r in s.scalars(select(OrderRefund).where(
        OrderRefund.order_id == order.id))}
    wanted = dict(refunds)
    if export_total is not None:
        wanted[EXPORT_REFUND_ID] = export_total
    for ext, minor in wanted.items():
        row = have.get(ext)
        if row is None:
            row = have[ext] = OrderRefund(order_id=order.id, external_id=ext[:64],
                                          amount_cents=minor)
            s.add(row)
        else:
            row.amount_cents = minor
    total = refunded_minor({k: r.amount_cents for k, r in have.items()})
    if order.refunded_cents != total:
        order.refunded_cents = total
        return True
    return False


def add_refund(s: Session, order: Order, refunds: Sequence[RefundSnapshot], *, actor: str,
               now: datetime, details: dict | None = None) -> bool:
    """Refunds reported one at a time (Shopify's ``refunds/create``) added to the ledger."""
    known = {r.external_id: r.amount_cents for r in s.scalars(select(OrderRefund).where(
        OrderRefund.order_id == order.id, OrderRefund.external_id != EXPORT_REFUND_ID))}
    known.update({r.external_id: r.amount_minor for r in refunds})
    changed = record_refunds(s, order, known)
    if changed:
        _synced(s, order, "shopify", actor, now, refund=True, **(details or {}))
    return changed


# --- shipments ----------------------------------------------------------------------------------

def _has_claims(s: Session, sh: Shipment) -> bool:
    ids = [si.id for si in sh.items]
    return bool(ids) and s.scalars(
        select(ClaimItem.id).where(ClaimItem.shipment_item_id.in_(ids)).limit(1)
    ).first() is not None


def apply_shipment(s: Session, order: Order | None, snap: ShipmentSnapshot, *, actor: str,
                   now: datetime) -> str:
    """Create or update the shipment ``snap`` tells of on ``order``: "created", "updated" or
    "unchanged". ``OrderDataError`` (nothing written) when it can't be taken."""
    number = snap.order_number
    if order is None:
        raise OrderDataError(f"order #{number} is not in the portal; import the orders first",
                             snap.line)
    check_shipment(snap)
    wanted = match_items(number, order.line_items, snap)
    current = next((sh for sh in order.shipments if sh.tracking_number == snap.tracking_number),
                   None)
    elsewhere: dict[int, int] = {}
    for sh in order.shipments:
        if sh is not current and counts_against_order(sh.source, sh.is_replacement):
            for si in sh.items:
                elsewhere[si.line_item_id] = elsewhere.get(si.line_item_id, 0) + si.quantity
    why = over_ordered(number, order.line_items, elsewhere, wanted)
    if why:
        raise OrderDataError(why, snap.line)
    stand_ins = [sh for sh in order.shipments if sh.source == FROM_EXPORT]
    if any(_has_claims(s, sh) for sh in stand_ins):
        raise OrderDataError(f"order #{number} already has a claim on its shipment; its "
                             "shipments can't be replaced", snap.line)
    for sh in stand_ins:  # real shipments replace the stand-in made from "Fulfilled at"
        order.shipments.remove(sh)
        s.delete(sh)
    s.flush()
    fields = shipment_fields(snap, live=tracking.is_live(s, snap.tracking_number), stored=current)
    if current is None:
        order.shipments.append(Shipment(
            tracking_number=snap.tracking_number, source=snap.source,
            external_id=snap.external_id,
            items=[ShipmentItem(line_item_id=k, quantity=v) for k, v in wanted.items()], **fields))
        s.flush()
        tracking.apply_to_shipments(s, snap.tracking_number)  # carrier events that came first
        track17_registration.queue(s, snap.tracking_number, snap.carrier)  # with an API key
        outcome = "created"
    else:
        changed = False
        for k, v in fields.items():
            if getattr(current, k) != v:
                setattr(current, k, v)
                changed = True
        have = {si.line_item_id: si for si in current.items}
        for li_id, qty in wanted.items():
            si = have.get(li_id)
            if si is None:
                current.items.append(ShipmentItem(line_item_id=li_id, quantity=qty))
                changed = True
            elif si.quantity != qty:
                si.quantity = qty
                changed = True
        if snap.external_id and current.external_id != snap.external_id:
            current.external_id = snap.external_id
        outcome = "updated" if changed else "unchanged"
    if outcome != "unchanged":
        _synced(s, order, snap.source, actor, now, shipment=outcome)
    return outcome


def apply_fulfillment(s: Session, order: Order, snap: ShipmentSnapshot, *, actor: str,
                      now: datetime) -> str:
    """A Shopify fulfillment as a shipment of ``order``: "" once applied, or why nothing was
    written. Its id follows a corrected tracking number (unless the shipment has a claim); an
    item without SKU is the order's line of that name; the protection line isn't shipped."""
    by_id = next((sh for sh in order.shipments
                  if snap.external_id and sh.external_id == snap.external_id), None)
    if by_id is not None and by_id.tracking_number != snap.tracking_number:
        if _has_claims(s, by_id):
            return (f"the fulfillment's tracking number changed to {snap.tracking_number}, but "
                    "its shipment already has a claim: change it in the portal")
        by_id.tracking_number = snap.tracking_number  # a corrected tracking number
        track17_registration.queue(s, snap.tracking_number, by_id.carrier)
        s.flush()
    names = {li.name: li.sku for li in order.line_items}
    protection = {li.sku for li in order.line_items if li.is_protection}
    items = tuple(ShippedItem(it.sku or names.get(it.name, ""), it.quantity, it.line)
                  for it in snap.items)
    items = tuple(it for it in items if it.sku not in protection)
    if not items:
        return "the fulfillment carries no shippable items"
    apply_shipment(s, order, replace(snap, order_number=order.order_number, items=items),
                   actor=actor, now=now)
    return ""


# --- whole files and bodies ---------------------------------------------------------------------

def _unit(engine: Engine, preview: bool, work: Callable[[Session], Counts]) -> Counts:
    """``work`` in one unit of work; for a preview in a transaction that is rolled back."""
    if not preview:
        return run(engine, work)
    with scratch_session(engine) as s:
        s.info[PENDING] = []
        return work(s)


def import_orders(engine: Engine, snapshots: Sequence[OrderSnapshot], *, preview: bool = False,
                  actor: str = "import", now: datetime | None = None,
                  progress: Callable[[float], None] | None = None) -> Counts:
    """A file's orders in one transaction (``preview``: rolled back, nothing written)."""
    now = now or utcnow()

    def work(s: Session) -> Counts:
        counts = Counts()
        existing = _orders_by_number(s, (snap.number for snap in snapshots))
        for i, snap in enumerate(snapshots):
            done = _upsert(s, existing.get(snap.number), snap, actor=actor, now=now)
            counts.add("created" if done.created else "updated" if done.changed else "unchanged")
            if progress and i % 50 == 0:
                progress(i / max(1, len(snapshots)))
        s.flush()
        return counts

    return _unit(engine, preview, work)


def import_shipments(engine: Engine, snapshots: Sequence[ShipmentSnapshot], *,
                     preview: bool = False, actor: str = "import",
                     now: datetime | None = None) -> Counts:
    """A file's shipments in one transaction; one that can't be taken is counted in ``errors``
    and the others are written."""
    now = now or utcnow()

    def work(s: Session) -> Counts:
        counts = Counts()
        orders = _orders_by_number(s, (snap.order_number for snap in snapshots))
        for snap in snapshots:
            try:
                counts.add(apply_shipment(s, orders.get(snap.order_number), snap, actor=actor,
                                          now=now))
            except OrderDataError as e:
                counts.errors.append(e)
        s.flush()
        return counts

    return _unit(engine, preview, work)


def set_stock(engine: Engine, on_hand: dict[str, int], *, preview: bool = False) -> Counts:
    """Stock levels by SKU, as the stock CSV gives them."""
    def work(s: Session) -> Counts:
        counts = Counts()
        have = {st.sku: st for st in s.scalars(select(Stock).where(
            Stock.sku.in_(list(on_hand))))} if on_hand else {}
        for sku, qty in on_hand.items():
            st = have.get(sku)
            if st is None:
                s.add(Stock(sku=sku, on_hand=qty))
                counts.add("created")
            elif st.on_hand != qty:
                st.on_hand = qty
                counts.add("updated")
            else:
                counts.add("unchanged")
        s.flush()
        return counts

    return _unit(engine, preview, work)


def sync_api_order(s: Session, snap: OrderSnapshot, shipments: Sequence[ShipmentSnapshot], *,
                   actor: str, now: datetime) -> tuple[Order, bool, int]:
    """An order and its shipments pushed through the API, in the caller's unit of work.
    Returns (order, created, shipments in the request); ``OrderDataError`` names the shipment."""
    done = upsert_order(s, snap, actor=actor, now=now)
    for i, sh in enumerate(shipments, start=1):
        try:
            apply_shipment(s, done.order, sh, actor=actor, now=now)
        except OrderDataError as e:
            raise OrderDataError(f"shipment {i}: {e.reason}", i) from None
    return done.order, done.created, len(shipments)
