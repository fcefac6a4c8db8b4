"""Inbound webhooks: Shopify (orders, fulfillments, refunds, disputes, privacy requests), 17TRACK and
EasyPost (tracking, and EasyPost's claim events).

Routes of the ``st.App`` (see ``routes()``), in the same process ``streamlit run app.py`` starts:

    POST /webhooks/shopify    X-Shopify-Hmac-Sha256: base64 HMAC-SHA256 of the raw body
    POST /webhooks/17track    sign: hex SHA-256 of the raw body + "/" + the key
    POST /webhooks/easypost   X-Hmac-Signature: "hmac-sha256-hex=" + hex HMAC-SHA256 of the body

Each secret comes from the environment or ``.streamlit/secrets.toml`` (``SHOPIFY_WEBHOOK_SECRET``,
``TRACK17_WEBHOOK_KEY``, ``EASYPOST_WEBHOOK_SECRET``); a route whose secret isn't set answers 404.

**Acknowledged at once, applied in the background.** A route checks the signature on the raw
body, reads the JSON (nested at most ``MAX_DEPTH`` levels) and its documented shape (pure
parsing, no database), then hands the signed, checked body to ``services/webhook_receipts.store``
(one short transaction) and answers 200 ``received`` (Shopify gives a webhook 5 seconds). A
delivery is stored once (unique per source and delivery id): a redelivery is answered
``duplicate`` and changes nothing. Answers: 401 for a missing or wrong signature (nothing stored),
413 for a body over 1 MB, 400 with a reason for a body that isn't JSON, is nested too deeply or
isn't the documented shape (logged).

The background job (``background_job``, every ~2 s; also from ``tick``) is
``webhook_receipts.apply_pending_receipts`` with this module's ``READER``: it knows what each
sender's body means, parses a stored body (outside any write transaction) and carries it out
through one service per kind: orders through ``services.order_sync`` (parsed by
``shopify_orders``, as the CSV export is by the importer), carrier events through
``services.tracking``, disputes through ``services.disputes``, privacy requests through
``services.privacy_requests``, EasyPost's claim events through ``services.recoveries``. The
receipts' order, batching, retries and what staff see are the service's.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ..domain.identifiers import normalize_tracking
from ..infra import config
from ..services import (disputes, order_sync, privacy_requests, recoveries, tracking,
                        webhook_receipts)
from ..services.webhook_receipts import Delivery, Outcome, Rejected
from . import carrier_feeds, easypost_claims, shopify_orders
from .web import engine

log = logging.getLogger("claims.webhooks")

MAX_BODY_BYTES = 1_000_000
MAX_DEPTH = 64  # the documented bodies nest 7 levels at most
INLINE_BODY_BYTES = 32_000  # at most this size: read on the event loop; bigger: in a thread
SHOPIFY_ORDER_TOPICS = ("orders/create", "orders/updated", "orders/cancelled")
SHOPIFY_FULFILLMENT_TOPICS = ("fulfillments/create", "fulfillments/update")
# Shopify's mandatory compliance topics (services/privacy_requests.py carries them out)
SHOPIFY_COMPLIANCE_TOPICS = tuple(privacy_requests.TOPICS)
# Shopify Payments disputes (chargebacks): services/disputes.py
SHOPIFY_DISPUTE_TOPICS = ("disputes/create", "disputes/update")
SHOPIFY_TOPICS = (*SHOPIFY_ORDER_TOPICS, *SHOPIFY_FULFILLMENT_TOPICS, "refunds/create",
                  *SHOPIFY_COMPLIANCE_TOPICS, *SHOPIFY_DISPUTE_TOPICS)


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
            shopify_orders.parse_order(payload, "")
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
    except shopify_orders.PayloadError as e:
        raise Rejected(str(e)) from None
    except carrier_feeds.FeedError as e:
        raise Rejected(e.reason) from None
    except (TypeError, AttributeError, KeyError, ValueError) as e:  # a shape Shopify doesn't send
        raise _shape_error(topic, e) from None
    delivery = webhook_id or hashlib.sha256(topic.encode() + b"|" + body).hexdigest()
    return Delivery("shopify", delivery[:200], topic[:64], f"shopify:{str(order_ref)[:64]}", text)


# --- what a stored receipt means (the background job; see services/webhook_receipts.py) -----------

def _feed_updates(s: Session, updates, now: datetime) -> Outcome:
    return _feed_outcome(tracking.record_many(s, updates, now=now))


def _feed_outcome(outcomes) -> Outcome:
    waiting = [o.tracking_number for o in outcomes if o.shipments == 0]
    new = sum(o.new_checkpoints for o in outcomes)
    holds = sum(o.holds for o in outcomes)
    detail = f"{new} new checkpoints, {holds} claims put on hold"
    if waiting:
        detail += f"; kept until an order ships {', '.join(waiting)}"
    return Outcome("applied", detail)


def _apply_to_order(s: Session, topic: str, order, payload, now: datetime) -> Outcome:
    if topic in SHOPIFY_DISPUTE_TOPICS:
        try:
            changed, detail = disputes.record(s, order, payload, now=now)
        except ValueError as e:
            raise Rejected(f"the {topic} body isn't the shape Shopify documents: {e}")
        return Outcome("applied" if changed else "ignored", detail)
    if topic in SHOPIFY_FULFILLMENT_TOPICS:
        shipment = shopify_orders.parse_fulfillment(payload)
        skipped = shipment if isinstance(shipment, str) else order_sync.apply_fulfillment(
            s, order, shipment, actor="shopify", now=now)
        if skipped:
            return Outcome("ignored", skipped)
        try:
            updates = carrier_feeds.parse_shopify_fulfillment(payload)
        except carrier_feeds.FeedError as e:
            raise Rejected(e.reason)
        return _feed_updates(s, updates, now)
    order_sync.add_refund(s, order, shopify_orders.parse_refund(payload, order.currency),
                          actor="shopify", now=now, details={"topic": topic})
    return Outcome("applied", f"refund on order {order.name}")


def _apply_waiting_to_order(s: Session, order, now: datetime):
    def apply_one(topic: str, payload) -> Outcome:
        try:
            return _apply_to_order(s, topic, order, payload, now)
        except shopify_orders.PayloadError as e:
            raise Rejected(str(e)) from None
    return apply_one


def _apply_shopify(s: Session, topic: str, payload, now: datetime) -> Outcome:
    if topic in SHOPIFY_COMPLIANCE_TOPICS:  # recorded here, carried out by its own job
        try:
            req = privacy_requests.parse(topic, payload)
        except ValueError as e:
            raise Rejected(f"the {topic} body isn't the shape Shopify documents: {e}")
        new, detail = privacy_requests.record(s, req, now=now)
        return Outcome("applied" if new else "ignored", detail)
    try:
        if topic in SHOPIFY_ORDER_TOPICS:
            snap = shopify_orders.parse_order(payload, webhook_receipts.protection_pattern(s))
            done = order_sync.upsert_order(s, snap, actor="shopify", now=now,
                                           details={"topic": topic})
            order, created = done.order, done.created
            if done.stale:
                return Outcome("ignored", f"an older update of order {order.name} than the "
                                          "one applied; nothing changed")
            waiting = webhook_receipts.apply_waiting(s, order.external_id or "",
                                                     _apply_waiting_to_order(s, order, now), now)
            return Outcome("applied", f"order {order.name} {'created' if created else 'updated'}"
                           + (f", {waiting} waiting events applied" if waiting else ""))
        order_ref = payload.get("order_id")
        order = order_sync.order_by_external_id(s, shopify_orders.shopify_id(order_ref))
        if order is None:
            return Outcome("waiting", f"order {order_ref} hasn't arrived yet; applied when it does",
                           subject=str(order_ref)[:64])
        return _apply_to_order(s, topic, order, payload, now)
    except shopify_orders.PayloadError as e:
        raise Rejected(str(e))
    except (TypeError, AttributeError, KeyError, ValueError) as e:  # a shape Shopify doesn't send
        raise _shape_error(topic, e)


def _easypost_claim_event(payload):
    try:
        return easypost_claims.parse_claim_event(payload)
    except ValueError as e:
        raise Rejected(str(e)) from None


@dataclass(frozen=True)
class _Parsed:
    """A stored body read outside the write transaction."""

    payload: object
    updates: tuple = ()  # a carrier push's updates
    claim_event: object = None  # an EasyPost claim event


def _is_claim_event(source: str, topic: str) -> bool:
    return source == "easypost" and topic.startswith("claim.")


def _prepare(source: str, topic: str, body: str) -> _Parsed:
    payload = json.loads(body)
    if source == "shopify":
        return _Parsed(payload)
    if _is_claim_event(source, topic):
        return _Parsed(payload, claim_event=_easypost_claim_event(payload))
    return _Parsed(payload, updates=tuple(_carrier_updates(source, payload)))


def _apply_one(s: Session, receipt, parsed: _Parsed, now: datetime) -> Outcome:
    if _is_claim_event(receipt.source, receipt.topic):
        return Outcome(*recoveries.apply_easypost_event(s, parsed.claim_event, now))
    if receipt.source == "shopify":
        return _apply_shopify(s, receipt.topic, parsed.payload, now)
    return _feed_updates(s, parsed.updates, now)


def _apply(s: Session, items: list, now: datetime) -> list[Outcome]:
    """Receipts in order, (receipt, parsed) each: a run of carrier pushes is recorded in one go
    (``tracking.record_many``: a few statements for the lot), anything else one at a time."""
    out: list[Outcome] = []
    pushes: list[_Parsed] = []

    def record_pushes() -> None:
        outcomes = tracking.record_many(s, [u for p in pushes for u in p.updates], now=now)
        for p in pushes:
            out.append(_feed_outcome(outcomes[:len(p.updates)]))
            del outcomes[:len(p.updates)]
        pushes.clear()

    for receipt, parsed in items:
        if receipt.source != "shopify" and not _is_claim_event(receipt.source, receipt.topic):
            pushes.append(parsed)
            continue
        if pushes:
            record_pushes()
        out.append(_apply_one(s, receipt, parsed, now))
    if pushes:
        record_pushes()
    return out


READER = webhook_receipts.Reader(
    prepare=_prepare, apply=_apply,
    tracking_updates=lambda source, body: _carrier_updates(source, json.loads(body)))


def apply_pending_receipts(db, **kwargs) -> webhook_receipts.ApplyReport:
    """``webhook_receipts.apply_pending_receipts`` with this module's ``READER`` (``now``,
    ``max_seconds``, ``stop`` as there)."""
    return webhook_receipts.apply_pending_receipts(db, READER, **kwargs)


def background_job(ctx) -> dict:
    """The job (``adapters/jobs.JOBS``, every 2 s): apply what is due."""
    r = apply_pending_receipts(ctx.engine, now=ctx.now, stop=ctx.stop, max_seconds=10)
    if r.errors and not r:  # the database refused every batch: recorded as the job's failure
        raise RuntimeError(f"no receipt could be applied: {r.errors[0]}")
    return {"applied": r.applied, "retry": r.retry, "failed": r.failed,
            "longest_transaction_s": round(r.longest_transaction_s, 3)}


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

    def read() -> Delivery | None:
        payload, text = read_json(body)
        return check(request, body, text, payload)

    def read_in_turn() -> Delivery | None:
        with webhook_receipts.READING:  # (see there)
            return read()

    try:
        # a usual body (a few KB, read in well under a millisecond) on the event loop; a big one
        # in a thread, so it never holds up the other requests
        delivery = read() if len(body) <= INLINE_BODY_BYTES else \
            await run_in_threadpool(read_in_turn)
        result = Outcome("ignored", "nothing in it for this app") if delivery is None else \
            await webhook_receipts.store_async(engine(), delivery)
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
