"""Outbound webhook endpoints and their deliveries, as user actions: the owner adds, disables,
enables an endpoint, sees the delivery log and replays a delivery. (The sender's side is
``outbound_webhooks``; queueing, inside a claim's transaction, is ``outbound_webhooks_queue``.)"""
from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Iterable, Sequence

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from ..domain import webhook_targets
from ..domain.errors import ErrorCode, InvalidInput
from ..domain.text import clean_comment
from ..domain.vocabulary import AuditAction
from ..infra.db import read_session, utcnow
from ..infra.models import WebhookDelivery, WebhookEndpoint, ensure_settings_row, settings_row
from .events import record_event
from .unit_of_work import transactional

@dataclass(frozen=True)
class EndpointView:
    id: int
    url: str
    description: str
    events: tuple[str, ...]
    secret: str
    active: bool
    consecutive_failures: int
    disabled_reason: str
    created_at: datetime


@dataclass(frozen=True)
class DeliveryView:
    id: int
    endpoint_id: int
    message_id: str
    event_type: str
    status: str
    attempts: int
    last_status_code: int | None
    last_error: str
    created_at: datetime
    next_attempt_at: datetime
    delivered_at: datetime | None


def _endpoint(e: WebhookEndpoint) -> EndpointView:
    return EndpointView(e.id, e.url, e.description, tuple(x for x in e.events.split(",") if x),
                        e.secret, e.active, e.consecutive_failures, e.disabled_reason, e.created_at)


def _delivery(d: WebhookDelivery) -> DeliveryView:
    return DeliveryView(d.id, d.endpoint_id, d.message_id, d.event_type, d.status, d.attempts,
                        d.last_status_code, d.last_error, d.created_at, d.next_attempt_at,
                        d.delivered_at)


def private_targets_allowed(engine: Engine) -> bool:
    with read_session(engine) as s:
        return bool(settings_row(s).webhooks_allow_private)


@transactional
def allow_private_targets(s: Session, allowed: bool, actor: str) -> None:
    row = ensure_settings_row(s)
    if row.webhooks_allow_private != allowed:
        row.webhooks_allow_private = allowed
        record_event(s, actor=actor, action=AuditAction.SETTINGS_CHANGED,
                     details={"changed": ["webhooks_allow_private"], "value": allowed})


@transactional
def add_endpoint(s: Session, url: str, events: Iterable[str], actor: str, *,
                 resolved: Sequence[str], description: str = "") -> EndpointView:
    """Register an endpoint; ``resolved`` are the addresses its host resolves to (looked up by
    the caller, outside the transaction)."""
    allow = bool(settings_row(s).webhooks_allow_private)
    host = webhook_targets.check_url(url, allow_private=allow)
    webhook_targets.check_addresses(host, resolved, allow_private=allow)
    chosen = webhook_targets.check_events(events)
    ep = WebhookEndpoint(url=url.strip(), description=clean_comment(description)[:200],
                         events=",".join(chosen),
                         secret="whsec_" + base64.b64encode(secrets.token_bytes(24)).decode(),
                         active=True, consecutive_failures=0, disabled_reason="",
                         created_at=utcnow())
    s.add(ep)
    s.flush()
    record_event(s, actor=actor, action=AuditAction.WEBHOOK_ENDPOINT_ADDED,
                 details={"endpoint_id": ep.id, "url": ep.url, "events": list(chosen)})
    return _endpoint(ep)


@transactional
def set_active(s: Session, endpoint_id: int, active: bool, actor: str) -> None:
    ep = s.get(WebhookEndpoint, endpoint_id)
    if ep is None:
        raise InvalidInput("No such endpoint.", ErrorCode.NOT_FOUND)
    ep.active = active
    if active:
        ep.consecutive_failures, ep.disabled_reason = 0, ""
    record_event(s, actor=actor, action=AuditAction.WEBHOOK_ENDPOINT_CHANGED,
                 details={"endpoint_id": ep.id, "active": active})


def list_endpoints(engine: Engine) -> list[EndpointView]:
    with read_session(engine) as s:
        return [_endpoint(e) for e in s.scalars(select(WebhookEndpoint).order_by(WebhookEndpoint.id))]


def deliveries(engine: Engine, endpoint_id: int | None = None, limit: int = 50) -> list[DeliveryView]:
    with read_session(engine) as s:
        q = select(WebhookDelivery).order_by(WebhookDelivery.id.desc()).limit(limit)
        if endpoint_id is not None:
            q = q.where(WebhookDelivery.endpoint_id == endpoint_id)
        return [_delivery(d) for d in s.scalars(q)]


@transactional
def replay(s: Session, delivery_id: int, actor: str, *, now: datetime | None = None) -> None:
    """Send a delivery again (same webhook-id, so a receiver that saw it can tell)."""
    d = s.get(WebhookDelivery, delivery_id)
    if d is None:
        raise InvalidInput("No such delivery.", ErrorCode.NOT_FOUND)
    if d.status == "sending":
        raise InvalidInput("This delivery is being sent right now.", ErrorCode.ILLEGAL_TRANSITION)
    d.status, d.next_attempt_at, d.lease_until = "pending", now or utcnow(), None
    record_event(s, actor=actor, action=AuditAction.WEBHOOK_ENDPOINT_CHANGED,
                 details={"endpoint_id": d.endpoint_id, "replayed_delivery": d.id})
