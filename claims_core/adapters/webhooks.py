"""Inbound webhooks: Shopify (orders, fulfillments, refunds, disputes), 17TRACK and EasyPost
(tracking).

Routes of the ``st.App`` (see ``routes()``), in the same process ``streamlit run app.py`` starts:

    POST /webhooks/shopify    X-Shopify-Hmac-Sha256: base64 HMAC-SHA256 of the raw body
    POST /webhooks/17track    sign: hex SHA-256 of the raw body + "/" + the key
    POST /webhooks/easypost   X-Hmac-Signature: "hmac-sha256-hex=" + hex HMAC-SHA256 of the body

Each secret comes from the environment or ``.streamlit/secrets.toml`` (``SHOPIFY_WEBHOOK_SECRET``,
``TRACK17_WEBHOOK_KEY``, ``EASYPOST_WEBHOOK_SECRET``); a route whose secret isn't set answers 404.

**Acknowledged at once, applied in the background.** A route checks the signature on the raw
body, reads the JSON (nested at most ``MAX_DEPTH`` levels) and its documented shape (pure
parsing, no database), then stores the signed, checked body as a ``webhook_receipts`` row in one
short transaction and answers 200 ``received`` (Shopify gives a webhook 5 seconds). A delivery is
stored once (unique per source and delivery id): a redelivery is answered ``duplicate`` and changes
nothing. Answers: 401 for a missing or wrong signature (nothing stored), 413 for a body over
1 MB, 400 with a reason for a body that isn't JSON, is nested too deeply or isn't the documented
shape (logged).

The receipts of concurrent requests are stored together (``_GroupCommit``), and their writer asks
for SQLite's write lock every few milliseconds (``_store_eagerly``) instead of through SQLite's
busy handler, whose sleeps of up to 100 ms would keep it waiting behind other processes' writers.

``apply_pending_receipts`` (a background job, every ~2 s; also from ``tick``) reads and parses the
due receipts before any write transaction, then applies them oldest first, **in order per order
/ per tracking number** (``sequence_key``: a later receipt never overtakes an earlier one of the
same order or parcel), in short transactions (``BATCH_SECONDS``, then the lock is left free for
``PAUSE_SECONDS``): orders through the CSV importer's own upsert, carrier events through ``services.tracking``
(replays and out-of-order events change nothing there either); a push with thousands of scans is
stored ``tracking.CHECKPOINTS_PER_TRANSACTION`` at a time, so no other writer waits long. A
fulfillment or refund for an order not seen yet is kept (``waiting``) and applied when the order
arrives. A dispute (``disputes/create``, ``disputes/update``: a chargeback) goes through
``services.disputes``: the order is marked disputed, its open claims held, its approved ones
flagged. A receipt that fails is tried again with backoff (``domain.windows.retry_backoff``); one
that can't be applied ends ``failed`` with its reason (``last_error``), shown to staff (Settings →
Shopify & tracking) and never dropped.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import queue
import re
import threading
import time
import unicodedata
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from datetime import datetime

from sqlalchemy import Engine, func, select, tuple_
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, defer
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ..domain.identifiers import normalize_tracking
from ..domain.vocabulary import AuditAction
from ..domain.windows import retry_backoff
from ..infra import config
from ..infra.db import BUSY_TIMEOUT_MS, read_session, utcnow, write_session
from ..infra.models import Order, WebhookReceipt, settings_row
from ..services import disputes, privacy_requests, recoveries, tracking
from ..services.events import PENDING, record_event
from ..services.unit_of_work import run
from . import carrier_feeds, easypost_claims, importer
from .web import engine

log = logging.getLogger("claims.webhooks")

MAX_BODY_BYTES = 1_000_000
MAX_DEPTH = 64  # the documented bodies nest 7 levels at most
SHOPIFY_ORDER_TOPICS = ("orders/create", "orders/updated", "orders/cancelled")
SHOPIFY_FULFILLMENT_TOPICS = ("fulfillments/create", "fulfillments/update")
# Shopify's mandatory compliance topics (services/privacy_requests.py carries them out)
SHOPIFY_COMPLIANCE_TOPICS = tuple(privacy_requests.TOPICS)
# Shopify Payments disputes (chargebacks): services/disputes.py
SHOPIFY_DISPUTE_TOPICS = ("disputes/create", "disputes/update")
SHOPIFY_TOPICS = (*SHOPIFY_ORDER_TOPICS, *SHOPIFY_FULFILLMENT_TOPICS, "refunds/create",
                  *SHOPIFY_COMPLIANCE_TOPICS, *SHOPIFY_DISPUTE_TOPICS)

# the background job
READ_AHEAD = 200  # receipts read and parsed at a time, outside any write transaction
BATCH_SECONDS = 0.04  # one transaction applies receipts for at most this long…
BATCH_SIZE = 32  # …and at most this many
# between two transactions the write lock is left free this long, so every writer waiting
# meanwhile (a customer, a route) gets its turn
PAUSE_SECONDS = 0.05
MAX_ATTEMPTS = 5  # tries of a receipt that fails unexpectedly before it is marked failed
BIG_BODY_CHARS = 50_000  # a body this long is applied on its own, in bounded transactions


class Rejected(Exception):
    """The body can't be used (answered 400 with ``reason``)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Outcome:
    outcome: str  # applied | duplicate | waiting | ignored | received
    detail: str = ""


@dataclass(frozen=True)
class Delivery:
    """A checked delivery, ready to be stored as a receipt."""

    source: str
    delivery_id: str
    topic: str
    sequence_key: str  # receipts with the same key are applied in the order received
    body: str


# --- signatures (constant-time comparisons) ----------------------------------------------------

def shopify_signature(body: bytes, secret: str) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def track17_signature(body: bytes, key: str) -> str:
    return hashlib.sha256(body + b"/" + key.encode()).hexdigest()


def easypost_signature(body: bytes, secret: str) -> str:
    key = unicodedata.normalize("NFKD", secret).encode()
    return "hmac-sha256-hex=" + hmac.new(key, body, hashlib.sha256).hexdigest()


def _matches(given: str | None, expected: str, *, case_insensitive: bool = False) -> bool:
    if not given:
        return False
    given = given.strip()
    if case_insensitive:
        given, expected = given.lower(), expected.lower()
    return hmac.compare_digest(given.encode(), expected.encode())


# --- reading a body (no database) ----------------------------------------------------------------

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKET = re.compile(r"[\[\]{}]")


def _too_deep(text: str, limit: int = MAX_DEPTH) -> bool:
    """Does the JSON text nest arrays/objects more than ``limit`` levels (strings don't count)?"""
    if text.count("[") + text.count("{") <= limit:
        return False
    depth = 0
    for m in _BRACKET.finditer(_STRING.sub("", text)):
        if m.group() in "[{":
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


def read_json(body: bytes):
    """The body as JSON (UTF-8, nested at most ``MAX_DEPTH`` levels), or Rejected."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        raise Rejected(f"the body is not JSON: {e}") from None
    if _too_deep(text):
        raise Rejected(f"the body is not JSON this app reads: nested more than {MAX_DEPTH} levels")
    try:
        return json.loads(text), text
    except RecursionError:  # belt and braces: the check above already bounds the nesting
        raise Rejected(f"the body is not JSON this app reads: nested more than {MAX_DEPTH} levels"
                       ) from None
    except ValueError as e:
        raise Rejected(f"the body is not JSON: {e}") from None


def _carrier_updates(source: str, payload):
    parse = carrier_feeds.parse_17track if source == "17track" else carrier_feeds.parse_easypost
    try:
        return parse(payload)
    except carrier_feeds.FeedError as e:
        raise Rejected(e.reason) from None


def check_carrier(source: str, body: bytes, text: str, payload) -> Delivery | None:
    """A 17TRACK or EasyPost body read and checked; None when there is nothing to apply (an
    EasyPost event that isn't about a tracker)."""
    if source == "easypost":  # EasyPost's claim events move recoveries (easypost_claims.py)
        claim_event = _easypost_claim_event(payload)
        if claim_event is not None:
            return Delivery(source, (claim_event.event_id or hashlib.sha256(body).hexdigest())[:200],
                            claim_event.name, f"claim:{claim_event.claim_id}", text)
    updates = _carrier_updates(source, payload)
    if not updates:
        return None
    event_id = next((u.event_id for u in updates if u.event_id), "")
    topic = str(payload.get("event") or payload.get("description") or "")[:64] \
        if isinstance(payload, dict) else ""
    return Delivery(source, (event_id or hashlib.sha256(body).hexdigest())[:200], topic,
                    "track:" + normalize_tracking(updates[0].tracking_number)[:70], text)


def _shape_error(topic: str, e: Exception) -> Rejected:
    return Rejected(f"the {topic} body isn't the shape Shopify documents ({type(e).__name__})")


def check_shopify(topic: str, webhook_id: str, body: bytes, text: str, payload) -> Delivery | None:
    """A Shopify body read and checked (as far as it can be without the database); None for a
    topic the app doesn't use."""
    if topic not in SHOPIFY_TOPICS:
        return None
    if not isinstance(payload, dict):
        raise Rejected("the body is not a JSON object")
    if topic in SHOPIFY_COMPLIANCE_TOPICS:
        try:
            req = privacy_requests.parse(topic, payload)
        except ValueError as e:
            raise Rejected(f"the {topic} body isn't the shape Shopify documents: {e}") from None
        delivery = webhook_id or hashlib.sha256(topic.encode() + b"|" + body).hexdigest()
        return Delivery("shopify", delivery[:200], topic, f"privacy:{req.key[:16]}", text)
    try:
        if topic in SHOPIFY_ORDER_TOPICS:
            importer.parse_shopify_order(payload, "")
            order_ref = payload.get("id") or payload.get("name")
        else:
            order_ref = payload.get("order_id")
            if topic in SHOPIFY_DISPUTE_TOPICS:
                if order_ref is None:  # a dispute on a charge without an order: nothing here
                    return None
                try:
                    disputes.parse(payload)
                except ValueError as e:
                    raise Rejected(f"the {topic} body isn't the shape Shopify documents: {e}"
                                   ) from None
            if order_ref is None or isinstance(order_ref, (dict, list, bool, float)):
                raise Rejected(f"the {topic} body has no order_id")
            if topic in SHOPIFY_FULFILLMENT_TOPICS:
                carrier_feeds.parse_shopify_fulfillment(payload)
            elif topic in SHOPIFY_DISPUTE_TOPICS:
                pass
            elif payload.get("id") is None:
                raise Rejected("the refund has no id")
    except importer.PayloadError as e:
        raise Rejected(str(e)) from None
    except carrier_feeds.FeedError as e:
        raise Rejected(e.reason) from None
    except (TypeError, AttributeError, KeyError, ValueError) as e:  # a shape Shopify doesn't send
        raise _shape_error(topic, e) from None
    delivery = webhook_id or hashlib.sha256(topic.encode() + b"|" + body).hexdigest()
    return Delivery("shopify", delivery[:200], topic[:64], f"shopify:{str(order_ref)[:64]}", text)


# --- storing a receipt (one short transaction) ---------------------------------------------------

GROUP_MAX = 200  # receipts stored per transaction at most
_WRITER_IDLE_S = 2.0


def _insert_all(s: Session, batch: list[tuple[Delivery, datetime]]) -> list[Outcome]:
    """Store the batch in two statements (few statements: the transaction holding SQLite's write
    lock never waits long for Python's GIL, even with 50 requests running): which deliveries are
    stored already, then the new ones at once (``ON CONFLICT DO NOTHING``: one stored by another
    process meanwhile is left as it is)."""
    wanted = {(d.source, d.delivery_id) for d, _ in batch}
    seen = set(s.execute(select(WebhookReceipt.source, WebhookReceipt.delivery_id).where(
        tuple_(WebhookReceipt.source, WebhookReceipt.delivery_id).in_(list(wanted)))).all())
    rows, outcomes = [], []
    for d, now in batch:
        key = (d.source, d.delivery_id)
        if key in seen:
            outcomes.append(Outcome("duplicate"))
            continue
        seen.add(key)
        outcomes.append(Outcome("received"))
        rows.append(dict(source=d.source, delivery_id=d.delivery_id, topic=d.topic,
                         received_at=now, status="pending", sequence_key=d.sequence_key,
                         attempts=0, next_attempt_at=now, outcome="pending", subject="",
                         detail="", payload=d.body, last_error=""))
    if rows:
        insert = pg_insert if s.get_bind().dialect.name == "postgresql" else sqlite_insert
        s.connection().execute(insert(WebhookReceipt.__table__).on_conflict_do_nothing(
            index_elements=["source", "delivery_id"]), rows)
    return outcomes


_EAGER_BUSY_MS = 3  # SQLite's own busy handler waits this long per try…
_EAGER_SLEEP_S = 0.001  # …then the receipts' writer tries again after this


def _store_eagerly(db: Engine, work):
    """``work(session)`` in one write transaction; on SQLite the write lock is asked for every few
    milliseconds. SQLite's busy handler sleeps up to 100 ms between tries, so a writer that waits
    with it behind customers filing claims from other processes (who take the lock back and forth
    between its tries) waits seconds; the receipts' writer holds the lock a few milliseconds for a
    whole group of requests, so it asks often and the routes answer at once."""
    if db.dialect.name != "sqlite":
        with write_session(db) as s:
            return work(s)
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    with db.connect() as conn:
        raw = conn.connection.driver_connection
        raw.execute(f"PRAGMA busy_timeout={_EAGER_BUSY_MS}")
        try:
            while True:
                try:
                    conn.begin()  # BEGIN IMMEDIATE (infra/db.py)
                    break
                except OperationalError as e:
                    if "locked" not in str(e) or time.monotonic() > deadline:
                        raise
                    time.sleep(_EAGER_SLEEP_S)
            with Session(bind=conn, expire_on_commit=False) as s:  # joins conn's transaction
                out = work(s)
                s.commit()  # the session's own hooks; conn's transaction stays open
            conn.commit()
            return out
        finally:
            raw.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")


class _GroupCommit:
    """The receipts of concurrent requests stored together: one writer thread per engine takes
    whatever is queued (up to ``GROUP_MAX``) and inserts it in one short transaction. SQLite
    commits one transaction at a time anyway; one commit for many receipts, handed over without
    the busy handler's sleeps, is what lets 50 senders through. The thread ends when idle."""

    _lock = threading.Lock()
    _writers: dict[int, "_GroupCommit"] = {}

    def __init__(self, db: Engine):
        self.db = db
        self.queue: queue.SimpleQueue = queue.SimpleQueue()

    @classmethod
    def submit(cls, db: Engine, d: Delivery, now: datetime | None) -> Outcome:
        done: Future = Future()
        with cls._lock:
            writer = cls._writers.get(id(db))
            if writer is None or writer.db is not db:
                writer = cls._writers[id(db)] = cls(db)
                threading.Thread(target=writer._run, name="webhook-receipts-writer",
                                 daemon=True).start()
            writer.queue.put((d, now, done))
        return done.result(timeout=30)  # never reached unless the database hangs

    def _run(self) -> None:
        while True:
            try:
                first = self.queue.get(timeout=_WRITER_IDLE_S)
            except queue.Empty:
                with self._lock:
                    if self.queue.empty():
                        if self._writers.get(id(self.db)) is self:
                            del self._writers[id(self.db)]
                        return
                continue
            batch = [first]
            while len(batch) < GROUP_MAX:
                try:
                    batch.append(self.queue.get_nowait())
                except queue.Empty:
                    break
            t0 = time.perf_counter()
            try:
                at = utcnow()
                outcomes = _store_eagerly(self.db, lambda s, batch=batch, at=at: _insert_all(
                    s, [(d, now or at) for d, now, _ in batch]))
            except BaseException as e:  # noqa: BLE001 - each waiting request answers it
                for *_, done in batch:
                    done.set_exception(e)
                continue
            took = time.perf_counter() - t0
            if took > 1:
                log.warning("storing %d webhook receipts took %.1f s", len(batch), took)
            for (*_, done), outcome in zip(batch, outcomes):
                done.set_result(outcome)


def store(db: Engine, d: Delivery, *, now: datetime | None = None) -> Outcome:
    """Store the delivery as a pending receipt, once: ``received``, or ``duplicate`` when this
    delivery id was stored before (nothing changes). Returns once it is committed."""
    return _GroupCommit.submit(db, d, now)


# --- applying a receipt (the background job) -----------------------------------------------------

def _feed_updates(s: Session, updates, now: datetime) -> Outcome:
    outcomes = [tracking.record(s, u, now=now) for u in updates]
    waiting = [o.tracking_number for o in outcomes if o.shipments == 0]
    new = sum(o.new_checkpoints for o in outcomes)
    holds = sum(o.holds for o in outcomes)
    detail = f"{new} new checkpoints, {holds} claims put on hold"
    if waiting:
        detail += f"; kept until an order ships {', '.join(waiting)}"
    return Outcome("applied", detail)


def _apply_to_order(s: Session, topic: str, order: Order, payload, now: datetime) -> Outcome:
    if topic in SHOPIFY_DISPUTE_TOPICS:
        try:
            changed, detail = disputes.record(s, order, payload, now=now)
        except ValueError as e:
            raise Rejected(f"the {topic} body isn't the shape Shopify documents: {e}")
        return Outcome("applied" if changed else "ignored", detail)
    if topic in SHOPIFY_FULFILLMENT_TOPICS:
        skipped = importer.apply_shopify_fulfillment(s, order, payload)
        if skipped:
            return Outcome("ignored", skipped)
        try:
            updates = carrier_feeds.parse_shopify_fulfillment(payload)
        except carrier_feeds.FeedError as e:
            raise Rejected(e.reason)
        return _feed_updates(s, updates, now)
    importer.apply_shopify_refund(s, order, payload)
    return Outcome("applied", f"refund on order {order.name}")


def _fail(receipt: WebhookReceipt, reason: str) -> None:
    receipt.status, receipt.outcome = "failed", "rejected"
    receipt.detail = receipt.last_error = reason[:2000]


def _apply_shopify(s: Session, receipt: WebhookReceipt, topic: str, payload, now: datetime) -> Outcome:
    if topic in SHOPIFY_COMPLIANCE_TOPICS:  # recorded here, carried out by its own job
        try:
            req = privacy_requests.parse(topic, payload)
        except ValueError as e:
            raise Rejected(f"the {topic} body isn't the shape Shopify documents: {e}")
        new, detail = privacy_requests.record(s, req, now=now)
        return Outcome("applied" if new else "ignored", detail)
    try:
        if topic in SHOPIFY_ORDER_TOPICS:
            pattern = settings_row(s).protection_pattern
            order, created = importer.upsert_shopify_order(s, payload, pattern, now)
            if created is None:
                return Outcome("ignored", f"an older update of order {order.name} than the "
                                          "one applied; nothing changed")
            record_event(s, actor="shopify", action=AuditAction.ORDER_SYNCED, order_id=order.id,
                         details={"topic": topic, "created": created}, at=now)
            waiting = s.scalars(select(WebhookReceipt).where(
                WebhookReceipt.outcome == "waiting", WebhookReceipt.source == "shopify",
                WebhookReceipt.subject == (order.external_id or ""))
                .order_by(WebhookReceipt.id)).all() if order.external_id else []
            for w in waiting:  # each on its own: one bad event doesn't stop the order
                try:
                    with s.begin_nested():
                        result = _apply_to_order(s, w.topic, order, json.loads(w.payload), now)
                except (Rejected, importer.PayloadError) as e:
                    _fail(w, getattr(e, "reason", str(e)))
                    log.warning("waiting %s event %s rejected: %s", w.topic, w.delivery_id,
                                w.detail)
                    continue
                w.outcome, w.detail, w.payload, w.applied_at = (
                    result.outcome, result.detail[:2000], "", now)
            return Outcome("applied", f"order {order.name} {'created' if created else 'updated'}"
                           + (f", {len(waiting)} waiting events applied" if waiting else ""))
        order_ref = payload.get("order_id")
        order = importer.order_by_shopify_id(s, order_ref)
        if order is None:
            receipt.subject = str(order_ref)[:64]
            return Outcome("waiting", f"order {order_ref} hasn't arrived yet; applied when it does")
        return _apply_to_order(s, topic, order, payload, now)
    except importer.PayloadError as e:
        raise Rejected(str(e))
    except (TypeError, AttributeError, KeyError, ValueError) as e:  # a shape Shopify doesn't send
        raise _shape_error(topic, e)


def _easypost_claim_event(payload):
    try:
        return easypost_claims.parse_claim_event(payload)
    except ValueError as e:
        raise Rejected(str(e)) from None


@dataclass
class _Prepared:
    """A due receipt read and parsed before the write transaction (reading and parsing JSON
    while holding SQLite's write lock would make every other writer wait for it)."""

    id: int
    key: str
    big: bool
    payload: object = None
    updates: tuple | None = None  # a carrier push's updates, parsed
    error: Exception | None = None  # what parsing raised: raised again when it is applied


def _prepare(receipt_id: int, key: str, source: str, topic: str, body: str) -> _Prepared:
    big = source != "shopify" and len(body) > BIG_BODY_CHARS
    p = _Prepared(receipt_id, key, big)
    if big:
        return p
    try:
        p.payload = json.loads(body)
        if source != "shopify" and not (source == "easypost" and topic.startswith("claim.")):
            p.updates = tuple(_carrier_updates(source, p.payload))
    except Exception as e:  # noqa: BLE001 - raised again where the receipt is applied
        p.error = e
    return p


def _apply(s: Session, receipt: WebhookReceipt, now: datetime,
           prepared: _Prepared | None = None) -> Outcome:
    if prepared is not None and prepared.error is not None:
        raise prepared.error
    payload = json.loads(receipt.payload) if prepared is None else prepared.payload
    if receipt.source == "easypost" and receipt.topic.startswith("claim."):
        return Outcome(*recoveries.apply_easypost_event(s, _easypost_claim_event(payload), now))
    if receipt.source == "shopify":
        return _apply_shopify(s, receipt, receipt.topic, payload, now)
    updates = prepared.updates if prepared is not None and prepared.updates is not None \
        else _carrier_updates(receipt.source, payload)
    return _feed_updates(s, updates, now)


@dataclass
class ApplyReport:
    applied: int = 0  # done (applied, waiting for their order, or ignored)
    retry: int = 0  # failed this time, tried again later
    failed: int = 0  # can't be applied: shown to staff
    transactions: int = 0
    longest_transaction_s: float = 0.0
    errors: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.applied or self.retry or self.failed)


def _done(receipt: WebhookReceipt, result: Outcome, now: datetime) -> None:
    receipt.status, receipt.outcome, receipt.detail = "done", result.outcome, result.detail[:2000]
    receipt.applied_at, receipt.last_error = now, ""
    if result.outcome != "waiting":
        receipt.payload = ""  # applied: the body isn't needed any more


def _failed_attempt(receipt: WebhookReceipt, error: Exception, now: datetime,
                    report: ApplyReport) -> None:
    receipt.attempts += 1
    receipt.last_error = f"{type(error).__name__}: {error}"[:2000]
    if receipt.attempts >= MAX_ATTEMPTS:
        receipt.status = "failed"
        report.failed += 1
    else:
        receipt.next_attempt_at = now + retry_backoff(receipt.attempts)
        report.retry += 1
    log.warning("%s receipt %s (%s) failed (attempt %d): %s", receipt.source, receipt.id,
                receipt.delivery_id, receipt.attempts, receipt.last_error)


class _Spoiled(Exception):
    """A receipt failed in a batch applied without savepoints: the batch is rolled back and
    applied again, each receipt in its own savepoint."""


def _read_due(db: Engine, now: datetime) -> tuple[list[_Prepared], dict[str, int]]:
    """The due receipts oldest first (at most ``READ_AHEAD``), read and parsed outside any write
    transaction, and per order/parcel the earliest receipt waiting for its retry (it holds the
    later ones back)."""
    with read_session(db) as s:
        rows = s.execute(select(WebhookReceipt.id, WebhookReceipt.sequence_key,
                                WebhookReceipt.source, WebhookReceipt.topic, WebhookReceipt.payload)
                         .where(WebhookReceipt.status == "pending",
                                WebhookReceipt.next_attempt_at <= now)
                         .order_by(WebhookReceipt.id).limit(READ_AHEAD)).all()
        keys = {r.sequence_key for r in rows}
        held_from = dict(s.execute(select(WebhookReceipt.sequence_key, func.min(WebhookReceipt.id))
                                   .where(WebhookReceipt.status == "pending",
                                          WebhookReceipt.next_attempt_at > now,
                                          WebhookReceipt.sequence_key.in_(keys))
                                   .group_by(WebhookReceipt.sequence_key)).all()) if keys else {}
    with _READING:  # parsing is CPU: no more threads wanting the GIL than the routes allow
        return [_prepare(*r) for r in rows], held_from


def _apply_batch(s: Session, due: list[_Prepared], held_from: dict[str, int], now: datetime,
                 report: ApplyReport, *, isolated: bool) -> tuple[int, int | None]:
    """Apply receipts of ``due`` (read beforehand) in this transaction, oldest first, for at most
    ``BATCH_SECONDS`` and at most ``BATCH_SIZE``. Returns how many of ``due`` it went through, and
    the id of a big receipt met (to be applied on its own next), else None. A receipt applied
    meanwhile by someone else (no longer due) is passed over.

    Receipts rarely fail, so a batch is first applied as one piece (``isolated`` False: no
    savepoint per receipt, whose release would make every per-commit hook — the analytics
    roll-ups — run once per receipt); if one fails, the batch is rolled back (``_Spoiled``) and
    applied again with each receipt in its own savepoint, where a failure is recorded."""
    started = time.perf_counter()
    chunk = due[:BATCH_SIZE]
    # one statement for the batch's rows (their bodies stay unread: parsed already)
    rows = {r.id: r for r in s.scalars(
        select(WebhookReceipt).options(defer(WebhookReceipt.payload))
        .where(WebhookReceipt.id.in_([p.id for p in chunk]),
               WebhookReceipt.status == "pending", WebhookReceipt.next_attempt_at <= now))}
    n = 0
    for n, p in enumerate(chunk):
        if n and time.perf_counter() - started > BATCH_SECONDS:
            return n, None  # (at least one per transaction, however slow the machine)
        receipt = rows.get(p.id)
        if receipt is None:
            continue  # applied (or put back for a retry) by another applier meanwhile
        if p.key in held_from and held_from[p.key] < p.id:
            continue
        if p.big:
            return n + 1, p.id
        if not isolated:
            try:
                result = _apply(s, receipt, now, p)
            except Exception as e:  # noqa: BLE001 - applied again, receipt by receipt
                raise _Spoiled() from e
            _done(receipt, result, now)
            report.applied += 1
            continue
        events = s.info.setdefault(PENDING, [])
        recorded = len(events)
        try:
            with s.begin_nested():
                result = _apply(s, receipt, now)
        except Rejected as e:
            del events[recorded:]  # rolled back with the savepoint: no handler answers them
            _fail(receipt, e.reason)
            report.failed += 1
            log.warning("%s receipt %s (%s) can't be applied: %s", receipt.source, receipt.id,
                        receipt.delivery_id, e.reason)
            continue
        except Exception as e:  # noqa: BLE001 - a receipt's own failure never stops the others
            del events[recorded:]
            _failed_attempt(receipt, e, now, report)
            held_from[p.key] = receipt.id
            continue
        _done(receipt, result, now)
        report.applied += 1
    return len(chunk), None


def _apply_big(db: Engine, receipt_id: int, now: datetime, report: ApplyReport) -> None:
    """A big carrier push, in bounded transactions: its scans ``CHECKPOINTS_PER_TRANSACTION`` at a
    time (oldest first), then the rest of the update and the receipt in a last one."""
    with read_session(db) as s:
        receipt = s.get(WebhookReceipt, receipt_id)
        source, body = receipt.source, receipt.payload
    try:
        updates = _carrier_updates(source, json.loads(body))
    except Rejected as e:
        def fail(s: Session) -> None:
            _fail(s.get(WebhookReceipt, receipt_id), e.reason)
        run(db, fail)
        report.failed += 1
        return
    step = tracking.CHECKPOINTS_PER_TRANSACTION
    outcomes = []
    try:
        for update in updates:
            oldest_first = list(reversed(update.checkpoints))
            earlier = oldest_first[:-step] if len(oldest_first) > step else []
            last = oldest_first[len(earlier):]
            stored: list = []
            for i in range(0, len(earlier), step):
                chunk = earlier[i:i + step]
                t0 = time.perf_counter()
                stored += run(db, lambda s, chunk=chunk, u=update: tracking.store_checkpoints(
                    s, u.tracking_number, chunk, u.source, now=now))
                _count(report, t0)
                _pause()
            final = replace(update, checkpoints=tuple(reversed(last)))
            with read_session(db) as s:  # read outside the write lock
                known = tracking.checkpoints_of(s, update.tracking_number)
            t0 = time.perf_counter()
            outcomes.append(run(db, lambda s, f=final, b=stored, k=known: tracking.record(
                s, f, now=now, stored_before=b, known=k)))
            _count(report, t0)
    except Exception as e:  # noqa: BLE001 - tried again later, shown to staff in the end
        def retry(s: Session, e=e) -> None:
            _failed_attempt(s.get(WebhookReceipt, receipt_id), e, now, report)
        run(db, retry)
        return
    waiting = [o.tracking_number for o in outcomes if o.shipments == 0]
    detail = (f"{sum(o.new_checkpoints for o in outcomes)} new checkpoints, "
              f"{sum(o.holds for o in outcomes)} claims put on hold")
    if waiting:
        detail += f"; kept until an order ships {', '.join(waiting)}"

    def finish(s: Session) -> None:
        _done(s.get(WebhookReceipt, receipt_id), Outcome("applied", detail), now)
    run(db, finish)
    report.applied += 1


def _pause() -> None:
    """The others' turn (see ``PAUSE_SECONDS``)."""
    time.sleep(PAUSE_SECONDS)


def _count(report: ApplyReport, t0: float) -> None:
    report.transactions += 1
    report.longest_transaction_s = max(report.longest_transaction_s, time.perf_counter() - t0)


def apply_pending_receipts(db: Engine, *, now: datetime | None = None, max_seconds: float = 30.0,
                           stop: threading.Event | None = None) -> ApplyReport:
    """Apply every due receipt (the background job; safe to run from several processes: each
    batch is one write transaction, and on PostgreSQL one applier at a time takes a batch).
    ``stop`` (shutdown): finish the batch in hand, take no more."""
    report = ApplyReport()
    fixed_now = now
    until = time.perf_counter() + max_seconds
    isolated = False
    due: list[_Prepared] = []
    held_from: dict[str, int] = {}
    while time.perf_counter() < until and not (stop is not None and stop.is_set()):
        at = fixed_now or utcnow()
        if not due:
            due, held_from = _read_due(db, at)
            if not due:
                break  # all done
        before = report.applied + report.failed + report.retry
        t0 = time.perf_counter()
        tally = ApplyReport()
        try:
            taken, big = run(db, lambda s, due=due, held=held_from: _apply_batch(
                s, due, held, at, tally, isolated=isolated) if _my_turn(s) else (0, None))
        except _Spoiled:
            isolated = True  # the same batch again, receipt by receipt
            _count(report, t0)
            continue
        except DBAPIError as e:  # the database refused the whole batch: the next run tries again
            log.warning("applying webhook receipts: %s", e)
            report.errors.append(str(e)[:500])
            break
        isolated = False
        report.applied += tally.applied
        report.retry += tally.retry
        report.failed += tally.failed
        _count(report, t0)
        if big is not None:
            _apply_big(db, big, at, report)
        if not taken:
            break  # another applier's turn (PostgreSQL)
        del due[:taken]
        if not due and report.applied + report.failed + report.retry == before:
            break  # nothing could move (held back behind a retry, or applied by another applier)
        _pause()
    return report


def background_job(ctx) -> dict:
    """The job (``adapters/jobs.JOBS``, every 2 s): apply what is due."""
    r = apply_pending_receipts(ctx.engine, now=ctx.now, stop=ctx.stop, max_seconds=10)
    if r.errors and not r:  # the database refused every batch: recorded as the job's failure
        raise RuntimeError(f"no receipt could be applied: {r.errors[0]}")
    return {"applied": r.applied, "retry": r.retry, "failed": r.failed,
            "longest_transaction_s": round(r.longest_transaction_s, 3)}


def _my_turn(s: Session) -> bool:
    """PostgreSQL: one applier at a time (a transaction-scoped advisory lock), so two processes
    never apply one order's receipts out of order. SQLite's write lock already does this."""
    if s.get_bind().dialect.name != "postgresql":
        return True
    return bool(s.scalar(select(func.pg_try_advisory_xact_lock(0x77656268))))


# --- what staff see --------------------------------------------------------------------------------

@dataclass(frozen=True)
class ReceiptRow:
    id: int
    source: str
    topic: str
    delivery_id: str
    received_at: datetime
    status: str
    attempts: int
    last_error: str


def receipts_needing_attention(db: Engine, *, limit: int = 50) -> tuple[int, int, list[ReceiptRow]]:
    """(pending, failed, the failed and retrying receipts newest first) for the settings page."""
    with read_session(db) as s:
        counts = dict(s.execute(select(WebhookReceipt.status, func.count())
                                .where(WebhookReceipt.status != "done")
                                .group_by(WebhookReceipt.status)).all())
        rows = s.execute(select(
            WebhookReceipt.id, WebhookReceipt.source, WebhookReceipt.topic,
            WebhookReceipt.delivery_id, WebhookReceipt.received_at, WebhookReceipt.status,
            WebhookReceipt.attempts, WebhookReceipt.last_error)
            .where((WebhookReceipt.status == "failed")
                   | ((WebhookReceipt.status == "pending") & (WebhookReceipt.attempts > 0)))
            .order_by(WebhookReceipt.id.desc()).limit(limit)).all()
    return (counts.get("pending", 0), counts.get("failed", 0),
            [ReceiptRow(*r) for r in rows])


def retry_receipt(db: Engine, receipt_id: int, *, now: datetime | None = None) -> bool:
    """Staff's retry of a failed receipt: pending again, tried at the next run."""
    now = now or utcnow()

    def go(s: Session) -> bool:
        r = s.get(WebhookReceipt, receipt_id)
        if r is None or r.status != "failed" or not r.payload:
            return False
        r.status, r.attempts, r.next_attempt_at, r.outcome = "pending", 0, now, "pending"
        return True
    return run(db, go)


# --- the routes --------------------------------------------------------------------------------

async def _body(request: Request) -> bytes | None:
    """The raw body, or None when it is over the limit (read no further than that)."""
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > MAX_BODY_BYTES:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _answer(status: int, **content) -> JSONResponse:
    return JSONResponse(content, status_code=status)


# at most this many bodies parsed at once: fewer threads wanting Python's GIL, so the thread that
# holds SQLite's write lock (storing receipts, applying them) gets it back quickly
_READING = threading.BoundedSemaphore(4)


async def _receive(request: Request, source: str, secret_name: str, verify, check) -> JSONResponse:
    secret = config.secret(secret_name)
    if not secret:
        return _answer(404, error="not found")
    body = await _body(request)
    if body is None:
        log.warning("%s webhook refused: body over %d bytes", source, MAX_BODY_BYTES)
        return _answer(413, error=f"the body is larger than {MAX_BODY_BYTES} bytes")
    if not verify(request, body, secret):
        log.warning("%s webhook refused: bad or missing signature", source)
        return _answer(401, error="bad or missing signature")

    def receive() -> Outcome:
        with _READING:
            payload, text = read_json(body)
            delivery = check(request, body, text, payload)
        if delivery is None:
            return Outcome("ignored", "nothing in it for this app")
        return store(engine(), delivery)

    try:
        result = await run_in_threadpool(receive)
    except Rejected as e:
        log.warning("%s webhook refused: %s", source, e.reason)
        return _answer(400, error=e.reason)
    log.info("%s webhook: %s %s", source, result.outcome, result.detail)
    return _answer(200, ok=True, outcome=result.outcome, detail=result.detail)


async def shopify(request: Request) -> JSONResponse:
    return await _receive(
        request, "shopify", "SHOPIFY_WEBHOOK_SECRET",
        lambda r, body, secret: _matches(r.headers.get("x-shopify-hmac-sha256"),
                                         shopify_signature(body, secret)),
        lambda r, body, text, payload: check_shopify(r.headers.get("x-shopify-topic", ""),
                                                     r.headers.get("x-shopify-webhook-id", ""),
                                                     body, text, payload))


async def track17(request: Request) -> JSONResponse:
    return await _receive(
        request, "17track", "TRACK17_WEBHOOK_KEY",
        lambda r, body, key: _matches(r.headers.get("sign"), track17_signature(body, key),
                                      case_insensitive=True),
        lambda r, body, text, payload: check_carrier("17track", body, text, payload))


async def easypost(request: Request) -> JSONResponse:
    return await _receive(
        request, "easypost", "EASYPOST_WEBHOOK_SECRET",
        lambda r, body, secret: _matches(r.headers.get("x-hmac-signature"),
                                         easypost_signature(body, secret)),
        lambda r, body, text, payload: check_carrier("easypost", body, text, payload))


def routes() -> list[Route]:
    return [Route("/webhooks/shopify", shopify, methods=["POST"]),
            Route("/webhooks/17track", track17, methods=["POST"]),
            Route("/webhooks/easypost", easypost, methods=["POST"])]
