"""Timers, run by ``python -m claims_core tick`` (see ``adapters/scheduler.py``).

- A claim waiting on the customer for ``reminder_after_days`` gets one reminder; after
  ``close_after_days`` (counted from the request) it is closed. A reply within the filing window
  reopens it (see ``customer.add_customer_message``).
- Staff who opted in get one daily digest (to do, overdue past the response target, waiting on
  customers, filed in the last day).

Every step is a conditional write in its own unit of work and every mail has a unique key, so two
ticks running at once do each thing once. The mails follow from the events (reminder_sent,
auto_closed) through the handler table.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Engine, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..domain import windows
from ..domain.errors import StaleClaim
from ..domain.lifecycle import Action
from ..domain.vocabulary import AWAITING_SHOP, NEEDS_INFO, AuditAction
from ..infra.db import read_session
from ..infra.models import Claim, Event, StaffUser, settings_row
from . import notifications
from .events import apply, record_event
from .unit_of_work import transactional


@dataclass
class TickReport:
    reminded: list[str] = field(default_factory=list)
    closed: list[str] = field(default_factory=list)
    digests: int = 0
    drafts_purged: int = 0
    mail: dict = field(default_factory=dict)
    shopify: dict = field(default_factory=dict)
    webhooks: dict = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)  # the jobs that failed (logged, recorded)


def _waiting_since(s, claim_ids: list[int]) -> dict[int, tuple[datetime, int]]:
    rows = s.execute(select(Event.claim_id, func.max(Event.id)).where(
        Event.claim_id.in_(claim_ids), Event.to_status == NEEDS_INFO).group_by(Event.claim_id)).all()
    ids = {cid: eid for cid, eid in rows}
    at = dict(s.execute(select(Event.id, Event.at).where(Event.id.in_(list(ids.values()))))
              .all()) if ids else {}
    return {cid: (at[eid], eid) for cid, eid in ids.items()}


def run_reminders_and_closing(engine: Engine, now: datetime, report: TickReport) -> None:
    with read_session(engine) as s:
        settings = settings_row(s)
        waiting = s.scalars(select(Claim.id).where(Claim.status == NEEDS_INFO)).all()
        since = _waiting_since(s, list(waiting)) if waiting else {}
    for cid, (asked_at, event_id) in since.items():
        due = windows.waiting_step(asked_at, now, settings.reminder_after_days,
                                   settings.close_after_days)
        if due == "close":
            ref = _lost_race_is_none(_close, engine, cid, event_id, now)
            if ref:
                report.closed.append(ref)
        elif due == "remind":
            ref = _lost_race_is_none(_remind, engine, cid, event_id, asked_at, now)
            if ref:
                report.reminded.append(ref)


def _lost_race_is_none(step, engine: Engine, *args):
    """Run one timer step; if another tick or worker did the same thing at the same moment (the
    claim's version moved on: ``StaleClaim``; the mail's unique key exists: ``IntegrityError``),
    it has been done — by them — so this one moves on to the next claim."""
    try:
        return step(engine, *args)
    except (StaleClaim, IntegrityError):
        return None


@transactional
def _remind(s: Session, cid: int, event_id: int, asked_at: datetime, now: datetime) -> str | None:
    claim = s.get(Claim, cid)
    if claim.status != NEEDS_INFO or (claim.reminded_at and claim.reminded_at >= asked_at):
        return None  # answered meanwhile, or reminded already (maybe by another tick)
    claim.reminded_at = now
    record_event(s, actor="system", action=AuditAction.REMINDER_SENT, claim=claim, at=now,
                 details={"waiting_since_event": event_id})
    return claim.reference


@transactional
def _close(s: Session, cid: int, event_id: int, now: datetime) -> str | None:
    claim = s.get(Claim, cid)
    if claim.status != NEEDS_INFO:
        return None
    apply(s, claim, Action.AUTO_CLOSE, actor="system", at=now,
          details={"waiting_since_event": event_id})
    return claim.reference


def run_digests(engine: Engine, now: datetime, report: TickReport) -> None:
    with read_session(engine) as s:
        users = s.scalars(select(StaffUser).where(StaffUser.active, StaffUser.daily_digest,
                                                  StaffUser.email != "")).all()
        if not users:
            return
        settings = settings_row(s)
        due_day = windows.digest_day(now, settings.timezone, settings.digest_hour)
        if due_day is None:
            return  # before the owner's hour of the store's day

        def count(*cond) -> int:
            return s.scalar(select(func.count()).select_from(Claim).where(*cond)) or 0

        todo = count(Claim.status.in_(AWAITING_SHOP))
        overdue = count(Claim.status.in_(AWAITING_SHOP), Claim.updated_at <
                        windows.response_overdue_before(now, settings.response_target_hours))
        waiting = count(Claim.status == NEEDS_INFO)
        new = count(Claim.created_at >= now - timedelta(days=1))
        targets = [(u.id, u.email) for u in users]
    lines = [f"Claims to do: {todo}", f"Waiting on the shop past the {settings.response_target_hours} h "
             f"target: {overdue}", f"Waiting on customers: {waiting}", f"Filed in the last 24 hours: {new}"]
    day = due_day.isoformat()
    for uid, email in targets:
        if _lost_race_is_none(_digest, engine, uid, email, day, lines, now):
            report.digests += 1


@transactional
def _digest(s: Session, uid: int, email: str, day: str, lines: list[str], now: datetime) -> bool:
    return notifications.enqueue(s, key=f"digest:{uid}:{day}", kind="staff_digest", to=email,
                                 claim=None, lines=lines, now=now)
