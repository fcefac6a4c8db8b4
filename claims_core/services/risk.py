"""Risk signals for a claim: what a careful agent would check before deciding.

Each signal has a weight; the sum is the claim's risk score, and the level is low / medium / high.
The score is stored when the claim is filed (so the queue can filter on it) and the signals are
recomputed live on the claim page.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from datetime import timedelta

from sqlalchemy import func, select, union
from sqlalchemy.orm import Session

from ..infra.models import Claim, Evidence, Order, Shipment
from ..infra.personal_data import ERASED

MEDIUM_AT = 20
HIGH_AT = 50
SOON_AFTER_DELIVERY = timedelta(hours=2)
AVERAGE_SAMPLE = 1000  # recent claims the store average is taken over
VELOCITY_WINDOW = timedelta(days=60)
SHOPIFY_RISK_WEIGHTS = {"medium": 20, "high": 45}  # Shopify's own order risk level


@dataclass(frozen=True)
class Signal:
    label: str
    detail: str
    weight: int


def level_for(score: int) -> str:
    return "high" if score >= HIGH_AT else "medium" if score >= MEDIUM_AT else "low"


def _address_key(order: Order) -> tuple[str, str]:
    if order.shipping_address1 == ERASED:  # erased customers share the marker, not an address
        return "", ""
    return ((order.shipping_address1 or "").strip().lower(), (order.shipping_zip or "").strip().lower())


def signals(session: Session, claim: Claim,
            reused: dict[int, list[str]] | None = None) -> list[Signal]:
    out: list[Signal] = []
    order = claim.order

    prior = [] if claim.email == ERASED else session.execute(
        select(Claim.status, func.count()).where(Claim.email == claim.email, Claim.id != claim.id,
                                                 Claim.created_at <= claim.created_at)
        .group_by(Claim.status)
    ).all()
    n_prior = sum(n for _s, n in prior)
    if n_prior:
        outcomes = ", ".join(f"{n} {s.replace('_', ' ')}" for s, n in sorted(prior))
        out.append(Signal("Earlier claims from this email", f"{n_prior} ({outcomes})",
                          min(40, 12 * n_prior)))

    addr, _zip = _address_key(order)
    if addr:
        n_addr = session.scalar(
            select(func.count()).select_from(Claim).join(Order, Order.id == Claim.order_id)
            .where(Order.shipping_zip == order.shipping_zip,  # indexed; then the street
                   func.lower(Order.shipping_address1) == addr,
                   Claim.email != claim.email, Claim.created_at <= claim.created_at)
        ) or 0
        if n_addr:
            out.append(Signal("Claims from other emails at this address", str(n_addr),
                              min(40, 15 * n_addr)))

        # velocity: how many claims (any email) reached this address in the last weeks
        n_recent = session.scalar(
            select(func.count()).select_from(Claim).join(Order, Order.id == Claim.order_id)
            .where(Order.shipping_zip == order.shipping_zip,
                   func.lower(Order.shipping_address1) == addr, Claim.id != claim.id,
                   Claim.created_at <= claim.created_at,
                   Claim.created_at > claim.created_at - VELOCITY_WINDOW)
        ) or 0
        if n_recent >= 2:
            out.append(Signal("Many recent claims at this address",
                              f"{n_recent} in the {VELOCITY_WINDOW.days} days before this one",
                              min(30, 10 * n_recent)))

    if order.risk_level in SHOPIFY_RISK_WEIGHTS:
        out.append(Signal("Shopify's fraud analysis", f"{order.risk_level} risk order",
                          SHOPIFY_RISK_WEIGHTS[order.risk_level]))

    recent = select(Claim.claimed_cents).where(Claim.id != claim.id) \
        .order_by(Claim.created_at.desc()).limit(AVERAGE_SAMPLE).subquery()
    total, n = session.execute(select(func.sum(recent.c.claimed_cents), func.count())).one()
    if total and claim.claimed_cents * n > 2 * total:
        times = Decimal(claim.claimed_cents * n) / Decimal(total)
        out.append(Signal("High value", f"{times:.1f}× the store's average claim", 15))

    shipment: Shipment = claim.shipment
    if shipment.delivered_at and claim.created_at - shipment.delivered_at < SOON_AFTER_DELIVERY \
            and claim.created_at >= shipment.delivered_at:
        minutes = int((claim.created_at - shipment.delivered_at).total_seconds() // 60)
        out.append(Signal("Filed very soon after delivery", f"{minutes} minutes after the "
                                                             "delivery scan", 15))

    reused = reused_photos(session, claim) if reused is None else reused
    if reused:
        refs = sorted({ref for refs in reused.values() for ref in refs})
        out.append(Signal("Photos used in another claim", ", ".join(refs[:5]), 40))
    return out


def reused_photos(session: Session, claim: Claim) -> dict[int, list[str]]:
    """For each of this claim's photos that also appears (same file or same picture) in another
    claim: the other claims' references."""
    # an erased photo has no hashes (the empty string): it matches nothing
    mine = {e.id: (e.sha256 or None, e.phash or None) for e in claim.evidence
            if e.sha256 or e.phash}
    if not mine:
        return {}
    shas = [v[0] for v in mine.values() if v[0]]
    hashes = [v[1] for v in mine.values() if v[1]]
    same = [Evidence.sha256.in_(shas), Evidence.phash.in_(hashes)]  # each on its own index
    rows = session.execute(union(*(
        select(Evidence.sha256, Evidence.phash, Claim.reference)
        .join(Claim, Claim.id == Evidence.claim_id)
        .where(Evidence.claim_id != claim.id, match) for match in same))
    ).all()
    out: dict[int, list[str]] = {}
    for eid, (sha, ph) in mine.items():
        refs = sorted({ref for s, p, ref in rows if s == sha or p == ph})
        if refs:
            out[eid] = refs
    return out


def assess(session: Session, claim: Claim,
           reused: dict[int, list[str]] | None = None) -> tuple[int, str, list[Signal]]:
    sig = signals(session, claim, reused)
    score = sum(s.weight for s in sig)
    return score, level_for(score), sig
