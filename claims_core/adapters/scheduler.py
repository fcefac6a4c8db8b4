"""``python -m claims_core tick`` (every minute from cron is fine): the timers, draft retention,
delivering the outbox, the Shopify write-back queue and outbound webhooks, and SQLite's periodic upkeep."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine

from ..infra.db import optimize, utcnow
from ..services import drafts, timers
from . import mailer, outbound_webhooks, shopify_writeback


def tick(engine: Engine, *, now: datetime | None = None,
         smtp: mailer.SmtpConfig | None = None) -> timers.TickReport:
    now = now or utcnow()
    report = timers.TickReport()
    timers.run_reminders_and_closing(engine, now, report)
    timers.run_digests(engine, now, report)
    report.drafts_purged = drafts.purge_expired(engine, now=now)
    report.mail = mailer.send_pending(engine, smtp, now=now)
    report.shopify = shopify_writeback.send_pending(engine, now=now)
    report.webhooks = outbound_webhooks.send_pending(engine, now=now)
    optimize(engine)
    return report
