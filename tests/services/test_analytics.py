"""Every analytics figure recomputed independently on a small hand-made store:
3 carriers, 40 shipments, 7 claims."""
from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from claims_core.infra.db import write_session
from claims_core.infra.models import (
    Claim,
    ClaimItem,
    Decision,
    Event,
    LineItem,
    Order,
    Resolution,
    Shipment,
    ShipmentItem,
)
from claims_core.services import accounts, analytics

UTC = timezone.utc
BASE = datetime(2026, 9, 1, 12, 0, tzinfo=UTC)
CARRIERS = ["UPS", "USPS", "FedEx"]


@dataclass
class Ship:
    i: int
    carrier: str
    shipped: datetime
    protected: bool
    late_protection: bool
    cancelled: bool
    sku: str
    qty: int
    price: int
    fee: int
    country: str
    method: str

    @property
    def counts(self) -> bool:  # a protected shipment by the documented definition
        return self.protected and not self.late_protection and not self.cancelled


SHIPS = [Ship(i, CARRIERS[i % 3], BASE + timedelta(days=i), i % 10 != 9, i == 5, i == 7,
              "A" if i % 2 == 0 else "B", 2 if i % 2 == 0 else 1, 1000 if i % 2 == 0 else 2500,
              100 + i, "US" if i % 4 else "CA", "Express" if i % 5 == 0 else "Standard")
         for i in range(40)]


@dataclass
class ClaimSpec:
    ship: int
    issue: str
    status: str
    filed_after_h: float
    first_response_h: float | None
    decided_after_h: float | None
    resolutions: list  # (kind, amount_cents, bonus_pct)
    qty: int = 1


CLAIMS = [
    ClaimSpec(0, "damaged", "resolved", 50, 3, 30, [("refund", 1000, 0)]),
    ClaimSpec(1, "lost", "approved", 200, 10, 48, [("store_credit", 2500, 10)]),
    ClaimSpec(2, "damaged", "denied", 60, 1, 5, []),
    ClaimSpec(3, "missing_item", "needs_info", 70, 20, None, []),
    ClaimSpec(12, "stolen", "approved", 80, 6, 100, [("reshipment", 2000, 0)], qty=2),
    ClaimSpec(20, "damaged", "submitted", 90, None, None, []),
    ClaimSpec(33, "lost", "approved", 400, 2, 12, [("refund", 1200, 0), ("store_credit", 800, 0)]),
]


@pytest.fixture
def store(engine):
    with write_session(engine) as s:
        ship_ids = {}
        for sp in SHIPS:
            li = LineItem(position=1, sku=sp.sku, name=f"Item {sp.sku}", quantity=sp.qty,
                          unit_price_cents=sp.price)
            created = sp.shipped - timedelta(days=1)
            o = Order(order_number=str(3000 + sp.i), name=f"#{3000 + sp.i}",
                      email=f"o{sp.i}@example.com", created_at=created,
                      total_cents=sp.price * sp.qty, protection_fee_cents=sp.fee if sp.protected else 0,
                      protection_purchased_at=(sp.shipped + timedelta(hours=1) if sp.late_protection
                                               else created) if sp.protected else None,
                      cancelled_at=created + timedelta(hours=2) if sp.cancelled else None,
                      shipping_country=sp.country, shipping_method=sp.method, line_items=[li])
            s.add(o)
            s.flush()
            sh = Shipment(order_id=o.id, tracking_number=f"T{sp.i}", carrier=sp.carrier,
                          status="delivered", shipped_at=sp.shipped,
                          delivered_at=sp.shipped + timedelta(days=2),
                          items=[ShipmentItem(line_item_id=li.id, quantity=sp.qty)])
            s.add(sh)
            s.flush()
            ship_ids[sp.i] = (o.id, sh.id, sh.items[0].id)
        for n, c in enumerate(CLAIMS):
            sp = SHIPS[c.ship]
            oid, sid, siid = ship_ids[c.ship]
            filed = sp.shipped + timedelta(hours=c.filed_after_h)
            claim = Claim(reference=f"CLM-T{n}", access_token=f"tok{n}" * 6, idempotency_key=f"k{n}",
                          order_id=oid, shipment_id=sid,
                          category="item" if c.issue in ("damaged", "missing_item") else "shipping",
                          issue_type=c.issue, status=c.status, desired_resolution="refund",
                          claimed_cents=sp.price * c.qty, email=f"o{sp.i}@example.com",
                          signature_kind="typed", signature_name="X", signed_at=filed,
                          created_at=filed, updated_at=filed,
                          decided_at=filed + timedelta(hours=c.decided_after_h)
                          if c.decided_after_h is not None else None,
                          items=[ClaimItem(shipment_item_id=siid, quantity=c.qty,
                                           unit_cents=sp.price, is_open=c.status in (
                                               "submitted", "in_review", "needs_info"))])
            s.add(claim)
            s.flush()
            s.add(Event(claim_id=claim.id, actor="customer", action="claim_filed", at=filed,
                        to_status="submitted"))
            if c.first_response_h is not None:
                s.add(Event(claim_id=claim.id, actor="staff:ann", action="review_started",
                            at=filed + timedelta(hours=c.first_response_h)))
                s.add(Event(claim_id=claim.id, actor="staff:bob", action="note",
                            at=filed + timedelta(hours=c.first_response_h + 5)))
            if c.resolutions:
                d = Decision(claim_id=claim.id, outcome="approved", decided_by="staff:ann",
                             decided_at=claim.decided_at)
                s.add(d)
                s.flush()
                for kind, amount, bonus in c.resolutions:
                    s.add(Resolution(claim_id=claim.id, decision_id=d.id, kind=kind,
                                     amount_cents=amount, bonus_pct=bonus, created_at=claim.decided_at))
    return engine


ALL = analytics.AnalyticsFilter(date(2026, 9, 1), date(2026, 10, 10))


def counted(flt=ALL):
    return [sp for sp in SHIPS if sp.counts and flt.date_from <= sp.shipped.date() <= flt.date_to
            and (not flt.carriers or sp.carrier in flt.carriers)]


def counted_claims(flt=ALL):
    ids = {sp.i for sp in counted(flt)}
    return [c for c in CLAIMS if c.ship in ids and (not flt.issue_types or c.issue in flt.issue_types)]


def test_the_data_set_is_what_the_docstring_says():
    assert len(SHIPS) == 40 and len(CLAIMS) == 7 and len({s.carrier for s in SHIPS}) == 3
    assert len(counted()) == 34  # 4 unprotected, 1 protection bought late, 1 cancelled


def test_claim_rate_by_issue_type(store):
    df = analytics.claim_rates(store, ALL).set_index("issue_type")
    n_ship = len(counted())
    n_orders = len({sp.i for sp in counted()})  # one shipment per order here
    by_type = Counter(c.issue for c in counted_claims())
    for t in ("damaged", "lost", "stolen", "missing_item", "delayed"):
        assert df.loc[t, "claims"] == by_type.get(t, 0)
        assert df.loc[t, "protected_shipments"] == n_ship
        assert df.loc[t, "per_100_shipments"] == round(100 * by_type.get(t, 0) / n_ship, 2)
        assert df.loc[t, "per_100_orders"] == round(100 * by_type.get(t, 0) / n_orders, 2)
    assert df.loc["damaged", "claims"] == 3 and df.loc["damaged", "per_100_shipments"] == 8.82


def test_filters_carrier_and_issue(store):
    f = analytics.AnalyticsFilter(ALL.date_from, ALL.date_to, ("lost",), ("UPS",))
    df = analytics.claim_rates(store, f)
    assert list(df["issue_type"]) == ["lost"]
    ups = counted(f)
    expected = sum(1 for c in counted_claims(f) if SHIPS[c.ship].carrier == "UPS")
    assert df["claims"].iloc[0] == expected == 1  # ship 33 is UPS (33 % 3 == 0); ship 1 is USPS
    assert df["per_100_shipments"].iloc[0] == round(100 * expected / len(ups), 2)


def test_monthly_rate_trend_and_zero_months(store):
    df = analytics.rate_trend(store, ALL, "month")
    sept = [sp for sp in counted() if sp.shipped.month == 9]
    octo = [sp for sp in counted() if sp.shipped.month == 10]
    row = df[(df.period == "2026-09-01") & (df.issue == "Damaged")].iloc[0]
    sept_damaged = sum(1 for c in counted_claims() if c.issue == "damaged" and SHIPS[c.ship].shipped.month == 9)
    assert row.claims == sept_damaged and row.protected_shipments == len(sept)
    assert row.per_100_shipments == round(100 * sept_damaged / len(sept), 2)
    oct_damaged = df[(df.period == "2026-10-01") & (df.issue == "Damaged")].iloc[0]
    assert oct_damaged.claims == 0 and oct_damaged.per_100_shipments == 0.0  # a 0, not a gap
    assert oct_damaged.protected_shipments == len(octo)


def test_weekly_trend_buckets_are_mondays(store):
    df = analytics.rate_trend(store, ALL, "week")
    periods = sorted(set(df.period))
    assert all(date.fromisoformat(p).weekday() == 0 for p in periods)
    assert df.groupby("period").protected_shipments.first().sum() == len(counted())


def test_filed_approved_denied(store):
    df = analytics.outcomes_trend(store, ALL, "month").set_index("period")

    def inside(t):
        return ALL.date_from <= t.date() <= ALL.date_to

    filed_at = {id(c): SHIPS[c.ship].shipped + timedelta(hours=c.filed_after_h) for c in CLAIMS}
    filed = Counter(f"{filed_at[id(c)]:%Y-%m}-01" for c in CLAIMS if inside(filed_at[id(c)]))
    for month, n in filed.items():
        assert df.loc[month, "filed"] == n
    assert df["filed"].sum() == sum(filed.values()) == 6  # the claim on ship 33 came later
    decided = [c for c in CLAIMS if c.decided_after_h is not None
               and inside(filed_at[id(c)] + timedelta(hours=c.decided_after_h))]
    approved = sum(1 for c in decided if c.status in ("approved", "resolved"))
    denied = sum(1 for c in decided if c.status == "denied")
    assert df["approved"].sum() == approved == 3 and df["denied"].sum() == denied == 1


def test_breakdown_by_carrier(store):
    df = analytics.breakdown(store, ALL, "carrier").set_index("Carrier")
    for carrier in CARRIERS:
        ships = [sp for sp in counted() if sp.carrier == carrier]
        claims = [c for c in counted_claims() if SHIPS[c.ship].carrier == carrier]
        assert df.loc[carrier, "protected_shipments"] == len(ships)
        assert df.loc[carrier, "claims"] == len(claims)
        assert df.loc[carrier, "per_100_shipments"] == round(100 * len(claims) / len(ships), 2)


def test_breakdown_by_product_region_method(store):
    sku = analytics.breakdown(store, ALL, "sku").set_index("SKU")
    for s_ in ("A", "B"):
        units = sum(sp.qty for sp in counted() if sp.sku == s_)
        claimed = sum(c.qty for c in counted_claims() if SHIPS[c.ship].sku == s_)
        assert sku.loc[s_, "units_shipped"] == units and sku.loc[s_, "units_claimed"] == claimed
        assert sku.loc[s_, "per_100_units"] == round(100 * claimed / units, 2)
    region = analytics.breakdown(store, ALL, "region").set_index("Destination")
    assert region.loc["CA", "protected_shipments"] == sum(1 for sp in counted() if sp.country == "CA")
    method = analytics.breakdown(store, ALL, "method").set_index("Shipping method")
    assert method.loc["Express", "claims"] == sum(
        1 for c in counted_claims() if SHIPS[c.ship].method == "Express")


def test_money_and_loss_ratio(store):
    df = analytics.money_by_month(store, ALL).set_index("month")
    expected: dict[str, dict] = {}
    for c in CLAIMS:
        if not c.resolutions:
            continue
        sp = SHIPS[c.ship]
        granted = sp.shipped + timedelta(hours=c.filed_after_h + c.decided_after_h)
        if not ALL.date_from <= granted.date() <= ALL.date_to:
            continue
        e = expected.setdefault(f"{granted:%Y-%m}-01", Counter())
        for kind, amount, bonus in c.resolutions:
            e[kind] += amount + (amount * bonus + 50) // 100 if kind == "store_credit" else amount
    fees = Counter()
    for sp in SHIPS:
        created = sp.shipped - timedelta(days=1)
        if sp.protected and not sp.cancelled and ALL.date_from <= created.date() <= ALL.date_to:
            fees[f"{created:%Y-%m}-01"] += sp.fee
    for month in set(expected) | set(fees):
        row = df.loc[month]
        e = expected.get(month, Counter())
        assert row.refunds == e["refund"] and row.store_credit == e["store_credit"]
        assert row.reshipments == e["reshipment"] and row.protection_fees == fees[month]
        paid = e["refund"] + e["store_credit"] + e["reshipment"]
        assert row.paid_out == paid
        assert row.loss_ratio == (round(paid / fees[month], 3) if fees[month] else None)
    assert df.loc["2026-09-01", "store_credit"] == 2750  # 2500 + 10 % bonus


def test_operations_medians_and_percentiles(store):
    ops = analytics.operations(store, ALL)
    filed_in = [c for c in CLAIMS if ALL.date_from <= (SHIPS[c.ship].shipped + timedelta(
        hours=c.filed_after_h)).date() <= ALL.date_to]
    responses = sorted(c.first_response_h for c in filed_in if c.first_response_h is not None)
    decisions = sorted(c.decided_after_h for c in filed_in
                       if c.status in ("approved", "resolved", "denied"))
    # nearest rank (the smallest value at or below which p of them fall), each duration reported
    # as the upper edge of its bucket (whole hours here: the fixture's times are whole hours)
    def nearest_rank(values, p):
        return sorted(values)[math.ceil(p * len(values)) - 1]
    assert ops.first_response_median_h == nearest_rank(responses, 0.5)
    assert ops.first_response_p90_h == nearest_rank(responses, 0.9)
    assert ops.decision_median_h == nearest_rank(decisions, 0.5)
    assert ops.decision_p90_h == nearest_rank(decisions, 0.9)
    approved = sum(1 for c in filed_in if c.status in ("approved", "resolved"))
    denied = sum(1 for c in filed_in if c.status == "denied")
    assert (ops.approved, ops.denied) == (approved, denied)
    assert ops.approval_rate == round(approved / (approved + denied), 3)
    assert ops.waiting_on_customer == sum(1 for c in filed_in if c.status == "needs_info") == 1


def test_empty_period_no_division_by_zero(store):
    empty = analytics.AnalyticsFilter(date(2020, 1, 1), date(2020, 1, 31))
    rates = analytics.claim_rates(store, empty)
    assert (rates["protected_shipments"] == 0).all() and rates["per_100_shipments"].isna().all()
    assert analytics.rate_trend(store, empty, "week").empty
    assert analytics.outcomes_trend(store, empty, "month").empty
    assert analytics.breakdown(store, empty, "carrier").empty
    assert analytics.breakdown(store, empty, "sku").empty
    assert analytics.money_by_month(store, empty).empty
    ops = analytics.operations(store, empty)
    assert ops.approval_rate is None and ops.decision_median_h is None and ops.decided == 0


def test_period_with_shipments_but_no_claims(store):
    quiet = analytics.AnalyticsFilter(date(2026, 10, 5), date(2026, 10, 10))  # ships 34..39
    rates = analytics.claim_rates(store, quiet)
    assert rates["claims"].sum() == 0
    assert (rates["protected_shipments"] == len(counted(quiet))).all()
    assert (rates["per_100_shipments"] == 0).all()


def test_data_version_moves_with_events(store):
    v1 = analytics.data_version(store)
    with write_session(store) as s:
        s.add(Event(actor="staff:x", action="note"))
    assert analytics.data_version(store) > v1


def test_data_version_moves_when_an_order_changes_without_an_event(store):
    """An import or a Shopify webhook cancels an order: no claim event, but the figures move."""
    from claims_core.infra.models import Order
    v1 = analytics.data_version(store)
    with write_session(store) as s:
        order = s.scalars(select(Order).where(Order.cancelled_at.is_(None),
                                              Order.protection_purchased_at.is_not(None))).first()
        order.cancelled_at = order.created_at
    assert analytics.data_version(store) > v1
    with write_session(store) as s:  # a change the figures can't see leaves them be
        s.scalars(select(Order)).first().customer_name = "Someone Else"
    v2 = analytics.data_version(store)
    with write_session(store) as s:
        s.scalars(select(Order)).first().customer_name = "Someone Else Again"
    assert analytics.data_version(store) == v2


# --- the page -----------------------------------------------------------------------------------

APP = str(Path(__file__).resolve().parents[2] / "navigation.py")


def _analytics_page(db_url, engine, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", db_url)
    who = accounts.add_user(engine, "ana", "analyst", "a long password")
    at = AppTest.from_file(APP, default_timeout=90)
    from claims_core.services import staff_sessions
    from views import ui
    token = staff_sessions.start(engine, who)
    monkeypatch.setattr(ui, "staff_cookie", lambda: token)  # AppTest can't send the cookie
    at.run()
    at.switch_page("views/staff/analytics.py").run()
    return at


def test_page_renders_on_an_empty_database(db_url, engine, monkeypatch):
    at = _analytics_page(db_url, engine, monkeypatch)
    assert not at.exception
    assert [t.value for t in at.title] == ["Analytics"]
    assert any("No protected shipments" in i.value for i in at.info)


def test_page_renders_with_demo_data(db_url, engine, monkeypatch):
    from claims_core.adapters import demo
    demo.generate(engine, orders=200, create_staff=False, log=lambda *_: None)
    at = _analytics_page(db_url, engine, monkeypatch)
    assert not at.exception
    assert "fulfilled in the period" in " ".join(c.value for c in at.caption)
    assert len(at.get("plotly_chart")) >= 5
    assert len(at.get("download_button")) >= 6
    at.radio(key="a_grain").set_value("week").run()
    at.multiselect(key="a_issue").set_value(["damaged"]).run()
    assert not at.exception
    # the destination filter: the headline counts only shipments to that country
    everywhere = int(at.metric[0].value.replace(",", ""))
    country = at.multiselect(key="a_country").options[0]
    at.multiselect(key="a_country").set_value([country]).run()
    assert not at.exception
    there = int(at.metric[0].value.replace(",", ""))
    f = analytics.AnalyticsFilter(*at.session_state["a_period"], countries=(country,))
    assert there == analytics.claim_rates(engine, f)["protected_shipments"].iloc[0] < everywhere
    assert at.query_params["country"] in ([country], country)


# --- keeping figures ----------------------------------------------------------------------------

class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_figures_follow_the_data_when_quick():
    clock, calls = Clock(), []
    store = analytics.FigureStore(clock=clock)

    def compute():
        calls.append(1)
        clock.t += 0.1  # quick
        return len(calls)
    assert store.get("rates", 1, compute)[0].value == 1
    assert store.get("rates", 1, compute) == (store.get("rates", 1, compute)[0], False)
    assert len(calls) == 1  # same data: kept
    fresh, stale = store.get("rates", 2, compute)  # a new event: computed again at once
    assert (fresh.value, fresh.version, stale, len(calls)) == (2, 2, False, 2)


def test_slow_figures_are_served_stale_until_an_update_is_asked_for():
    clock, calls = Clock(), []
    store = analytics.FigureStore(clock=clock)

    def compute():
        calls.append(1)
        clock.t += 40  # a minute-long computation at 1M claims
        return len(calls)
    store.get("rates", 1, compute)
    shown, stale = store.get("rates", 2, compute)
    assert (shown.value, shown.version, stale, len(calls)) == (1, 1, True, 1)
    assert store.get("trend", 2, compute)[1] is False  # a figure never computed is computed
    updated, stale = store.get("rates", 2, compute, refresh=True)
    assert (updated.value, updated.version, stale) == (3, 2, False)
    assert store.get("rates", 2, compute) == (updated, False)


def test_figure_store_keeps_the_most_recent_entries():
    store = analytics.FigureStore(max_entries=2)
    for key in ("a", "b", "c"):
        store.get(key, 1, lambda: key)
    calls = []
    store.get("a", 1, lambda: calls.append(1) or "a again")
    assert calls == [1]  # "a" was the oldest: dropped


def test_page_serves_slow_figures_marked_stale_until_updated(db_url, engine, monkeypatch):
    from sqlalchemy import select

    from claims_core.adapters import demo
    from claims_core.infra.db import utcnow
    from claims_core.services import decisions
    demo.generate(engine, orders=200, create_staff=False, log=lambda *_: None)
    monkeypatch.setattr(analytics.FigureStore, "SLOW_SECONDS", 0.0)  # as if this were a big shop
    at = _analytics_page(db_url, engine, monkeypatch)

    def waiting():
        return next(m.value for m in at.metric if m.label == "Waiting on customers")
    before = waiting()
    with write_session(engine) as s:
        claim_id = s.scalar(select(Claim.id).where(
            Claim.status.in_(("submitted", "in_review")),
            Claim.created_at >= utcnow() - timedelta(days=170)).limit(1))
    decisions.request_info(engine, claim_id, "staff:t", "T", "A photo of the label, please")
    at.run()
    assert waiting() == before  # the last figures, served at once...
    notice = " ".join(c.value for c in at.caption)
    assert "Some figures are from" in notice and "claims have changed since" in notice
    # when, in the (demo) store's zone, as every staff page writes a moment
    assert re.search(r"figures are from [A-Z][a-z]+ \d{1,2}, \d{4} at \d\d:\d\d E[SD]T:", notice)
    at.button(key="a_update").click().run()
    assert waiting() == f"{int(before.replace(',', '')) + 1:,}"  # ...until asked to update
    assert "Some figures are from" not in " ".join(c.value for c in at.caption)
    assert not at.exception
