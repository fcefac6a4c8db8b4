"""``python -m claims_core tick`` (every minute from cron is fine): every background job once —
the timers, daily digests, draft retention, delivering the outbox, the Shopify write-back queue,
outbound webhooks and SQLite's periodic upkeep. The list itself is ``adapters/jobs.JOBS``, shared
with the web process's background jobs and ``python -m claims_core worker``."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine

from ..services import timers
from . import jobs, mailer


def tick(engine: Engine, *, now: datetime | None = None,
         smtp: mailer.SmtpConfig | None = None) -> timers.TickReport:
    """Run every job once, in order. ``smtp`` None: no mail is sent (the CLI passes the configured
    server). A job that fails is logged, recorded and named in ``report.failed``; the rest run."""
    return jobs.tick(engine, now=now, smtp=smtp, smtp_given=True)
