"""An order as a source tells it: one frozen shape for every source (the orders export, a shipments
CSV, Shopify's webhooks, the REST API), and the rules for taking it in.

Parsers (``adapters/importer.py``, ``adapters/shopify_orders.py``, ``adapters/api_orders.py``)
turn what arrives into these snapshots or refuse it; ``services/order_sync.py`` writes them, the
one way orders, shipments and refunds change. Amounts are integer minor units of the order's
currency.

The rules here:
- which line is the shipping protection (``protection_matcher``), what it cost and since when it
  counts (``protection_fee_minor``, ``protection_purchased_at``);
- Shopify's fraud analysis as a level (``risk_level``);
- a shipment: each item is an ordered line by SKU (protection is never shipped), the shipments of
  an order never carry more than was ordered, the stand-in made from the export's "Fulfilled at"
  gives way to real shipments, a carrier feed's news outranks a file (``match_items``,
  ``over_ordered``, ``shipment_fields``);
- refunds: by refund id, the export's total kept apart, the order's refunded amount the larger of
  the two (``refunded_minor``).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Callable, Iterable, Mapping, Protocol

from .vocabulary import SHIPMENT_STATUSES

# where a shipment came from (``Shipment.source``): a stand-in from the export's "Fulfilled at"
FROM_EXPORT = "export"
EXPORT_REFUND_ID = "export"  # the orders export gives only a refunded total: kept under this id
RISK_LEVELS = ("low", "medium", "high")
# Shopify's newer order risk "recommendation" says the same in other words.
_RISK_WORDS = {"accept": "low", "investigate": "medium", "cancel": "high"}


class OrderDataError(ValueError):
    """An order, shipment or refund that can't be taken as it is: ``reason`` says why, ``line``
    where (the line of a file, the position in a body; 0 when it is the whole thing)."""

    def __init__(self, reason: str, line: int = 0):
        super().__init__(reason)
        self.reason = reason
        self.line = line


@dataclass(frozen=True)
class LineSnapshot:
    sku: str
    name: str
    quantity: int
    unit_price_minor: int
    discount_minor: int = 0  # for the whole line
    requires_shipping: bool = True
    fulfilled: bool = False
    is_protection: bool = False
    line: int = 0  # where it was read

    @property
    def paid_minor(self) -> int:
        return self.unit_price_minor * self.quantity - self.discount_minor


@dataclass(frozen=True)
class RefundSnapshot:
    external_id: str  # Shopify's refund id
    amount_minor: int


@dataclass(frozen=True)
class OrderSnapshot:
    number: str  # normalised (``identifiers.normalize_order_number``)
    name: str  # as the shop shows it: "#1001"
    email: str  # normalised
    created_at: datetime
    lines: tuple[LineSnapshot, ...]
    source: str  # import | shopify | api
    customer_name: str = ""
    financial_status: str = "paid"
    fulfillment_status: str = "unfulfilled"
    cancelled_at: datetime | None = None
    currency: str = "USD"
    subtotal_minor: int = 0
    shipping_minor: int = 0
    tax_minor: int = 0
    total_minor: int = 0
    shipping_method: str = ""
    shipping_address1: str = ""
    shipping_city: str = ""
    shipping_zip: str = ""
    shipping_province: str = ""
    shipping_country: str = ""
    external_id: str | None = None  # Shopify's order id
    risk_level: str = ""
    # the export's "Fulfilled at": one stand-in shipment until real shipments arrive
    fulfilled_at: datetime | None = None
    refunds: tuple[RefundSnapshot, ...] | None = None  # one by one (Shopify); None: not told
    refunded_total_minor: int | None = None  # the export's total; None: not told
    source_updated_at: datetime | None = None  # Shopify's updated_at: a late older one is stale
    line: int = 0  # where the order starts in its file

    @property
    def protection_lines(self) -> tuple[LineSnapshot, ...]:
        return tuple(ln for ln in self.lines if ln.is_protection)

    def protection_fee_minor(self) -> int:
        return sum(ln.paid_minor for ln in self.protection_lines)

    def protection_purchased_at(self, known: datetime | None) -> datetime | None:
        """Protection in an order's lines was bought at checkout, with the order; a time already
        known for it is kept."""
        if not self.protection_lines:
            return None
        return known or self.created_at

    def stand_in_lines(self) -> list[int]:
        """Positions (from 0) of the lines the export's stand-in shipment carries: shippable,
        not protection, fulfilled (the line, or the whole order)."""
        whole = self.fulfillment_status == "fulfilled"
        return [i for i, ln in enumerate(self.lines)
                if not ln.is_protection and ln.requires_shipping and ln.quantity > 0
                and (ln.fulfilled or whole)]


@dataclass(frozen=True)
class ShippedItem:
    sku: str
    quantity: int
    line: int = 0
    name: str = ""  # Shopify's fulfillment may name an item instead of giving its SKU


@dataclass(frozen=True)
class ShipmentSnapshot:
    order_number: str
    tracking_number: str  # normalised
    shipped_at: datetime
    items: tuple[ShippedItem, ...]
    source: str  # import | shopify | api
    carrier: str = ""
    # None: the source says nothing about the parcel's progress (a Shopify fulfillment): what is
    # stored stays, a new shipment is "fulfilled"
    status: str | None = "in_transit"
    delivered_at: datetime | None = None
    last_scan_at: datetime | None = None
    external_id: str | None = None  # Shopify's fulfillment id
    line: int = 0


def check_shipment(snap: ShipmentSnapshot) -> None:
    """What a shipment must say, whichever source sends it."""
    if not snap.tracking_number:
        raise OrderDataError("no tracking number", snap.line)
    if snap.status is not None and snap.status not in SHIPMENT_STATUSES:
        raise OrderDataError(f"status “{snap.status}” is not one of "
                             f"{', '.join(SHIPMENT_STATUSES)}", snap.line)
    if snap.status == "delivered" and snap.delivered_at is None:
        raise OrderDataError("status is delivered but delivered_at is empty", snap.line)
    if snap.delivered_at is not None and snap.delivered_at < snap.shipped_at:
        raise OrderDataError("delivered_at is before shipped_at", snap.line)


def protection_matcher(pattern: str) -> Callable[[str, str], bool]:
    """Which line is the shipping protection: the store's pattern found in its name or SKU.
    Raises ``ValueError`` (with the reason) for a pattern that isn't a regular expression."""
    try:
        rx = re.compile(pattern, re.IGNORECASE)
    except re.error as e:
        raise ValueError(f"The protection line pattern “{pattern}” is not valid: {e}.") from None
    return lambda name, sku: bool(rx.search(name or "") or rx.search(sku or ""))


def risk_level(raw) -> str:
    """Shopify's fraud analysis of an order as "low", "medium", "high", or "" when unknown."""
    s = str(raw or "").strip().lower()
    s = _RISK_WORDS.get(s, s)
    return s if s in RISK_LEVELS else ""


# --- shipments against the stored order (duck-typed: the ORM rows or anything shaped like them) ---

class _Line(Protocol):
    id: int
    sku: str
    name: str
    quantity: int
    is_protection: bool


def match_items(number: str, lines: Iterable[_Line], snap: ShipmentSnapshot) -> dict[int, int]:
    """{line id: quantity} the shipment carries; each item is the order's first line with its SKU
    that isn't protection. ``OrderDataError`` for an item the order doesn't have."""
    by_sku: dict[str, _Line] = {}
    for li in lines:
        if not li.is_protection:
            by_sku.setdefault(li.sku, li)
    wanted: dict[int, int] = {}
    for item in snap.items:
        li = by_sku.get(item.sku)
        if li is None:
            raise OrderDataError(f"order #{number} has no item with SKU {item.sku}", item.line)
        wanted[li.id] = wanted.get(li.id, 0) + item.quantity
    return wanted


def over_ordered(number: str, lines: Iterable[_Line], elsewhere: Mapping[int, int],
                 wanted: Mapping[int, int]) -> str | None:
    """Why the shipments of an order would carry more of a line than was ordered (``elsewhere``:
    what its other real shipments carry, by line id), or None."""
    by_id = {li.id: li for li in lines}
    for li_id, qty in wanted.items():
        li = by_id[li_id]
        if elsewhere.get(li_id, 0) + qty > li.quantity:
            return (f"shipments of order #{number} would carry {elsewhere.get(li_id, 0) + qty} "
                    f"of {li.sku or li.name}, but only {li.quantity} were ordered")
    return None


def counts_against_order(source: str, is_replacement: bool) -> bool:
    """Whether a stored shipment's items count towards "never more than was ordered": not the
    export's stand-in (real shipments replace it) nor a claim's reshipment."""
    return source != FROM_EXPORT and not is_replacement


def shipment_fields(snap: ShipmentSnapshot, *, live: bool, stored=None) -> dict:
    """The shipment's columns from the snapshot. ``live``: a carrier feed reports this tracking
    number, and its news (status, delivery, last scan) outranks a file's. ``stored``: the
    shipment as it is (kept where the snapshot says nothing of the parcel's progress)."""
    fields = dict(carrier=snap.carrier, shipped_at=snap.shipped_at)
    if live:
        return fields
    if snap.status is None:
        if stored is None:
            fields.update(status="fulfilled", delivered_at=None, last_scan_at=None)
        return fields
    fields.update(status=snap.status, delivered_at=snap.delivered_at, last_scan_at=snap.last_scan_at)
    return fields


def refunded_minor(refunds: Mapping[str, int]) -> int:
    """An order's refunded amount from its refunds by id: the larger of the export's total and the
    sum of the refunds known one by one."""
    return max(refunds.get(EXPORT_REFUND_ID, 0),
               sum(v for k, v in refunds.items() if k != EXPORT_REFUND_ID))
