"""Recoveries: getting back from the carrier (or the insurer) what the shop paid out on a claim.

An approved claim for a lost, stolen, damaged or delivered-but-not-received parcel opens one
recovery per claim and shipment. Its states, as an action table like the claim's
(``lifecycle.py``): each action says where it starts, where it leads and who may take it, and
every step is recorded as an event (the append-only ``recovery_events`` table)::

    to_file → filed ⇄ needs_action → approved | partly_approved | rejected;  approved → paid
    to_file | filed | needs_action → cancelled (the claim's approval was undone) → to_file
    to_file | needs_action | rejected → written_off (the deadline passed, or the owner decides)

How much can be claimed: what the shop paid out (the approval's live resolutions), capped by the
carrier's liability or the insured value when known (``claimable_minor``). The carriers' windows
and limits live in ``carrier_claims.py``.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from .errors import ClaimRuleError, ErrorCode
from .vocabulary import IssueType


class RecoveryState(StrEnum):
    TO_FILE = "to_file"
    FILED = "filed"
    NEEDS_ACTION = "needs_action"
    APPROVED = "approved"
    PARTLY_APPROVED = "partly_approved"
    REJECTED = "rejected"
    PAID = "paid"
    CANCELLED = "cancelled"
    WRITTEN_OFF = "written_off"

    @property
    def label(self) -> str:
        return STATE_LABELS[self]


STATE_LABELS = {
    RecoveryState.TO_FILE: "To file",
    RecoveryState.FILED: "Filed",
    RecoveryState.NEEDS_ACTION: "Needs action",
    RecoveryState.APPROVED: "Approved",
    RecoveryState.PARTLY_APPROVED: "Partly approved",
    RecoveryState.REJECTED: "Rejected",
    RecoveryState.PAID: "Paid",
    RecoveryState.CANCELLED: "Cancelled",
    RecoveryState.WRITTEN_OFF: "Written off",
}
STATES = tuple(RecoveryState)
S = RecoveryState
# still waiting for money or for the shop to act (the Recoveries page lists these by deadline)
OPEN_STATES = frozenset({S.TO_FILE, S.FILED, S.NEEDS_ACTION, S.APPROVED, S.PARTLY_APPROVED})
# the deadline matters only while nothing has been filed
DEADLINE_STATES = frozenset({S.TO_FILE})

# the issues a carrier or insurer pays for
RECOVERABLE_ISSUES = (IssueType.LOST, IssueType.STOLEN, IssueType.DAMAGED, IssueType.NOT_RECEIVED)
# EasyPost's claim ``type`` for each recoverable issue (POST /v2/claims)
EASYPOST_CLAIM_TYPES = {IssueType.DAMAGED: "damage", IssueType.LOST: "loss",
                        IssueType.NOT_RECEIVED: "loss", IssueType.STOLEN: "theft"}
# the owner is emailed this many days before the deadline of a recovery still to file (once each)
REMINDER_DAYS = (7, 1)


class RecoveryAction(StrEnum):
    OPEN = "open"
    REOPEN = "reopen"
    FILE = "file"
    NEEDS_ACTION = "needs_action"
    APPROVE = "approve"
    PARTLY_APPROVE = "partly_approve"
    REJECT = "reject"
    RECORD_PAYMENT = "record_payment"
    CANCEL = "cancel"
    WRITE_OFF = "write_off"


class RecoveryActor(StrEnum):
    STAFF = "staff"
    SYSTEM = "system"  # the claim's handlers, the deadline job, the carrier's answers


@dataclass(frozen=True)
class RecoveryStep:
    action: RecoveryAction
    sources: frozenset[RecoveryState]
    target: RecoveryState
    by: frozenset[RecoveryActor]
    label: str  # what a staff button says


STAFF, SYSTEM = RecoveryActor.STAFF, RecoveryActor.SYSTEM
_FILED_OR_WAITING = (S.FILED, S.NEEDS_ACTION)


def _step(action, sources, target, by, label) -> RecoveryStep:
    return RecoveryStep(action, frozenset(sources), target, frozenset(by), label)


A = RecoveryAction
ACTIONS: dict[RecoveryAction, RecoveryStep] = {s.action: s for s in [
    _step(A.OPEN, (), S.TO_FILE, (SYSTEM,), "Open"),
    _step(A.REOPEN, (S.CANCELLED,), S.TO_FILE, (SYSTEM,), "Open again"),
    _step(A.FILE, (S.TO_FILE,), S.FILED, (STAFF, SYSTEM), "File"),
    _step(A.NEEDS_ACTION, (S.FILED,), S.NEEDS_ACTION, (STAFF, SYSTEM), "Carrier needs something"),
    _step(A.APPROVE, _FILED_OR_WAITING, S.APPROVED, (STAFF, SYSTEM), "Approved"),
    _step(A.PARTLY_APPROVE, _FILED_OR_WAITING, S.PARTLY_APPROVED, (STAFF, SYSTEM),
          "Partly approved"),
    _step(A.REJECT, _FILED_OR_WAITING, S.REJECTED, (STAFF, SYSTEM), "Rejected"),
    _step(A.RECORD_PAYMENT, (S.APPROVED, S.PARTLY_APPROVED), S.PAID, (STAFF, SYSTEM), "Paid"),
    _step(A.CANCEL, (S.TO_FILE, S.FILED, S.NEEDS_ACTION), S.CANCELLED, (STAFF, SYSTEM), "Cancel"),
    _step(A.WRITE_OFF, (S.TO_FILE, S.NEEDS_ACTION, S.REJECTED), S.WRITTEN_OFF, (STAFF, SYSTEM),
          "Write off"),
]}
# the carrier's decision, as recorded by hand or by EasyPost's events
DECISIONS = {S.APPROVED: A.APPROVE, S.PARTLY_APPROVED: A.PARTLY_APPROVE, S.REJECTED: A.REJECT}


class IllegalRecoveryStep(ClaimRuleError):
    code = ErrorCode.RECOVERY_ILLEGAL_STEP

    def __init__(self, state: str, action: str):
        label = STATE_LABELS.get(state, state).lower()
        super().__init__(f"A recovery that is {label} can't take this step "
                         f"({ACTIONS[action].label.lower() if action in ACTIONS else action}).")
        self.state, self.action = state, action


def check(action: RecoveryAction, state: str | None, actor: RecoveryActor = STAFF) -> RecoveryStep:
    """The step ``action`` takes from ``state`` (None: the recovery doesn't exist yet), or
    :class:`IllegalRecoveryStep`."""
    step = ACTIONS[action]
    ok = (not step.sources) if state is None else state in step.sources
    if not ok or actor not in step.by:
        raise IllegalRecoveryStep(state or "new", action)
    return step


def available_actions(state: str, actor: RecoveryActor = STAFF) -> tuple[RecoveryAction, ...]:
    return tuple(a for a, s in ACTIONS.items() if state in s.sources and actor in s.by)


# The insured value (what the parcel was insured for, through EasyPost or the carrier's own
# insurance) can be entered or changed while nothing has been claimed yet: once filed, the amount
# asked for is on the carrier's (or insurer's) desk and stays as it was sent.
INSURED_VALUE_STATES = frozenset({S.TO_FILE})
INSURED_VALUE_EVENT = "insured_value"  # the recovery event that records a change (no new state)
MAX_INSURED_MINOR = 1_000_000_000


class InsuredValueFixed(ClaimRuleError):
    code = ErrorCode.RECOVERY_AMOUNT_FIXED

    def __init__(self, state: str):
        super().__init__("The insured value can be changed only before the recovery is filed "
                         f"(it is {STATE_LABELS.get(state, state).lower()}).")
        self.state = state


def insured_value(state: str, insured_minor: int | None) -> int | None:
    """The insured value to keep (None: not insured, or unknown), or a refusal: only while the
    recovery is still to file, and a whole amount above zero (zero insures nothing: leave it
    empty)."""
    if state not in INSURED_VALUE_STATES:
        raise InsuredValueFixed(state)
    if insured_minor is None:
        return None
    if isinstance(insured_minor, bool) or not isinstance(insured_minor, int) or \
            not 0 < insured_minor <= MAX_INSURED_MINOR:
        raise ClaimRuleError("The insured value must be an amount above zero (leave it empty "
                             "when the parcel wasn't insured).", ErrorCode.INSURED_VALUE_INVALID)
    return insured_minor


def claimable_minor(paid_out_minor: int, liability_minor: int | None = None,
                    insured_minor: int | None = None) -> int:
    """What the shop can ask for: what it paid out, capped by the insured value when known (the
    insurer pays that), else by the carrier's liability when known."""
    cap = insured_minor if insured_minor is not None else liability_minor
    paid = max(0, int(paid_out_minor))
    return paid if cap is None else min(paid, max(0, int(cap)))


@dataclass(frozen=True)
class RecoveryPolicy:
    """Settings → Recoveries: which claims open one. Empty sets mean "all"."""
    carriers: frozenset[str] = frozenset()  # carrier_claims keys, or "other"
    issue_types: frozenset[str] = frozenset()
    min_minor: int = 0


def opens_recovery(policy: RecoveryPolicy, issue_type: str, carrier_key: str,
                   paid_out_minor: int) -> bool:
    """Whether an approved claim opens a recovery under the owner's policy."""
    if issue_type not in RECOVERABLE_ISSUES:
        return False
    if policy.issue_types and issue_type not in policy.issue_types:
        return False
    if policy.carriers and carrier_key not in policy.carriers:
        return False
    return paid_out_minor > 0 and paid_out_minor >= policy.min_minor


def days_left(deadline: date | None, today: date) -> int | None:
    return None if deadline is None else (deadline - today).days


def overdue(deadline: date | None, today: date) -> bool:
    return deadline is not None and today > deadline


def reminder_due(deadline: date | None, today: date) -> int | None:
    """The reminder (7 or 1 days before) the deadline calls for today, or None: the smallest
    threshold reached, so a job that missed a day still sends it (once: the outbox key)."""
    left = days_left(deadline, today)
    if left is None or left < 0:
        return None
    reached = [d for d in REMINDER_DAYS if left <= d]
    return min(reached) if reached else None
