"""Analytics: every figure is a GROUP BY over the roll-up tables (``infra/rollups.py``, kept in the
same transaction as every change), returned as a small DataFrame.

Definitions (also shown on the page):
- every day and period is the store's local day, in its time zone (a claim filed at 02:00 UTC in a
  New York store counts on the day before); weeks and months are made of those days;
- a *protected shipment* is a non-replacement shipment of a non-cancelled order whose protection
  was bought before the shipment left;
- the *claim rate* for a period is claims on protected shipments fulfilled in that period, per 100
  such shipments (a cohort rate: a claim counts in the period its shipment left, whenever it was
  filed); per 100 protected orders counts each order once, in the period (and under the carrier)
  of its first protected shipment;
- money figures count resolutions in the month they were granted; protection fees count in the
  month the order was placed, under the carrier of its first shipment; loss ratio = (refunds +
  store credit incl. bonus + reshipments at item price) / protection fees;
- recoveries (money the carriers paid back, ``domain/recoveries.py``) count in the period the
  recovery was opened (when its claim was approved), under its shipment's carrier; a cancelled
  one (the approval undone) counts nothing. **Net cost** = paid out − recovered; the **recovery
  rate** = recovered / paid out on the claims that opened a recovery; **lost to missed
  deadlines** = what could have been claimed on recoveries the deadline job wrote off (the
  carrier's filing deadline passed unfiled).
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from time import perf_counter

import pandas as pd
from sqlalchemy import Engine, func, select
from sqlalchemy.sql import ColumnElement

from .. import domain
from ..domain import durations as domain_durations
from ..domain.windows import day_start, local_day
from ..infra import rollups
from ..infra.db import read_session, utcnow
from ..infra.models import (ROLLUP_CLAIMS, ROLLUP_DURATIONS, ROLLUP_ORDERS, ROLLUP_PAYOUTS,
                            ROLLUP_RECOVERIES, ROLLUP_SHIPMENTS, ROLLUP_UNITS, Event, LineItem,
                            settings_row)

GRAINS = ("week", "month")


@dataclass(frozen=True)
class AnalyticsFilter:
    """The figures' filters. The period is in the store's days (its time zone, the roll-ups' day)."""
    date_from: date
    date_to: date  # inclusive
    issue_types: tuple[str, ...] = ()
    carriers: tuple[str, ...] = ()
    countries: tuple[str, ...] = ()  # destinations (the order's shipping country, ISO code)

    def bounds(self, tz_name: str | None) -> tuple[datetime, datetime]:
        """The period as moments (aware UTC): from the start of its first store day up to (not
        including) the start of the day after its last."""
        return (day_start(self.date_from, tz_name),
                day_start(self.date_to + timedelta(days=1), tz_name))


def store_zone_name(engine: Engine) -> str:
    """The store's time zone (the settings'; UTC when none is set)."""
    with read_session(engine) as s:
        return settings_row(s).timezone or "UTC"


def store_today(engine: Engine) -> date:
    """Today, the store's local day by the app's one clock: where the page's periods end
    ("the last 180 days" ends today in the store, not in UTC)."""
    return local_day(utcnow(), store_zone_name(engine))


def last_days(engine: Engine, days: int) -> AnalyticsFilter:
    """The ``days`` store days up to today (today included): the page's default period."""
    today = store_today(engine)
    return AnalyticsFilter(today - timedelta(days=days), today)


def countries(engine: Engine) -> list[str]:
    """The destination countries the figures can be filtered by (from the roll-ups: quick)."""
    t = ROLLUP_SHIPMENTS
    with read_session(engine) as s:
        return [c for c in s.scalars(select(t.c.country).where(t.c.country != "").distinct()
                                     .order_by(t.c.country))]


def data_version(engine: Engine) -> tuple[int, int]:
    """Changes whenever a figure may have: the roll-ups' generation (every transaction that
    changed them: a decision, an import, a webhook) and the newest event. A cache key."""
    with read_session(engine) as s:
        return rollups.generation(s), s.scalar(select(func.max(Event.id))) or 0


# --- dialect helpers ----------------------------------------------------------------------------

def _bucket(engine: Engine, col, grain: str) -> ColumnElement:
    if engine.dialect.name == "sqlite":
        if grain == "week":  # Monday of the week
            return func.date(col, "weekday 0", "-6 days")
        return func.strftime("%Y-%m-01", col)
    return func.to_char(func.date_trunc(grain, col), "YYYY-MM-DD")


# --- the figures, from the roll-ups (``infra/rollups.py``) ------------------------------------------
# Each figure sums a few hundred to a few thousand roll-up rows, whatever the shop's size;
# ``analytics_rows`` computes the same figures from the rows (the tests compare the two).

def _in_period(t, f: AnalyticsFilter, *, issues: bool = True) -> list:
    cond = [t.c.day >= f.date_from, t.c.day <= f.date_to]
    if f.carriers:
        cond.append(t.c.carrier.in_(f.carriers))
    if f.countries:
        cond.append(t.c.country.in_(f.countries))
    if issues and f.issue_types:
        cond.append(t.c.issue_type.in_(f.issue_types))
    return cond


def _claim_rows(t, f: AnalyticsFilter) -> list:
    """The claim rows of a cohort table (denominators are the rows with issue '')."""
    return [*_in_period(t, f), t.c.issue_type != ""]


def _denominator_rows(t, f: AnalyticsFilter) -> list:
    return [*_in_period(t, f, issues=False), t.c.issue_type == ""]


def claim_rates(engine: Engine, f: AnalyticsFilter) -> pd.DataFrame:
    """Claims per 100 protected shipments and per 100 protected orders, per issue type."""
    t = ROLLUP_SHIPMENTS
    with read_session(engine) as s:
        shipments, orders = s.execute(select(func.sum(t.c.shipments), func.sum(t.c.orders))
                                      .where(*_denominator_rows(t, f))).one()
        counts = dict(s.execute(select(t.c.issue_type, func.sum(t.c.claims))
                                .where(*_claim_rows(t, f)).group_by(t.c.issue_type)).all())
    return claim_rates_frame(f, int(shipments or 0), int(orders or 0),
                             {k: int(v) for k, v in counts.items()})


def claim_rates_frame(f: AnalyticsFilter, shipments: int, orders: int,
                      counts: dict[str, int]) -> pd.DataFrame:
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
    t = ROLLUP_SHIPMENTS
    with read_session(engine) as s:
        b = _bucket(engine, t.c.day, grain).label("period")
        denom = s.execute(select(b, func.sum(t.c.shipments)).where(*_denominator_rows(t, f))
                          .group_by(b).having(func.sum(t.c.shipments) > 0)).all()
        num = s.execute(select(b, t.c.issue_type, func.sum(t.c.claims)).where(*_claim_rows(t, f))
                        .group_by(b, t.c.issue_type).having(func.sum(t.c.claims) > 0)).all()
    return rate_trend_frame(f, {p: int(n) for p, n in denom}, {(p, i): int(n) for p, i, n in num})


def rate_trend_frame(f: AnalyticsFilter, denom: dict[str, int],
                     counts: dict[tuple[str, str], int]) -> pd.DataFrame:
    # every period with shipments × every issue type asked for (or seen): a quiet week is a 0,
    # not a gap in the line
    types = list(f.issue_types) or sorted({t for _p, t in counts}, key=list(domain.ISSUE_TYPES).index)
    rows = [{"period": p, "issue": domain.ISSUE_TYPES[t].label, "claims": counts.get((p, t), 0),
             "protected_shipments": d, "per_100_shipments": _rate(counts.get((p, t), 0), d)}
            for p, d in denom.items() for t in types]
    df = pd.DataFrame(rows, columns=["period", "issue", "claims", "protected_shipments",
                                     "per_100_shipments"])
    return df.sort_values(["period", "issue"]).reset_index(drop=True)


OUTCOMES = ("filed", "approved", "denied")


def outcomes_trend(engine: Engine, f: AnalyticsFilter, grain: str = "week") -> pd.DataFrame:
    """Claims filed, approved and denied per period (filed by filing date, decisions by decision
    date, by the claim's status now), for every claim in the carrier/issue filters."""
    grain = grain if grain in GRAINS else "week"
    t = ROLLUP_CLAIMS
    with read_session(engine) as s:
        b = _bucket(engine, t.c.day, grain).label("period")
        rows = s.execute(select(b, *(func.sum(t.c[c]) for c in OUTCOMES)).where(*_in_period(t, f))
                         .group_by(b).order_by(b)).all()
    return outcomes_frame({p: [int(v or 0) for v in vals] for p, *vals in rows})


def outcomes_frame(per_period: dict[str, list[int]]) -> pd.DataFrame:
    """Periods with anything filed or decided, in order."""
    data = [{"period": p, **dict(zip(OUTCOMES, v))} for p, v in sorted(per_period.items()) if any(v)]
    return pd.DataFrame(data, columns=["period", *OUTCOMES])


# --- breakdowns ---------------------------------------------------------------------------------

BREAKDOWNS = {  # the label, and the roll-up columns of a group
    "carrier": ("Carrier", ("carrier",)),
    "region": ("Destination", ("country", "province")),
    "method": ("Shipping method", ("method",)),
}
UNKNOWN = "(unknown)"


def breakdown(engine: Engine, f: AnalyticsFilter, by: str) -> pd.DataFrame:
    """Claims and claim rate per carrier, destination region, shipping method, or product (SKU)."""
    if by == "sku":
        return _sku_breakdown(engine, f)
    label, cols = BREAKDOWNS[by]
    t = ROLLUP_SHIPMENTS
    g = [t.c[c] for c in cols]
    with read_session(engine) as s:
        denom = s.execute(select(*g, func.sum(t.c.shipments)).where(*_denominator_rows(t, f))
                          .group_by(*g).having(func.sum(t.c.shipments) > 0)).all()
        num = s.execute(select(*g, func.sum(t.c.claims)).where(*_claim_rows(t, f)).group_by(*g)).all()
    n = len(g)
    return breakdown_frame(label, {tuple(r[:n]): int(r[n]) for r in denom},
                           {tuple(r[:n]): int(r[n] or 0) for r in num})


def group_label(key: tuple) -> str:
    return " ".join(k or "" for k in key).strip() or UNKNOWN


def breakdown_frame(label: str, denom: dict[tuple, int], counts: dict[tuple, int]) -> pd.DataFrame:
    rows = [{label: group_label(k), "claims": counts.get(k, 0), "protected_shipments": d,
             "per_100_shipments": _rate(counts.get(k, 0), d)} for k, d in denom.items()]
    df = pd.DataFrame(rows, columns=[label, "claims", "protected_shipments", "per_100_shipments"])
    return df.sort_values(["claims", "protected_shipments", label],
                          ascending=[False, False, True]).reset_index(drop=True)


def _sku_breakdown(engine: Engine, f: AnalyticsFilter) -> pd.DataFrame:
    t = ROLLUP_UNITS
    with read_session(engine) as s:
        shipped = dict(s.execute(select(t.c.sku, func.sum(t.c.shipped)).where(*_denominator_rows(t, f))
                                 .group_by(t.c.sku).having(func.sum(t.c.shipped) > 0)).all())
        claimed = dict(s.execute(select(t.c.sku, func.sum(t.c.claimed)).where(*_claim_rows(t, f))
                                 .group_by(t.c.sku)).all())
        names = product_names(s, list(shipped))
    return sku_frame({k: int(v) for k, v in shipped.items()},
                     {k: int(v or 0) for k, v in claimed.items()}, names)


def product_names(s, skus: list[str]) -> dict[str, str]:
    """Each SKU's product name: the name on its newest line item."""
    out: dict[str, str] = {}
    for i in range(0, len(skus), 200):
        # each SKU's newest id on its own (``MAX(id) WHERE sku = …``: a look-up in the SKU index),
        # not a MAX(id) … GROUP BY that reads every line item of those SKUs (0.35 s at 1M)
        newest = s.execute(select(*(select(func.max(LineItem.id)).where(LineItem.sku == sku)
                                    .scalar_subquery() for sku in skus[i:i + 200]))).one()
        ids = [x for x in newest if x is not None]
        if ids:
            out.update(s.execute(select(LineItem.sku, LineItem.name)
                                 .where(LineItem.id.in_(ids))).all())
    return out


def sku_frame(shipped: dict[str, int], claimed: dict[str, int], names: dict[str, str]) -> pd.DataFrame:
    rows = [{"SKU": sku or "(none)", "Product": names.get(sku, ""), "units_claimed": claimed.get(sku, 0),
             "units_shipped": n, "per_100_units": _rate(claimed.get(sku, 0), n)}
            for sku, n in shipped.items()]
    df = pd.DataFrame(rows, columns=["SKU", "Product", "units_claimed", "units_shipped",
                                     "per_100_units"])
    return df.sort_values(["units_claimed", "units_shipped", "SKU"],
                          ascending=[False, False, True]).reset_index(drop=True)


# --- money --------------------------------------------------------------------------------------

PAYOUTS = ("refunds", "store_credit", "reshipments")


def money_by_month(engine: Engine, f: AnalyticsFilter) -> pd.DataFrame:
    """Refunds, store credit (with bonus) and reshipments granted, against protection fees
    charged, per month. Payouts count in the month granted (undone approvals don't count); fees
    in the month the order was placed, under the carrier of its first shipment. Loss ratio =
    paid out / fees (None when no fees that month)."""
    p, o = ROLLUP_PAYOUTS, ROLLUP_ORDERS
    with read_session(engine) as s:
        m = _bucket(engine, p.c.day, "month").label("month")
        paid = s.execute(select(m, *(func.sum(p.c[c]) for c in PAYOUTS)).where(*_in_period(p, f))
                         .group_by(m)).all()
        om = _bucket(engine, o.c.day, "month").label("month")
        fee_cond = _in_period(o, f, issues=False)
        if f.carriers:
            fee_cond.append(o.c.has_shipment == 1)
        fees = s.execute(select(om, func.sum(o.c.fees)).where(*fee_cond).group_by(om)).all()
    return money_frame({mo: [int(v or 0) for v in vals] for mo, *vals in paid},
                       {mo: int(v or 0) for mo, v in fees})


def money_frame(paid: dict[str, list[int]], fees: dict[str, int]) -> pd.DataFrame:
    """Months with a payout or a fee, in order."""
    rows = []
    for mo in sorted(set(paid) | set(fees)):
        r = {"month": mo, **dict(zip(PAYOUTS, paid.get(mo, [0, 0, 0])))}
        r["protection_fees"] = fees.get(mo, 0)
        r["paid_out"] = sum(r[c] for c in PAYOUTS)
        if not (r["paid_out"] or r["protection_fees"]):
            continue
        r["loss_ratio"] = round(r["paid_out"] / r["protection_fees"], 3) if r["protection_fees"] else None
        rows.append(r)
    return pd.DataFrame(rows, columns=["month", *PAYOUTS, "paid_out", "protection_fees", "loss_ratio"])


# --- recoveries ---------------------------------------------------------------------------------

RECOVERY_MEASURES = ("recoveries", "paid_out", "claimable", "filed", "recovered", "rejected",
                     "written_off", "lost_deadline", "lost_deadline_cents")


def recoveries_by_carrier(engine: Engine, f: AnalyticsFilter) -> pd.DataFrame:
    """Per carrier: recoveries opened in the period (not cancelled), what was paid out on their
    claims and could be claimed, how many were filed, what came back, how many were rejected or
    written off, and those written off because the deadline passed (with what could have been
    claimed); the recovery rate = recovered / paid out."""
    t = ROLLUP_RECOVERIES
    with read_session(engine) as s:
        rows = s.execute(select(t.c.carrier, *(func.sum(t.c[c]) for c in RECOVERY_MEASURES))
                         .where(*_in_period(t, f)).group_by(t.c.carrier)).all()
    return recoveries_frame({carrier: [int(v or 0) for v in vals] for carrier, *vals in rows})


def recoveries_frame(per_carrier: dict[str, list[int]]) -> pd.DataFrame:
    """Carriers with a recovery, most paid out first (then by name)."""
    rows = []
    for carrier, values in per_carrier.items():
        r = {"carrier": carrier, **dict(zip(RECOVERY_MEASURES, values))}
        if not r["recoveries"]:
            continue
        r["recovery_rate"] = round(r["recovered"] / r["paid_out"], 3) if r["paid_out"] else None
        rows.append(r)
    rows.sort(key=lambda r: (-r["paid_out"], r["carrier"]))
    return pd.DataFrame(rows, columns=["carrier", *RECOVERY_MEASURES, "recovery_rate"])


@dataclass(frozen=True)
class NetCost:
    paid_cents: int            # gross: refunds, store credit (face value), reshipments
    recovered_cents: int       # what the carriers paid back
    net_cents: int             # paid out − recovered
    recovery_rate: float | None  # recovered / paid out on the claims that opened a recovery
    lost_deadline_cents: int   # could have been claimed, written off past the deadline
    lost_deadline: int         # how many


def net_cost(money: pd.DataFrame, recoveries: pd.DataFrame) -> NetCost:
    """Totals over the money and recoveries figures."""
    paid = int(money["paid_out"].sum()) if len(money) else 0

    def total(c: str) -> int:
        return int(recoveries[c].sum()) if len(recoveries) else 0
    recovered, base = total("recovered"), total("paid_out")
    return NetCost(paid, recovered, paid - recovered, None if not base else recovered / base,
                   total("lost_deadline_cents"), total("lost_deadline"))


# --- operations ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Operations:
    """Claims filed in the period: decided (by their status now), waiting on the customer, and
    how long the first staff response and the decision took (hours, as the bucket's upper edge:
    ``domain.durations``)."""
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


def operations(engine: Engine, f: AnalyticsFilter) -> Operations:
    c, d = ROLLUP_CLAIMS, ROLLUP_DURATIONS
    with read_session(engine) as s:
        approved, denied, waiting = s.execute(
            select(func.sum(c.c.filed_granted), func.sum(c.c.filed_denied), func.sum(c.c.filed_waiting))
            .where(*_in_period(c, f))).one()
        hist = s.execute(select(d.c.kind, d.c.bucket_s, func.sum(d.c.claims)).where(*_in_period(d, f))
                         .group_by(d.c.kind, d.c.bucket_s)).all()
    by_kind: dict[str, list[tuple[int, int]]] = {"response": [], "decision": []}
    for kind, edge, n in hist:
        by_kind[kind].append((int(edge), int(n or 0)))
    return operations_from(int(approved or 0), int(denied or 0), int(waiting or 0), by_kind)


def operations_from(approved: int, denied: int, waiting: int,
                    durations: dict[str, list[tuple[int, int]]]) -> Operations:
    """``durations``: per kind ("response", "decision"), (bucket edge in seconds, claims)."""
    def pct(kind: str, p: float) -> float | None:
        return domain_durations.hours(domain_durations.nearest_rank(durations.get(kind, []), p))
    decided = approved + denied
    return Operations(decided, approved, denied, round(approved / decided, 3) if decided else None,
                      pct("response", 0.5), pct("response", 0.9), pct("decision", 0.5),
                      pct("decision", 0.9), waiting)


# --- keeping figures ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Computed:
    value: object
    version: object  # the data version (``data_version``) the figures were computed at
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
        self._now = now or utcnow

    def get(self, key, version, compute, *, refresh: bool = False) -> tuple[Computed, bool]:
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
