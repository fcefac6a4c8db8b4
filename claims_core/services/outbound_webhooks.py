"""Outbound webhooks, the sender's side: ``adapters/outbound_webhooks.py`` takes due deliveries
of active endpoints with a lease, holds it while the receiver answers, and records how each went
— delivered, retried with backoff, or failed; an endpoint that keeps failing is disabled and the
owners emailed. (Queueing, inside a claim's transaction, is ``outbound_webhooks_queue``; the
owner's endpoints are ``webhook_endpoints``.)"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import datetime
from typing import Iterator

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from ..domain.vocabulary import AuditAction, Role
from ..domain.windows import DELIVERY_MAX_ATTEMPTS, retry_backoff
from ..infra.db import utcnow
from ..infra.models import StaffUser, WebhookDelivery, WebhookEndpoint, settings_row
from ..infra.outbox import held, lease_due
from . import notifications
from .events import record_event
from .unit_of_work import transactional

DISABLE_AFTER_FAILURES = 10  # failed tries in a row (across deliveries) switch an endpoint off


@dataclass(frozen=True)
class DeliveryJob:
    id: int
    endpoint_id: int
    url: str
    secret: str
    message_id: str
    payload: str
    attempts: int
    allow_private: bool
    lease_until: datetime | None = None  # this sender's lease (its token: see infra.outbox)


@transactional
def take_due(s: Session, *, now: datetime | None = None, limit: int = 100) -> list[DeliveryJob]:
    """Lease due deliveries of active endpoints (pending → sending)."""
    allow = bool(settings_row(s).webhooks_allow_private)
    active = select(WebhookEndpoint.id).where(WebhookEndpoint.active)
    taken = lease_due(s, WebhookDelivery, now=now or utcnow(), limit=limit,
                      where=[WebhookDelivery.endpoint_id.in_(active)])
    jobs = []
    for d in taken:
        ep = s.get(WebhookEndpoint, d.endpoint_id)
        jobs.append(DeliveryJob(d.id, ep.id, ep.url, ep.secret, d.message_id, d.payload,
                                d.attempts, allow, d.lease_until))
    return jobs


@contextlib.contextmanager
def holding(engine: Engine, job: DeliveryJob) -> Iterator[None]:
    """Keep the lease on ``job`` alive while the block sends it (``infra.outbox.held``)."""
    with held(engine, WebhookDelivery, job.id, job.lease_until):
        yield


@transactional
def record_delivered(s: Session, delivery_id: int, status_code: int, *,
                     now: datetime | None = None) -> None:
    now = now or utcnow()
    d = s.get(WebhookDelivery, delivery_id)
    d.status, d.attempts, d.last_status_code = "delivered", d.attempts + 1, status_code
    d.delivered_at, d.lease_until, d.last_error = now, None, ""
    s.get(WebhookEndpoint, d.endpoint_id).consecutive_failures = 0


@transactional
def record_failed(s: Session, delivery_id: int, reason: str, *, status_code: int | None = None,
                  retryable: bool = True, now: datetime | None = None) -> str:
    """A failed try: retried with backoff, or failed after the last try. The endpoint is
    disabled after DISABLE_AFTER_FAILURES failed tries in a row, and the owners told.
    Returns the delivery's status."""
    now = now or utcnow()
    d = s.get(WebhookDelivery, delivery_id)
    d.attempts += 1
    d.last_status_code, d.last_error, d.lease_until = status_code, reason[:1000], None
    if retryable and d.attempts < DELIVERY_MAX_ATTEMPTS:
        d.status, d.next_attempt_at = "pending", now + retry_backoff(d.attempts)
    else:
        d.status = "failed"
    ep = s.get(WebhookEndpoint, d.endpoint_id)
    ep.consecutive_failures += 1
    if ep.active and ep.consecutive_failures >= DISABLE_AFTER_FAILURES:
        ep.active = False
        ep.disabled_reason = (f"Disabled after {ep.consecutive_failures} failed deliveries in a "
                              f"row; the last: {reason[:300]}")
        record_event(s, actor="system", action=AuditAction.WEBHOOK_ENDPOINT_DISABLED,
                     details={"endpoint_id": ep.id, "url": ep.url, "reason": reason[:300]})
        for owner in s.scalars(select(StaffUser).where(StaffUser.active, StaffUser.role == Role.OWNER,
                                                       StaffUser.email != "")):
            notifications.enqueue(
                s, key=f"webhook-disabled:{ep.id}:{now.isoformat()}:{owner.id}",
                kind="webhook_disabled", to=owner.email, claim=None, now=now, lines=[
                    f"The webhook endpoint {ep.url} was switched off: {ep.disabled_reason}",
                    "Fix the receiving end, then switch it on again in Settings → API & "
                    "webhooks; deliveries that failed meanwhile can be replayed there."])
    return d.status
