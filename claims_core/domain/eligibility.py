"""Can this shipment take a claim, for which issues, which items, with what evidence?

``evaluate`` is the one answer to "can a claim be filed on this shipment now", used by the portal's
order page, the staff "new claim" page and the filing service alike. It returns *every* reason
that stands in the way (the first is the one to show). Pure: it reads attributes of whatever it is
given (ORM rows or plain objects) and never touches a database.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Iterable, Mapping, Protocol

from .errors import (AlreadyClaimed, ClaimRuleError, ErrorCode, EvidenceRequired, InvalidInput,
                     IssueNotAvailable, NotProtected, NotShipped, OrderCancelled, QuantityError)
from .messages import Msg, N_
from .tracking import past_expected_delivery
from .vocabulary import ISSUE_TYPES, ITEM_ISSUES, IssueCategory, IssueType, Milestone, ShipmentStatus
from .windows import check_filing_window, filing_deadline, local_date, tracking_stalled

# Photo sizes are spoken of in megabytes as the upload widget counts them (decimal), so the
# limit the widget shows and the app's own message always say the same number.
MEGABYTE = 1_000_000
MAX_PHOTO_BYTES = 20 * MEGABYTE
PHOTO_REQUIRED_ISSUES = frozenset({IssueType.DAMAGED, IssueType.DEFECTIVE, IssueType.WRONG_ITEM})
# What to photograph, per issue: one whole sentence each (a translated label can't be lower-cased
# into the middle of another sentence).
PHOTO_REQUIRED_MESSAGES = {
    IssueType.DAMAGED: N_("Please add at least one photo showing the damaged item."),
    IssueType.DEFECTIVE: N_("Please add at least one photo showing the defective item."),
    IssueType.WRONG_ITEM: N_("Please add at least one photo showing the wrong item."),
}


class OrderFacts(Protocol):
    cancelled_at: datetime | None
    total_cents: int
    refunded_cents: int  # what the store refunded in Shopify, outside any claim
    protection_purchased_at: datetime | None
    claim_deadline_override: date | None


class ShipmentFacts(Protocol):
    status: str
    shipped_at: datetime
    last_scan_at: datetime | None
    milestone: str | None  # live tracking's milestone, when a carrier feed reports this shipment
    expected_delivery_at: datetime | None


class ClaimPolicy(Protocol):
    """The store settings eligibility reads."""
    filing_window_days: int
    lost_wait_days: int
    timezone: str


@dataclass(frozen=True)
class Eligibility:
    deadline: date
    issue_types: tuple[str, ...]
    reasons: tuple[ClaimRuleError, ...]

    @property
    def ok(self) -> bool:
        return not self.reasons

    @property
    def reason(self) -> Msg | str:
        """The first reason, as a catalog message for the customer ("" when there is none);
        ``str()`` of it is the English."""
        return self.reasons[0].msg if self.reasons else ""

    @property
    def codes(self) -> tuple[ErrorCode, ...]:
        return tuple(r.code for r in self.reasons)

    def check(self) -> None:
        """Raise the first reason, if any."""
        if self.reasons:
            raise self.reasons[0]


def deadline_for(order: OrderFacts, shipment: ShipmentFacts, settings: ClaimPolicy) -> date:
    """The filing deadline of one shipment, with the order's exception if staff granted one."""
    return filing_deadline(shipment.shipped_at, settings.filing_window_days, settings.timezone,
                           order.claim_deadline_override)


def evaluate(order: OrderFacts, shipment: ShipmentFacts, remaining: Iterable[int], now: datetime,
             settings: ClaimPolicy) -> Eligibility:
    """Everything that decides whether ``shipment`` can take a new claim at ``now``.

    ``remaining`` is the claimable quantity of each of its lines (see ``remaining_quantity``).
    """
    deadline = deadline_for(order, shipment, settings)
    issues = tuple(available_issue_types(
        shipment.status, shipment.shipped_at, shipment.last_scan_at, now, settings.lost_wait_days,
        milestone=getattr(shipment, "milestone", None),
        expected_delivery_at=getattr(shipment, "expected_delivery_at", None),
        tz_name=settings.timezone))
    reasons: list[ClaimRuleError] = []
    for check in (lambda: check_order_not_cancelled(order.cancelled_at),
                  lambda: check_not_refunded(order),
                  lambda: check_protection_covers_shipment(order.protection_purchased_at,
                                                           shipment.shipped_at),
                  lambda: check_filing_window(deadline, now, settings.timezone)):
        try:
            check()
        except ClaimRuleError as e:
            reasons.append(e)
    if not any(remaining):
        reasons.append(AlreadyClaimed(
            N_("Everything in this shipment is already covered by a claim. You can follow it "
               "with View My Claim."), ErrorCode.NOTHING_LEFT_TO_CLAIM))
    if not issues:
        reasons.append(IssueNotAvailable(
            N_("The carrier's tracking doesn't allow a claim on this shipment yet. "
               "Please check back later or contact the store."), ErrorCode.TRACKING_NOT_READY))
    return Eligibility(deadline, issues, tuple(reasons))


def evaluate_order(order: OrderFacts, shipment_count: int) -> tuple[ClaimRuleError, ...]:
    """What stops the whole order from taking a claim, before looking at its shipments."""
    reasons: list[ClaimRuleError] = []
    for check in (lambda: check_order_not_cancelled(order.cancelled_at),
                  lambda: check_not_refunded(order),
                  lambda: check_protected(order.protection_purchased_at),
                  lambda: check_has_shipments(shipment_count)):
        try:
            check()
        except ClaimRuleError as e:
            reasons.append(e)
    return tuple(reasons)


# --- order-level rules --------------------------------------------------------------------------

def check_order_not_cancelled(cancelled_at: datetime | None) -> None:
    if cancelled_at is not None:
        raise OrderCancelled(
            N_("This order was cancelled, so there is nothing to claim. If you were charged, "
               "please contact the store.")
        )


def check_not_refunded(order: OrderFacts) -> None:
    """An order the store has already refunded in full has nothing left to claim."""
    total = getattr(order, "total_cents", 0) or 0
    refunded = getattr(order, "refunded_cents", 0) or 0
    if total > 0 and refunded >= total:
        raise ClaimRuleError(N_("This order was already refunded in full, so there is nothing left "
                                "to claim. If something is still wrong, please contact the store."),
                             ErrorCode.ORDER_REFUNDED)


def check_protected(protection_purchased_at: datetime | None) -> None:
    """Only orders with shipping protection bought at checkout can be claimed."""
    if protection_purchased_at is None:
        raise NotProtected(
            N_("This order doesn't include shipping protection, so it can't be claimed here. "
               "Please contact the store directly.")
        )


def check_protection_covers_shipment(protection_purchased_at: datetime | None,
                                     shipped_at: datetime) -> None:
    """Protection bought after the shipment left doesn't cover that shipment."""
    check_protected(protection_purchased_at)
    if protection_purchased_at > shipped_at:
        raise NotProtected(
            N_("Shipping protection was added to this order after this shipment left, so it "
               "doesn't cover it. Please contact the store directly."),
            ErrorCode.PROTECTION_AFTER_SHIPMENT)


def check_has_shipments(shipment_count: int) -> None:
    if shipment_count == 0:
        raise NotShipped(
            N_("This order hasn't shipped yet. You can file a claim once it's on its way; "
               "for changes before then, please contact the store.")
        )


# --- which issues a shipment can have ----------------------------------------------------------

def available_issue_types(status: str, shipped_at: datetime, last_scan_at: datetime | None,
                          now: datetime, lost_wait_days: int, *, milestone: str | None = None,
                          expected_delivery_at: datetime | None = None,
                          tz_name: str | None = "UTC") -> list[str]:
    """The scenarios a shipment in this state can be claimed for, in display order.

    - delivered: stolen, delivered-but-not-received, and every item issue ("not received" only
      once the carrier says delivered);
    - in transit / carrier exception: delayed once the expected delivery day is over (any time if
      the carrier gave none); lost once tracking hasn't moved for the store's quiet period (not
      while the parcel waits at a pickup point);
    - returned: returned to sender;
    - fulfilled with no tracking data: delayed, lost after the wait, and item issues (the carrier
      can't tell us whether it arrived, the customer can).
    """
    stalled = tracking_stalled(shipped_at, last_scan_at, now, lost_wait_days)
    at_pickup = milestone == Milestone.AVAILABLE_FOR_PICKUP
    lost = [IssueType.LOST] if stalled and not at_pickup else []
    delayed = [IssueType.DELAYED] if past_expected_delivery(expected_delivery_at, now, tz_name) else []
    if status == ShipmentStatus.DELIVERED:
        return [IssueType.STOLEN, IssueType.NOT_RECEIVED, *ITEM_ISSUES]
    if status in (ShipmentStatus.IN_TRANSIT, ShipmentStatus.EXCEPTION):
        return [*delayed, *lost]
    if status == ShipmentStatus.RETURNED:
        return [IssueType.RETURNED_TO_SENDER]
    if status == ShipmentStatus.FULFILLED:
        return [*delayed, *lost, *ITEM_ISSUES]
    return []


def explain_issue_unavailable(issue_type: str, status: str, lost_wait_days: int,
                              expected_delivery_at: datetime | None = None,
                              tz_name: str | None = "UTC") -> Msg:
    """Why ``issue_type`` can't be claimed on this shipment (yet), for the customer."""
    # the issue's label is itself a message: translated inside the sentence
    issue = Msg(ISSUE_TYPES[issue_type].label) if issue_type in ISSUE_TYPES else issue_type
    if issue_type == IssueType.LOST and status in (ShipmentStatus.IN_TRANSIT,
                                                   ShipmentStatus.EXCEPTION,
                                                   ShipmentStatus.FULFILLED):
        return Msg.of(N_("“{issue}” can be claimed once tracking hasn't moved for {days} days. "
                         "If it's just late, choose “{delayed}”."),
                      issue=issue, days=lost_wait_days,
                      delayed=Msg(ISSUE_TYPES[IssueType.DELAYED].label))
    if issue_type == IssueType.DELAYED and expected_delivery_at is not None and status in (
            ShipmentStatus.IN_TRANSIT, ShipmentStatus.EXCEPTION, ShipmentStatus.FULFILLED):
        return Msg.of(N_("The carrier expects to deliver on {day}; “{issue}” can be claimed after "
                         "that day."), day=local_date(expected_delivery_at, tz_name), issue=issue)
    if issue_type in (IssueType.STOLEN, IssueType.NOT_RECEIVED) or issue_type in ITEM_ISSUES:
        return Msg.of(N_("“{issue}” can only be claimed once the carrier shows the package as "
                         "delivered."), issue=issue)
    return Msg.of(N_("“{issue}” doesn't apply to this shipment as the carrier reports it."),
                  issue=issue)


def check_issue_type(issue_type: str) -> None:
    """What went wrong is one of the scenarios on the list."""
    if issue_type not in ISSUE_TYPES:
        raise InvalidInput(N_("Please choose what went wrong from the list."),
                           ErrorCode.ISSUE_TYPE_UNKNOWN)


def check_issue_available(issue_type: str, available: Iterable[str], status: str,
                          lost_wait_days: int, expected_delivery_at: datetime | None = None,
                          tz_name: str | None = "UTC") -> None:
    check_issue_type(issue_type)
    if issue_type not in set(available):
        raise IssueNotAvailable(explain_issue_unavailable(issue_type, status, lost_wait_days,
                                                          expected_delivery_at, tz_name))


# --- items and quantities -----------------------------------------------------------------------

def remaining_quantity(carried: int, already_covered: int, open_claim: bool = False) -> int:
    """What is still claimable on a shipment line: carried minus what open or approved claims
    cover. While a claim on the line is still open, nothing more can be claimed on it (one open
    claim per shipment line item); once that claim is decided the rest becomes claimable again."""
    if open_claim:
        return 0
    return max(0, carried - already_covered)


def _whole_number(value) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
        return int(value)
    return None


def claimed_items(issue_type: str, requested: Mapping[int, int] | None,
                  remaining: Mapping[int, int], names: Mapping[int, str]) -> dict[int, int]:
    """What a claim covers, ``{shipment_item_id: quantity}``: for a delivery problem everything
    still claimable on the shipment; for an item problem the customer's choice, checked."""
    if ISSUE_TYPES[issue_type].category == IssueCategory.SHIPPING:
        chosen = {sid: q for sid, q in remaining.items() if q > 0}
        if not chosen:
            raise AlreadyClaimed(N_("Everything in this shipment is already covered by another "
                                    "claim."), ErrorCode.NOTHING_LEFT_TO_CLAIM)
        return chosen
    return check_item_quantities(requested or {}, remaining, names)


def check_item_quantities(requested: Mapping[int, int], remaining: Mapping[int, int],
                          names: Mapping[int, str]) -> dict[int, int]:
    """Validate ``{shipment_item_id: quantity}`` against what each line still has claimable.

    Lines asked for with quantity 0 are dropped; at least one item must remain.
    """
    def item(sid: int, unnamed: str) -> Msg | str:
        """The product's name as it is (data), or the message ``unnamed`` for a line without one."""
        return names[sid] if sid in names else Msg(unnamed)

    chosen: dict[int, int] = {}
    for sid, qty in requested.items():
        if sid not in remaining:
            raise QuantityError(N_("One of the chosen items isn't part of this shipment."))
        q = _whole_number(qty)
        if q is None:
            raise QuantityError(Msg.of(N_("Enter a whole number for “{item}”."),
                                       item=item(sid, N_("the item"))))
        if q < 0:
            raise QuantityError(Msg.of(N_("The quantity for “{item}” can't be negative."),
                                       item=item(sid, N_("the item"))))
        if q == 0:
            continue
        left = remaining[sid]
        if left == 0:
            raise AlreadyClaimed(Msg.of(N_("“{item}” is already covered by another claim."),
                                        item=item(sid, N_("This item"))))
        if q > left:
            raise QuantityError(Msg.of(N_("You can claim at most {n} of “{item}”."),
                                       n=left, item=item(sid, N_("this item"))))
        chosen[sid] = q
    if not chosen:
        raise QuantityError(N_("Choose at least one item and how many were affected."))
    return chosen


# --- evidence -----------------------------------------------------------------------------------

def photos_required(issue_type: str) -> bool:
    return issue_type in PHOTO_REQUIRED_ISSUES


def check_photo_count(issue_type: str, count: int, max_photos: int) -> None:
    if count > max_photos:
        raise EvidenceRequired(Msg.of(N_("You can add at most {n} photos."), n=max_photos),
                               ErrorCode.TOO_MANY_PHOTOS)
    if photos_required(issue_type) and count == 0:
        raise EvidenceRequired(PHOTO_REQUIRED_MESSAGES.get(
            issue_type, N_("Please add at least one photo showing the problem.")))


def reply_photo_limit(max_photos: int) -> int:
    """How many photos a claim may hold in all, counting those added in replies."""
    return max_photos * 2
