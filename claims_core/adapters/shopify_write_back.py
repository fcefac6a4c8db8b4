"""Shopify write-back, the sender: sends the queued writes to Shopify through the Admin API client
(``shopify_admin``), run by ``tick``, and at once when staff retry.

Each due write is leased, sent outside any transaction, and its outcome recorded in a new one
(``services/shopify_write_back.py``).
Idempotent: a write tried before (it may have landed even though the answer never came back) is
first looked up in Shopify by the marker in its note or by its gift card code; a refund also
carries an idempotency key. A throttled call waits for Shopify's ``Retry-After``; a refusal
(``userErrors``) fails at once with Shopify's reason, for staff to see and retry.

``CLAIMS_SHOPIFY_BASE_URL`` points the client at another server (the tests' fake Shopify).
"""
from __future__ import annotations

import logging
import threading
from datetime import datetime
from typing import Callable

from sqlalchemy import Engine

from ..infra import config
from ..infra.db import utcnow
from ..services import shopify_connection
from ..services import shopify_write_back as outbox
from ..services.shopify_write_back import WriteJob
from .shopify_admin import ShopifyAdmin, ShopifyCredentials, ShopifyError, WriteResult

log = logging.getLogger("claims.shopify")

AdminFactory = Callable[[str, str], ShopifyAdmin]


def default_admin(shop_domain: str, token: str) -> ShopifyAdmin:
    return ShopifyAdmin(ShopifyCredentials(shop_domain, token),
                        base_url=config.shopify_base_url())


def _already_landed(admin: ShopifyAdmin, job: WriteJob) -> WriteResult | None:
    if job.kind == "refund":
        found = admin.find_refund(job.order_shopify_id, job.marker)
        return WriteResult(found) if found else None
    if job.kind == "gift_card":
        found = admin.find_gift_card(job.code)
        return WriteResult(found, code=job.code) if found else None
    return admin.find_replacement_order(job.marker)


def _send(admin: ShopifyAdmin, job: WriteJob) -> WriteResult:
    if job.kind in ("refund", "order") and not job.order_shopify_id:
        raise ShopifyError("not_found", f"order {job.order_name} has no Shopify id (it didn't come "
                           "from Shopify or an export with its Id column), so Shopify can't be "
                           "updated", retryable=False)
    if job.attempts:
        earlier = _already_landed(admin, job)
        if earlier is not None:
            return earlier
    if job.kind == "refund":
        return admin.create_refund(order_id=job.order_shopify_id, amount_cents=job.amount_cents,
                                   currency=job.currency, note=job.note,
                                   # Shopify refuses a key whose attempt failed: one key per try
                                   # (an earlier try that landed was found just above)
                                   idempotency_key=f"{job.marker}/a{job.attempts}")
    if job.kind == "gift_card":
        return admin.create_gift_card(amount_cents=job.amount_cents, currency=job.currency,
                                      code=job.code, note=job.note, customer_email=job.email)
    return admin.create_replacement_order(order_id=job.order_shopify_id, lines=list(job.lines),
                                          email=job.email, note=job.note, marker=job.marker,
                                          shipping_address=job.shipping_address)


def _take_one(engine: Engine, now: datetime | None, only_id: int | None) -> WriteJob | None:
    jobs = outbox.take_due(engine, now=now or utcnow(), limit=1, only_id=only_id)
    return jobs[0] if jobs else None


def send_pending(engine: Engine, *, now: datetime | None = None, limit: int = 50,
                 admin_factory: AdminFactory = default_admin,
                 only_id: int | None = None, stop: threading.Event | None = None) -> dict[str, int]:
    """Send every due write. Without a Shopify connection nothing is queued, so nothing is sent.
    Writes are taken one at a time (each lease from the database's clock as it is taken) and the
    lease is renewed while Shopify answers; ``stop`` (shutting down) ends the run between writes."""
    out = {"done": 0, "retry": 0, "failed": 0}
    creds = shopify_connection.credentials(engine)
    if creds is None:
        return out
    first = _take_one(engine, now, only_id)
    if first is None:
        return out
    with admin_factory(*creds) as admin:
        job: WriteJob | None = first
        for _ in range(limit):
            if job is None:
                job = _take_one(engine, now, only_id)
                if job is None:
                    break
            try:
                with outbox.holding(engine, job):
                    result = _send(admin, job)
            except ShopifyError as e:
                status = outbox.record_failure(engine, job.id, f"{e.code}: {e.message}",
                                               retryable=e.retryable, retry_after=e.retry_after,
                                               now=now)
                log.warning("Shopify write %s (%s, claim %s) %s: %s", job.id, job.kind,
                            job.claim_reference, status, e.message)
                out["retry" if status == "pending" else "failed"] += 1
            else:
                outbox.record_success(engine, job.id, result.shopify_id, name=result.name, now=now)
                out["done"] += 1
            job = None
            if stop is not None and stop.is_set():
                break
    return out


def retry_now(engine: Engine, write_id: int, actor: str, *,
              admin_factory: AdminFactory = default_admin) -> dict[str, int]:
    """Staff's retry button: queue the failed write again and send it (only it) straight away."""
    outbox.retry(engine, write_id, actor)
    return send_pending(engine, admin_factory=admin_factory, only_id=write_id)
