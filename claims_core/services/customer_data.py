"""A customer's personal data: export it (one ZIP) and erase it.

Both walk the one map of where personal data lives, ``infra/personal_data.py``. A customer is
found by email (normalised as ``domain.identifiers`` does) and, optionally, by Shopify customer id
(read from the stored Shopify bodies, which carry ``customer.id``).

Erasure replaces every personal value with a neutral marker (``[erased]``, the placeholder image,
NULL), deletes drafts, redacts stored copies (webhook bodies, outbound deliveries, API answers,
emails) and cuts the customer's name, email, phone and street out of what staff wrote. What
analytics reads is never touched (``rollups.read_columns()``), so every figure is the same after.
The search for the rows is done first, outside the write; the write is one transaction per
customer, and it is recorded in ``customer_erasures`` (who, when, which request, rows per table;
never the values) and by an event. On SQLite the write runs with ``secure_delete`` and the WAL is
checkpointed after, so the erased values don't linger in the database file's free pages.
"""
from __future__ import annotations

import io
import json
import re
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterable

from sqlalchemy import delete, or_, select, text, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from ..domain.errors import ClaimRuleError, ErrorCode, InvalidInput
from ..domain.identifiers import normalize_email, normalize_order_number
from ..domain.messages import N_
from ..domain.vocabulary import OPEN_STATUSES, AuditAction
from ..infra import i18n
from ..infra import spool as spool_db
from ..infra.db import read_session, utcnow
from ..infra.models import (
    ApiIdempotency, Claim, ClaimDraft, CustomerErasure, Decision, Event, EventNote, Evidence,
    InboundMail, Message, Order, OutboxMessage, Shipment, Tracking, WebhookDelivery,
    WebhookReceipt, settings_row,
)
from ..infra.personal_data import ERASED, ERASED_DOCUMENT, placeholder_jpeg
from . import webhook_receipts
from .events import record_event
from .unit_of_work import run

MAX_SCRUB_TERMS = 40
# what the customer can see of their claim's events
VISIBLE_ACTIONS = {AuditAction.CLAIM_FILED, AuditAction.CUSTOMER_MESSAGE,
                   AuditAction.STAFF_MESSAGE, AuditAction.INFO_REQUESTED}

README_LINES = (
    N_("This archive holds the personal data our claims portal keeps about you."),
    N_("data.json: your orders, shipments, claims with their items, your statements and "
       "signatures, our decisions, the messages between us, the events of your claims you can "
       "see, and your store credit codes."),
    N_("photos/: the photos you sent with your claims, as we stored them."),
    N_("signatures/: the signatures you drew when filing a claim."),
    N_("You can ask us to erase this data. We then keep each claim's reference, dates, issue "
       "type, amounts, decision, carrier and country, without anything that names you."),
)
README_HASHES = N_("After an erasure we also keep a fingerprint of each photo (not the photo) "
                   "to recognise the same picture in a later claim.")
README_NO_HASHES = N_("After an erasure we keep nothing of your photos.")


class OpenClaims(ClaimRuleError):
    code = ErrorCode.ERASURE_OPEN_CLAIM


class CustomerNotFound(ClaimRuleError):
    code = ErrorCode.CUSTOMER_NOT_FOUND


@dataclass(frozen=True)
class ErasureReport:
    erasure_id: int | None
    orders: int
    claims: int
    rows: int
    counts: dict[str, int]
    request_ref: str = ""


@dataclass
class _Subject:
    """Who is being exported or erased, and where their rows are (found before any write)."""
    email: str
    whole: bool = True  # the whole customer (False: only some of their orders)
    order_ids: set[int] = field(default_factory=set)
    claim_ids: set[int] = field(default_factory=set)
    tracking_numbers: set[str] = field(default_factory=set)
    receipt_ids: set[int] = field(default_factory=set)
    delivery_ids: set[int] = field(default_factory=set)
    idempotency_ids: set[int] = field(default_factory=set)
    outbox_ids: set[int] = field(default_factory=set)  # mail to them, or about their claims
    mail_ids: set[int] = field(default_factory=set)  # mail from them, or on their claims
    terms: set[str] = field(default_factory=set)  # names, emails, phones, streets to cut out
    phones: set[str] = field(default_factory=set)

    def pattern(self) -> re.Pattern | None:
        parts = []
        for term in sorted(self.terms, key=len, reverse=True)[:MAX_SCRUB_TERMS]:
            words = [re.escape(w) for w in term.split()]
            if words:
                parts.append(r"\b" + r"\s+".join(words) + r"\b" if term[0].isalnum() and
                             term[-1].isalnum() else r"\s+".join(words))
        for phone in self.phones:
            digits = re.sub(r"\D", "", phone)
            if len(digits) >= 6:
                parts.append(r"\+?" + r"[\s().\-]*".join(digits))
        return re.compile("|".join(parts), re.IGNORECASE) if parts else None


PHONE_LIKE = re.compile(r"\+?\d[\d\s().\-]{5,}\d")
DATE_LIKE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _phones_in(text_: str | None) -> set[str]:
    """Phone numbers the customer wrote themselves (7+ digits, not a date): cut out of staff
    notes too."""
    return {m.group(0) for m in PHONE_LIKE.finditer(text_ or "")
            if len(re.sub(r"\D", "", m.group(0))) >= 7 and not DATE_LIKE.fullmatch(m.group(0))}


def _terms_of_name(name: str) -> set[str]:
    name = (name or "").strip()
    if not name or name == ERASED:
        return set()
    out = {name}
    out.update(w for w in name.split() if len(w) >= 3)
    return out


def _json(raw: str | None) -> Any:
    try:
        return json.loads(raw or "")
    except ValueError:
        return None


def _shopify_details(body: Any, into: _Subject) -> None:
    """Collect the names, phones and streets a Shopify body names (to cut them out of notes)."""
    if not isinstance(body, dict):
        return
    cust = body.get("customer") if isinstance(body.get("customer"), dict) else {}
    for who in (body, cust):
        for key in ("phone",):
            if who.get(key):
                into.phones.add(str(who[key]))
        first, last = str(who.get("first_name") or ""), str(who.get("last_name") or "")
        into.terms |= _terms_of_name(f"{first} {last}".strip())
    for addr in (body.get("shipping_address"), body.get("billing_address"),
                 cust.get("default_address") if isinstance(cust, dict) else None):
        if isinstance(addr, dict):
            into.terms |= _terms_of_name(str(addr.get("name") or ""))
            for key in ("address1", "address2"):
                if addr.get(key):
                    into.terms.add(str(addr[key]).strip())
            if addr.get("phone"):
                into.phones.add(str(addr["phone"]))


def _body_matches(body: Any, email: str, customer_id: str | None) -> bool:
    if not isinstance(body, dict):
        return False
    cust = body.get("customer") if isinstance(body.get("customer"), dict) else {}
    emails = {normalize_email(str(x)) for x in (body.get("email"), body.get("contact_email"),
                                                 cust.get("email")) if x}
    if email and email in emails:
        return True
    return bool(customer_id) and str(cust.get("id") or "") == customer_id


def _find(s: Session, email: str, shopify_customer_id: str | None,
          order_numbers: Iterable[str] | None) -> _Subject:
    subject = _Subject(email, whole=order_numbers is None)
    cid = str(shopify_customer_id or "").strip() or None
    receipt_orders: dict[int, str | None] = {}
    # the Shopify bodies that name the customer (by email or customer id) give their orders' ids
    external: set[str] = set()
    likes = [WebhookReceipt.payload.ilike(f"%{email}%")] if email else []
    if cid:
        likes.append(WebhookReceipt.payload.like(f"%{cid}%"))
    if likes:
        for rid, payload in s.execute(select(WebhookReceipt.id, WebhookReceipt.payload)
                                      .where(or_(*likes))):
            body = _json(payload)
            if _body_matches(body, email, cid):
                _shopify_details(body, subject)
                ref = None
                if body.get("id") is not None and "line_items" in body:
                    ref = str(body["id"])
                elif body.get("order_id") is not None:
                    ref = str(body["order_id"])
                receipt_orders[rid] = ref
                if ref:
                    external.add(ref)
    conds = [Order.email == email] if email else []
    if external:
        conds.append(Order.external_id.in_(external))
    orders = list(s.scalars(select(Order).where(or_(*conds)))) if conds else []
    claim_conds = [Claim.email == email] if email else []
    if orders:
        claim_conds.append(Claim.order_id.in_([o.id for o in orders]))
    claims = list(s.scalars(select(Claim).where(or_(*claim_conds)))) if claim_conds else []
    if order_numbers is not None:
        wanted = {normalize_order_number(n) for n in order_numbers}
        orders = [o for o in orders if o.order_number in wanted]
        claims = [c for c in claims if c.order.order_number in wanted]
    subject.order_ids = {o.id for o in orders} | {c.order_id for c in claims}
    kept_external = {o.external_id for o in orders if o.external_id}
    subject.receipt_ids = {rid for rid, ref in receipt_orders.items()
                           if subject.whole or (ref is not None and ref in kept_external)}
    if not subject.whole:
        external = set(kept_external)
    subject.claim_ids = {c.id for c in claims}
    for o in s.scalars(select(Order).where(Order.id.in_(subject.order_ids))):
        subject.terms |= _terms_of_name(o.customer_name)
        if o.email and o.email != ERASED:
            subject.terms.add(o.email)
        if o.shipping_address1 and o.shipping_address1 != ERASED:
            subject.terms.add(o.shipping_address1.strip())
        if o.external_id:
            external.add(o.external_id)
    for c in claims:
        subject.phones |= _phones_in(c.description)
        subject.terms |= _terms_of_name(c.signature_name)
        if c.email and c.email != ERASED:
            subject.terms.add(c.email)
    if email:
        subject.terms.add(email)
    for body in s.scalars(select(Message.body).where(Message.claim_id.in_(subject.claim_ids),
                                                     Message.author_kind == "customer")):
        subject.phones |= _phones_in(body)
    if email:
        for body in s.scalars(select(InboundMail.body_text).where(InboundMail.from_addr == email)):
            subject.phones |= _phones_in(body)
    subject.tracking_numbers = set(s.scalars(
        select(Shipment.tracking_number).where(Shipment.order_id.in_(subject.order_ids),
                                               Shipment.tracking_number.is_not(None))))
    # other Shopify bodies about those orders (fulfillments, refunds: by order id)
    if external:
        subject.receipt_ids |= set(s.scalars(select(WebhookReceipt.id).where(or_(
            WebhookReceipt.sequence_key.in_([f"shopify:{x}" for x in external]),
            WebhookReceipt.subject.in_(external)))))
    # mail both ways (addresses aren't indexed: found here, outside the write)
    by_email = email if subject.whole else ""
    subject.outbox_ids = set(s.scalars(select(OutboxMessage.id).where(or_(
        OutboxMessage.claim_id.in_(subject.claim_ids),
        *([OutboxMessage.to_addr == by_email] if by_email else [])))))
    subject.mail_ids = set(s.scalars(select(InboundMail.id).where(or_(
        InboundMail.claim_id.in_(subject.claim_ids),
        *([InboundMail.from_addr == by_email] if by_email else [])))))
    references = list(s.scalars(select(Claim.reference).where(Claim.id.in_(subject.claim_ids))))
    subject.delivery_ids = set(s.scalars(select(WebhookDelivery.id).where(
        WebhookDelivery.claim_id.in_(subject.claim_ids)))) if subject.claim_ids else set()
    keys = [ApiIdempotency.response_body.like(f"%{r}%") for r in references]
    if email:
        keys.append(ApiIdempotency.response_body.ilike(f"%{email}%"))
    if keys:
        subject.idempotency_ids = set(s.scalars(select(ApiIdempotency.id).where(or_(*keys))))
    return subject


# --- export -------------------------------------------------------------------------------------

def _iso(dt: datetime | None) -> str | None:
    return dt.isoformat() if dt is not None else None


def export_customer(engine: Engine, email: str, *, shopify_customer_id: str | None = None,
                    include_staff_notes: bool = True, now: datetime | None = None) -> bytes:
    """Everything kept about the customer, as one ZIP: ``data.json``, their photos and drawn
    signatures as files, and a README in their language saying what each file is."""
    email = normalize_email(email)
    if not email and not shopify_customer_id:
        raise InvalidInput("Give the customer's email or Shopify customer id.",
                           ErrorCode.TEXT_REQUIRED)
    now = now or utcnow()
    files: dict[str, bytes] = {}
    webhook_receipts.move_spooled(engine)  # a body received a moment ago names them too
    with read_session(engine) as s:
        subject = _find(s, email, shopify_customer_id, None)
        if not subject.order_ids and not subject.claim_ids:
            raise CustomerNotFound("No order or claim was found for that customer.")
        settings = settings_row(s)
        orders = list(s.scalars(select(Order).where(Order.id.in_(subject.order_ids))
                                .order_by(Order.created_at, Order.id)))
        claims = list(s.scalars(select(Claim).where(Claim.id.in_(subject.claim_ids))
                                .order_by(Claim.created_at, Claim.id)))
        pods = {t.tracking_number: t for t in s.scalars(select(Tracking).where(
            Tracking.tracking_number.in_(subject.tracking_numbers)))}
        doc: dict[str, Any] = {
            "generated_at": _iso(now), "email": email, "store": settings.name,
            "orders": [_order_json(o, pods) for o in orders],
            "claims": [_claim_json(s, c, files, include_staff_notes) for c in claims],
            "drafts": [{"order_id": d.order_id, "data": _json(d.data), "updated_at":
                        _iso(d.updated_at)} for d in s.scalars(select(ClaimDraft).where(
                            or_(ClaimDraft.email == email,
                                ClaimDraft.order_id.in_(subject.order_ids))))],
            "emails_to_you": [
                {"at": _iso(m.created_at), "subject": m.subject, "body": m.body_text}
                for m in s.scalars(select(OutboxMessage).where(OutboxMessage.to_addr == email)
                                   .order_by(OutboxMessage.id))],
            "emails_from_you": [
                {"at": _iso(m.received_at), "subject": m.subject, "body": m.body_text}
                for m in s.scalars(select(InboundMail).where(or_(
                    InboundMail.from_addr == email,
                    InboundMail.claim_id.in_(subject.claim_ids))).order_by(InboundMail.id))],
            "photo_fingerprints_kept_after_erasure": bool(settings.keep_photo_hashes),
        }
        lang = claims[-1].language if claims else settings.default_language
        keep_hashes = bool(settings.keep_photo_hashes)
    t = i18n.translator(lang)
    readme = "\n\n".join([*(t(line) for line in README_LINES),
                          t(README_HASHES if keep_hashes else README_NO_HASHES)]) + "\n"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("README.txt", readme)
        z.writestr("data.json", json.dumps(doc, indent=2, ensure_ascii=False, default=str))
        for name, data in files.items():
            z.writestr(name, data)
    return buf.getvalue()


def _order_json(o: Order, pods: dict[str, Tracking]) -> dict:
    return {
        "order": o.name, "created_at": _iso(o.created_at), "email": o.email,
        "customer_name": o.customer_name, "currency": o.currency, "total_cents": o.total_cents,
        "shipping_address": {"address1": o.shipping_address1, "city": o.shipping_city,
                             "zip": o.shipping_zip, "province": o.shipping_province,
                             "country": o.shipping_country},
        "items": [{"sku": li.sku, "name": li.name, "quantity": li.quantity,
                   "unit_price_cents": li.unit_price_cents} for li in o.line_items],
        "shipments": [{
            "tracking_number": sh.tracking_number, "carrier": sh.carrier, "status": sh.status,
            "shipped_at": _iso(sh.shipped_at), "delivered_at": _iso(sh.delivered_at),
            **({"proof_of_delivery": {"signed_by": pods[sh.tracking_number].pod_signed_by,
                                      "location": pods[sh.tracking_number].pod_location}}
               if sh.tracking_number in pods and (pods[sh.tracking_number].pod_signed_by or
                                                  pods[sh.tracking_number].pod_location) else {}),
        } for sh in o.shipments],
    }


def _claim_json(s: Session, c: Claim, files: dict[str, bytes], staff_notes: bool) -> dict:
    photos = []
    for n, e in enumerate(c.evidence, 1):
        name = f"photos/{c.reference}/{n:02d}.jpg"
        files[name] = e.data
        photos.append({"file": name, "filename": e.filename, "width": e.width,
                       "height": e.height, "sent_at": _iso(e.created_at)})
    signature_file = None
    if c.signature_png:
        signature_file = f"signatures/{c.reference}.png"
        files[signature_file] = c.signature_png
    events = s.scalars(select(Event).where(Event.claim_id == c.id).order_by(Event.id)).all()
    out = {
        "reference": c.reference, "order": c.order.name, "status": c.status,
        "issue_type": c.issue_type, "created_at": _iso(c.created_at),
        "decided_at": _iso(c.decided_at), "desired_resolution": c.desired_resolution,
        "claimed_cents": c.claimed_cents, "email": c.email, "language": c.language,
        "items": [{"sku": ci.shipment_item.line_item.sku, "name": ci.shipment_item.line_item.name,
                   "quantity": ci.quantity, "unit_cents": ci.unit_cents} for ci in c.items],
        "statement": {"description": c.description, "signature_kind": c.signature_kind,
                      "signature_name": c.signature_name, "signed_at": _iso(c.signed_at),
                      "signature_file": signature_file},
        "photos": photos,
        "decisions": [{"outcome": d.outcome, "reason_code": d.reason_code,
                       "decided_at": _iso(d.decided_at)} for d in c.decisions],
        "resolutions": [{"kind": r.kind, "amount_cents": r.amount_cents,
                         "store_credit_code": r.store_credit_code, "created_at":
                         _iso(r.created_at), "voided_at": _iso(r.voided_at)}
                        for r in c.resolutions],
        "conversation": [{"at": _iso(m.created_at), "from": m.author_kind,
                          "author": m.author_name, "body": m.body}
                         for m in c.messages if not m.internal],
        "events": [{"at": _iso(ev.at), "action": ev.action, "from_status": ev.from_status,
                    "to_status": ev.to_status} for ev in events
                   if ev.to_status is not None or ev.action in VISIBLE_ACTIONS],
    }
    if staff_notes:
        notes = [{"at": _iso(m.created_at), "author": m.author_name, "body": m.body}
                 for m in c.messages if m.internal]
        notes += [{"at": _iso(d.decided_at), "author": d.decided_by, "body": d.note}
                  for d in c.decisions if d.note]
        notes += [{"about": n.field, "body": n.body} for n in s.scalars(
            select(EventNote).where(EventNote.claim_id == c.id).order_by(EventNote.id))]
        notes += [{"about": "photo review", "body": e.review_note}
                  for e in c.evidence if e.review_note]
        out["staff_notes"] = notes
    return out


# --- erasure ------------------------------------------------------------------------------------

def erase_customer(engine: Engine, email: str, *, actor: str, request_ref: str = "",
                   shopify_customer_id: str | None = None,
                   order_numbers: Iterable[str] | None = None,
                   now: datetime | None = None) -> ErasureReport:
    """Erase one customer (or, with ``order_numbers``, only those orders of theirs). Refused
    with ``ERASURE_OPEN_CLAIM`` while one of their claims is still open."""
    email = normalize_email(email)
    if not email and not shopify_customer_id:
        raise InvalidInput("Give the customer's email or Shopify customer id.",
                           ErrorCode.TEXT_REQUIRED)
    orders = list(order_numbers) if order_numbers is not None else None
    webhook_receipts.move_spooled(engine)  # a body received a moment ago names them too
    with read_session(engine) as s:
        subject = _find(s, email, shopify_customer_id, orders)
        _refuse_open(s, subject.claim_ids)
    placeholder = placeholder_jpeg()  # prepared before the write
    pattern = subject.pattern()
    report = run(engine, lambda s: _erase(s, subject, pattern, placeholder, actor=actor,
                                          request_ref=request_ref, now=now or utcnow(),
                                          scope="orders" if orders is not None else "customer"))
    _checkpoint(engine)
    spool = spool_db.for_database(engine)
    if spool is not None:  # the moved bodies' old pages out of the spool's WAL too
        _checkpoint(spool)
    return report


def erase_all_customers(engine: Engine, *, actor: str, request_ref: str = "",
                        now: datetime | None = None) -> list[ErasureReport]:
    """The shop is gone (Shopify's shop/redact): every customer with an order or a claim is
    erased, one transaction each. A customer with a claim still open is skipped (as a single
    erasure would refuse) and the others go on; calling again after those claims are decided
    erases the rest (customers already erased no longer match)."""
    with read_session(engine) as s:
        emails = sorted(set(s.scalars(select(Order.email).where(Order.email != ERASED)))
                        | set(s.scalars(select(Claim.email).where(Claim.email != ERASED))))
    reports = []
    for e in emails:
        if not e:
            continue
        try:
            reports.append(erase_customer(engine, e, actor=actor, request_ref=request_ref,
                                          now=now))
        except (OpenClaims, CustomerNotFound):
            continue
    return reports


def _refuse_open(s: Session, claim_ids: set[int]) -> None:
    if not claim_ids:
        return
    open_refs = list(s.scalars(select(Claim.reference).where(
        Claim.id.in_(claim_ids), Claim.status.in_(OPEN_STATUSES)).order_by(Claim.reference)))
    if open_refs:
        raise OpenClaims("This customer has claims still open (" + ", ".join(open_refs) +
                         "). Decide or close them first, then erase.")


def _checkpoint(engine: Engine) -> None:
    """SQLite: write the WAL back into the database file and empty it, so no old page with the
    erased values stays in the WAL. Best effort (a reader can hold it back)."""
    if engine.dialect.name != "sqlite":
        return
    raw = engine.raw_connection()  # outside any transaction, as a checkpoint must be
    try:
        raw.driver_connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    except Exception:  # noqa: BLE001 - busy: the next checkpoint writes it back
        pass
    finally:
        raw.close()


def _erase(s: Session, subject: _Subject, pattern: re.Pattern | None, placeholder: bytes, *,
           actor: str, request_ref: str, now: datetime, scope: str) -> ErasureReport:
    sqlite = s.get_bind().dialect.name == "sqlite"
    if sqlite:
        s.execute(text("PRAGMA secure_delete = ON"))  # freed space is zeroed, not left behind
    if subject.whole and subject.email:  # rows that arrived since the search (indexed look-ups)
        subject.order_ids |= set(s.scalars(select(Order.id).where(Order.email == subject.email)))
        subject.claim_ids |= set(s.scalars(select(Claim.id).where(Claim.email == subject.email)))
    _refuse_open(s, subject.claim_ids)  # again, inside the write: nothing opened since
    counts: Counter[str] = Counter()
    claim_ids, order_ids = subject.claim_ids, subject.order_ids
    keep_hashes = bool(settings_row(s).keep_photo_hashes)

    def scrub(value: str | None) -> str:
        return pattern.sub(ERASED, value) if (pattern is not None and value) else (value or "")

    def changed(table: str, result) -> None:
        counts[table] += max(result.rowcount or 0, 0)

    # the customer's own email is swept everywhere only when the whole customer is erased
    by_email = subject.email if subject.whole else ""
    if order_ids:
        changed("orders", s.execute(update(Order).where(Order.id.in_(order_ids)).values(
            email=ERASED, customer_name=ERASED, shipping_address1=ERASED, shipping_city=ERASED,
            shipping_zip=ERASED), execution_options={"synchronize_session": False}))
    draft_conds = [ClaimDraft.order_id.in_(order_ids)] if order_ids else []
    if by_email:
        draft_conds.append(ClaimDraft.email == by_email)
    if draft_conds:
        changed("claim_drafts", s.execute(delete(ClaimDraft).where(or_(*draft_conds)),
                                          execution_options={"synchronize_session": False}))
    if claim_ids:
        changed("claims", s.execute(update(Claim).where(Claim.id.in_(claim_ids)).values(
            email=ERASED, description=ERASED, signature_name=ERASED, signature_png=None,
            version=Claim.version + 1), execution_options={"synchronize_session": False}))
        values: dict[str, Any] = dict(data=placeholder, thumbnail=placeholder, sha256="",
                                      filename=ERASED, size_bytes=len(placeholder),
                                      width=64, height=64)
        if not keep_hashes:
            values["phash"] = ""
        changed("evidence", s.execute(update(Evidence).where(Evidence.claim_id.in_(claim_ids))
                                      .values(**values),
                                      execution_options={"synchronize_session": False}))
        for e in s.scalars(select(Evidence).where(Evidence.claim_id.in_(claim_ids),
                                                  Evidence.review_note != "")):
            e.review_note = scrub(e.review_note)
        for m in s.scalars(select(Message).where(Message.claim_id.in_(claim_ids))):
            if m.author_kind == "customer":
                m.body, m.author_name = ERASED, ERASED
            else:
                m.body, m.author_name = scrub(m.body), scrub(m.author_name)
            counts["messages"] += 1
        for d in s.scalars(select(Decision).where(Decision.claim_id.in_(claim_ids),
                                                  Decision.note != "")):
            d.note = scrub(d.note)
            counts["decisions"] += 1
    note_conds = []
    if claim_ids:
        note_conds.append(EventNote.claim_id.in_(claim_ids))
    if order_ids:
        note_conds.append(EventNote.order_id.in_(order_ids))
    if note_conds:
        for n in s.scalars(select(EventNote).where(or_(*note_conds))):
            n.body = scrub(n.body)
            counts["event_notes"] += 1
    for m in s.scalars(select(InboundMail).where(InboundMail.id.in_(subject.mail_ids))):
        _erase_mail(m)
        counts["inbound_mail"] += 1
    if subject.outbox_ids:
        for m in s.scalars(select(OutboxMessage).where(OutboxMessage.id.in_(subject.outbox_ids))):
            to_customer = m.to_addr == subject.email or (
                pattern is not None and pattern.fullmatch(m.to_addr or "") is not None)
            if to_customer:
                m.to_addr, m.subject, m.body_text, m.body_html = ERASED, ERASED, ERASED, ERASED
                if m.status in ("pending", "failed"):
                    m.status = "withdrawn"
            else:
                m.subject, m.body_text, m.body_html = (scrub(m.subject), scrub(m.body_text),
                                                       scrub(m.body_html))
            counts["outbox"] += 1
    if subject.tracking_numbers:
        changed("trackings", s.execute(update(Tracking).where(
            Tracking.tracking_number.in_(subject.tracking_numbers)).values(
            pod_signed_by=ERASED, pod_location=ERASED, pod_photo_url=""),
            execution_options={"synchronize_session": False}))
    for r in s.scalars(select(WebhookReceipt).where(WebhookReceipt.id.in_(subject.receipt_ids))):
        r.payload, r.detail, r.last_error = ERASED_DOCUMENT, scrub(r.detail), scrub(r.last_error)
        if r.status != "done":  # never applied: it would bring the erased values back
            r.status, r.outcome = "done", "ignored"
        counts["webhook_receipts"] += 1
    for d in s.scalars(select(WebhookDelivery).where(
            WebhookDelivery.id.in_(subject.delivery_ids))):
        d.payload, d.last_error = ERASED_DOCUMENT, scrub(d.last_error)
        if d.status in ("pending", "sending"):
            d.status, d.last_error = "failed", "the customer's data was erased"
        counts["webhook_deliveries"] += 1
    if subject.idempotency_ids:
        changed("api_idempotency", s.execute(update(ApiIdempotency).where(
            ApiIdempotency.id.in_(subject.idempotency_ids)).values(
            response_body=ERASED_DOCUMENT), execution_options={"synchronize_session": False}))
    counts = Counter({k: v for k, v in counts.items() if v})
    total = sum(counts.values())
    row = CustomerErasure(at=now, actor=actor, request_ref=(request_ref or "")[:200], scope=scope,
                          orders=len(order_ids), claims=len(claim_ids), rows=total,
                          counts=json.dumps(dict(sorted(counts.items()))))
    s.add(row)
    s.flush()
    record_event(s, actor=actor, action=AuditAction.CUSTOMER_ERASED, at=now,
                 details={"erasure_id": row.id, "orders": len(order_ids),
                          "claims": len(claim_ids), "rows": total})
    if sqlite:
        s.flush()
        s.execute(text("PRAGMA secure_delete = OFF"))
    return ErasureReport(row.id, len(order_ids), len(claim_ids), total, dict(counts),
                         row.request_ref)


def _erase_mail(m: InboundMail) -> None:
    m.from_addr, m.subject, m.body_text, m.raw = ERASED, ERASED, ERASED, None


def erasures(engine: Engine, limit: int = 50) -> list[dict]:
    """The latest erasures, newest first (for the owner's page)."""
    with read_session(engine) as s:
        return [{"at": r.at, "actor": r.actor, "request_ref": r.request_ref, "scope": r.scope,
                 "orders": r.orders, "claims": r.claims, "rows": r.rows,
                 "counts": json.loads(r.counts or "{}")}
                for r in s.scalars(select(CustomerErasure).order_by(CustomerErasure.id.desc())
                                   .limit(limit))]

