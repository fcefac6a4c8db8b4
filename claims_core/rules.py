"""The shop's claim rules, one named function each.

Every function here either returns its answer or raises a :class:`ClaimRuleError` whose ``message``
a customer can read as it is. Nothing here touches the database: the services gather the facts and
ask these functions.
"""
from __future__ import annotations

import hmac
import re
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Iterable, Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

# --- errors -------------------------------------------------------------------------------------


class ClaimRuleError(Exception):
    """A rule said no. ``message`` is written for the customer (or staff member) who asked."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class OrderNotFound(ClaimRuleError):
    pass


class NotProtected(ClaimRuleError):
    pass


class WindowClosed(ClaimRuleError):
    pass


class NotShipped(ClaimRuleError):
    pass


class OrderCancelled(ClaimRuleError):
    pass


class IssueNotAvailable(ClaimRuleError):
    pass


class QuantityError(ClaimRuleError):
    pass


class AlreadyClaimed(ClaimRuleError):
    pass


class EvidenceRequired(ClaimRuleError):
    pass


class ResolutionUnavailable(ClaimRuleError):
    pass


class SignatureInvalid(ClaimRuleError):
    pass


class InvalidInput(ClaimRuleError):
    pass


LOOKUP_FAILED = (
    "We couldn't find an order with those details. Check the order number (or tracking number) "
    "and the email address you used at checkout."
)

# --- issue types --------------------------------------------------------------------------------

SHIPPING = "shipping"
ITEM = "item"


@dataclass(frozen=True)
class IssueType:
    code: str
    category: str
    label: str
    help: str


ISSUE_TYPES: dict[str, IssueType] = {
    t.code: t
    for t in [
        IssueType("delayed", SHIPPING, "Delayed", "The package is late and still on its way."),
        IssueType("lost", SHIPPING, "Lost / tracking not moving",
                  "Tracking hasn't moved for days."),
        IssueType("stolen", SHIPPING, "Stolen", "It was delivered and then taken."),
        IssueType("not_received", SHIPPING, "Delivered but not received",
                  "Tracking says delivered, but you don't have it."),
        IssueType("returned_to_sender", SHIPPING, "Returned to sender",
                  "The carrier sent the package back to the store."),
        IssueType("damaged", ITEM, "Damaged", "An item arrived broken or damaged."),
        IssueType("defective", ITEM, "Defective", "An item doesn't work as it should."),
        IssueType("wrong_item", ITEM, "Wrong item", "You received something you didn't order."),
        IssueType("missing_item", ITEM, "Missing item", "An item was missing from the package."),
    ]
}

PHOTO_REQUIRED_ISSUES = frozenset({"damaged", "defective", "wrong_item"})
ITEM_ISSUES = tuple(c for c, t in ISSUE_TYPES.items() if t.category == ITEM)

# --- normalising what people type ---------------------------------------------------------------


def strip_controls(text: str | None) -> str:
    """Drop control characters (NUL and friends) from one-line input: no database stores NUL."""
    return "".join(ch for ch in (text or "") if unicodedata.category(ch) != "Cc")


def normalize_order_number(raw: str | None) -> str:
    """``#1001``, ``1001``, `` 1001 `` and ``＃1001`` all become ``1001``."""
    s = unicodedata.normalize("NFKC", strip_controls(raw)).strip()
    s = s.lstrip("#").strip()
    s = re.sub(r"\s+", "", s)
    return s.upper()


def normalize_email(raw: str | None) -> str:
    """Emails compare case-insensitively, ignoring stray spaces."""
    return unicodedata.normalize("NFKC", strip_controls(raw)).strip().lower()


def normalize_tracking(raw: str | None) -> str:
    return re.sub(r"[\s\-]+", "", unicodedata.normalize("NFKC", strip_controls(raw))).upper()


def emails_match(given: str, on_file: str) -> bool:
    """Constant-time comparison of two emails after normalising both."""
    return hmac.compare_digest(
        normalize_email(given).encode("utf-8"), normalize_email(on_file).encode("utf-8")
    )


# --- time ---------------------------------------------------------------------------------------


def store_zone(tz_name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(tz_name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def local_date(moment: datetime, tz_name: str | None) -> date:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(store_zone(tz_name)).date()


def format_date(d: date) -> str:
    return f"{d:%B} {d.day}, {d.year}"


# --- order-level rules --------------------------------------------------------------------------


def check_order_not_cancelled(cancelled_at: datetime | None) -> None:
    if cancelled_at is not None:
        raise OrderCancelled(
            "This order was cancelled, so there is nothing to claim. If you were charged, "
            "please contact the store."
        )


def check_protected(protection_purchased_at: datetime | None) -> None:
    """Only orders with shipping protection bought at checkout can be claimed."""
    if protection_purchased_at is None:
        raise NotProtected(
            "This order doesn't include shipping protection, so it can't be claimed here. "
            "Please contact the store directly."
        )


def check_protection_covers_shipment(
    protection_purchased_at: datetime | None, shipped_at: datetime
) -> None:
    """Protection bought after the shipment left doesn't cover that shipment."""
    check_protected(protection_purchased_at)
    if protection_purchased_at > shipped_at:
        raise NotProtected(
            "Shipping protection was added to this order after this shipment left, so it doesn't "
            "cover it. Please contact the store directly."
        )


def check_has_shipments(shipment_count: int) -> None:
    if shipment_count == 0:
        raise NotShipped(
            "This order hasn't shipped yet. You can file a claim once it's on its way; "
            "for changes before then, please contact the store."
        )


# --- filing window ------------------------------------------------------------------------------


def filing_deadline(
    shipped_at: datetime,
    window_days: int,
    tz_name: str | None = "UTC",
    override: date | None = None,
) -> date:
    """Last day (store's calendar) a claim can be filed for a shipment.

    Day 0 is the day the shipment was fulfilled; the default window of 45 days means day 45 is the
    last day. A staff exception for the order can only move the deadline later.
    """
    deadline = local_date(shipped_at, tz_name) + timedelta(days=window_days)
    if override is not None and override > deadline:
        deadline = override
    return deadline


def check_filing_window(deadline: date, now: datetime, tz_name: str | None = "UTC") -> None:
    if local_date(now, tz_name) > deadline:
        raise WindowClosed(
            f"The window to file a claim for this shipment closed on {format_date(deadline)}. "
            "Please contact the store directly."
        )


# --- which issues a shipment can have ----------------------------------------------------------

SHIPMENT_STATUSES = ("fulfilled", "in_transit", "delivered", "returned", "exception")


def days_without_scan(
    shipped_at: datetime, last_scan_at: datetime | None, now: datetime
) -> int:
    base = last_scan_at or shipped_at
    return max(0, (now - base).days)


def available_issue_types(
    status: str,
    shipped_at: datetime,
    last_scan_at: datetime | None,
    now: datetime,
    lost_wait_days: int,
) -> list[str]:
    """The scenarios a shipment in this state can be claimed for, in display order.

    - delivered: stolen, delivered-but-not-received, and every item issue;
    - in transit / carrier exception: delayed; lost once tracking hasn't moved for the wait period;
    - returned: returned to sender;
    - fulfilled with no tracking data: delayed, lost after the wait, and item issues (the carrier
      can't tell us whether it arrived, the customer can).
    """
    stalled = days_without_scan(shipped_at, last_scan_at, now) >= lost_wait_days
    out: list[str] = []
    if status == "delivered":
        out += ["stolen", "not_received", *ITEM_ISSUES]
    elif status in ("in_transit", "exception"):
        out += ["delayed"] + (["lost"] if stalled else [])
    elif status == "returned":
        out += ["returned_to_sender"]
    elif status == "fulfilled":
        out += ["delayed"] + (["lost"] if stalled else []) + list(ITEM_ISSUES)
    return out


def explain_issue_unavailable(issue_type: str, status: str, lost_wait_days: int) -> str:
    label = ISSUE_TYPES[issue_type].label if issue_type in ISSUE_TYPES else issue_type
    if issue_type == "lost" and status in ("in_transit", "exception", "fulfilled"):
        return (
            f"“{label}” can be claimed once tracking hasn't moved for {lost_wait_days} days. "
            "If it's just late, choose “Delayed”."
        )
    if issue_type in ("stolen", "not_received") or issue_type in ITEM_ISSUES:
        return f"“{label}” can only be claimed once the carrier shows the package as delivered."
    return f"“{label}” doesn't apply to this shipment as the carrier reports it."


def check_issue_available(issue_type: str, available: Iterable[str], status: str,
                          lost_wait_days: int) -> None:
    if issue_type not in ISSUE_TYPES:
        raise InvalidInput("Please choose what went wrong from the list.")
    if issue_type not in set(available):
        raise IssueNotAvailable(explain_issue_unavailable(issue_type, status, lost_wait_days))


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


def check_item_quantities(
    requested: Mapping[int, int], remaining: Mapping[int, int], names: Mapping[int, str]
) -> dict[int, int]:
    """Validate ``{shipment_item_id: quantity}`` against what each line still has claimable.

    Lines asked for with quantity 0 are dropped; at least one item must remain.
    """
    chosen: dict[int, int] = {}
    for sid, qty in requested.items():
        if sid not in remaining:
            raise QuantityError("One of the chosen items isn't part of this shipment.")
        q = _whole_number(qty)
        if q is None:
            raise QuantityError(f"Enter a whole number for “{names.get(sid, 'the item')}”.")
        if q < 0:
            raise QuantityError(f"The quantity for “{names.get(sid, 'the item')}” can't be negative.")
        if q == 0:
            continue
        left = remaining[sid]
        if left == 0:
            raise AlreadyClaimed(
                f"“{names.get(sid, 'This item')}” is already covered by another claim."
            )
        if q > left:
            raise QuantityError(
                f"You can claim at most {left} of “{names.get(sid, 'this item')}”."
            )
        chosen[sid] = q
    if not chosen:
        raise QuantityError("Choose at least one item and how many were affected.")
    return chosen


def photos_required(issue_type: str) -> bool:
    return issue_type in PHOTO_REQUIRED_ISSUES


def check_photo_count(issue_type: str, count: int, max_photos: int) -> None:
    if count > max_photos:
        raise EvidenceRequired(f"You can add at most {max_photos} photos.")
    if photos_required(issue_type) and count == 0:
        label = ISSUE_TYPES[issue_type].label.lower()
        raise EvidenceRequired(f"Please add at least one photo showing the {label} item.")


# --- comments -----------------------------------------------------------------------------------

MAX_COMMENT_CHARS = 4000


def clean_comment(text: str | None, field: str = "Your comments") -> str:
    """Trim a free-text field and enforce the visible limit. The text itself is kept verbatim
    (it's always displayed as plain text)."""
    s = (text or "").replace("\r\n", "\n").strip()
    s = "".join(ch for ch in s if ch in "\n\t" or unicodedata.category(ch) != "Cc")
    if len(s) > MAX_COMMENT_CHARS:
        raise InvalidInput(
            f"{field} can be at most {MAX_COMMENT_CHARS:,} characters; this has {len(s):,}. "
            "Please shorten it."
        )
    return s


def required_text(text: str | None, field: str, if_empty: str) -> str:
    """Like ``clean_comment``, and the text can't be left empty (``if_empty`` says what to write)."""
    s = clean_comment(text, field)
    if not s:
        raise InvalidInput(if_empty)
    return s


# --- resolutions --------------------------------------------------------------------------------

RESOLUTION_LABELS = {
    "refund": "Refund",
    "reshipment": "Send a replacement",
    "store_credit": "Store credit",
}


@dataclass(frozen=True)
class ResolutionOption:
    kind: str
    available: bool
    amount_cents: int
    bonus_pct: int = 0
    reason: str = ""

    @property
    def label(self) -> str:
        return RESOLUTION_LABELS[self.kind]

    @property
    def credit_cents(self) -> int:
        """Store credit including the bonus (rounded half up to the cent)."""
        return self.amount_cents + (self.amount_cents * self.bonus_pct + 50) // 100


def stock_shortfall(needed: Mapping[str, int], on_hand: Mapping[str, int]) -> list[str]:
    """SKUs whose stock can't cover what a reshipment needs."""
    return sorted(sku for sku, qty in needed.items() if on_hand.get(sku, 0) < qty)


def resolution_options(
    *,
    offer_refund: bool,
    offer_reshipment: bool,
    offer_store_credit: bool,
    bonus_pct: int,
    amount_cents: int,
    needed_stock: Mapping[str, int],
    on_hand: Mapping[str, int],
) -> list[ResolutionOption]:
    """The resolutions this store offers, in order; reshipment is unavailable, with the reason,
    when stock can't cover the items."""
    out: list[ResolutionOption] = []
    if offer_reshipment:
        short = stock_shortfall(needed_stock, on_hand)
        out.append(ResolutionOption(
            "reshipment", not short, amount_cents,
            reason="" if not short else "Not available: the store doesn't have enough in stock "
                                        "to send replacements right now.",
        ))
    if offer_store_credit:
        out.append(ResolutionOption("store_credit", True, amount_cents, bonus_pct))
    if offer_refund:
        out.append(ResolutionOption("refund", True, amount_cents))
    return out


def check_resolution_choice(kind: str, options: Iterable[ResolutionOption]) -> ResolutionOption:
    for opt in options:
        if opt.kind == kind:
            if not opt.available:
                raise ResolutionUnavailable(opt.reason)
            return opt
    raise ResolutionUnavailable("Please choose one of the resolutions offered.")


# --- signature ----------------------------------------------------------------------------------

ACCURACY_STATEMENT = "I confirm the information in this claim is accurate."


def drawn_signature_required(order_total_cents: int, threshold_cents: int) -> bool:
    return threshold_cents > 0 and order_total_cents > threshold_cents


def check_signature(
    *,
    kind: str,
    typed_name: str = "",
    drawn_ink_pixels: int = 0,
    accurate_confirmed: bool,
    order_total_cents: int,
    threshold_cents: int,
    min_ink_pixels: int = 40,
    filed_by_staff: bool = False,
) -> None:
    """A claim needs a real signature and the accuracy tick.

    ``drawn_ink_pixels`` is how much of the canvas carries ink (see ``photos.signature_ink``): a
    blank canvas, or a stray tap, is not a signature.
    """
    if not accurate_confirmed:
        raise SignatureInvalid("Please tick the box to confirm the information is accurate.")
    if kind == "typed":
        # Staff filing for a customer on the phone can't collect a drawing; they sign with the
        # customer's name and the claim records who filed it.
        if drawn_signature_required(order_total_cents, threshold_cents) and not filed_by_staff:
            raise SignatureInvalid(
                "For an order of this value, please draw your signature; a typed name isn't enough."
            )
        name = strip_controls(typed_name).strip()
        if len(name) < 2 or not any(ch.isalpha() for ch in name):
            raise SignatureInvalid("Please type your full name to sign.")
        if len(name) > 200:
            raise SignatureInvalid("Your name can be at most 200 characters.")
        return
    if kind == "drawn":
        if drawn_ink_pixels < min_ink_pixels:
            raise SignatureInvalid("The signature box is empty. Please sign with your finger or mouse.")
        return
    raise SignatureInvalid("Please sign the claim.")


# --- decisions ----------------------------------------------------------------------------------


def check_resolution_amounts(resolutions: Iterable[tuple[str, int]], claimed_cents: int) -> None:
    """Staff can grant at most what the customer paid for the claimed items, in total.

    A reshipment counts as the full value of the items; refund and store credit (before any
    bonus) count as their amounts. Each refund or credit must be a positive amount.
    """
    total = 0
    kinds = []
    for kind, amount in resolutions:
        if kind not in RESOLUTION_LABELS:
            raise InvalidInput("Unknown resolution.")
        if kind in kinds:
            raise InvalidInput(f"{RESOLUTION_LABELS[kind]} was chosen twice; combine the amounts.")
        kinds.append(kind)
        if kind == "reshipment":
            total += claimed_cents
            continue
        if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
            raise InvalidInput(f"Enter an amount above zero for the {RESOLUTION_LABELS[kind].lower()}.")
        total += amount
    if total > claimed_cents:
        raise InvalidInput(
            f"That adds up to {format_cents(total)}, more than the {format_cents(claimed_cents)} "
            "paid for the claimed items."
        )


def format_cents(cents: int, currency: str = "USD") -> str:
    symbol = {"USD": "$", "CAD": "$", "AUD": "$", "EUR": "€", "GBP": "£", "CHF": "CHF "}.get(
        currency, currency + " ")
    sign = "-" if cents < 0 else ""
    cents = abs(cents)
    return f"{sign}{symbol}{cents // 100:,}.{cents % 100:02d}"


def decimal_amount(cents: int):
    """Integer cents as an exact ``Decimal`` amount (1999 -> Decimal("19.99")), for tables and
    exports."""
    from decimal import Decimal

    return Decimal(int(cents)).scaleb(-2)


def cents_from_amount(amount) -> int:
    """A money amount typed in a form (e.g. 12.5 or "12.50") as integer cents, exactly."""
    from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

    if amount is None or isinstance(amount, bool):
        raise InvalidInput("Enter an amount.")
    try:
        value = Decimal(str(amount).strip().lstrip("$"))
    except InvalidOperation:
        raise InvalidInput(f"“{amount}” is not an amount.")
    if not value.is_finite() or value < 0:
        raise InvalidInput("Enter an amount of zero or more.")
    return int((value * 100).quantize(Decimal("1"), rounding=ROUND_HALF_UP))
