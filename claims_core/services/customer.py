"""The customer's actions: file a claim, reply on it, check a step of the claim form.

One function per user action, one transaction each. Pages call these and show what comes back; a
``domain.ClaimRuleError`` carries a code and the message to show. Times can be passed in (``now=``) so
tests and demo data control the clock. What the customer reads (the order, its shipments, the
claim and its timeline) are the read models in ``services/order_views.py`` and
``services/claim_views.py``; the throttled look-up is ``services/lookup.py``.
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime
from typing import Sequence

from sqlalchemy import Engine, delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .. import domain
from ..domain import eligibility
from ..domain.lifecycle import Action
from ..domain.messages import Msg, N_
from ..domain.vocabulary import AuditAction
from ..infra import i18n
from ..infra.db import read_session, utcnow
from ..infra.models import (
    Claim,
    ClaimDraft,
    ClaimItem,
    Event,
    Evidence,
    Message,
    Order,
    Shipment,
    settings_row,
)
from ..infra.photos import PhotoRejected, ProcessedPhoto, normalize_signature, process_photo, signature_ink
from . import risk
from .claim_views import ClaimView, build_claim_view, claim_by_token
from .events import apply, record_event
from .order_views import (
    chosen_items,
    get_order_for_customer,
    line_unit_paid,
    remaining_quantities,
    resolution_options_for,
)
from .settings import load_settings
from .unit_of_work import run

REFERENCE_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"  # no 0/O, 1/I


# --- filing -------------------------------------------------------------------------------------

@dataclass
class ClaimRequest:
    idempotency_key: str
    order_id: int
    email: str
    shipment_id: int
    issue_type: str
    desired_resolution: str
    signature_kind: str  # drawn | typed
    accurate_confirmed: bool
    items: dict[int, int] = field(default_factory=dict)  # shipment_item_id -> quantity
    description: str = ""
    photos: list[tuple[str, bytes]] = field(default_factory=list)  # (filename, raw bytes)
    signature_name: str = ""
    signature_png: bytes | None = None
    filed_by: str = "customer"
    language: str = "en"  # the customer's language (en, es, fr, de): their emails are written in it
    signature_cannot_draw: bool = False  # typed because they can't draw (domain/signature.py)


@dataclass(frozen=True)
class ClaimReceipt:
    claim_id: int
    reference: str
    access_token: str
    status: str
    claimed_cents: int
    created: bool  # False when the idempotency key had already been used


def new_reference() -> str:
    return "CLM-" + "".join(secrets.choice(REFERENCE_ALPHABET) for _ in range(6))


def new_access_token() -> str:
    return secrets.token_urlsafe(32)


def process_photos(photos: Sequence[tuple[str, bytes]], max_bytes: int) -> list[ProcessedPhoto]:
    """Process every photo; report every bad file at once (a rejected file stores nothing)."""
    done, errors = [], []
    for name, raw in photos:
        try:
            done.append(process_photo(raw, name, max_bytes=max_bytes))
        except PhotoRejected as e:
            errors.append(e)
    if errors:
        raise domain.PhotosRejected(errors)
    return done


def file_claim(engine: Engine, req: ClaimRequest, *, now: datetime | None = None,
               processed: Sequence[ProcessedPhoto] | None = None) -> ClaimReceipt:
    """Customer (or staff on their behalf) files a claim.

    Claim, items, photos, signature and the event commit together or not at all. The same
    idempotency key twice returns the first claim. ``processed`` lets a caller that already
    validated the photos (the portal does, to show thumbnails) skip reprocessing them.
    """
    now = now or utcnow()
    key = (req.idempotency_key or "").strip()
    if not key or len(key) > 128:
        raise domain.InvalidInput(
            N_("This form has expired. Please reload the page and try again."),
            domain.ErrorCode.FORM_EXPIRED)

    existing = _receipt_for_key(engine, key)
    if existing is not None:
        return existing

    settings = load_settings(engine)
    domain.check_issue_type(req.issue_type)
    description = domain.clean_comment(req.description)
    photos = list(processed) if processed is not None else process_photos(
        req.photos, settings.max_photo_bytes
    )
    domain.check_photo_count(req.issue_type, len(photos), settings.max_photos)
    ink = signature_ink(req.signature_png) if req.signature_kind == "drawn" else 0
    # Re-encoding a drawn signature (Pillow, PNG optimize: ~35 ms for a 1200x400 canvas) happens
    # here, before the write transaction; one that can't be re-encoded is left to
    # ``_create_claim``, which fails as it always did.
    signature_png = None
    if req.signature_kind == "drawn":
        try:
            signature_png = normalize_signature(req.signature_png)
        except Exception:  # noqa: BLE001 - the same call inside the transaction raises it
            signature_png = None

    try:
        def work(s: Session) -> ClaimReceipt:
            again = s.scalars(select(Claim).where(Claim.idempotency_key == key)).first()
            if again is not None:
                return _receipt(again, created=False)
            return _receipt(_create_claim(s, req, key, description, photos, ink, now,
                                                     signature_png), created=True)
        return run(engine, work)
    except (IntegrityError, domain.ClaimRuleError) as e:
        # A concurrent submission may have just committed this very key (on PostgreSQL the
        # other transaction becomes visible mid-way): then this is a replay, not a conflict.
        existing = _receipt_for_key(engine, key)
        if existing is not None:
            return existing
        if isinstance(e, domain.ClaimRuleError):
            raise
        raise domain.AlreadyClaimed(
            N_("These items are already part of an open claim on this order. You can follow that "
               "claim with View My Claim.")
        )


def _receipt(claim: Claim, *, created: bool) -> ClaimReceipt:
    return ClaimReceipt(claim.id, claim.reference, claim.access_token, claim.status,
                        claim.claimed_cents, created)


def _receipt_for_key(engine: Engine, key: str) -> ClaimReceipt | None:
    with read_session(engine) as s:
        c = s.scalars(select(Claim).where(Claim.idempotency_key == key)).first()
        return _receipt(c, created=False) if c is not None else None


def _create_claim(s: Session, req: ClaimRequest, key: str, description: str,
                  photos: Sequence[ProcessedPhoto], ink: int, now: datetime,
                  signature_png: bytes | None = None) -> Claim:
    settings = settings_row(s)
    order = s.get(Order, req.order_id)
    if order is None or not domain.emails_match(req.email, order.email):
        raise domain.OrderNotFound(domain.LOOKUP_FAILED)
    sh = s.get(Shipment, req.shipment_id)
    if sh is None or sh.order_id != order.id:
        raise domain.InvalidInput(domain.CHOOSE_A_SHIPMENT, domain.ErrorCode.SHIPMENT_NOT_IN_ORDER)

    # Every rule again, inside the transaction: the window may have closed while the customer
    # was filling in the form, or another claim may have taken the items.
    real = [si for si in sh.items if not si.line_item.is_protection]
    verdict = eligibility.evaluate(order, sh, list(remaining_quantities(s, real).values()), now, settings)
    for refusal in verdict.reasons:
        if refusal.code != domain.ErrorCode.NOTHING_LEFT_TO_CLAIM:  # said per item below
            raise refusal
    domain.check_issue_available(req.issue_type, verdict.issue_types, sh.status,
                                 settings.lost_wait_days, sh.expected_delivery_at, settings.timezone)
    chosen = chosen_items(s, sh, req.issue_type, req.items)
    options = resolution_options_for(s, settings, sh, chosen)
    option = domain.check_resolution_choice(req.desired_resolution, options)
    domain.check_signature(
        kind=req.signature_kind, typed_name=req.signature_name, drawn_ink_pixels=ink,
        accurate_confirmed=req.accurate_confirmed, order_total_cents=order.total_cents,
        threshold_cents=settings.signature_threshold_cents,
        filed_by_staff=req.filed_by != "customer", cannot_draw_confirmed=req.signature_cannot_draw,
    )

    reference = new_reference()
    while s.scalars(select(Claim.id).where(Claim.reference == reference)).first() is not None:
        reference = new_reference()  # pragma: no cover - 1 in a billion
    by_id = {si.id: si for si in sh.items}
    claim = Claim(
        reference=reference,
        access_token=new_access_token(),
        idempotency_key=key,
        order_id=order.id,
        shipment_id=sh.id,
        category=domain.ISSUE_TYPES[req.issue_type].category,
        issue_type=req.issue_type,
        status=domain.SUBMITTED,
        description=description,
        desired_resolution=option.kind,
        claimed_cents=option.amount_cents,
        email=domain.normalize_email(req.email),
        carrier=sh.carrier or "",
        signature_kind=req.signature_kind,
        signature_name=domain.clean_signature_name(req.signature_name),
        signature_png=(signature_png if signature_png is not None else
                       normalize_signature(req.signature_png)) if req.signature_kind == "drawn" else None,
        signature_cannot_draw=domain.records_cannot_draw(req.signature_kind,
                                                         req.signature_cannot_draw),
        signed_at=now,
        filed_by=req.filed_by,
        language=claim_language(req.language),
        created_at=now,
        updated_at=now,
        items=[
            ClaimItem(shipment_item_id=sid, quantity=q,
                      unit_cents=line_unit_paid(by_id[sid].line_item), is_open=True)
            for sid, q in chosen.items()
        ],
        evidence=[_evidence(p, now) for p in photos],
    )
    s.add(claim)
    s.flush()
    claim.risk_score, claim.risk_level, _signals = risk.assess(s, claim)
    # The portal's saved progress for this order is used up.
    s.execute(delete(ClaimDraft).where(ClaimDraft.order_id == order.id,
                                       ClaimDraft.email == claim.email))
    record_event(
        s, actor=req.filed_by, action=AuditAction.CLAIM_FILED, claim=claim,
        to_status=domain.SUBMITTED,
        details={"reference": reference, "issue_type": req.issue_type,
                 "items": {str(k): v for k, v in chosen.items()}, "photos": len(photos),
                 "desired_resolution": option.kind, "claimed_cents": option.amount_cents},
        at=now,
    )
    return claim


def claim_language(lang: str | None) -> str:
    """The language a claim is kept in: one the portal speaks (``de-AT`` is ``de``), else English."""
    code = i18n.supported(lang)
    return code if code in i18n.LANGUAGES else i18n.DEFAULT


def _evidence(p: ProcessedPhoto, now: datetime, message: Message | None = None) -> Evidence:
    return Evidence(
        filename=p.filename, content_type=p.content_type, data=p.data, thumbnail=p.thumbnail,
        width=p.width, height=p.height, size_bytes=len(p.data), sha256=p.sha256, phash=p.phash,
        created_at=now, message_id=message.id if message is not None else None,
    )


# --- the customer coming back -------------------------------------------------------------------

def _closed_by_timer(s: Session, claim: Claim) -> bool:
    last = s.scalars(select(Event.action).where(Event.claim_id == claim.id,
                                                Event.to_status == domain.CLOSED)
                     .order_by(Event.id.desc()).limit(1)).first()
    return last == domain.AuditAction.AUTO_CLOSED


def add_customer_message(
    engine: Engine, token: str, body: str, photos: Sequence[tuple[str, bytes]] = (), *,
    now: datetime | None = None,
) -> ClaimView:
    """The customer replies. While the shop waits for information they can add photos, and the
    reply puts the claim back in review."""
    now = now or utcnow()
    text = domain.clean_comment(body, N_("Your message"))
    settings = load_settings(engine)
    processed = process_photos(photos, settings.max_photo_bytes) if photos else []  # outside
    if not text and not processed:
        raise domain.InvalidInput(N_("Write a message or add a photo before sending."),
                                  domain.ErrorCode.TEXT_REQUIRED)
    return run(engine, lambda s: _customer_message(s, token, text, processed, now))


def _customer_message(s: Session, token: str, text: str, processed: Sequence[ProcessedPhoto],
                      now: datetime) -> ClaimView:
    return reply_on_claim(s, claim_by_token(s, token), text, processed, now)


def reply_on_claim(s: Session, claim: Claim, text: str, processed: Sequence[ProcessedPhoto],
                   now: datetime, *, via: str = "portal") -> ClaimView:
    """The customer's reply on a claim, however it came (the page, an email: ``via``): the same
    message, event and status change (back to review; an auto-closed claim reopens in the window)."""
    settings = settings_row(s)
    if processed and not domain.allows(Action.CUSTOMER_REPLY, claim.status):
        raise domain.InvalidInput(
            N_("You can add photos when the store asks for more information. "
               "Send a message if there's something to add."),
            domain.ErrorCode.PHOTOS_NOT_REQUESTED)
    if len(claim.evidence) + len(processed) > domain.reply_photo_limit(settings.max_photos):
        raise domain.EvidenceRequired(
            Msg.of(N_("This claim already has {n} photos; no more can be added."),
                   n=len(claim.evidence)),
            domain.ErrorCode.TOO_MANY_PHOTOS)
    msg = Message(author_kind="customer", author_name=claim.order.customer_name, body=text,
                  created_at=now)
    claim.messages.append(msg)
    s.flush()
    for p in processed:
        claim.evidence.append(_evidence(p, now, msg))
    record_event(s, actor="customer", action=AuditAction.CUSTOMER_MESSAGE, claim=claim,
                 details={"message_id": msg.id, "photos": len(processed),
                          **({"via": via} if via != "portal" else {})}, at=now)
    if domain.allows(Action.CUSTOMER_REPLY, claim.status):
        apply(s, claim, Action.CUSTOMER_REPLY, actor="customer", at=now)
    elif domain.allows(Action.REOPEN_BY_CUSTOMER, claim.status) and _closed_by_timer(s, claim):
        # Closed for lack of an answer: the answer reopens it, within the filing window.
        deadline = eligibility.deadline_for(claim.order, claim.shipment, settings)
        if domain.within_window(deadline, now, settings.timezone):
            apply(s, claim, Action.REOPEN_BY_CUSTOMER, actor="customer", at=now)
    claim.updated_at = now
    s.flush()
    return build_claim_view(s, claim)


# --- the portal's step checks -------------------------------------------------------------------

@dataclass(frozen=True)
class CheckedDetails:
    items: dict[int, int]
    description: str
    amount_cents: int


def check_claim_details(engine: Engine, order_id: int, email: str, shipment_id: int,
                        issue_type: str, items: dict[int, int] | None, photo_count: int,
                        description: str, *, now: datetime | None = None) -> CheckedDetails:
    """Everything filing will check about the chosen shipment, scenario, items, photos and text,
    checked now so the customer hears about a problem at the step that can fix it."""
    view = get_order_for_customer(engine, order_id, email, now=now)
    ship = next((s for s in view.shipments if s.id == shipment_id), None)
    if ship is None:
        raise domain.InvalidInput(domain.CHOOSE_A_SHIPMENT, domain.ErrorCode.SHIPMENT_NOT_IN_ORDER)
    if not ship.claimable:  # the first reason's code, as the order view gives it
        raise domain.ClaimRuleError(ship.reason, ship.reason_codes[0] if ship.reason_codes
                                    else domain.ErrorCode.NOT_SHIPPED)
    settings = load_settings(engine)
    domain.check_issue_available(issue_type, ship.issue_types, ship.status, settings.lost_wait_days,
                                 ship.tracking.expected_delivery_at if ship.tracking else None,
                                 settings.timezone)
    unit = {i.shipment_item_id: i.unit_cents for i in ship.items}
    chosen = domain.claimed_items(issue_type, items,
                                  {i.shipment_item_id: i.remaining for i in ship.items},
                                  {i.shipment_item_id: i.name for i in ship.items})
    domain.check_photo_count(issue_type, photo_count, settings.max_photos)
    text = domain.clean_comment(description)
    return CheckedDetails(chosen, text, sum(unit[k] * q for k, q in chosen.items()))
