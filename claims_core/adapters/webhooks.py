"""Inbound webhooks: Shopify (orders, fulfillments, refunds), 17TRACK and EasyPost (tracking).

Routes of the ``st.App`` (see ``routes()``), in the same process ``streamlit run app.py`` starts:

    POST /webhooks/shopify    X-Shopify-Hmac-Sha256: base64 HMAC-SHA256 of the raw body
    POST /webhooks/17track    sign: hex SHA-256 of the raw body + "/" + the key
    POST /webhooks/easypost   X-Hmac-Signature: "hmac-sha256-hex=" + hex HMAC-SHA256 of the body

Each secret comes from the environment or ``.streamlit/secrets.toml`` (``SHOPIFY_WEBHOOK_SECRET``,
``TRACK17_WEBHOOK_KEY``, ``EASYPOST_WEBHOOK_SECRET``); a route whose secret isn't set answers 404.

Answers: 401 for a missing or wrong signature (nothing stored), 413 for a body over 1 MB, 400 with
a reason for a body that isn't JSON or isn't the documented shape (logged), 200 otherwise. A
delivery is recorded once (``webhook_receipts``, unique per source and delivery id): a redelivery
is acknowledged with 200 and changes nothing. Orders go through the CSV importer's own upsert;
carrier events through ``services.tracking`` (replays and out-of-order events change nothing
there either). A fulfillment or refund for an order not seen yet is kept and applied when the
order arrives.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import unicodedata
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ..domain.vocabulary import AuditAction
from ..infra import config
from ..infra.db import read_session, utcnow
from ..infra.models import Order, WebhookReceipt, settings_row
from ..services import tracking
from ..services.events import record_event
from ..services.unit_of_work import run
from . import carrier_feeds, importer
from .web import engine

log = logging.getLogger("claims.webhooks")

MAX_BODY_BYTES = 1_000_000
SHOPIFY_ORDER_TOPICS = ("orders/create", "orders/updated", "orders/cancelled")
SHOPIFY_FULFILLMENT_TOPICS = ("fulfillments/create", "fulfillments/update")
SHOPIFY_TOPICS = (*SHOPIFY_ORDER_TOPICS, *SHOPIFY_FULFILLMENT_TOPICS, "refunds/create")


class Rejected(Exception):
    """The body can't be used (answered 400 with ``reason``)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Outcome:
    outcome: str  # applied | duplicate | waiting | ignored
    detail: str = ""


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


# --- processing (one transaction per delivery) -------------------------------------------------

def _book(s: Session, source: str, delivery_id: str, topic: str, now: datetime) -> WebhookReceipt | None:
    """The receipt of this delivery, or None if it was received before."""
    seen = s.scalars(select(WebhookReceipt.id).where(WebhookReceipt.source == source,
                                                     WebhookReceipt.delivery_id == delivery_id)).first()
    if seen is not None:
        return None
    receipt = WebhookReceipt(source=source, delivery_id=delivery_id[:200], topic=topic[:64],
                             received_at=now, outcome="applied", detail="", subject="", payload="")
    s.add(receipt)
    s.flush()
    return receipt


def _once(source: str, delivery_id: str, topic: str, work) -> Outcome:
    """Run ``work(session, receipt)`` once per delivery id, in one transaction."""
    now = utcnow()

    def go(s: Session) -> Outcome:
        receipt = _book(s, source, delivery_id, topic, now)
        if receipt is None:
            return Outcome("duplicate")
        result = work(s, receipt, now)
        receipt.outcome, receipt.detail = result.outcome, result.detail[:2000]
        return result

    try:
        return run(engine(), go)
    except IntegrityError as e:
        if _received(source, delivery_id):  # the same delivery, committed concurrently just now
            return Outcome("duplicate")
        log.warning("%s delivery %s conflicts with stored data: %s", source, delivery_id, e.orig)
        raise Rejected("the data conflicts with what is stored (see the app's log)")


def _received(source: str, delivery_id: str) -> bool:
    with read_session(engine()) as s:
        return s.scalars(select(WebhookReceipt.id).where(
            WebhookReceipt.source == source, WebhookReceipt.delivery_id == delivery_id)).first() is not None


def _feed_updates(s: Session, updates, now: datetime) -> Outcome:
    outcomes = [tracking.record(s, u, now=now) for u in updates]
    waiting = [o.tracking_number for o in outcomes if o.shipments == 0]
    new = sum(o.new_checkpoints for o in outcomes)
    holds = sum(o.holds for o in outcomes)
    detail = f"{new} new checkpoints, {holds} claims put on hold"
    if waiting:
        detail += f"; kept until an order ships {', '.join(waiting)}"
    return Outcome("applied", detail)


def process_carrier(source: str, body: bytes, payload) -> Outcome:
    parse = carrier_feeds.parse_17track if source == "17track" else carrier_feeds.parse_easypost
    try:
        updates = parse(payload)
    except carrier_feeds.FeedError as e:
        raise Rejected(e.reason)
    event_id = next((u.event_id for u in updates if u.event_id), "")
    delivery = event_id or hashlib.sha256(body).hexdigest()
    topic = str(payload.get("event") or payload.get("description") or "")[:64] \
        if isinstance(payload, dict) else ""
    return _once(source, delivery, topic, lambda s, r, now: _feed_updates(s, updates, now))


def _wait_for_order(receipt: WebhookReceipt, order_ref, payload) -> Outcome:
    receipt.subject = str(order_ref)[:64]
    receipt.payload = json.dumps(payload)
    return Outcome("waiting", f"order {order_ref} hasn't arrived yet; applied when it does")


def _apply_to_order(s: Session, topic: str, order: Order, payload, now: datetime) -> Outcome:
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


def _shopify_work(topic: str, payload):
    def work(s: Session, receipt: WebhookReceipt, now: datetime) -> Outcome:
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
                        w.outcome, w.detail = "rejected", getattr(e, "reason", str(e))[:2000]
                        log.warning("waiting %s event %s rejected: %s", w.topic, w.delivery_id,
                                    w.detail)
                        continue
                    w.outcome, w.detail, w.payload = result.outcome, result.detail[:2000], ""
                return Outcome("applied", f"order {order.name} {'created' if created else 'updated'}"
                               + (f", {len(waiting)} waiting events applied" if waiting else ""))
            order_ref = payload.get("order_id")
            if order_ref is None:
                raise Rejected(f"the {topic} body has no order_id")
            order = importer.order_by_shopify_id(s, order_ref)
            if order is None:
                return _wait_for_order(receipt, order_ref, payload)
            return _apply_to_order(s, topic, order, payload, now)
        except importer.PayloadError as e:
            raise Rejected(str(e))
        except (TypeError, AttributeError, KeyError, ValueError) as e:  # a shape Shopify doesn't send
            raise Rejected(f"the {topic} body isn't the shape Shopify documents "
                           f"({type(e).__name__})")
    return work


def process_shopify(topic: str, webhook_id: str, body: bytes, payload) -> Outcome:
    if topic not in SHOPIFY_TOPICS:
        return Outcome("ignored", f"topic {topic or '(none)'} isn't one the app uses")
    if not isinstance(payload, dict):
        raise Rejected("the body is not a JSON object")
    delivery = webhook_id or hashlib.sha256(topic.encode() + b"|" + body).hexdigest()
    return _once("shopify", delivery, topic, _shopify_work(topic, payload))


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


async def _receive(request: Request, source: str, secret_name: str, verify, process) -> JSONResponse:
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
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        log.warning("%s webhook refused: not JSON (%s)", source, e)
        return _answer(400, error=f"the body is not JSON: {e}")
    try:
        result = await run_in_threadpool(process, request, body, payload)
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
        lambda r, body, payload: process_shopify(r.headers.get("x-shopify-topic", ""),
                                                 r.headers.get("x-shopify-webhook-id", ""),
                                                 body, payload))


async def track17(request: Request) -> JSONResponse:
    return await _receive(
        request, "17track", "TRACK17_WEBHOOK_KEY",
        lambda r, body, key: _matches(r.headers.get("sign"), track17_signature(body, key),
                                      case_insensitive=True),
        lambda r, body, payload: process_carrier("17track", body, payload))


async def easypost(request: Request) -> JSONResponse:
    return await _receive(
        request, "easypost", "EASYPOST_WEBHOOK_SECRET",
        lambda r, body, secret: _matches(r.headers.get("x-hmac-signature"),
                                         easypost_signature(body, secret)),
        lambda r, body, payload: process_carrier("easypost", body, payload))


def routes() -> list[Route]:
    return [Route("/webhooks/shopify", shopify, methods=["POST"]),
            Route("/webhooks/17track", track17, methods=["POST"]),
            Route("/webhooks/easypost", easypost, methods=["POST"])]
