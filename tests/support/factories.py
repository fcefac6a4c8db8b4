"""Build orders, shipments and claims directly, for tests."""
from __future__ import annotations

import io
from dataclasses import dataclass, field
from datetime import timedelta

from PIL import Image, ImageDraw

from claims_core.infra.db import write_session
from claims_core.infra.models import LineItem, Order, Shipment, ShipmentItem, Stock
from claims_core.services import customer

from tests.conftest import NOW


@dataclass
class Built:
    order_id: int
    number: str
    email: str
    shipment_ids: list[int] = field(default_factory=list)
    # (shipment index, sku) -> shipment_item id
    items: dict[tuple[int, str], int] = field(default_factory=dict)


def make_order(engine, number="1001", email="sam@example.com", *, protected=True,
               created=None, protection_at=None, cancelled=False,
               lines=(("MUG", "Hand-thrown Mug", 2800, 3), ("TOTE", "Canvas Tote", 3450, 1)),
               shipments=None, total_cents=None, stock=None, tracking_prefix="TRK",
               base=None) -> Built:
    """``shipments``: list of dicts with status, shipped (datetime), delivered, last_scan, items
    [(sku, qty)]. Default: one delivered shipment carrying everything, shipped 10 days before
    ``base`` (the tests' fixed NOW unless given)."""
    base = base or NOW
    created = created or base - timedelta(days=12)
    if shipments is None:
        shipments = [dict(status="delivered", shipped=base - timedelta(days=10),
                          delivered=base - timedelta(days=7),
                          items=[(sku, q) for sku, _n, _p, q in lines])]
    with write_session(engine) as s:
        items = [LineItem(position=i, sku=sku, name=name, quantity=q, unit_price_cents=p)
                 for i, (sku, name, p, q) in enumerate(lines, 1)]
        subtotal = sum(li.unit_price_cents * li.quantity for li in items)
        if protected:
            items.append(LineItem(position=len(items) + 1, sku="SHIP-PROTECT",
                                  name="Shipping Protection", quantity=1, unit_price_cents=295,
                                  requires_shipping=False, is_protection=True))
        order = Order(order_number=number, name=f"#{number}", email=email, customer_name="Sam Jones",
                      created_at=created, currency="USD", subtotal_cents=subtotal,
                      total_cents=total_cents if total_cents is not None else subtotal,
                      protection_fee_cents=295 if protected else 0,
                      protection_purchased_at=(protection_at or created) if protected else None,
                      cancelled_at=created + timedelta(hours=1) if cancelled else None,
                      fulfillment_status="fulfilled", line_items=items)
        s.add(order)
        s.flush()
        by_sku = {li.sku: li for li in items}
        built = Built(order.id, number, email)
        for idx, spec in enumerate(shipments):
            sh = Shipment(order_id=order.id, tracking_number=f"{tracking_prefix}{number}X{idx}",
                          carrier=spec.get("carrier", "UPS"), status=spec["status"],
                          shipped_at=spec["shipped"], delivered_at=spec.get("delivered"),
                          last_scan_at=spec.get("last_scan", spec.get("delivered")),
                          items=[ShipmentItem(line_item_id=by_sku[sku].id, quantity=q)
                                 for sku, q in spec["items"]])
            s.add(sh)
            s.flush()
            built.shipment_ids.append(sh.id)
            for si in sh.items:
                built.items[(idx, si.line_item.sku)] = si.id
        for sku, qty in (stock or {}).items():
            existing = s.get(Stock, sku)
            if existing:
                existing.on_hand = qty
            else:
                s.add(Stock(sku=sku, on_hand=qty))
    return built


def jpeg_bytes(size=(640, 480), color=(200, 50, 50), seed=0) -> bytes:
    img = Image.new("RGB", size, color)
    d = ImageDraw.Draw(img)
    d.rectangle([seed % 200, 40, 300 + seed % 100, 200], fill=(20, 20, 200))
    d.ellipse([100, 100 + seed % 50, 300, 300], fill=(250, 250, 0))
    buf = io.BytesIO()
    img.save(buf, "JPEG")
    return buf.getvalue()


def signature_png(blank=False) -> bytes:
    img = Image.new("RGBA", (600, 200), (255, 255, 255, 0))
    if not blank:
        d = ImageDraw.Draw(img)
        d.line([(40, 120), (120, 60), (200, 150), (300, 70), (420, 140)], fill=(0, 0, 0, 255), width=5)
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def claim_request(built: Built, *, key="key-1", shipment=0, issue="damaged", items=None,
                  resolution="refund", photos=None, signature="drawn", **kw) -> customer.ClaimRequest:
    if items is None and issue in ("damaged", "defective", "wrong_item", "missing_item"):
        items = {built.items[(shipment, "MUG")]: 1}
    if photos is None:
        photos = [("box.jpg", jpeg_bytes())] if issue in ("damaged", "defective", "wrong_item") else []
    return customer.ClaimRequest(
        idempotency_key=key, order_id=built.order_id, email=kw.pop("email", built.email),
        shipment_id=built.shipment_ids[shipment], issue_type=issue, items=items or {},
        desired_resolution=resolution, photos=photos, signature_kind=signature,
        signature_png=signature_png() if signature == "drawn" else None,
        signature_name=kw.pop("signature_name", "Sam Jones" if signature == "typed" else ""),
        accurate_confirmed=kw.pop("accurate_confirmed", True),
        description=kw.pop("description", "Box was crushed."), **kw,
    )
