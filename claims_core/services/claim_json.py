"""A claim as JSON, the one shape the API answers with and outbound webhooks carry
(see docs/api.md). Read inside the caller's session."""
from __future__ import annotations

import json
from datetime import datetime
from typing import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..domain.vocabulary import GRANTED_STATUSES
from ..infra.db import utcnow
from ..infra.models import Claim, Event, Evidence, settings_row
from .tracking import shipment_tracking


def iso(dt: datetime | None) -> str | None:
    return dt.isoformat().replace("+00:00", "Z") if dt else None


def summary(claim: Claim) -> dict:
    return {
        "reference": claim.reference,
        "status": claim.status,
        "issue_type": claim.issue_type,
        "category": claim.category,
        "order_number": claim.order.name,
        "email": claim.email,
        "claimed_cents": claim.claimed_cents,
        "currency": claim.order.currency,
        "language": claim.language,
        "desired_resolution": claim.desired_resolution,
        "risk_level": claim.risk_level,
        "on_hold": claim.held_at is not None,
        "created_at": iso(claim.created_at),
        "updated_at": iso(claim.updated_at),
    }


PhotoUrl = Callable[[Evidence], tuple[str, datetime]]


def detail(s: Session, claim: Claim, photo_url: PhotoUrl | None = None) -> dict:
    out = summary(claim)
    events = s.scalars(select(Event).where(Event.claim_id == claim.id).order_by(Event.id)).all()
    decision = claim.decisions[-1] if claim.decisions else None
    live = [r for r in claim.resolutions if r.voided_at is None] \
        if claim.status in GRANTED_STATUSES else []
    photos = []
    for e in claim.evidence:
        item = {"id": e.id, "filename": e.filename, "sha256": e.sha256}
        if photo_url is not None:
            url, expires = photo_url(e)
            item.update(url=url, expires_at=iso(expires))
        photos.append(item)
    settings = settings_row(s)
    t = shipment_tracking(s, claim.shipment, now=utcnow(), lost_wait_days=settings.lost_wait_days,
                          tz_name=settings.timezone) if claim.shipment.tracking_number else None
    out.update({
        "description": claim.description,
        "items": [{"sku": ci.shipment_item.line_item.sku, "name": ci.shipment_item.line_item.name,
                   "quantity": ci.quantity, "amount_cents": ci.amount_cents} for ci in claim.items],
        "events": [{"at": iso(ev.at), "actor": ev.actor, "action": ev.action,
                    "from_status": ev.from_status, "to_status": ev.to_status} for ev in events],
        "messages": [{"author_kind": m.author_kind, "author_name": m.author_name, "body": m.body,
                      "internal": m.internal, "created_at": iso(m.created_at)}
                     for m in claim.messages],
        "decision": None if decision is None else {
            "outcome": decision.outcome, "reason_code": decision.reason_code or None,
            "note": decision.note, "decided_by": decision.decided_by,
            "decided_at": iso(decision.decided_at),
            "resolutions": [{"kind": r.kind, "amount_cents": r.amount_cents,
                             "bonus_pct": r.bonus_pct, "store_credit_code": r.store_credit_code}
                            for r in live if r.decision_id == decision.id]},
        "photos": photos,
        "tracking": None if t is None or not t.live else {
            "milestone": t.milestone, "expected_delivery_at": iso(t.expected_delivery_at),
            "checkpoints": [{"at": iso(e.at), "milestone": e.milestone, "message": e.message,
                             "place": e.place} for e in t.entries],
            "proof_of_delivery": {"signed_by": t.proof.signed_by, "photo_url": t.proof.photo_url,
                                  "location": t.proof.location}},
    })
    return out


def dumps(data: dict) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"))
