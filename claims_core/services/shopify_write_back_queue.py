"""Shopify write-back, the part that lives inside a claim's transaction (event handlers).

When the store is connected to Shopify (a shop domain in Settings and an Admin API token stored:
``shopify_connection``), an approval queues one ``ShopifyWrite`` per resolution in the approval's
own transaction: a refund becomes a Shopify refund, store credit a gift card (with the code the
customer was given), a reshipment a zero-priced order. ``adapters/shopify_write_back.py`` sends
them after commit, with retries (``shopify_write_back`` records how they went). Undoing an
approval cancels the writes that haven't gone out. Without a connection nothing is queued and
decisions stay in the app.
"""
from __future__ import annotations

import json

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..domain.vocabulary import ResolutionKind
from ..infra.models import Claim, Event, Resolution, ShopifyWrite, StoreSecret, settings_row

TOKEN_SECRET = "shopify_admin_token"
WRITE_KIND = {ResolutionKind.REFUND: "refund", ResolutionKind.STORE_CREDIT: "gift_card",
              ResolutionKind.RESHIPMENT: "order"}
WRITE_LABELS = {"refund": "Refund in Shopify", "gift_card": "Gift card in Shopify",
                "order": "Replacement order in Shopify"}


def connected(s: Session) -> bool:
    """Is write-back on: a shop domain and a token are both configured?"""
    if not settings_row(s).shopify_shop_domain:
        return False
    return s.get(StoreSecret, TOKEN_SECRET) is not None


def queue_write_back(s: Session, ev: Event, claim: Claim) -> None:
    """Handler of an approval: one write per resolution it made (none when not connected)."""
    if not connected(s):
        return
    decision_id = json.loads(ev.details or "{}").get("decision_id")
    rows = s.scalars(select(Resolution).where(Resolution.decision_id == decision_id,
                                              Resolution.voided_at.is_(None))).all()
    for res in rows:
        exists = s.scalars(select(ShopifyWrite.id).where(
            ShopifyWrite.resolution_id == res.id)).first()
        if exists is None:
            s.add(ShopifyWrite(resolution_id=res.id, claim_id=claim.id, kind=WRITE_KIND[res.kind],
                               status="pending", next_attempt_at=ev.at, created_at=ev.at))


def cancel_write_back(s: Session, ev: Event, claim: Claim) -> None:
    """Handler of an undone approval: writes not sent yet are cancelled."""
    voided = json.loads(ev.details or "{}").get("voided") or []
    for w in s.scalars(select(ShopifyWrite).where(ShopifyWrite.resolution_id.in_(voided),
                                                  ShopifyWrite.status.in_(("pending", "failed")))):
        w.status = "cancelled"
        w.last_error = "the approval was undone before this was sent"


def sent_to_shop(s: Session, resolution_ids) -> bool:
    """Has any of these resolutions gone to Shopify, or is one being sent right now?"""
    ids = list(resolution_ids)
    return bool(ids) and s.scalars(select(ShopifyWrite.id).where(
        ShopifyWrite.resolution_id.in_(ids), ShopifyWrite.status.in_(("sending", "done")))
    ).first() is not None
