"""Shopify's order JSON read into the domain's snapshots (``domain/orders.py``): an order
(``orders/create``, ``orders/updated``, ``orders/cancelled``), a fulfillment
(``fulfillments/create``, ``/update``) and a refund (``refunds/create``). Parsing only: no
database. ``services/order_sync.py`` writes what these return, as it does for the CSV export.

Text and times are read by ``domain.text`` (``read_text``, ``read_time``), amounts by
``domain.money.minor_from_amount``, like every other source.
"""
from __future__ import annotations

from datetime import datetime

from ..domain import identifiers
from ..domain.errors import InvalidInput
from ..domain.money import minor_from_amount
from ..domain.orders import (LineSnapshot, OrderDataError, OrderSnapshot, RefundSnapshot,
                             ShipmentSnapshot, ShippedItem, protection_matcher, risk_level)
from ..domain.resolutions import SHOP_MARKER
from ..domain.text import UnreadableTime, read_text, read_time
from . import carrier_feeds

# A body that isn't the shape Shopify documents (``str(e)`` says what is wrong).
PayloadError = OrderDataError


def _text(value, cap: int) -> str:
    return read_text(value, cap, keep_lines=True)


def shopify_id(value) -> str:
    """Shopify's id of an order, fulfillment or refund as stored ("" when there is none)."""
    return _text(value, 64)


def _money(value, what: str, currency: str) -> int:
    if isinstance(value, dict):  # a MoneyBag: {"shop_money": {"amount": "1.00", ...}}
        bag = value.get("shop_money")
        if bag is not None and not isinstance(bag, dict):
            raise PayloadError(f"{what} is not an amount")
        value = (bag or {}).get("amount")
    if value is None or value == "":
        return 0
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise PayloadError(f"{what} is not an amount")
    try:
        return minor_from_amount(value, currency)
    except InvalidInput as e:
        raise PayloadError(f"{what}: {e.message}") from None


def _time(value, what: str) -> datetime | None:
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise PayloadError(f"{what} is not a date and time")
    try:
        return read_time(value)
    except UnreadableTime:
        raise PayloadError(f"{what} “{value[:40]}” is not an ISO 8601 date and time") from None


def _list(value, what: str) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        raise PayloadError(f"{what} is not a list")
    return value


def _refunds(items, currency: str) -> tuple[RefundSnapshot, ...]:
    """Shopify refund objects (successful refund transactions only), leaving out the refunds
    this portal's write-back made (a claim's own refund is not money "refunded outside the
    claim")."""
    out: dict[str, int] = {}
    for r in items if isinstance(items, list) else []:
        if not isinstance(r, dict) or r.get("id") is None:
            continue
        if SHOP_MARKER.search(str(r.get("note") or "")):
            continue
        out[shopify_id(r["id"])] = sum(
            _money(t.get("amount"), "Refund amount", currency)
            for t in _list(r.get("transactions"), "transactions")
            if isinstance(t, dict) and t.get("kind") == "refund"
            and t.get("status") in ("success", None))
    return tuple(RefundSnapshot(k, v) for k, v in out.items())


def parse_order(payload, protection_pattern: str) -> OrderSnapshot:
    """A Shopify order read into the same shape as one order of the CSV export."""
    if not isinstance(payload, dict):
        raise PayloadError("the body is not a JSON object")
    number = identifiers.normalize_order_number(
        _text(payload.get("name") or payload.get("order_number"), 64))
    if not number:
        raise PayloadError("the order has no name or order_number")
    customer = payload.get("customer") if isinstance(payload.get("customer"), dict) else {}
    email = identifiers.normalize_email(_text(payload.get("email") or payload.get("contact_email")
                                              or customer.get("email"), 254))
    if "@" not in email:
        raise PayloadError(f"order {number} has no customer email")
    created = _time(payload.get("created_at"), "created_at")
    if created is None:
        raise PayloadError(f"order {number} has no created_at")
    ship = payload.get("shipping_address") if isinstance(payload.get("shipping_address"), dict) else {}
    shipping_lines = [x for x in _list(payload.get("shipping_lines"), "shipping_lines")
                      if isinstance(x, dict)]
    name = _text(ship.get("name"), 200) or " ".join(
        p for p in (_text(customer.get("first_name"), 100), _text(customer.get("last_name"), 100))
        if p)
    risk = payload.get("risk_level") or payload.get("riskLevel") or (
        (payload.get("risk") or {}).get("recommendation") if isinstance(payload.get("risk"), dict)
        else "")
    currency = (_text(payload.get("currency"), 3) or "USD").upper()
    try:
        is_protection = protection_matcher(protection_pattern)
    except ValueError as e:
        raise PayloadError(str(e)) from None
    items = payload.get("line_items")
    if not isinstance(items, list) or not items:
        raise PayloadError(f"order {number} has no line_items")
    lines = []
    for i, li in enumerate(items, start=1):
        if not isinstance(li, dict):
            raise PayloadError(f"line item {i} of order {number} is not an object")
        title = _text(li.get("name") or li.get("title"), 300)
        sku = _text(li.get("sku"), 100)
        qty = li.get("quantity")
        if isinstance(qty, bool) or not isinstance(qty, int) or qty < 0:
            raise PayloadError(f"line item {i} of order {number} has no whole quantity")
        if not title:
            raise PayloadError(f"line item {i} of order {number} has no name")
        price = _money(li.get("price"), "price", currency)
        discount = _money(li.get("total_discount"), "total_discount", currency)
        lines.append(LineSnapshot(
            sku=sku, name=title, quantity=qty, unit_price_minor=price,
            discount_minor=min(discount, price * qty),
            requires_shipping=li.get("requires_shipping") is not False,
            fulfilled=li.get("fulfillment_status") == "fulfilled",
            is_protection=is_protection(title, sku), line=i))
    shipping = (_money(payload["total_shipping_price_set"], "total_shipping_price_set", currency)
                if payload.get("total_shipping_price_set") else
                sum(_money(x.get("price"), "shipping price", currency) for x in shipping_lines))
    return OrderSnapshot(
        number=number, name=_text(payload.get("name"), 64) or f"#{number}", email=email,
        created_at=created, lines=tuple(lines), source="shopify", customer_name=name,
        financial_status=_text(payload.get("financial_status"), 32) or "pending",
        fulfillment_status=_text(payload.get("fulfillment_status"), 32) or "unfulfilled",
        cancelled_at=_time(payload.get("cancelled_at"), "cancelled_at"),
        currency=currency,
        subtotal_minor=_money(payload.get("subtotal_price"), "subtotal_price", currency),
        shipping_minor=shipping,
        tax_minor=_money(payload.get("total_tax"), "total_tax", currency),
        total_minor=_money(payload.get("total_price"), "total_price", currency),
        shipping_method=_text(shipping_lines[0].get("title"), 100) if shipping_lines else "",
        shipping_address1=_text(ship.get("address1"), 200),
        shipping_city=_text(ship.get("city"), 100),
        shipping_zip=_text(ship.get("zip"), 20),
        shipping_province=_text(ship.get("province_code") or ship.get("province"), 100),
        shipping_country=_text(ship.get("country_code"), 2).upper(),
        external_id=shopify_id(payload.get("id")) or None,
        risk_level=risk_level(risk),
        refunds=_refunds(payload.get("refunds"), currency),
        source_updated_at=_time(payload.get("updated_at"), "updated_at"),
        # shipments come from fulfillments
    )


def parse_fulfillment(payload) -> ShipmentSnapshot | str:
    """A fulfillment as a shipment (its order's number is filled in by the service), or why there
    is nothing to apply yet (no tracking number, cancelled)."""
    if not isinstance(payload, dict):
        raise PayloadError("the body is not a JSON object")
    numbers = carrier_feeds.shopify_tracking_numbers(payload)
    tracking_number = identifiers.normalize_tracking(numbers[0]) if numbers else ""
    if not tracking_number:
        return "the fulfillment has no tracking number yet"
    if payload.get("status") in carrier_feeds.DEAD_FULFILLMENT_STATUSES:
        return f"the fulfillment is {payload.get('status')}"
    shipped = _time(payload.get("created_at"), "created_at")
    if shipped is None:
        raise PayloadError("the fulfillment has no created_at")
    items = []
    for i, li in enumerate(_list(payload.get("line_items"), "line_items"), start=1):
        if not isinstance(li, dict):
            raise PayloadError(f"line item {i} of the fulfillment is not an object")
        qty = li.get("quantity")
        if isinstance(qty, bool) or not isinstance(qty, int) or qty < 1:
            raise PayloadError(f"line item {i} of the fulfillment has no whole quantity")
        items.append(ShippedItem(_text(li.get("sku"), 100), qty, i,
                                 name=_text(li.get("name") or li.get("title"), 300)))
    return ShipmentSnapshot(
        order_number="", tracking_number=tracking_number, shipped_at=shipped, items=tuple(items),
        source="shopify", carrier=_text(payload.get("tracking_company"), 64), status=None,
        external_id=shopify_id(payload.get("id")) or None, line=1)


def parse_refund(payload, currency: str) -> tuple[RefundSnapshot, ...]:
    """A refund (``refunds/create``) on an order in ``currency``; none when the portal's own."""
    if not isinstance(payload, dict) or payload.get("id") is None:
        raise PayloadError("the refund has no id")
    return _refunds([payload], currency)
