"""The analytics figures computed straight from the rows: the roll-ups' yardstick.

``analytics`` reads every figure from the roll-up tables; this module computes the same figures,
with the definitions written in ``analytics``, by GROUP BY over orders, shipments, claims,
resolutions and events. The property test compares the two over random histories, the benchmark
times both, and ``python -m claims_core rollups --check`` compares them on a live database.
Nothing on a page calls it: at a million claims it takes half a minute.
"""
from __future__ import annotations

from datetime import date

from sqlalchemy import Engine, and_, case, func, select

from .. import domain
from ..domain import durations
from ..infra.db import read_session
from ..infra.models import (Claim, ClaimItem, LineItem, Order, Recovery, Resolution, Shipment,
                             ShipmentItem)
from ..infra.rollups import (claim_durations, day_of, first_carrier, live_recovery, lost_to_deadline,
                             protected_shipment_conditions, value_band)
from . import pricing
from .analytics import (GRAINS, AnalyticsFilter, Operations, _bucket, breakdown_frame,
                        claim_rates_frame, money_frame, operations_from, outcomes_frame,
                        product_names, rate_trend_frame, recoveries_frame, sku_frame,
                        store_zone_name)


def _between(engine: Engine, f: AnalyticsFilter, col) -> list:
    """``col`` (a UTC moment) in the period's store days: from the first day's start in the
    store's zone to the start of the day after the last (``domain.windows.day_start``)."""
    start, end = f.bounds(store_zone_name(engine))
    return [col >= start, col < end]


def _period(engine: Engine, col, grain: str):
    """The week or month of ``col``'s store day (as the roll-ups' ``day``)."""
    return _bucket(engine, day_of(engine.dialect.name, col), grain)


def _cohort(engine: Engine, f: AnalyticsFilter):
    """The protected shipments that left in the period (carrier filter applied), with ``first``
    set on each order's first protected shipment (over all its protected shipments)."""
    rank = func.row_number().over(partition_by=Shipment.order_id,
                                  order_by=(Shipment.shipped_at, Shipment.id))
    every = (select(Shipment.id.label("id"), Shipment.shipped_at.label("shipped_at"),
                    Shipment.carrier.label("carrier"), Order.shipping_country.label("country"),
                    Order.shipping_province.label("province"), Order.shipping_method.label("method"),
                    (rank == 1).label("first"))
             .join(Order, Order.id == Shipment.order_id)
             .where(*protected_shipment_conditions())
             .subquery("every"))
    cond = _between(engine, f, every.c.shipped_at)
    if f.carriers:
        cond.append(every.c.carrier.in_(f.carriers))
    if f.countries:
        cond.append(every.c.country.in_(f.countries))
    return select(every).where(*cond).subquery("ps")


def _claim_cond(f: AnalyticsFilter) -> list:
    """The issue filter, and (for claims outside the cohort subquery) the destination filter."""
    cond = [Claim.issue_type.in_(f.issue_types)] if f.issue_types else []
    if f.countries:
        cond.append(Claim.order_id.in_(select(Order.id).where(Order.shipping_country.in_(f.countries))))
    return cond


def claim_rates(engine: Engine, f: AnalyticsFilter):
    ps = _cohort(engine, f)
    with read_session(engine) as s:
        shipments, orders = s.execute(
            select(func.count(), func.sum(case((ps.c.first, 1), else_=0)))).one()
        counts = dict(s.execute(
            select(Claim.issue_type, func.count(Claim.id)).join(ps, ps.c.id == Claim.shipment_id)
            .where(*_claim_cond(f)).group_by(Claim.issue_type)).all())
    return claim_rates_frame(f, int(shipments or 0), int(orders or 0), counts)


def rate_trend(engine: Engine, f: AnalyticsFilter, grain: str = "week"):
    grain = grain if grain in GRAINS else "week"
    ps = _cohort(engine, f)
    b = _period(engine, ps.c.shipped_at, grain).label("period")
    with read_session(engine) as s:
        denom = dict(s.execute(select(b, func.count()).group_by(b)).all())
        num = s.execute(select(b, Claim.issue_type, func.count(Claim.id))
                        .join(ps, ps.c.id == Claim.shipment_id).where(*_claim_cond(f))
                        .group_by(b, Claim.issue_type)).all()
    return rate_trend_frame(f, denom, {(p, t): n for p, t, n in num})


def outcomes_trend(engine: Engine, f: AnalyticsFilter, grain: str = "week"):
    grain = grain if grain in GRAINS else "week"
    base = [*_claim_cond(f)]
    if f.carriers:
        base.append(Shipment.carrier.in_(f.carriers))
    out: dict[str, list[int]] = {}
    with read_session(engine) as s:
        filed_b = _period(engine, Claim.created_at, grain).label("period")
        for p, n in s.execute(
                select(filed_b, func.count(Claim.id)).join(Shipment, Shipment.id == Claim.shipment_id)
                .where(*_between(engine, f, Claim.created_at), *base).group_by(filed_b)):
            out.setdefault(p, [0, 0, 0])[0] = n
        dec_b = _period(engine, Claim.decided_at, grain).label("period")
        for p, a, d in s.execute(
                select(dec_b,
                       func.sum(case((Claim.status.in_(domain.GRANTED_STATUSES), 1), else_=0)),
                       func.sum(case((Claim.status == domain.DENIED, 1), else_=0)))
                .join(Shipment, Shipment.id == Claim.shipment_id)
                .where(*_between(engine, f, Claim.decided_at), *base).group_by(dec_b)):
            row = out.setdefault(p, [0, 0, 0])
            row[1], row[2] = int(a or 0), int(d or 0)
    return outcomes_frame(out)


_GROUPS = {"carrier": ("Carrier", ("carrier",)), "region": ("Destination", ("country", "province")),
           "method": ("Shipping method", ("method",))}


def breakdown(engine: Engine, f: AnalyticsFilter, by: str):
    if by == "sku":
        return _sku_breakdown(engine, f)
    label, cols = _GROUPS[by]
    ps = _cohort(engine, f)
    g = [ps.c[c] for c in cols]
    n = len(g)
    with read_session(engine) as s:
        denom = {tuple(r[:n]): r[n] for r in s.execute(select(*g, func.count()).group_by(*g))}
        num = {tuple(r[:n]): r[n] for r in s.execute(
            select(*g, func.count(Claim.id)).join(ps, ps.c.id == Claim.shipment_id)
            .where(*_claim_cond(f)).group_by(*g))}
    return breakdown_frame(label, denom, num)


def _sku_breakdown(engine: Engine, f: AnalyticsFilter):
    ps = _cohort(engine, f)
    with read_session(engine) as s:
        shipped = dict(s.execute(
            select(LineItem.sku, func.sum(ShipmentItem.quantity))
            .join(ShipmentItem, ShipmentItem.line_item_id == LineItem.id)
            .join(ps, ps.c.id == ShipmentItem.shipment_id).group_by(LineItem.sku)).all())
        claimed = dict(s.execute(
            select(LineItem.sku, func.sum(ClaimItem.quantity))
            .join(ShipmentItem, ShipmentItem.line_item_id == LineItem.id)
            .join(ps, ps.c.id == ShipmentItem.shipment_id)
            .join(ClaimItem, ClaimItem.shipment_item_id == ShipmentItem.id)
            .join(Claim, Claim.id == ClaimItem.claim_id)
            .where(*_claim_cond(f)).group_by(LineItem.sku)).all())
        names = product_names(s, list(shipped))
    return sku_frame({k: int(v) for k, v in shipped.items() if v},
                     {k: int(v or 0) for k, v in claimed.items()}, names)


def money_by_month(engine: Engine, f: AnalyticsFilter):
    credit = domain.credit_with_bonus(Resolution.amount_cents, Resolution.bonus_pct)
    res_cond = [*_between(engine, f, Resolution.created_at),
                Resolution.voided_at.is_(None), *_claim_cond(f)]
    if f.carriers:
        res_cond.append(Shipment.carrier.in_(f.carriers))
    with read_session(engine) as s:
        m = _period(engine, Resolution.created_at, "month").label("month")
        paid = {mo: [int(v or 0) for v in vals] for mo, *vals in s.execute(
            select(m, *(func.sum(case((Resolution.kind == kind, value), else_=0))
                        for kind, value in (("refund", Resolution.amount_cents),
                                            ("store_credit", credit),
                                            ("reshipment", Resolution.amount_cents))))
            .join(Claim, Claim.id == Resolution.claim_id)
            .join(Shipment, Shipment.id == Claim.shipment_id)
            .where(*res_cond).group_by(m))}
        om = _period(engine, Order.created_at, "month").label("month")
        fee_cond = [*_between(engine, f, Order.created_at), Order.cancelled_at.is_(None),
                    Order.protection_fee_cents > 0]
        if f.carriers:
            fee_cond.append(first_carrier().in_(f.carriers))
        if f.countries:
            fee_cond.append(Order.shipping_country.in_(f.countries))
        fees = {mo: int(v or 0) for mo, v in s.execute(
            select(om, func.sum(Order.protection_fee_cents)).where(*fee_cond).group_by(om))}
    return money_frame(paid, fees)


def operations(engine: Engine, f: AnalyticsFilter) -> Operations:
    base = [*_between(engine, f, Claim.created_at), *_claim_cond(f)]
    if f.carriers:
        base.append(Shipment.carrier.in_(f.carriers))
    with read_session(engine) as s:
        approved, denied, waiting = s.execute(
            select(func.sum(case((Claim.status.in_(domain.GRANTED_STATUSES), 1), else_=0)),
                   func.sum(case((Claim.status == domain.DENIED, 1), else_=0)),
                   func.sum(case((Claim.status == domain.NEEDS_INFO, 1), else_=0)))
            .join(Shipment, Shipment.id == Claim.shipment_id).where(*base)).one()
        d = claim_durations(engine.dialect.name, lambda _col: and_(*base))
        rows = s.execute(select(d.c.response, d.c.decision)).all()
    hist: dict[str, dict[int, int]] = {"response": {}, "decision": {}}
    for response, decision in rows:
        for kind, seconds in (("response", response), ("decision", decision)):
            if seconds is not None:
                edge = durations.duration_bucket(int(seconds))
                hist[kind][edge] = hist[kind].get(edge, 0) + 1
    return operations_from(int(approved or 0), int(denied or 0), int(waiting or 0),
                           {k: list(v.items()) for k, v in hist.items()})


def pricing_segment_inputs(engine: Engine, date_from, date_to, by: str):
    """``pricing.segment_inputs`` from the rows: the period's protected orders (placed in it,
    protection bought, not cancelled) per segment, and the live resolutions of their claims."""
    if by not in pricing.SEGMENTS:
        return pricing.segment_inputs(engine, date_from, date_to, by)  # its refusal
    f = AnalyticsFilter(date_from, date_to)
    carrier = first_carrier()
    keys = {"all": [], "carrier": [case((carrier.is_(None), 0), else_=1), func.coalesce(carrier, "")],
            "region": [Order.shipping_country, Order.shipping_province],
            "value_band": [value_band()]}[by]
    cohort = (select(Order.id.label("order_id"), Order.protection_fee_cents.label("fee"),
                     Order.total_cents.label("total"), *(k.label(f"k{i}") for i, k in enumerate(keys)))
              .where(*_between(engine, f, Order.created_at),
                     Order.protection_purchased_at.is_not(None), Order.cancelled_at.is_(None))
              .subquery("cohort"))
    seg = [cohort.c[f"k{i}"] for i in range(len(keys))]
    credit = domain.credit_with_bonus(Resolution.amount_cents, Resolution.bonus_pct)
    reship = Resolution.kind == "reshipment"
    n = len(keys)
    with read_session(engine) as s:
        orders = {tuple(r[:n]): r[n:] for r in s.execute(
            select(*seg, func.count(), func.sum(cohort.c.fee), func.sum(cohort.c.total)).group_by(*seg))}
        paid = {tuple(r[:n]): r[n:] for r in s.execute(
            select(*seg, func.count(func.distinct(Claim.id)),
                   func.sum(case((Resolution.kind == "refund", Resolution.amount_cents), else_=0)),
                   func.sum(case((Resolution.kind == "store_credit", credit), else_=0)),
                   func.sum(case((reship, Resolution.amount_cents), else_=0)),
                   func.sum(case((reship, 1), else_=0)))
            .select_from(cohort).join(Claim, Claim.order_id == cohort.c.order_id)
            .join(Resolution, Resolution.claim_id == Claim.id)
            .where(Resolution.voided_at.is_(None)).group_by(*seg))}
        recovered = {tuple(r[:n]): r[n] for r in s.execute(
            select(*seg, func.sum(Recovery.recovered_cents))
            .select_from(cohort).join(Claim, Claim.order_id == cohort.c.order_id)
            .join(Recovery, Recovery.claim_id == Claim.id)
            .where(live_recovery()).group_by(*seg))}
    return pricing.segments(by, [(k, (*v, *paid.get(k, (0, 0, 0, 0, 0)), recovered.get(k, 0)))
                                 for k, v in orders.items()])


def recoveries_by_carrier(engine: Engine, f: AnalyticsFilter):
    """``analytics.recoveries_by_carrier`` from the rows: recoveries opened in the period (not
    cancelled), per their shipment's carrier."""
    lost = and_(Recovery.state == "written_off", lost_to_deadline())
    cond = [*_between(engine, f, Recovery.created_at), live_recovery(),
            *_claim_cond(f)]
    if f.carriers:
        cond.append(Shipment.carrier.in_(f.carriers))
    with read_session(engine) as s:
        rows = {carrier: [int(v or 0) for v in vals] for carrier, *vals in s.execute(
            select(Shipment.carrier, func.count(), func.sum(Recovery.paid_out_cents),
                   func.sum(Recovery.claimable_cents),
                   func.sum(case((Recovery.filed_at.is_not(None), 1), else_=0)),
                   func.sum(Recovery.recovered_cents),
                   func.sum(case((Recovery.state == "rejected", 1), else_=0)),
                   func.sum(case((Recovery.state == "written_off", 1), else_=0)),
                   func.sum(case((lost, 1), else_=0)),
                   func.sum(case((lost, Recovery.claimable_cents), else_=0)))
            .select_from(Recovery).join(Claim, Claim.id == Recovery.claim_id)
            .join(Shipment, Shipment.id == Recovery.shipment_id)
            .where(*cond).group_by(Shipment.carrier))}
    return recoveries_frame(rows)


FIGURES = (("claim_rates", ()), ("rate_trend", ("week",)), ("rate_trend", ("month",)),
           ("outcomes_trend", ("week",)), ("outcomes_trend", ("month",)),
           ("breakdown", ("carrier",)), ("breakdown", ("region",)), ("breakdown", ("method",)),
           ("breakdown", ("sku",)), ("money_by_month", ()), ("operations", ()),
           ("recoveries_by_carrier", ()))


def differences(engine: Engine, filters: list[AnalyticsFilter] | None = None) -> list[str]:
    """Every figure (and pricing segment) that differs between the roll-ups and the rows, for
    the given filters (default: all time)."""
    import pandas as pd  # noqa: PLC0415 - only for the comparison

    from . import analytics
    filters = filters or [AnalyticsFilter(date(2000, 1, 1), date(2100, 1, 1))]
    out = []
    for f in filters:
        for name, args in FIGURES:
            fast = getattr(analytics, name)(engine, f, *args)
            rows = globals()[name](engine, f, *args)
            if isinstance(fast, pd.DataFrame):
                same = fast.reset_index(drop=True).astype(object).equals(rows.reset_index(drop=True).astype(object))
            else:
                same = fast == rows
            if not same:
                out.append(f"{name}{args} differs for {f}")
        for by in pricing.SEGMENTS:
            if pricing.segment_inputs(engine, f.date_from, f.date_to, by) != pricing_segment_inputs(
                    engine, f.date_from, f.date_to, by):
                out.append(f"pricing by {by} differs for {f}")
    return out
