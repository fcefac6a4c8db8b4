"""The e-mail outbox, the sender's side: ``adapters/mailer.py`` takes one due message at a time
(leased, so several senders never send one message twice), holds the lease while SMTP answers and
records how it went — sent, or queued again with backoff, or failed after ``MAX_ATTEMPTS``.
Messages are queued by ``notifications`` inside the transaction of the change that caused them."""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import datetime
from typing import Iterator

from sqlalchemy import update
from sqlalchemy.orm import Session

from ..domain.windows import DELIVERY_MAX_ATTEMPTS, retry_backoff
from ..infra.models import OutboxMessage
from ..infra.outbox import held, lease_due
from .unit_of_work import transactional

MAX_ATTEMPTS = DELIVERY_MAX_ATTEMPTS


@dataclass(frozen=True)
class MailJob:
    """One message taken for sending, with everything SMTP needs."""

    id: int
    to_addr: str
    subject: str
    reply_to: str
    message_id: str  # decided when queued: every try sends this one
    body_text: str
    body_html: str
    attempts: int
    lease_until: datetime | None = None  # this sender's lease (its token: see infra.outbox)


@transactional
def take_one(s: Session, now: datetime) -> MailJob | None:
    """Take one due message for this sender (pending → sending with a lease from the database's
    clock at this moment), or None when nothing is due or another sender got it first."""
    taken = lease_due(s, OutboxMessage, now=now, limit=1)
    if not taken:
        return None
    m = taken[0]
    return MailJob(m.id, m.to_addr, m.subject, m.reply_to or "", m.message_id or "", m.body_text,
                   m.body_html, m.attempts, m.lease_until)


@contextlib.contextmanager
def holding(engine, job: MailJob) -> Iterator[None]:
    """Keep the lease on ``job`` alive while the block sends it (``infra.outbox.held``)."""
    with held(engine, OutboxMessage, job.id, job.lease_until):
        yield


@transactional
def record_sent(s: Session, job: MailJob, *, now: datetime) -> None:
    s.execute(update(OutboxMessage).where(OutboxMessage.id == job.id).values(
        status="sent", sent_at=now, attempts=job.attempts + 1, lease_until=None, last_error=""))


@transactional
def record_failed(s: Session, job: MailJob, reason: str, *, now: datetime) -> str:
    """A refused, timed-out or unwritable try: queued again with backoff, or failed after
    ``MAX_ATTEMPTS``. Returns the message's new status."""
    attempts = job.attempts + 1
    status = "failed" if attempts >= MAX_ATTEMPTS else "pending"
    s.execute(update(OutboxMessage).where(OutboxMessage.id == job.id).values(
        status=status, attempts=attempts, next_attempt_at=now + retry_backoff(attempts),
        lease_until=None, last_error=reason[:500]))
    return status
