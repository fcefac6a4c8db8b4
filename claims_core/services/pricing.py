"""Is my protection priced right? Reads one period's totals per segment; the arithmetic is
``domain.pricing``.

The period is a cohort of orders: **protected orders** are orders placed in the period (UTC days,
``date_to`` inclusive) with protection bought (``protection_purchased_at`` set) and not cancelled;
their fees are the fee revenue. **Paid claims** are the claims on those orders with at least one
resolution that was not voided (an undone approval doesn't count), whenever granted: a recent
period's claims are still coming in, so a period whose filing windows have closed prices best.

Segments (``by``):

- ``"all"``: one row, "All orders";
- ``"carrier"``: the carrier of the order's first non-replacement shipment (earliest shipped,
  then lowest id); orders without one are "No shipment", a blank carrier "Unknown carrier";
- ``"region"``: shipping country and province, "US-CA" ("US" without a province; neither is
  "Unknown region");

Carrier and region rows come most protected orders first (then by name), the unknowns last.
- ``"value_band"``: the order total's band (``domain.pricing.ORDER_VALUE_BANDS``), every band
  listed in order, empty ones too.

Two GROUP BY queries over a derived table of the period's protected orders (one row per order
with its segment key): orders, fees and order value; then resolutions of their claims. Nothing
loops over orders in Python.
"""
from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone

from sqlalchemy import Engine, case, distinct, func, literal, select

from ..domain import money
from ..domain.errors import ErrorCode, InvalidInput
from ..domain.pricing import (
    ORDER_VALUE_BANDS,
    Advice,
    Assumptions,
    SegmentInputs,
    advise,
)
from ..infra.db import read_session
from ..infra.models import Claim, Order, Resolution, Shipment, settings_row

SEGMENTS = ("all", "carrier", "region", "value_band")
ALL_ORDERS = "All orders"
NO_SHIPMENT = "No shipment"
UNKNOWN_CARRIER = "Unknown carrier"
UNKNOWN_REGION = "Unknown region"


def _bounds(date_from: date, date_to: date) -> tuple[datetime, datetime]:
    start = datetime.combine(date_from, time.min, tzinfo=timezone.utc)
    end = datetime.combine(date_to + timedelta(days=1), time.min, tzinfo=timezone.utc)
    return start, end


def _first_carrier():
    """The carrier of the order's first non-replacement shipment (NULL when it has none)."""
    return (select(Shipment.carrier)
            .where(Shipment.order_id == Order.id, Shipment.is_replacement.is_(False))
            .order_by(Shipment.shipped_at, Shipment.id)
            .limit(1)
            .correlate(Order)
            .scalar_subquery())


def _value_band():
    whens = [(Order.total_cents < hi, label) for label, _lo, hi in ORDER_VALUE_BANDS if hi is not None]
    return case(*whens, else_=ORDER_VALUE_BANDS[-1][0])


def _keys(by: str) -> list:
    if by == "all":
        return [literal(ALL_ORDERS)]
    if by == "carrier":
        return [_first_carrier()]
    if by == "region":
        return [Order.shipping_country, Order.shipping_province]
    if by == "value_band":
        return [_value_band()]
    raise InvalidInput(f"Unknown segment “{by}”; choose one of {', '.join(SEGMENTS)}.",
                       ErrorCode.INVALID_INPUT)


def _label(by: str, key: tuple) -> str:
    if by == "carrier":
        (carrier,) = key
        if carrier is None:
            return NO_SHIPMENT
        return carrier.strip() or UNKNOWN_CARRIER
    if by == "region":
        country, province = ((k or "").strip() for k in key)
        return "-".join(p for p in (country, province) if p) or UNKNOWN_REGION
    return key[0]


def segment_inputs(engine: Engine, date_from: date, date_to: date, by: str) -> list[SegmentInputs]:
    """Per segment: protected orders, fees, order value, and the live resolutions of their claims
    (refunds, store credit at face value incl. bonus, reshipments with their item price)."""
    keys = _keys(by)
    start, end = _bounds(date_from, date_to)
    cohort = (select(Order.id.label("order_id"),
                     Order.protection_fee_cents.label("fee"),
                     Order.total_cents.label("total"),
                     *(k.label(f"k{i}") for i, k in enumerate(keys)))
              .where(Order.created_at >= start, Order.created_at < end,
                     Order.protection_purchased_at.is_not(None),
                     Order.cancelled_at.is_(None))
              .subquery("cohort"))
    seg = [cohort.c[f"k{i}"] for i in range(len(keys))]
    credit_face = money.credit_with_bonus(Resolution.amount_cents, Resolution.bonus_pct)
    # A reshipment's amount is the claimed items' price (what the customer paid for them).
    reship = Resolution.kind == "reshipment"
    with read_session(engine) as s:
        orders = s.execute(
            select(*seg, func.count(), func.sum(cohort.c.fee), func.sum(cohort.c.total))
            .group_by(*seg)
        ).all()
        paid = s.execute(
            select(*seg,
                   func.count(distinct(Claim.id)),
                   func.sum(case((Resolution.kind == "refund", Resolution.amount_cents), else_=0)),
                   func.sum(case((Resolution.kind == "store_credit", credit_face), else_=0)),
                   func.sum(case((reship, Resolution.amount_cents), else_=0)),
                   func.sum(case((reship, 1), else_=0)))
            .select_from(cohort)
            .join(Claim, Claim.order_id == cohort.c.order_id)
            .join(Resolution, Resolution.claim_id == Claim.id)
            .where(Resolution.voided_at.is_(None))
            .group_by(*seg)
        ).all()
    n = len(keys)
    totals: dict[str, dict[str, int]] = {}
    for names, result in ((_ORDER_TOTALS, orders), (_PAID_TOTALS, paid)):
        for row in result:
            t = totals.setdefault(_label(by, tuple(row[:n])), dict.fromkeys(_TOTALS, 0))
            for name, v in zip(names, row[n:]):
                t[name] += int(v or 0)
    rows = [SegmentInputs(label, **t) for label, t in totals.items()]
    if by == "all":
        return rows or [_empty(ALL_ORDERS)]
    if by == "value_band":
        have = {r.label: r for r in rows}
        return [have.get(label) or _empty(label) for label, _lo, _hi in ORDER_VALUE_BANDS]
    # most orders first; "No shipment" and the unknowns last
    last = (NO_SHIPMENT, UNKNOWN_CARRIER, UNKNOWN_REGION)
    return sorted(rows, key=lambda r: (r.label in last, -r.protected_orders, r.label))


_ORDER_TOTALS = ("protected_orders", "fee_revenue_cents", "order_value_cents")
_PAID_TOTALS = ("paid_claims", "refunds_cents", "credit_face_cents", "reship_item_cents",
                "reshipments")
_TOTALS = _ORDER_TOTALS + _PAID_TOTALS


def _empty(label: str) -> SegmentInputs:
    return SegmentInputs(label, **dict.fromkeys(_TOTALS, 0))


def advice(engine: Engine, date_from: date, date_to: date, by: str,
           a: Assumptions) -> list[Advice]:
    """The pricing advice per segment for the period."""
    return [advise(i, a) for i in segment_inputs(engine, date_from, date_to, by)]


def assumptions(engine: Engine) -> Assumptions:
    """The store's pricing assumptions (Settings → Claim rules), as the advisor reads them."""
    with read_session(engine) as s:
        row = settings_row(s)
        return Assumptions(target_loss_ratio=row.target_loss_ratio_pct / 100,
                           credit_cost_ratio=row.credit_cost_pct / 100,
                           reship_cost_ratio=row.reship_cost_pct / 100,
                           reship_shipping_cents=row.reship_shipping_cents)


def report(engine: Engine, date_from: date, date_to: date, by: str,
           a: Assumptions) -> list[tuple[SegmentInputs, Advice]]:
    """Each segment's inputs with its advice (one read), for the page and its what-if."""
    return [(i, advise(i, a)) for i in segment_inputs(engine, date_from, date_to, by)]
