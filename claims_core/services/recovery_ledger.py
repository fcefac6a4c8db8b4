"""The recovery ledger, the part that runs inside other transactions: the claim's handlers (an
approval opens a recovery, an undone approval cancels it), the one way a recovery changes state
(``step``: the action table in ``domain/recoveries.py``, one ``RecoveryEvent`` each), and the
deadline work (write-offs, the owner's reminders). The user actions are ``services/recoveries.py``.
"""
from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..domain import carrier_claims
from ..domain import recoveries as rules
from ..domain.errors import ClaimRuleError, ErrorCode
from ..domain.money import format_minor
from ..domain.recoveries import RecoveryAction, RecoveryActor, RecoveryPolicy, RecoveryState
from ..domain.vocabulary import ISSUE_TYPES, Role
from ..domain.windows import format_date, local_date
from ..infra.db import utcnow
from ..infra.models import (Claim, Event, Recovery, RecoveryCancellation, RecoveryEvent,
                            RecoveryFiling, StaffUser, WebhookDelivery, WebhookEndpoint,
                            settings_row)
from . import notifications
from .claim_json import dumps, iso

RECOVERY_UPDATED = "recovery.updated"

SYSTEM_ACTOR = "system"


def _csv(value: str) -> frozenset[str]:
    return frozenset(x for x in (value or "").split(",") if x)


def policy_of(settings) -> RecoveryPolicy:
    return RecoveryPolicy(_csv(settings.recovery_carriers), _csv(settings.recovery_issue_types),
                          int(settings.recovery_min_cents or 0))


def paid_out_minor(claim: Claim) -> int:
    """What the shop paid out on the claim: its live (not voided) resolutions' amounts."""
    return sum(r.amount_cents for r in claim.resolutions if r.voided_at is None)


def step(s: Session, rec: Recovery, action: RecoveryAction, *, actor: str,
         by: RecoveryActor = RecoveryActor.STAFF, at: datetime | None = None,
         details: dict[str, Any] | None = None) -> RecoveryEvent:
    """Take ``action`` on ``rec`` (or raise ``IllegalRecoveryStep``); writes one event."""
    st = rules.check(action, rec.state, by)
    now = at or utcnow()
    before = rec.state
    rec.state = st.target
    rec.updated_at = now
    ev = RecoveryEvent(recovery_id=rec.id, claim_id=rec.claim_id, actor=actor, at=now,
                       action=str(action), from_state=before, to_state=st.target,
                       details=json.dumps(details or {}, sort_keys=True, default=str))
    s.add(ev)
    queue_webhooks(s, rec, ev)
    return ev


def queue_webhooks(s: Session, rec: Recovery, ev: RecoveryEvent) -> None:
    """The outbound ``recovery.updated`` event, one delivery per endpoint that asked for it,
    written in this transaction (``adapters/outbound_webhooks.py`` signs and sends them)."""
    endpoints = [ep for ep in s.scalars(select(WebhookEndpoint).where(WebhookEndpoint.active))
                 if RECOVERY_UPDATED in ep.events.split(",")]
    if not endpoints:
        return
    s.flush()  # the event's id names the message
    claim = s.get(Claim, rec.claim_id)
    payload = dumps({"type": RECOVERY_UPDATED, "timestamp": iso(ev.at), "data": {
        "id": rec.id, "claim_reference": claim.reference, "state": rec.state,
        "previous_state": ev.from_state, "action": ev.action,
        "deadline": rec.deadline.isoformat() if rec.deadline else None,
        "claimable_minor": rec.claimable_cents, "recovered_minor": rec.recovered_cents,
        "currency": rec.currency, "carrier": rec.carrier,
        "easypost_claim_id": rec.easypost_claim_id}})
    for ep in endpoints:
        s.add(WebhookDelivery(endpoint_id=ep.id, message_id=f"msg_rec{ev.id}", claim_id=claim.id,
                              event_type=RECOVERY_UPDATED, payload=payload, status="pending",
                              next_attempt_at=ev.at, created_at=ev.at))


def _deadline(claim: Claim, rule, tz: str) -> date | None:
    if rule is None:
        return None
    sh = claim.shipment
    return carrier_claims.filing_deadline(rule, claim.issue_type, shipped_at=sh.shipped_at,
                                          delivered_at=sh.delivered_at,
                                          expected_at=sh.expected_delivery_at, tz_name=tz)


def _fill(rec: Recovery, claim: Claim, tz: str) -> None:
    """The recovery's facts from its claim: carrier, amounts (capped), deadline."""
    sh = claim.shipment
    rule = carrier_claims.rule_for(sh.carrier)
    rec.carrier = sh.carrier or ""
    rec.carrier_key = carrier_claims.carrier_key(sh.carrier)
    rec.issue_type = claim.issue_type
    rec.currency = claim.order.currency
    rec.paid_out_cents = paid_out_minor(claim)
    rec.liability_cents = carrier_claims.liability_in(rule, rec.currency)
    rec.claimable_cents = rules.claimable_minor(rec.paid_out_cents, rec.liability_cents,
                                                rec.insured_minor)
    rec.deadline = _deadline(claim, rule, tz)


def on_approved(s: Session, ev: Event, claim: Claim) -> None:
    """Handler of APPROVED: open the claim's recovery when the owner's policy says so (or open
    again one an undone approval cancelled)."""
    settings = settings_row(s)
    key = carrier_claims.carrier_key(claim.shipment.carrier)
    if not rules.opens_recovery(policy_of(settings), claim.issue_type, key,
                                paid_out_minor(claim)):
        return
    rec = s.scalars(select(Recovery).where(Recovery.claim_id == claim.id,
                                           Recovery.shipment_id == claim.shipment_id)).first()
    if rec is None:
        rules.check(RecoveryAction.OPEN, None, RecoveryActor.SYSTEM)
        rec = Recovery(claim_id=claim.id, shipment_id=claim.shipment_id, state=RecoveryState.TO_FILE,
                       created_at=ev.at, updated_at=ev.at)
        _fill(rec, claim, settings.timezone)
        s.add(rec)
        s.flush()
        opened = RecoveryEvent(recovery_id=rec.id, claim_id=claim.id, actor=SYSTEM_ACTOR,
                               at=ev.at, action=str(RecoveryAction.OPEN), from_state=None,
                               to_state=RecoveryState.TO_FILE,
                               details=json.dumps({"event_id": ev.id,
                                                   "claimable": rec.claimable_cents}))
        s.add(opened)
        queue_webhooks(s, rec, opened)
    elif rec.state == RecoveryState.CANCELLED:
        _fill(rec, claim, settings.timezone)
        step(s, rec, RecoveryAction.REOPEN, actor=SYSTEM_ACTOR, by=RecoveryActor.SYSTEM, at=ev.at,
             details={"claimable": rec.claimable_cents})


def on_approval_undone(s: Session, ev: Event, claim: Claim) -> None:
    """Handler of APPROVAL_UNDONE: the shop no longer paid, so nothing is claimed back."""
    for rec in s.scalars(select(Recovery).where(Recovery.claim_id == claim.id)):
        if rec.state in rules.ACTIONS[RecoveryAction.CANCEL].sources:
            step(s, rec, RecoveryAction.CANCEL, actor=SYSTEM_ACTOR, by=RecoveryActor.SYSTEM,
                 at=ev.at, details={"reason": "approval_undone"})
            cancel_at_easypost(s, rec, ev.at)


# --- cancelling at EasyPost (the outbox side; adapters/easypost_claims.py sends) ------------------

def cancel_at_easypost(s: Session, rec: Recovery, now: datetime) -> bool:
    """After ``rec`` was cancelled here: withdraw its EasyPost filing if it never left, else queue
    the cancel of EasyPost's claim (``POST /v2/claims/{id}/cancel``) in this transaction. A
    filing in flight is cancelled once it lands (``filing_sent``). True if a cancel was queued."""
    filing = s.scalars(select(RecoveryFiling).where(RecoveryFiling.recovery_id == rec.id)).first()
    if filing is not None and filing.status in ("pending", "refused"):
        filing.status, filing.lease_until = "withdrawn", None  # never reached EasyPost
        return False
    if filing is not None and filing.status == "sent":
        filing.status = "withdrawn"  # a later "File" (reopened) files again
    if rec.easypost_claim_id is None and (filing is None or filing.status != "sending"):
        return False
    return queue_cancel(s, rec, now)


def queue_cancel(s: Session, rec: Recovery, now: datetime) -> bool:
    """The EasyPost cancel of ``rec``'s claim, in this transaction: one per recovery (queued
    again only once the last one is done, for a claim filed again since)."""
    row = s.scalars(select(RecoveryCancellation)
                    .where(RecoveryCancellation.recovery_id == rec.id)).first()
    if row is not None and row.status in ("pending", "sending"):
        return False
    if row is not None and row.status in ("sent", "none") and \
            row.easypost_claim_id == rec.easypost_claim_id:
        return False  # that claim is cancelled already
    if row is None:
        row = RecoveryCancellation(recovery_id=rec.id, created_at=now)
        s.add(row)
    row.easypost_claim_id = rec.easypost_claim_id
    row.status, row.next_attempt_at, row.attempts, row.lease_until = "pending", now, 0, None
    row.last_error, row.sent_at = "", None
    s.add(RecoveryEvent(recovery_id=rec.id, claim_id=rec.claim_id, actor="system", at=now,
                        action="cancel_requested", from_state=rec.state, to_state=rec.state,
                        details=json.dumps({"via": "easypost",
                                            "easypost_claim_id": rec.easypost_claim_id})))
    return True


# --- the deadlines (the "recovery_deadlines" background job) ------------------------------------

def due_ids(s: Session) -> list[int]:
    return list(s.scalars(select(Recovery.id).where(Recovery.state.in_(rules.DEADLINE_STATES),
                                                    Recovery.deadline.is_not(None))
                          .order_by(Recovery.deadline, Recovery.id)))


def apply_deadline(s: Session, recovery_id: int, now: datetime) -> str:
    """Write off one recovery past its deadline, or queue the owner's reminder it calls for.
    Returns "written_off", "reminded" or ""."""
    rec = s.get(Recovery, recovery_id)
    if rec is None or rec.state not in rules.DEADLINE_STATES or rec.deadline is None:
        return ""
    settings = settings_row(s)
    today = local_date(now, settings.timezone)
    if s.scalars(select(RecoveryFiling.id).where(
            RecoveryFiling.recovery_id == rec.id,
            RecoveryFiling.status.in_(("pending", "sending")))).first() is not None:
        return ""  # on its way to EasyPost: filed in time
    if rules.overdue(rec.deadline, today):
        step(s, rec, RecoveryAction.WRITE_OFF, actor=SYSTEM_ACTOR, by=RecoveryActor.SYSTEM, at=now,
             details={"reason": "deadline_passed", "deadline": rec.deadline.isoformat()})
        return "written_off"
    due = rules.reminder_due(rec.deadline, today)
    if due is None:
        return ""
    claim = rec.claim
    left = rules.days_left(rec.deadline, today)
    issue = ISSUE_TYPES[claim.issue_type].label if claim.issue_type in ISSUE_TYPES else claim.issue_type
    lines = [f"The carrier claim for {claim.reference} ({rec.carrier or 'carrier unknown'}, "
             f"{format_minor(rec.claimable_cents, rec.currency)} can be claimed) has not been "
             f"filed yet.",
             f"The carrier's deadline is {format_date(rec.deadline)} "
             f"({'today' if left == 0 else f'in {left} day' + ('s' if left != 1 else '')}). "
             "After it, the recovery is written off.",
             "Open Recoveries in the staff app to file it."]
    sent = False
    for u in s.scalars(select(StaffUser).where(StaffUser.active, StaffUser.role == Role.OWNER,
                                               StaffUser.email != "")):
        sent |= notifications.enqueue(s, key=f"recovery-deadline:{rec.id}:{due}:{u.id}",
                                      kind="staff_recovery_deadline", to=u.email, claim=claim,
                                      issue=issue, now=now, lines=lines)
    return "reminded" if sent else ""


def load(s: Session, recovery_id: int) -> Recovery:
    rec = s.get(Recovery, recovery_id)
    if rec is None:
        raise ClaimRuleError("No such recovery.", ErrorCode.RECOVERY_NOT_FOUND)
    return rec
