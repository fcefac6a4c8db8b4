"""The claims domain as tables (SQLAlchemy 2.x typed mappings).

Money is always an integer count of the currency's minor units (cents for dollars, yen for yen,
thousandths for dinars: ``domain.money``); the columns keep their ``*_cents`` names. Times are UTC
(see ``db.UTCDateTime``). The schema itself is owned by the Alembic migrations in
``claims_core/infra/migrations``; these classes must match them (a test compares the two).
"""
from __future__ import annotations

from datetime import date, datetime
from typing import Optional

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    event,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from ..domain.auto_approval import spec_from_columns
from ..domain.eligibility import MAX_PHOTO_BYTES
from .db import UTCDateTime, utcnow
from .outbox import new_message_id

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime()}


# --- store --------------------------------------------------------------------------------------

class StoreSettings(Base):
    """The one store this portal serves: rules it can tune and how the portal looks."""

    __tablename__ = "store_settings"

    id: Mapped[int] = mapped_column(primary_key=True)
    # branding
    name: Mapped[str] = mapped_column(String(200), default="Our Store")
    logo_png: Mapped[Optional[bytes]] = mapped_column(LargeBinary)
    accent_color: Mapped[str] = mapped_column(String(7), default="#2563eb")
    support_email: Mapped[str] = mapped_column(String(254), default="support@example.com")
    intro_text: Mapped[str] = mapped_column(Text, default="")
    # the portal's language when the customer's browser asks for none the app speaks
    default_language: Mapped[str] = mapped_column(String(8), default="en", server_default="en")
    # the store's own texts per language: {"de": {"intro": …, "policy": …, "support_note": …}}
    # (JSON); a language without one falls back to the default language's, then to intro_text
    texts: Mapped[str] = mapped_column(Text, default="{}", server_default="{}")
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    currency: Mapped[str] = mapped_column(String(3), default="USD")
    # rules
    filing_window_days: Mapped[int] = mapped_column(Integer, default=45)
    lost_wait_days: Mapped[int] = mapped_column(Integer, default=7)
    offer_refund: Mapped[bool] = mapped_column(Boolean, default=True)
    offer_reshipment: Mapped[bool] = mapped_column(Boolean, default=True)
    offer_store_credit: Mapped[bool] = mapped_column(Boolean, default=True)
    store_credit_bonus_pct: Mapped[int] = mapped_column(Integer, default=0)
    max_photos: Mapped[int] = mapped_column(Integer, default=6)
    max_photo_bytes: Mapped[int] = mapped_column(Integer, default=MAX_PHOTO_BYTES)
    signature_threshold_cents: Mapped[int] = mapped_column(Integer, default=50000)
    response_target_hours: Mapped[int] = mapped_column(Integer, default=48, server_default="48")
    # staff digests go out once a day, from this hour of the store's day on
    digest_hour: Mapped[int] = mapped_column(Integer, default=8, server_default="8")
    reminder_after_days: Mapped[int] = mapped_column(Integer, default=5, server_default="5")
    close_after_days: Mapped[int] = mapped_column(Integer, default=10, server_default="10")
    lookup_max_misses: Mapped[int] = mapped_column(Integer, default=10, server_default="10")
    lookup_window_minutes: Mapped[int] = mapped_column(Integer, default=10, server_default="10")
    protection_pattern: Mapped[str] = mapped_column(
        String(500), default=r"protection|shipping insurance|route|ship-protect"
    )
    # the pricing advisor's assumptions (Analytics → "Is my protection priced right?")
    target_loss_ratio_pct: Mapped[int] = mapped_column(Integer, default=60, server_default="60")
    credit_cost_pct: Mapped[int] = mapped_column(Integer, default=60, server_default="60")
    reship_cost_pct: Mapped[int] = mapped_column(Integer, default=45, server_default="45")
    reship_shipping_cents: Mapped[int] = mapped_column(Integer, default=800, server_default="800")
    # outbound webhooks may target private / loopback addresses (off: they can't reach the shop's
    # own network; tests and a local integration turn it on)
    webhooks_allow_private: Mapped[bool] = mapped_column(Boolean, default=False,
                                                         server_default=text("false"))
    # write-back: decisions land in this Shopify store when an Admin API token is also stored
    shopify_shop_domain: Mapped[str] = mapped_column(String(255), default="", server_default="")
    # the signed order link in the shop's emails (domain/order_link.py): its key (made when first
    # needed), whether the owner has been shown it (once), when it was last rotated
    order_link_secret: Mapped[str] = mapped_column(String(64), default="", server_default="")
    order_link_secret_shown: Mapped[bool] = mapped_column(Boolean, default=False,
                                                          server_default=text("false"))
    order_link_rotated_at: Mapped[Optional[datetime]]
    # erasing a customer keeps their photos' perceptual hashes (fraud checks) only when on
    keep_photo_hashes: Mapped[bool] = mapped_column(Boolean, default=False,
                                                    server_default=text("false"))
    # retention (domain/retention.py: bounds and defaults; the "retention" background job)
    retain_photos_months: Mapped[int] = mapped_column(Integer, default=24, server_default="24")
    retain_webhook_days: Mapped[int] = mapped_column(Integer, default=30, server_default="30")
    retain_outbox_days: Mapped[int] = mapped_column(Integer, default=90, server_default="90")
    retain_draft_days: Mapped[int] = mapped_column(Integer, default=7, server_default="7")
    retain_unmatched_mail_days: Mapped[int] = mapped_column(Integer, default=30, server_default="30")
    # the store's own privacy notice per language ({"de": "…"}, JSON); none: the portal's notice
    privacy_texts: Mapped[str] = mapped_column(Text, default="{}", server_default="{}")
    # Settings → Recoveries (domain/recoveries.py RecoveryPolicy): which approved claims open a
    # recovery from the carrier: carrier keys and issue types, comma-separated ("" = all), and the
    # smallest payout worth filing
    recovery_carriers: Mapped[str] = mapped_column(Text, default="", server_default="")
    recovery_issue_types: Mapped[str] = mapped_column(Text, default="", server_default="")
    recovery_min_cents: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # carriers (keys) whose recoveries are NOT filed through EasyPost even with EASYPOST_API_KEY
    recovery_easypost_off: Mapped[str] = mapped_column(Text, default="", server_default="")
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    __table_args__ = (
        CheckConstraint("filing_window_days BETWEEN 1 AND 3650", name="window"),
        CheckConstraint("lost_wait_days BETWEEN 0 AND 365", name="lost_wait"),
        CheckConstraint("store_credit_bonus_pct BETWEEN 0 AND 100", name="bonus"),
    )


class StoreSecret(Base):
    """A credential the owner entered in Settings (the Shopify Admin API token). Written, replaced
    or removed; never read back to a page, which only learns whether it is configured."""

    __tablename__ = "store_secrets"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Stock(Base):
    __tablename__ = "stock"

    sku: Mapped[str] = mapped_column(String(100), primary_key=True)
    on_hand: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


# --- orders -------------------------------------------------------------------------------------

class Order(Base):
    __tablename__ = "orders"

    id: Mapped[int] = mapped_column(primary_key=True)
    order_number: Mapped[str] = mapped_column(String(64), unique=True)  # normalised: "1001"
    name: Mapped[str] = mapped_column(String(64))  # as the shop shows it: "#1001"
    email: Mapped[str] = mapped_column(String(254), index=True)  # normalised (lower, stripped)
    customer_name: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime]
    financial_status: Mapped[str] = mapped_column(String(32), default="paid")
    fulfillment_status: Mapped[str] = mapped_column(String(32), default="unfulfilled")
    cancelled_at: Mapped[Optional[datetime]]
    currency: Mapped[str] = mapped_column(String(3), default="USD")
    subtotal_cents: Mapped[int] = mapped_column(Integer, default=0)
    shipping_cents: Mapped[int] = mapped_column(Integer, default=0)
    tax_cents: Mapped[int] = mapped_column(Integer, default=0)
    total_cents: Mapped[int] = mapped_column(Integer, default=0)
    protection_fee_cents: Mapped[int] = mapped_column(Integer, default=0)
    protection_purchased_at: Mapped[Optional[datetime]]  # None: not protected
    shipping_method: Mapped[str] = mapped_column(String(100), default="")
    shipping_address1: Mapped[str] = mapped_column(String(200), default="")
    shipping_city: Mapped[str] = mapped_column(String(100), default="")
    shipping_zip: Mapped[str] = mapped_column(String(20), default="")
    shipping_province: Mapped[str] = mapped_column(String(100), default="")
    shipping_country: Mapped[str] = mapped_column(String(2), default="")
    claim_deadline_override: Mapped[Optional[date]] = mapped_column(Date)
    external_id: Mapped[Optional[str]] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(16), default="import")
    # Shopify's fraud analysis of the order ("low", "medium", "high"; "" when unknown)
    risk_level: Mapped[str] = mapped_column(String(8), default="", server_default="")
    refunded_cents: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # in Shopify
    # Shopify's updated_at of the newest order webhook applied: an older one arriving late is
    # ignored (it would undo a cancellation)
    source_updated_at: Mapped[Optional[datetime]]
    # the newest Shopify Payments dispute (chargeback) on the order: domain/disputes.py
    dispute_id: Mapped[Optional[str]] = mapped_column(String(64))
    dispute_status: Mapped[str] = mapped_column(String(16), default="", server_default="")
    dispute_kind: Mapped[str] = mapped_column(String(16), default="", server_default="")
    dispute_reason: Mapped[str] = mapped_column(String(64), default="", server_default="")
    dispute_amount_minor: Mapped[Optional[int]] = mapped_column(Integer)
    dispute_evidence_due_at: Mapped[Optional[datetime]]
    disputed_at: Mapped[Optional[datetime]]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    line_items: Mapped[list[LineItem]] = relationship(
        back_populates="order", order_by="LineItem.position", cascade="all, delete-orphan"
    )
    shipments: Mapped[list[Shipment]] = relationship(
        back_populates="order", order_by="Shipment.shipped_at"
    )
    claims: Mapped[list[Claim]] = relationship(back_populates="order", order_by="Claim.created_at")

    __table_args__ = (Index("ix_orders_created_at", "created_at"),
                      # risk: other claims at the same address (zip, then the street as compared)
                      Index("ix_orders_zip_address", "shipping_zip", text("lower(shipping_address1)")))

    @property
    def is_protected(self) -> bool:
        return self.protection_purchased_at is not None


class LineItem(Base):
    __tablename__ = "line_items"

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"))
    position: Mapped[int] = mapped_column(Integer)
    sku: Mapped[str] = mapped_column(String(100), default="")
    name: Mapped[str] = mapped_column(String(300))
    quantity: Mapped[int] = mapped_column(Integer)
    unit_price_cents: Mapped[int] = mapped_column(Integer)
    discount_cents: Mapped[int] = mapped_column(Integer, default=0)  # for the whole line
    requires_shipping: Mapped[bool] = mapped_column(Boolean, default=True)
    is_protection: Mapped[bool] = mapped_column(Boolean, default=False)

    order: Mapped[Order] = relationship(back_populates="line_items")

    __table_args__ = (
        UniqueConstraint("order_id", "position", name="uq_line_items_order_position"),
        CheckConstraint("quantity >= 0", name="quantity"),
        Index("ix_line_items_sku", "sku"),
    )

    @property
    def paid_cents(self) -> int:
        return self.unit_price_cents * self.quantity - self.discount_cents


class Shipment(Base):
    __tablename__ = "shipments"

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    tracking_number: Mapped[Optional[str]] = mapped_column(String(64), index=True)  # normalised
    carrier: Mapped[str] = mapped_column(String(64), default="")
    # fulfilled: shipped, no tracking data; in_transit; delivered; returned; exception
    status: Mapped[str] = mapped_column(String(16), default="fulfilled")
    shipped_at: Mapped[datetime]
    delivered_at: Mapped[Optional[datetime]]
    last_scan_at: Mapped[Optional[datetime]]
    is_replacement: Mapped[bool] = mapped_column(Boolean, default=False)
    source: Mapped[str] = mapped_column(String(16), default="import")  # import | export | demo | claim
    # from live tracking (see ``Tracking``/``Checkpoint``): the newest checkpoint's milestone
    milestone: Mapped[Optional[str]] = mapped_column(String(24))
    expected_delivery_at: Mapped[Optional[datetime]]
    external_id: Mapped[Optional[str]] = mapped_column(String(64))  # Shopify's fulfillment id

    order: Mapped[Order] = relationship(back_populates="shipments")
    items: Mapped[list[ShipmentItem]] = relationship(
        back_populates="shipment", cascade="all, delete-orphan", order_by="ShipmentItem.id"
    )

    __table_args__ = (
        UniqueConstraint("order_id", "tracking_number", name="uq_shipments_order_tracking"),
        Index("ix_shipments_shipped_at", "shipped_at"),
        Index("ix_shipments_carrier", "carrier"),
    )


class ShipmentItem(Base):
    __tablename__ = "shipment_items"

    id: Mapped[int] = mapped_column(primary_key=True)
    shipment_id: Mapped[int] = mapped_column(ForeignKey("shipments.id"))
    line_item_id: Mapped[int] = mapped_column(ForeignKey("line_items.id"))
    quantity: Mapped[int] = mapped_column(Integer)

    shipment: Mapped[Shipment] = relationship(back_populates="items")
    line_item: Mapped[LineItem] = relationship()

    __table_args__ = (
        UniqueConstraint("shipment_id", "line_item_id", name="uq_shipment_items_line"),
        CheckConstraint("quantity > 0", name="quantity"),
    )


# --- claims -------------------------------------------------------------------------------------

# the columns the staff queue filters on besides status (see the claims indexes)
QUEUE_FILTER_COLUMNS = ("issue_type", "carrier", "desired_resolution", "category", "claimed_cents",
                        "risk_level", "assignee_id")


class Claim(Base):
    __tablename__ = "claims"

    id: Mapped[int] = mapped_column(primary_key=True)
    reference: Mapped[str] = mapped_column(String(16), unique=True)  # CLM-4F7K2Q
    access_token: Mapped[str] = mapped_column(String(64), unique=True)
    idempotency_key: Mapped[str] = mapped_column(String(128), unique=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    shipment_id: Mapped[int] = mapped_column(ForeignKey("shipments.id"), index=True)
    category: Mapped[str] = mapped_column(String(16))  # shipping | item
    issue_type: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="submitted")
    description: Mapped[str] = mapped_column(Text, default="")
    desired_resolution: Mapped[str] = mapped_column(String(16))
    claimed_cents: Mapped[int] = mapped_column(Integer, default=0)
    email: Mapped[str] = mapped_column(String(254))  # who filed (normalised)
    signature_kind: Mapped[str] = mapped_column(String(8))  # drawn | typed
    signature_name: Mapped[str] = mapped_column(String(200), default="")
    signature_png: Mapped[Optional[bytes]] = mapped_column(LargeBinary)
    # typed because the customer can't draw a signature (and said so): domain/signature.py
    signature_cannot_draw: Mapped[bool] = mapped_column(Boolean, default=False,
                                                        server_default=text("false"))
    signed_at: Mapped[datetime]
    filed_by: Mapped[str] = mapped_column(String(100), default="customer")
    assignee_id: Mapped[Optional[int]] = mapped_column(ForeignKey("staff_users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    decided_at: Mapped[Optional[datetime]]
    reminded_at: Mapped[Optional[datetime]]
    carrier: Mapped[str] = mapped_column(String(64), default="", server_default="")  # the shipment's, for the queue
    risk_score: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    risk_level: Mapped[str] = mapped_column(String(8), default="low", server_default="low")
    # on hold: live tracking called the claim into question (a scan after "lost"); approving
    # waits until an agent has looked and released it
    held_at: Mapped[Optional[datetime]]
    hold_reason: Mapped[str] = mapped_column(Text, default="", server_default="")
    # on hold because the order is disputed (a chargeback): approving waits until the dispute
    # closes or the owner releases it (domain/disputes.py)
    dispute_held_at: Mapped[Optional[datetime]]
    dispute_hold_reason: Mapped[str] = mapped_column(Text, default="", server_default="")
    # the language the customer filed in: every later email to them is in it
    language: Mapped[str] = mapped_column(String(8), default="en", server_default="en")
    # the drawn signature (and typed name) removed under the retention policy
    signature_removed_at: Mapped[Optional[datetime]]
    version: Mapped[int] = mapped_column(Integer, default=1)

    order: Mapped[Order] = relationship(back_populates="claims")
    shipment: Mapped[Shipment] = relationship()
    items: Mapped[list[ClaimItem]] = relationship(
        back_populates="claim", cascade="all, delete-orphan", order_by="ClaimItem.id"
    )
    evidence: Mapped[list[Evidence]] = relationship(
        back_populates="claim", order_by="Evidence.id", cascade="all, delete-orphan"
    )
    messages: Mapped[list[Message]] = relationship(
        back_populates="claim", order_by="Message.id", cascade="all, delete-orphan"
    )
    resolutions: Mapped[list[Resolution]] = relationship(
        back_populates="claim", order_by="Resolution.id", cascade="all, delete-orphan"
    )
    decisions: Mapped[list[Decision]] = relationship(
        back_populates="claim", order_by="Decision.id", cascade="all, delete-orphan"
    )

    __mapper_args__ = {"version_id_col": version}
    __table_args__ = (
        # the queue's pages, one index per sort order: read in order within a status and stop after
        # a page; the default order also holds every filtered column (no table reads while it skips)
        Index("ix_claims_status_created", "status", "created_at", "id", *QUEUE_FILTER_COLUMNS),
        Index("ix_claims_status_amount", "status", "claimed_cents", "id"),
        Index("ix_claims_status_risk", "status", "risk_score", "id"),
        Index("ix_claims_created_at", "created_at"),
        Index("ix_claims_email", "email"),
        Index("ix_claims_risk_created", "risk_level", "created_at"),
        Index("ix_claims_held", "held_at", sqlite_where=text("held_at IS NOT NULL"),
              postgresql_where=text("held_at IS NOT NULL")),  # the few on hold, for the queue
        # holds every column the queue filters on, so its counts never touch the table
        Index("ix_claims_queue", "status", "issue_type", "carrier", "desired_resolution", "created_at",
              "category", "claimed_cents", "risk_level", "assignee_id"),
        CheckConstraint("category IN ('shipping', 'item')", name="category"),
        CheckConstraint(
            "status IN ('submitted','in_review','needs_info','approved','resolved','denied','closed')",
            name="status",
        ),
        CheckConstraint("claimed_cents >= 0", name="claimed"),
    )


class ClaimItem(Base):
    """Which shipped items a claim covers, and how many.

    ``is_open`` mirrors whether the claim is still open; a partial unique index on it makes "one open
    claim per shipment line item" a database guarantee.
    """

    __tablename__ = "claim_items"

    id: Mapped[int] = mapped_column(primary_key=True)
    claim_id: Mapped[int] = mapped_column(ForeignKey("claims.id"), index=True)
    shipment_item_id: Mapped[int] = mapped_column(ForeignKey("shipment_items.id"), index=True)
    quantity: Mapped[int] = mapped_column(Integer)
    unit_cents: Mapped[int] = mapped_column(Integer)  # what the customer paid per unit
    is_open: Mapped[bool] = mapped_column(Boolean, default=True)

    claim: Mapped[Claim] = relationship(back_populates="items")
    shipment_item: Mapped[ShipmentItem] = relationship()

    __table_args__ = (
        CheckConstraint("quantity > 0", name="quantity"),
        Index(
            "uq_claim_items_one_open_claim",
            "shipment_item_id",
            unique=True,
            sqlite_where=text("is_open"),
            postgresql_where=text("is_open"),
        ),
    )

    @property
    def amount_cents(self) -> int:
        return self.unit_cents * self.quantity


class Evidence(Base):
    """A photo, cleaned (re-encoded, no metadata) and stored with its thumbnail and hashes."""

    __tablename__ = "evidence"

    id: Mapped[int] = mapped_column(primary_key=True)
    claim_id: Mapped[int] = mapped_column(ForeignKey("claims.id"), index=True)
    message_id: Mapped[Optional[int]] = mapped_column(ForeignKey("messages.id"))
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(32), default="image/jpeg")
    data: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)  # loaded only when opened
    thumbnail: Mapped[bytes] = mapped_column(LargeBinary)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    size_bytes: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    phash: Mapped[str] = mapped_column(String(16), index=True)
    review_status: Mapped[str] = mapped_column(String(16), default="pending")
    review_note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    removed_at: Mapped[Optional[datetime]]  # the image removed under the retention policy

    claim: Mapped[Claim] = relationship(back_populates="evidence")


class Message(Base):
    __tablename__ = "messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    claim_id: Mapped[int] = mapped_column(ForeignKey("claims.id"), index=True)
    author_kind: Mapped[str] = mapped_column(String(16))  # customer | staff | system
    author_name: Mapped[str] = mapped_column(String(200), default="")
    body: Mapped[str] = mapped_column(Text)
    internal: Mapped[bool] = mapped_column(Boolean, default=False)  # staff-only note
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    claim: Mapped[Claim] = relationship(back_populates="messages")


class Decision(Base):
    """A staff approval or denial (the resolutions hang off an approval)."""

    __tablename__ = "decisions"

    id: Mapped[int] = mapped_column(primary_key=True)
    claim_id: Mapped[int] = mapped_column(ForeignKey("claims.id"), index=True)
    outcome: Mapped[str] = mapped_column(String(16))  # approved | denied
    reason_code: Mapped[str] = mapped_column(String(32), default="")
    note: Mapped[str] = mapped_column(Text, default="")
    decided_by: Mapped[str] = mapped_column(String(100))
    decided_at: Mapped[datetime] = mapped_column(default=utcnow)

    claim: Mapped[Claim] = relationship(back_populates="decisions")


class Resolution(Base):
    __tablename__ = "resolutions"

    id: Mapped[int] = mapped_column(primary_key=True)
    claim_id: Mapped[int] = mapped_column(ForeignKey("claims.id"), index=True)
    decision_id: Mapped[int] = mapped_column(ForeignKey("decisions.id"))
    kind: Mapped[str] = mapped_column(String(16))  # refund | store_credit | reshipment
    amount_cents: Mapped[int] = mapped_column(Integer, default=0)
    bonus_pct: Mapped[int] = mapped_column(Integer, default=0)
    store_credit_code: Mapped[Optional[str]] = mapped_column(String(32), unique=True)
    replacement_shipment_id: Mapped[Optional[int]] = mapped_column(ForeignKey("shipments.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    voided_at: Mapped[Optional[datetime]]  # an approval undone by staff

    claim: Mapped[Claim] = relationship(back_populates="resolutions")

    __table_args__ = (
        CheckConstraint("kind IN ('refund', 'store_credit', 'reshipment')", name="kind"),
        CheckConstraint("amount_cents >= 0", name="amount"),
    )


# --- the portal's memory ------------------------------------------------------------------------

class ClaimDraft(Base):
    """A half-filled claim form, kept server-side (7 days) so a reload or closed tab loses nothing."""

    __tablename__ = "claim_drafts"

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"))
    email: Mapped[str] = mapped_column(String(254))
    data: Mapped[str] = mapped_column(Text, default="{}")  # JSON
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]

    __table_args__ = (UniqueConstraint("order_id", "email", name="uq_claim_drafts_order_email"),)


class LookupAttempt(Base):
    """A failed order lookup, by order number and by client, to slow down and refuse guessing."""

    __tablename__ = "lookup_attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(128))  # "order:1001" or "client:<hash>"
    at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (Index("ix_lookup_attempts_key_at", "key", "at"),)


# --- staff and the trail ------------------------------------------------------------------------

class StaffUser(Base):
    __tablename__ = "staff_users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(200), default="")
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[Optional[datetime]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    email: Mapped[str] = mapped_column(String(254), default="", server_default="")
    notify_new_claims: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    daily_digest: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))

    __table_args__ = (CheckConstraint("role IN ('owner', 'agent', 'analyst')", name="role"),)


class StaffSession(Base):
    """A staff member's signed-in browser: the cookie holds a random token, this row its SHA-256
    (a stolen database does not give working cookies). Deleted on log-out, and with every session
    of the user when the owner deactivates them or their password changes."""

    __tablename__ = "staff_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id", ondelete="CASCADE"),
                                         index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]  # the absolute end (idle ends it earlier)
    client: Mapped[str] = mapped_column(String(300), default="")


class OutboxMessage(Base):
    """An email waiting to go out, written in the same transaction as the event that caused it.

    ``dedupe_key`` is unique: the same notification is never queued twice. The sender takes a row
    with a conditional UPDATE (pending → sending), so two senders never send the same message.
    """

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(primary_key=True)
    dedupe_key: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    claim_id: Mapped[Optional[int]] = mapped_column(ForeignKey("claims.id"), index=True)
    to_addr: Mapped[str] = mapped_column(String(254))
    subject: Mapped[str] = mapped_column(String(300))
    body_text: Mapped[str] = mapped_column(Text)
    body_html: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending|sending|sent|failed|withdrawn
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    lease_until: Mapped[Optional[datetime]]
    last_error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[Optional[datetime]]
    # the customer's reply address for this claim (Reply-To), decided when queued
    reply_to: Mapped[str] = mapped_column(String(254), default="", server_default="")
    # decided when the message is queued (in that transaction) and never changed: every try of
    # it carries the same Message-ID, so a receiver can tell a retry from a new mail
    message_id: Mapped[str] = mapped_column(String(255), default=new_message_id, server_default="")

    __table_args__ = (Index("ix_outbox_status_next", "status", "next_attempt_at"),)


class BackgroundJob(Base):
    """The last run of each background job (``adapters/jobs.py``): written after every run, by
    whichever process ran it (the web app, a worker, ``tick``)."""

    __tablename__ = "background_jobs"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_started_at: Mapped[Optional[datetime]]
    last_finished_at: Mapped[Optional[datetime]]
    last_success_at: Mapped[Optional[datetime]]
    last_error: Mapped[str] = mapped_column(Text, default="", server_default="")
    last_result: Mapped[str] = mapped_column(String(500), default="", server_default="")
    runs: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class InboundMail(Base):
    """A mail read from the shop's mailbox, once per Message-ID (unique): attached to a claim as
    the customer's message, ignored (auto-reply, bounce, our own mail) or left unmatched for staff
    to attach or discard. ``raw`` is kept only while staff still have to decide."""

    __tablename__ = "inbound_mail"

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[str] = mapped_column(String(500), unique=True)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    from_addr: Mapped[str] = mapped_column(String(254), default="")
    subject: Mapped[str] = mapped_column(String(300), default="")
    status: Mapped[str] = mapped_column(String(16))  # attached | unmatched | ignored | discarded
    reason: Mapped[str] = mapped_column(String(32), default="")
    claim_id: Mapped[Optional[int]] = mapped_column(ForeignKey("claims.id"), index=True)
    body_text: Mapped[str] = mapped_column(Text, default="")
    raw: Mapped[Optional[bytes]] = mapped_column(LargeBinary)
    handled_by: Mapped[str] = mapped_column(String(100), default="")
    handled_at: Mapped[Optional[datetime]]

    __table_args__ = (
        Index("ix_inbound_mail_status_received", "status", "received_at"),
        CheckConstraint("status IN ('attached','unmatched','ignored','discarded')", name="status"),
    )


class PrivacyRequest(Base):
    """A customer-data request Shopify sent (``customers/data_request``, ``customers/redact``,
    ``shop/redact``), recorded when its webhook receipt is applied and carried out by the
    ``privacy_requests`` job (services/privacy_requests.py). ``request_key`` is unique: the same
    request sent again changes nothing. A redact for a customer with an open claim waits
    (``waiting``) until the claim is decided; ``due_at`` is Shopify's 30-day deadline."""

    __tablename__ = "privacy_requests"

    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(String(16), default="shopify")
    kind: Mapped[str] = mapped_column(String(24))  # data_request | customer_redact | shop_redact
    request_key: Mapped[str] = mapped_column(String(64), unique=True)
    shopify_request_id: Mapped[str] = mapped_column(String(64), default="")
    shop_domain: Mapped[str] = mapped_column(String(255), default="")
    email: Mapped[str] = mapped_column(String(254), default="")  # cleared once a redact is done
    shopify_customer_id: Mapped[str] = mapped_column(String(64), default="")
    order_numbers: Mapped[str] = mapped_column(Text, default="[]")  # JSON list
    status: Mapped[str] = mapped_column(String(16), default="pending")
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    due_at: Mapped[datetime]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_error: Mapped[str] = mapped_column(Text, default="")
    detail: Mapped[str] = mapped_column(Text, default="")
    export_zip: Mapped[Optional[bytes]] = mapped_column(LargeBinary, deferred=True)
    export_ready_at: Mapped[Optional[datetime]]
    done_at: Mapped[Optional[datetime]]

    __table_args__ = (
        Index("ix_privacy_requests_status_next", "status", "next_attempt_at"),
        CheckConstraint("status IN ('pending','waiting','done','failed')", name="status"),
    )


class Tracking(Base):
    """What the carrier feeds say about one tracking number beyond its checkpoints. Keyed by the
    normalised tracking number, not by shipment: an event may arrive before its order does."""

    __tablename__ = "trackings"

    id: Mapped[int] = mapped_column(primary_key=True)
    tracking_number: Mapped[str] = mapped_column(String(64), unique=True)  # normalised
    carrier: Mapped[str] = mapped_column(String(64), default="")
    source: Mapped[str] = mapped_column(String(16), default="")
    expected_delivery_at: Mapped[Optional[datetime]]
    expected_as_of: Mapped[Optional[datetime]]  # the newest report it came from (late ones lose)
    pod_signed_by: Mapped[str] = mapped_column(String(200), default="")
    pod_photo_url: Mapped[str] = mapped_column(String(1000), default="")
    pod_location: Mapped[str] = mapped_column(String(300), default="")
    stopped_at: Mapped[Optional[datetime]]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Checkpoint(Base):
    """One carrier scan. ``key`` identifies the scan, so a replayed or doubly-reported scan is
    stored once (a database constraint)."""

    __tablename__ = "checkpoints"

    id: Mapped[int] = mapped_column(primary_key=True)
    tracking_number: Mapped[str] = mapped_column(String(64))  # normalised
    key: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime]
    milestone: Mapped[str] = mapped_column(String(24))
    sub_status: Mapped[str] = mapped_column(String(64), default="")
    message: Mapped[str] = mapped_column(String(500), default="")
    place: Mapped[str] = mapped_column(String(200), default="")
    source: Mapped[str] = mapped_column(String(16), default="")
    received_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        UniqueConstraint("tracking_number", "key", name="uq_checkpoints_tracking_key"),
        Index("ix_checkpoints_tracking_at", "tracking_number", "at"),
    )


class WebhookReceipt(Base):
    """Every inbound webhook delivery that passed its signature check, once: a redelivery (same
    source and delivery id) is acknowledged and changes nothing."""

    __tablename__ = "webhook_receipts"

    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(String(16))  # shopify | 17track | easypost
    delivery_id: Mapped[str] = mapped_column(String(200))
    topic: Mapped[str] = mapped_column(String(64), default="")
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    # applied | ignored | waiting (a fulfillment or refund whose order hasn't arrived: ``payload``
    # is kept and applied when it does; ``subject`` is that order's Shopify id)
    outcome: Mapped[str] = mapped_column(String(16), default="applied")
    subject: Mapped[str] = mapped_column(String(64), default="")
    detail: Mapped[str] = mapped_column(Text, default="")
    payload: Mapped[str] = mapped_column(Text, default="")
    # Applied in the background (services/webhook_receipts.apply_pending_receipts), in order per
    # ``sequence_key`` (a Shopify order, a tracking number): pending (``payload`` is the signed
    # body) → done (``outcome`` says what it did) or failed (``last_error``: shown to staff).
    status: Mapped[str] = mapped_column(String(16), default="pending", server_default="done")
    sequence_key: Mapped[str] = mapped_column(String(80), default="", server_default="")
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    next_attempt_at: Mapped[Optional[datetime]]
    last_error: Mapped[str] = mapped_column(Text, default="", server_default="")
    applied_at: Mapped[Optional[datetime]]

    __table_args__ = (
        UniqueConstraint("source", "delivery_id", name="uq_webhook_receipts_source_delivery"),
        Index("ix_webhook_receipts_received_at", "received_at"),
        Index("ix_webhook_receipts_waiting", "outcome", "subject"),
        Index("ix_webhook_receipts_status_next", "status", "next_attempt_at"),
        CheckConstraint("status IN ('pending','done','failed')", name="status"),
    )


class Track17Registration(Base):
    """A tracking number on its way to 17TRACK's register endpoint (with ``TRACK17_API_KEY``),
    queued in the same transaction that created its shipment and sent after commit, with
    retries. Once per number. ``rejected``: 17TRACK refused it (``last_error`` is its reason,
    ``error_code`` its code), shown to staff."""

    __tablename__ = "track17_registrations"

    id: Mapped[int] = mapped_column(primary_key=True)
    tracking_number: Mapped[str] = mapped_column(String(64), unique=True)
    carrier: Mapped[str] = mapped_column(String(64), default="")
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    lease_until: Mapped[Optional[datetime]]
    last_error: Mapped[str] = mapped_column(Text, default="")
    error_code: Mapped[Optional[int]] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    registered_at: Mapped[Optional[datetime]]

    __table_args__ = (
        Index("ix_track17_registrations_status_next", "status", "next_attempt_at"),
        CheckConstraint("status IN ('pending','sending','registered','rejected','failed')",
                        name="status"),
    )


class OrderRefund(Base):
    """Money Shopify refunded on an order, by whoever refunded it (the shop's admin or this portal's
    write-back). The orders export only gives a total: it is kept as one row with id "export"."""

    __tablename__ = "order_refunds"

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    external_id: Mapped[str] = mapped_column(String(64))
    amount_cents: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("order_id", "external_id", name="uq_order_refunds_order_ext"),)


class ShopifyWrite(Base):
    """A decision on its way into Shopify (refund, gift card, replacement order), queued in the
    same transaction as the decision and sent after commit, with retries. One per resolution:
    a replay never refunds twice."""

    __tablename__ = "shopify_writes"

    id: Mapped[int] = mapped_column(primary_key=True)
    resolution_id: Mapped[int] = mapped_column(ForeignKey("resolutions.id"), unique=True)
    claim_id: Mapped[int] = mapped_column(ForeignKey("claims.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # refund | gift_card | order
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending|sending|done|failed|cancelled
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    lease_until: Mapped[Optional[datetime]]
    last_error: Mapped[str] = mapped_column(Text, default="")
    shopify_id: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    done_at: Mapped[Optional[datetime]]

    __table_args__ = (Index("ix_shopify_writes_status_next", "status", "next_attempt_at"),)


class ApiKey(Base):
    """A key for the REST API. The key is shown once when made; this row keeps its SHA-256 and
    the first characters (to tell keys apart), who made it and when it was last used."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(16))  # "ck_3f9a2b1c": shown in lists
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scope: Mapped[str] = mapped_column(String(8))  # read | write
    created_by: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[Optional[datetime]]
    revoked_at: Mapped[Optional[datetime]]

    __table_args__ = (CheckConstraint("scope IN ('read', 'write')", name="scope"),)


class ApiIdempotency(Base):
    """The first answer to a write made with an ``Idempotency-Key``: a replay gets it again."""

    __tablename__ = "api_idempotency"

    id: Mapped[int] = mapped_column(primary_key=True)
    api_key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id"))
    key_hash: Mapped[str] = mapped_column(String(64))  # SHA-256 (hex) of the whole header value
    request_hash: Mapped[str] = mapped_column(String(64))  # method, path and body
    status_code: Mapped[int] = mapped_column(Integer)
    response_body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("api_key_id", "key_hash", name="uq_api_idempotency_key"),)


class ApiRateCounter(Base):
    """Requests of one API key in one fixed window of the rate limit (shared by every instance)."""

    __tablename__ = "api_rate_counters"

    api_key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id"), primary_key=True)
    window_start: Mapped[int] = mapped_column(BigInteger, primary_key=True,
                                              autoincrement=False)  # Unix seconds
    hits: Mapped[int] = mapped_column(Integer)


class WebhookEndpoint(Base):
    """An address the owner registered to be told about claims (signed per Standard Webhooks)."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[int] = mapped_column(primary_key=True)
    url: Mapped[str] = mapped_column(String(2000))
    description: Mapped[str] = mapped_column(String(200), default="")
    events: Mapped[str] = mapped_column(String(500))  # comma list of event types
    secret: Mapped[str] = mapped_column(String(100))  # "whsec_…", shown to the owner to verify
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    disabled_reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class WebhookDelivery(Base):
    """One event on its way to one endpoint, queued in the event's transaction; sent after commit
    with retries, logged for the owner (and replayable)."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[int] = mapped_column(primary_key=True)
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("webhook_endpoints.id"), index=True)
    message_id: Mapped[str] = mapped_column(String(64))  # webhook-id (same on every retry)
    event_type: Mapped[str] = mapped_column(String(32))
    claim_id: Mapped[Optional[int]] = mapped_column(ForeignKey("claims.id"), index=True)
    payload: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending|sending|delivered|failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    lease_until: Mapped[Optional[datetime]]
    last_status_code: Mapped[Optional[int]] = mapped_column(Integer)
    last_error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[Optional[datetime]]

    __table_args__ = (Index("ix_webhook_deliveries_status_next", "status", "next_attempt_at"),
                      UniqueConstraint("endpoint_id", "message_id", name="uq_webhook_deliveries_msg"))


class AutoApproveRule(Base):
    """The owner's rule for approving simple claims automatically at filing time."""

    __tablename__ = "auto_approve_rules"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    max_cents: Mapped[int] = mapped_column(Integer)  # claims strictly under this amount
    issue_types: Mapped[str] = mapped_column(String(300), default="")  # comma list; empty = any
    resolutions: Mapped[str] = mapped_column(String(100), default="refund,store_credit")
    require_photos: Mapped[bool] = mapped_column(Boolean, default=True)
    quiet_months: Mapped[Optional[int]] = mapped_column(Integer)  # no claim from the email in N months
    position: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    @property
    def spec(self):
        return spec_from_columns(self.name, self.max_cents, self.issue_types, self.resolutions,
                                 self.require_photos, self.quiet_months)


class Event(Base):
    """Append-only trail: who did what, when, from which status to which.

    Database triggers refuse UPDATE and DELETE; the ORM refuses them too (see below).
    """

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(primary_key=True)
    claim_id: Mapped[Optional[int]] = mapped_column(ForeignKey("claims.id"), index=True)
    order_id: Mapped[Optional[int]] = mapped_column(ForeignKey("orders.id"), index=True)
    actor: Mapped[str] = mapped_column(String(100))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    action: Mapped[str] = mapped_column(String(48))
    from_status: Mapped[Optional[str]] = mapped_column(String(16))
    to_status: Mapped[Optional[str]] = mapped_column(String(16))
    details: Mapped[str] = mapped_column(Text, default="{}")  # JSON


class AppendOnlyError(RuntimeError):
    pass


@event.listens_for(Event, "before_update")
def _refuse_event_update(mapper, connection, target):
    raise AppendOnlyError("the event log is append-only")


@event.listens_for(Event, "before_delete")
def _refuse_event_delete(mapper, connection, target):
    raise AppendOnlyError("the event log is append-only")


class EventNote(Base):
    """Free text that belongs to an event (a staff note, a reason), kept beside the append-only
    log rather than in it: events hold no personal data, and this row can be redacted when a
    customer is erased (``services/customer_data.py``). The staff timeline shows it with its
    event."""

    __tablename__ = "event_notes"

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id"), index=True)
    claim_id: Mapped[Optional[int]] = mapped_column(ForeignKey("claims.id"), index=True)
    order_id: Mapped[Optional[int]] = mapped_column(ForeignKey("orders.id"), index=True)
    field: Mapped[str] = mapped_column(String(32))  # the details key it belongs under: note | reason
    body: Mapped[str] = mapped_column(Text, default="")

    event: Mapped[Event] = relationship()


class CustomerErasure(Base):
    """One erasure of a customer's personal data: who asked, when, for which request, how many
    rows were changed per table. Never the erased values (not even a hash of the email)."""

    __tablename__ = "customer_erasures"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(100))
    request_ref: Mapped[str] = mapped_column(String(200), default="")
    scope: Mapped[str] = mapped_column(String(16), default="customer")  # customer | orders | shop
    orders: Mapped[int] = mapped_column(Integer, default=0)
    claims: Mapped[int] = mapped_column(Integer, default=0)
    rows: Mapped[int] = mapped_column(Integer, default=0)
    counts: Mapped[str] = mapped_column(Text, default="{}")  # JSON {table: rows changed}


# --- recoveries: getting the money back from carriers and insurers -------------------------------

RECOVERY_STATES = ("to_file", "filed", "needs_action", "approved", "partly_approved", "rejected",
                   "paid", "cancelled", "written_off")


class Recovery(Base):
    """What the shop claims back from the carrier (or insurer) for an approved claim: one per
    claim and shipment. Its state changes only through ``services/recoveries.py``, which checks
    the action table in ``domain/recoveries.py`` and writes a ``RecoveryEvent``."""

    __tablename__ = "recoveries"

    id: Mapped[int] = mapped_column(primary_key=True)
    claim_id: Mapped[int] = mapped_column(ForeignKey("claims.id"))
    shipment_id: Mapped[int] = mapped_column(ForeignKey("shipments.id"))
    state: Mapped[str] = mapped_column(String(16), default="to_file")
    carrier: Mapped[str] = mapped_column(String(64), default="")  # as the shipment names it
    carrier_key: Mapped[str] = mapped_column(String(16), default="other")  # domain/carrier_claims
    issue_type: Mapped[str] = mapped_column(String(32))
    currency: Mapped[str] = mapped_column(String(3), default="USD")
    paid_out_cents: Mapped[int] = mapped_column(Integer, default=0)  # what the shop paid out
    liability_cents: Mapped[Optional[int]] = mapped_column(Integer)  # the carrier's, when known
    insured_minor: Mapped[Optional[int]] = mapped_column(Integer)  # the insured value, when known
    claimable_cents: Mapped[int] = mapped_column(Integer, default=0)
    approved_cents: Mapped[Optional[int]] = mapped_column(Integer)  # what the carrier approved
    recovered_cents: Mapped[int] = mapped_column(Integer, default=0)  # what was paid to the shop
    deadline: Mapped[Optional[date]] = mapped_column(Date)  # the carrier's last filing day
    carrier_claim_number: Mapped[str] = mapped_column(String(100), default="", server_default="")
    easypost_claim_id: Mapped[Optional[str]] = mapped_column(String(64))
    carrier_message: Mapped[str] = mapped_column(Text, default="", server_default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    filed_at: Mapped[Optional[datetime]]

    claim: Mapped[Claim] = relationship()
    shipment: Mapped[Shipment] = relationship()

    __table_args__ = (
        UniqueConstraint("claim_id", "shipment_id", name="uq_recoveries_claim_shipment"),
        Index("ix_recoveries_state_deadline", "state", "deadline"),
        CheckConstraint("state IN (" + ", ".join(f"'{x}'" for x in RECOVERY_STATES) + ")",
                        name="state"),
        CheckConstraint("paid_out_cents >= 0 AND claimable_cents >= 0 AND recovered_cents >= 0",
                        name="amounts"),
    )


class RecoveryEvent(Base):
    """Append-only: every step of a recovery (who, when, from which state to which). Kept apart
    from ``events``, whose from/to statuses are a claim's everywhere they are read (the
    customer's timeline, the outbound ``claim.*`` webhooks, the timers, the privacy export)."""

    __tablename__ = "recovery_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    recovery_id: Mapped[int] = mapped_column(ForeignKey("recoveries.id"), index=True)
    claim_id: Mapped[int] = mapped_column(ForeignKey("claims.id"), index=True)
    actor: Mapped[str] = mapped_column(String(100))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    action: Mapped[str] = mapped_column(String(32))
    from_state: Mapped[Optional[str]] = mapped_column(String(16))
    to_state: Mapped[Optional[str]] = mapped_column(String(16))
    details: Mapped[str] = mapped_column(Text, default="{}")  # JSON: ids, codes, amounts


class RecoveryFiling(Base):
    """A recovery to file through EasyPost (``POST /v2/claims``): written in the transaction that
    asks for it, sent by the ``easypost_claims`` job outside any transaction (leased: pending →
    sending). One per recovery: asking again while it is pending or sent changes nothing; a
    refused one can be asked again (it goes back to pending)."""

    __tablename__ = "recovery_filings"

    id: Mapped[int] = mapped_column(primary_key=True)
    recovery_id: Mapped[int] = mapped_column(ForeignKey("recoveries.id"), unique=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending|sending|sent|refused
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    lease_until: Mapped[Optional[datetime]]
    last_error: Mapped[str] = mapped_column(Text, default="")
    easypost_claim_id: Mapped[Optional[str]] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[Optional[datetime]]

    __table_args__ = (Index("ix_recovery_filings_status_next", "status", "next_attempt_at"),)


class RecoveryCancellation(Base):
    """An EasyPost claim to cancel (``POST /v2/claims/{id}/cancel``) because staff cancelled its
    recovery: written in that transaction, sent by the ``easypost_claims`` job (leased: pending →
    sending → sent | refused; "none" when EasyPost never got the claim). One per recovery:
    cancelling again while it is pending or sending changes nothing."""

    __tablename__ = "recovery_cancellations"

    id: Mapped[int] = mapped_column(primary_key=True)
    recovery_id: Mapped[int] = mapped_column(ForeignKey("recoveries.id"), unique=True)
    easypost_claim_id: Mapped[Optional[str]] = mapped_column(String(64))  # None: still being filed
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    lease_until: Mapped[Optional[datetime]]
    last_error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[Optional[datetime]]

    __table_args__ = (Index("ix_recovery_cancellations_status_next", "status", "next_attempt_at"),)


@event.listens_for(RecoveryEvent, "before_update")
def _refuse_recovery_event_update(mapper, connection, target):
    raise AppendOnlyError("the recovery events are append-only")


@event.listens_for(RecoveryEvent, "before_delete")
def _refuse_recovery_event_delete(mapper, connection, target):
    raise AppendOnlyError("the recovery events are append-only")


# --- the settings row ---------------------------------------------------------------------------

SETTINGS_DEFAULTS = {
    c.key: c.default.arg
    for c in StoreSettings.__table__.columns
    if c.default is not None and not callable(c.default.arg)
}


def settings_row(session) -> StoreSettings:
    """The store's settings row (a transient copy with defaults if none was saved yet)."""
    row = session.get(StoreSettings, 1)
    return row if row is not None else StoreSettings(id=1, **SETTINGS_DEFAULTS)


def ensure_settings_row(session) -> StoreSettings:
    """The settings row, created with its defaults if the store has none yet (for writing)."""
    row = session.get(StoreSettings, 1)
    if row is None:
        row = StoreSettings(id=1, **SETTINGS_DEFAULTS)
        session.add(row)
        session.flush()
    return row


# --- analytics roll-ups ---------------------------------------------------------------------------
# Sums per day and dimension, kept in the same transaction as every change to an order, its
# shipments, claims, resolutions and events (``infra/rollups.py`` says what each row counts). The
# analytics page reads these, never the rows: any period and filter at a million claims is a
# few thousand rows. ``python -m claims_core rollups --rebuild`` recomputes them.

def _rollup(name: str, keys: list, measures: tuple[str, ...]) -> Table:
    cols = [*keys, *(Column(m, BigInteger, nullable=False, server_default="0") for m in measures)]
    return Table(name, Base.metadata, *cols,
                 PrimaryKeyConstraint(*(k.name for k in keys), name=f"pk_{name}"))


def _day() -> Column:
    return Column("day", Date, nullable=False)


def _dim(name: str, length: int = 100) -> Column:
    return Column(name, String(length), nullable=False)


ROLLUP_SHIPMENTS = _rollup(
    "rollup_shipments",
    [_day(), _dim("carrier", 64), _dim("country", 2), _dim("province"), _dim("method"),
     _dim("issue_type", 32)],
    ("shipments", "orders", "claims"))
ROLLUP_UNITS = _rollup(
    "rollup_units", [_day(), _dim("carrier", 64), _dim("country", 2), _dim("sku"),
                     _dim("issue_type", 32)],
    ("shipped", "claimed"))
ROLLUP_CLAIMS = _rollup(
    "rollup_claims", [_day(), _dim("carrier", 64), _dim("country", 2), _dim("issue_type", 32)],
    ("filed", "approved", "denied", "filed_granted", "filed_denied", "filed_waiting"))
ROLLUP_DURATIONS = _rollup(
    "rollup_durations",
    [_day(), _dim("carrier", 64), _dim("country", 2), _dim("issue_type", 32), _dim("kind", 16),
     Column("bucket_s", BigInteger, nullable=False)],
    ("claims",))
ROLLUP_PAYOUTS = _rollup(
    "rollup_payouts", [_day(), _dim("carrier", 64), _dim("country", 2), _dim("issue_type", 32)],
    ("refunds", "store_credit", "reshipments"))
ROLLUP_ORDERS = _rollup(
    "rollup_orders",
    [_day(), Column("has_shipment", Integer, nullable=False), _dim("carrier", 64), _dim("country", 2),
     _dim("province"), _dim("value_band", 32)],
    ("fees", "protected_orders", "protected_fees", "protected_value", "paid_claims", "refunds",
     "store_credit", "reshipments", "reshipped", "recovered"))
ROLLUP_RECOVERIES = _rollup(
    "rollup_recoveries", [_day(), _dim("carrier", 64), _dim("country", 2), _dim("issue_type", 32)],
    ("recoveries", "paid_out", "claimable", "filed", "recovered", "rejected", "written_off",
     "lost_deadline", "lost_deadline_cents"))
ROLLUP_GENERATION = Table(
    "rollup_generation", Base.metadata,
    Column("id", Integer, primary_key=True),
    Column("generation", BigInteger, nullable=False, server_default="0"),
)  # one row, counting every transaction that changed a roll-up: the analytics figures' version
