"""The claims REST API (``/api/v1``), a FastAPI application mounted as a route of the ``st.App``.

The contract is docs/api.md. Every endpoint calls the same services as the staff pages and the
portal (same rules, same audit events, same emails); this module only translates: keys and scopes,
the rate limit, ``Idempotency-Key``, and errors as ``application/problem+json`` carrying the
domain's error codes.
"""
from __future__ import annotations

import base64
import binascii
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Literal

import fastapi_offline
from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response
from limits import RateLimitItem
from limits import parse as parse_limit
from pydantic import BaseModel, Field, field_validator
from starlette.exceptions import HTTPException as StarletteHTTPException
from sqlalchemy.exc import DBAPIError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from .. import domain
from ..domain.errors import ClaimRuleError, ErrorCode
from ..domain.orders import OrderDataError
from ..infra import config, photos as photo_rules
from ..infra.db import utcnow
from ..services import (api_keys, claims_api, customer, customer_data, decisions, order_sync,
                        recoveries)
from ..services.api_keys import ApiKeyView
from ..services.approvals import ResolutionInput
from ..services.settings import load_settings
from ..services.unit_of_work import run
from . import api_orders, evidence_pack
from . import db_state
from .web import engine

PROBLEM = "application/problem+json"
PROBLEM_BASE = "https://docs.claims-portal.dev/problems/"
DEFAULT_RATE_LIMIT = "120/minute"

# The largest request bodies read (a bigger one is 413 before a byte of it is read when it says
# its Content-Length, else as soon as that many bytes have arrived): filing a claim carries photos
# as base64; every other body is small.
MAX_BODY_BYTES = 1024 * 1024
MAX_CLAIM_BODY_BYTES = 40 * 1024 * 1024
# A photo's base64 text is at most this long: the photo cap, 4 characters per 3 bytes.
MAX_PHOTO_BASE64 = 4 * -(-photo_rules.DEFAULT_MAX_BYTES // 3)
# Swagger UI's files, served by the app itself (no CDN: the docs work offline and under the CSP).
SWAGGER_ASSETS = Path(fastapi_offline.__file__).parent / "static"
# Paths (below /api/v1) that need no key: the docs and the signed photo links.
PUBLIC_PATHS = {"/openapi.json", "/docs"}
PUBLIC_PREFIXES = ("/photos/", "/docs/assets/")
SCOPE_KEY = "claims.api_key"  # where the guard leaves the request's key in the ASGI scope

# A refusal's HTTP status follows its code: the one table (every ErrorCode has its row; a new
# code without one fails tests/architecture/test_one_home.py).
_C = ErrorCode
STATUS_BY_CODE: dict[ErrorCode, int] = {code: status for status, codes in {
    404: (_C.ORDER_NOT_FOUND, _C.CLAIM_NOT_FOUND, _C.NOT_FOUND, _C.PHOTO_NOT_FOUND,
          _C.CUSTOMER_NOT_FOUND, _C.RECOVERY_NOT_FOUND),
    409: (_C.ILLEGAL_TRANSITION, _C.STALE_CLAIM, _C.CLAIM_ON_HOLD, _C.NOT_ON_HOLD, _C.ORDER_DISPUTED,
          _C.ALREADY_CLAIMED,
          _C.NOTHING_LEFT_TO_CLAIM, _C.RULE_NAME_TAKEN, _C.ERASURE_OPEN_CLAIM,
          _C.RECOVERY_ILLEGAL_STEP, _C.RECOVERY_FILING_UNAVAILABLE, _C.RECOVERY_AMOUNT_FIXED),
    429: (_C.TOO_MANY_ATTEMPTS,),
    422: (_C.ORDER_CANCELLED, _C.NOT_PROTECTED, _C.PROTECTION_AFTER_SHIPMENT, _C.NOT_SHIPPED,
          _C.WINDOW_CLOSED, _C.TRACKING_NOT_READY, _C.ISSUE_NOT_AVAILABLE, _C.ISSUE_TYPE_UNKNOWN,
          _C.SHIPMENT_NOT_IN_ORDER, _C.QUANTITY_INVALID, _C.PHOTOS_REQUIRED, _C.TOO_MANY_PHOTOS,
          _C.PHOTO_REJECTED, _C.PHOTOS_NOT_REQUESTED, _C.RESOLUTION_UNAVAILABLE,
          _C.SIGNATURE_INVALID, _C.AMOUNT_INVALID, _C.INSURED_VALUE_INVALID, _C.AMOUNT_ABOVE_PAID, _C.BONUS_ABOVE_CAP,
          _C.RESOLUTION_REQUIRED, _C.RESOLUTION_INVALID, _C.DENIAL_REASON_REQUIRED,
          _C.PHOTO_VERDICT_INVALID, _C.ASSIGNEE_INVALID, _C.DEADLINE_IN_PAST, _C.OUT_OF_STOCK,
          _C.ORDER_REFUNDED, _C.AUTH_FAILED, _C.ACCOUNT_RULE, _C.API_KEY_SCOPE_INVALID,
          _C.STAFF_EMAIL_MISSING, _C.SETTING_UNKNOWN, _C.SETTING_INVALID, _C.LOGO_REJECTED,
          _C.RULE_INVALID, _C.WEBHOOK_URL_INVALID, _C.WEBHOOK_URL_NOT_PUBLIC,
          _C.WEBHOOK_EVENTS_REQUIRED, _C.SHOP_CONNECTION_INVALID, _C.PRICING_INPUT_INVALID,
          _C.RECOVERY_OUTCOME_INVALID,
          _C.CURSOR_INVALID, _C.INVALID_INPUT, _C.TEXT_TOO_LONG, _C.TEXT_REQUIRED,
          _C.FORM_EXPIRED),
    503: (_C.DATABASE_UNAVAILABLE, _C.DATABASE_NOT_INITIALISED, _C.DATABASE_READ_ONLY),
    500: (_C.INTERNAL_ERROR,),
}.items() for code in codes}


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
    return Problem(STATUS_BY_CODE.get(e.code, 422), str(e.code), e.message)


# --- request bodies ---------------------------------------------------------------------------------
# Money, ids and counts are strict integers: JSON true, 1.0 or "5" are refused (never read as 1).

class ApiModel(BaseModel):
    """A request body: no text may hold a NUL character (no database column can store one)."""

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value):
        if isinstance(value, str) and "\x00" in value:
            raise ValueError("must not contain a NUL character")
        return value


class ItemQuantity(ApiModel):
    sku: str = Field(min_length=1, max_length=100)
    quantity: int = Field(strict=True, ge=1, le=10_000)


class PhotoIn(ApiModel):
    filename: str = Field(min_length=1, max_length=255)
    content_base64: str = Field(min_length=1)

    @field_validator("content_base64", mode="after")
    @classmethod
    def _within_the_photo_cap(cls, value: str) -> str:
        """The decoded size, counted from the base64 length before anything is decoded."""
        if len(value) > MAX_PHOTO_BASE64:
            raise ValueError(f"a photo is at most {photo_rules.DEFAULT_MAX_BYTES // 1_000_000} MB;"
                             f" this one is about {len(value) * 3 // 4 / 1_000_000:.0f} MB")
        return value


class NewClaim(ApiModel):
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


class RequestInfo(ApiModel):
    message: str = Field(min_length=1, max_length=20_000)


class Approve(ApiModel):
    resolution: Literal["refund", "store_credit", "reshipment"]
    amount_cents: int | None = Field(default=None, strict=True, ge=0, le=1_000_000_000)
    bonus_pct: int | None = Field(default=None, strict=True, ge=0, le=100)
    note: str = Field(default="", max_length=20_000)


class Deny(ApiModel):
    reason_code: str = Field(min_length=1, max_length=32)
    note: str = Field(default="", max_length=20_000)


class RecoveryFile(ApiModel):
    # empty: file through EasyPost (EASYPOST_API_KEY); else the carrier's claim number, filed by hand
    carrier_claim_number: str = Field(default="", max_length=100)
    # the insured value (minor units) when the parcel was insured: caps what is claimed; set before
    # filing (absent: unchanged)
    insured_minor: int | None = Field(default=None, strict=True, ge=1, le=1_000_000_000)


class RecoveryRecord(ApiModel):
    outcome: Literal["approved", "partly_approved", "rejected", "paid"]
    approved_minor: int | None = Field(default=None, strict=True, ge=0, le=1_000_000_000)
    paid_minor: int | None = Field(default=None, strict=True, ge=0, le=1_000_000_000)
    message: str = Field(default="", max_length=2_000)


class LineIn(ApiModel):
    sku: str = Field(min_length=1, max_length=100)
    name: str = Field(min_length=1, max_length=300)
    quantity: int = Field(strict=True, ge=1, le=100_000)
    unit_price_cents: int = Field(strict=True, ge=0, le=1_000_000_000)


class ShipmentIn(ApiModel):
    tracking_number: str = Field(min_length=1, max_length=64)
    carrier: str = Field(default="", max_length=64)
    shipped_at: datetime
    status: Literal["fulfilled", "in_transit", "delivered", "returned", "exception"] = "in_transit"
    delivered_at: datetime | None = None
    items: list[ItemQuantity] = Field(min_length=1, max_length=500)


class AddressIn(ApiModel):
    address1: str = Field(default="", max_length=200)
    city: str = Field(default="", max_length=100)
    zip: str = Field(default="", max_length=20)
    province: str = Field(default="", max_length=100)
    country_code: str = Field(default="", max_length=2)


class OrderIn(ApiModel):
    email: str = Field(min_length=3, max_length=254)
    customer_name: str = Field(default="", max_length=200)
    created_at: datetime
    currency: str = Field(default="USD", min_length=3, max_length=3)
    total_cents: int = Field(strict=True, ge=0, le=1_000_000_000)
    protection_fee_cents: int = Field(default=0, strict=True, ge=0, le=100_000_000)
    line_items: list[LineIn] = Field(min_length=1, max_length=500)
    shipments: list[ShipmentIn] = Field(default_factory=list, max_length=100)
    shipping_address: AddressIn | None = None
    cancelled_at: datetime | None = None


class CustomerRef(ApiModel):
    email: str = Field(default="", max_length=254)
    shopify_customer_id: str | None = Field(default=None, max_length=64)


class CustomerExport(CustomerRef):
    include_staff_notes: bool = True


class CustomerErase(CustomerRef):
    request_ref: str = Field(default="", max_length=200)
    order_numbers: list[str] | None = Field(default=None, max_length=500)


def _utc(dt: datetime | None) -> datetime | None:
    if dt is None:
        return None
    return (dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)).astimezone(timezone.utc)


# --- the application ----------------------------------------------------------------------------------

def _unauthorized() -> Problem:
    return Problem(401, "unauthorized", "Send a valid API key: Authorization: Bearer <key> "
                   "(Settings → API & webhooks).",
                   headers={"WWW-Authenticate": 'Bearer realm="claims"'})


def _insufficient(key: ApiKeyView) -> Problem:
    return Problem(403, "insufficient_scope", f"This key can only {key.scope}; this endpoint "
                   "needs a write key.")


def _route_path(scope: Scope) -> str:
    """The path below the API's mount point (``/claims``, ``/docs``…)."""
    path, root = scope["path"], scope.get("root_path", "")
    return path[len(root):] if root and path.startswith(root) else path


def body_limit(method: str, path: str) -> int:
    return MAX_CLAIM_BODY_BYTES if method == "POST" and path.rstrip("/") == "/claims" \
        else MAX_BODY_BYTES


class BodyTooLarge(StarletteHTTPException):
    def __init__(self, limit: int):
        super().__init__(413, f"The body is larger than this endpoint takes ({limit:,} bytes).")


class Guard:
    """What every request meets before FastAPI reads a byte of its body, in this order: the key
    (401), the rate limit counted in the database (429), the key's scope by method (403: ``GET``
    reads, anything else writes), a NUL in the address (400) and a declared ``Content-Length``
    over the limit (413). Then the body is counted as it arrives (chunked too): past the limit
    the read stops with 413. The docs and the signed photo links need no key."""

    def __init__(self, app: ASGIApp, rate: RateLimitItem, handlers: dict):
        self.app, self.rate, self.handlers = app, rate, handlers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = _route_path(scope)
        limit = body_limit(scope["method"], path)
        try:
            refusal = None
            if not (path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)):
                scope[SCOPE_KEY], refusal = await run_in_threadpool(self._admit, scope)
            refusal = refusal or self._address_or_size(scope, limit)
        except Exception as exc:  # the database, mostly: the app's own handlers answer (503)
            handler = next((self.handlers[c] for c in type(exc).__mro__ if c in self.handlers),
                           None)
            if handler is None:
                raise
            await (await handler(Request(scope, receive), exc))(scope, receive, send)
            return
        if refusal is not None:
            await problem_response(refusal, scope["path"])(scope, receive, send)
            return
        received = 0

        async def bounded() -> dict:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        await self.app(scope, bounded, send)

    def _admit(self, scope: Scope) -> tuple[ApiKeyView | None, Problem | None]:
        header = Headers(scope=scope).get("authorization", "")
        raw = header[7:].strip() if header[:7].lower() == "bearer " else None
        key = api_keys.authenticate(engine(), raw)
        if key is None:
            return None, _unauthorized()
        verdict = api_keys.count_request(engine(), key.id, self.rate.amount,
                                         self.rate.get_expiry())
        if not verdict.allowed:
            wait = verdict.retry_after
            return key, Problem(429, "rate_limited", f"Too many requests for this key; try "
                                f"again in {wait} s.", headers={"Retry-After": str(wait)})
        if not key.allows("read" if scope["method"] in ("GET", "HEAD", "OPTIONS") else "write"):
            return key, _insufficient(key)
        return key, None

    @staticmethod
    def _address_or_size(scope: Scope, limit: int) -> Problem | None:
        query = scope.get("query_string", b"").lower()
        if "\x00" in scope["path"] or b"\x00" in query or b"%00" in query:
            return Problem(400, "bad_request", "The address holds a NUL character.")
        length = Headers(scope=scope).get("content-length")
        if length is not None and not (length.isascii() and length.isdigit()):
            return Problem(400, "bad_request", "Content-Length isn't a number.")
        if length is not None and int(length) > limit:
            return Problem(413, "body_too_large", f"The body is larger than this endpoint takes "
                           f"({limit:,} bytes).")
        return None


def create_app() -> FastAPI:
    app = FastAPI(title="Claims portal API", version="1",
                  description="Claims, decisions and orders of a shipping-protection claims "
                              "portal. See docs/api.md.", docs_url=None, redoc_url=None)
    rate = parse_limit(config.api_rate_limit(DEFAULT_RATE_LIMIT))
    app.add_middleware(Guard, rate=rate, handlers=app.exception_handlers)
    app.mount("/docs/assets", StaticFiles(directory=SWAGGER_ASSETS), name="docs-assets")

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
        code = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}.get(
            exc.status_code, "http_error")
        return problem_response(Problem(exc.status_code, code, str(exc.detail)), request.url.path)

    @app.exception_handler(DBAPIError)
    async def _database(request: Request, exc: DBAPIError):
        # the database not set up, unreachable, busy or read-only: a 503 with a code and
        # Retry-After (db_state decides, for every door of the app alike), never a bare 500
        state = await run_in_threadpool(db_state.diagnose, exc, engine())
        db_state.log_fault(state, exc, request.method, request.url.path)
        return db_state.problem(state, request.url.path)

    def key_with(scope: str) -> Callable:
        def dependency(request: Request) -> ApiKeyView:
            key = request.scope.get(SCOPE_KEY)  # checked and counted by the Guard already
            if key is None:
                raise _unauthorized()
            if not key.allows(scope):
                raise _insufficient(key)
            return key
        return dependency

    reader, writer = Depends(key_with("read")), Depends(key_with("write"))

    @app.get("/docs", include_in_schema=False)
    def docs(request: Request) -> HTMLResponse:
        """Swagger UI from the app's own files: nothing is loaded from another host."""
        root = request.scope.get("root_path", "").rstrip("/")
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}", title=f"{app.title} · docs",
            swagger_js_url=f"{root}/docs/assets/swagger-ui-bundle.js",
            swagger_css_url=f"{root}/docs/assets/swagger-ui.css",
            swagger_favicon_url=f"{root}/docs/assets/favicon.png",
            oauth2_redirect_url=None, swagger_ui_parameters={"validatorUrl": None})

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
        except ClaimRuleError as e:  # a link that isn't valid (or expired), a photo gone: 404
            raise from_rule(e)
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=600"})

    @app.post("/claims", status_code=201, summary="File a claim on a customer's behalf")
    def file_claim(body: NewClaim, request: Request, key: ApiKeyView = writer):
        def action():
            view = claims_api.order_for_key(engine(), body.order_number, body.email)
            ship = _shipment(view, body.tracking_number)
            by_sku = {i.sku: i.shipment_item_id for i in ship.items}
            items = {}
            for it in body.items:
                if it.sku not in by_sku:
                    raise from_rule(domain.QuantityError(
                        f"The shipment has no item with SKU {it.sku}."))
                items[by_sku[it.sku]] = it.quantity
            photos = [(p.filename, _b64(p.content_base64)) for p in body.photos]
            idem = (request.headers.get("idempotency-key") or "").strip()
            receipt = customer.file_claim(engine(), customer.ClaimRequest(
                idempotency_key=claims_api.claim_idempotency_key(key.id, idem or uuid.uuid4().hex),
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
            amount = claimed if body.amount_cents is None else body.amount_cents
            decisions.approve(engine(), cid, key.actor,  # no bonus_pct: the store's default
                              [ResolutionInput(body.resolution, amount, body.bonus_pct)],
                              note=body.note)
            return 200, detail(request, reference)
        return idempotent(request, key, body, action)

    @app.post("/claims/{reference}/deny", summary="Deny, with a reason")
    def deny(reference: str, body: Deny, request: Request, key: ApiKeyView = writer):
        def action():
            decisions.deny(engine(), claims_api.claim_id(engine(), reference), key.actor,
                           body.reason_code, body.note)
            return 200, detail(request, reference)
        return idempotent(request, key, body, action)

    @app.get("/recoveries", summary="List recoveries from carriers and insurers (cursor pages)")
    def list_recoveries(state: str | None = None,
                        limit: int = Query(50, ge=1, le=recoveries.MAX_API_LIMIT),
                        cursor: str | None = None, key: ApiKeyView = reader):
        try:
            items, next_cursor = recoveries.api_page(engine(), limit=limit, cursor=cursor,
                                                     states=split(state))
        except ClaimRuleError as e:
            raise invalid(e.message, "query", "cursor")
        return {"items": items, "next_cursor": next_cursor}

    @app.post("/recoveries/{recovery_id}/file", summary="File a recovery (EasyPost, or by hand "
              "with the carrier's claim number); asking twice files once")
    def file_recovery(recovery_id: int, body: RecoveryFile, request: Request,
                      key: ApiKeyView = writer):
        def action():
            return 200, recoveries.file_for_api(engine(), recovery_id, key.actor,
                                                body.carrier_claim_number,
                                                insured_minor=body.insured_minor)
        return idempotent(request, key, body, action)

    @app.post("/recoveries/{recovery_id}/record", summary="Record the carrier's decision or "
              "the payment")
    def record_recovery(recovery_id: int, body: RecoveryRecord, request: Request,
                        key: ApiKeyView = writer):
        def action():
            return 200, recoveries.record_for_api(
                engine(), recovery_id, key.actor, body.outcome, approved_minor=body.approved_minor,
                paid_minor=body.paid_minor, message=body.message)
        return idempotent(request, key, body, action)

    @app.post("/customers/export", response_class=Response,
              summary="A customer's personal data as one ZIP (JSON, photos, signatures, README)")
    def export_customer(body: CustomerExport, key: ApiKeyView = writer):
        data = customer_data.export_customer(engine(), body.email,
                                             shopify_customer_id=body.shopify_customer_id,
                                             include_staff_notes=body.include_staff_notes)
        return Response(data, media_type="application/zip", headers={
            "Content-Disposition": 'attachment; filename="customer-data.zip"',
            "Cache-Control": "no-store"})

    @app.post("/customers/erase", summary="Erase a customer's personal data (409 while a claim "
              "of theirs is open)")
    def erase_customer(body: CustomerErase, request: Request, key: ApiKeyView = writer):
        def action():
            r = customer_data.erase_customer(engine(), body.email, actor=key.actor,
                                             request_ref=body.request_ref,
                                             shopify_customer_id=body.shopify_customer_id,
                                             order_numbers=body.order_numbers)
            return 200, {"erasure_id": r.erasure_id, "orders": r.orders, "claims": r.claims,
                         "rows": r.rows, "tables": r.counts, "request_ref": r.request_ref}
        return idempotent(request, key, body, action)

    @app.put("/orders/{order_number}", summary="Create or update an order with its shipments")
    def put_order(order_number: str, body: OrderIn, request: Request, key: ApiKeyView = writer):
        def action():
            data = body.model_dump()
            data["created_at"] = _utc(body.created_at)
            data["cancelled_at"] = _utc(body.cancelled_at)
            for sh in data["shipments"]:
                sh["shipped_at"], sh["delivered_at"] = _utc(sh["shipped_at"]), _utc(sh["delivered_at"])
            try:  # parsed before the unit of work, written by the one order service
                snap, shipments = api_orders.parse_order(order_number, data)
                order, created, n = run(engine(), lambda s: order_sync.sync_api_order(
                    s, snap, shipments, actor=key.actor, now=utcnow()))
            except OrderDataError as e:
                raise invalid(str(e), "body")
            return (201 if created else 200), {"order_number": order.name, "created": created,
                                               "shipments": n}
        return idempotent(request, key, body, action)

    return app


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

