"""The event log and the one way a claim changes status.

Every change is an append-only event, written in the caller's transaction. A claim's status only
changes through ``apply(action)``, which asks the domain's action table whether the action may be
taken from the claim's status and records the event the table names. Events written here are also
handed to the side-effect handlers (``handlers.EVENT_HANDLERS``) by the unit of work before commit.
"""
from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from ..domain import lifecycle
from ..domain.lifecycle import Action
from ..domain.vocabulary import OPEN_STATUSES, AuditAction, takes_decision
from ..infra.db import utcnow
from ..infra.models import Claim, Event, EventNote

PENDING = "claims_pending_events"  # session.info key: events the handlers haven't seen yet


def record_event(session: Session, *, actor: str, action: AuditAction | str,
                 claim: Claim | None = None, order_id: int | None = None,
                 from_status: str | None = None, to_status: str | None = None,
                 details: dict[str, Any] | None = None, at: datetime | None = None,
                 notes: dict[str, str] | None = None) -> Event:
    """Write one event. ``notes``: free text that belongs with it (a staff note, a reason): kept
    in ``event_notes`` beside the log, never in ``details`` (the log holds no personal data; a
    note can be redacted when its customer is erased)."""
    ev = Event(
        claim_id=claim.id if claim is not None else None,
        order_id=order_id if order_id is not None else (claim.order_id if claim else None),
        actor=actor,
        action=str(action),
        from_status=from_status,
        to_status=to_status,
        details=json.dumps(details or {}, sort_keys=True, default=str),
        at=at or utcnow(),
    )
    session.add(ev)
    for key, body in (notes or {}).items():
        if body:
            session.add(EventNote(event=ev, claim_id=ev.claim_id, order_id=ev.order_id, field=key,
                                  body=body))
    session.info.setdefault(PENDING, []).append(ev)
    return ev


def apply(session: Session, claim: Claim, action: Action, *, actor: str,
          details: dict[str, Any] | None = None, at: datetime | None = None,
          notes: dict[str, str] | None = None) -> Event:
    """Take ``action`` on ``claim`` (or raise ``IllegalTransition``); writes one event."""
    step = lifecycle.check(action, claim.status)
    from_status = claim.status
    now = at or utcnow()
    claim.status = step.target
    claim.updated_at = now
    if takes_decision(from_status, step.target):
        claim.decided_at = now
    is_open = step.target in OPEN_STATUSES
    for item in claim.items:
        item.is_open = is_open
    session.flush()  # a reopen that collides with another open claim fails here, not later
    return record_event(session, actor=actor, action=step.records, claim=claim,
                        from_status=from_status, to_status=step.target, details=details, at=now,
                        notes=notes)
