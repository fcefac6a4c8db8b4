"""The body of ``PUT /api/v1/orders/{number}`` (already type-checked by ``api.OrderIn``) read into
the domain's snapshots (``domain/orders.py``): an order and its shipments. Parsing only;
``services/order_sync.sync_api_order`` writes them, as it does the CSV export and Shopify's
webhooks."""
from __future__ import annotations

from ..domain import identifiers
from ..domain.orders import (LineSnapshot, OrderDataError, OrderSnapshot, ShipmentSnapshot,
                             ShippedItem, check_shipment)
from ..domain.text import read_text

PROTECTION_SKU = "SHIP-PROTECT"  # the line a pushed protection fee becomes


def _text(value, cap: int) -> str:
    return read_text(value, cap, keep_lines=True)


def parse_order(number: str, data: dict) -> tuple[OrderSnapshot, tuple[ShipmentSnapshot, ...]]:
    """``OrderDataError`` for what the body's types can't say (an empty number, an email without
    @, a shipment without tracking number)."""
    normalized = identifiers.normalize_order_number(number)
    if not normalized or len(normalized) > 60:
        raise OrderDataError("the order number is empty or too long")
    email = identifiers.normalize_email(data["email"])
    if "@" not in email:
        raise OrderDataError("email is not an email address")
    lines = [LineSnapshot(sku=_text(li["sku"], 100), name=_text(li["name"], 300),
                          quantity=li["quantity"], unit_price_minor=li["unit_price_cents"], line=i)
             for i, li in enumerate(data["line_items"], start=1)]
    if data.get("protection_fee_cents"):
        lines.append(LineSnapshot(sku=PROTECTION_SKU, name="Shipping Protection", quantity=1,
                                  unit_price_minor=data["protection_fee_cents"],
                                  requires_shipping=False, is_protection=True,
                                  line=len(lines) + 1))
    address = data.get("shipping_address") or {}
    order = OrderSnapshot(
        number=normalized, name=f"#{normalized}", email=email[:254],
        created_at=data["created_at"], lines=tuple(lines), source="api",
        customer_name=_text(data.get("customer_name"), 200), financial_status="paid",
        fulfillment_status="fulfilled" if data.get("shipments") else "unfulfilled",
        cancelled_at=data.get("cancelled_at"),
        currency=(_text(data.get("currency"), 3) or "USD").upper(),
        subtotal_minor=sum(li["unit_price_cents"] * li["quantity"] for li in data["line_items"]),
        total_minor=data["total_cents"],
        shipping_address1=_text(address.get("address1"), 200),
        shipping_city=_text(address.get("city"), 100),
        shipping_zip=_text(address.get("zip"), 20),
        shipping_province=_text(address.get("province"), 100),
        shipping_country=_text(address.get("country_code"), 2).upper())
    shipments = []
    for i, sh in enumerate(data.get("shipments") or [], start=1):
        snap = ShipmentSnapshot(
            order_number=normalized, tracking_number=identifiers.normalize_tracking(
                sh["tracking_number"]),
            shipped_at=sh["shipped_at"], source="api",
            items=tuple(ShippedItem(_text(it["sku"], 100), it["quantity"], i)
                        for it in sh["items"]),
            carrier=_text(sh.get("carrier"), 64), status=sh.get("status") or "in_transit",
            delivered_at=sh.get("delivered_at"), last_scan_at=sh.get("delivered_at"), line=i)
        try:
            check_shipment(snap)
        except OrderDataError as e:
            raise OrderDataError(f"shipment {i}: {e.reason}", i) from None
        shipments.append(snap)
    return order, tuple(shipments)
