"""The claim lifecycle as an action table.

Each named action says which statuses it starts from, where it leads, who may take it and the
event it records. Services apply actions through this table (never by setting a status), and
pages ask it which actions a claim offers instead of testing statuses.

    submitted → in_review → needs_info ⇄ in_review → approved → resolved; denied; closed.

A denied or closed claim can be reopened (back to in review); an approval not yet resolved can be
undone (back to in review); a resolved claim is final.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from .errors import ClaimRuleError, ErrorCode
from .vocabulary import (APPROVED, CLOSED, DENIED, IN_REVIEW, NEEDS_INFO, RESOLVED, STATUS_LABELS,
                         SUBMITTED, AuditAction, ClaimStatus)


class Action(StrEnum):
    SUBMIT = "submit"
    START_REVIEW = "start_review"
    REQUEST_INFO = "request_info"
    CUSTOMER_REPLY = "customer_reply"
    APPROVE = "approve"
    UNDO_APPROVAL = "undo_approval"
    DENY = "deny"
    RESOLVE = "resolve"
    CLOSE = "close"
    AUTO_CLOSE = "auto_close"
    REOPEN = "reopen"
    REOPEN_BY_CUSTOMER = "reopen_by_customer"


class Actor(StrEnum):
    CUSTOMER = "customer"
    STAFF = "staff"
    SYSTEM = "system"  # timers and the owner's auto-approve rules


@dataclass(frozen=True)
class Step:
    action: Action
    sources: frozenset[ClaimStatus]  # empty: the claim doesn't exist yet
    target: ClaimStatus
    by: frozenset[Actor]
    records: AuditAction
    label: str  # what a staff button says


def _step(action, sources, target, by, records, label) -> Step:
    return Step(action, frozenset(sources), target, frozenset(by), records, label)


CUSTOMER, STAFF, SYSTEM = Actor.CUSTOMER, Actor.STAFF, Actor.SYSTEM

ACTIONS: dict[Action, Step] = {s.action: s for s in [
    _step(Action.SUBMIT, (), SUBMITTED, (CUSTOMER, STAFF), AuditAction.CLAIM_FILED, "File claim"),
    _step(Action.START_REVIEW, (SUBMITTED,), IN_REVIEW, (STAFF, SYSTEM),
          AuditAction.REVIEW_STARTED, "Start review"),
    _step(Action.REQUEST_INFO, (SUBMITTED, IN_REVIEW), NEEDS_INFO, (STAFF,),
          AuditAction.INFO_REQUESTED, "Request information"),
    _step(Action.CUSTOMER_REPLY, (NEEDS_INFO,), IN_REVIEW, (CUSTOMER,),
          AuditAction.CUSTOMER_REPLIED, "Reply"),
    _step(Action.APPROVE, (SUBMITTED, IN_REVIEW), APPROVED, (STAFF, SYSTEM),
          AuditAction.APPROVED, "Approve"),
    _step(Action.UNDO_APPROVAL, (APPROVED,), IN_REVIEW, (STAFF,),
          AuditAction.APPROVAL_UNDONE, "Undo approval"),
    _step(Action.DENY, (SUBMITTED, IN_REVIEW), DENIED, (STAFF,), AuditAction.DENIED, "Deny"),
    _step(Action.RESOLVE, (APPROVED,), RESOLVED, (STAFF,), AuditAction.RESOLVED, "Mark resolved"),
    _step(Action.CLOSE, (SUBMITTED, IN_REVIEW, NEEDS_INFO), CLOSED, (STAFF,), AuditAction.CLOSED,
          "Close"),
    _step(Action.AUTO_CLOSE, (NEEDS_INFO,), CLOSED, (SYSTEM,), AuditAction.AUTO_CLOSED,
          "Close for lack of an answer"),
    _step(Action.REOPEN, (DENIED, CLOSED), IN_REVIEW, (STAFF,), AuditAction.REOPENED, "Reopen"),
    _step(Action.REOPEN_BY_CUSTOMER, (CLOSED,), IN_REVIEW, (CUSTOMER,),
          AuditAction.REOPENED_BY_CUSTOMER, "Reopen by replying"),
]}

# Every status change any action can make (the database's guard mirrors this).
TRANSITIONS: dict[ClaimStatus, frozenset[ClaimStatus]] = {
    status: frozenset(s.target for s in ACTIONS.values() if status in s.sources)
    for status in ClaimStatus
}


class IllegalTransition(ClaimRuleError):
    code = ErrorCode.ILLEGAL_TRANSITION

    def __init__(self, from_status: str, to_status: str):
        super().__init__(
            f"A claim that is {STATUS_LABELS.get(from_status, from_status).lower()} can't be "
            f"moved to {STATUS_LABELS.get(to_status, to_status).lower()}.")
        self.from_status = from_status
        self.to_status = to_status


def can_transition(from_status: str, to_status: str) -> bool:
    return to_status in TRANSITIONS.get(from_status, frozenset())


def allows(action: Action, status: str, actor: Actor | None = None) -> bool:
    step = ACTIONS[action]
    return status in step.sources and (actor is None or actor in step.by)


def check(action: Action, status: str) -> Step:
    """The step ``action`` takes from ``status``, or :class:`IllegalTransition`."""
    step = ACTIONS[action]
    if status not in step.sources:
        raise IllegalTransition(status, step.target)
    return step


def available_actions(status: str, actor: Actor = STAFF) -> tuple[Action, ...]:
    """The actions ``actor`` can take on a claim in ``status``, in table order."""
    return tuple(a for a, s in ACTIONS.items() if status in s.sources and actor in s.by)


def check_not_on_hold(held_at, hold_reason: str = "") -> None:
    """A claim live tracking put on hold is not approved until an agent has looked and released
    it (denying, asking the customer and closing stay possible)."""
    if held_at is not None:
        raise ClaimRuleError("This claim is on hold: " + (hold_reason or "the carrier's tracking "
                             "changed after it was filed.") + " Release the hold to approve it.",
                             ErrorCode.CLAIM_ON_HOLD)
