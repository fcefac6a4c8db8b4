"""Bulk data for scale: N claims (each on its own order and shipment) written with bulk inserts.

Used by the benchmark (``bench/bench.py``) and by the tests that check the queue reads a page, not
the table. Unlike ``demo``, it bypasses the services (one million claims through the real filing
path would take hours): rows are built directly, with the same shapes the services write.
"""
from __future__ import annotations

import json
import random
import secrets
from datetime import datetime, timedelta
from typing import Callable

from sqlalchemy import Engine, insert, text

from ..domain import carrier_claims
from ..domain import recoveries as recovery_rules
from ..domain.vocabulary import DECIDED_STATUSES
from ..domain.windows import local_date
from ..infra import migrate, rollups
from ..infra.db import analyze, utcnow, write_session
from ..infra.models import ensure_settings_row
from .demo import CARRIERS, DESTINATIONS, PRODUCTS, make_photo, make_signature
from ..infra.models import (Claim, ClaimItem, Decision, Event, Evidence, LineItem, Order, Recovery,
                            RecoveryEvent, Resolution, Shipment, ShipmentItem, Stock)
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
        tz = ensure_settings_row(s).timezone
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
                                                            Decision, Resolution, Recovery,
                                                            RecoveryEvent)}
            for i in range(start, min(n_claims, start + batch)):
                n = start_id + i + 1  # one id for the order, its line, shipment, item and claim
                sku, name, price = PRODUCTS[i % len(PRODUCTS)]
                ordered = now - timedelta(days=rng.uniform(2, 365))
                shipped = ordered + timedelta(hours=rng.randint(6, 48))
                filed = min(shipped + timedelta(days=rng.uniform(3, 30)), now - timedelta(hours=1))
                decided = min(filed + timedelta(days=2), now - timedelta(minutes=30))  # never ahead
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
                    decided_at=decided if status in DECIDED_STATUSES else None,
                    risk_score=risk, risk_level="high" if risk >= 50 else "medium" if risk >= 20 else "low",
                    version=1))
                rows[ClaimItem].append(dict(claim_id=n, shipment_item_id=n, quantity=qty,
                                            unit_cents=price, is_open=status in OPEN))
                rows[Event].append(dict(claim_id=n, order_id=n, actor="customer", at=filed,
                                        action="claim_filed", to_status="submitted", details="{}"))
                if status in DECIDED_STATUSES:
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
                        if issue in recovery_rules.RECOVERABLE_ISSUES:
                            recovery(rng, rows, n=n, carrier=carrier, issue=issue,
                                     paid=price * qty, shipped=shipped, decided=decided, now=now,
                                     tz=tz)
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
                          "decisions", "recoveries"):
                conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                  f"(SELECT max(id) FROM {table}))"))
            conn.commit()
    rollups.rebuild(engine)  # the rows went in without the ORM: the analytics roll-ups from them
    analyze(engine)


def recovery(rng: random.Random, rows: dict[type, list[dict]], *, n: int, carrier: str, issue: str,
             paid: int, shipped: datetime, decided: datetime, now: datetime, tz: str) -> None:
    """The recovery an approved lost/stolen/damaged/not-received claim opens (id ``n``, as the
    claim's), with its events, in proportions a shop that works its recoveries would see by age:
    the newest still to file or filed and waiting; older ones paid in full, paid in part, approved
    and not yet paid, rejected (some then written off), waiting on the carrier; about one in eight
    left unfiled past the carrier's deadline and written off by the deadline job. A fifth of the
    parcels were insured for their value (the insured value caps the claim, not the liability)."""
    rule = carrier_claims.rule_for(carrier)
    key = carrier_claims.carrier_key(carrier)
    delivered = shipped + timedelta(days=3)
    deadline = None if rule is None else carrier_claims.filing_deadline(
        rule, issue, shipped_at=shipped, delivered_at=delivered, tz_name=tz)
    liability = carrier_claims.liability_in(rule, "USD")
    insured = paid if rng.random() < 0.2 else None
    claimable = recovery_rules.claimable_minor(paid, liability, insured)
    events: list[tuple] = [(decided, "open", None, "to_file", {"claimable": claimable})]
    state, filed_at, approved, recovered = "to_file", None, None, 0

    def go(at, action, to, **details):
        nonlocal state
        at = min(at, now - timedelta(minutes=1))
        events.append((max(at, events[-1][0]), action, state, to, details))
        state = to
        return at

    past_deadline = deadline is not None and deadline < local_date(now, tz)  # the store's today
    r = rng.random()
    if past_deadline and r < 0.12:
        go(datetime.combine(deadline + timedelta(days=1), datetime.min.time(), now.tzinfo) +
           timedelta(hours=3), "write_off", "written_off", deadline=deadline.isoformat(),
           reason="deadline_passed")
    elif not past_deadline and now - decided < timedelta(days=10) and r < 0.5:
        pass  # still to file
    else:
        filed_at = go(decided + timedelta(days=rng.uniform(0.2, 5)), "file", "filed", by="hand")
        waited = now - filed_at
        q = rng.random()
        if waited < timedelta(days=20):
            if q < 0.15:
                go(filed_at + timedelta(days=rng.uniform(1, 10)), "needs_action", "needs_action")
        else:
            answered = filed_at + timedelta(days=rng.uniform(5, 20))
            later = answered + timedelta(days=rng.uniform(2, 10))
            if q < 0.65:  # approved (in full or in part); mostly paid by now
                part = q >= 0.45
                approved = claimable * rng.randint(40, 90) // 100 if part else claimable
                go(answered, "partly_approve" if part else "approve",
                   "partly_approved" if part else "approved", approved=approved)
                if q < 0.40 or 0.45 <= q < 0.62:
                    recovered = approved
                    go(later, "record_payment", "paid", paid=approved)
            elif q < 0.85:
                approved = 0
                go(answered, "reject", "rejected", approved=0)
                if q >= 0.80:
                    go(later, "write_off", "written_off", reason="by_staff")
            elif q < 0.95:
                go(answered, "needs_action", "needs_action")
    last = events[-1][0]
    rows[Recovery].append(dict(
        id=n, claim_id=n, shipment_id=n, state=state, carrier=carrier, carrier_key=key,
        issue_type=issue, currency="USD", paid_out_cents=paid, liability_cents=liability,
        insured_minor=insured, claimable_cents=claimable, approved_cents=approved,
        recovered_cents=recovered, deadline=deadline, carrier_claim_number=
        f"BULK-{n}" if filed_at else "", easypost_claim_id=None, carrier_message="",
        created_at=decided, updated_at=last, filed_at=filed_at))
    for at, action, before, after, details in events:
        rows[RecoveryEvent].append(dict(
            recovery_id=n, claim_id=n, at=at, action=action, from_state=before, to_state=after,
            actor="system" if details.get("reason") == "deadline_passed" or action == "open"
            else "staff:bulk", details=json.dumps(details, sort_keys=True)))
