"""Analytics: every figure is a GROUP BY in the database, returned as a small DataFrame.

Definitions (also shown on the page):
- a *protected shipment* is a non-replacement shipment of a non-cancelled order whose protection
  was bought before the shipment left;
- the *claim rate* for a period is claims on protected shipments fulfilled in that period, per 100
  such shipments (a cohort rate: a claim counts in the period its shipment left, whenever it was
  filed); per 100 protected orders uses the orders those shipments belong to;
- money figures count resolutions in the month they were granted; protection fees count in the
  month the order was placed; loss ratio = (refunds + store credit incl. bonus + reshipments at item
  price) / protection fees.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from time import perf_counter

import pandas as pd
from sqlalchemy import Engine, case, distinct, func, literal, select
from sqlalchemy.sql import ColumnElement

from .. import domain
from ..infra.db import read_session
from ..infra.models import (Claim, ClaimItem, Event, LineItem, Order, Resolution, Shipment, ShipmentItem)

GRAINS = ("week", "month")


@dataclass(frozen=True)
class AnalyticsFilter:
    date_from: date
    date_to: date  # inclusive
    issue_types: tuple[str, ...] = ()
    carriers: tuple[str, ...] = ()

    @property
    def start(self) -> datetime:
        return datetime.combine(self.date_from, time.min, tzinfo=timezone.utc)

    @property
    def end(self) -> datetime:
        return datetime.combine(self.date_to + timedelta(days=1), time.min, tzinfo=timezone.utc)


def data_version(engine: Engine) -> int:
    """Changes whenever a claim changes (every change writes an event): a cache key."""
    with read_session(engine) as s:
        return s.scalar(select(func.max(Event.id))) or 0


# --- dialect helpers ----------------------------------------------------------------------------

def _bucket(engine: Engine, col, grain: str) -> ColumnElement:
    if engine.dialect.name == "sqlite":
        if grain == "week":  # Monday of the week
            return func.date(col, "weekday 0", "-6 days")
        return func.strftime("%Y-%m-01", col)
    return func.to_char(func.date_trunc(grain, col), "YYYY-MM-DD")


def _days_between(engine: Engine, start, end) -> ColumnElement:
    if engine.dialect.name == "sqlite":
        return func.julianday(end) - func.julianday(start)
    return func.extract("epoch", end - start) / 86400.0


# --- the protected-shipment cohort --------------------------------------------------------------

def _protected_shipments(f: AnalyticsFilter):
    cond = [
        Shipment.is_replacement.is_(False),
        Shipment.shipped_at >= f.start, Shipment.shipped_at < f.end,
        Order.cancelled_at.is_(None),
        Order.protection_purchased_at.is_not(None),
        Order.protection_purchased_at <= Shipment.shipped_at,
    ]
    if f.carriers:
        cond.append(Shipment.carrier.in_(f.carriers))
    return cond


def _claim_cond(f: AnalyticsFilter):
    return [Claim.issue_type.in_(f.issue_types)] if f.issue_types else []


def claim_rates(engine: Engine, f: AnalyticsFilter) -> pd.DataFrame:
    """Claims per 100 protected shipments and per 100 protected orders, per issue type."""
    with read_session(engine) as s:
        shipments, orders = s.execute(
            select(func.count(Shipment.id), func.count(distinct(Shipment.order_id)))
            .join(Order, Order.id == Shipment.order_id).where(*_protected_shipments(f))
        ).one()
        rows = s.execute(
            select(Claim.issue_type, func.count(Claim.id))
            .join(Shipment, Shipment.id == Claim.shipment_id)
            .join(Order, Order.id == Shipment.order_id)
            .where(*_protected_shipments(f), *_claim_cond(f))
            .group_by(Claim.issue_type)
        ).all()
    counts = dict(rows)
    types = list(f.issue_types) or list(domain.ISSUE_TYPES)
    data = [{
        "issue_type": t, "issue": domain.ISSUE_TYPES[t].label, "category": domain.ISSUE_TYPES[t].category,
        "claims": counts.get(t, 0), "protected_shipments": shipments, "protected_orders": orders,
        "per_100_shipments": _rate(counts.get(t, 0), shipments),
        "per_100_orders": _rate(counts.get(t, 0), orders),
    } for t in types]
    return pd.DataFrame(data, columns=["issue_type", "issue", "category", "claims",
                                       "protected_shipments", "protected_orders",
                                       "per_100_shipments", "per_100_orders"])


def _rate(n: int, d: int) -> float | None:
    return round(100.0 * n / d, 2) if d else None


def rate_trend(engine: Engine, f: AnalyticsFilter, grain: str = "week") -> pd.DataFrame:
    """Claim rate per issue type per week or month (by when the shipment left)."""
    grain = grain if grain in GRAINS else "week"
    with read_session(engine) as s:
        b = _bucket(engine, Shipment.shipped_at, grain).label("period")
        denom = dict(s.execute(
            select(b, func.count(Shipment.id)).join(Order, Order.id == Shipment.order_id)
            .where(*_protected_shipments(f)).group_by(b)
        ).all())
        b2 = _bucket(engine, Shipment.shipped_at, grain).label("period")
        num = s.execute(
            select(b2, Claim.issue_type, func.count(Claim.id))
            .join(Shipment, Shipment.id == Claim.shipment_id)
            .join(Order, Order.id == Shipment.order_id)
            .where(*_protected_shipments(f), *_claim_cond(f))
            .group_by(b2, Claim.issue_type)
        ).all()
    counts = {(p, t): n for p, t, n in num}
    # every period with shipments × every issue type asked for (or seen): a quiet week is a 0,
    # not a gap in the line
    types = list(f.issue_types) or sorted({t for _p, t in counts}, key=list(domain.ISSUE_TYPES).index)
    rows = [{"period": p, "issue": domain.ISSUE_TYPES[t].label, "claims": counts.get((p, t), 0),
             "protected_shipments": d, "per_100_shipments": _rate(counts.get((p, t), 0), d)}
            for p, d in denom.items() for t in types]
    df = pd.DataFrame(rows, columns=["period", "issue", "claims", "protected_shipments",
                                     "per_100_shipments"])
    return df.sort_values(["period", "issue"]).reset_index(drop=True)


def outcomes_trend(engine: Engine, f: AnalyticsFilter, grain: str = "week") -> pd.DataFrame:
    """Claims filed, approved and denied per period (filed by filing date, decisions by decision
    date), for claims on protected shipments in the carrier/issue filters."""
    grain = grain if grain in GRAINS else "week"
    base = [*_claim_cond(f)]
    if f.carriers:
        base.append(Shipment.carrier.in_(f.carriers))
    with read_session(engine) as s:
        filed_b = _bucket(engine, Claim.created_at, grain).label("period")
        filed = s.execute(
            select(filed_b, func.count(Claim.id)).join(Shipment, Shipment.id == Claim.shipment_id)
            .where(Claim.created_at >= f.start, Claim.created_at < f.end, *base).group_by(filed_b)
        ).all()
        dec_b = _bucket(engine, Claim.decided_at, grain).label("period")
        decided = s.execute(
            select(dec_b,
                   func.sum(case((Claim.status.in_(domain.GRANTED_STATUSES), 1), else_=0)),
                   func.sum(case((Claim.status == domain.DENIED, 1), else_=0)))
            .join(Shipment, Shipment.id == Claim.shipment_id)
            .where(Claim.decided_at >= f.start, Claim.decided_at < f.end, *base).group_by(dec_b)
        ).all()
    out: dict[str, dict] = {}
    for p, n in filed:
        out.setdefault(p, {"period": p, "filed": 0, "approved": 0, "denied": 0})["filed"] = n
    for p, a, d in decided:
        row = out.setdefault(p, {"period": p, "filed": 0, "approved": 0, "denied": 0})
        row["approved"], row["denied"] = int(a or 0), int(d or 0)
    df = pd.DataFrame(sorted(out.values(), key=lambda r: r["period"]),
                      columns=["period", "filed", "approved", "denied"])
    return df


# --- breakdowns ---------------------------------------------------------------------------------

BREAKDOWNS = {
    "carrier": ("Carrier", Shipment.carrier),
    "region": ("Destination", Order.shipping_country + literal(" ") + Order.shipping_province),
    "method": ("Shipping method", Order.shipping_method),
}


def breakdown(engine: Engine, f: AnalyticsFilter, by: str) -> pd.DataFrame:
    """Claims and claim rate per carrier, destination region, shipping method, or product (SKU)."""
    if by == "sku":
        return _sku_breakdown(engine, f)
    label, col = BREAKDOWNS[by]
    with read_session(engine) as s:
        g = col.label("group")
        denom = dict(s.execute(
            select(g, func.count(Shipment.id)).join(Order, Order.id == Shipment.order_id)
            .where(*_protected_shipments(f)).group_by(g)
        ).all())
        g2 = col.label("group")
        num = dict(s.execute(
            select(g2, func.count(Claim.id)).join(Shipment, Shipment.id == Claim.shipment_id)
            .join(Order, Order.id == Shipment.order_id)
            .where(*_protected_shipments(f), *_claim_cond(f)).group_by(g2)
        ).all())
    rows = [{label: (k or "(unknown)").strip() or "(unknown)", "claims": num.get(k, 0),
             "protected_shipments": d, "per_100_shipments": _rate(num.get(k, 0), d)}
            for k, d in denom.items()]
    df = pd.DataFrame(rows, columns=[label, "claims", "protected_shipments", "per_100_shipments"])
    return df.sort_values(["claims", "protected_shipments"], ascending=False).reset_index(drop=True)


def _sku_breakdown(engine: Engine, f: AnalyticsFilter) -> pd.DataFrame:
    with read_session(engine) as s:
        shipped = s.execute(
            select(LineItem.sku, func.min(LineItem.name), func.sum(ShipmentItem.quantity))
            .join(ShipmentItem, ShipmentItem.line_item_id == LineItem.id)
            .join(Shipment, Shipment.id == ShipmentItem.shipment_id)
            .join(Order, Order.id == Shipment.order_id)
            .where(*_protected_shipments(f)).group_by(LineItem.sku)
        ).all()
        claimed = dict(s.execute(
            select(LineItem.sku, func.sum(ClaimItem.quantity))
            .join(ShipmentItem, ShipmentItem.line_item_id == LineItem.id)
            .join(ClaimItem, ClaimItem.shipment_item_id == ShipmentItem.id)
            .join(Claim, Claim.id == ClaimItem.claim_id)
            .join(Shipment, Shipment.id == ShipmentItem.shipment_id)
            .join(Order, Order.id == Shipment.order_id)
            .where(*_protected_shipments(f), *_claim_cond(f)).group_by(LineItem.sku)
        ).all())
    rows = [{"SKU": sku or "(none)", "Product": name, "units_claimed": int(claimed.get(sku, 0) or 0),
             "units_shipped": int(n or 0), "per_100_units": _rate(int(claimed.get(sku, 0) or 0), int(n or 0))}
            for sku, name, n in shipped]
    df = pd.DataFrame(rows, columns=["SKU", "Product", "units_claimed", "units_shipped",
                                     "per_100_units"])
    return df.sort_values(["units_claimed", "units_shipped"], ascending=False).reset_index(drop=True)


# --- money --------------------------------------------------------------------------------------

def money_by_month(engine: Engine, f: AnalyticsFilter) -> pd.DataFrame:
    """Refunds, store credit (with bonus) and reshipments granted, against protection fees
    collected, per month; loss ratio = paid out / fees (None when no fees that month)."""
    with read_session(engine) as s:
        m = _bucket(engine, Resolution.created_at, "month").label("month")
        credit_value = domain.credit_with_bonus(Resolution.amount_cents, Resolution.bonus_pct)
        res_cond = [Resolution.created_at >= f.start, Resolution.created_at < f.end,
                    Resolution.voided_at.is_(None), *_claim_cond(f)]
        if f.carriers:
            res_cond.append(Shipment.carrier.in_(f.carriers))
        paid = s.execute(
            select(m,
                   func.sum(case((Resolution.kind == "refund", Resolution.amount_cents), else_=0)),
                   func.sum(case((Resolution.kind == "store_credit", credit_value), else_=0)),
                   func.sum(case((Resolution.kind == "reshipment", Resolution.amount_cents), else_=0)))
            .join(Claim, Claim.id == Resolution.claim_id)
            .join(Shipment, Shipment.id == Claim.shipment_id)
            .where(*res_cond).group_by(m)
        ).all()
        om = _bucket(engine, Order.created_at, "month").label("month")
        fee_cond = [Order.created_at >= f.start, Order.created_at < f.end, Order.cancelled_at.is_(None),
                    Order.protection_fee_cents > 0]
        if f.carriers:
            fee_cond.append(Order.id.in_(select(Shipment.order_id).where(Shipment.carrier.in_(f.carriers))))
        fees = dict(s.execute(select(om, func.sum(Order.protection_fee_cents)).where(*fee_cond)
                              .group_by(om)).all())
    out: dict[str, dict] = {}
    for mo, refund, credit, reship in paid:
        out[mo] = {"month": mo, "refunds": int(refund or 0), "store_credit": int(round(credit or 0)),
                   "reshipments": int(reship or 0)}
    for mo in fees:
        out.setdefault(mo, {"month": mo, "refunds": 0, "store_credit": 0, "reshipments": 0})
    rows = []
    for mo in sorted(out):
        r = out[mo]
        r["protection_fees"] = int(fees.get(mo, 0) or 0)
        r["paid_out"] = r["refunds"] + r["store_credit"] + r["reshipments"]
        r["loss_ratio"] = round(r["paid_out"] / r["protection_fees"], 3) if r["protection_fees"] else None
        rows.append(r)
    return pd.DataFrame(rows, columns=["month", "refunds", "store_credit", "reshipments", "paid_out",
                                       "protection_fees", "loss_ratio"])


# --- operations ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Operations:
    decided: int
    approved: int
    denied: int
    approval_rate: float | None
    first_response_median_h: float | None
    first_response_p90_h: float | None
    decision_median_h: float | None
    decision_p90_h: float | None
    waiting_on_customer: int

    def as_frame(self) -> pd.DataFrame:
        return pd.DataFrame([{"measure": k, "value": v} for k, v in self.__dict__.items()])


def _percentiles(s, sub, ps=(0.5, 0.9)) -> list[float | None]:
    """Linear-interpolated percentiles of a subquery's one column ``h``, computed by the database:
    a count, then the two rows around each rank (ORDER BY ... LIMIT 2 OFFSET k)."""
    n = s.scalar(select(func.count()).select_from(sub)) or 0
    if n == 0:
        return [None for _ in ps]
    out = []
    for p in ps:
        pos = (n - 1) * p
        lo = int(pos)
        vals = s.scalars(select(sub.c.h).order_by(sub.c.h).limit(2).offset(lo)).all()
        v = float(vals[0])
        if len(vals) == 2:
            v += (float(vals[1]) - float(vals[0])) * (pos - lo)
        out.append(v)
    return out


def operations(engine: Engine, f: AnalyticsFilter) -> Operations:
    base = [Claim.created_at >= f.start, Claim.created_at < f.end, *_claim_cond(f)]
    if f.carriers:
        base.append(Claim.shipment_id.in_(select(Shipment.id).where(Shipment.carrier.in_(f.carriers))))
    with read_session(engine) as s:
        approved, denied = s.execute(select(
            func.sum(case((Claim.status.in_(domain.GRANTED_STATUSES), 1), else_=0)),
            func.sum(case((Claim.status == domain.DENIED, 1), else_=0))).where(*base)).one()
        approved, denied = int(approved or 0), int(denied or 0)
        waiting = s.scalar(select(func.count()).select_from(Claim)
                           .where(Claim.status == domain.NEEDS_INFO, *base)) or 0
        first = (select(Event.claim_id, func.min(Event.at).label("first_at"))
                 .where(Event.actor.like("staff:%")).group_by(Event.claim_id).subquery())
        resp = _days_between(engine, Claim.created_at, first.c.first_at) * 24
        resp_q = select(resp.label("h")).join(first, first.c.claim_id == Claim.id).where(*base).subquery()
        fr = _percentiles(s, resp_q)
        dec = (_days_between(engine, Claim.created_at, Claim.decided_at) * 24)
        dec_q = select(dec.label("h")).where(*base, Claim.decided_at.is_not(None),
                                             Claim.status.in_((domain.APPROVED, domain.RESOLVED,
                                                               domain.DENIED))).subquery()
        dc = _percentiles(s, dec_q)
    decided = approved + denied
    r1 = lambda v: None if v is None else round(v, 1)  # noqa: E731
    return Operations(decided, approved, denied,
                      round(approved / decided, 3) if decided else None,
                      r1(fr[0]), r1(fr[1]), r1(dc[0]), r1(dc[1]), waiting)


# --- keeping figures ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Computed:
    value: object
    version: int  # the data version (newest event id) the figures were computed at
    computed_at: datetime
    seconds: float  # how long computing them took


class FigureStore:
    """Each figure's last computation, per key (figure, filters): what the analytics page shows.

    When the data has changed since (a newer event), the figure is computed again at once if that
    is quick. If it was slow last time (a big shop: a minute at 1M claims on SQLite), the last
    figures are served, marked stale with their time, until someone asks for an update
    (``refresh=True``): nobody waits a minute because a claim was filed meanwhile.
    """

    SLOW_SECONDS = 2.0

    def __init__(self, max_entries: int = 300, clock=None, now=None):
        self._entries: OrderedDict = OrderedDict()
        self._lock = threading.Lock()
        self._max = max_entries
        self._clock = clock or perf_counter
        self._now = now or (lambda: datetime.now(timezone.utc))

    def get(self, key, version: int, compute, *, refresh: bool = False) -> tuple[Computed, bool]:
        """(the figures, stale?) for ``key`` at data ``version``."""
        with self._lock:
            last = self._entries.get(key)
            if last is not None:
                self._entries.move_to_end(key)
        if last is not None and (last.version == version or
                                 (not refresh and last.seconds >= self.SLOW_SECONDS)):
            return last, last.version != version
        started = self._clock()
        value = compute()
        entry = Computed(value, version, self._now(), self._clock() - started)
        with self._lock:
            self._entries[key] = entry
            self._entries.move_to_end(key)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)
        return entry, False


# --- the page's headline numbers, from the figures above ----------------------------------------

@dataclass(frozen=True)
class Headline:
    protected_shipments: int
    protected_orders: int
    claims: int
    claims_per_100: float | None  # claims per 100 protected shipments


def headline(rates: pd.DataFrame) -> Headline:
    """Totals over the claim-rate figure (``claim_rates``)."""
    if not len(rates):
        return Headline(0, 0, 0, None)
    shipments = int(rates["protected_shipments"].iloc[0])
    claims = int(rates["claims"].sum())
    return Headline(shipments, int(rates["protected_orders"].iloc[0]), claims,
                    None if not shipments else 100 * claims / shipments)


@dataclass(frozen=True)
class MoneyTotals:
    fees_cents: int
    paid_cents: int
    loss_ratio: float | None  # paid out / fees collected


def money_totals(money: pd.DataFrame) -> MoneyTotals:
    """Totals over the money figure (``money_by_month``)."""
    paid = int(money["paid_out"].sum()) if len(money) else 0
    fees = int(money["protection_fees"].sum()) if len(money) else 0
    return MoneyTotals(fees, paid, None if not fees else paid / fees)
