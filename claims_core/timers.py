"""Timers, run by ``python -m claims_core tick`` (every minute from cron is fine).

- A claim waiting on the customer for ``reminder_after_days`` gets one reminder; after
  ``close_after_days`` more (counted from the request) it is closed with an event. A reply within
  the filing window reopens it (see ``services.add_customer_message``).
- Staff who opted in get one daily digest (to do, overdue past the response target, waiting on
  customers, filed in the last day).
- Then the outbox is delivered.

Every step is a conditional write in its own transaction and every mail has a unique key, so two
ticks running at once do each thing once.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Engine, func, select

from . import notify, states
from .db import optimize, read_session, utcnow, write_session
from .models import Claim, Event, StaffUser
from .services import get_settings


@dataclass
class TickReport:
    reminded: list[str] = field(default_factory=list)
    closed: list[str] = field(default_factory=list)
    digests: int = 0
    mail: dict = field(default_factory=dict)


def _waiting_since(s, claim_ids: list[int]) -> dict[int, tuple[datetime, int]]:
    rows = s.execute(select(Event.claim_id, func.max(Event.id)).where(
        Event.claim_id.in_(claim_ids), Event.to_status == states.NEEDS_INFO).group_by(Event.claim_id)).all()
    ids = {cid: eid for cid, eid in rows}
    at = dict(s.execute(select(Event.id, Event.at).where(Event.id.in_(list(ids.values())))).all()) if ids else {}
    return {cid: (at[eid], eid) for cid, eid in ids.items()}


def run_reminders_and_closing(engine: Engine, now: datetime, report: TickReport) -> None:
    with read_session(engine) as s:
        settings = get_settings(s)
        waiting = s.scalars(select(Claim.id).where(Claim.status == states.NEEDS_INFO)).all()
        since = _waiting_since(s, list(waiting)) if waiting else {}
    remind_after = timedelta(days=settings.reminder_after_days)
    close_after = timedelta(days=settings.close_after_days)
    for cid, (asked_at, event_id) in since.items():
        if now - asked_at >= close_after:
            _close(engine, cid, event_id, now, report)
        elif now - asked_at >= remind_after:
            _remind(engine, cid, event_id, asked_at, now, report)


def _remind(engine, cid, event_id, asked_at, now, report) -> None:
    with write_session(engine) as s:
        claim = s.get(Claim, cid)
        if claim.status != states.NEEDS_INFO or (claim.reminded_at and claim.reminded_at >= asked_at):
            return  # answered meanwhile, or reminded already (maybe by another tick)
        claim.reminded_at = now
        notify.enqueue(s, key=f"reminder:{cid}:{event_id}", kind="reminder", to=claim.email,
                       claim=claim, link=notify.claim_link(claim.access_token), now=now,
                       lines=["We're still waiting for your reply to decide on your claim.",
                              "If we don't hear from you, the claim will be closed; you can "
                              "reopen it by replying while the filing window is open."])
        states.record_event(s, actor="system", action="reminder_sent", claim=claim, at=now)
        report.reminded.append(claim.reference)


def _close(engine, cid, event_id, now, report) -> None:
    with write_session(engine) as s:
        claim = s.get(Claim, cid)
        if claim.status != states.NEEDS_INFO:
            return
        states.transition(s, claim, states.CLOSED, actor="system", action="auto_closed",
                          details={"waiting_since_event": event_id}, at=now)
        notify.enqueue(s, key=f"autoclosed:{cid}:{event_id}", kind="auto_closed", to=claim.email,
                       claim=claim, link=notify.claim_link(claim.access_token), now=now,
                       lines=["We closed your claim because we didn't hear back.",
                              "You can reopen it by replying on your claim page while the filing "
                              "window is open."])
        report.closed.append(claim.reference)


def run_digests(engine: Engine, now: datetime, report: TickReport) -> None:
    with read_session(engine) as s:
        users = s.scalars(select(StaffUser).where(StaffUser.active, StaffUser.daily_digest,
                                                  StaffUser.email != "")).all()
        if not users:
            return
        settings = get_settings(s)
        count = lambda *cond: s.scalar(select(func.count()).select_from(Claim).where(*cond)) or 0  # noqa: E731
        todo = count(Claim.status.in_((states.SUBMITTED, states.IN_REVIEW)))
        overdue = count(Claim.status.in_((states.SUBMITTED, states.IN_REVIEW)),
                        Claim.updated_at < now - timedelta(hours=settings.response_target_hours))
        waiting = count(Claim.status == states.NEEDS_INFO)
        new = count(Claim.created_at >= now - timedelta(days=1))
        targets = [(u.id, u.email) for u in users]
    lines = [f"Claims to do: {todo}", f"Waiting on the shop past the {settings.response_target_hours} h "
             f"target: {overdue}", f"Waiting on customers: {waiting}", f"Filed in the last 24 hours: {new}"]
    day = now.date().isoformat()
    for uid, email in targets:
        with write_session(engine) as s:
            before = s.scalar(select(func.count()).select_from(notify.OutboxMessage)
                              .where(notify.OutboxMessage.dedupe_key == f"digest:{uid}:{day}"))
            notify.enqueue(s, key=f"digest:{uid}:{day}", kind="staff_digest", to=email, claim=None,
                           lines=lines, now=now)
            report.digests += 0 if before else 1


def tick(engine: Engine, *, now: datetime | None = None, smtp: notify.SmtpConfig | None = None) -> TickReport:
    now = now or utcnow()
    report = TickReport()
    run_reminders_and_closing(engine, now, report)
    run_digests(engine, now, report)
    report.mail = notify.send_pending(engine, smtp, now=now)
    optimize(engine)
    return report
