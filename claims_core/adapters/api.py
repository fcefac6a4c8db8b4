"""The claims REST API (``/api/v1``), a FastAPI application mounted as a route of the ``st.App``.

The contract is docs/api.md. Every endpoint calls the same services as the staff pages and the
portal (same rules, same audit events, same emails); this module only translates: keys and scopes,
the rate limit, ``Idempotency-Key``, and errors as ``application/problem+json`` carrying the
domain's error codes.
"""
from __future__ import annotations

import base64
import binascii
import math
import os
import time
import uuid
from datetime import datetime, timezone
from typing import Callable, Literal

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from limits import parse as parse_limit
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Mount

from .. import domain
from ..domain.errors import ClaimRuleError, ErrorCode
from ..domain.vocabulary import ResolutionKind
from ..infra.db import utcnow
from ..services import api_keys, claims_api, customer, decisions
from ..services.api_keys import ApiKeyView
from ..services.approvals import ResolutionInput
from ..services.settings import load_settings
from ..services.unit_of_work import run
from . import evidence_pack, importer
from .web import engine

PROBLEM = "application/problem+json"
PROBLEM_BASE = "https://docs.claims-portal.dev/problems/"
DEFAULT_RATE_LIMIT = "120/minute"

# A refusal's HTTP status, by the domain's code (anything else a rule refuses is 422).
CONFLICT_CODES = {ErrorCode.ILLEGAL_TRANSITION, ErrorCode.STALE_CLAIM, ErrorCode.CLAIM_ON_HOLD,
                  ErrorCode.ALREADY_CLAIMED, ErrorCode.NOTHING_LEFT_TO_CLAIM, ErrorCode.NOT_ON_HOLD}
NOT_FOUND_CODES = {ErrorCode.CLAIM_NOT_FOUND, ErrorCode.NOT_FOUND, ErrorCode.ORDER_NOT_FOUND}


class Problem(Exception):
    def __init__(self, status: int, code: str, detail: str, title: str | None = None,
                 headers: dict | None = None, **extra):
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail
        self.title = title or code.replace("_", " ").capitalize()
        self.headers, self.extra = headers or {}, extra


def invalid(detail: str, *loc: str) -> Problem:
    """A 422 ``validation_failed`` naming where the problem is, as request validation does."""
    return Problem(422, "validation_failed", detail, errors=[{"loc": list(loc), "msg": detail}])


def problem_response(p: Problem, instance: str) -> JSONResponse:
    body = {"type": PROBLEM_BASE + p.code, "title": p.title, "status": p.status,
            "detail": p.detail, "code": p.code, "instance": instance, **p.extra}
    return JSONResponse(body, status_code=p.status, media_type=PROBLEM, headers=p.headers)


def from_rule(e: ClaimRuleError) -> Problem:
    status = 404 if e.code in NOT_FOUND_CODES else 409 if e.code in CONFLICT_CODES else 422
    return Problem(status, str(e.code), e.message)


# --- request bodies ---------------------------------------------------------------------------------

class ItemQuantity(BaseModel):
    sku: str = Field(min_length=1, max_length=100)
    quantity: int = Field(ge=1, le=10_000)


class PhotoIn(BaseModel):
    filename: str = Field(min_length=1, max_length=255)
    content_base64: str = Field(min_length=1, max_length=30_000_000)


class NewClaim(BaseModel):
    order_number: str = Field(min_length=1, max_length=64)
    email: str = Field(min_length=3, max_length=254)
    tracking_number: str | None = Field(default=None, max_length=64)
    issue_type: str = Field(min_length=1, max_length=32)
    items: list[ItemQuantity] = Field(default_factory=list, max_length=100)
    desired_resolution: str = Field(min_length=1, max_length=16)
    description: str = Field(default="", max_length=20_000)
    signature_name: str = Field(min_length=1, max_length=200)
    photos: list[PhotoIn] = Field(default_factory=list, max_length=12)
    # the customer's language for the claim's pages and emails: en, es, fr or de (default: the
    # store's default language)
    language: str | None = Field(default=None, max_length=8)


class RequestInfo(BaseModel):
    message: str = Field(min_length=1, max_length=20_000)


class Approve(BaseModel):
    resolution: Literal["refund", "store_credit", "reshipment"]
    amount_cents: int | None = Field(default=None, ge=0)
    bonus_pct: int | None = Field(default=None, ge=0, le=100)
    note: str = Field(default="", max_length=20_000)


class Deny(BaseModel):
    reason_code: str = Field(min_length=1, max_length=32)
    note: str = Field(default="", max_length=20_000)


class LineIn(BaseModel):
    sku: str = Field(min_length=1, max_length=100)
    name: str = Field(min_length=1, max_length=300)
    quantity: int = Field(ge=1, le=100_000)
    unit_price_cents: int = Field(ge=0, le=1_000_000_000)


class ShipmentIn(BaseModel):
    tracking_number: str = Field(min_length=1, max_length=64)
    carrier: str = Field(default="", max_length=64)
    shipped_at: datetime
    status: Literal["fulfilled", "in_transit", "delivered", "returned", "exception"] = "in_transit"
    delivered_at: datetime | None = None
    items: list[ItemQuantity] = Field(min_length=1, max_length=500)


class AddressIn(BaseModel):
    address1: str = Field(default="", max_length=200)
    city: str = Field(default="", max_length=100)
    zip: str = Field(default="", max_length=20)
    province: str = Field(default="", max_length=100)
    country_code: str = Field(default="", max_length=2)


class OrderIn(BaseModel):
    email: str = Field(min_length=3, max_length=254)
    customer_name: str = Field(default="", max_length=200)
    created_at: datetime
    currency: str = Field(default="USD", min_length=3, max_length=3)
    total_cents: int = Field(ge=0, le=1_000_000_000)
    protection_fee_cents: int = Field(default=0, ge=0, le=100_000_000)
    line_items: list[LineIn] = Field(min_length=1, max_length=500)
    shipments: list[ShipmentIn] = Field(default_factory=list, max_length=100)
    shipping_address: AddressIn | None = None
    cancelled_at: datetime | None = None


def _utc(dt: datetime | None) -> datetime | None:
    if dt is None:
        return None
    return (dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)).astimezone(timezone.utc)


# --- the application ----------------------------------------------------------------------------------

def create_app() -> FastAPI:
    app = FastAPI(title="Claims portal API", version="1",
                  description="Claims, decisions and orders of a shipping-protection claims "
                              "portal. See docs/api.md.")
    rate = parse_limit(os.environ.get("CLAIMS_API_RATE_LIMIT") or DEFAULT_RATE_LIMIT)
    limiter = MovingWindowRateLimiter(MemoryStorage())

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem):
        return problem_response(exc, request.url.path)

    @app.exception_handler(ClaimRuleError)
    async def _rule(request: Request, exc: ClaimRuleError):
        return problem_response(from_rule(exc), request.url.path)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", "")} for e in exc.errors()]
        return problem_response(Problem(422, "validation_failed", "The request isn't valid: "
                                        + "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}"
                                                    for e in errors[:5]), errors=errors),
                                request.url.path)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        code = "not_found" if exc.status_code == 404 else "method_not_allowed" \
            if exc.status_code == 405 else "http_error"
        return problem_response(Problem(exc.status_code, code, str(exc.detail)), request.url.path)

    def key_with(scope: str) -> Callable:
        def dependency(request: Request) -> ApiKeyView:
            header = request.headers.get("authorization", "")
            raw = header[7:].strip() if header[:7].lower() == "bearer " else None
            key = api_keys.authenticate(engine(), raw)
            if key is None:
                raise Problem(401, "unauthorized", "Send a valid API key: Authorization: Bearer "
                              "<key> (Settings → API & webhooks).",
                              headers={"WWW-Authenticate": 'Bearer realm="claims"'})
            if not limiter.hit(rate, str(key.id)):
                reset, _left = limiter.get_window_stats(rate, str(key.id))
                wait = max(1, math.ceil(reset - time.time()))
                raise Problem(429, "rate_limited", f"Too many requests for this key; try again "
                              f"in {wait} s.", headers={"Retry-After": str(wait)})
            if not key.allows(scope):
                raise Problem(403, "insufficient_scope", f"This key can only {key.scope}; "
                              "this endpoint needs a write key.")
            return key
        return dependency

    reader, writer = Depends(key_with("read")), Depends(key_with("write"))

    def idempotent(request: Request, key: ApiKeyView, body: BaseModel | None,
                   action: Callable[[], tuple[int, dict]]) -> Response:
        """Run ``action`` once per Idempotency-Key; a replay gets the first answer."""
        idem = (request.headers.get("idempotency-key") or "").strip()
        if not idem:
            status, payload = _answer(request, action)
            return payload if isinstance(payload, Response) else JSONResponse(payload, status)
        if len(idem) > 200:
            raise invalid("Idempotency-Key is at most 200 characters.", "header", "Idempotency-Key")
        canonical = body.model_dump_json().encode() if body is not None else b""
        h = claims_api.request_hash(request.method, request.url.path, canonical)
        seen = claims_api.begin(engine(), key.id, idem, h)
        if seen.state == "conflict":
            raise Problem(409, "idempotency_conflict", "This Idempotency-Key was used for another "
                          "request; use a new key for a new request.")
        if seen.state == "in_progress":
            raise Problem(409, "idempotency_conflict", "A request with this Idempotency-Key is "
                          "still being processed; retry in a moment.")
        if seen.state == "replay":
            media = PROBLEM if seen.status_code >= 400 else "application/json"
            return Response(seen.body, seen.status_code, media_type=media,
                            headers={"Idempotent-Replayed": "true"})
        try:
            status, payload = _answer(request, action)
        except Exception:
            claims_api.abandon(engine(), key.id, idem)
            raise
        resp = payload if isinstance(payload, Response) else JSONResponse(payload, status)
        claims_api.finish(engine(), key.id, idem, resp.status_code, resp.body.decode())
        return resp

    def _answer(request: Request, action) -> tuple[int, dict | Response]:
        try:
            return action()
        except Problem as p:
            return p.status, problem_response(p, request.url.path)
        except ClaimRuleError as e:
            resp = problem_response(from_rule(e), request.url.path)
            return resp.status_code, resp

    def base(request: Request) -> str:
        return str(request.base_url).rstrip("/") + request.scope.get("root_path", "")

    def detail(request: Request, reference: str) -> dict:
        return claims_api.claim_detail(engine(), reference, base_url=base(request))

    def split(raw: str | None) -> tuple[str, ...]:
        return tuple(x.strip() for x in (raw or "").split(",") if x.strip())

    @app.get("/claims", summary="List claims (oldest first, cursor pagination)")
    def list_claims(status: str | None = None, issue_type: str | None = None,
                    carrier: str | None = None, risk_level: str | None = None, q: str = "",
                    limit: int = Query(50, ge=1, le=claims_api.MAX_LIMIT),
                    cursor: str | None = None, key: ApiKeyView = reader):
        f = claims_api.ClaimFilters(split(status), split(issue_type), split(carrier),
                                    split(risk_level), q)
        try:
            items, next_cursor = claims_api.list_claims(engine(), f, limit=limit, cursor=cursor)
        except ClaimRuleError as e:
            raise invalid(e.message, "query", "cursor")
        return {"items": items, "next_cursor": next_cursor}

    @app.get("/claims/{reference}", summary="One claim with its events, messages, decision and photos")
    def get_claim(reference: str, request: Request, key: ApiKeyView = reader):
        return detail(request, reference)

    @app.get("/claims/{reference}/evidence.pdf", response_class=Response,
             summary="The claim's evidence pack (PDF) for a carrier claim or a chargeback")
    def evidence(reference: str, key: ApiKeyView = reader):
        pdf = evidence_pack.build(engine(), claims_api.claim_id(engine(), reference))
        return Response(pdf, media_type=evidence_pack.MIME_TYPE, headers={
            "Content-Disposition": f'attachment; filename="{evidence_pack.filename(reference)}"'})

    @app.get("/photos/{token}", summary="A claim photo (signed link from GET /claims/{reference})",
             response_class=Response)
    def photo(token: str):
        try:
            data = claims_api.photo_by_token(engine(), token)
        except ClaimRuleError as e:
            raise Problem(404, "not_found", e.message)
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=600"})

    @app.post("/claims", status_code=201, summary="File a claim on a customer's behalf")
    def file_claim(body: NewClaim, request: Request, key: ApiKeyView = writer):
        def action():
            view = customer.lookup_order(engine(), body.order_number, body.email)
            ship = _shipment(view, body.tracking_number)
            by_sku = {i.sku: i.shipment_item_id for i in ship.items}
            items = {}
            for it in body.items:
                if it.sku not in by_sku:
                    raise Problem(422, str(ErrorCode.QUANTITY_INVALID),
                                  f"The shipment has no item with SKU {it.sku}.")
                items[by_sku[it.sku]] = it.quantity
            photos = [(p.filename, _b64(p.content_base64)) for p in body.photos]
            idem = (request.headers.get("idempotency-key") or "").strip()
            receipt = customer.file_claim(engine(), customer.ClaimRequest(
                idempotency_key=f"api:{key.id}:{idem or uuid.uuid4().hex}"[:128],
                order_id=view.id, email=body.email, shipment_id=ship.id,
                issue_type=body.issue_type, items=items,
                desired_resolution=body.desired_resolution, signature_kind="typed",
                signature_name=body.signature_name, accurate_confirmed=True,
                description=body.description, photos=photos, filed_by=key.actor,
                language=body.language or load_settings(engine()).default_language))
            return 201, detail(request, receipt.reference)
        return idempotent(request, key, body, action)

    @app.post("/claims/{reference}/request-info", summary="Ask the customer for more information")
    def request_info(reference: str, body: RequestInfo, request: Request, key: ApiKeyView = writer):
        def action():
            decisions.request_info(engine(), claims_api.claim_id(engine(), reference), key.actor,
                                   key.name, body.message)
            return 200, detail(request, reference)
        return idempotent(request, key, body, action)

    @app.post("/claims/{reference}/approve", summary="Approve with a refund, store credit or reshipment")
    def approve(reference: str, body: Approve, request: Request, key: ApiKeyView = writer):
        def action():
            cid = claims_api.claim_id(engine(), reference)
            claimed = detail(request, reference)["claimed_cents"]
            bonus = 0
            if body.resolution == ResolutionKind.STORE_CREDIT:
                bonus = body.bonus_pct if body.bonus_pct is not None \
                    else load_settings(engine()).store_credit_bonus_pct
            amount = claimed if body.amount_cents is None else body.amount_cents
            decisions.approve(engine(), cid, key.actor,
                              [ResolutionInput(body.resolution, amount, bonus)], note=body.note)
            return 200, detail(request, reference)
        return idempotent(request, key, body, action)

    @app.post("/claims/{reference}/deny", summary="Deny, with a reason")
    def deny(reference: str, body: Deny, request: Request, key: ApiKeyView = writer):
        def action():
            decisions.deny(engine(), claims_api.claim_id(engine(), reference), key.actor,
                           body.reason_code, body.note)
            return 200, detail(request, reference)
        return idempotent(request, key, body, action)

    @app.put("/orders/{order_number}", summary="Create or update an order with its shipments")
    def put_order(order_number: str, body: OrderIn, request: Request, key: ApiKeyView = writer):
        def action():
            data = body.model_dump()
            data["created_at"] = _utc(body.created_at)
            data["cancelled_at"] = _utc(body.cancelled_at)
            for sh in data["shipments"]:
                sh["shipped_at"], sh["delivered_at"] = _utc(sh["shipped_at"]), _utc(sh["delivered_at"])
            try:
                order, created, n = run(engine(), lambda s: _upsert(s, order_number, data))
            except importer.PayloadError as e:
                raise invalid(str(e), "body")
            return (201 if created else 200), {"order_number": order, "created": created,
                                               "shipments": n}
        return idempotent(request, key, body, action)

    return app


def _upsert(s, number: str, data: dict):
    order, created, n = importer.upsert_api_order(s, number, data, utcnow())
    return order.name, created, n


def _shipment(view, tracking_number: str | None):
    """The shipment a claim is about: the one with this tracking number, or the order's only
    claimable one."""
    if tracking_number:
        t = domain.normalize_tracking(tracking_number)
        match = [s for s in view.shipments if s.tracking_number == t]
        if not match:
            raise invalid(f"Order {view.name} has no shipment with tracking number "
                          f"{tracking_number}.", "body", "tracking_number")
        return match[0]
    claimable = view.claimable_shipments
    if len(claimable) == 1:
        return claimable[0]
    if not claimable:
        raise ClaimRuleError(view.reason or "No shipment of this order can take a claim.",
                             view.reason_codes[0] if view.reason_codes else ErrorCode.NOT_SHIPPED)
    raise invalid(f"Order {view.name} has {len(claimable)} shipments that can take a claim: say "
                  "which with tracking_number.", "body", "tracking_number")


def _b64(data: str) -> bytes:
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise invalid("A photo's content_base64 isn't base64.", "body", "photos")


def mount() -> Mount:
    return Mount("/api/v1", app=create_app())

