"""What the REST API reads and remembers: claim pages by keyset cursor, one claim as JSON with
signed short-lived photo links, and the first answer to each ``Idempotency-Key``.

(The API's writes are the same services the pages call: ``customer.file_claim``,
``decisions.request_info / approve / deny``, ``order_sync.sync_api_order``.)
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import Engine, and_, delete, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from ..domain.errors import ClaimNotFound, ErrorCode, InvalidInput
from ..infra import config
from ..infra.db import read_session, utcnow, write_session
from ..infra.models import (ApiIdempotency, Claim, ClaimItem, Evidence, ShipmentItem, StoreSecret)
from . import claim_json, order_views
from .claim_queue import QueueFilter, filter_conditions

MAX_LIMIT = 100
PHOTO_LINK_LIFETIME = timedelta(minutes=15)
URL_KEY_SECRET = "api_url_key"


# --- the order a key files a claim on ------------------------------------------------------------

def order_for_key(engine: Engine, order_number: str, email: str):
    """The order an API key files a claim on, by order number (or tracking number) + the
    checkout email. Not the customer look-up (``services.lookup.guarded_lookup``): the key is
    authenticated and rate-limited by the API, so the customer throttle doesn't apply."""
    return order_views._lookup_order(engine, order_number, email)


# --- listing --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ClaimFilters:
    statuses: tuple[str, ...] = ()
    issue_types: tuple[str, ...] = ()
    carriers: tuple[str, ...] = ()
    risk_levels: tuple[str, ...] = ()
    q: str = ""


def _cursor(created_at: datetime, claim_id: int) -> str:
    raw = f"{created_at.isoformat()}|{claim_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


MAX_ID = 2**63 - 1  # no row id is larger (and no database takes a larger integer)


def _read_cursor(cursor: str) -> tuple[datetime, int]:
    """A cursor's (filing time in UTC, claim id); anything this API didn't give out is refused."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, cid = raw.split("|")
        if not cid.isascii() or not cid.isdigit() or not 0 <= int(cid) <= MAX_ID:
            raise ValueError(cid)
        when = datetime.fromisoformat(at)
        when = when.replace(tzinfo=timezone.utc) if when.tzinfo is None \
            else when.astimezone(timezone.utc)
        return when, int(cid)
    except (ValueError, OverflowError, binascii.Error, UnicodeDecodeError):
        raise InvalidInput("The cursor isn't one this API gave out.", ErrorCode.CURSOR_INVALID)


def list_claims(engine: Engine, f: ClaimFilters, *, limit: int = 50,
                cursor: str | None = None) -> tuple[list[dict], str | None]:
    """One page, oldest first (filing time, then id), and the cursor of the next page."""
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"limit is 1 to {MAX_LIMIT}.", ErrorCode.INVALID_INPUT)
    with read_session(engine) as s:
        cond = filter_conditions(s, QueueFilter(tab="all", issue_types=f.issue_types, carriers=f.carriers,
                                          risk_levels=f.risk_levels, text=f.q))
        if f.statuses:
            cond.append(Claim.status.in_(f.statuses))
        if cursor:
            at, cid = _read_cursor(cursor)
            cond.append(or_(Claim.created_at > at, and_(Claim.created_at == at, Claim.id > cid)))
        rows = s.scalars(select(Claim).where(*cond).options(selectinload(Claim.order))
                         .order_by(Claim.created_at, Claim.id).limit(limit + 1)).all()
        page = [claim_json.summary(c) for c in rows[:limit]]
        more = len(rows) > limit
        last = rows[limit - 1] if more else None
        return page, (_cursor(last.created_at, last.id) if last is not None else None)


# --- one claim ------------------------------------------------------------------------------------

def claim_id(engine: Engine, reference: str) -> int:
    with read_session(engine) as s:
        cid = s.scalars(select(Claim.id).where(Claim.reference == (reference or "").strip().upper())).first()
    if cid is None:
        raise ClaimNotFound(f"No claim {reference}.")
    return cid


def claim_detail(engine: Engine, reference: str, *, base_url: str = "",
                 now: datetime | None = None) -> dict:
    now = now or utcnow()
    key = url_key(engine)
    with read_session(engine) as s:
        claim = s.scalars(select(Claim).where(Claim.reference == (reference or "").strip().upper())
                          .options(selectinload(Claim.order),
                                   selectinload(Claim.shipment),
                                   selectinload(Claim.items).selectinload(ClaimItem.shipment_item)
                                   .selectinload(ShipmentItem.line_item),
                                   selectinload(Claim.evidence), selectinload(Claim.messages),
                                   selectinload(Claim.decisions),
                                   selectinload(Claim.resolutions))).first()
        if claim is None:
            raise ClaimNotFound(f"No claim {reference}.")

        def photo_url(e: Evidence):
            expires = now + PHOTO_LINK_LIFETIME
            return f"{base_url}/photos/{photo_token(key, e.id, expires)}", expires
        return claim_json.detail(s, claim, photo_url)


# --- signed photo links ---------------------------------------------------------------------------

def url_key(engine: Engine) -> bytes:
    """The key that signs photo links: ``CLAIMS_SECRET_KEY`` if set, else one made once and kept
    in the database (so every instance signs alike)."""
    configured = config.secret("CLAIMS_SECRET_KEY")
    if configured:
        return configured.encode()
    with read_session(engine) as s:
        row = s.get(StoreSecret, URL_KEY_SECRET)
        if row is not None:
            return row.value.encode()
    try:
        with write_session(engine) as s:
            s.add(StoreSecret(name=URL_KEY_SECRET, value=secrets.token_urlsafe(32)))
    except IntegrityError:  # another request made it first
        pass
    with read_session(engine) as s:
        return s.get(StoreSecret, URL_KEY_SECRET).value.encode()


def _sign(key: bytes, message: str) -> str:
    return base64.urlsafe_b64encode(hmac.new(key, message.encode(), hashlib.sha256).digest()[:18]
                                    ).decode()


def photo_token(key: bytes, evidence_id: int, expires: datetime) -> str:
    message = f"{evidence_id}.{int(expires.timestamp())}"
    return f"{message}.{_sign(key, message)}"


def photo_by_token(engine: Engine, token: str, *, now: datetime | None = None) -> bytes:
    """The stored copy a signed link points to, while the link is valid."""
    now = now or utcnow()
    try:
        eid, exp, sig = token.split(".")
        if not (eid + exp).isascii() or not eid.isdigit() or not exp.isdigit():
            raise ValueError(token)
        evidence_id, expires = int(eid), int(exp)
    except ValueError:
        raise InvalidInput("That photo link isn't valid.", ErrorCode.NOT_FOUND)
    # compared as bytes: compare_digest refuses non-ASCII text (a 500 before)
    expected = _sign(url_key(engine), f"{evidence_id}.{expires}").encode()
    if not hmac.compare_digest(sig.encode("utf-8", "surrogatepass"), expected) \
            or evidence_id > MAX_ID or expires < now.timestamp():
        raise InvalidInput("That photo link isn't valid (or has expired).", ErrorCode.NOT_FOUND)
    with read_session(engine) as s:
        data = s.scalars(select(Evidence.data).where(Evidence.id == evidence_id)).first()
    if data is None:
        raise InvalidInput("That photo no longer exists.", ErrorCode.NOT_FOUND)
    return data


# --- idempotency ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Remembered:
    state: str  # new | replay | conflict | in_progress
    status_code: int = 0
    body: str = ""


IN_PROGRESS = 0


def request_hash(method: str, path: str, body: bytes) -> str:
    return hashlib.sha256(method.encode() + b" " + path.encode() + b"\n" + body).hexdigest()


def idempotency_hash(idem_key: str) -> str:
    """What is kept of an ``Idempotency-Key``: the SHA-256 (hex) of the whole value, so two keys
    differ in the database whenever they differ at all (never cut to a column's length)."""
    return hashlib.sha256(idem_key.encode("utf-8", "surrogatepass")).hexdigest()


def claim_idempotency_key(api_key_id: int, idem_key: str) -> str:
    """The idempotency key of a claim filed through the API (fits ``claims.idempotency_key``)."""
    return f"api:{api_key_id}:{idempotency_hash(idem_key)}"


def begin(engine: Engine, api_key_id: int, idem_key: str, req_hash: str) -> Remembered:
    """Reserve ``idem_key`` for this request, or say what an earlier one with it got."""
    kh = idempotency_hash(idem_key)
    try:
        with write_session(engine) as s:
            s.add(ApiIdempotency(api_key_id=api_key_id, key_hash=kh, request_hash=req_hash,
                                 status_code=IN_PROGRESS, response_body="", created_at=utcnow()))
        return Remembered("new")
    except IntegrityError:
        pass
    with read_session(engine) as s:
        row = s.scalars(select(ApiIdempotency).where(ApiIdempotency.api_key_id == api_key_id,
                                                     ApiIdempotency.key_hash == kh)).one()
        if row.request_hash != req_hash:
            return Remembered("conflict")
        if row.status_code == IN_PROGRESS:
            return Remembered("in_progress")
        return Remembered("replay", row.status_code, row.response_body)


def finish(engine: Engine, api_key_id: int, idem_key: str, status_code: int, body: str) -> None:
    with write_session(engine) as s:
        s.execute(update(ApiIdempotency).where(
            ApiIdempotency.api_key_id == api_key_id,
            ApiIdempotency.key_hash == idempotency_hash(idem_key))
                  .values(status_code=status_code, response_body=body))


def abandon(engine: Engine, api_key_id: int, idem_key: str) -> None:
    """The request broke (a server fault): the key may be used again."""
    with write_session(engine) as s:
        s.execute(delete(ApiIdempotency).where(
            ApiIdempotency.api_key_id == api_key_id,
            ApiIdempotency.key_hash == idempotency_hash(idem_key)))
