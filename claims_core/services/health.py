"""The numbers ``/metrics`` reports (``adapters/health.py`` turns them into Prometheus' text),
read from the database at scrape time in one read transaction (and, on SQLite, the webhook spool's
receipts not moved in yet, counted as pending): the backlog of each outbox-like
table by status, each background job's last success, inbound webhooks by source and outcome, and
claims by status."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import Engine, column, func, inspect, select, table

from ..infra.db import UTCDateTime, read_session
from ..infra.models import Claim, OutboxMessage, ShopifyWrite, WebhookDelivery, WebhookReceipt
from . import webhook_receipts

# the outbox-like tables whose backlog is watched, by the kind of work they hold
OUTBOXES = (("email", OutboxMessage), ("shopify_write", ShopifyWrite),
            ("webhook_delivery", WebhookDelivery))

_JOBS = table("background_jobs", column("name"), column("last_success_at", UTCDateTime()))


@dataclass(frozen=True)
class HealthCounts:
    backlog: tuple[tuple[str, str, int], ...]             # (kind of work, status, rows)
    last_success: tuple[tuple[str, datetime], ...]        # (job, when it last succeeded, UTC)
    webhooks_received: tuple[tuple[str, str, int], ...]   # (source, outcome, receipts)
    claims_by_status: tuple[tuple[str, int], ...]         # (status, claims)

    @property
    def claims_filed(self) -> int:
        return sum(n for _status, n in self.claims_by_status)


def _utc(at) -> datetime:
    if isinstance(at, str):  # a raw column on SQLite comes back as text
        at = datetime.fromisoformat(at)
    return at.replace(tzinfo=timezone.utc) if at.tzinfo is None else at


def counts(engine: Engine) -> HealthCounts:
    """Everything ``/metrics`` shows, as of now. Raises what the database raises."""
    with read_session(engine) as s:
        backlog = tuple((kind, status, n) for kind, model in OUTBOXES
                        for status, n in s.execute(select(model.status, func.count())
                                                   .group_by(model.status)).all())
        last_success: tuple[tuple[str, datetime], ...] = ()
        # background_jobs arrives with migration 0016; an older database has no such table
        if inspect(s.connection()).has_table("background_jobs"):
            last_success = tuple((name, _utc(at)) for name, at in s.execute(
                select(_JOBS.c.name, _JOBS.c.last_success_at)).all() if at is not None)
        received = Counter({(source, outcome): n for source, outcome, n in s.execute(
            select(WebhookReceipt.source, WebhookReceipt.outcome, func.count())
            .group_by(WebhookReceipt.source, WebhookReceipt.outcome)).all()})
        by_status = tuple((status, n) for status, n in s.execute(
            select(Claim.status, func.count()).group_by(Claim.status)).all())
    for source, n in webhook_receipts.spooled(engine).items():  # SQLite: not moved in yet
        received[(source, "pending")] += n
    return HealthCounts(backlog, last_success,
                        tuple((src, outcome, n) for (src, outcome), n in sorted(received.items())),
                        by_status)
