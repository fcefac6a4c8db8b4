"""The customer's unfinished claim, kept on the server for ``DRAFT_DAYS`` days (with its photos),
so a customer can leave the portal and come back. ``purge_expired`` (run by ``tick``) deletes what
has expired."""
from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, delete, select

from ..domain.errors import LOOKUP_FAILED, OrderNotFound
from ..domain.identifiers import emails_match, normalize_email
from ..domain.messages import Msg, N_
from ..domain.windows import draft_expires_at
from ..infra.db import read_session, utcnow, write_session
from ..infra.models import ClaimDraft, Order, settings_row
from ..infra.photos import PhotoRejected, ProcessedPhoto, process_photo, rejected


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
    email = normalize_email(email)
    payload = json.dumps(data, default=str)
    with write_session(engine) as s:
        order = s.get(Order, order_id)
        if order is None or not emails_match(email, order.email):
            raise OrderNotFound(LOOKUP_FAILED)
        draft = s.scalars(select(ClaimDraft).where(ClaimDraft.order_id == order_id,
                                                   ClaimDraft.email == email)).first()
        expires = draft_expires_at(now, settings_row(s).retain_draft_days)  # Settings → Privacy
        if draft is None:
            s.add(ClaimDraft(order_id=order_id, email=email, data=payload, created_at=now,
                             updated_at=now, expires_at=expires))
        else:
            draft.data = payload
            draft.updated_at = now
            draft.expires_at = expires


def load_draft(engine: Engine, order_id: int, email: str, *,
               now: datetime | None = None) -> Draft | None:
    now = now or utcnow()
    with read_session(engine) as s:
        d = s.scalars(select(ClaimDraft).where(
            ClaimDraft.order_id == order_id, ClaimDraft.email == normalize_email(email),
            ClaimDraft.expires_at > now)).first()
        return Draft(json.loads(d.data), d.updated_at) if d is not None else None


def discard_draft(engine: Engine, order_id: int, email: str) -> None:
    with write_session(engine) as s:
        s.execute(delete(ClaimDraft).where(ClaimDraft.order_id == order_id,
                                           ClaimDraft.email == normalize_email(email)))


def expired(now: datetime, keep_days: int):
    """The drafts due for removal: expired, or saved longer ago than the store keeps drafts now
    (a shorter setting applies to drafts saved before it). The retention counts use it too."""
    return (ClaimDraft.expires_at <= now) | (ClaimDraft.updated_at <= now - timedelta(days=keep_days))


def purge_expired(engine: Engine, *, now: datetime | None = None) -> int:
    now = now or utcnow()
    with write_session(engine) as s:
        keep = settings_row(s).retain_draft_days
        return s.execute(delete(ClaimDraft).where(expired(now, keep))).rowcount or 0


def add_photos(current: list[dict[str, Any]], files: list[tuple[str, bytes]], *, max_photos: int,
               max_bytes: int) -> tuple[list[dict[str, Any]], list[Msg]]:
    """Process newly uploaded files into the draft's photo list.

    Returns the new list and one message per rejected file (naming it; a catalog message: the
    customer reads it in their language, ``str()`` is the English). A file identical to one
    already added is skipped quietly; files beyond ``max_photos`` are refused by name.
    """
    photos = list(current)
    have = {p["sha256"] for p in photos}
    errors: list[Msg] = []
    for name, raw in files:
        if len(photos) >= max_photos:
            errors.append(rejected(name, Msg.of(N_("you can add at most {n} photos."),
                                                n=max_photos)))
            continue
        try:
            p = process_photo(raw, name, max_bytes=max_bytes)
        except PhotoRejected as e:
            errors.append(e.msg)
            continue
        if p.sha256 not in have:
            photos.append(photo_to_json(p))
            have.add(p.sha256)
    return photos, errors
