"""Shopify's mandatory compliance requests: ``customers/data_request``, ``customers/redact`` and
``shop/redact``.

The webhook route stores the signed body as a receipt; when the receipt is applied (the
``webhook_receipts`` job, in its transaction) ``record`` writes one ``privacy_requests`` row,
once per request (``request_key`` is unique: a replay changes nothing). The ``privacy_requests``
job (``process_due``, every minute; ``tick`` too) then carries each out, outside any transaction
of its own (the export and the erasure are ``services/customer_data.py``'s, and run their own):

- **data request**: the customer's data is exported (the same ZIP as Settings → Customer data
  gives) and kept on the request; every owner is mailed (the outbox) that it is ready to download
  in Settings → Customer data, with Shopify's 30-day deadline. The ZIP is removed by the retention
  job ``EXPORT_KEEP_DAYS`` after it was ready.
- **customer redact**: ``erase_customer(..., order_numbers=…)`` for the orders Shopify lists (its
  order ids, mapped to this store's orders; none listed: the whole customer). **A customer with
  an open claim** (submitted, in review or waiting on them) is not erased yet: the request
  waits (``waiting``, shown in Settings) and is carried out by the first run after the last such
  claim is decided or closed — the erasure would otherwise leave staff deciding a claim with no
  customer to answer. Shopify expects completion within 30 days (``due_at``); Settings shows
  the deadline of each waiting request.
- **shop redact** (48 hours after the shop uninstalled the app): ``erase_all_customers``; the
  claims stay, anonymous (analytics unchanged). Nothing waits: the shop is gone.

A request whose work fails is tried again with backoff; after ``MAX_ATTEMPTS`` it is ``failed``,
shown in Settings with its error. The event log records each request and its completion without
personal data (the request's id and kind only).
"""
from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from ..domain.identifiers import normalize_email
from ..domain.privacy import COMPLIANCE_DAYS, compliance_due
from ..domain.vocabulary import OPEN_STATUSES, AuditAction, Role
from ..domain.windows import format_date, retry_backoff
from ..infra.db import read_session, utcnow
from ..infra.models import Claim, Order, PrivacyRequest, StaffUser, settings_row
from ..infra.personal_data import ERASED
from . import notifications
from .events import record_event
from .unit_of_work import run

log = logging.getLogger("claims.privacy")

DATA_REQUEST, CUSTOMER_REDACT, SHOP_REDACT = "data_request", "customer_redact", "shop_redact"
TOPICS = {"customers/data_request": DATA_REQUEST, "customers/redact": CUSTOMER_REDACT,
          "shop/redact": SHOP_REDACT}
KIND_LABELS = {DATA_REQUEST: "Data request", CUSTOMER_REDACT: "Erase a customer",
               SHOP_REDACT: "Erase all customers (shop uninstalled)"}
MAX_ATTEMPTS = 5
LEASE = timedelta(minutes=10)  # a run's hold on a request (another process leaves it alone)
WAIT_CHECK = timedelta(minutes=5)  # how often a waiting redact looks at its claims again
ACTOR = "shopify"


@dataclass(frozen=True)
class ComplianceRequest:
    """A compliance webhook's body as Shopify documents it."""

    kind: str
    shop_id: str
    shop_domain: str
    customer_id: str = ""
    email: str = ""
    shopify_order_ids: tuple[str, ...] = ()
    data_request_id: str = ""

    @property
    def key(self) -> str:
        """The request's identity: the same request delivered again has the same key."""
        parts = [self.kind, self.shop_id or self.shop_domain]
        if self.kind == DATA_REQUEST:
            parts += [self.data_request_id or self.customer_id, self.email]
        elif self.kind == CUSTOMER_REDACT:
            parts += [self.customer_id, self.email, *sorted(self.shopify_order_ids)]
        return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def _id(value, what: str) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(f"{what} is not an id")
    return str(value)[:64]


def parse(topic: str, payload) -> ComplianceRequest:
    """``{shop_id, shop_domain, customer: {id, email, phone}, orders_requested|orders_to_redact,
    data_request: {id}}`` read and checked (no database). ValueError for another shape."""
    kind = TOPICS[topic]
    if not isinstance(payload, dict):
        raise ValueError("the body is not a JSON object")
    shop_id, domain = _id(payload.get("shop_id"), "shop_id"), payload.get("shop_domain") or ""
    if not isinstance(domain, str) or not (shop_id or domain):
        raise ValueError("the body names no shop (shop_id, shop_domain)")
    if kind == SHOP_REDACT:
        return ComplianceRequest(kind, shop_id, domain[:255])
    customer = payload.get("customer")
    if not isinstance(customer, dict):
        raise ValueError("the body has no customer")
    email = customer.get("email") or ""
    if not isinstance(email, str):
        raise ValueError("the customer's email is not text")
    customer_id = _id(customer.get("id"), "the customer's id")
    if not (email.strip() or customer_id):
        raise ValueError("the customer has neither an email nor an id")
    orders = payload.get("orders_requested" if kind == DATA_REQUEST else "orders_to_redact") or []
    if not isinstance(orders, list):
        raise ValueError("the orders are not a list")
    order_ids = tuple(_id(o, "an order id") for o in orders)
    request = payload.get("data_request") or {}
    if not isinstance(request, dict):
        raise ValueError("data_request is not an object")
    return ComplianceRequest(kind, shop_id, domain[:255], customer_id,
                             normalize_email(email)[:254], order_ids,
                             _id(request.get("id"), "data_request.id"))


def record(s: Session, req: ComplianceRequest, *, now: datetime) -> tuple[bool, str]:
    """Record the request in the caller's transaction (the receipt's): (new?, what it did)."""
    numbers: list[str] = []
    if req.shopify_order_ids:
        numbers = sorted(s.scalars(select(Order.order_number)
                                   .where(Order.external_id.in_(req.shopify_order_ids))))
    insert = pg_insert if s.get_bind().dialect.name == "postgresql" else sqlite_insert
    new_id = s.execute(insert(PrivacyRequest).values(
        source="shopify", kind=req.kind, request_key=req.key,
        shopify_request_id=req.data_request_id, shop_domain=req.shop_domain, email=req.email,
        shopify_customer_id=req.customer_id, order_numbers=json.dumps(numbers), status="pending",
        received_at=now, due_at=compliance_due(now), attempts=0, next_attempt_at=now,
        last_error="", detail="")
        .on_conflict_do_nothing(index_elements=["request_key"])
        .returning(PrivacyRequest.id)).scalar()
    if new_id is None:
        return False, f"{KIND_LABELS[req.kind]}: already received; nothing changed"
    record_event(s, actor=ACTOR, action=AuditAction.PRIVACY_REQUEST_RECEIVED, at=now,
                 details={"request_id": new_id, "kind": req.kind,
                          "orders": len(req.shopify_order_ids)})
    due = format_date(compliance_due(now), settings_row(s).timezone)  # the store's local day
    return True, f"{KIND_LABELS[req.kind]} #{new_id} recorded (due {due})"


# --- carrying them out (the job) --------------------------------------------------------------------

def _open_claims(s: Session, email: str, order_numbers: list[str]) -> list[str]:
    if not email:
        return []
    q = select(Claim.reference).where(Claim.email == email, Claim.status.in_(OPEN_STATUSES))
    if order_numbers:
        q = q.join(Order, Order.id == Claim.order_id).where(Order.order_number.in_(order_numbers))
    return list(s.scalars(q.order_by(Claim.id)))


def _take(engine: Engine, now: datetime) -> list[int]:
    """The due requests this run holds (a lease through ``next_attempt_at``)."""
    def go(s: Session) -> list[int]:
        ids = list(s.scalars(select(PrivacyRequest.id).where(
            PrivacyRequest.status.in_(("pending", "waiting")),
            PrivacyRequest.next_attempt_at <= now).order_by(PrivacyRequest.id).limit(50)))
        taken = []
        for rid in ids:
            held = s.execute(update(PrivacyRequest).where(
                PrivacyRequest.id == rid, PrivacyRequest.next_attempt_at <= now)
                .values(next_attempt_at=now + LEASE)
                .execution_options(synchronize_session=False)).rowcount
            if held:
                taken.append(rid)
        return taken
    return run(engine, go)


def _owner_addresses(s: Session) -> list[str]:
    owners = list(s.scalars(select(StaffUser.email).where(
        StaffUser.active, StaffUser.role == Role.OWNER, StaffUser.email != "")))
    return owners or [settings_row(s).support_email]


def _finish(engine: Engine, rid: int, now: datetime, detail: str, *, export: bytes | None = None
            ) -> None:
    def go(s: Session) -> None:
        r = s.get(PrivacyRequest, rid)
        r.status, r.done_at, r.detail, r.last_error = "done", now, detail[:2000], ""
        if export is not None:  # a data request (b"": nothing kept about them)
            r.export_zip, r.export_ready_at = (export or None), now
            ready = (f"Their data is exported and ready to download in Settings → Customer "
                     f"data → Shopify requests: {notifications.public_url()}/settings"
                     if export else "Nothing is kept about this customer here; Settings → "
                     f"Customer data → Shopify requests says so: "
                     f"{notifications.public_url()}/settings")
            for to in _owner_addresses(s):
                notifications.enqueue(
                    s, key=f"privacy-export:{rid}:{to}", kind="privacy_export_ready", to=to,
                    claim=None, now=now, lines=[
                        f"Shopify sent a customer data request (#{rid}) for a customer of "
                        f"{settings_row(s).name}.", ready,
                        f"Send it to the customer by "
                        f"{format_date(r.due_at, settings_row(s).timezone)}: Shopify expects "
                        f"data requests answered within {COMPLIANCE_DAYS} days."])
        else:
            r.email = ""  # erased: the request keeps no personal data either
        record_event(s, actor=ACTOR, action=AuditAction.PRIVACY_REQUEST_DONE, at=now,
                     details={"request_id": rid, "kind": r.kind})
    run(engine, go)


def _wait(engine: Engine, rid: int, now: datetime, claims: list[str]) -> None:
    def go(s: Session) -> None:
        r = s.get(PrivacyRequest, rid)
        r.status, r.next_attempt_at = "waiting", now + WAIT_CHECK
        r.detail = ("waiting until the open claim(s) " + ", ".join(claims)
                    + " are decided; then the customer is erased")[:2000]
    run(engine, go)


def _failed(engine: Engine, rid: int, now: datetime, error: Exception) -> None:
    def go(s: Session) -> None:
        r = s.get(PrivacyRequest, rid)
        r.attempts += 1
        r.last_error = f"{type(error).__name__}: {error}"[:2000]
        if r.attempts >= MAX_ATTEMPTS:
            r.status = "failed"
        else:
            r.next_attempt_at = now + retry_backoff(r.attempts)
    run(engine, go)


def _carry_out(engine: Engine, rid: int, now: datetime) -> str:
    from . import customer_data  # services/customer_data.py: export and erasure

    with read_session(engine) as s:
        r = s.get(PrivacyRequest, rid)
        kind, email, customer_id = r.kind, r.email, r.shopify_customer_id or None
        numbers = json.loads(r.order_numbers or "[]")
        open_claims = _open_claims(s, email, numbers) if kind == CUSTOMER_REDACT else []
    ref = f"shopify {kind} #{rid}"
    if kind == DATA_REQUEST:
        try:
            data = customer_data.export_customer(engine, email, shopify_customer_id=customer_id,
                                                 now=now)
        except customer_data.CustomerNotFound:
            _finish(engine, rid, now, "nothing is kept about this customer", export=b"")
            return "exported"
        _finish(engine, rid, now, f"export ready ({len(data):,} bytes)", export=data)
        return "exported"
    if kind == CUSTOMER_REDACT:
        if open_claims:
            _wait(engine, rid, now, open_claims)
            return "waiting"
        try:
            customer_data.erase_customer(engine, email, actor=ACTOR, request_ref=ref,
                                         shopify_customer_id=customer_id,
                                         order_numbers=numbers or None, now=now)
        except customer_data.OpenClaims as e:  # found through the Shopify customer id
            _wait(engine, rid, now, re.findall(r"CLM-[A-Z0-9]+", e.message) or ["(open)"])
            return "waiting"
        except customer_data.CustomerNotFound:
            _finish(engine, rid, now, "nothing is kept about this customer")
            return "erased"
        _finish(engine, rid, now, "customer erased"
                + (f" (orders {', '.join(numbers)})" if numbers else ""))
        return "erased"
    customer_data.erase_all_customers(engine, actor=ACTOR, request_ref=ref, now=now)
    with read_session(engine) as s:  # a customer with an open claim was left: waits for it
        still_open = list(s.scalars(select(Claim.reference).where(
            Claim.status.in_(OPEN_STATUSES), Claim.email != ERASED).order_by(Claim.id)))
    if still_open:
        _wait(engine, rid, now, still_open)
        return "waiting"
    _finish(engine, rid, now, "every customer erased; the claims stay, anonymous")
    return "erased"


def process_due(engine: Engine, *, now: datetime | None = None,
                stop: threading.Event | None = None) -> dict:
    """Carry out every due request (the ``privacy_requests`` job). Returns counts."""
    now = now or utcnow()
    tally = {"exported": 0, "erased": 0, "waiting": 0, "failed": 0}
    for rid in _take(engine, now):
        if stop is not None and stop.is_set():
            run(engine, lambda s, rid=rid: s.execute(update(PrivacyRequest).where(
                PrivacyRequest.id == rid).values(next_attempt_at=now)))
            continue
        try:
            tally[_carry_out(engine, rid, now)] += 1
        except Exception as e:  # noqa: BLE001 - one request's failure never stops the others
            log.warning("privacy request %s failed: %s", rid, e, exc_info=True)
            _failed(engine, rid, now, e)
            tally["failed"] += 1
    return tally


# --- what the owner sees ------------------------------------------------------------------------

@dataclass(frozen=True)
class RequestRow:
    id: int
    kind: str
    label: str
    status: str
    received_at: datetime
    due_at: datetime
    done_at: datetime | None
    detail: str
    last_error: str
    export_ready: bool
    email: str


def list_requests(engine: Engine, limit: int = 100) -> list[RequestRow]:
    with read_session(engine) as s:
        rows = s.execute(select(
            PrivacyRequest.id, PrivacyRequest.kind, PrivacyRequest.status,
            PrivacyRequest.received_at, PrivacyRequest.due_at, PrivacyRequest.done_at,
            PrivacyRequest.detail, PrivacyRequest.last_error,
            PrivacyRequest.export_zip.is_not(None), PrivacyRequest.email)
            .order_by(PrivacyRequest.id.desc()).limit(limit)).all()
    return [RequestRow(r[0], r[1], KIND_LABELS.get(r[1], r[1]), *r[2:]) for r in rows]


def download_export(engine: Engine, request_id: int, actor: str, *,
                    now: datetime | None = None) -> tuple[str, bytes] | None:
    """(file name, the ZIP) of a prepared data request, recorded as downloaded; None if gone."""
    now = now or utcnow()

    def go(s: Session):
        r = s.get(PrivacyRequest, request_id)
        if r is None or r.export_zip is None:
            return None
        record_event(s, actor=actor, action=AuditAction.PRIVACY_EXPORT_DOWNLOADED, at=now,
                     details={"request_id": request_id})
        return f"customer-data-request-{request_id}.zip", bytes(r.export_zip)
    return run(engine, go)
