"""Outbound webhooks, the part inside a claim's transaction (an event handler): an event becomes
one delivery per active endpoint that asked for its type (``claim.created``, ``claim.updated``,
``claim.approved``, ``claim.denied``, ``claim.resolved``, ``message.created``), written with the
change or not at all. ``adapters/outbound_webhooks.py`` signs and sends them after commit
(``outbound_webhooks`` records how they went; ``webhook_endpoints`` manages the endpoints)."""
from __future__ import annotations

import json

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..domain.vocabulary import APPROVED, DENIED, RESOLVED, AuditAction
from ..infra.models import Claim, Event, Message, WebhookDelivery, WebhookEndpoint
from .claim_json import dumps, iso, summary

_BY_ACTION = {AuditAction.CLAIM_FILED: "claim.created"}
_BY_STATUS = {APPROVED: "claim.approved", DENIED: "claim.denied", RESOLVED: "claim.resolved"}


def event_types(ev: Event) -> list[str]:
    """The outbound event types one recorded event stands for."""
    types = []
    if ev.action in _BY_ACTION:
        types.append(_BY_ACTION[ev.action])
    elif ev.to_status and ev.to_status != ev.from_status:
        types.append("claim.updated")
        if ev.to_status in _BY_STATUS:
            types.append(_BY_STATUS[ev.to_status])
    if json.loads(ev.details or "{}").get("message_id"):
        types.append("message.created")
    return types


def queue_deliveries(s: Session, ev: Event, claim: Claim) -> None:
    """Handler of every claim event (see ``handlers.EVERY_EVENT``)."""
    types = event_types(ev)
    if not types:
        return
    endpoints = s.scalars(select(WebhookEndpoint).where(WebhookEndpoint.active)).all()
    if not endpoints:
        return
    s.flush()  # the event's id names the message
    for kind in types:
        data = summary(claim)
        if kind == "message.created":
            msg = s.get(Message, json.loads(ev.details)["message_id"])
            if msg is None or msg.internal:
                continue
            data["message"] = {"author_kind": msg.author_kind, "author_name": msg.author_name,
                               "body": msg.body, "created_at": iso(msg.created_at)}
        payload = dumps({"type": kind, "timestamp": iso(ev.at), "data": data})
        for ep in endpoints:
            if kind in ep.events.split(","):
                s.add(WebhookDelivery(endpoint_id=ep.id, message_id=f"msg_{ev.id}_{kind}",
                                      event_type=kind, claim_id=claim.id, payload=payload,
                                      status="pending", next_attempt_at=ev.at, created_at=ev.at))
