"""Is the protection priced right? Pure arithmetic on one segment's totals (no database).

The shop self-insures: customers pay a protection fee at checkout and the shop pays the claims.
For one segment of a period's protected orders (all orders, a carrier, a region, an order-value
band) this module turns the totals the service reads into what the owner asks:

- **claims cost**, with the shop's own assumptions (:class:`Assumptions`)::

      refunds at face value
    + credit_cost_ratio   × store credit at face value (bonus included)
    + reship_cost_ratio   × item price of reshipped goods
    + reship_shipping_cents × number of reshipments

  rounded half up to the cent, once, at the end; with ``count_recoveries`` (the owner's tick)
  it is the **net cost**: less what the carriers paid back on those claims (the recoveries'
  recovered amounts), never below zero; the range and not-enough-data rules are unchanged;
- **loss ratio** = claims cost / fee revenue (None without revenue);
- **recommended fee**, the fee at which these claims would have cost ``target_loss_ratio`` of
  the fees: required revenue = claims cost / target;

  - flat: required revenue / protected orders, rounded **up** to the next 5 cents;
  - percent of order value: required revenue / total order value of those orders, as a percent
    (3.85 means 3.85 %), rounded **up** to the next 0.01 % (a whole basis point);

  rounding up means the recommended fee meets the target (loss ratio ≤ target), never misses it;
- **range** on the recommended fee: the number of paid claims is treated as Poisson; the exact
  (Garwood) interval on the count at ``confidence`` (two-sided, 90 % by default) scales the claims
  cost (average cost per claim held fixed): cost × low/count and cost × high/count give the low
  and high fees (same rounding);
- **not enough data** below ``min_orders`` protected orders or ``min_claims`` paid claims: the
  counts are shown, no recommendation, and ``reason`` says why;
- **what-if**: a new fee (flat, or percent of order value) and a change in how many customers buy
  protection (``attach_change`` -0.10: a tenth fewer protected orders); claims scale with
  protected orders (cost per protected order held fixed) and so does the order value (average
  order value held fixed).

Ratios are taken as typed (``Decimal(str(x))``) and rounding is done on exact fractions, so a
figure never depends on binary floating point.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

from .errors import ErrorCode, InvalidInput

FEE_STEP_CENTS = 5          # a recommended flat fee is a multiple of 5 cents
PERCENT_STEP = Fraction(1, 100)  # a recommended percent is a whole basis point (0.01 %)

# (label, from cents inclusive, to cents exclusive or None), on the order total
ORDER_VALUE_BANDS: tuple[tuple[str, int, int | None], ...] = (
    ("Under $50", 0, 5000),
    ("$50–100", 5000, 10000),
    ("$100–250", 10000, 25000),
    ("$250+", 25000, None),
)


def band_of(order_total_cents: int) -> str:
    """The order-value band an order total falls in (a negative total counts in the first)."""
    for label, _lo, hi in ORDER_VALUE_BANDS:
        if hi is None or order_total_cents < hi:
            return label
    raise AssertionError("the last band is open-ended")  # pragma: no cover


@dataclass(frozen=True)
class Assumptions:
    target_loss_ratio: float = 0.60
    credit_cost_ratio: float = 0.60    # what a dollar of store credit costs the shop
    reship_cost_ratio: float = 0.45    # cost of goods as a share of the item price
    reship_shipping_cents: int = 800   # postage per reshipment
    min_orders: int = 200
    min_claims: int = 5
    confidence: float = 0.90
    count_recoveries: bool = False     # claims cost net of what came back from the carriers

    def __post_init__(self):
        if not 0 < self.target_loss_ratio:
            raise InvalidInput("The target loss ratio must be above zero.", ErrorCode.PRICING_INPUT_INVALID)
        if self.credit_cost_ratio < 0 or self.reship_cost_ratio < 0 or self.reship_shipping_cents < 0:
            raise InvalidInput("Costs can't be negative.", ErrorCode.PRICING_INPUT_INVALID)
        if self.min_orders < 0 or self.min_claims < 0:
            raise InvalidInput("Minimum sample sizes can't be negative.", ErrorCode.PRICING_INPUT_INVALID)
        if not 0 < self.confidence < 1:
            raise InvalidInput("The confidence must be between 0 and 1 (e.g. 0.90).",
                               ErrorCode.PRICING_INPUT_INVALID)


@dataclass(frozen=True)
class SegmentInputs:
    label: str                   # "All orders", "UPS", "US-CA", "$50–100"
    protected_orders: int
    fee_revenue_cents: int
    order_value_cents: int       # total order value of the protected orders
    paid_claims: int             # distinct claims with at least one live (not voided) resolution
    refunds_cents: int
    credit_face_cents: int       # store credit incl. bonus, at face value
    reship_item_cents: int       # item price of reshipped goods
    reshipments: int
    recovered_cents: int = 0     # what the carriers paid back on those claims (recoveries)

    @property
    def average_order_cents(self) -> int | None:
        return _round_half_up(Fraction(self.order_value_cents, self.protected_orders)) \
            if self.protected_orders else None

    @property
    def average_fee_cents(self) -> int | None:
        return _round_half_up(Fraction(self.fee_revenue_cents, self.protected_orders)) \
            if self.protected_orders else None


@dataclass(frozen=True)
class Advice:
    label: str
    protected_orders: int
    fee_revenue_cents: int
    claims_cost_cents: int
    paid_claims: int
    loss_ratio: float | None           # None without revenue
    flat_fee_cents: int | None         # recommended; None when not enough data
    flat_fee_range_cents: tuple[int, int] | None
    percent_fee: float | None          # e.g. 3.85 meaning 3.85 % of order value
    percent_fee_range: tuple[float, float] | None
    enough_data: bool
    reason: str                        # why no recommendation ("" when there is one)
    # extra context for the page
    order_value_cents: int = 0
    average_order_cents: int | None = None
    paid_claims_range: tuple[float, float] | None = None   # the Poisson interval on the count
    claims_cost_range_cents: tuple[int, int] | None = None


@dataclass(frozen=True)
class WhatIf:
    protected_orders: int
    revenue_cents: int
    claims_cost_cents: int
    loss_ratio: float | None


# --- exact helpers ------------------------------------------------------------------------------

def _exact(x) -> Fraction:
    """A ratio as the owner typed it: 0.6 is 3/5, not 0.59999999999999997779…"""
    return Fraction(Decimal(str(x)))


def _round_half_up(x: Fraction) -> int:
    return math.floor(x + Fraction(1, 2))


def _ceil_to(x: Fraction, step) -> Fraction:
    return math.ceil(x / step) * Fraction(step)


# --- claims cost and loss ratio -----------------------------------------------------------------

def _cost(inputs: SegmentInputs, a: Assumptions) -> Fraction:
    gross = (inputs.refunds_cents
             + _exact(a.credit_cost_ratio) * inputs.credit_face_cents
             + _exact(a.reship_cost_ratio) * inputs.reship_item_cents
             + a.reship_shipping_cents * inputs.reshipments)
    return max(Fraction(0), gross - inputs.recovered_cents) if a.count_recoveries else gross


def claims_cost(inputs: SegmentInputs, a: Assumptions) -> int:
    """What the segment's paid claims cost the shop, in cents (rounded half up, once); net of
    recoveries when the owner counts them."""
    return _round_half_up(_cost(inputs, a))


def loss_ratio(cost_cents: int, revenue_cents: int) -> float | None:
    return cost_cents / revenue_cents if revenue_cents else None


# --- the Poisson interval -----------------------------------------------------------------------

def _lower_regularized_gamma(s: float, x: float) -> float:
    """P(s, x) = γ(s, x) / Γ(s) for s > 0, x ≥ 0 (series below s + 1, continued fraction above;
    Numerical Recipes §6.2). P(n, μ) is the chance of at least n events of a Poisson(μ)."""
    if x <= 0:
        return 0.0
    log_front = s * math.log(x) - x - math.lgamma(s)
    if x < s + 1:
        term = total = 1.0 / s
        a = s
        for _ in range(100000):
            a += 1
            term *= x / a
            total += term
            if abs(term) < abs(total) * 1e-16:
                break
        return min(1.0, total * math.exp(log_front))
    # upper tail Q by Lentz's continued fraction, P = 1 - Q
    tiny = 1e-300
    b = x + 1 - s
    c = 1 / tiny
    d = 1 / b
    h = d
    for i in range(1, 100000):
        an = -i * (i - s)
        b += 2
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1 / d
        delta = d * c
        h *= delta
        if abs(delta - 1) < 1e-16:
            break
    return max(0.0, 1.0 - math.exp(log_front) * h)


def _solve_increasing(f, target: float, start: float) -> float:
    """x ≥ 0 with f(x) = target, for f increasing from below target at 0 (bisection)."""
    lo, hi = 0.0, max(start, 1.0)
    while f(hi) < target:
        lo, hi = hi, hi * 2
    for _ in range(200):
        mid = (lo + hi) / 2
        if mid in (lo, hi):
            break
        if f(mid) < target:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-12 * max(1.0, hi):
            break
    return (lo + hi) / 2


def poisson_interval(count: int, confidence: float) -> tuple[float, float]:
    """Exact (Garwood) two-sided interval on a Poisson mean, having seen ``count`` events.

    low  = χ²(α/2; 2·count) / 2        (0 when count is 0): P(X ≥ count | low) = α/2
    high = χ²(1 - α/2; 2·count + 2) / 2:                     P(X ≤ count | high) = α/2
    with α = 1 - confidence; solved on the regularized incomplete gamma, P(X ≥ n | μ) = P(n, μ).
    """
    if count < 0:
        raise InvalidInput("A count can't be negative.", ErrorCode.PRICING_INPUT_INVALID)
    if not 0 < confidence < 1:
        raise InvalidInput("The confidence must be between 0 and 1.", ErrorCode.PRICING_INPUT_INVALID)
    tail = (1 - confidence) / 2
    if count == 0:
        low = 0.0
    else:
        low = _solve_increasing(lambda mu: _lower_regularized_gamma(count, mu), tail, count)
    high = _solve_increasing(lambda mu: _lower_regularized_gamma(count + 1, mu), 1 - tail,
                             count + 1)
    return low, high


# --- the recommendation -------------------------------------------------------------------------

def _flat_fee(cost: Fraction, a: Assumptions, orders: int) -> int:
    return int(_ceil_to(cost / _exact(a.target_loss_ratio) / orders, FEE_STEP_CENTS))


def _percent_fee(cost: Fraction, a: Assumptions, order_value_cents: int) -> float:
    return float(_ceil_to(100 * cost / _exact(a.target_loss_ratio) / order_value_cents,
                          PERCENT_STEP))


def _shortfall(inputs: SegmentInputs, a: Assumptions) -> str:
    need_orders, need_claims = max(a.min_orders, 1), max(a.min_claims, 1)
    reasons = []
    if inputs.protected_orders < need_orders:
        reasons.append(f"{inputs.protected_orders} protected order"
                       f"{'' if inputs.protected_orders == 1 else 's'} (at least {need_orders} needed)")
    if inputs.paid_claims < need_claims:
        reasons.append(f"{inputs.paid_claims} paid claim"
                       f"{'' if inputs.paid_claims == 1 else 's'} (at least {need_claims} needed)")
    return ("Not enough data for a recommendation: only " + " and ".join(reasons) + ".") \
        if reasons else ""


def advise(inputs: SegmentInputs, a: Assumptions) -> Advice:
    """The segment's figures, and the fee that reaches the target loss ratio (when there is
    enough data)."""
    cost = _cost(inputs, a)
    cost_cents = _round_half_up(cost)
    base = dict(label=inputs.label, protected_orders=inputs.protected_orders,
                fee_revenue_cents=inputs.fee_revenue_cents, claims_cost_cents=cost_cents,
                paid_claims=inputs.paid_claims,
                loss_ratio=loss_ratio(cost_cents, inputs.fee_revenue_cents),
                order_value_cents=inputs.order_value_cents,
                average_order_cents=inputs.average_order_cents)
    reason = _shortfall(inputs, a)
    if reason:
        return Advice(**base, flat_fee_cents=None, flat_fee_range_cents=None, percent_fee=None,
                      percent_fee_range=None, enough_data=False, reason=reason)
    low_n, high_n = poisson_interval(inputs.paid_claims, a.confidence)
    # from the cost as shown (whole cents), so the fee meets the target on the figures shown;
    # exact fractions of the float bounds keep the scaled costs ordered low ≤ cost ≤ high
    cost = Fraction(cost_cents)
    cost_low = cost * Fraction(low_n) / inputs.paid_claims
    cost_high = cost * Fraction(high_n) / inputs.paid_claims
    n = inputs.protected_orders
    flat = _flat_fee(cost, a, n)
    flat_range = (_flat_fee(cost_low, a, n), _flat_fee(cost_high, a, n))
    value = inputs.order_value_cents
    if value > 0:
        pct = _percent_fee(cost, a, value)
        pct_range = (_percent_fee(cost_low, a, value), _percent_fee(cost_high, a, value))
    else:
        pct, pct_range = None, None
    return Advice(**base, flat_fee_cents=flat, flat_fee_range_cents=flat_range, percent_fee=pct,
                  percent_fee_range=pct_range, enough_data=True, reason="",
                  paid_claims_range=(low_n, high_n),
                  claims_cost_range_cents=(_round_half_up(cost_low), _round_half_up(cost_high)))


# --- what if ------------------------------------------------------------------------------------

def what_if(inputs: SegmentInputs, a: Assumptions, *, flat_fee_cents: int | None = None,
            percent_fee: float | None = None, attach_change: float = 0.0) -> WhatIf:
    """The segment again at a new fee, with ``attach_change`` more (+) or fewer (-) customers
    buying protection (a fraction: -0.10 is a tenth fewer).

    projected orders  = protected orders × (1 + attach_change), rounded half up;
    revenue           = flat fee × projected orders, or
                        percent/100 × average order value × projected orders
                        (no new fee given: today's average fee × projected orders);
    claims cost       = today's claims cost per protected order × projected orders;
    loss ratio        = claims cost / revenue (None without revenue).
    Money is rounded half up to the cent at the end.
    """
    if flat_fee_cents is not None and percent_fee is not None:
        raise InvalidInput("Give either a flat fee or a percentage, not both.",
                           ErrorCode.PRICING_INPUT_INVALID)
    if (flat_fee_cents is not None and flat_fee_cents < 0) or \
            (percent_fee is not None and percent_fee < 0):
        raise InvalidInput("A fee can't be negative.", ErrorCode.AMOUNT_INVALID)
    change = _exact(attach_change)
    if change < -1:
        raise InvalidInput("No fewer than all customers can stop buying protection "
                           "(-100 %).", ErrorCode.PRICING_INPUT_INVALID)
    n = inputs.protected_orders
    if n == 0:
        return WhatIf(0, 0, 0, None)
    projected = _round_half_up(n * (1 + change))
    scale = Fraction(projected, n)
    if flat_fee_cents is not None:
        revenue = Fraction(flat_fee_cents * projected)
    elif percent_fee is not None:
        revenue = _exact(percent_fee) / 100 * inputs.order_value_cents * scale
    else:
        revenue = Fraction(inputs.fee_revenue_cents) * scale
    revenue_cents = _round_half_up(revenue)
    cost_cents = _round_half_up(_cost(inputs, a) * scale)
    return WhatIf(projected, revenue_cents, cost_cents, loss_ratio(cost_cents, revenue_cents))
