"""Registering tracking numbers with 17TRACK (its pushes only come for registered numbers).

With ``TRACK17_API_KEY`` set, every new tracking number — a shipment made by an import, a
Shopify fulfillment webhook or the API (all through ``order_sync.apply_shipment``), or a corrected
number — is queued here, **in the same transaction that creates the shipment** (``queue``). The
sender (``adapters/track17.send_pending``, a background job) leases due rows
(``infra/outbox.lease_due``), posts them 40 at a time outside any transaction, and records each
number's outcome here: registered, rejected (17TRACK's reason and code, shown to staff), or tried
again with backoff (``domain.windows.retry_backoff``) and failed after ``MAX_ATTEMPTS``.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from ..domain.identifiers import normalize_tracking
from ..domain.windows import DELIVERY_MAX_ATTEMPTS, retry_backoff
from ..infra import config
from ..infra.db import read_session, utcnow, write_session
from ..infra.models import Track17Registration
from ..infra.outbox import lease_due

API_KEY = "TRACK17_API_KEY"
PER_REQUEST = 40  # 17TRACK's limit per register call
MAX_ATTEMPTS = DELIVERY_MAX_ATTEMPTS
ALREADY_REGISTERED = -18019901  # 17TRACK: "Tracking number {0} is already registered."


def enabled() -> bool:
    return bool(config.secret(API_KEY))


def queue(s: Session, number: str, carrier: str = "", *, now: datetime | None = None) -> bool:
    """Queue a tracking number for registration in the caller's transaction (once per number;
    nothing without an API key). True if it was queued now."""
    number = normalize_tracking(number or "")
    if not number or not enabled():
        return False
    now = now or utcnow()
    insert = pg_insert if s.get_bind().dialect.name == "postgresql" else sqlite_insert
    got = s.execute(insert(Track17Registration).values(
        tracking_number=number[:64], carrier=(carrier or "")[:64], status="pending", attempts=0,
        next_attempt_at=now, last_error="", created_at=now)
        .on_conflict_do_nothing(index_elements=["tracking_number"])
        .returning(Track17Registration.id)).scalar()
    return got is not None


@dataclass(frozen=True)
class Pending:
    id: int
    tracking_number: str
    carrier: str
    lease_until: datetime | None


def take_due(engine: Engine, *, now: datetime | None = None, limit: int = PER_REQUEST) -> list[Pending]:
    """Lease up to ``limit`` due numbers (pending → sending) for this sender."""
    now = now or utcnow()
    with write_session(engine) as s:
        return [Pending(r.id, r.tracking_number, r.carrier, r.lease_until)
                for r in lease_due(s, Track17Registration, now=now, limit=limit)]


@dataclass(frozen=True)
class Result:
    """One number's outcome: registered; rejected by 17TRACK (``code``, ``reason``); or a failed
    try (``retry``: the whole call failed, or the number was in neither list)."""

    id: int
    status: str  # registered | rejected | retry
    reason: str = ""
    code: int | None = None


def record(engine: Engine, results: list[Result], *, now: datetime | None = None) -> dict[str, int]:
    """Write the outcomes of one call (only rows this sender still holds)."""
    now = now or utcnow()
    out = {"registered": 0, "rejected": 0, "retry": 0, "failed": 0}
    with write_session(engine) as s:
        for res in results:
            row = s.get(Track17Registration, res.id)
            if row is None or row.status != "sending":
                continue
            row.attempts += 1
            row.lease_until = None
            row.error_code = res.code
            row.last_error = res.reason[:1000]
            if res.status == "registered":
                row.status, row.registered_at = "registered", now
            elif res.status == "rejected":
                row.status = "rejected"
            elif row.attempts >= MAX_ATTEMPTS:
                row.status = "failed"
            else:
                row.status, row.next_attempt_at = "pending", now + retry_backoff(row.attempts)
            out["retry" if row.status == "pending" else row.status] += 1
    return out


@dataclass(frozen=True)
class Refused:
    tracking_number: str
    status: str  # rejected | failed | pending (tried and failing)
    reason: str
    code: int | None
    attempts: int


def needing_attention(engine: Engine, *, limit: int = 50) -> tuple[dict[str, int], list[Refused]]:
    """Counts by status, and the numbers 17TRACK refused (or that keep failing), newest first,
    for the settings page."""
    with read_session(engine) as s:
        counts = dict(s.execute(select(Track17Registration.status, func.count())
                                .group_by(Track17Registration.status)).all())
        rows = s.execute(select(
            Track17Registration.tracking_number, Track17Registration.status,
            Track17Registration.last_error, Track17Registration.error_code,
            Track17Registration.attempts)
            .where(Track17Registration.status.in_(("rejected", "failed"))
                   | ((Track17Registration.status == "pending") & (Track17Registration.attempts > 0)))
            .order_by(Track17Registration.id.desc()).limit(limit)).all()
    return counts, [Refused(*r) for r in rows]
