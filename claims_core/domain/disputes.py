"""Chargebacks: what a payment dispute on an order means for its claims.

A Shopify Payments dispute (the ``disputes/create`` and ``disputes/update`` webhooks, whose body is
the REST Dispute resource: ``id``, ``order_id``, ``type`` inquiry|chargeback, ``amount``,
``currency``, ``reason``, ``status``, ``evidence_due_by``, ``initiated_at``, ``finalized_on``) is
**open** until the bank has decided or the shop gave in: ``needs_response`` and ``under_review``
are open; ``won``, ``lost``, ``accepted`` and ``charge_refunded`` are closed.

While a dispute is open on an order the customer may get their money back from the bank, so the
shop must not pay the claim as well: an open claim is held (approving is refused with
``order_disputed`` until the dispute closes or the owner releases the hold), and a claim already
approved is flagged to the owner (the shop may be paying twice). Unlike Route, the claim is not
denied: the owner decides, with the facts in front of them.

Pure: no database, no HTTP.
"""
from __future__ import annotations

from datetime import datetime

from .errors import ClaimRuleError, ErrorCode

OPEN_STATUSES = ("needs_response", "under_review")
CLOSED_STATUSES = ("won", "lost", "accepted", "charge_refunded")
STATUSES = (*OPEN_STATUSES, *CLOSED_STATUSES)
STATUS_LABELS = {
    "needs_response": "needs a response",
    "under_review": "under review by the bank",
    "won": "won",
    "lost": "lost",
    "accepted": "accepted by the shop",
    "charge_refunded": "charge refunded",
}
REASON_LABELS = {  # Shopify's reasons; anything else is shown as it comes
    "bank_cannot_process": "the bank can't process it", "credit_not_processed": "credit not processed",
    "customer_initiated": "customer initiated", "debit_not_authorized": "debit not authorised",
    "duplicate": "duplicate charge", "fraudulent": "fraudulent",
    "general": "general", "incorrect_account_details": "incorrect account details",
    "insufficient_funds": "insufficient funds", "product_not_received": "product not received",
    "product_unacceptable": "product unacceptable", "subscription_canceled": "subscription canceled",
    "unrecognized": "unrecognised",
}


def is_open(status: str | None) -> bool:
    """Is a dispute in this status still open (not won, lost, accepted or charge refunded)?"""
    return bool(status) and status not in CLOSED_STATUSES


def check_status(status) -> str:
    """The dispute's status as Shopify documents it, or ValueError."""
    if not isinstance(status, str) or status not in STATUSES:
        raise ValueError(f"the dispute status {status!r} is not one Shopify documents")
    return status


def reason_label(reason: str) -> str:
    return REASON_LABELS.get(reason, (reason or "no reason given").replace("_", " "))


def describe(kind: str, reason: str, status: str) -> str:
    """One line about the dispute, for a hold reason, a note and the owner's email."""
    what = "An inquiry" if kind == "inquiry" else "A chargeback"
    return (f"{what} was opened with the customer's bank on this order "
            f"({reason_label(reason)}); it is {STATUS_LABELS.get(status, status)}.")


def hold_reason(kind: str, reason: str, status: str) -> str:
    return describe(kind, reason, status) + " The customer may get the money back from the bank."


def check_not_disputed(dispute_held_at: datetime | None, reason: str = "") -> None:
    """A claim held because its order is disputed is not approved until the dispute closes or the
    owner releases the hold (denying, asking the customer and closing stay possible)."""
    if dispute_held_at is not None:
        raise ClaimRuleError("This order is disputed with the customer's bank: " + (
            reason or "a chargeback is open.") + " Approving waits until the dispute closes or "
            "the owner releases the hold.", ErrorCode.ORDER_DISPUTED)


def paying_twice(claim_granted: bool, dispute_status: str | None) -> bool:
    """An approved (or resolved) claim on an order with an open dispute: the shop may pay twice."""
    return claim_granted and is_open(dispute_status)
