"""The background work as staff see it: each job's last run (``background_jobs``, written by
``adapters/jobs.py`` after every run, whichever process ran it), the mail, Shopify writes and
webhook deliveries that are queued or failed, the retry of a failed email, and the warning staff
pages show when mail has been failing for more than an hour."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from ..domain.errors import ErrorCode, InvalidInput
from ..domain.vocabulary import AuditAction
from ..infra import config
from ..infra.db import read_session, utcnow, write_session
from ..infra.models import BackgroundJob, OutboxMessage, ShopifyWrite, WebhookDelivery, WebhookEndpoint
from .events import record_event
from .unit_of_work import transactional

MAIL_TROUBLE_AFTER = timedelta(hours=1)
ERROR_CHARS = 1000
RESULT_CHARS = 500


# --- job runs ---------------------------------------------------------------------------------------

def record_run(engine: Engine, name: str, *, started_at: datetime, finished_at: datetime,
               error: str = "", result: str = "") -> None:
    """Note one run of a job (one short transaction, after the work): an upsert, so two
    processes recording the same job at once both count."""
    ok = not error
    values = {"name": name, "last_started_at": started_at, "last_finished_at": finished_at,
              "last_error": error[:ERROR_CHARS], "runs": 1, "failures": 0 if ok else 1,
              "last_result": result[:RESULT_CHARS] if ok else ""}
    if ok:
        values["last_success_at"] = finished_at
    with write_session(engine) as s:
        dialect = s.get_bind().dialect.name
        insert = pg_insert if dialect == "postgresql" else sqlite_insert
        stmt = insert(BackgroundJob).values(**values)
        change = {"last_started_at": stmt.excluded.last_started_at,
                  "last_finished_at": stmt.excluded.last_finished_at,
                  "last_error": stmt.excluded.last_error,
                  "runs": BackgroundJob.runs + 1,
                  "failures": BackgroundJob.failures + (0 if ok else 1)}
        if ok:
            change["last_success_at"] = stmt.excluded.last_success_at
            change["last_result"] = stmt.excluded.last_result
        s.execute(stmt.on_conflict_do_update(index_elements=[BackgroundJob.name], set_=change))


@dataclass(frozen=True)
class JobRunView:
    name: str
    last_started_at: datetime | None
    last_finished_at: datetime | None
    last_success_at: datetime | None
    last_error: str
    last_result: str
    runs: int
    failures: int


def job_runs(engine: Engine) -> dict[str, JobRunView]:
    with read_session(engine) as s:
        return {j.name: JobRunView(j.name, j.last_started_at, j.last_finished_at, j.last_success_at,
                                   j.last_error, j.last_result, j.runs, j.failures)
                for j in s.scalars(select(BackgroundJob))}


# --- what is queued and what failed ------------------------------------------------------------------

@dataclass(frozen=True)
class QueuedItem:
    id: int
    what: str  # the recipient, the kind of write, the endpoint
    detail: str  # subject, claim, event type
    status: str
    attempts: int
    last_error: str
    at: datetime | None


@dataclass(frozen=True)
class Overview:
    mail_queued: int
    mail_failed: int
    shopify_queued: int
    shopify_failed: int
    webhooks_queued: int
    webhooks_failed: int
    failed_mail: list[QueuedItem]
    failed_shopify: list[QueuedItem]
    failed_webhooks: list[QueuedItem]
    smtp_configured: bool
    imap_configured: bool
    track17_configured: bool
    background_in_app: bool


def _counts(s: Session, model, queued: tuple[str, ...], failed: str) -> tuple[int, int]:
    rows = dict(s.execute(select(model.status, func.count()).group_by(model.status)).all())
    return sum(rows.get(st, 0) for st in queued), rows.get(failed, 0)


def overview(engine: Engine, *, limit: int = 50) -> Overview:
    with read_session(engine) as s:
        mq, mf = _counts(s, OutboxMessage, ("pending", "sending"), "failed")
        sq, sf = _counts(s, ShopifyWrite, ("pending", "sending"), "failed")
        wq, wf = _counts(s, WebhookDelivery, ("pending", "sending"), "failed")
        mail = [QueuedItem(m.id, m.to_addr, m.subject, m.status, m.attempts, m.last_error,
                           m.created_at)
                for m in s.scalars(select(OutboxMessage).where(OutboxMessage.status == "failed")
                                   .order_by(OutboxMessage.id.desc()).limit(limit))]
        writes = [QueuedItem(w.id, w.kind, f"claim #{w.claim_id}", w.status, w.attempts,
                             w.last_error, w.created_at)
                  for w in s.scalars(select(ShopifyWrite).where(ShopifyWrite.status == "failed")
                                     .order_by(ShopifyWrite.id.desc()).limit(limit))]
        hooks = [QueuedItem(d.id, url, d.event_type, d.status, d.attempts, d.last_error,
                            d.created_at)
                 for d, url in s.execute(
                     select(WebhookDelivery, WebhookEndpoint.url)
                     .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
                     .where(WebhookDelivery.status == "failed")
                     .order_by(WebhookDelivery.id.desc()).limit(limit))]
    return Overview(mq, mf, sq, sf, wq, wf, mail, writes, hooks,
                    smtp_configured=config.smtp_settings() is not None,
                    imap_configured=config.imap_configured(),
                    track17_configured=config.track17_configured(),
                    background_in_app=config.background_enabled())


@transactional
def retry_mail(s: Session, message_id: int, actor: str, *, now: datetime | None = None) -> None:
    """Staff send a failed email again (after fixing the mail settings): queued at once, with
    its tries counted afresh; the same Message-ID."""
    now = now or utcnow()
    m = s.get(OutboxMessage, message_id)
    if m is None or m.status != "failed":
        raise InvalidInput("Only a failed email can be sent again.", ErrorCode.ILLEGAL_TRANSITION)
    m.status, m.attempts, m.next_attempt_at, m.lease_until = "pending", 0, now, None
    record_event(s, actor=actor, action=AuditAction.MAIL_RETRIED, at=now,
                 order_id=None, details={"outbox_id": m.id, "kind": m.kind})


def mail_failing_since(engine: Engine, *, now: datetime | None = None) -> datetime | None:
    """When mail started failing, if it has been failing for more than an hour (else None): the
    oldest email queued over an hour ago that a try has failed and that isn't sent yet (or that
    gave up in the last day), with no email sent since it was queued."""
    now = now or utcnow()
    before = now - MAIL_TROUBLE_AFTER
    with read_session(engine) as s:  # on every staff page: two look-ups on (status, next_attempt_at)
        waiting = s.scalar(select(func.min(OutboxMessage.created_at)).where(
            OutboxMessage.status.in_(("pending", "sending")), OutboxMessage.attempts > 0,
            OutboxMessage.created_at <= before))
        gave_up = s.scalar(select(func.min(OutboxMessage.created_at)).where(
            OutboxMessage.status == "failed", OutboxMessage.next_attempt_at >= now - timedelta(days=1),
            OutboxMessage.created_at <= before))
        oldest = min((t for t in (waiting, gave_up) if t is not None), default=None)
        if oldest is None:
            return None
        sent_since = s.scalar(select(func.max(OutboxMessage.sent_at)).where(
            OutboxMessage.status == "sent", OutboxMessage.sent_at >= oldest))
    return None if sent_since is not None and sent_since > before else oldest
