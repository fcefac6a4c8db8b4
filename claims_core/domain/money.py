"""Money: integer minor units of the currency (cents; yen have none, dinars three), everywhere.

The store-credit bonus, what one unit cost the customer, and "never more than was paid" live here
and nowhere else. ``credit_with_bonus`` works on plain integers and on SQL column expressions alike,
so the analytics SQL uses the very same formula.
"""
from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Iterable

from .errors import ErrorCode, InvalidInput
from .vocabulary import RESOLUTION_LABELS, ResolutionKind
from .currencies import CURRENCY_EXPONENTS, currency_exponent, format_cents  # noqa: F401 - money's names

MAX_BONUS_PCT = 100


def credit_with_bonus(amount_cents, bonus_pct):
    """Store credit including the bonus, the bonus rounded half up to the cent."""
    return amount_cents + (amount_cents * bonus_pct + 50) // 100


def check_bonus(bonus_pct: int, cap_pct: int) -> int:
    """A store-credit bonus is a whole percentage from 0 to the store's configured cap."""
    if isinstance(bonus_pct, bool) or not isinstance(bonus_pct, int) or bonus_pct < 0:
        raise InvalidInput("The bonus must be a whole percentage of zero or more.",
                           ErrorCode.AMOUNT_INVALID)
    cap = min(cap_pct, MAX_BONUS_PCT)
    if bonus_pct > cap:
        raise InvalidInput(f"The store-credit bonus can be at most {cap} % (the store's "
                           "setting).", ErrorCode.BONUS_ABOVE_CAP)
    return bonus_pct


def unit_paid_cents(unit_price_cents: int, quantity: int, discount_cents: int) -> int:
    """What the customer paid for one unit of a line (line discount spread evenly, rounded down)."""
    if quantity <= 0:
        return unit_price_cents
    return (unit_price_cents * quantity - discount_cents) // quantity


def check_resolution_amounts(resolutions: Iterable[tuple[str, int]], claimed_cents: int,
                             currency: str = "USD") -> None:
    """Staff can grant at most what the customer paid for the claimed items, in total.

    A reshipment counts as the full value of the items; refund and store credit (before any
    bonus) count as their amounts. Each refund or credit must be a positive amount.
    """
    total = 0
    kinds: list[str] = []
    for kind, amount in resolutions:
        if kind not in RESOLUTION_LABELS:
            raise InvalidInput("Unknown resolution.")
        if kind in kinds:
            raise InvalidInput(f"{RESOLUTION_LABELS[kind]} was chosen twice; combine the amounts.")
        kinds.append(kind)
        if kind == ResolutionKind.RESHIPMENT:
            total += claimed_cents
            continue
        if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
            raise InvalidInput(f"Enter an amount above zero for the "
                               f"{RESOLUTION_LABELS[kind].lower()}.", ErrorCode.AMOUNT_INVALID)
        total += amount
    if total > claimed_cents:
        raise InvalidInput(
            f"That adds up to {format_cents(total, currency)}, more than the "
            f"{format_cents(claimed_cents, currency)} "
            "paid for the claimed items.", ErrorCode.AMOUNT_ABOVE_PAID)


def is_partial(resolutions: Iterable[tuple[str, int]], claimed_cents: int) -> bool:
    """Less than what was paid for the claimed items (a reshipment always covers them in full)."""
    chosen = list(resolutions)
    if any(kind == ResolutionKind.RESHIPMENT for kind, _a in chosen):
        return False
    return sum(amount for _k, amount in chosen) < claimed_cents


def check_partial_reason(resolutions: Iterable[tuple[str, int]], claimed_cents: int,
                         note: str) -> None:
    """A partial amount needs the reason, for the customer: they see it with the decision."""
    if is_partial(resolutions, claimed_cents) and not (note or "").strip():
        raise InvalidInput("Say why the amount is less than what was paid; the customer sees "
                           "this note with the decision.", ErrorCode.TEXT_REQUIRED)


def decimal_amount(cents: int, currency: str = "USD") -> Decimal:
    """Minor units as an exact ``Decimal`` amount (1999 USD -> Decimal("19.99"), 1200 JPY ->
    Decimal("1200")), for tables and exports."""
    return Decimal(int(cents)).scaleb(-currency_exponent(currency))


def minor_units(value: Decimal, currency: str = "USD") -> int:
    """An exact amount in the currency's minor units (12.5 USD -> 1250, 1200 JPY -> 1200, 1.5 KWD
    -> 1500), rounded half up to the smallest unit."""
    try:
        return int(value.scaleb(currency_exponent(currency)).quantize(Decimal("1"),
                                                                      rounding=ROUND_HALF_UP))
    except InvalidOperation:  # more digits than any amount has (1e309)
        raise InvalidInput("That amount is too large.", ErrorCode.AMOUNT_INVALID)


def cents_from_amount(amount, currency: str = "USD") -> int:
    """A money amount typed in a form (e.g. 12.5 or "12.50") in the currency's minor units,
    exactly."""
    if amount is None or isinstance(amount, bool):
        raise InvalidInput("Enter an amount.", ErrorCode.AMOUNT_INVALID)
    try:
        value = Decimal(str(amount).strip().lstrip("$€£¥"))
    except InvalidOperation:
        raise InvalidInput(f"“{amount}” is not an amount.", ErrorCode.AMOUNT_INVALID)
    if not value.is_finite() or value < 0:
        raise InvalidInput("Enter an amount of zero or more.", ErrorCode.AMOUNT_INVALID)
    return minor_units(value, currency)
