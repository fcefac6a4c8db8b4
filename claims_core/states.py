"""The claim state machine and the event log.

submitted → in_review → needs_info ⇄ in_review → approved → resolved; denied; closed.
A denied or closed claim can be reopened (back to in_review), and an approval not yet resolved can
be undone (back to in_review); a resolved one is final.
Every transition writes exactly one event in the caller's transaction.
"""
from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from .db import utcnow
from .models import Claim, Event
from .rules import ClaimRuleError

SUBMITTED = "submitted"
IN_REVIEW = "in_review"
NEEDS_INFO = "needs_info"
APPROVED = "approved"
RESOLVED = "resolved"
DENIED = "denied"
CLOSED = "closed"

STATUSES = (SUBMITTED, IN_REVIEW, NEEDS_INFO, APPROVED, RESOLVED, DENIED, CLOSED)
OPEN_STATUSES = frozenset({SUBMITTED, IN_REVIEW, NEEDS_INFO})
# Claims whose items stay covered (can't be claimed again): open ones and granted ones.
COVERING_STATUSES = frozenset({SUBMITTED, IN_REVIEW, NEEDS_INFO, APPROVED, RESOLVED})

STATUS_LABELS = {
    SUBMITTED: "Received",
    IN_REVIEW: "In review",
    NEEDS_INFO: "Waiting for you",
    APPROVED: "Approved",
    RESOLVED: "Resolved",
    DENIED: "Denied",
    CLOSED: "Closed",
}

TRANSITIONS: dict[str, frozenset[str]] = {
    SUBMITTED: frozenset({IN_REVIEW, NEEDS_INFO, DENIED, CLOSED}),
    IN_REVIEW: frozenset({NEEDS_INFO, APPROVED, DENIED, CLOSED}),
    NEEDS_INFO: frozenset({IN_REVIEW, CLOSED}),
    APPROVED: frozenset({RESOLVED, IN_REVIEW}),  # back to review: an approval undone
    DENIED: frozenset({IN_REVIEW}),
    CLOSED: frozenset({IN_REVIEW}),
    RESOLVED: frozenset(),
}


class IllegalTransition(ClaimRuleError):
    def __init__(self, from_status: str, to_status: str):
        super().__init__(
            f"A claim that is {STATUS_LABELS.get(from_status, from_status).lower()} can't be "
            f"moved to {STATUS_LABELS.get(to_status, to_status).lower()}."
        )
        self.from_status = from_status
        self.to_status = to_status


def can_transition(from_status: str, to_status: str) -> bool:
    return to_status in TRANSITIONS.get(from_status, frozenset())


def record_event(
    session: Session,
    *,
    actor: str,
    action: str,
    claim: Claim | None = None,
    order_id: int | None = None,
    from_status: str | None = None,
    to_status: str | None = None,
    details: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> Event:
    ev = Event(
        claim_id=claim.id if claim is not None else None,
        order_id=order_id if order_id is not None else (claim.order_id if claim else None),
        actor=actor,
        action=action,
        from_status=from_status,
        to_status=to_status,
        details=json.dumps(details or {}, sort_keys=True, default=str),
        at=at or utcnow(),
    )
    session.add(ev)
    return ev


def transition(
    session: Session,
    claim: Claim,
    to_status: str,
    *,
    actor: str,
    action: str | None = None,
    details: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> Event:
    """Move a claim to ``to_status`` or raise :class:`IllegalTransition`; writes one event."""
    from_status = claim.status
    if not can_transition(from_status, to_status):
        raise IllegalTransition(from_status, to_status)
    now = at or utcnow()
    claim.status = to_status
    claim.updated_at = now
    if to_status in (APPROVED, DENIED):
        claim.decided_at = now
    is_open = to_status in OPEN_STATUSES
    for item in claim.items:
        item.is_open = is_open
    session.flush()  # a reopen that collides with another open claim fails here, not later
    return record_event(
        session,
        actor=actor,
        action=action or f"status:{to_status}",
        claim=claim,
        from_status=from_status,
        to_status=to_status,
        details=details,
        at=now,
    )
