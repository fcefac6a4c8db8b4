"""What each carrier allows when the shop claims its money back: the filing window (counted from
the ship date or the delivery date), the liability limit when no higher value was declared, and
the documents the carrier asks for. One rule per carrier, each with the page it was read from.

The sources were looked up on 2026-12-07. Where a number could only be found on a third-party page
(not the carrier's own), the rule says so (``confirmed=False``): the Recoveries page shows
"unconfirmed" next to it, and the owner should check it against their own contract (a negotiated
contract, a declared value or bought insurance changes the numbers).

Days are calendar days counted on the store's local calendar: day 0 is the local day of the
event, so a 60-day window from a shipment made on 1 March ends on 30 April.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from .vocabulary import IssueType
from .windows import local_date

SHIP, DELIVERY = "ship", "delivery"


@dataclass(frozen=True)
class Window:
    """``days`` (or ``months``) after the ship date or the delivery date. ``DELIVERY`` for a
    parcel never delivered counts from the scheduled (expected) delivery, else from the ship
    date (the earlier, safer day)."""
    days: int = 0
    months: int = 0
    counted_from: str = SHIP
    source: str = ""
    confirmed: bool = True

    def describe(self) -> str:
        span = f"{self.months} months" if self.months else f"{self.days} days"
        return f"{span} from the {'ship' if self.counted_from == SHIP else 'delivery'} date"


@dataclass(frozen=True)
class CarrierRule:
    key: str
    name: str
    damage: Window  # damaged, missing contents
    loss: Window  # lost, stolen, delivered but not received
    liability_minor: int | None  # None: not known without more facts (weight, service)
    liability_currency: str
    liability_source: str
    liability_confirmed: bool
    documents: tuple[str, ...]
    documents_source: str
    note: str = ""


_USPS_CLAIMS = "https://www.usps.com/help/claims.htm"
_USPS_MIRROR = "http://uspstrackingpoint.com/usps-domestic-claims/"
_UPS_TERMS = "https://icclogistics.com/?p=2738"  # quotes the UPS Service Guide (2019)
_UPS_VALUE = "http://www.pressroom.ups.com/Fact+Sheets/UPS+Declared+Value+Q&A"
_FEDEX = "https://support.shipopti.com/portal/en/kb/articles/parcel-claim-faqs"
_DHL = "https://mydhl.express.dhl/us/en/help-and-support/contact-us/claims/claims-faqs.html"
_DHL_TERMS = "https://mydhl.express.dhl/de/en/shipment/terms-and-conditions.html"
_CANADA_POST = ("https://www.canadapost.ca/web/en/kb/details.page?article=what_to_do_if_your_p"
                "&cattype=kb&cat=receiving&subcat=maildelivery")
_CANADA_POST_COVER = ("https://canadanewslibre.com/tourist-assistance/"
                      "does-canada-post-insurance-cover-breakage.html")
_ROYAL_MAIL = "https://contend.legal/consumer/post-and-mail/claiming-compensation-from-royal-mail/" \
              "royal-mail-hr-email-guide-to-compensation-claims"
_ROYAL_MAIL_VALUE = "https://www.uslegalforms.com/forms-kit/tx-00781bg/statement-claim-form-online-for-royal-mail"

PROOF_OF_VALUE = "Proof of value (commercial invoice)"
PHOTOS = "Photos of the damage and the packaging"
TRACKING = "Tracking number and ship date"

RULES: dict[str, CarrierRule] = {r.key: r for r in [
    # USPS: "Damaged or missing contents: … no later than 60 days from the date of mailing";
    # lost insured mail and Priority Mail: 15 to 60 days from mailing.
    CarrierRule(
        "usps", "USPS",
        damage=Window(days=60, counted_from=SHIP, source=_USPS_MIRROR, confirmed=False),
        loss=Window(days=60, counted_from=SHIP, source=_USPS_MIRROR, confirmed=False),
        # "$100 included insurance when Priority Mail postage is purchased" (other services:
        # only what insurance was bought)
        liability_minor=10_000, liability_currency="USD",
        liability_source="https://chilltracking.com/tag/uship/usps-parcel-insurance-claim",
        liability_confirmed=False,
        documents=(TRACKING, PROOF_OF_VALUE, "Evidence of insurance (the label record)", PHOTOS),
        documents_source=_USPS_MIRROR,
        note=f"USPS's own page ({_USPS_CLAIMS}) could not be read here: the windows come from a "
             "copy of it. A lost parcel can only be claimed from day 15 (Priority Mail Express: "
             "day 7)."),
    # UPS Service Guide: notice "within 60 days after delivery of the package, or in the case of
    # non-delivery within 60 days after the scheduled delivery date".
    CarrierRule(
        "ups", "UPS",
        damage=Window(days=60, counted_from=DELIVERY, source=_UPS_TERMS, confirmed=False),
        loss=Window(days=60, counted_from=DELIVERY, source=_UPS_TERMS, confirmed=False),
        # "If no value is declared, UPS's maximum liability … is US$100"
        liability_minor=10_000, liability_currency="USD", liability_source=_UPS_VALUE,
        liability_confirmed=True,
        documents=(TRACKING, PROOF_OF_VALUE, PHOTOS),
        documents_source="https://support.shipopti.com/portal/en/kb/articles/parcel-clai"),
    # FedEx (Express and Ground, US): damage within 60 calendar days of delivery; non-delivery
    # within nine months after the package was tendered.
    CarrierRule(
        "fedex", "FedEx",
        damage=Window(days=60, counted_from=DELIVERY, source=_FEDEX, confirmed=False),
        loss=Window(months=9, counted_from=SHIP, source=_FEDEX, confirmed=False),
        liability_minor=10_000, liability_currency="USD", liability_source=_FEDEX,
        liability_confirmed=False,
        documents=(TRACKING, PROOF_OF_VALUE, PHOTOS, "The packaging kept for inspection"),
        documents_source=_FEDEX,
        note="International FedEx shipments: damage within 21 days of delivery (not modelled)."),
    # DHL Express: "All claims must be submitted in writing to DHL within thirty (30) days of the
    # date that DHL accepted the Shipment."
    CarrierRule(
        "dhl_express", "DHL Express",
        damage=Window(days=30, counted_from=SHIP, source=_DHL),
        loss=Window(days=30, counted_from=SHIP, source=_DHL),
        # liability is per kilogram under the conventions: unknown without the parcel's weight
        liability_minor=None, liability_currency="USD", liability_source=_DHL_TERMS,
        liability_confirmed=False,
        documents=("DHL claim form", TRACKING, PROOF_OF_VALUE, PHOTOS),
        documents_source="https://studylib.net/doc/18363838/filing-a-cargo-claim--instructions",
        note="DHL's liability depends on the weight (per kilogram, Montreal/Warsaw conventions): "
             "the app can't compute it, so the amount is not capped."),
    # Canada Post: "You mailed your item within the last 90 days."
    CarrierRule(
        "canada_post", "Canada Post",
        damage=Window(days=90, counted_from=SHIP, source=_CANADA_POST),
        loss=Window(days=90, counted_from=SHIP, source=_CANADA_POST),
        # "Includes Liability Coverage against loss or damage of up to $100 except for Regular Parcel"
        liability_minor=10_000, liability_currency="CAD", liability_source=_CANADA_POST_COVER,
        liability_confirmed=False,
        documents=(TRACKING, "Receiver's name and address", PROOF_OF_VALUE, PHOTOS),
        documents_source=_CANADA_POST,
        note="Only the sender can claim. U.S. and international parcels: 6 months (not modelled)."),
    # Royal Mail: "claims must be made within 80 days of posting for most services"
    CarrierRule(
        "royal_mail", "Royal Mail",
        damage=Window(days=80, counted_from=SHIP, source=_ROYAL_MAIL, confirmed=False),
        loss=Window(days=80, counted_from=SHIP, source=_ROYAL_MAIL, confirmed=False),
        # 1st/2nd class: the lower of market value and £20 (£50 Signed For); Special Delivery more
        liability_minor=2_000, liability_currency="GBP", liability_source=_ROYAL_MAIL_VALUE,
        liability_confirmed=False,
        documents=("Proof of posting", PROOF_OF_VALUE, PHOTOS),
        documents_source=_ROYAL_MAIL,
        note="A loss can be claimed only once the item is 25 working days past its due date. "
             "Signed For: £50; Special Delivery: £750 or more."),
]}

_ALIASES = {
    "usps": "usps", "united states postal service": "usps", "us postal service": "usps",
    "ups": "ups", "united parcel service": "ups",
    "fedex": "fedex", "fedex ground": "fedex", "fedex express": "fedex", "federal express": "fedex",
    "dhl express": "dhl_express", "dhl": "dhl_express", "dhlexpress": "dhl_express",
    "canada post": "canada_post", "canadapost": "canada_post", "postes canada": "canada_post",
    "royal mail": "royal_mail", "royalmail": "royal_mail",
}
RECOVERY_CARRIERS = tuple(RULES)  # the carriers the owner can choose in Settings → Recoveries
OTHER = "other"


def carrier_key(carrier: str | None) -> str:
    """The rule's key for a carrier name as the shop wrote it ("FedEx Ground", "Royal Mail"),
    or ``OTHER``."""
    name = re.sub(r"[\s_\-]+", " ", (carrier or "").strip().lower())
    if name in _ALIASES:
        return _ALIASES[name]
    for alias, key in _ALIASES.items():
        if name.startswith(alias + " "):
            return key
    return OTHER


def rule_for(carrier: str | None) -> CarrierRule | None:
    return RULES.get(carrier_key(carrier))


def window_for(rule: CarrierRule, issue_type: str) -> Window:
    return rule.damage if issue_type == IssueType.DAMAGED else rule.loss


def _add_months(d: date, months: int) -> date:
    y, m = divmod(d.month - 1 + months, 12)
    year, month = d.year + y, m + 1
    for day in (d.day, 30, 29, 28):
        try:
            return date(year, month, day)
        except ValueError:
            continue
    raise ValueError(d)  # pragma: no cover - 28 always exists


def filing_deadline(rule: CarrierRule, issue_type: str, *, shipped_at: datetime,
                    delivered_at: datetime | None = None, expected_at: datetime | None = None,
                    tz_name: str | None = "UTC") -> date:
    """The last day (the store's calendar) the carrier takes the claim."""
    w = window_for(rule, issue_type)
    start = shipped_at
    if w.counted_from == DELIVERY:
        start = delivered_at or expected_at or shipped_at
    day0 = local_date(start, tz_name)
    return _add_months(day0, w.months) if w.months else day0 + timedelta(days=w.days)


def liability_in(rule: CarrierRule | None, currency: str) -> int | None:
    """The carrier's liability in the claim's currency, or None (unknown, or in another
    currency: never converted)."""
    if rule is None or rule.liability_minor is None or rule.liability_currency != currency:
        return None
    return rule.liability_minor
