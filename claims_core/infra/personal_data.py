"""Where personal data lives, written down once.

Every text, bytes or JSON column of every table in ``models.py`` is classified here: either in
``PERSONAL`` (what it holds about a person and what erasing a customer does to it) or in
``NOT_PERSONAL`` (with the reason). ``tests/services/test_customer_data.py`` fails when a column is added
without being classified. Export and erasure (``services/customer_data.py``) walk this map; the
README's "Privacy" section is its plain-language summary.

The event log holds no personal data: free text that belongs with an event (a staff note, a
reason) lives in ``event_notes`` beside it (migration 0022 moved what older events held), and an
event points at rows that can be redacted. Events are never changed.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache


class Kind(StrEnum):
    NAME = "name"
    EMAIL = "email"
    PHONE = "phone"
    ADDRESS = "address"
    IP = "ip_address"
    FREE_TEXT = "free_text"  # written by the customer
    PHOTO = "photo"  # the photo, its thumbnail, its hashes
    SIGNATURE = "signature"  # drawn PNG or typed name
    PAYLOAD = "payload"  # a stored copy (webhook body, email, API answer, draft) naming the customer
    STAFF_TEXT = "staff_text"  # written by staff about a claim: may quote the customer
    STAFF = "staff"  # a staff member's own data (not a customer's: not erased with one)


class Erase(StrEnum):
    """What erasing a customer writes in the column."""
    MARKER = "marker"  # the neutral marker "[erased]"
    EMPTY = "empty"  # an empty string
    NULL = "null"
    PLACEHOLDER = "placeholder"  # the fixed placeholder image
    HASH = "hash"  # emptied, unless the store keeps perceptual hashes for fraud checks
    SCRUB = "scrub"  # the customer's name, email, phone and street are cut out of the text
    REDACT = "redact"  # the whole stored copy replaced by a marker document
    DELETE = "delete"  # the row is deleted
    KEEP = "keep"  # not the customer's (staff data): left alone
    BY_OWNER = "by_owner"  # cleared by the module that owns the row, when its work is done


@dataclass(frozen=True)
class Place:
    table: str
    column: str
    kinds: tuple[Kind, ...]
    erase: Erase
    note: str = ""


ERASED = "[erased]"
# an erased JSON copy (webhook payloads, deliveries, idempotent API answers)
ERASED_DOCUMENT = '{"erased": true}'

P, K, E = Place, Kind, Erase
PERSONAL: tuple[Place, ...] = (
    # the customer's order (province, country and shipping method stay: analytics reads them)
    P("orders", "email", (K.EMAIL,), E.MARKER),
    P("orders", "customer_name", (K.NAME,), E.MARKER),
    P("orders", "shipping_address1", (K.ADDRESS,), E.MARKER),
    P("orders", "shipping_city", (K.ADDRESS,), E.MARKER),
    P("orders", "shipping_zip", (K.ADDRESS,), E.MARKER),
    # the claim: what the customer wrote and signed
    P("claims", "email", (K.EMAIL,), E.MARKER),
    P("claims", "description", (K.FREE_TEXT,), E.MARKER),
    P("claims", "signature_name", (K.SIGNATURE, K.NAME), E.MARKER),
    P("claims", "signature_png", (K.SIGNATURE,), E.NULL),
    P("evidence", "data", (K.PHOTO,), E.PLACEHOLDER),
    P("evidence", "thumbnail", (K.PHOTO,), E.PLACEHOLDER),
    P("evidence", "sha256", (K.PHOTO,), E.EMPTY),
    P("evidence", "phash", (K.PHOTO,), E.HASH, "kept only with the store's keep_photo_hashes"),
    P("evidence", "filename", (K.FREE_TEXT,), E.MARKER),
    P("evidence", "review_note", (K.STAFF_TEXT,), E.SCRUB),
    # the conversation: the customer's messages go; staff's lose the customer's details
    P("messages", "body", (K.FREE_TEXT, K.STAFF_TEXT), E.SCRUB,
      "the customer's own messages become the marker"),
    P("messages", "author_name", (K.NAME,), E.SCRUB),
    P("decisions", "note", (K.STAFF_TEXT,), E.SCRUB),
    P("event_notes", "body", (K.STAFF_TEXT,), E.SCRUB),
    P("claim_drafts", "email", (K.EMAIL,), E.DELETE),
    P("claim_drafts", "data", (K.PAYLOAD, K.FREE_TEXT, K.PHOTO, K.SIGNATURE), E.DELETE),
    # copies: emails out and in, webhooks in and out, API answers
    P("outbox", "to_addr", (K.EMAIL,), E.MARKER, "staff recipients' rows keep their address"),
    P("outbox", "subject", (K.PAYLOAD,), E.SCRUB),
    P("outbox", "body_text", (K.PAYLOAD,), E.SCRUB, "mails to the customer become the marker"),
    P("outbox", "body_html", (K.PAYLOAD,), E.SCRUB, "mails to the customer become the marker"),
    P("outbox", "reply_to", (K.EMAIL,), E.KEEP, "the shop's signed reply address, not the customer's"),
    P("inbound_mail", "from_addr", (K.EMAIL,), E.MARKER),
    P("inbound_mail", "subject", (K.FREE_TEXT,), E.MARKER),
    P("inbound_mail", "body_text", (K.FREE_TEXT,), E.MARKER),
    P("inbound_mail", "raw", (K.PAYLOAD, K.PHOTO), E.NULL),
    P("inbound_mail", "message_id", (K.EMAIL,), E.KEEP,
      "the sender's Message-ID; it may carry their mail host, never their address"),
    P("webhook_receipts", "payload", (K.PAYLOAD, K.NAME, K.EMAIL, K.PHONE, K.ADDRESS, K.IP),
      E.REDACT, "Shopify bodies: see SHOPIFY_PATHS"),
    P("webhook_receipts", "detail", (K.PAYLOAD,), E.SCRUB),
    P("webhook_receipts", "last_error", (K.PAYLOAD,), E.SCRUB),
    P("webhook_deliveries", "payload", (K.PAYLOAD, K.NAME, K.EMAIL, K.FREE_TEXT), E.REDACT,
      "the claim's JSON (services/claim_json.py)"),
    P("webhook_deliveries", "last_error", (K.PAYLOAD,), E.SCRUB),
    P("api_idempotency", "response_body", (K.PAYLOAD, K.NAME, K.EMAIL, K.FREE_TEXT), E.REDACT,
      "the first answer to an API write: a claim's JSON"),
    # the carrier's proof of delivery
    P("trackings", "pod_signed_by", (K.NAME,), E.MARKER),
    P("trackings", "pod_location", (K.ADDRESS,), E.MARKER),
    P("trackings", "pod_photo_url", (K.PHOTO,), E.EMPTY),
    # staff members' own data: theirs, not a customer's
    P("staff_users", "username", (K.STAFF,), E.KEEP),
    P("staff_users", "display_name", (K.STAFF,), E.KEEP),
    P("staff_users", "email", (K.STAFF,), E.KEEP),
    P("staff_sessions", "client", (K.STAFF, K.IP), E.KEEP),
    P("api_keys", "created_by", (K.STAFF,), E.KEEP),
    P("decisions", "decided_by", (K.STAFF,), E.KEEP),
    P("inbound_mail", "handled_by", (K.STAFF,), E.KEEP),
    P("events", "actor", (K.STAFF,), E.KEEP, "staff:<username>, customer, system, api:<key>"),
    P("recovery_events", "actor", (K.STAFF,), E.KEEP, "staff:<username>, system, api:<key>"),
    P("customer_erasures", "actor", (K.STAFF,), E.KEEP),
    # Shopify's privacy requests: services/privacy_requests.py clears them once carried out
    P("privacy_requests", "email", (K.EMAIL,), E.BY_OWNER),
    P("privacy_requests", "shopify_customer_id", (K.EMAIL,), E.BY_OWNER),
    P("privacy_requests", "order_numbers", (K.PAYLOAD,), E.BY_OWNER),
    P("privacy_requests", "export_zip", (K.PAYLOAD, K.PHOTO, K.SIGNATURE), E.BY_OWNER),
)
del P, K, E

# JSON paths inside a Shopify order (or customer) body that hold personal data: why a stored
# body naming the customer is redacted whole rather than kept
SHOPIFY_PATHS = (
    "email", "contact_email", "phone", "browser_ip", "client_details.browser_ip",
    "customer.email", "customer.first_name", "customer.last_name", "customer.phone",
    "customer.default_address.*", "shipping_address.*", "billing_address.*", "note",
)

# Text columns that hold nothing about a person, and why.
NOT_PERSONAL: dict[str, dict[str, str]] = {
    "store_settings": {c: "the store's own settings" for c in (
        "name", "logo_png", "accent_color", "support_email", "intro_text", "default_language",
        "texts", "timezone", "currency", "protection_pattern", "shopify_shop_domain",
        "order_link_secret", "privacy_texts", "recovery_carriers", "recovery_issue_types",
        "recovery_easypost_off")},
    "privacy_requests": {"source": "sender", "kind": "kind", "request_key": "a key",
                         "shopify_request_id": "Shopify's id", "shop_domain": "the shop",
                         "status": "state", "last_error": "system text", "detail": "system text"},
    "store_secrets": {"name": "a credential's name", "value": "the shop's credential"},
    "stock": {"sku": "a product"},
    "orders": {"order_number": "the shop's number", "name": "the shop's number as shown",
               "financial_status": "state", "fulfillment_status": "state", "currency": "code",
               "shipping_method": "the service (analytics)",
               "shipping_province": "a region (analytics); kept",
               "shipping_country": "a country (analytics); kept", "external_id": "Shopify's id",
               "source": "how it arrived", "risk_level": "Shopify's risk level",
               "dispute_id": "Shopify's id", "dispute_status": "state", "dispute_kind": "kind",
               "dispute_reason": "Shopify's reason code"},
    "line_items": {"sku": "a product", "name": "a product"},
    "shipments": {c: "the parcel" for c in ("tracking_number", "carrier", "status", "source",
                                           "milestone", "external_id")},
    "claims": {"reference": "the claim's reference (kept)", "access_token": "a random link key",
               "idempotency_key": "a random form key", "category": "kind", "issue_type": "kind",
               "status": "state", "desired_resolution": "kind", "signature_kind": "drawn or typed",
               "filed_by": "customer, staff:<username> or api:<key>", "carrier": "the parcel",
               "risk_level": "a score", "hold_reason": "what live tracking said (system text)",
               "dispute_hold_reason": "what the dispute is (system text)",
               "language": "the claim's language"},
    "evidence": {"content_type": "format", "review_status": "state"},
    "messages": {"author_kind": "customer, staff or system"},
    "decisions": {"outcome": "state", "reason_code": "a code"},
    "resolutions": {"kind": "kind", "store_credit_code": "a gift card code (exported, kept)"},
    "lookup_attempts": {"key": "an order number or a hashed client network"},
    "staff_users": {"role": "role", "password_hash": "a hash"},
    "staff_sessions": {"token_hash": "a hash"},
    "outbox": {"dedupe_key": "kind and ids", "kind": "kind", "status": "state",
               "last_error": "the mail server's answer", "message_id": "our Message-ID"},
    "background_jobs": {"name": "a job", "last_error": "system text", "last_result": "counts"},
    "inbound_mail": {"status": "state", "reason": "a code"},
    "trackings": {"tracking_number": "the parcel", "carrier": "the parcel", "source": "feed"},
    "checkpoints": {c: "a carrier scan (places are depots and cities)" for c in (
        "tracking_number", "key", "milestone", "sub_status", "message", "place", "source")},
    "webhook_receipts": {"source": "sender", "delivery_id": "sender's id", "topic": "kind",
                         "outcome": "state", "subject": "a Shopify order id", "status": "state",
                         "sequence_key": "a Shopify order id or tracking number"},
    "track17_registrations": {"tracking_number": "the parcel", "carrier": "the parcel",
                              "status": "state", "last_error": "17TRACK's answer"},
    "order_refunds": {"external_id": "Shopify's id"},
    "shopify_writes": {"kind": "kind", "status": "state", "last_error": "Shopify's answer",
                       "shopify_id": "Shopify's id"},
    "api_keys": {"name": "the key's label", "prefix": "the key's prefix", "key_hash": "a hash",
                 "scope": "read or write"},
    "api_idempotency": {"key_hash": "a hash", "request_hash": "a hash"},
    "webhook_endpoints": {"url": "the shop's endpoint", "description": "the shop's label",
                          "events": "event types", "secret": "the signing key",
                          "disabled_reason": "system text"},
    "webhook_deliveries": {"message_id": "our id", "event_type": "kind", "status": "state"},
    "auto_approve_rules": {"name": "the rule's label", "issue_types": "kinds",
                           "resolutions": "kinds"},
    "events": {"action": "kind", "from_status": "state", "to_status": "state",
               "details": "ids, codes, counts and states only (free text is in event_notes)"},
    "event_notes": {"field": "which details key"},
    "recoveries": {"state": "state", "carrier": "the parcel", "carrier_key": "the parcel",
                   "issue_type": "kind", "currency": "currency",
                   "carrier_claim_number": "the carrier's id", "easypost_claim_id": "EasyPost's id",
                   "carrier_message": "the carrier's or insurer's answer"},
    "recovery_filings": {"status": "state", "last_error": "EasyPost's answer",
                         "easypost_claim_id": "EasyPost's id"},
    "recovery_cancellations": {"status": "state", "last_error": "EasyPost's answer",
                               "easypost_claim_id": "EasyPost's id"},
    "recovery_events": {"action": "kind", "from_state": "state", "to_state": "state",
                        "details": "ids, codes, amounts and states only"},
    "customer_erasures": {"request_ref": "the request's reference", "scope": "kind",
                          "counts": "rows per table"},
    "rollup_shipments": {c: "an analytics dimension" for c in (
        "carrier", "country", "province", "method", "issue_type")},
    "rollup_units": {c: "an analytics dimension" for c in ("carrier", "country", "sku",
                                                           "issue_type")},
    "rollup_claims": {c: "an analytics dimension" for c in ("carrier", "country", "issue_type")},
    "rollup_durations": {c: "an analytics dimension" for c in ("carrier", "country",
                                                               "issue_type", "kind")},
    "rollup_payouts": {c: "an analytics dimension" for c in ("carrier", "country", "issue_type")},
    "rollup_orders": {c: "an analytics dimension" for c in ("carrier", "country", "province",
                                                            "value_band")},
    "rollup_recoveries": {c: "an analytics dimension" for c in ("carrier", "country",
                                                                "issue_type")},
}


def places(table: str | None = None, *, customer_only: bool = True) -> tuple[Place, ...]:
    """The classified places, of one table if given; without staff members' own data."""
    return tuple(p for p in PERSONAL if (table is None or p.table == table)
                 and not (customer_only and p.erase in (Erase.KEEP, Erase.BY_OWNER)))


def erase_of(table: str, column: str) -> Erase:
    for p in PERSONAL:
        if p.table == table and p.column == column:
            return p.erase
    raise KeyError(f"{table}.{column} is not a personal-data place")


def classification(table: str, column: str) -> str | None:
    """"personal", "not_personal", or None when the column was never classified."""
    if any(p.table == table and p.column == column for p in PERSONAL):
        return "personal"
    if column in NOT_PERSONAL.get(table, {}):
        return "not_personal"
    return None


@lru_cache(maxsize=1)
def placeholder_jpeg() -> bytes:
    """The fixed image an erased photo (and its thumbnail) becomes: plain grey, 64 × 64."""
    from PIL import Image
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 200, 200)).save(buf, "JPEG", quality=80)
    return buf.getvalue()
