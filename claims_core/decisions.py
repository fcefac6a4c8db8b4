"""Staff actions on one claim: review, ask for information, decide, talk, reopen.

Each function is one transaction. ``expected_version`` is the claim version the staff member was
looking at: if someone else changed the claim since, :class:`StaleClaim` is raised and nothing is
written, so two agents deciding at once can never both land.
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Sequence

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from . import notify, rules, states
from .db import utcnow, write_session
from .models import Claim, Decision, Message, Resolution, Shipment, ShipmentItem, Stock
from .rules import ClaimRuleError

DENIAL_REASONS = {
    "outside_window": "The claim was filed after the filing window closed.",
    "not_covered": "This problem isn't covered by shipping protection.",
    "delivered_confirmed": "The carrier confirmed delivery to the correct address.",
    "insufficient_evidence": "The photos or details didn't show the problem.",
    "duplicate": "This was already claimed.",
    "other": "",
}
CREDIT_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"


class StaleClaim(ClaimRuleError):
    def __init__(self):
        super().__init__(
            "Someone else changed this claim while you were looking at it. "
            "It has been reloaded: check its new state before acting."
        )


@dataclass(frozen=True)
class ResolutionInput:
    kind: str  # refund | store_credit | reshipment
    amount_cents: int = 0  # refund or credit value (before bonus); ignored for reshipment
    bonus_pct: int = 0


def _load(s: Session, claim_id: int, expected_version: int | None) -> Claim:
    claim = s.get(Claim, claim_id)
    if claim is None:
        raise rules.ClaimRuleError("That claim doesn't exist.")
    if expected_version is not None and claim.version != expected_version:
        raise StaleClaim()
    return claim


def _run(engine: Engine, fn):
    try:
        with write_session(engine) as s:
            return fn(s)
    except StaleDataError:
        raise StaleClaim()


def new_store_credit_code() -> str:
    return "CREDIT-" + "".join(secrets.choice(CREDIT_ALPHABET) for _ in range(10))


def start_review(engine: Engine, claim_id: int, actor: str, *, expected_version: int | None = None,
                 now: datetime | None = None) -> None:
    def go(s):
        claim = _load(s, claim_id, expected_version)
        states.transition(s, claim, states.IN_REVIEW, actor=actor, action="review_started", at=now)
    _run(engine, go)


def _ensure_in_review(s: Session, claim: Claim, actor: str, now: datetime) -> None:
    if claim.status == states.SUBMITTED:
        states.transition(s, claim, states.IN_REVIEW, actor=actor, action="review_started", at=now)


def staff_message(engine: Engine, claim_id: int, actor: str, author_name: str, body: str, *,
                  internal: bool = False, now: datetime | None = None) -> None:
    now = now or utcnow()
    text = rules.required_text(body, "The message", "Write a message before sending.")

    def go(s):
        claim = _load(s, claim_id, None)
        msg = Message(claim_id=claim.id, author_kind="staff", author_name=author_name, body=text,
                      internal=internal, created_at=now)
        s.add(msg)
        s.flush()
        states.record_event(s, actor=actor, action="internal_note" if internal else "staff_message",
                            claim=claim, details={"message_id": msg.id}, at=now)
        if not internal:
            notify.on_staff_message(s, claim, msg.id, text, now)
    _run(engine, go)


def request_info(engine: Engine, claim_id: int, actor: str, author_name: str, body: str, *,
                 expected_version: int | None = None, now: datetime | None = None) -> None:
    now = now or utcnow()
    text = rules.required_text(body, "The message", "Say what you need from the customer.")

    def go(s):
        claim = _load(s, claim_id, expected_version)
        _ensure_in_review(s, claim, actor, now)
        msg = Message(claim_id=claim.id, author_kind="staff", author_name=author_name, body=text,
                      created_at=now)
        s.add(msg)
        s.flush()
        states.transition(s, claim, states.NEEDS_INFO, actor=actor, action="info_requested",
                          details={"message_id": msg.id}, at=now)
        notify.on_info_requested(s, claim, msg.id, text, now)
    _run(engine, go)


def approve(engine: Engine, claim_id: int, actor: str, resolutions: Sequence[ResolutionInput], *,
            expected_version: int | None = None, note: str = "",
            now: datetime | None = None) -> list[str]:
    """Approve with one or more resolutions (a split is several). Returns store-credit codes."""
    now = now or utcnow()
    if not resolutions:
        raise rules.InvalidInput("Choose at least one resolution to approve the claim.")

    def go(s):
        claim = _load(s, claim_id, expected_version)
        return grant(s, claim, actor, resolutions, now=now, note=note)
    return _run(engine, go)


def approval_lines(made: list[dict], codes: list[str]) -> list[str]:
    lines = ["Good news: your claim was approved."]
    code_iter = iter(codes)
    for r in made:
        if r["kind"] == "refund":
            lines.append(f"Refund of {rules.format_cents(r['amount_cents'])} to your original "
                         "payment method.")
        elif r["kind"] == "store_credit":
            total = r["amount_cents"] + (r["amount_cents"] * r["bonus_pct"] + 50) // 100
            lines.append(f"Store credit of {rules.format_cents(total)}: use code "
                         f"{next(code_iter, '')} at checkout.")
        else:
            lines.append("A replacement of your items is on its way.")
    return lines


def grant(s: Session, claim: Claim, actor: str, resolutions: Sequence[ResolutionInput], *,
          now: datetime, note: str = "", details: dict | None = None) -> list[str]:
    """Approve inside the caller's transaction (used by staff approvals and auto-approve rules)."""
    if claim.status not in (states.SUBMITTED, states.IN_REVIEW):
        raise states.IllegalTransition(claim.status, states.APPROVED)
    rules.check_resolution_amounts([(r.kind, r.amount_cents) for r in resolutions], claim.claimed_cents)
    _ensure_in_review(s, claim, actor, now)
    decision = Decision(claim_id=claim.id, outcome="approved", note=rules.clean_comment(note),
                        decided_by=actor, decided_at=now)
    s.add(decision)
    s.flush()
    codes, made = [], []
    for r in resolutions:
        res = Resolution(claim_id=claim.id, decision_id=decision.id, kind=r.kind, created_at=now)
        if r.kind == "refund":
            res.amount_cents = r.amount_cents
        elif r.kind == "store_credit":
            if not 0 <= r.bonus_pct <= 100:
                raise rules.InvalidInput("The bonus must be between 0 and 100 %.")
            res.amount_cents, res.bonus_pct = r.amount_cents, r.bonus_pct
            res.store_credit_code = new_store_credit_code()
            codes.append(res.store_credit_code)
        elif r.kind == "reshipment":
            res.amount_cents = claim.claimed_cents
            res.replacement_shipment_id = _reship(s, claim, actor, now).id
        claim.resolutions.append(res)
        made.append({"kind": r.kind, "amount_cents": res.amount_cents, "bonus_pct": res.bonus_pct})
    states.transition(s, claim, states.APPROVED, actor=actor, action="approved",
                      details={"resolutions": made, "decision_id": decision.id, **(details or {})},
                      at=now)
    notify.on_decision(s, claim, decision.id, approval_lines(made, codes), now)
    return codes


def undo_approval(engine: Engine, claim_id: int, actor: str, reason: str, *,
                  expected_version: int | None = None, now: datetime | None = None) -> None:
    """Take back an approval that hasn't been resolved (e.g. one an auto-approve rule made):
    its resolutions are voided (a store-credit code stops counting) and the claim is back in review."""
    now = now or utcnow()
    reason = rules.required_text(reason, "The reason", "Say why the approval is undone.")

    def go(s):
        claim = _load(s, claim_id, expected_version)
        if claim.status != states.APPROVED:
            raise states.IllegalTransition(claim.status, states.IN_REVIEW)
        live = [r for r in claim.resolutions if r.voided_at is None]
        if any(r.kind == "reshipment" for r in live):
            raise rules.InvalidInput("A reshipment has been sent; it can't be undone here.")
        for r in live:
            r.voided_at = now
        states.transition(s, claim, states.IN_REVIEW, actor=actor, action="approval_undone",
                          details={"reason": reason, "voided": [r.id for r in live]}, at=now)
    _run(engine, go)


def _reship(s: Session, claim: Claim, actor: str, now: datetime) -> Shipment:
    """Take the claimed items out of stock and record the replacement shipment."""
    needed: dict[str, int] = {}
    for ci in claim.items:
        sku = ci.shipment_item.line_item.sku
        needed[sku] = needed.get(sku, 0) + ci.quantity
    stock = {row.sku: row for row in s.scalars(select(Stock).where(Stock.sku.in_(list(needed))))}
    short = rules.stock_shortfall(needed, {k: v.on_hand for k, v in stock.items()})
    if short:
        raise rules.ResolutionUnavailable(
            f"Not enough stock to reship: {', '.join(short)}. Choose another resolution."
        )
    for sku, qty in needed.items():
        stock[sku].on_hand -= qty
        stock[sku].updated_at = now
    sh = Shipment(order_id=claim.order_id, tracking_number=None, carrier="", status="fulfilled",
                  shipped_at=now, is_replacement=True, source="claim",
                  items=[ShipmentItem(line_item_id=ci.shipment_item.line_item_id, quantity=ci.quantity)
                         for ci in claim.items])
    s.add(sh)
    s.flush()
    states.record_event(s, actor=actor, action="reshipment_created", claim=claim,
                        details={"shipment_id": sh.id, "stock": needed}, at=now)
    return sh


def deny(engine: Engine, claim_id: int, actor: str, reason_code: str, note: str = "", *,
         expected_version: int | None = None, now: datetime | None = None) -> None:
    now = now or utcnow()
    if reason_code not in DENIAL_REASONS:
        raise rules.InvalidInput("Choose a reason for the denial.")
    note = rules.clean_comment(note)
    if reason_code == "other" and not note:
        raise rules.InvalidInput("Explain the reason for the denial.")

    def go(s):
        claim = _load(s, claim_id, expected_version)
        if claim.status not in (states.SUBMITTED, states.IN_REVIEW):
            raise states.IllegalTransition(claim.status, states.DENIED)
        d = Decision(claim_id=claim.id, outcome="denied", reason_code=reason_code, note=note,
                     decided_by=actor, decided_at=now)
        s.add(d)
        s.flush()
        states.transition(s, claim, states.DENIED, actor=actor, action="denied",
                          details={"reason": reason_code, "decision_id": d.id}, at=now)
        notify.on_decision(s, claim, d.id, ["We're sorry: we couldn't approve your claim.",
                                            " ".join(x for x in (DENIAL_REASONS[reason_code], note) if x)
                                            or "Reply on your claim page if you have questions."], now)
    _run(engine, go)


def mark_resolved(engine: Engine, claim_id: int, actor: str, *, expected_version: int | None = None,
                  now: datetime | None = None) -> None:
    def go(s):
        claim = _load(s, claim_id, expected_version)
        states.transition(s, claim, states.RESOLVED, actor=actor, action="resolved", at=now)
    _run(engine, go)


def close(engine: Engine, claim_id: int, actor: str, *, expected_version: int | None = None,
          now: datetime | None = None) -> None:
    def go(s):
        claim = _load(s, claim_id, expected_version)
        states.transition(s, claim, states.CLOSED, actor=actor, action="closed", at=now)
    _run(engine, go)


def reopen(engine: Engine, claim_id: int, actor: str, *, expected_version: int | None = None,
           now: datetime | None = None) -> None:
    """Back to review. Fails with a clear message if its items were claimed again meanwhile."""
    from sqlalchemy.exc import IntegrityError

    def go(s):
        claim = _load(s, claim_id, expected_version)
        states.transition(s, claim, states.IN_REVIEW, actor=actor, action="reopened", at=now)
    try:
        _run(engine, go)
    except IntegrityError:
        raise rules.AlreadyClaimed(
            "This claim can't be reopened: its items are part of another open claim now."
        )
