"""Granting a claim inside a transaction: one decision, its resolutions, stock for a reshipment.

Used by the staff approval and by the owner's auto-approve rules alike, so both obey the same
rules: never more than was paid, and a store-credit bonus within the store's cap.
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..domain import disputes, lifecycle, money
from ..domain.errors import ErrorCode, ResolutionUnavailable
from ..domain.lifecycle import Action
from ..domain.resolutions import needed_stock, stock_shortfall
from ..domain.text import clean_comment
from ..domain.vocabulary import SUBMITTED, AuditAction, ResolutionKind
from ..infra.models import (Claim, Decision, Resolution, Shipment, ShipmentItem, Stock, StoreSettings,
                            settings_row)
from .events import apply, record_event

CREDIT_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"


@dataclass(frozen=True)
class ResolutionInput:
    kind: str  # refund | store_credit | reshipment
    amount_cents: int = 0  # refund or credit value (before bonus); ignored for reshipment
    bonus_pct: int | None = 0  # store credit only; None: the store's default (``default_bonus_pct``)


def default_bonus_pct(settings: StoreSettings) -> int:
    """The bonus on store credit when the decision names none (an auto-approve rule, the API
    without ``bonus_pct``) and the staff form's starting value: the store's bonus (Settings),
    which is also the most staff may give (``money.check_bonus``)."""
    return settings.store_credit_bonus_pct


def bonus_cap_pct(settings: StoreSettings) -> int:
    """The most store-credit bonus staff may give (what ``money.check_bonus`` allows)."""
    return min(settings.store_credit_bonus_pct, money.MAX_BONUS_PCT)


def new_store_credit_code() -> str:
    """16 letters and digits: a code Shopify accepts as a gift card's own (8-20, no hyphens), so
    with write-back the customer's code is the gift card's."""
    return "CREDIT" + "".join(secrets.choice(CREDIT_ALPHABET) for _ in range(10))


def ensure_in_review(s: Session, claim: Claim, actor: str, now: datetime | None) -> None:
    if claim.status == SUBMITTED:
        apply(s, claim, Action.START_REVIEW, actor=actor, at=now)


def grant(s: Session, claim: Claim, actor: str, resolutions: Sequence[ResolutionInput], *,
          now: datetime, note: str = "", details: dict | None = None) -> list[str]:
    """Approve ``claim`` with these resolutions (a split is several); returns store-credit codes."""
    lifecycle.check(Action.APPROVE, claim.status)
    lifecycle.check_not_on_hold(claim.held_at, claim.hold_reason)
    disputes.check_not_disputed(claim.dispute_held_at, claim.dispute_hold_reason)
    amounts = [(r.kind, r.amount_cents) for r in resolutions]
    money.check_resolution_amounts(amounts, claim.claimed_cents, claim.order.currency)
    settings = settings_row(s)
    cap = settings.store_credit_bonus_pct
    resolutions = [replace(r, bonus_pct=default_bonus_pct(settings))
                   if r.kind == ResolutionKind.STORE_CREDIT and r.bonus_pct is None else r
                   for r in resolutions]
    for r in resolutions:
        if r.kind == ResolutionKind.STORE_CREDIT:
            money.check_bonus(r.bonus_pct, cap)
    money.check_partial_reason(amounts, claim.claimed_cents, note)
    ensure_in_review(s, claim, actor, now)
    decision = Decision(claim_id=claim.id, outcome="approved", note=clean_comment(note),
                        decided_by=actor, decided_at=now)
    s.add(decision)
    s.flush()
    codes, made = [], []
    for r in resolutions:
        res = Resolution(claim_id=claim.id, decision_id=decision.id, kind=r.kind, created_at=now)
        if r.kind == ResolutionKind.REFUND:
            res.amount_cents = r.amount_cents
        elif r.kind == ResolutionKind.STORE_CREDIT:
            res.amount_cents, res.bonus_pct = r.amount_cents, r.bonus_pct
            # Approved again after an undo: the customer keeps the code they were given.
            res.store_credit_code = _take_back_code(s, claim) or new_store_credit_code()
            codes.append(res.store_credit_code)
        elif r.kind == ResolutionKind.RESHIPMENT:
            res.amount_cents = claim.claimed_cents
            res.replacement_shipment_id = reship(s, claim, actor, now).id
        claim.resolutions.append(res)
        made.append({"kind": r.kind, "amount_cents": res.amount_cents, "bonus_pct": res.bonus_pct})
    apply(s, claim, Action.APPROVE, actor=actor, at=now,
          details={"resolutions": made, "decision_id": decision.id, **(details or {})})
    return codes


def _take_back_code(s: Session, claim: Claim) -> str | None:
    """The store-credit code of this claim's last undone approval, moved off its voided row
    (codes are unique), or None."""
    voided = [r for r in claim.resolutions
              if r.kind == ResolutionKind.STORE_CREDIT and r.voided_at is not None
              and r.store_credit_code]
    if not voided:
        return None
    row = max(voided, key=lambda r: r.id)
    code, row.store_credit_code = row.store_credit_code, None
    s.flush()
    return code


def reship(s: Session, claim: Claim, actor: str, now: datetime) -> Shipment:
    """Take the claimed items out of stock and record the replacement shipment."""
    needed = needed_stock((ci.shipment_item.line_item.sku, ci.shipment_item.line_item_id,
                           ci.quantity) for ci in claim.items)
    stock = {row.sku: row for row in s.scalars(select(Stock).where(Stock.sku.in_(list(needed))))}
    short = stock_shortfall(needed, {k: v.on_hand for k, v in stock.items()})
    if short:
        raise ResolutionUnavailable(
            f"Not enough stock to reship: {', '.join(short)}. Choose another resolution.",
            ErrorCode.OUT_OF_STOCK)
    for sku, qty in needed.items():
        stock[sku].on_hand -= qty
        stock[sku].updated_at = now
    sh = Shipment(order_id=claim.order_id, tracking_number=None, carrier="", status="fulfilled",
                  shipped_at=now, is_replacement=True, source="claim",
                  items=[ShipmentItem(line_item_id=ci.shipment_item.line_item_id, quantity=ci.quantity)
                         for ci in claim.items])
    s.add(sh)
    s.flush()
    record_event(s, actor=actor, action=AuditAction.RESHIPMENT_CREATED, claim=claim,
                 details={"shipment_id": sh.id, "stock": needed}, at=now)
    return sh
