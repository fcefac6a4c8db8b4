"""Taking work from an outbox-like table: emails, writes to Shopify, outbound webhooks.

Each such table has ``status`` (pending | sending | …), ``attempts``, ``next_attempt_at`` and
``lease_until``. A sender takes due rows with a conditional UPDATE (pending → sending, with a
lease), so two senders — two processes, two cron ticks — never take the same row; a row whose
sender died is taken again once its lease has lapsed.
"""
from __future__ import annotations

from datetime import datetime
from typing import Sequence

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from ..domain.windows import DELIVERY_LEASE


def lease_due(s: Session, model, *, now: datetime, limit: int, where: Sequence = ()) -> list:
    """Take up to ``limit`` due rows of ``model`` (oldest first) for this sender."""
    due = s.scalars(select(model).where(
        or_(model.status == "pending", (model.status == "sending") & (model.lease_until < now)),
        model.next_attempt_at <= now, *where).order_by(model.id).limit(limit)).all()
    taken = []
    for row in due:
        got = s.execute(update(model).where(
            model.id == row.id, model.status == row.status, model.attempts == row.attempts)
            .values(status="sending", lease_until=now + DELIVERY_LEASE)).rowcount
        if got == 1:
            s.refresh(row)
            taken.append(row)
    return taken
