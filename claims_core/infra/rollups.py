"""Analytics roll-ups: per-day sums the analytics figures read instead of the rows.

**What each table counts** (``day`` is the store's local date, ``day_of``: the day a person reads,
in the store's time zone from the settings; the tables are declared in ``models``):

- ``rollup_shipments``: the *protected-shipment cohort*: non-replacement shipments of non-cancelled
  orders whose protection was bought before the shipment left, by the day it left × carrier ×
  destination (country, province) × shipping method. Rows with ``issue_type = ''`` count
  ``shipments`` and ``orders`` (an order counts once, with its *first* protected shipment: earliest
  shipped, then lowest id); rows with an issue type count ``claims`` on those shipments.
- ``rollup_units``: the same cohort's units by destination country and SKU: ``shipped`` (issue
  ''), ``claimed`` per issue.
- ``rollup_claims``: every claim, by its shipment's carrier, its order's destination country and
  its issue. On the day it was filed:
  ``filed`` and, by its current status, ``filed_granted`` (approved or resolved), ``filed_denied``,
  ``filed_waiting`` (needs info). On the day it was decided (``decided_at``): ``approved``
  (granted now) and ``denied``.
- ``rollup_durations``: per filing day, carrier, destination country and issue, how many claims had their first staff
  response (``kind = 'response'``: the first event by staff) or their decision (``'decision'``: an
  approved, resolved or denied claim) within each bucket (``bucket_s``, ``domain.durations``).
- ``rollup_payouts``: resolutions not voided, by the day granted × carrier × country × issue: refunds, store
  credit at face value (with the bonus) and reshipments (the items' price).
- ``rollup_orders``: non-cancelled orders by the day placed × their first non-replacement
  shipment's carrier (``has_shipment`` 0 when there is none) × destination × order-value band:
  ``fees`` (protection fees charged), ``protected_*`` (orders with protection bought: count, fees,
  order value) and what their claims were paid (``paid_claims``: claims with a live resolution;
  refunds, store credit, reshipments, and how many reshipments), and what came back from the
  carrier on those claims (``recovered``: the recoveries' recovered amounts).
- ``rollup_recoveries``: recoveries (``domain/recoveries.py``) not cancelled (an undone approval
  cancels its recovery: it counts nothing), by the day the recovery was opened × its shipment's
  carrier × the order's destination country × the claim's issue: how many, what the shop paid out
  and could claim, how many were filed, what was recovered, how many are rejected or written off,
  and those written off because their deadline passed unfiled (``lost_deadline``: the deadline
  job's write-off, ``recovery_ledger.apply_deadline``) with what could have been claimed
  (``lost_deadline_cents``).

**How they stay right.** Every row above belongs to one order. When a transaction first touches an
order (any of its rows: the order, line items, shipments and their items, claims and their items,
resolutions, events, recoveries and their events), the order's contribution is read *before* the change; at commit it is read
again and the difference is added to the tables, in the same transaction. The same queries, over
all orders, rebuild the tables (``rebuild``): one definition serves both. Bulk writes that bypass
the ORM (``fill``) end with a rebuild. On PostgreSQL the touched orders are locked (``FOR
UPDATE``) before their contribution is read, so two transactions on one order take turns.
"""
from __future__ import annotations

from collections import defaultdict
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from functools import lru_cache
from itertools import chain
from typing import Callable, Iterable

from sqlalchemy import (BigInteger, Column, Date, Engine, Table, and_, bindparam, case, cast, delete,
                        event, func, inspect, literal, or_, select, true, union_all)
from sqlalchemy.sql import visitors
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from ..domain.durations import DURATION_STEPS
from ..domain.money import credit_with_bonus
from ..domain.pricing import ORDER_VALUE_BANDS
from ..domain.vocabulary import DECIDED_STATUSES, DENIED, GRANTED_STATUSES, NEEDS_INFO
from .models import (ROLLUP_CLAIMS, ROLLUP_DURATIONS, ROLLUP_GENERATION, ROLLUP_ORDERS, ROLLUP_PAYOUTS,
                     ROLLUP_RECOVERIES, ROLLUP_SHIPMENTS, ROLLUP_UNITS, Claim, ClaimItem, Event,
                     LineItem, Order, Recovery, RecoveryEvent, Resolution, Shipment, ShipmentItem,
                     StoreSettings)
from .db import LOCAL_DAY_SQL

Scope = Callable[[object], object]  # an order-id column -> a WHERE condition
CHUNK = 500


# --- dialect pieces ---------------------------------------------------------------------------------

def store_tz():
    """The store's time zone, as SQL (a subquery of the settings row, read once per statement;
    UTC when none is set): every statement reads the zone the settings hold in its own
    transaction, so a change of zone and the rebuild that goes with it are one transaction
    (``services.settings.save_changes``)."""
    zone = select(StoreSettings.timezone).where(StoreSettings.id == 1).scalar_subquery()
    return func.coalesce(func.nullif(zone, ""), "UTC")


def day_of(dialect: str, col, tz=None):
    """The store's local date of a stored UTC timestamp column (``tz``: a zone as SQL; default the
    store's): the day a person reads (``domain.windows.local_date``), on both databases. SQLite
    calls that very function (``infra.db.sqlite_local_day``, registered on every connection);
    PostgreSQL converts with its own time zone database."""
    tz = store_tz() if tz is None else tz
    if dialect == "sqlite":
        return getattr(func, LOCAL_DAY_SQL)(col, tz, type_=Date)
    return cast(func.timezone(tz, func.timezone("UTC", col)), Date)


def seconds_between(dialect: str, start, end):
    """Whole seconds from ``start`` to ``end``."""
    if dialect == "sqlite":
        return cast(func.round((func.julianday(end) - func.julianday(start)) * 86400), BigInteger)
    return cast(func.round(func.extract("epoch", end - start)), BigInteger)


def duration_bucket(seconds):
    """``domain.durations.duration_bucket`` in SQL (integer arithmetic on both databases)."""
    whens = [(seconds <= 0, literal(0, BigInteger))]
    for limit, width in DURATION_STEPS:
        edge = ((seconds + (width - 1)) // width) * width
        whens.append((seconds <= limit if limit is not None else true(), edge))
    return case(*whens)


def value_band():
    """``domain.pricing.band_of`` in SQL: the band an order's total falls in."""
    whens = [(Order.total_cents < hi, label) for label, _lo, hi in ORDER_VALUE_BANDS if hi is not None]
    return case(*whens, else_=ORDER_VALUE_BANDS[-1][0])


def first_carrier():
    """The carrier of the order's first non-replacement shipment (NULL when it has none)."""
    return (select(Shipment.carrier)
            .where(Shipment.order_id == Order.id, Shipment.is_replacement.is_(False))
            .order_by(Shipment.shipped_at, Shipment.id)
            .limit(1)
            .correlate(Order)
            .scalar_subquery())


def protected_shipment_conditions() -> list:
    return [Shipment.is_replacement.is_(False), Order.cancelled_at.is_(None),
            Order.protection_purchased_at.is_not(None),
            Order.protection_purchased_at <= Shipment.shipped_at]


# --- the tables' definitions ----------------------------------------------------------------------

@dataclass(frozen=True)
class Rollup:
    table: Table
    parts: Callable[[str, Scope], list]  # (dialect, scope) -> SELECTs of the table's columns

    @property
    def keys(self) -> list[str]:
        return [c.name for c in self.table.primary_key.columns]

    @property
    def measures(self) -> list[str]:
        return [c.name for c in self.table.columns if not c.primary_key]

    def row(self, **values) -> list:
        """A SELECT list in the table's column order; measures not given are 0."""
        missing = set(self.keys) - set(values)
        assert not missing, missing
        return [(values[c.name] if c.name in values else literal(0)).label(c.name)
                for c in self.table.columns]

    def query(self, dialect: str, scope: Scope):
        """The table's rows for the orders in ``scope``: every part, summed per key."""
        u = union_all(*self.parts(dialect, scope)).subquery("parts")
        keys = [u.c[k] for k in self.keys]
        return (select(*keys, *(func.sum(u.c[m]).label(m) for m in self.measures))
                .group_by(*keys))


def _cohort(dialect: str, scope: Scope):
    """The protected shipments of the orders in scope, with their dimensions; ``first`` is 1 for
    each order's first one."""
    rank = func.row_number().over(partition_by=Shipment.order_id,
                                  order_by=(Shipment.shipped_at, Shipment.id))
    return (select(Shipment.id.label("shipment_id"), day_of(dialect, Shipment.shipped_at).label("day"),
                   Shipment.carrier.label("carrier"), Order.shipping_country.label("country"),
                   Order.shipping_province.label("province"), Order.shipping_method.label("method"),
                   case((rank == 1, 1), else_=0).label("first"))
            .join(Order, Order.id == Shipment.order_id)
            .where(*protected_shipment_conditions(), scope(Shipment.order_id))
            .subquery("cohort"))


def _shipments_parts(dialect: str, scope: Scope) -> list:
    r = SHIPMENTS
    ps = _cohort(dialect, scope)
    dims = dict(day=ps.c.day, carrier=ps.c.carrier, country=ps.c.country, province=ps.c.province,
                method=ps.c.method)
    return [
        select(*r.row(**dims, issue_type=literal(""), shipments=func.count(),
                      orders=func.sum(ps.c.first))).group_by(*dims.values()),
        select(*r.row(**dims, issue_type=Claim.issue_type, claims=func.count(Claim.id)))
        .join(Claim, Claim.shipment_id == ps.c.shipment_id)
        .group_by(*dims.values(), Claim.issue_type),
    ]


def _units_parts(dialect: str, scope: Scope) -> list:
    r = UNITS
    ps = _cohort(dialect, scope)
    dims = dict(day=ps.c.day, carrier=ps.c.carrier, country=ps.c.country, sku=LineItem.sku)
    return [
        select(*r.row(**dims, issue_type=literal(""), shipped=func.sum(ShipmentItem.quantity)))
        .join(ShipmentItem, ShipmentItem.shipment_id == ps.c.shipment_id)
        .join(LineItem, LineItem.id == ShipmentItem.line_item_id)
        .group_by(*dims.values()),
        select(*r.row(**dims, issue_type=Claim.issue_type, claimed=func.sum(ClaimItem.quantity)))
        .join(ShipmentItem, ShipmentItem.shipment_id == ps.c.shipment_id)
        .join(LineItem, LineItem.id == ShipmentItem.line_item_id)
        .join(ClaimItem, ClaimItem.shipment_item_id == ShipmentItem.id)
        .join(Claim, Claim.id == ClaimItem.claim_id)
        .group_by(*dims.values(), Claim.issue_type),
    ]


def _count_if(cond):
    return func.sum(case((cond, 1), else_=0))


def _claims_parts(dialect: str, scope: Scope) -> list:
    r = CLAIMS
    filed = day_of(dialect, Claim.created_at)
    decided = day_of(dialect, Claim.decided_at)
    return [
        select(*r.row(day=filed, carrier=Shipment.carrier, country=Order.shipping_country,
                      issue_type=Claim.issue_type,
                      filed=func.count(), filed_granted=_count_if(Claim.status.in_(GRANTED_STATUSES)),
                      filed_denied=_count_if(Claim.status == DENIED),
                      filed_waiting=_count_if(Claim.status == NEEDS_INFO)))
        .join(Shipment, Shipment.id == Claim.shipment_id)
        .join(Order, Order.id == Claim.order_id)
        .where(scope(Claim.order_id))
        .group_by(filed, Shipment.carrier, Order.shipping_country, Claim.issue_type),
        select(*r.row(day=decided, carrier=Shipment.carrier, country=Order.shipping_country,
                      issue_type=Claim.issue_type,
                      approved=_count_if(Claim.status.in_(GRANTED_STATUSES)),
                      denied=_count_if(Claim.status == DENIED)))
        .join(Shipment, Shipment.id == Claim.shipment_id)
        .join(Order, Order.id == Claim.order_id)
        .where(Claim.decided_at.is_not(None), scope(Claim.order_id))
        .group_by(decided, Shipment.carrier, Order.shipping_country, Claim.issue_type),
    ]


def first_staff_event():
    """When staff first did something on the claim (a correlated subquery; NULL if never)."""
    return (select(func.min(Event.at)).where(Event.claim_id == Claim.id, Event.actor.like("staff:%"))
            .correlate(Claim).scalar_subquery())


def claim_durations(dialect: str, scope: Scope):
    """Per claim in scope: filing day, carrier, issue, and the seconds to the first staff response
    and to the decision (NULL when there is none yet)."""
    decision = case((and_(Claim.decided_at.is_not(None), Claim.status.in_(DECIDED_STATUSES)),
                     seconds_between(dialect, Claim.created_at, Claim.decided_at)))
    return (select(day_of(dialect, Claim.created_at).label("day"), Shipment.carrier.label("carrier"),
                   Order.shipping_country.label("country"), Claim.issue_type.label("issue_type"),
                   seconds_between(dialect, Claim.created_at, first_staff_event()).label("response"),
                   decision.label("decision"))
            .join(Shipment, Shipment.id == Claim.shipment_id)
            .join(Order, Order.id == Claim.order_id)
            .where(scope(Claim.order_id))
            .subquery("durations"))


def _durations_parts(dialect: str, scope: Scope) -> list:
    r = DURATIONS
    d = claim_durations(dialect, scope)
    out = []
    for kind in ("response", "decision"):
        bucket = duration_bucket(d.c[kind])
        out.append(select(*r.row(day=d.c.day, carrier=d.c.carrier, country=d.c.country,
                                 issue_type=d.c.issue_type, kind=literal(kind), bucket_s=bucket,
                                 claims=func.count()))
                   .where(d.c[kind].is_not(None))
                   .group_by(d.c.day, d.c.carrier, d.c.country, d.c.issue_type, bucket))
    return out


def _sum_kind(kind: str, value=Resolution.amount_cents):
    return func.sum(case((Resolution.kind == kind, value), else_=0))


def _payouts_parts(dialect: str, scope: Scope) -> list:
    r = PAYOUTS
    day = day_of(dialect, Resolution.created_at)
    credit = credit_with_bonus(Resolution.amount_cents, Resolution.bonus_pct)
    return [
        select(*r.row(day=day, carrier=Shipment.carrier, country=Order.shipping_country,
                      issue_type=Claim.issue_type,
                      refunds=_sum_kind("refund"), store_credit=_sum_kind("store_credit", credit),
                      reshipments=_sum_kind("reshipment")))
        .join(Claim, Claim.id == Resolution.claim_id)
        .join(Shipment, Shipment.id == Claim.shipment_id)
        .join(Order, Order.id == Claim.order_id)
        .where(Resolution.voided_at.is_(None), scope(Claim.order_id))
        .group_by(day, Shipment.carrier, Order.shipping_country, Claim.issue_type),
    ]


def _orders_parts(dialect: str, scope: Scope) -> list:
    r = ORDERS
    carrier = first_carrier()
    base = (select(Order.id.label("order_id"), day_of(dialect, Order.created_at).label("day"),
                   case((carrier.is_(None), 0), else_=1).label("has_shipment"),
                   func.coalesce(carrier, "").label("carrier"),
                   Order.shipping_country.label("country"), Order.shipping_province.label("province"),
                   value_band().label("value_band"),
                   case((Order.protection_fee_cents > 0, Order.protection_fee_cents), else_=0).label("fee"),
                   case((Order.protection_purchased_at.is_not(None), 1), else_=0).label("protected"),
                   Order.protection_fee_cents.label("protection_fee"),
                   Order.total_cents.label("total"))
            .where(Order.cancelled_at.is_(None), scope(Order.id),
                   or_(Order.protection_fee_cents > 0, Order.protection_purchased_at.is_not(None)))
            .subquery("o"))
    dims = dict(day=base.c.day, has_shipment=base.c.has_shipment, carrier=base.c.carrier,
                country=base.c.country, province=base.c.province, value_band=base.c.value_band)
    prot = base.c.protected == 1
    credit = credit_with_bonus(Resolution.amount_cents, Resolution.bonus_pct)
    return [
        select(*r.row(**dims, fees=func.sum(base.c.fee), protected_orders=func.sum(base.c.protected),
                      protected_fees=func.sum(case((prot, base.c.protection_fee), else_=0)),
                      protected_value=func.sum(case((prot, base.c.total), else_=0))))
        .group_by(*dims.values()),
        select(*r.row(**dims, paid_claims=func.count(func.distinct(Claim.id)),
                      refunds=_sum_kind("refund"), store_credit=_sum_kind("store_credit", credit),
                      reshipments=_sum_kind("reshipment"),
                      reshipped=_count_if(Resolution.kind == "reshipment")))
        .join(Claim, Claim.order_id == base.c.order_id)
        .join(Resolution, Resolution.claim_id == Claim.id)
        .where(prot, Resolution.voided_at.is_(None))
        .group_by(*dims.values()),
        select(*r.row(**dims, recovered=func.sum(Recovery.recovered_cents)))
        .join(Claim, Claim.order_id == base.c.order_id)
        .join(Recovery, Recovery.claim_id == Claim.id)
        .where(prot, live_recovery())
        .group_by(*dims.values()),
    ]


DEADLINE_PASSED = '%"reason": "deadline_passed"%'  # recovery_ledger.apply_deadline's details


def lost_to_deadline():
    """Whether the recovery was written off by the deadline job (a correlated EXISTS)."""
    return (select(RecoveryEvent.id)
            .where(RecoveryEvent.recovery_id == Recovery.id, RecoveryEvent.action == "write_off",
                   RecoveryEvent.details.like(DEADLINE_PASSED))
            .correlate(Recovery).exists())


def live_recovery():
    """A recovery that counts: every one but a cancelled one (its claim's approval was undone)."""
    return Recovery.state != "cancelled"


def _recoveries_parts(dialect: str, scope: Scope) -> list:
    r = RECOVERIES
    day = day_of(dialect, Recovery.created_at)
    lost = lost_to_deadline()
    return [
        select(*r.row(day=day, carrier=Shipment.carrier, country=Order.shipping_country,
                      issue_type=Claim.issue_type, recoveries=func.count(),
                      paid_out=func.sum(Recovery.paid_out_cents),
                      claimable=func.sum(Recovery.claimable_cents),
                      filed=_count_if(Recovery.filed_at.is_not(None)),
                      recovered=func.sum(Recovery.recovered_cents),
                      rejected=_count_if(Recovery.state == "rejected"),
                      written_off=_count_if(Recovery.state == "written_off"),
                      lost_deadline=_count_if(and_(Recovery.state == "written_off", lost)),
                      lost_deadline_cents=func.sum(case((and_(Recovery.state == "written_off", lost),
                                                         Recovery.claimable_cents), else_=0))))
        .join(Claim, Claim.id == Recovery.claim_id)
        .join(Shipment, Shipment.id == Recovery.shipment_id)
        .join(Order, Order.id == Claim.order_id)
        .where(live_recovery(), scope(Claim.order_id))
        .group_by(day, Shipment.carrier, Order.shipping_country, Claim.issue_type),
    ]


SHIPMENTS = Rollup(ROLLUP_SHIPMENTS, _shipments_parts)
UNITS = Rollup(ROLLUP_UNITS, _units_parts)
CLAIMS = Rollup(ROLLUP_CLAIMS, _claims_parts)
DURATIONS = Rollup(ROLLUP_DURATIONS, _durations_parts)
PAYOUTS = Rollup(ROLLUP_PAYOUTS, _payouts_parts)
ORDERS = Rollup(ROLLUP_ORDERS, _orders_parts)
RECOVERIES = Rollup(ROLLUP_RECOVERIES, _recoveries_parts)
ROLLUPS = (SHIPMENTS, UNITS, CLAIMS, DURATIONS, PAYOUTS, ORDERS, RECOVERIES)


# --- rebuilding -----------------------------------------------------------------------------------

def rebuild(engine: Engine) -> dict[str, int]:
    """Recompute every roll-up from the rows, in one transaction; returns rows per table. The
    planner's statistics are refreshed first: after a bulk load, PostgreSQL without them picks
    plans that take hours."""
    from .db import analyze, write_session  # noqa: PLC0415 - db imports nothing from here
    analyze(engine)
    with write_session(engine) as s:
        return rebuild_in(s)


def rebuild_in(s: Session) -> dict[str, int]:
    """``rebuild`` inside the caller's transaction (a change of the store's time zone moves every
    day: the tables are recomputed in the same transaction as the change)."""
    s.flush()
    conn = s.connection()  # Core: the session's pending changes are flushed, no hooks run
    dialect = conn.dialect.name
    counts = {}
    for r in ROLLUPS:
        conn.execute(delete(r.table))
        conn.execute(r.table.insert().from_select([*r.keys, *r.measures],
                                                  r.query(dialect, lambda _col: true())))
        counts[r.table.name] = conn.scalar(select(func.count()).select_from(r.table))
    conn.execute(_bump(dialect))
    return counts


def zone_known(s: Session, tz_name: str) -> bool:
    """Whether the database can convert to ``tz_name`` (PostgreSQL's own time zone database may
    lack a zone Python knows; SQLite uses Python's). Checked before a zone is saved: a zone the
    database refuses would fail every write that touches an order."""
    if s.get_bind().dialect.name != "postgresql":
        return True
    from sqlalchemy.exc import DBAPIError  # noqa: PLC0415
    try:
        with s.begin_nested():
            s.execute(select(func.timezone(tz_name, func.now())))
        return True
    except DBAPIError:
        return False


# --- keeping them in step with every transaction ---------------------------------------------------

TRACKED = (Order, LineItem, Shipment, ShipmentItem, Claim, ClaimItem, Resolution, Event, Recovery,
           RecoveryEvent)
_PAUSED: ContextVar[bool] = ContextVar("rollups_paused", default=False)


@contextmanager
def paused():
    """Don't keep the roll-ups while this block writes (a bulk job: demo data); the caller
    rebuilds them after. Only this thread/context is affected: the web server's writers keep
    them as always."""
    token = _PAUSED.set(True)
    try:
        yield
    finally:
        _PAUSED.reset(token)


def _claim_order(session: Session, claim_id: int | None, claim) -> int | None:
    if claim is not None:
        return claim.order_id if claim.order_id is not None else (
            claim.order.id if claim.order is not None else None)
    if claim_id is None:
        return None
    return session.scalar(select(Claim.order_id).where(Claim.id == claim_id))


def order_of(session: Session, obj) -> int | None:
    """The id of the order a tracked row belongs to (None while that order is new)."""
    if isinstance(obj, Order):
        return obj.id
    if isinstance(obj, (LineItem, Shipment, Claim)):
        if obj.order_id is not None:
            return obj.order_id
        return obj.order.id if obj.order is not None else None
    if isinstance(obj, ShipmentItem):
        shipment = obj.shipment if obj.shipment is not None else (
            session.get(Shipment, obj.shipment_id) if obj.shipment_id is not None else None)
        return None if shipment is None else order_of(session, shipment)
    if isinstance(obj, (ClaimItem, Resolution, Recovery)):
        return _claim_order(session, obj.claim_id, obj.claim)
    if isinstance(obj, RecoveryEvent):
        return _claim_order(session, obj.claim_id, None)
    if isinstance(obj, Event):
        return obj.order_id if obj.order_id is not None else _claim_order(session, obj.claim_id, None)
    return None


Sums = dict[Table, dict[tuple, list[int]]]


@lru_cache(maxsize=None)
def _for_orders(r: Rollup, dialect: str):
    """``r.query`` for a list of order ids (``:order_ids``), built once: building these
    statements costs more than running them for one order."""
    return r.query(dialect, lambda col: col.in_(bindparam("order_ids", expanding=True)))


def contributions(session: Session, order_ids: Iterable[int]) -> Sums:
    """What the given orders add to each roll-up, as the session sees them now."""
    conn = session.connection()  # Core: none of the ORM's per-statement work
    dialect = conn.dialect.name
    ids = sorted(set(order_ids))
    out: Sums = {r.table: {} for r in ROLLUPS}
    for i in range(0, len(ids), CHUNK):
        chunk = ids[i:i + CHUNK]
        for r in ROLLUPS:
            n = len(r.keys)
            sums = out[r.table]
            for row in conn.execute(_for_orders(r, dialect), {"order_ids": chunk}):
                key = tuple(row[:n])
                got = sums.get(key)
                values = [int(v or 0) for v in row[n:]]
                sums[key] = values if got is None else [a + b for a, b in zip(got, values)]
    return out


class _Tracker:
    """Per transaction: the orders touched, and what they contributed before the first change."""

    def __init__(self):
        self.orders: set[int] = set()
        self.before: Sums = {r.table: {} for r in ROLLUPS}

    def snapshot(self, session: Session, order_ids: set[int]) -> None:
        new = sorted(order_ids - self.orders)
        if not new:
            return
        self.orders.update(new)
        if session.get_bind().dialect.name == "postgresql":
            for i in range(0, len(new), CHUNK):  # two transactions on one order take turns
                session.execute(select(Order.id).where(Order.id.in_(new[i:i + CHUNK]))
                                .order_by(Order.id).with_for_update())
        for table, sums in contributions(session, new).items():
            mine = self.before[table]
            for key, values in sums.items():
                got = mine.get(key)
                mine[key] = values if got is None else [a + b for a, b in zip(got, values)]


def _tracker(session: Session, create: bool = True) -> _Tracker | None:
    t = session.info.get("rollups")
    if t is None and create:
        t = session.info["rollups"] = _Tracker()
    return t


@lru_cache(maxsize=None)
def read_columns() -> dict[str, frozenset[str]]:
    """Per table, the columns the roll-up queries read (found by walking the queries): a change to
    any other column (a tracking scan's status, a reminder's time, a claim's assignee) can't move a
    roll-up, so it doesn't cost a snapshot."""
    found: dict[str, set[str]] = defaultdict(set)
    for r in ROLLUPS:
        for col in visitors.iterate(r.query("sqlite", lambda c: c == 0)):
            table = getattr(col, "table", None)
            if isinstance(col, Column) and isinstance(table, Table):
                found[table.name].add(col.name)
    return {t: frozenset(cols) for t, cols in found.items()}


def _counts_event(actor) -> bool:
    """Could an event by ``actor`` move a roll-up? Only staff's events are read (a claim's first
    staff response, ``first_staff_event``; LIKE ignores ASCII case on SQLite, hence ``lower``):
    a carrier's or the system's event (a tracking scan) costs no snapshot."""
    return actor is None or str(actor).lower().startswith("staff:")


def _matters(obj, session: Session) -> bool:
    if not isinstance(obj, TRACKED):
        return False
    if isinstance(obj, Event) and obj in session.new:
        return _counts_event(obj.actor)
    if obj in session.new or obj in session.deleted:
        return True
    state = inspect(obj)
    cols = read_columns().get(obj.__table__.name, frozenset())
    return any(state.attrs[a.key].history.has_changes()
               for a in state.mapper.column_attrs if a.columns[0].name in cols)


def _touched(session: Session) -> Iterable:
    if _PAUSED.get():
        return ()
    return (o for o in chain(session.new, session.dirty, session.deleted) if _matters(o, session))


@event.listens_for(Session, "before_flush")
def _before_flush(session: Session, _ctx, _instances) -> None:
    objs = list(_touched(session))
    if not objs:
        return
    with session.no_autoflush:
        ids = {oid for o in objs if (oid := order_of(session, o)) is not None}
        _tracker(session).snapshot(session, ids)


def _orders_where(cls, whereclause):
    """The ids of the orders whose rows of ``cls`` a WHERE clause picks."""
    if cls is Order:
        q = select(Order.id)
    elif cls in (LineItem, Shipment, Claim):
        q = select(cls.order_id)
    elif cls is ShipmentItem:
        q = select(Shipment.order_id).join(ShipmentItem, ShipmentItem.shipment_id == Shipment.id)
    elif cls in (ClaimItem, Resolution, Recovery, RecoveryEvent):
        q = select(Claim.order_id).join(cls, cls.claim_id == Claim.id)
    else:
        return None
    return q if whereclause is None else q.where(whereclause)


def _orders_of_rows(session: Session, cls, rows: list[dict]) -> set[int]:
    if cls is Event:
        rows = [r for r in rows if _counts_event(r.get("actor"))]
    if cls in (LineItem, Shipment, Claim, Event):
        ids = {r.get("order_id") for r in rows}
        if cls is Event:
            claims = {r["claim_id"] for r in rows if r.get("order_id") is None and r.get("claim_id")}
            ids |= set(session.scalars(select(Claim.order_id).where(Claim.id.in_(claims))))
        return {i for i in ids if i is not None}
    if cls is ShipmentItem:
        ids = {r.get("shipment_id") for r in rows} - {None}
        return set(session.scalars(select(Shipment.order_id).where(Shipment.id.in_(ids))))
    if cls in (ClaimItem, Resolution, Recovery, RecoveryEvent):
        ids = {r.get("claim_id") for r in rows} - {None}
        return set(session.scalars(select(Claim.order_id).where(Claim.id.in_(ids))))
    return set()


@event.listens_for(Session, "do_orm_execute")
def _orm_statement(state) -> None:
    """ORM-enabled INSERT/UPDATE/DELETE statements (``session.execute(update(Claim)…)``) bypass the
    flush: the orders they touch are snapshotted before they run."""
    if _PAUSED.get() or not (state.is_update or state.is_delete or state.is_insert):
        return
    mapper = state.bind_mapper
    cls = mapper.class_ if mapper is not None else None
    if cls not in TRACKED:
        return
    session = state.session
    with session.no_autoflush:
        if state.is_insert:
            params = state.parameters
            rows = params if isinstance(params, list) else [params] if params else []
            ids = _orders_of_rows(session, cls, rows)
        else:
            q = _orders_where(cls, state.statement.whereclause)
            ids = set(session.scalars(q)) if q is not None else set()
        _tracker(session).snapshot(session, ids - {None})


@event.listens_for(Session, "after_flush")
def _after_flush(session: Session, _ctx) -> None:
    # rows of orders that were new before this flush now have ids: they contributed nothing before
    objs = list(_touched(session))
    if objs:
        t = _tracker(session)
        with session.no_autoflush:
            t.orders.update(oid for o in objs if (oid := order_of(session, o)) is not None)


@event.listens_for(Session, "before_commit")
def _before_commit(session: Session) -> None:
    session.flush()
    t = _tracker(session, create=False)
    if t is None or not t.orders:
        return
    after = contributions(session, t.orders)
    conn = session.connection()
    dialect = conn.dialect.name
    changed = False
    for r in ROLLUPS:
        diff = defaultdict(lambda: [0] * len(r.measures))
        for sign, sums in ((1, after[r.table]), (-1, t.before[r.table])):
            for key, values in sums.items():
                d = diff[key]
                for i, v in enumerate(values):
                    d[i] += sign * v
        rows = [{**dict(zip(r.keys, key)), **dict(zip(r.measures, values))}
                for key, values in sorted(diff.items(), key=lambda kv: _sort_key(kv[0]))
                if any(values)]
        if rows:  # keys in one order: concurrent writers never deadlock
            conn.execute(_upsert(r, dialect), rows)
            changed = True
    if changed:
        conn.execute(_bump(dialect))
    t.orders.clear()
    t.before = {r.table: {} for r in ROLLUPS}


@lru_cache(maxsize=None)
def _bump(dialect: str):
    """generation + 1 (the row is made the first time)."""
    stmt = (sqlite_insert if dialect == "sqlite" else pg_insert)(ROLLUP_GENERATION).values(id=1, generation=1)
    return stmt.on_conflict_do_update(index_elements=["id"],
                                      set_={"generation": ROLLUP_GENERATION.c.generation + 1})


def generation(session: Session) -> int:
    """How many transactions have changed the roll-ups (rebuilds included): the figures' version."""
    return session.scalar(select(ROLLUP_GENERATION.c.generation).where(ROLLUP_GENERATION.c.id == 1)) or 0


@lru_cache(maxsize=None)
def _upsert(r: Rollup, dialect: str):
    """INSERT … ON CONFLICT (the key) DO UPDATE SET each measure = measure + the new one."""
    stmt = (sqlite_insert if dialect == "sqlite" else pg_insert)(r.table)
    return stmt.on_conflict_do_update(index_elements=r.keys,
                                      set_={m: r.table.c[m] + stmt.excluded[m] for m in r.measures})


def _sort_key(key: tuple) -> tuple:
    return tuple((v is None, str(v)) for v in key)


@event.listens_for(Session, "after_transaction_end")
def _after_transaction_end(session: Session, transaction) -> None:
    if transaction.parent is None:
        session.info.pop("rollups", None)
