"""Money: integer minor units of the currency (cents for dollars; yen have none, dinars three),
everywhere. Python names say ``minor`` (a yen amount is yen); database columns and the API keep
their ``*_cents`` names.

The store-credit bonus, what one unit cost the customer, and "never more than was paid" live here
and nowhere else. ``credit_with_bonus`` works on plain integers and on SQL column expressions alike,
so the analytics SQL uses the very same formula.
"""
from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Iterable

from .errors import ErrorCode, InvalidInput
from .vocabulary import RESOLUTION_LABELS, ResolutionKind
from .currencies import CURRENCY_EXPONENTS, currency_exponent, format_minor  # noqa: F401 - money's names

MAX_BONUS_PCT = 100


def credit_with_bonus(amount_minor, bonus_pct):
    """Store credit including the bonus, the bonus rounded half up to the cent."""
    return amount_minor + (amount_minor * bonus_pct + 50) // 100


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


def unit_paid_minor(unit_price_minor: int, quantity: int, discount_minor: int) -> int:
    """What the customer paid for one unit of a line (line discount spread evenly, rounded down)."""
    if quantity <= 0:
        return unit_price_minor
    return (unit_price_minor * quantity - discount_minor) // quantity


def check_resolution_amounts(resolutions: Iterable[tuple[str, int]], claimed_minor: int,
                             currency: str = "USD") -> None:
    """Staff can grant at most what the customer paid for the claimed items, in total.

    A reshipment counts as the full value of the items; refund and store credit (before any
    bonus) count as their amounts. Each refund or credit must be a positive amount.
    """
    total = 0
    kinds: list[str] = []
    for kind, amount in resolutions:
        if kind not in RESOLUTION_LABELS:
            raise InvalidInput("Unknown resolution.", ErrorCode.RESOLUTION_INVALID)
        if kind in kinds:
            raise InvalidInput(f"{RESOLUTION_LABELS[kind]} was chosen twice; combine the amounts.",
                               ErrorCode.RESOLUTION_INVALID)
        kinds.append(kind)
        if kind == ResolutionKind.RESHIPMENT:
            total += claimed_minor
            continue
        if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
            raise InvalidInput(f"Enter an amount above zero for the "
                               f"{RESOLUTION_LABELS[kind].lower()}.", ErrorCode.AMOUNT_INVALID)
        total += amount
    if total > claimed_minor:
        raise InvalidInput(
            f"That adds up to {format_minor(total, currency)}, more than the "
            f"{format_minor(claimed_minor, currency)} "
            "paid for the claimed items.", ErrorCode.AMOUNT_ABOVE_PAID)


def is_partial(resolutions: Iterable[tuple[str, int]], claimed_minor: int) -> bool:
    """Less than what was paid for the claimed items (a reshipment always covers them in full)."""
    chosen = list(resolutions)
    if any(kind == ResolutionKind.RESHIPMENT for kind, _a in chosen):
        return False
    return sum(amount for _k, amount in chosen) < claimed_minor


def check_partial_reason(resolutions: Iterable[tuple[str, int]], claimed_minor: int,
                         note: str) -> None:
    """A partial amount needs the reason, for the customer: they see it with the decision."""
    if is_partial(resolutions, claimed_minor) and not (note or "").strip():
        raise InvalidInput("Say why the amount is less than what was paid; the customer sees "
                           "this note with the decision.", ErrorCode.TEXT_REQUIRED)


def decimal_amount(minor: int, currency: str = "USD") -> Decimal:
    """Minor units as an exact ``Decimal`` amount (1999 USD -> Decimal("19.99"), 1200 JPY ->
    Decimal("1200")), for tables and exports."""
    return Decimal(int(minor)).scaleb(-currency_exponent(currency))


# Amounts are stored as 32-bit integers (minor units): nothing above this is read as an amount.
MAX_MINOR_UNITS = 2_000_000_000
_LEADING_CURRENCY = re.compile(r"^(?:[$€£¥]|[A-Za-z]{3}\s)\s*")  # "$12", "EUR 9.99"
_GROUPED = re.compile(r"\d{1,3}(?:,\d{3})+(?:\.\d*)?")  # "1,234.50": commas between thousands


def minor_from_amount(amount, currency: str = "USD") -> int:
    """An amount, however it comes — a form's number (12.5), text as a shop writes it ("12.50",
    "$12", "1,234.50", "EUR 9.99"), Shopify's decimal string ("40.0") — in the currency's minor
    units (USD 12.50 -> 1250, JPY 1200 -> 1200, KWD 1.5 -> 1500), exactly: rounded half up to
    the smallest unit, at most ``MAX_MINOR_UNITS``. The one parser of amounts: forms, imports
    and Shopify's answers all read amounts here. Refuses (``AMOUNT_INVALID``) nothing, text that
    isn't an amount, a comma that doesn't separate thousands ("12,50"), negative amounts, NaN,
    infinity and anything above the bound."""
    if amount is None or isinstance(amount, bool):
        raise InvalidInput("Enter an amount.", ErrorCode.AMOUNT_INVALID)
    text = _LEADING_CURRENCY.sub("", str(amount).strip())
    if _GROUPED.fullmatch(text):
        text = text.replace(",", "")
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise InvalidInput(f"“{amount}” is not an amount.", ErrorCode.AMOUNT_INVALID)
    if not value.is_finite() or value < 0:
        raise InvalidInput("Enter an amount of zero or more.", ErrorCode.AMOUNT_INVALID)
    if value and value.adjusted() > 12:  # before any arithmetic on it (1e309); beyond the bound
        raise InvalidInput("That amount is too large.", ErrorCode.AMOUNT_INVALID)
    minor = int(value.scaleb(currency_exponent(currency)).quantize(Decimal("1"),
                                                                   rounding=ROUND_HALF_UP))
    if minor > MAX_MINOR_UNITS:
        raise InvalidInput("That amount is too large.", ErrorCode.AMOUNT_INVALID)
    return minor
