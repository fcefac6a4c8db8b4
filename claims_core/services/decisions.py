"""Staff actions on one claim: review, ask for information, decide, talk, reopen.

One function per action, each one unit of work. ``expected_version`` is the claim version the
staff member was looking at: if someone else changed the claim since, ``StaleClaim`` is raised and
nothing is written, so two agents deciding at once can never both land. Emails and the owner's
rules follow from the events (``handlers.EVENT_HANDLERS``), not from these functions.
"""
from __future__ import annotations

from datetime import datetime
from typing import Sequence

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..domain import lifecycle
from ..domain.errors import AlreadyClaimed, ClaimNotFound, ErrorCode, InvalidInput, StaleClaim
from ..domain.lifecycle import Action
from ..domain.resolutions import approval_can_be_undone
from ..domain.text import clean_comment, required_text
from ..domain.vocabulary import DENIAL_LABELS, AuditAction, DenialReason, can
from ..infra.db import utcnow
from ..infra.models import Claim, Decision, Message
from .approvals import ResolutionInput, ensure_in_review, grant
from . import disputes, shopify_write_back_queue
from .events import apply, record_event
from .unit_of_work import transactional

__all__ = ["ResolutionInput", "start_review", "staff_message", "request_info", "approve",
           "undo_approval", "release_hold", "release_dispute_hold", "deny", "mark_resolved", "close", "reopen", "load_claim"]


def load_claim(s: Session, claim_id: int, expected_version: int | None = None) -> Claim:
    claim = s.get(Claim, claim_id)
    if claim is None:
        raise ClaimNotFound("That claim doesn't exist.")
    if expected_version is not None and claim.version != expected_version:
        raise StaleClaim()
    return claim


@transactional
def start_review(s: Session, claim_id: int, actor: str, *, expected_version: int | None = None,
                 now: datetime | None = None) -> None:
    apply(s, load_claim(s, claim_id, expected_version), Action.START_REVIEW, actor=actor, at=now)


@transactional
def staff_message(s: Session, claim_id: int, actor: str, author_name: str, body: str, *,
                  internal: bool = False, now: datetime | None = None) -> None:
    now = now or utcnow()
    text = required_text(body, "The message", "Write a message before sending.")
    claim = load_claim(s, claim_id)
    msg = Message(claim_id=claim.id, author_kind="staff", author_name=author_name, body=text,
                  internal=internal, created_at=now)
    s.add(msg)
    s.flush()
    record_event(s, actor=actor, claim=claim, details={"message_id": msg.id}, at=now,
                 action=AuditAction.INTERNAL_NOTE if internal else AuditAction.STAFF_MESSAGE)


@transactional
def request_info(s: Session, claim_id: int, actor: str, author_name: str, body: str, *,
                 expected_version: int | None = None, now: datetime | None = None) -> None:
    now = now or utcnow()
    text = required_text(body, "The message", "Say what you need from the customer.")
    claim = load_claim(s, claim_id, expected_version)
    lifecycle.check(Action.REQUEST_INFO, claim.status)
    ensure_in_review(s, claim, actor, now)
    msg = Message(claim_id=claim.id, author_kind="staff", author_name=author_name, body=text,
                  created_at=now)
    s.add(msg)
    s.flush()
    apply(s, claim, Action.REQUEST_INFO, actor=actor, details={"message_id": msg.id}, at=now)


@transactional
def approve(s: Session, claim_id: int, actor: str, resolutions: Sequence[ResolutionInput], *,
            expected_version: int | None = None, note: str = "",
            now: datetime | None = None) -> list[str]:
    """Approve with one or more resolutions (a split is several). Returns store-credit codes."""
    if not resolutions:
        raise InvalidInput("Choose at least one resolution to approve the claim.",
                           ErrorCode.RESOLUTION_REQUIRED)
    claim = load_claim(s, claim_id, expected_version)
    return grant(s, claim, actor, resolutions, now=now or utcnow(), note=note)


@transactional
def undo_approval(s: Session, claim_id: int, actor: str, reason: str, *,
                  expected_version: int | None = None, now: datetime | None = None) -> None:
    """Take back an approval that hasn't been resolved (e.g. one an auto-approve rule made):
    its resolutions are voided (a store-credit code stops counting) and the claim is back in
    review."""
    now = now or utcnow()
    reason = required_text(reason, "The reason", "Say why the approval is undone.")
    claim = load_claim(s, claim_id, expected_version)
    lifecycle.check(Action.UNDO_APPROVAL, claim.status)
    live = [r for r in claim.resolutions if r.voided_at is None]
    if not approval_can_be_undone((r.kind for r in live),
                                  shopify_write_back_queue.sent_to_shop(
                                      s, [r.id for r in live])):
        raise InvalidInput("A reshipment has been sent, or the refund or gift card has gone to "
                           "Shopify; it can't be undone here.", ErrorCode.ILLEGAL_TRANSITION)
    for r in live:
        r.voided_at = now
    apply(s, claim, Action.UNDO_APPROVAL, actor=actor, at=now,
          details={"voided": [r.id for r in live]}, notes={"reason": reason})


@transactional
def release_hold(s: Session, claim_id: int, actor: str, note: str = "", *,
                 expected_version: int | None = None, now: datetime | None = None) -> None:
    """An agent has looked at what live tracking reported and lets the claim be approved again."""
    now = now or utcnow()
    claim = load_claim(s, claim_id, expected_version)
    if claim.held_at is None:
        raise InvalidInput("This claim isn't on hold.", ErrorCode.NOT_ON_HOLD)
    reason, claim.held_at, claim.hold_reason = claim.hold_reason, None, ""
    claim.updated_at = now
    record_event(s, actor=actor, claim=claim, action=AuditAction.HOLD_RELEASED, at=now,
                 details={"reason": reason}, notes={"note": clean_comment(note)})


@transactional
def release_dispute_hold(s: Session, claim_id: int, actor: str, role: str, note: str = "", *,
                         expected_version: int | None = None, now: datetime | None = None) -> None:
    """The owner lets a claim on a disputed order be approved before the dispute closes (the
    owner only: the shop may end up paying twice)."""
    now = now or utcnow()
    if not can(role, "release_dispute_hold"):
        raise InvalidInput("Only the owner can release a hold for a dispute.", ErrorCode.ACCOUNT_RULE)
    claim = load_claim(s, claim_id, expected_version)
    if claim.dispute_held_at is None:
        raise InvalidInput("This claim isn't on hold for a dispute.", ErrorCode.NOT_ON_HOLD)
    order = claim.order
    disputes.release(s, claim, actor, now=now, note=clean_comment(note),
                     details={"dispute_id": order.dispute_id, "status": order.dispute_status,
                              "by_owner": True})


@transactional
def deny(s: Session, claim_id: int, actor: str, reason_code: str, note: str = "", *,
         expected_version: int | None = None, now: datetime | None = None) -> None:
    now = now or utcnow()
    if reason_code not in DENIAL_LABELS:
        raise InvalidInput("Choose a reason for the denial.", ErrorCode.DENIAL_REASON_REQUIRED)
    note = clean_comment(note)
    if reason_code == DenialReason.OTHER and not note:
        raise InvalidInput("Explain the reason for the denial.", ErrorCode.TEXT_REQUIRED)
    claim = load_claim(s, claim_id, expected_version)
    lifecycle.check(Action.DENY, claim.status)
    d = Decision(claim_id=claim.id, outcome="denied", reason_code=reason_code, note=note,
                 decided_by=actor, decided_at=now)
    s.add(d)
    s.flush()
    apply(s, claim, Action.DENY, actor=actor, at=now,
          details={"reason": reason_code, "decision_id": d.id})


@transactional
def mark_resolved(s: Session, claim_id: int, actor: str, *, expected_version: int | None = None,
                  now: datetime | None = None) -> None:
    apply(s, load_claim(s, claim_id, expected_version), Action.RESOLVE, actor=actor, at=now)


@transactional
def close(s: Session, claim_id: int, actor: str, *, expected_version: int | None = None,
          now: datetime | None = None) -> None:
    apply(s, load_claim(s, claim_id, expected_version), Action.CLOSE, actor=actor, at=now)


@transactional
def _reopen(s: Session, claim_id: int, actor: str, *, expected_version: int | None = None,
            now: datetime | None = None) -> None:
    apply(s, load_claim(s, claim_id, expected_version), Action.REOPEN, actor=actor, at=now)


def reopen(engine, claim_id: int, actor: str, *, expected_version: int | None = None,
           now: datetime | None = None) -> None:
    """Back to review. Fails with a clear message if its items were claimed again meanwhile."""
    try:
        _reopen(engine, claim_id, actor, expected_version=expected_version, now=now)
    except IntegrityError:
        raise AlreadyClaimed(
            "This claim can't be reopened: its items are part of another open claim now.")
