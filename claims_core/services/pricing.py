"""Is my protection priced right? Reads one period's totals per segment; the arithmetic is
``domain.pricing``.

The period is a cohort of orders: **protected orders** are orders placed in the period (the store's
local days, ``date_to`` inclusive) with protection bought (``protection_purchased_at`` set) and not cancelled;
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

One GROUP BY over the orders roll-up (``rollup_orders``, kept in the same transaction as every
change); ``analytics_rows.pricing_segment_inputs`` computes the same from the rows.
"""
from __future__ import annotations

from datetime import date

from sqlalchemy import Engine, func, select

from ..domain.errors import ErrorCode, InvalidInput
from ..domain.pricing import (
    ORDER_VALUE_BANDS,
    Advice,
    Assumptions,
    SegmentInputs,
    advise,
)
from ..infra.db import read_session
from ..infra.models import ROLLUP_ORDERS, settings_row

SEGMENTS = ("all", "carrier", "region", "value_band")
ALL_ORDERS = "All orders"
NO_SHIPMENT = "No shipment"
UNKNOWN_CARRIER = "Unknown carrier"
UNKNOWN_REGION = "Unknown region"


def _keys(by: str) -> list:
    """The roll-up columns a segment is keyed by."""
    t = ROLLUP_ORDERS
    if by == "all":
        return []
    if by == "carrier":
        return [t.c.has_shipment, t.c.carrier]
    if by == "region":
        return [t.c.country, t.c.province]
    if by == "value_band":
        return [t.c.value_band]
    raise InvalidInput(f"Unknown segment “{by}”; choose one of {', '.join(SEGMENTS)}.",
                       ErrorCode.PRICING_INPUT_INVALID)


def _label(by: str, key: tuple) -> str:
    if by == "all":
        return ALL_ORDERS
    if by == "carrier":
        has_shipment, carrier = key
        if not has_shipment:
            return NO_SHIPMENT
        return (carrier or "").strip() or UNKNOWN_CARRIER
    if by == "region":
        country, province = ((k or "").strip() for k in key)
        return "-".join(p for p in (country, province) if p) or UNKNOWN_REGION
    return key[0]


def segment_inputs(engine: Engine, date_from: date, date_to: date, by: str) -> list[SegmentInputs]:
    """Per segment: protected orders, fees, order value, and the live resolutions of their claims
    (refunds, store credit at face value incl. bonus, reshipments with their item price) and
    what the carriers paid back on those claims (recoveries), from the orders roll-up
    (``infra/rollups.py``)."""
    keys = _keys(by)
    t = ROLLUP_ORDERS
    with read_session(engine) as s:
        rows = s.execute(
            select(*keys, *(func.sum(t.c[c]) for c in _ROLLUP_COLUMNS))
            .where(t.c.day >= date_from, t.c.day <= date_to)
            .group_by(*keys).having(func.sum(t.c.protected_orders) > 0)).all()
    n = len(keys)
    return segments(by, [(tuple(r[:n]), r[n:]) for r in rows])


def segments(by: str, rows: list[tuple[tuple, tuple]]) -> list[SegmentInputs]:
    """Segment inputs from (key, totals in ``_TOTALS`` order) pairs, labelled and in the page's
    order."""
    totals: dict[str, dict[str, int]] = {}
    for key, values in rows:
        t = totals.setdefault(_label(by, key), dict.fromkeys(_TOTALS, 0))
        for name, v in zip(_TOTALS, values):
            t[name] += int(v or 0)
    out = [SegmentInputs(label, **t) for label, t in totals.items()]
    if by == "all":
        return out or [_empty(ALL_ORDERS)]
    if by == "value_band":
        have = {r.label: r for r in out}
        return [have.get(label) or _empty(label) for label, _lo, _hi in ORDER_VALUE_BANDS]
    # most orders first; "No shipment" and the unknowns last
    last = (NO_SHIPMENT, UNKNOWN_CARRIER, UNKNOWN_REGION)
    return sorted(out, key=lambda r: (r.label in last, -r.protected_orders, r.label))


_ROLLUP_COLUMNS = ("protected_orders", "protected_fees", "protected_value", "paid_claims", "refunds",
                   "store_credit", "reshipments", "reshipped", "recovered")
_TOTALS = ("protected_orders", "fee_revenue_cents", "order_value_cents", "paid_claims",
           "refunds_cents", "credit_face_cents", "reship_item_cents", "reshipments",
           "recovered_cents")


def _empty(label: str) -> SegmentInputs:
    return SegmentInputs(label, **dict.fromkeys(_TOTALS, 0))


def advice(engine: Engine, date_from: date, date_to: date, by: str,
           a: Assumptions) -> list[Advice]:
    """The pricing advice per segment for the period."""
    return [advise(i, a) for i in segment_inputs(engine, date_from, date_to, by)]


def assumptions(engine: Engine, *, count_recoveries: bool = False) -> Assumptions:
    """The store's pricing assumptions (Settings → Claim rules), as the advisor reads them;
    ``count_recoveries`` (the advisor's checkbox) prices on the net cost."""
    with read_session(engine) as s:
        row = settings_row(s)
        return Assumptions(target_loss_ratio=row.target_loss_ratio_pct / 100,
                           credit_cost_ratio=row.credit_cost_pct / 100,
                           reship_cost_ratio=row.reship_cost_pct / 100,
                           reship_shipping_cents=row.reship_shipping_cents,
                           count_recoveries=bool(count_recoveries))


def report(engine: Engine, date_from: date, date_to: date, by: str,
           a: Assumptions) -> list[tuple[SegmentInputs, Advice]]:
    """Each segment's inputs with its advice (one read), for the page and its what-if."""
    return [(i, advise(i, a)) for i in segment_inputs(engine, date_from, date_to, by)]
