"""Side effects hang off events: one table says which handlers answer which event.

The unit of work calls ``dispatch`` before it commits, so a handler's writes (an email in the
outbox, an approval by one of the owner's rules) commit with the change that caused them or not at
all. A handler may record further events; they are dispatched in turn. To add a side effect (a
webhook, a write-back to the store), write a handler ``(session, event, claim)`` and list it here.
"""
from __future__ import annotations

from datetime import timedelta
from typing import Callable

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..domain.auto_approval import ClaimFacts, rule_matches
from ..domain.vocabulary import AuditAction
from ..infra.models import AutoApproveRule, Claim, Event
from . import (disputes, notifications, outbound_webhooks_queue, recovery_ledger,
               shopify_write_back_queue)
from .approvals import ResolutionInput, grant
from .events import PENDING

Handler = Callable[[Session, Event, Claim], None]


def approve_by_rule(s: Session, ev: Event, claim: Claim) -> None:
    """The owner's auto-approve rules: the first active rule that matches approves the new claim
    with the resolution the customer asked for; the events name the rule."""
    if claim.dispute_held_at is not None:  # a disputed order: the owner decides
        return
    active = s.scalars(select(AutoApproveRule).where(AutoApproveRule.active)
                       .order_by(AutoApproveRule.position, AutoApproveRule.id)).all()
    if not active:
        return
    facts = claim_facts(s, claim)
    for rule in active:
        ok, _why = rule_matches(rule.spec, facts)
        if not ok:
            continue
        grant(s, claim, f"rule:{rule.name}",  # store credit gets the store's default bonus
              [ResolutionInput(claim.desired_resolution, claim.claimed_cents, None)],
              now=ev.at + timedelta(microseconds=1), details={"rule": rule.name})
        return


def claim_facts(s: Session, claim: Claim) -> ClaimFacts:
    last = s.scalar(select(func.max(Claim.created_at)).where(Claim.email == claim.email,
                                                            Claim.id != claim.id,
                                                            Claim.created_at <= claim.created_at))
    months = None if last is None else (claim.created_at - last).days / (365.25 / 12)
    return ClaimFacts(claim.claimed_cents, claim.issue_type, claim.desired_resolution,
                      len(claim.evidence), months, claim.order.currency)


EVENT_HANDLERS: dict[AuditAction, tuple[Handler, ...]] = {
    AuditAction.CLAIM_FILED: (notifications.on_claim_filed, disputes.hold_if_disputed,
                              approve_by_rule),
    AuditAction.INFO_REQUESTED: (notifications.on_info_requested,),
    AuditAction.STAFF_MESSAGE: (notifications.on_staff_message,),
    AuditAction.APPROVED: (notifications.on_decision, shopify_write_back_queue.queue_write_back,
                           recovery_ledger.on_approved),
    AuditAction.APPROVAL_UNDONE: (shopify_write_back_queue.cancel_write_back,
                                   recovery_ledger.on_approval_undone),
    AuditAction.DENIED: (notifications.on_decision,),
    AuditAction.REMINDER_SENT: (notifications.on_reminder,),
    AuditAction.AUTO_CLOSED: (notifications.on_auto_closed,),
    AuditAction.HOLD_PLACED: (notifications.on_hold_placed,),
    AuditAction.DISPUTE_HOLD_PLACED: (notifications.on_dispute,),
    AuditAction.DISPUTE_FLAGGED: (notifications.on_dispute,),
}


# Run for every claim event, whatever its action (outbound webhooks follow every change).
EVERY_EVENT: tuple[Handler, ...] = (outbound_webhooks_queue.queue_deliveries,)


def dispatch(s: Session) -> None:
    """Run the handlers of every event recorded in this transaction, oldest first, including
    the events the handlers themselves record."""
    pending: list[Event] = s.info.setdefault(PENDING, [])
    while pending:
        ev = pending.pop(0)
        handlers = (*EVENT_HANDLERS.get(ev.action, ()), *EVERY_EVENT)
        if ev.claim_id is None:
            continue
        claim = s.get(Claim, ev.claim_id)
        for handler in handlers:
            handler(s, ev, claim)
