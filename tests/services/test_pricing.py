"""Is my protection priced right? The arithmetic (``domain.pricing``) pinned on hand-built
numbers, and the totals the service reads (``services.pricing``) checked by hand on a small shop."""
from __future__ import annotations

import math
from datetime import date, datetime, timedelta, timezone
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import update

from claims_core.domain.errors import ClaimRuleError, ErrorCode
from claims_core.domain.pricing import (
    ORDER_VALUE_BANDS,
    Advice,
    Assumptions,
    SegmentInputs,
    WhatIf,
    advise,
    band_of,
    claims_cost,
    poisson_interval,
    what_if,
)
from claims_core.infra.db import write_session
from claims_core.infra.models import Order, Shipment, ShipmentItem
from claims_core.services import customer, decisions, pricing
from claims_core.services.approvals import ResolutionInput
from claims_core.services.settings import update_settings

from tests.conftest import NOW
from tests.support.factories import claim_request, make_order

A = Assumptions()  # target 0.60, credit 0.60, reship 0.45 + $8.00, 200 orders, 5 claims, 90 %


def seg(label="All orders", orders=1200, fees=354000, value=9_600_000, claims=40, refunds=100000,
        credit=50000, reship_items=40000, reships=10) -> SegmentInputs:
    return SegmentInputs(label, orders, fees, value, claims, refunds, credit, reship_items, reships)


# --- claims cost, loss ratio, the recommended fee ------------------------------------------------

def test_claims_cost_uses_the_shops_assumptions():
    # 100000 refunds + 0.6 × 50000 credit + 0.45 × 40000 items + 800 × 10 reshipments
    assert claims_cost(seg(), A) == 100000 + 30000 + 18000 + 8000 == 156000
    cheaper = Assumptions(credit_cost_ratio=0.5, reship_cost_ratio=0.3, reship_shipping_cents=600)
    assert claims_cost(seg(), cheaper) == 100000 + 25000 + 12000 + 6000


def test_claims_cost_rounds_half_up_once_at_the_end():
    # 0.6 × 1001 = 600.6 and 0.45 × 1001 = 450.45: 1051.05 → 1051
    assert claims_cost(seg(refunds=0, credit=1001, reship_items=1001, reships=0), A) == 1051
    # 0.45 × 10 = 4.5 → 5 (half up, and 0.45 is exactly 45/100, not a binary float)
    assert claims_cost(seg(refunds=0, credit=0, reship_items=10, reships=0), A) == 5
    # 0.6 × 5 = 3 exactly
    assert claims_cost(seg(refunds=0, credit=5, reship_items=0, reships=0), A) == 3


def test_advice_on_a_segment_with_known_numbers():
    adv = advise(seg(), A)
    assert isinstance(adv, Advice)
    assert (adv.label, adv.protected_orders, adv.fee_revenue_cents, adv.paid_claims) == \
        ("All orders", 1200, 354000, 40)
    assert adv.claims_cost_cents == 156000
    assert adv.loss_ratio == pytest.approx(156000 / 354000)
    # required revenue = 156000 / 0.6 = 260000; per order 216.67 → up to 220 cents
    assert adv.flat_fee_cents == 220
    # of order value: 260000 / 9600000 = 2.7083 % → up to 2.71 %
    assert adv.percent_fee == 2.71
    assert adv.enough_data and adv.reason == ""
    assert adv.average_order_cents == 8000 and adv.order_value_cents == 9_600_000


def test_fee_range_scales_the_cost_by_the_poisson_interval_on_the_claim_count():
    adv = advise(seg(), A)
    low, high = poisson_interval(40, 0.90)
    assert adv.paid_claims_range == (low, high)
    assert (round(low, 3), round(high, 3)) == (30.196, 52.069)
    # cost × low/40 = 117763.2 → 163.56 per order → 165; × high/40 = 203071.1 → 282.04 → 285
    assert adv.claims_cost_range_cents == (117763, 203071)
    assert adv.flat_fee_range_cents == (165, 285)
    # 117763.2 / 0.6 / 9600000 = 2.0445 % → 2.05; 203071.1 / 0.6 / 9600000 = 3.5255 % → 3.53
    assert adv.percent_fee_range == (2.05, 3.53)
    lo_fee, hi_fee = adv.flat_fee_range_cents
    assert lo_fee <= adv.flat_fee_cents <= hi_fee


def test_a_higher_target_or_more_confidence_moves_the_fee_as_expected():
    base = advise(seg(), A)
    looser = advise(seg(), Assumptions(target_loss_ratio=0.8))
    assert looser.flat_fee_cents == 165  # 156000 / 0.8 / 1200 = 162.5 → 165
    assert looser.flat_fee_cents < base.flat_fee_cents
    wider = advise(seg(), Assumptions(confidence=0.99))
    assert wider.flat_fee_range_cents[0] <= base.flat_fee_range_cents[0]
    assert wider.flat_fee_range_cents[1] >= base.flat_fee_range_cents[1]


def test_zero_revenue_has_no_loss_ratio():
    adv = advise(seg(fees=0), A)
    assert adv.loss_ratio is None
    assert adv.flat_fee_cents == 220  # the recommendation needs no revenue, only the cost
    empty = advise(seg(orders=0, fees=0, value=0, claims=0, refunds=0, credit=0, reship_items=0,
                       reships=0), A)
    assert empty.loss_ratio is None and empty.claims_cost_cents == 0 and not empty.enough_data


# --- not enough data ----------------------------------------------------------------------------

def test_below_min_orders_shows_the_counts_but_no_recommendation():
    adv = advise(seg(orders=199), A)
    assert not adv.enough_data
    assert (adv.flat_fee_cents, adv.flat_fee_range_cents, adv.percent_fee, adv.percent_fee_range) \
        == (None, None, None, None)
    assert "199" in adv.reason and "200" in adv.reason
    assert (adv.protected_orders, adv.paid_claims, adv.claims_cost_cents) == (199, 40, 156000)
    assert adv.loss_ratio == pytest.approx(156000 / 354000)
    assert advise(seg(orders=200), A).enough_data


def test_below_min_claims_shows_the_counts_but_no_recommendation():
    adv = advise(seg(claims=4), A)
    assert not adv.enough_data and adv.flat_fee_cents is None and adv.percent_fee is None
    assert "4" in adv.reason and "5" in adv.reason
    assert adv.paid_claims == 4
    assert advise(seg(claims=5), A).enough_data
    both = advise(seg(orders=10, claims=1), A)
    assert "10" in both.reason and "200" in both.reason and "1" in both.reason


def test_no_claims_is_never_enough_even_with_a_minimum_of_zero():
    adv = advise(seg(claims=0, refunds=0, credit=0, reship_items=0, reships=0),
                 Assumptions(min_orders=0, min_claims=0))
    assert not adv.enough_data and adv.reason


def test_no_order_value_gives_a_flat_fee_but_no_percentage():
    adv = advise(seg(value=0), A)
    assert adv.flat_fee_cents == 220 and adv.percent_fee is None and adv.percent_fee_range is None


# --- the Poisson interval -----------------------------------------------------------------------

def poisson_cdf(k: int, mu: float) -> float:
    """P(X ≤ k) for X ~ Poisson(mu), summed term by term (independent of the module's gamma)."""
    term = total = math.exp(-mu)
    for i in range(1, k + 1):
        term *= mu / i
        total += term
    return total


@pytest.mark.parametrize("count, confidence, low, high", [
    (10, 0.90, 5.425, 16.962),
    (0, 0.90, 0.0, 2.996),
    (5, 0.95, 1.623, 11.668),
    (1, 0.95, 0.0253, 5.572),
    (40, 0.90, 30.196, 52.069),
])
def test_poisson_interval_matches_garwood(count, confidence, low, high):
    lo, hi = poisson_interval(count, confidence)
    assert lo == pytest.approx(low, abs=6e-4)
    assert hi == pytest.approx(high, abs=6e-4)
    tail = (1 - confidence) / 2
    # the defining equations: P(X ≤ count | high) = α/2 and P(X ≥ count | low) = α/2
    assert poisson_cdf(count, hi) == pytest.approx(tail, abs=1e-9)
    if count:
        assert 1 - poisson_cdf(count - 1, lo) == pytest.approx(tail, abs=1e-9)
    else:
        assert lo == 0.0 and hi == pytest.approx(-math.log(tail), abs=1e-9)


@pytest.mark.parametrize("count", [1, 7, 250, 5000, 100000])
def test_poisson_interval_agrees_with_chi_square_quantiles(count):
    stats = pytest.importorskip("scipy.stats")
    lo, hi = poisson_interval(count, 0.90)
    assert lo == pytest.approx(stats.chi2.ppf(0.05, 2 * count) / 2, rel=1e-9)
    assert hi == pytest.approx(stats.chi2.ppf(0.95, 2 * count + 2) / 2, rel=1e-9)


def test_poisson_interval_refuses_nonsense():
    for count, conf in ((-1, 0.9), (3, 0.0), (3, 1.0)):
        with pytest.raises(ClaimRuleError) as refused:
            poisson_interval(count, conf)
        assert refused.value.code == ErrorCode.PRICING_INPUT_INVALID


# --- what if ------------------------------------------------------------------------------------

def test_what_if_fee_up_half_and_a_tenth_fewer_buy_protection():
    today = seg(orders=1000, fees=300000, value=8_000_000)  # $3.00 a order, cost 156000
    w = what_if(today, A, flat_fee_cents=450, attach_change=-0.10)
    assert w == WhatIf(protected_orders=900, revenue_cents=405000, claims_cost_cents=140400,
                       loss_ratio=140400 / 405000)
    # as a percentage: 4.5 % of an $80.00 average order, on 900 orders
    p = what_if(today, A, percent_fee=4.5, attach_change=-0.10)
    assert (p.protected_orders, p.revenue_cents, p.claims_cost_cents) == (900, 324000, 140400)
    assert p.loss_ratio == 140400 / 324000


def test_what_if_without_a_new_fee_keeps_todays_average_fee():
    today = seg(orders=1000, fees=300000, value=8_000_000)
    assert what_if(today, A, attach_change=0.05) == WhatIf(1050, 315000, 163800, 163800 / 315000)
    assert what_if(today, A) == WhatIf(1000, 300000, 156000, 156000 / 300000)


def test_what_if_rounds_orders_and_money_half_up():
    today = seg(orders=15, fees=4425, value=120000, claims=3, refunds=1001, credit=0,
                reship_items=0, reships=0)
    w = what_if(today, A, flat_fee_cents=333, attach_change=-0.1)
    # 15 × 0.9 = 13.5 → 14 orders; 1001 × 14/15 = 934.27 → 934
    assert (w.protected_orders, w.revenue_cents, w.claims_cost_cents) == (14, 333 * 14, 934)


def test_what_if_edges():
    assert what_if(seg(orders=0, fees=0, value=0), A, flat_fee_cents=300) == WhatIf(0, 0, 0, None)
    everyone_leaves = what_if(seg(), A, flat_fee_cents=300, attach_change=-1.0)
    assert everyone_leaves == WhatIf(0, 0, 0, None)
    assert what_if(seg(), A, flat_fee_cents=0).loss_ratio is None
    for kw in (dict(flat_fee_cents=300, percent_fee=3.0), dict(attach_change=-1.5),
               dict(flat_fee_cents=-1)):
        with pytest.raises(ClaimRuleError):
            what_if(seg(), A, **kw)


# --- the recommended fee meets the target, by at most one rounding step -------------------------

@settings(max_examples=300, deadline=None)
@given(orders=st.integers(1, 2_000_000), claims=st.integers(1, 50_000),
       refunds=st.integers(0, 10**9), credit=st.integers(0, 10**9),
       reship_items=st.integers(0, 10**9), reships=st.integers(0, 10**5),
       value_per_order=st.integers(1, 100_000), target_pct=st.integers(5, 150),
       credit_pct=st.integers(0, 100), reship_pct=st.integers(0, 100))
def test_recommended_fee_reaches_the_target_within_one_rounding_step(
        orders, claims, refunds, credit, reship_items, reships, value_per_order, target_pct,
        credit_pct, reship_pct):
    a = Assumptions(target_loss_ratio=target_pct / 100, credit_cost_ratio=credit_pct / 100,
                    reship_cost_ratio=reship_pct / 100, min_orders=1, min_claims=1)
    inputs = SegmentInputs("x", orders, 295 * orders, value_per_order * orders, claims, refunds,
                           credit, reship_items, reships)
    adv = advise(inputs, a)
    assert adv.enough_data
    cost, target, fee = Fraction(adv.claims_cost_cents), Fraction(target_pct, 100), adv.flat_fee_cents
    assert fee % 5 == 0
    if cost:
        assert cost / (fee * orders) <= target            # rounded up: never above the target
        assert fee == 5 or cost / ((fee - 5) * orders) > target  # one step less would miss it
    else:
        assert fee == 0
    pct = Fraction(repr(adv.percent_fee))  # a whole basis point
    assert pct * 100 == int(pct * 100)
    value = inputs.order_value_cents
    assert cost <= target * pct / 100 * value
    assert pct == 0 or cost > target * (pct - Fraction(1, 100)) / 100 * value
    low, high = adv.flat_fee_range_cents
    assert low <= fee <= high


# --- order-value bands --------------------------------------------------------------------------

def test_order_value_bands():
    assert [b[0] for b in ORDER_VALUE_BANDS] == ["Under $50", "$50–100", "$100–250", "$250+"]
    assert [band_of(c) for c in (0, 4999, 5000, 9999, 10000, 24999, 25000, 10**9)] == \
        ["Under $50", "Under $50", "$50–100", "$50–100", "$100–250", "$100–250", "$250+", "$250+"]
    # the bands tile the line: each starts where the one before ends
    for (_l1, _f1, to), (_l2, frm, _t2) in zip(ORDER_VALUE_BANDS, ORDER_VALUE_BANDS[1:]):
        assert to == frm


def test_assumptions_refuse_nonsense():
    for kw in (dict(target_loss_ratio=0), dict(confidence=1.0), dict(credit_cost_ratio=-0.1),
               dict(min_orders=-1)):
        with pytest.raises(ClaimRuleError):
            Assumptions(**kw)


# --- the service: totals read from the database, checked by hand ---------------------------------

PERIOD = (date(2026, 11, 1), date(2026, 11, 30))
MUG_TOTE = (("MUG", "Hand-thrown Mug", 2800, 3), ("TOTE", "Canvas Tote", 3450, 1))  # 11850


def _set(engine, order_id, **values):
    with write_session(engine) as s:
        s.execute(update(Order).where(Order.id == order_id).values(**values))


def _delivered(carrier, days_ago=10, items=(("MUG", 3), ("TOTE", 1))):
    return dict(status="delivered", carrier=carrier, shipped=NOW - timedelta(days=days_ago),
                delivered=NOW - timedelta(days=days_ago - 3), items=list(items))


def _claim(engine, built, key, **kw):
    return customer.file_claim(engine, claim_request(built, key=key, **kw), now=NOW).claim_id


@pytest.fixture
def shop(engine):
    """A small shop's November (NOW is 2026-11-21; orders are placed on 2026-11-09 unless said):

    | order | protected | carrier (first shipment) | region | total | claim |
    |---|---|---|---|---|---|
    | A 2001 | yes | UPS | US-CA | 11850 | refund 2800 undone, then refund 1800 + credit 1000 +10 % |
    | B 2002 | yes | FedEx | US-CA | 4000 | store credit 2000 + 10 % bonus (face 2200) |
    | C 2003 | yes | FedEx | US-NY | 11850 | reshipment of 2 mugs (item price 5600) |
    | D 2004 | yes | UPS | US-NY | 11850 | refund 2800, undone (voided) |
    | H 2008 | yes | USPS, then UPS; an earlier replacement by DHL | CA-ON | 25000 | — |
    | J 2010 | yes | no shipment | — | 4999 | — |
    | K 2011 | yes | UPS | US | 5000 | — |
    | E 2005 | no (after its claim) | UPS | US-CA | 11850 | refund 2800: not counted |
    | F 2006 | cancelled (after its claim) | UPS | US-CA | 11850 | refund 2800: not counted |
    | G 2007 | yes, but placed in October | UPS | US-CA | 11850 | — |
    """
    update_settings(engine, "test", {"store_credit_bonus_pct": 10})
    staff = "staff:test"
    a = make_order(engine, "2001", "a@example.com", lines=MUG_TOTE, shipments=[_delivered("UPS")])
    b = make_order(engine, "2002", "b@example.com", lines=(("MUG", "Small Mug", 2000, 2),),
                   shipments=[_delivered("FedEx", items=(("MUG", 2),))])
    c = make_order(engine, "2003", "c@example.com", lines=MUG_TOTE, stock={"MUG": 10},
                   shipments=[_delivered("FedEx")])
    d = make_order(engine, "2004", "d@example.com", lines=MUG_TOTE, shipments=[_delivered("UPS")])
    e = make_order(engine, "2005", "e@example.com", lines=MUG_TOTE, shipments=[_delivered("UPS")])
    f = make_order(engine, "2006", "f@example.com", lines=MUG_TOTE, shipments=[_delivered("UPS")])
    make_order(engine, "2007", "g@example.com", lines=MUG_TOTE, shipments=[_delivered("UPS")],
               created=datetime(2026, 10, 15, 12, 0, tzinfo=timezone.utc))
    h = make_order(engine, "2008", "h@example.com", lines=MUG_TOTE, total_cents=25000,
                   shipments=[_delivered("UPS", days_ago=9, items=(("TOTE", 1),)),
                              _delivered("USPS", days_ago=10, items=(("MUG", 3),))])
    make_order(engine, "2010", "j@example.com", lines=(("MUG", "Mug", 4999, 1),), shipments=[])
    k = make_order(engine, "2011", "k@example.com", lines=(("MUG", "Mug", 5000, 1),),
                   shipments=[_delivered("UPS", items=(("MUG", 1),))])
    with write_session(engine) as s:  # a replacement shipped before everything: not "first"
        s.add(Shipment(order_id=h.order_id, tracking_number=None, carrier="DHL", status="delivered",
                       shipped_at=NOW - timedelta(days=11), is_replacement=True, source="claim",
                       items=[ShipmentItem(line_item_id=s.get(ShipmentItem, h.items[(1, "MUG")])
                                           .line_item_id, quantity=1)]))
    for built, country, province in ((a, "US", "CA"), (b, "US", "CA"), (c, "US", "NY"),
                                     (d, "US", "NY"), (h, "CA", "ON"), (k, "US", ""),
                                     (e, "US", "CA"), (f, "US", "CA")):
        _set(engine, built.order_id, shipping_country=country, shipping_province=province)

    ca = _claim(engine, a, "a1")  # one mug: 2800
    decisions.approve(engine, ca, staff, [ResolutionInput("refund", 2800)], now=NOW)
    decisions.undo_approval(engine, ca, staff, "Wrong amount", now=NOW)
    decisions.approve(engine, ca, staff, [ResolutionInput("refund", 1800),
                                          ResolutionInput("store_credit", 1000, 10)], now=NOW)
    cb = _claim(engine, b, "b1")  # one mug: 2000
    decisions.approve(engine, cb, staff, [ResolutionInput("store_credit", 2000, 10)], now=NOW)
    cc = _claim(engine, c, "c1", items={c.items[(0, "MUG")]: 2})  # two mugs: 5600
    decisions.approve(engine, cc, staff, [ResolutionInput("reshipment")], now=NOW)
    cd = _claim(engine, d, "d1")
    decisions.approve(engine, cd, staff, [ResolutionInput("refund", 2800)], now=NOW)
    decisions.undo_approval(engine, cd, staff, "Found the parcel", now=NOW)
    for built in (e, f):
        cid = _claim(engine, built, f"{built.number}-1")
        decisions.approve(engine, cid, staff, [ResolutionInput("refund", 2800)], now=NOW)
    _set(engine, e.order_id, protection_purchased_at=None, protection_fee_cents=0)
    _set(engine, f.order_id, cancelled_at=NOW - timedelta(days=11))
    return engine


def row(label, orders, fees, value, claims=0, refunds=0, credit=0, reship_items=0, reships=0):
    return SegmentInputs(label, orders, fees, value, claims, refunds, credit, reship_items, reships)


def test_segment_inputs_for_all_orders(shop):
    # A B C D H J K: 7 protected orders at 2.95; E unprotected, F cancelled, G in October.
    # Paid claims: A (once, though approved twice: the first approval was voided), B, C; D voided.
    assert pricing.segment_inputs(shop, *PERIOD, "all") == [
        row("All orders", 7, 7 * 295, 11850 * 3 + 4000 + 25000 + 4999 + 5000,
            claims=3, refunds=1800, credit=1100 + 2200, reship_items=5600, reships=1)]


def test_segment_inputs_by_carrier(shop):
    assert pricing.segment_inputs(shop, *PERIOD, "carrier") == [
        row("UPS", 3, 885, 11850 + 11850 + 5000, claims=1, refunds=1800, credit=1100),  # A D K
        row("FedEx", 2, 590, 4000 + 11850, claims=2, credit=2200, reship_items=5600, reships=1),
        row("USPS", 1, 295, 25000),  # H: its first shipment, not the earlier replacement (DHL)
        row("No shipment", 1, 295, 4999),                                              # J
    ]


def test_segment_inputs_by_region(shop):
    assert pricing.segment_inputs(shop, *PERIOD, "region") == [
        row("US-CA", 2, 590, 11850 + 4000, claims=2, refunds=1800, credit=1100 + 2200),  # A B
        row("US-NY", 2, 590, 11850 * 2, claims=1, reship_items=5600, reships=1),         # C D
        row("CA-ON", 1, 295, 25000),                                                   # H
        row("US", 1, 295, 5000),                                                       # K
        row("Unknown region", 1, 295, 4999),                                           # J
    ]


def test_segment_inputs_by_value_band(shop):
    assert pricing.segment_inputs(shop, *PERIOD, "value_band") == [
        row("Under $50", 2, 590, 4000 + 4999, claims=1, credit=2200),                  # B J
        row("$50–100", 1, 295, 5000),                                                  # K
        row("$100–250", 3, 885, 11850 * 3, claims=2, refunds=1800, credit=1100,        # A C D
            reship_items=5600, reships=1),
        row("$250+", 1, 295, 25000),                                                   # H
    ]


def test_the_period_is_inclusive_of_both_days(shop):
    day = date(2026, 11, 9)  # every November order was placed on the 9th
    assert pricing.segment_inputs(shop, day, day, "all")[0].protected_orders == 7
    assert pricing.segment_inputs(shop, date(2026, 11, 10), PERIOD[1], "all") == [
        row("All orders", 0, 0, 0)]
    october = pricing.segment_inputs(shop, date(2026, 10, 1), date(2026, 10, 31), "value_band")
    assert [r.protected_orders for r in october] == [0, 0, 1, 0]  # G


def test_advice_from_the_database(shop):
    [adv] = pricing.advice(shop, *PERIOD, "all", A)
    # 1800 + 0.6 × 3300 + 0.45 × 5600 + 800 = 1800 + 1980 + 2520 + 800
    assert adv.claims_cost_cents == 7100
    assert adv.loss_ratio == pytest.approx(7100 / 2065)
    assert not adv.enough_data and "7" in adv.reason and "3" in adv.reason
    small = Assumptions(min_orders=5, min_claims=3)
    [adv] = pricing.advice(shop, *PERIOD, "all", small)
    # 7100 / 0.6 / 7 = 1690.48 per order → up to 1695
    assert adv.enough_data and adv.flat_fee_cents == 1695


def test_an_unknown_segment_is_refused(engine):
    with pytest.raises(ClaimRuleError) as refused:
        pricing.segment_inputs(engine, *PERIOD, "sku")
    assert refused.value.code == ErrorCode.PRICING_INPUT_INVALID
