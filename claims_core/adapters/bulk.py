"""Bulk data for scale: N claims (each on its own order and shipment) written with bulk inserts.

Used by the benchmark (``bench/bench.py``) and by the tests that check the queue reads a page, not
the table. Unlike ``demo``, it bypasses the services (one million claims through the real filing
path would take hours): rows are built directly, with the same shapes the services write.
"""
from __future__ import annotations

import random
import secrets
from datetime import datetime, timedelta
from typing import Callable

from sqlalchemy import Engine, insert, text

from ..domain.vocabulary import DECIDED_STATUSES
from ..infra import migrate, rollups
from ..infra.db import analyze, utcnow, write_session
from ..infra.models import ensure_settings_row
from .demo import CARRIERS, DESTINATIONS, PRODUCTS, make_photo, make_signature
from ..infra.models import (Claim, ClaimItem, Decision, Event, Evidence, LineItem, Order, Resolution,
                            Shipment, ShipmentItem, Stock)
from ..infra.photos import process_photo

ISSUES = ["damaged", "lost", "not_received", "missing_item", "stolen", "defective", "wrong_item",
          "delayed", "returned_to_sender"]
ITEM_ISSUES = {"damaged", "defective", "wrong_item", "missing_item"}
STATUSES = ["submitted", "in_review", "needs_info", "approved", "resolved", "denied", "closed"]
STATUS_WEIGHTS = [3, 3, 2, 4, 20, 3, 2]
OPEN = {"submitted", "in_review", "needs_info"}


def fill(engine: Engine, n_claims: int, *, seed: int = 7, now: datetime | None = None,
         with_photos: int = 200, batch: int = 20_000,
         progress: Callable[[int, int], None] | None = None) -> None:
    """Add ``n_claims`` claims spread over the last year (issue types, carriers, destinations,
    statuses, amounts, risk; decisions and resolutions for decided claims), the first
    ``with_photos`` of them with a photo and a drawn signature. ``progress(done, total)`` is
    called after each batch."""
    migrate.upgrade(engine)
    rng = random.Random(seed)
    now = now or utcnow()
    with write_session(engine) as s:
        ensure_settings_row(s)
        for sku, _n, _p in PRODUCTS:
            s.merge(Stock(sku=sku, on_hand=1000))
    photo = process_photo(make_photo(1), "bulk.jpg")
    signature = make_signature("bulk")
    carriers = [c for c, _w in CARRIERS]
    with engine.begin() as conn:
        first = conn.execute(text("SELECT coalesce(max(id), 0) FROM claims")).scalar_one()
        start_id = max(first, *(conn.execute(text(f"SELECT coalesce(max(id), 0) FROM {t}")).scalar_one()
                               for t in ("orders", "shipments", "line_items", "shipment_items")))
        for start in range(0, n_claims, batch):
            rows: dict[type, list[dict]] = {m: [] for m in (Order, LineItem, Shipment, ShipmentItem,
                                                            Claim, ClaimItem, Event, Evidence,
                                                            Decision, Resolution)}
            for i in range(start, min(n_claims, start + batch)):
                n = start_id + i + 1  # one id for the order, its line, shipment, item and claim
                sku, name, price = PRODUCTS[i % len(PRODUCTS)]
                ordered = now - timedelta(days=rng.uniform(2, 365))
                shipped = ordered + timedelta(hours=rng.randint(6, 48))
                filed = min(shipped + timedelta(days=rng.uniform(3, 30)), now - timedelta(hours=1))
                qty = rng.choice([1, 1, 2])
                carrier = carriers[i % len(carriers)]
                status = rng.choices(STATUSES, STATUS_WEIGHTS)[0]
                issue = rng.choice(ISSUES)
                risk = rng.choice([0, 0, 0, 15, 30, 60])
                number = f"{900000 + n}"
                country, province, city = DESTINATIONS[i % len(DESTINATIONS)]
                desired = rng.choice(["refund", "store_credit", "reshipment"])
                rows[Order].append(dict(
                    id=n, order_number=number, name=f"#{number}", email=f"c{n}@example.com",
                    customer_name="Bulk Customer", created_at=ordered, financial_status="paid",
                    fulfillment_status="fulfilled", currency="USD", subtotal_cents=price * qty,
                    shipping_cents=0, tax_cents=0, total_cents=price * qty, protection_fee_cents=295,
                    protection_purchased_at=ordered, shipping_method="Standard",
                    shipping_address1=f"{n} Main St", shipping_city=city, shipping_zip="78701",
                    shipping_province=province, shipping_country=country, source="bulk",
                    updated_at=ordered))
                rows[LineItem].append(dict(id=n, order_id=n, position=1, sku=sku, name=name,
                                           quantity=qty, unit_price_cents=price, discount_cents=0,
                                           requires_shipping=True, is_protection=False))
                rows[Shipment].append(dict(id=n, order_id=n, tracking_number=f"BK{n:010d}",
                                           carrier=carrier, status="delivered", shipped_at=shipped,
                                           delivered_at=shipped + timedelta(days=3),
                                           last_scan_at=shipped + timedelta(days=3),
                                           is_replacement=False, source="bulk"))
                rows[ShipmentItem].append(dict(id=n, shipment_id=n, line_item_id=n, quantity=qty))
                rows[Claim].append(dict(
                    id=n, reference=f"CLM-{n:06X}", access_token=secrets.token_hex(16),
                    idempotency_key=f"bulk-{n}", order_id=n, shipment_id=n,
                    category="item" if issue in ITEM_ISSUES else "shipping", issue_type=issue,
                    status=status, description="bulk", carrier=carrier,
                    desired_resolution=desired,
                    claimed_cents=price * qty, email=f"c{n}@example.com", signature_kind="drawn",
                    signature_name="", signature_png=signature if i < with_photos else None,
                    signed_at=filed, filed_by="customer", created_at=filed, updated_at=filed,
                    decided_at=filed + timedelta(days=2) if status in DECIDED_STATUSES else None,
                    risk_score=risk, risk_level="high" if risk >= 50 else "medium" if risk >= 20 else "low",
                    version=1))
                rows[ClaimItem].append(dict(claim_id=n, shipment_item_id=n, quantity=qty,
                                            unit_cents=price, is_open=status in OPEN))
                rows[Event].append(dict(claim_id=n, order_id=n, actor="customer", at=filed,
                                        action="claim_filed", to_status="submitted", details="{}"))
                if status in DECIDED_STATUSES:
                    decided = filed + timedelta(days=2)
                    rows[Decision].append(dict(id=n, claim_id=n, decided_by="staff:bulk",
                                               decided_at=decided, note="", reason_code="" if
                                               status != "denied" else "other",
                                               outcome="denied" if status == "denied" else "approved"))
                    if status != "denied":
                        rows[Resolution].append(dict(claim_id=n, decision_id=n, kind=desired,
                                                     amount_cents=price * qty, bonus_pct=0,
                                                     store_credit_code=f"BULK{n:010d}"
                                                     if desired == "store_credit" else None,
                                                     created_at=decided))
                if i < with_photos:
                    rows[Evidence].append(dict(
                        claim_id=n, filename="bulk.jpg", content_type="image/jpeg", data=photo.data,
                        thumbnail=photo.thumbnail, width=photo.width, height=photo.height,
                        size_bytes=len(photo.data), sha256=photo.sha256, phash=photo.phash,
                        review_status="pending", review_note="", created_at=filed))
            for model, batch_rows in rows.items():
                if batch_rows:
                    conn.execute(insert(model), batch_rows)
            if progress:
                progress(min(n_claims, start + batch), n_claims)
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:  # PostgreSQL sequences don't see explicit ids
            for table in ("orders", "line_items", "shipments", "shipment_items", "claims",
                          "decisions"):
                conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                  f"(SELECT max(id) FROM {table}))"))
            conn.commit()
    rollups.rebuild(engine)  # the rows went in without the ORM: the analytics roll-ups from them
    analyze(engine)
