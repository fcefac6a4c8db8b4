"""Taking work from an outbox-like table: emails, writes to Shopify, outbound webhooks.

Each such table has ``status`` (pending | sending | …), ``attempts``, ``next_attempt_at`` and
``lease_until``. A sender takes due rows with a conditional UPDATE (pending → sending, with a
lease), so two senders — two processes, two cron ticks, the web app's jobs and a worker — never
take the same row; a row whose sender died is taken again once its lease has lapsed.

Leases are judged against the **database's** clock, read afresh at each take (never a time
captured when a run started: a long run would hand out leases that had lapsed already), and the
holder renews its lease while it works (``held``), so a slow send is never taken over. The value of
``lease_until`` is the holder's token: a renewal, or a take-over of a lapsed lease, only succeeds
if it is still the value the sender saw.
"""
from __future__ import annotations

import contextlib
import logging
import threading
from datetime import datetime, timedelta, timezone
from email.utils import make_msgid
from typing import Iterator, Sequence

from sqlalchemy import Engine, and_, func, or_, select, text, update
from sqlalchemy.orm import Session

from ..domain.windows import DELIVERY_LEASE
from . import config
from .db import write_session

log = logging.getLogger("claims.outbox")


def new_message_id() -> str:
    """An email's Message-ID, decided once when the message is queued (on the shop's domain)."""
    return make_msgid(idstring="claims", domain=config.mail_domain())


def lease_length() -> timedelta:
    return DELIVERY_LEASE


def database_now(s: Session) -> datetime:
    """The database server's clock now (not the transaction's start, not this process's clock)."""
    if s.get_bind().dialect.name == "postgresql":
        return s.scalar(select(func.clock_timestamp())).astimezone(timezone.utc)
    raw = s.scalar(text("SELECT strftime('%Y-%m-%d %H:%M:%f', 'now')"))  # SQLite: UTC
    return datetime.fromisoformat(raw).replace(tzinfo=timezone.utc)


def lease_due(s: Session, model, *, now: datetime, limit: int, where: Sequence = ()) -> list:
    """Take up to ``limit`` due rows of ``model`` (oldest first) for this sender.

    ``now`` (the app's clock) decides which rows are due (``next_attempt_at``); the database's
    clock decides whether another sender's lease has lapsed, and sets this sender's lease."""
    clock = database_now(s)
    due = s.scalars(select(model).where(
        or_(model.status == "pending", (model.status == "sending") & (model.lease_until < clock)),
        model.next_attempt_at <= now, *where).order_by(model.id).limit(limit)).all()
    taken = []
    for row in due:
        same_lease = (model.lease_until == row.lease_until) if row.lease_until is not None \
            else model.lease_until.is_(None)
        got = s.execute(update(model).where(
            model.id == row.id, model.status == row.status, model.attempts == row.attempts,
            same_lease).values(status="sending", lease_until=database_now(s) + lease_length())
        ).rowcount
        if got == 1:
            s.refresh(row)
            taken.append(row)
    return taken


def renew(engine: Engine, model, row_id: int, lease_until: datetime | None) -> datetime | None:
    """Extend this sender's lease on a row it holds; None if it no longer holds it."""
    with write_session(engine) as s:
        new = database_now(s) + lease_length()
        cond = [model.id == row_id, model.status == "sending"]
        if lease_until is not None:
            cond.append(model.lease_until == lease_until)
        got = s.execute(update(model).where(and_(*cond)).values(lease_until=new)).rowcount
    return new if got == 1 else None


def release(engine: Engine, model, row_id: int, lease_until: datetime | None) -> bool:
    """Give a row back untouched (sending → pending, no attempt counted), e.g. at shut-down before
    it was sent. Only if this sender still holds it."""
    with write_session(engine) as s:
        cond = [model.id == row_id, model.status == "sending"]
        if lease_until is not None:
            cond.append(model.lease_until == lease_until)
        return s.execute(update(model).where(and_(*cond)).values(
            status="pending", lease_until=None)).rowcount == 1


@contextlib.contextmanager
def held(engine: Engine, model, row_id: int, lease_until: datetime | None) -> Iterator[None]:
    """Keep the lease on a row alive while the block works on it (renewed every third of the
    lease on a small thread), so a slow send (a slow SMTP server, a throttled API) is never
    taken over by another sender and sent twice."""
    stop = threading.Event()
    token = [lease_until]

    def keep() -> None:
        every = max(lease_length().total_seconds() / 3, 0.05)
        while not stop.wait(every):
            try:
                token[0] = renew(engine, model, row_id, token[0])
            except Exception:  # noqa: BLE001 - a failed renewal is retried at the next beat
                log.exception("renewing the lease on %s %s", model.__tablename__, row_id)
                continue
            if token[0] is None:
                log.warning("lost the lease on %s %s", model.__tablename__, row_id)
                return

    beat = threading.Thread(target=keep, name=f"lease-{model.__tablename__}-{row_id}", daemon=True)
    beat.start()
    try:
        yield
    finally:
        stop.set()
        beat.join()
