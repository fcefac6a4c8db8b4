"""The product's words: every enum, with its labels, in one place.

Values are the strings stored in the database, so a member compares equal to its stored value.
Labels a customer reads are catalog messages (``N_``: plain English strings, translated where they
are shown); labels only staff read (denial labels, audit actions, roles) stay plain English.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from .messages import N_


class IssueCategory(StrEnum):
    SHIPPING = "shipping"
    ITEM = "item"


class IssueType(StrEnum):
    DELAYED = "delayed"
    LOST = "lost"
    STOLEN = "stolen"
    NOT_RECEIVED = "not_received"
    RETURNED_TO_SENDER = "returned_to_sender"
    DAMAGED = "damaged"
    DEFECTIVE = "defective"
    WRONG_ITEM = "wrong_item"
    MISSING_ITEM = "missing_item"

    @property
    def info(self) -> "IssueInfo":
        return ISSUE_TYPES[self]

    @property
    def label(self) -> str:
        return ISSUE_TYPES[self].label

    @property
    def category(self) -> IssueCategory:
        return ISSUE_TYPES[self].category


@dataclass(frozen=True)
class IssueInfo:
    code: IssueType
    category: IssueCategory
    label: str
    help: str


SHIPPING = IssueCategory.SHIPPING
ITEM = IssueCategory.ITEM

# Display order is the order here.
ISSUE_TYPES: dict[str, IssueInfo] = {
    t.code: t
    for t in [
        IssueInfo(IssueType.DELAYED, SHIPPING, N_("Delayed"),
                  N_("The package is late and still on its way.")),
        IssueInfo(IssueType.LOST, SHIPPING, N_("Lost / tracking not moving"),
                  N_("Tracking hasn't moved for days.")),
        IssueInfo(IssueType.STOLEN, SHIPPING, N_("Stolen"), N_("It was delivered and then taken.")),
        IssueInfo(IssueType.NOT_RECEIVED, SHIPPING, N_("Delivered but not received"),
                  N_("Tracking says delivered, but you don't have it.")),
        IssueInfo(IssueType.RETURNED_TO_SENDER, SHIPPING, N_("Returned to sender"),
                  N_("The carrier sent the package back to the store.")),
        IssueInfo(IssueType.DAMAGED, ITEM, N_("Damaged"), N_("An item arrived broken or damaged.")),
        IssueInfo(IssueType.DEFECTIVE, ITEM, N_("Defective"),
                  N_("An item doesn't work as it should.")),
        IssueInfo(IssueType.WRONG_ITEM, ITEM, N_("Wrong item"),
                  N_("You received something you didn't order.")),
        IssueInfo(IssueType.MISSING_ITEM, ITEM, N_("Missing item"),
                  N_("An item was missing from the package.")),
    ]
}
ITEM_ISSUES = tuple(c for c, t in ISSUE_TYPES.items() if t.category == ITEM)


class ClaimStatus(StrEnum):
    SUBMITTED = "submitted"
    IN_REVIEW = "in_review"
    NEEDS_INFO = "needs_info"
    APPROVED = "approved"
    RESOLVED = "resolved"
    DENIED = "denied"
    CLOSED = "closed"

    @property
    def label(self) -> str:
        return STATUS_LABELS[self]


SUBMITTED, IN_REVIEW, NEEDS_INFO = ClaimStatus.SUBMITTED, ClaimStatus.IN_REVIEW, ClaimStatus.NEEDS_INFO
APPROVED, RESOLVED = ClaimStatus.APPROVED, ClaimStatus.RESOLVED
DENIED, CLOSED = ClaimStatus.DENIED, ClaimStatus.CLOSED
STATUSES = tuple(ClaimStatus)
STATUS_LABELS = {
    SUBMITTED: N_("Received"),
    IN_REVIEW: N_("In review"),
    NEEDS_INFO: N_("Waiting for you"),
    APPROVED: N_("Approved"),
    RESOLVED: N_("Resolved"),
    DENIED: N_("Denied"),
    CLOSED: N_("Closed"),
}
OPEN_STATUSES = frozenset({SUBMITTED, IN_REVIEW, NEEDS_INFO})
# Claims whose items stay covered (can't be claimed again): open ones and granted ones.
COVERING_STATUSES = frozenset({SUBMITTED, IN_REVIEW, NEEDS_INFO, APPROVED, RESOLVED})
# The shop owes an answer (the response target runs).
AWAITING_SHOP = frozenset({SUBMITTED, IN_REVIEW})
# A decision on the claim's merits was taken (``claims.decided_at``, the analytics' "decided"): approved,
# resolved or denied. A closed claim was never decided (nobody answered, or staff closed it).
DECIDED_STATUSES = frozenset({APPROVED, RESOLVED, DENIED})
GRANTED_STATUSES = frozenset({APPROVED, RESOLVED})


def takes_decision(from_status: str, to_status: str) -> bool:
    """A step that decides the claim (records ``decided_at``): from undecided into a decided
    status (approve, deny; not resolve, which carries out the approval)."""
    return to_status in DECIDED_STATUSES and from_status not in DECIDED_STATUSES


class ResolutionKind(StrEnum):
    REFUND = "refund"
    RESHIPMENT = "reshipment"
    STORE_CREDIT = "store_credit"

    @property
    def label(self) -> str:
        return RESOLUTION_LABELS[self]


RESOLUTION_LABELS = {
    ResolutionKind.REFUND: N_("Refund"),
    ResolutionKind.RESHIPMENT: N_("Send a replacement"),
    ResolutionKind.STORE_CREDIT: N_("Store credit"),
}
# How the customer reads what they asked for.
RESOLUTION_ASKED = {
    ResolutionKind.REFUND: N_("Refund"),
    ResolutionKind.STORE_CREDIT: N_("Store credit"),
    ResolutionKind.RESHIPMENT: N_("Replacement shipment"),
}


class DenialReason(StrEnum):
    OUTSIDE_WINDOW = "outside_window"
    NOT_COVERED = "not_covered"
    DELIVERED_CONFIRMED = "delivered_confirmed"
    INSUFFICIENT_EVIDENCE = "insufficient_evidence"
    DUPLICATE = "duplicate"
    OTHER = "other"


# Staff choose by these labels ...
DENIAL_LABELS = {
    DenialReason.OUTSIDE_WINDOW: "Filed outside the window",
    DenialReason.NOT_COVERED: "Not covered by protection",
    DenialReason.DELIVERED_CONFIRMED: "Delivery confirmed",
    DenialReason.INSUFFICIENT_EVIDENCE: "Not enough evidence",
    DenialReason.DUPLICATE: "Duplicate claim",
    DenialReason.OTHER: "Other (explain)",
}
# ... and the customer reads these.
DENIAL_EXPLANATIONS = {
    DenialReason.OUTSIDE_WINDOW: N_("The claim was filed after the filing window closed."),
    DenialReason.NOT_COVERED: N_("This problem isn't covered by shipping protection."),
    DenialReason.DELIVERED_CONFIRMED: N_("The carrier confirmed delivery to the correct address."),
    DenialReason.INSUFFICIENT_EVIDENCE: N_("The photos or details didn't show the problem."),
    DenialReason.DUPLICATE: N_("This was already claimed."),
    DenialReason.OTHER: "",
}


class ShipmentStatus(StrEnum):
    FULFILLED = "fulfilled"
    IN_TRANSIT = "in_transit"
    DELIVERED = "delivered"
    RETURNED = "returned"
    EXCEPTION = "exception"


SHIPMENT_STATUSES = tuple(ShipmentStatus)


class Milestone(StrEnum):
    """Where a parcel is, as every carrier feed is normalised (17TRACK, EasyPost, Shopify)."""

    INFO_RECEIVED = "info_received"
    IN_TRANSIT = "in_transit"
    OUT_FOR_DELIVERY = "out_for_delivery"
    DELIVERED = "delivered"
    AVAILABLE_FOR_PICKUP = "available_for_pickup"
    EXCEPTION = "exception"
    RETURNED = "returned"
    EXPIRED = "expired"


MILESTONE_LABELS = {
    Milestone.INFO_RECEIVED: N_("Label created"),
    Milestone.IN_TRANSIT: N_("In transit"),
    Milestone.OUT_FOR_DELIVERY: N_("Out for delivery"),
    Milestone.DELIVERED: N_("Delivered"),
    Milestone.AVAILABLE_FOR_PICKUP: N_("Ready for pickup"),
    Milestone.EXCEPTION: N_("Delivery problem"),
    Milestone.RETURNED: N_("Returned to sender"),
    Milestone.EXPIRED: N_("Tracking stopped"),
}
# The steps a timeline draws as its progress bar, in order.
MILESTONE_PATH = (Milestone.INFO_RECEIVED, Milestone.IN_TRANSIT, Milestone.OUT_FOR_DELIVERY,
                  Milestone.DELIVERED)
SHIPMENT_STATUS_LABELS = {
    ShipmentStatus.FULFILLED: N_("Shipped"),
    ShipmentStatus.IN_TRANSIT: N_("In transit"),
    ShipmentStatus.DELIVERED: N_("Delivered"),
    ShipmentStatus.RETURNED: N_("Returned to sender"),
    ShipmentStatus.EXCEPTION: N_("Delivery problem"),
}


class SignatureKind(StrEnum):
    DRAWN = "drawn"
    TYPED = "typed"


class PhotoVerdict(StrEnum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    REJECTED = "rejected"


class AuditAction(StrEnum):
    """What an event records (the ``events.action`` column)."""

    CLAIM_FILED = "claim_filed"
    REVIEW_STARTED = "review_started"
    INFO_REQUESTED = "info_requested"
    CUSTOMER_MESSAGE = "customer_message"
    CUSTOMER_REPLIED = "customer_replied"
    REOPENED_BY_CUSTOMER = "reopened_by_customer"
    STAFF_MESSAGE = "staff_message"
    INTERNAL_NOTE = "internal_note"
    APPROVED = "approved"
    APPROVAL_UNDONE = "approval_undone"
    RESHIPMENT_CREATED = "reshipment_created"
    DENIED = "denied"
    RESOLVED = "resolved"
    CLOSED = "closed"
    AUTO_CLOSED = "auto_closed"
    REOPENED = "reopened"
    REMINDER_SENT = "reminder_sent"
    PHOTO_REVIEWED = "photo_reviewed"
    ASSIGNED = "assigned"
    WINDOW_EXCEPTION = "window_exception"
    SETTINGS_CHANGED = "settings_changed"
    AUTO_APPROVAL_RULE_ADDED = "rule_added"
    AUTO_APPROVAL_RULE_ENABLED = "rule_enabled"
    AUTO_APPROVAL_RULE_DISABLED = "rule_disabled"
    USER_ADDED = "user_added"
    USER_LOCKED = "user_locked"
    USER_ACTIVATED = "user_activated"
    USER_DEACTIVATED = "user_deactivated"
    PASSWORD_CHANGED = "password_changed"
    NOTIFICATIONS_CHANGED = "notifications_changed"
    TRACKING_UPDATED = "tracking_updated"
    HOLD_PLACED = "hold_placed"
    HOLD_RELEASED = "hold_released"
    DISPUTE_RECEIVED = "dispute_received"  # Shopify reported a chargeback or its new status
    DISPUTE_HOLD_PLACED = "dispute_hold_placed"  # an open claim on a disputed order held
    DISPUTE_HOLD_RELEASED = "dispute_hold_released"  # the dispute closed, or the owner released it
    DISPUTE_FLAGGED = "dispute_flagged"  # an approved claim on a disputed order: paying twice?
    ORDER_SYNCED = "order_synced"
    WRITE_BACK_DONE = "write_back_done"
    WRITE_BACK_FAILED = "write_back_failed"
    WRITE_BACK_RETRIED = "write_back_retried"
    API_KEY_CREATED = "api_key_created"
    API_KEY_REVOKED = "api_key_revoked"
    WEBHOOK_ENDPOINT_ADDED = "webhook_endpoint_added"
    WEBHOOK_ENDPOINT_CHANGED = "webhook_endpoint_changed"
    WEBHOOK_ENDPOINT_DISABLED = "webhook_endpoint_disabled"
    MAIL_RETRIED = "mail_retried"
    CUSTOMER_ERASED = "customer_erased"
    PRIVACY_REQUEST_RECEIVED = "privacy_request_received"  # a Shopify compliance webhook
    PRIVACY_REQUEST_DONE = "privacy_request_done"
    PRIVACY_EXPORT_DOWNLOADED = "privacy_export_downloaded"
    RETENTION_APPLIED = "retention_applied"  # the daily removal (Settings → Privacy)

    @property
    def label(self) -> str:
        return self.value.replace("_", " ")


class Role(StrEnum):
    OWNER = "owner"
    AGENT = "agent"
    ANALYST = "analyst"


ROLES = tuple(Role)
# Who may do what, by role.
PERMISSIONS = {
    "work_claims": frozenset({Role.OWNER, Role.AGENT}),
    "settings": frozenset({Role.OWNER}),
    "release_dispute_hold": frozenset({Role.OWNER}),  # domain/disputes.py
    "analytics": frozenset({Role.OWNER, Role.ANALYST}),
    # giving up on money a carrier may owe (a recovery's "write off"): the owner decides
    "write_off_recoveries": frozenset({Role.OWNER}),
}


def can(role: str, permission: str) -> bool:
    return role in PERMISSIONS.get(permission, frozenset())
