"""The customer portal's memory: lookup throttling and server-side drafts.

Throttling: every failed lookup is recorded twice, against the order number typed and against the
client (a hash of its address). After ``SLOW_AFTER`` misses in the window each further try waits a
little longer; once ``lookup_max_misses`` misses are on record in ``lookup_window_minutes`` the
lookup is refused until the window has moved on, whether or not the details would be right.
"""
from __future__ import annotations

import base64
import hashlib
import json
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Callable

from sqlalchemy import Engine, delete, func, select

from . import rules, services
from .db import read_session, utcnow, write_session
from .models import ClaimDraft, LookupAttempt, Order
from .photos import ProcessedPhoto

SLOW_AFTER = 3
MAX_DELAY_SECONDS = 3.0
DRAFT_DAYS = 7


class TooManyAttempts(rules.ClaimRuleError):
    pass


def client_key(address: str | None) -> str:
    return "client:" + hashlib.sha256((address or "unknown").encode()).hexdigest()[:32]


def _keys(query: str, client: str | None) -> list[str]:
    keys = [client_key(client)]
    number = rules.normalize_order_number(query)
    if number:
        keys.append("order:" + number[:100])
    return keys


def recent_misses(engine: Engine, keys: list[str], since: datetime) -> int:
    with read_session(engine) as s:
        rows = s.execute(
            select(LookupAttempt.key, func.count()).where(LookupAttempt.key.in_(keys),
                                                          LookupAttempt.at >= since)
            .group_by(LookupAttempt.key)
        ).all()
    return max((n for _k, n in rows), default=0)


def guarded_lookup(engine: Engine, query: str, email: str, client: str | None, *,
                   now: datetime | None = None,
                   sleep: Callable[[float], None] = time.sleep) -> services.OrderView:
    """Look up an order for a customer, slowing down and then refusing repeated misses."""
    return _guarded(engine, query, email, client, now or utcnow(), sleep,
                    lambda: services.lookup_order(engine, query, email, now=now))


def guarded_find_claims(engine: Engine, query: str, email: str, client: str | None, *,
                        now: datetime | None = None,
                        sleep: Callable[[float], None] = time.sleep) -> list[services.ClaimSummary]:
    """View My Claim by order number + email, under the same throttle as the order lookup."""
    return _guarded(engine, query, email, client, now or utcnow(), sleep,
                    lambda: services.find_claims_for_customer(engine, query, email))


def _guarded(engine, query, email, client, now, sleep, attempt):
    settings = services.load_settings(engine)
    window = timedelta(minutes=settings.lookup_window_minutes)
    keys = _keys(query, client)
    misses = recent_misses(engine, keys, now - window)
    if misses >= settings.lookup_max_misses:
        raise TooManyAttempts(
            f"Too many attempts. For your security, please wait {settings.lookup_window_minutes} "
            "minutes and try again, or contact the store."
        )
    if misses >= SLOW_AFTER:
        sleep(min(MAX_DELAY_SECONDS, 0.5 * (misses - SLOW_AFTER + 1)))
    try:
        return attempt()
    except rules.OrderNotFound:
        with write_session(engine) as s:
            s.add_all([LookupAttempt(key=k, at=now) for k in keys])
            s.execute(delete(LookupAttempt).where(LookupAttempt.at < now - timedelta(days=1)))
        raise


# --- drafts -------------------------------------------------------------------------------------

def photo_to_json(p: ProcessedPhoto) -> dict[str, Any]:
    return {"filename": p.filename, "data": base64.b64encode(p.data).decode(),
            "thumbnail": base64.b64encode(p.thumbnail).decode(), "width": p.width,
            "height": p.height, "sha256": p.sha256, "phash": p.phash}


def photo_from_json(d: dict[str, Any]) -> ProcessedPhoto:
    return ProcessedPhoto(filename=d["filename"], data=base64.b64decode(d["data"]),
                          thumbnail=base64.b64decode(d["thumbnail"]), width=d["width"],
                          height=d["height"], sha256=d["sha256"], phash=d["phash"])


@dataclass(frozen=True)
class Draft:
    data: dict[str, Any]
    updated_at: datetime


def save_draft(engine: Engine, order_id: int, email: str, data: dict[str, Any], *,
               now: datetime | None = None) -> None:
    """Keep the customer's progress for ``DRAFT_DAYS`` days (one draft per order and email)."""
    now = now or utcnow()
    email = rules.normalize_email(email)
    payload = json.dumps(data, default=str)
    with write_session(engine) as s:
        order = s.get(Order, order_id)
        if order is None or not rules.emails_match(email, order.email):
            raise rules.OrderNotFound(rules.LOOKUP_FAILED)
        draft = s.scalars(select(ClaimDraft).where(ClaimDraft.order_id == order_id,
                                                   ClaimDraft.email == email)).first()
        if draft is None:
            s.add(ClaimDraft(order_id=order_id, email=email, data=payload, created_at=now,
                             updated_at=now, expires_at=now + timedelta(days=DRAFT_DAYS)))
        else:
            draft.data = payload
            draft.updated_at = now
            draft.expires_at = now + timedelta(days=DRAFT_DAYS)


def load_draft(engine: Engine, order_id: int, email: str, *,
               now: datetime | None = None) -> Draft | None:
    now = now or utcnow()
    with read_session(engine) as s:
        d = s.scalars(select(ClaimDraft).where(
            ClaimDraft.order_id == order_id, ClaimDraft.email == rules.normalize_email(email),
            ClaimDraft.expires_at > now)).first()
        return Draft(json.loads(d.data), d.updated_at) if d is not None else None


def discard_draft(engine: Engine, order_id: int, email: str) -> None:
    with write_session(engine) as s:
        s.execute(delete(ClaimDraft).where(ClaimDraft.order_id == order_id,
                                           ClaimDraft.email == rules.normalize_email(email)))


def purge_expired_drafts(engine: Engine, *, now: datetime | None = None) -> int:
    now = now or utcnow()
    with write_session(engine) as s:
        return s.execute(delete(ClaimDraft).where(ClaimDraft.expires_at <= now)).rowcount or 0


def add_photos(current: list[dict[str, Any]], files: list[tuple[str, bytes]], *, max_photos: int,
               max_bytes: int) -> tuple[list[dict[str, Any]], list[str]]:
    """Process newly uploaded files into the draft's photo list.

    Returns the new list and one message per rejected file (naming it). A file identical to one
    already added is skipped quietly; files beyond ``max_photos`` are refused by name.
    """
    from .photos import PhotoRejected, process_photo

    photos = list(current)
    have = {p["sha256"] for p in photos}
    errors: list[str] = []
    for name, raw in files:
        if len(photos) >= max_photos:
            errors.append(f"{name}: you can add at most {max_photos} photos.")
            continue
        try:
            p = process_photo(raw, name, max_bytes=max_bytes)
        except PhotoRejected as e:
            errors.append(e.message)
            continue
        if p.sha256 not in have:
            photos.append(photo_to_json(p))
            have.add(p.sha256)
    return photos, errors
