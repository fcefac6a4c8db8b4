"""Refusals. Every refusal carries a stable :class:`ErrorCode` plus words for the person who asked.

Pages, the CLI and tests match the **code**, never the wording (the wording will be translated).
"""
from __future__ import annotations

from enum import StrEnum

from .messages import Msg, N_


class ErrorCode(StrEnum):
    # finding things
    ORDER_NOT_FOUND = "order_not_found"
    CLAIM_NOT_FOUND = "claim_not_found"
    NOT_FOUND = "not_found"
    PHOTO_NOT_FOUND = "photo_not_found"  # a photo that isn't part of this claim (or no longer exists)
    CUSTOMER_NOT_FOUND = "customer_not_found"  # no order or claim under that email / customer id
    # a customer with a claim still open (submitted, in review, waiting for them): decide or close
    # it before erasing them
    ERASURE_OPEN_CLAIM = "erasure_open_claim"
    TOO_MANY_ATTEMPTS = "too_many_attempts"
    # eligibility of an order or shipment
    ORDER_CANCELLED = "order_cancelled"
    NOT_PROTECTED = "not_protected"
    PROTECTION_AFTER_SHIPMENT = "protection_after_shipment"
    NOT_SHIPPED = "not_shipped"
    WINDOW_CLOSED = "window_closed"
    NOTHING_LEFT_TO_CLAIM = "nothing_left_to_claim"
    TRACKING_NOT_READY = "tracking_not_ready"
    ISSUE_NOT_AVAILABLE = "issue_not_available"
    ISSUE_TYPE_UNKNOWN = "issue_type_unknown"  # not one of the scenarios on the list
    SHIPMENT_NOT_IN_ORDER = "shipment_not_in_order"
    # what the claim asks for
    QUANTITY_INVALID = "quantity_invalid"
    ALREADY_CLAIMED = "already_claimed"
    PHOTOS_REQUIRED = "photos_required"
    TOO_MANY_PHOTOS = "too_many_photos"
    PHOTO_REJECTED = "photo_rejected"
    RESOLUTION_UNAVAILABLE = "resolution_unavailable"
    SIGNATURE_INVALID = "signature_invalid"
    PHOTOS_NOT_REQUESTED = "photos_not_requested"  # photos come with the reply the shop asked for
    # decisions and money
    AMOUNT_INVALID = "amount_invalid"
    AMOUNT_ABOVE_PAID = "amount_above_paid"
    BONUS_ABOVE_CAP = "bonus_above_cap"
    RESOLUTION_REQUIRED = "resolution_required"  # approve with at least one resolution
    RESOLUTION_INVALID = "resolution_invalid"  # an unknown resolution, or one chosen twice
    DENIAL_REASON_REQUIRED = "denial_reason_required"
    PHOTO_VERDICT_INVALID = "photo_verdict_invalid"  # a photo is accepted or rejected
    ASSIGNEE_INVALID = "assignee_invalid"  # claims go to owners and agents
    DEADLINE_IN_PAST = "deadline_in_past"  # a window exception ends today or later
    OUT_OF_STOCK = "out_of_stock"
    ILLEGAL_TRANSITION = "illegal_transition"
    CLAIM_ON_HOLD = "claim_on_hold"
    NOT_ON_HOLD = "not_on_hold"
    ORDER_DISPUTED = "order_disputed"  # a chargeback is open on the order: domain/disputes.py
    ORDER_REFUNDED = "order_refunded"
    STALE_CLAIM = "stale_claim"
    # accounts
    AUTH_FAILED = "auth_failed"
    ACCOUNT_RULE = "account_rule"
    API_KEY_SCOPE_INVALID = "api_key_scope_invalid"
    STAFF_EMAIL_MISSING = "staff_email_missing"  # the staff member has no email to send to
    # the store's setup
    SETTING_UNKNOWN = "setting_unknown"
    SETTING_INVALID = "setting_invalid"  # a store setting out of its range or not well-formed
    LOGO_REJECTED = "logo_rejected"
    RULE_INVALID = "rule_invalid"  # an auto-approve rule that can't work as written
    RULE_NAME_TAKEN = "rule_name_taken"
    WEBHOOK_URL_INVALID = "webhook_url_invalid"  # not a full https:// address without credentials
    WEBHOOK_URL_NOT_PUBLIC = "webhook_url_not_public"  # resolves to a private address
    WEBHOOK_EVENTS_REQUIRED = "webhook_events_required"
    SHOP_CONNECTION_INVALID = "shop_connection_invalid"  # the shop domain or the access token
    PRICING_INPUT_INVALID = "pricing_input_invalid"  # the pricing advisor's assumptions
    RECOVERY_OUTCOME_INVALID = "recovery_outcome_invalid"  # a carrier's answer is one of the list
    CURSOR_INVALID = "cursor_invalid"  # a page cursor this API didn't give out
    # recoveries (carrier and insurer claims: domain/recoveries.py)
    RECOVERY_NOT_FOUND = "recovery_not_found"
    RECOVERY_ILLEGAL_STEP = "recovery_illegal_step"  # not from this state
    RECOVERY_AMOUNT_FIXED = "recovery_amount_fixed"  # the insured value, once filed
    INSURED_VALUE_INVALID = "insured_value_invalid"  # above zero, or empty
    # filing through EasyPost needs EASYPOST_API_KEY, the owner's consent for the carrier and a
    # tracking number
    RECOVERY_FILING_UNAVAILABLE = "recovery_filing_unavailable"
    # input that isn't right and has no rule of its own (a query parameter out of range): the
    # generic code; every refusal a rule makes carries the rule's own code (tests/architecture/test_one_home.py)
    INVALID_INPUT = "invalid_input"
    TEXT_TOO_LONG = "text_too_long"
    TEXT_REQUIRED = "text_required"
    FORM_EXPIRED = "form_expired"
    # the database itself (the API's 503s; pages show words for them: adapters/db_state.py)
    DATABASE_UNAVAILABLE = "database_unavailable"
    DATABASE_NOT_INITIALISED = "database_not_initialised"
    DATABASE_READ_ONLY = "database_read_only"
    INTERNAL_ERROR = "internal_error"


class ClaimRuleError(Exception):
    """A rule said no. ``code`` says which rule, for code that reacts to it; ``msg`` is what to
    tell the person who asked, as a catalog message (``N_("…")`` or ``Msg.of(N_("… {x}"), x=…)``)
    that a customer page shows in the customer's language (``t(e.msg)``); ``message`` is its
    English text (staff pages, logs, the API)."""

    code: ErrorCode = ErrorCode.INVALID_INPUT

    def __init__(self, message: "str | Msg", code: ErrorCode | None = None):
        self.msg = message if isinstance(message, Msg) else Msg(message)
        self.message = str(self.msg)
        super().__init__(self.message)
        if code is not None:
            self.code = code


def _kind(name: str, default: ErrorCode) -> type[ClaimRuleError]:
    return type(name, (ClaimRuleError,), {"code": default, "__module__": __name__})


OrderNotFound = _kind("OrderNotFound", ErrorCode.ORDER_NOT_FOUND)
ClaimNotFound = _kind("ClaimNotFound", ErrorCode.CLAIM_NOT_FOUND)
NotProtected = _kind("NotProtected", ErrorCode.NOT_PROTECTED)
WindowClosed = _kind("WindowClosed", ErrorCode.WINDOW_CLOSED)
NotShipped = _kind("NotShipped", ErrorCode.NOT_SHIPPED)
OrderCancelled = _kind("OrderCancelled", ErrorCode.ORDER_CANCELLED)
IssueNotAvailable = _kind("IssueNotAvailable", ErrorCode.ISSUE_NOT_AVAILABLE)
QuantityError = _kind("QuantityError", ErrorCode.QUANTITY_INVALID)
AlreadyClaimed = _kind("AlreadyClaimed", ErrorCode.ALREADY_CLAIMED)
EvidenceRequired = _kind("EvidenceRequired", ErrorCode.PHOTOS_REQUIRED)
ResolutionUnavailable = _kind("ResolutionUnavailable", ErrorCode.RESOLUTION_UNAVAILABLE)
SignatureInvalid = _kind("SignatureInvalid", ErrorCode.SIGNATURE_INVALID)
InvalidInput = _kind("InvalidInput", ErrorCode.INVALID_INPUT)
TooManyAttempts = _kind("TooManyAttempts", ErrorCode.TOO_MANY_ATTEMPTS)
AuthError = _kind("AuthError", ErrorCode.AUTH_FAILED)
PhotoNotFound = _kind("PhotoNotFound", ErrorCode.PHOTO_NOT_FOUND)


class StaleClaim(ClaimRuleError):
    code = ErrorCode.STALE_CLAIM

    def __init__(self):
        super().__init__(N_(
            "Someone else changed this claim while you were looking at it. "
            "It has been reloaded: check its new state before acting."
        ))


class PhotosRejected(ClaimRuleError):
    """One or more files weren't usable photos; ``errors`` holds one (file name, reason) each."""

    code = ErrorCode.PHOTO_REJECTED

    def __init__(self, errors: list):
        self.errors = errors
        super().__init__(" ".join(e.message for e in errors))


PHOTO_NOT_IN_CLAIM = N_("That photo isn't part of this claim.")
CHOOSE_A_SHIPMENT = N_("Please choose one of this order's shipments.")

LOOKUP_FAILED = N_(
    "We couldn't find an order with those details. Check the order number (or tracking number) "
    "and the email address you used at checkout."
)
