"""The background jobs: one table, three ways to run it.

- in the web process: ``app.py`` passes ``lifespan`` to ``st.App``; it starts an APScheduler
  ``BackgroundScheduler`` (its own threads: the event loop is never blocked) running every job on
  its own cadence, unless ``CLAIMS_BACKGROUND=off``;
- ``python -m claims_core worker``: the same jobs in the foreground until Ctrl-C or SIGTERM (a
  separate process or container);
- ``python -m claims_core tick``: every job once, in the table's order (cron).

Every job is safe to run in several processes at once (rows are leased, timers are conditional
writes, mails have unique keys). A job's failure is logged and recorded in ``background_jobs`` and
the job runs again at its next turn; it never stops the other jobs or the web server. At shutdown
the scheduler stops taking new work, lets each running job finish what it holds (a job checks
``ctx.stop`` between items), and returns.

**To add a job**, write ``def _my_job(ctx: JobContext) -> dict`` (what it did, shown on Settings →
Background work) and add one line to ``JOBS`` below, e.g.::

    Job("imap_inbound", _imap_inbound, every=30),
"""
from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Iterable

from sqlalchemy import Engine

from ..infra import config
from ..infra.db import optimize, utcnow
from ..services import background, drafts, privacy_requests, recoveries, retention, timers
from . import (easypost_claims, inbound_mail, mailer, outbound_webhooks, shopify_write_back, track17,
               inbound_webhooks)

log = logging.getLogger("claims.jobs")


@dataclass
class JobContext:
    """What a job run gets: the engine; ``now`` (None: the clock, read as the job goes; a fixed
    time for ``tick(now=…)`` in tests); the SMTP server to use (``smtp_given``: the caller chose,
    even None); ``stop`` (set at shutdown: finish the item in hand, take no more); the tick's report."""

    engine: Engine
    now: datetime | None = None
    smtp: mailer.SmtpConfig | None = None
    smtp_given: bool = False
    stop: threading.Event = field(default_factory=threading.Event)
    report: timers.TickReport = field(default_factory=timers.TickReport)

    def clock(self) -> datetime:
        return self.now or utcnow()

    def smtp_config(self) -> mailer.SmtpConfig | None:
        return self.smtp if self.smtp_given else mailer.smtp_from_env()


@dataclass(frozen=True)
class Job:
    name: str
    run: Callable[[JobContext], Any]
    every: float  # seconds between runs in the web process and the worker


# --- the jobs ---------------------------------------------------------------------------------------

def _timers(ctx: JobContext) -> dict:
    before = len(ctx.report.reminded), len(ctx.report.closed)
    timers.run_reminders_and_closing(ctx.engine, ctx.clock(), ctx.report)
    return {"reminded": len(ctx.report.reminded) - before[0],
            "closed": len(ctx.report.closed) - before[1]}


def _digests(ctx: JobContext) -> dict:
    before = ctx.report.digests
    timers.run_digests(ctx.engine, ctx.clock(), ctx.report)  # once a day each: a unique key
    return {"queued": ctx.report.digests - before}


def _drafts(ctx: JobContext) -> dict:
    ctx.report.drafts_purged = drafts.purge_expired(ctx.engine, now=ctx.clock())
    return {"purged": ctx.report.drafts_purged}


def _mail(ctx: JobContext) -> dict:
    ctx.report.mail = mailer.send_pending(ctx.engine, ctx.smtp_config(), now=ctx.now, stop=ctx.stop)
    return ctx.report.mail


def _shopify(ctx: JobContext) -> dict:
    ctx.report.shopify = shopify_write_back.send_pending(ctx.engine, now=ctx.now, stop=ctx.stop)
    return ctx.report.shopify


def _webhooks(ctx: JobContext) -> dict:
    ctx.report.webhooks = outbound_webhooks.send_pending(ctx.engine, now=ctx.now, stop=ctx.stop)
    return ctx.report.webhooks


def _retention(ctx: JobContext) -> dict:
    """Settings → Privacy: remove what the store's retention policy no longer keeps."""
    return retention.apply_retention(ctx.engine, now=ctx.clock(), stop=ctx.stop).as_dict()


def _privacy_requests(ctx: JobContext) -> dict:
    """Shopify's customer-data requests: exports prepared, erasures carried out (or waiting)."""
    return privacy_requests.process_due(ctx.engine, now=ctx.clock(), stop=ctx.stop)


def _optimize(ctx: JobContext) -> dict:
    optimize(ctx.engine)
    return {}


# The one list. Order = the order ``tick`` runs them (timers before mail: a reminder goes out in
# the same tick). ``every``: mail is polled every 5 s (out within ~15 s of being queued); the
# daily digests check every minute whether the owner's hour has come.
JOBS: tuple[Job, ...] = (
    Job("timers", _timers, every=60),
    Job("digests", _digests, every=60),
    Job("draft_purge", _drafts, every=3600),
    Job("mail", _mail, every=5),
    Job("shopify_writes", _shopify, every=10),
    Job("outbound_webhooks", _webhooks, every=10),
    Job("webhook_receipts", inbound_webhooks.background_job, every=2),
    Job("track17_register", track17.background_job, every=30),  # new tracking numbers
    Job("imap_inbound", inbound_mail.background_job, every=15),  # customers' email replies
    Job("privacy_requests", _privacy_requests, every=60),  # Shopify's data requests, erasures
    Job("retention", _retention, every=24 * 3600),  # Settings → Privacy, daily
    Job("recovery_deadlines", lambda ctx: recoveries.run_deadlines(  # carrier claims: write-offs,
        ctx.engine, now=ctx.clock(), stop=ctx.stop), every=3600),  # the owner's reminders
    Job("easypost_claims", easypost_claims.background_job, every=30),  # recoveries filed there
    Job("sqlite_optimize", _optimize, every=6 * 3600),
)
JOBS_BY_NAME = {job.name: job for job in JOBS}


# --- running one ------------------------------------------------------------------------------------

def _summary(result: Any) -> str:
    if result is None:
        return ""
    try:
        return json.dumps(result, sort_keys=True, default=str)
    except (TypeError, ValueError):
        return str(result)


def run_job(job: Job, ctx: JobContext) -> bool:
    """Run one job once: any failure is logged and recorded, never raised. True if it succeeded."""
    started = utcnow()
    error, result = "", ""
    try:
        result = _summary(job.run(ctx))
    except Exception as e:  # noqa: BLE001 - one job's failure never stops the others
        error = f"{type(e).__name__}: {e}"
        log.exception("background job %s failed (tried again in %s s)", job.name, job.every)
    try:
        background.record_run(ctx.engine, job.name, started_at=started, finished_at=utcnow(),
                              error=error, result=result)
    except Exception:  # noqa: BLE001 - e.g. a database not set up yet: the next run records
        log.warning("could not record the run of %s", job.name, exc_info=True)
    return not error


def run_all(ctx: JobContext, jobs: Iterable[Job] = JOBS) -> list[str]:
    """Every job once, in order (``tick``). Returns the names of those that failed."""
    return [job.name for job in jobs if not run_job(job, ctx)]


# --- running them on their cadences -----------------------------------------------------------------

class Background:
    """The jobs on an APScheduler ``BackgroundScheduler`` (threads of their own)."""

    def __init__(self, engine: Engine, jobs: Iterable[Job] = JOBS, *, smtp=None,
                 smtp_given: bool = False):
        from apscheduler.executors.pool import ThreadPoolExecutor
        from apscheduler.schedulers.background import BackgroundScheduler

        self.jobs = tuple(jobs)
        self.stop = threading.Event()
        self.engine = engine
        self._smtp, self._smtp_given = smtp, smtp_given
        self.scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(max_workers=max(2, len(self.jobs)))},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            timezone="UTC")
        for job in self.jobs:
            self.scheduler.add_job(self._run, "interval", seconds=job.every, args=(job,),
                                   id=job.name, name=job.name, next_run_time=datetime.now().astimezone())

    def _run(self, job: Job) -> None:
        if self.stop.is_set():
            return
        run_job(job, JobContext(self.engine, smtp=self._smtp, smtp_given=self._smtp_given,
                                stop=self.stop))

    def start(self) -> "Background":
        self.scheduler.start()
        log.info("background jobs started: %s", ", ".join(f"{j.name}/{j.every:g}s" for j in self.jobs))
        return self

    def shutdown(self) -> None:
        """Take no more work; wait for running jobs to finish the item each holds."""
        self.stop.set()
        self.scheduler.shutdown(wait=True)
        log.info("background jobs stopped")


def tick(engine: Engine, *, now: datetime | None = None, smtp=None, smtp_given: bool = False
         ) -> timers.TickReport:
    ctx = JobContext(engine, now=now, smtp=smtp, smtp_given=smtp_given)
    ctx.report.failed = run_all(ctx)
    return ctx.report


def work_until_stopped(engine: Engine, stop: threading.Event) -> None:
    """``python -m claims_core worker``: the jobs on their cadences until ``stop`` is set."""
    bg = Background(engine).start()
    try:
        while not stop.wait(1.0):
            pass
    finally:
        bg.shutdown()


SETTLE_AGAIN_S = 120.0  # the heap is settled at start and once more when the pages are loaded


def settle_heap() -> None:
    """Put the objects alive now (modules, Streamlit, pandas, Plotly, SQLAlchemy's caches) out of
    the cyclic garbage collector's sight (``gc.freeze``). Without it, each of the collector's full
    passes walked the whole web process, about 200 ms during which no thread ran: under a
    webhook burst that was a receipt writer or the applier holding SQLite's write lock, and the
    customers waiting behind it (``bench/webhooks.py``). What is created later is collected as
    before."""
    gc.collect()
    gc.freeze()


@contextlib.asynccontextmanager
async def lifespan(app: Any = None):
    """``st.App(..., lifespan=lifespan)``: the background jobs run alongside the web server
    (unless ``CLAIMS_BACKGROUND=off``); at shutdown they finish what they hold, then stop. The
    heap is settled (``settle_heap``) at start, and again once the first pages have run."""
    settle_heap()
    again = threading.Timer(SETTLE_AGAIN_S, settle_heap)
    again.daemon = True
    again.start()
    bg = None
    if config.background_enabled():
        from .web import engine

        try:
            bg = await asyncio.to_thread(lambda: Background(engine()).start())
        except Exception:  # noqa: BLE001 - the web app serves even if the jobs can't start
            log.exception("the background jobs could not start")
    else:
        log.info("CLAIMS_BACKGROUND=off: no background jobs in the web process "
                 "(run `python -m claims_core worker` or `tick` from cron)")
    try:
        yield {"background": bg}
    finally:
        again.cancel()
        if bg is not None:
            started = time.monotonic()
            await asyncio.to_thread(bg.shutdown)
            log.info("background jobs shut down in %.1f s", time.monotonic() - started)
