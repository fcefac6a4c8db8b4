"""Shopify write-back, the sender's side and staff's view of it: the sender
(``adapters/shopify_write_back.py``) takes due writes with a lease and records how they went;
staff see each claim's writes and retry a failed one. (Queueing happens in
``shopify_write_back_queue``, inside the approval's transaction; the connection is
``shopify_connection``.)"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Iterator

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from ..domain.errors import ErrorCode, InvalidInput
from ..domain.vocabulary import AuditAction, ResolutionKind
from ..domain.money import credit_with_bonus
from ..domain.resolutions import shop_marker
from ..domain.windows import DELIVERY_MAX_ATTEMPTS, retry_backoff
from ..infra.db import read_session, utcnow
from ..infra.outbox import held, lease_due
from ..infra.models import Claim, LineItem, Order, Resolution, ShipmentItem, ShopifyWrite
from .events import record_event
from .unit_of_work import transactional
from .shopify_write_back_queue import WRITE_LABELS

WRITE_STATUS = {"pending": "queued", "sending": "sending", "done": "done", "failed": "failed",
                "cancelled": "cancelled"}


# --- the sender's side --------------------------------------------------------------------------

@dataclass(frozen=True)
class WriteJob:
    """Everything the sender needs to make one write, read in one short transaction."""

    id: int
    kind: str  # refund | gift_card | order
    attempts: int
    claim_reference: str
    marker: str  # in the note Shopify keeps: finds an earlier attempt that did land
    order_shopify_id: str
    order_name: str
    currency: str
    amount_cents: int  # in the currency's own minor units (yen for JPY), as Shopify counts
    code: str
    email: str
    note: str
    lines: tuple[dict, ...]
    shipping_address: dict | None
    lease_until: datetime | None = None  # this sender's lease (its token: see infra.outbox)


def _job(s: Session, w: ShopifyWrite) -> WriteJob:
    res = s.get(Resolution, w.resolution_id)
    claim = s.get(Claim, w.claim_id)
    order = s.get(Order, claim.order_id)
    marker = shop_marker(claim.reference, res.id)
    lines: list[dict] = []
    if res.kind == ResolutionKind.RESHIPMENT and res.replacement_shipment_id:
        rows = s.execute(select(LineItem.name, LineItem.sku, ShipmentItem.quantity)
                         .join(ShipmentItem, ShipmentItem.line_item_id == LineItem.id)
                         .where(ShipmentItem.shipment_id == res.replacement_shipment_id)).all()
        lines = [{"title": n, "sku": k, "quantity": q, "variant_id": None} for n, k, q in rows]
    address = {"name": order.customer_name, "address1": order.shipping_address1,
               "city": order.shipping_city, "zip": order.shipping_zip,
               "provinceCode": order.shipping_province, "countryCode": order.shipping_country} \
        if order.shipping_address1 else None
    amount = res.amount_cents
    if res.kind == ResolutionKind.STORE_CREDIT and res.bonus_pct:
        amount = credit_with_bonus(res.amount_cents, res.bonus_pct)
    return WriteJob(w.id, w.kind, w.attempts, claim.reference, marker, order.external_id or "",
                    order.name, order.currency, amount, res.store_credit_code or "", claim.email,
                    f"Claim {claim.reference} ({marker}), approved in the claims portal", tuple(lines),
                    address, w.lease_until)


@transactional
def take_due(s: Session, *, now: datetime | None = None, limit: int = 50,
             only_id: int | None = None) -> list[WriteJob]:
    """Lease the writes that are due (pending → sending), so two senders never send one twice
    (``only_id``: just that one, for a staff member's retry)."""
    taken = lease_due(s, ShopifyWrite, now=now or utcnow(), limit=limit,
                      where=[ShopifyWrite.id == only_id] if only_id is not None else ())
    return [_job(s, w) for w in taken]


@contextlib.contextmanager
def holding(engine: Engine, job: WriteJob) -> Iterator[None]:
    """Keep the lease on ``job`` alive while the block sends it (``infra.outbox.held``)."""
    with held(engine, ShopifyWrite, job.id, job.lease_until):
        yield


@transactional
def record_success(s: Session, write_id: int, shopify_id: str, *, name: str = "",
                   now: datetime | None = None) -> None:
    now = now or utcnow()
    w = s.get(ShopifyWrite, write_id)
    w.status, w.shopify_id, w.done_at, w.lease_until, w.last_error = "done", shopify_id[:200], now, None, ""
    w.attempts += 1
    claim = s.get(Claim, w.claim_id)
    record_event(s, actor="shopify", action=AuditAction.WRITE_BACK_DONE, claim=claim, at=now,
                 details={"write_id": w.id, "kind": w.kind, "shopify_id": shopify_id, "name": name})


@transactional
def record_failure(s: Session, write_id: int, reason: str, *, retryable: bool,
                   retry_after: float | None = None, now: datetime | None = None) -> str:
    """Note a failed attempt: queued again with backoff, or failed for staff to see and retry.
    Returns the write's new status."""
    now = now or utcnow()
    w = s.get(ShopifyWrite, write_id)
    w.attempts += 1
    w.last_error = reason[:1000]
    w.lease_until = None
    if retryable and w.attempts < DELIVERY_MAX_ATTEMPTS:
        w.status = "pending"
        wait = retry_backoff(w.attempts)
        if retry_after:
            wait = max(timedelta(seconds=retry_after), timedelta(seconds=1))
        w.next_attempt_at = now + wait
    else:
        w.status = "failed"
        record_event(s, actor="shopify", action=AuditAction.WRITE_BACK_FAILED,
                     claim=s.get(Claim, w.claim_id), at=now,
                     details={"write_id": w.id, "kind": w.kind, "reason": reason[:500]})
    return w.status


@transactional
def retry(s: Session, write_id: int, actor: str, *, now: datetime | None = None) -> None:
    """Staff send a failed write again (after fixing what Shopify refused)."""
    now = now or utcnow()
    w = s.get(ShopifyWrite, write_id)
    if w is None or w.status != "failed":
        raise InvalidInput("Only a failed write can be retried.", ErrorCode.ILLEGAL_TRANSITION)
    w.status, w.next_attempt_at, w.lease_until = "pending", now, None
    record_event(s, actor=actor, action=AuditAction.WRITE_BACK_RETRIED,
                 claim=s.get(Claim, w.claim_id), at=now, details={"write_id": w.id, "kind": w.kind})


# --- reading ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class WriteView:
    id: int
    kind: str
    label: str
    status: str
    attempts: int
    last_error: str
    shopify_id: str
    next_attempt_at: datetime
    done_at: datetime | None

    @property
    def can_retry(self) -> bool:
        return self.status == "failed"


def _view(w: ShopifyWrite) -> WriteView:
    return WriteView(w.id, w.kind, WRITE_LABELS[w.kind], w.status, w.attempts, w.last_error,
                     w.shopify_id, w.next_attempt_at, w.done_at)


def writes_in(s: Session, claim_id: int) -> list[WriteView]:
    return [_view(w) for w in s.scalars(select(ShopifyWrite).where(ShopifyWrite.claim_id == claim_id)
                                        .order_by(ShopifyWrite.id))]


def failed_writes(engine: Engine, limit: int = 100) -> list[tuple[str, int, WriteView]]:
    """(claim reference, claim id, write) of every failed write, for the queue's banner."""
    with read_session(engine) as s:
        rows = s.execute(select(ShopifyWrite, Claim.reference).join(Claim, Claim.id == ShopifyWrite.claim_id)
                         .where(ShopifyWrite.status == "failed").order_by(ShopifyWrite.id.desc())
                         .limit(limit)).all()
        return [(ref, w.claim_id, _view(w)) for w, ref in rows]
