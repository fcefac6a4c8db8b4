"""Recoveries, the staff's actions: the list (Recoveries page), one claim's recoveries (the panel
on the claim page), filing by hand, recording the carrier's decision and payment, writing off,
the owner's policy (Settings → Recoveries) and the deadline job. The ledger's rules:
``domain/recoveries.py`` and ``domain/carrier_claims.py``; the part inside other transactions:
``recovery_ledger.py``."""
from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Iterable

from sqlalchemy import Engine, or_, select, update
from sqlalchemy.orm import Session, selectinload

from ..domain import carrier_claims
from ..domain import recoveries as rules
from ..domain.errors import AuthError, ErrorCode, InvalidInput
from ..domain.money import minor_from_amount
from ..domain.recoveries import STATE_LABELS, RecoveryAction, RecoveryState
from ..domain.text import clean_comment, required_text
from ..domain.vocabulary import ISSUE_TYPES, AuditAction, can
from ..domain.money import decimal_amount
from ..domain.windows import local_date, retry_backoff
from ..infra import config
from ..infra.db import read_session, utcnow
from ..infra.models import (Recovery, RecoveryCancellation, RecoveryEvent, RecoveryFiling,
                            ensure_settings_row, settings_row)
from .events import record_event
from .recovery_ledger import (_csv, apply_deadline, cancel_at_easypost, due_ids, load, policy_of,
                              queue_cancel, queue_webhooks, step)
from .unit_of_work import run, transactional


@dataclass(frozen=True)
class RuleView:
    """What the carrier's rule says, for the page (with its sources and how sure it is)."""
    name: str
    window: str
    window_source: str
    window_confirmed: bool
    liability: str
    liability_source: str
    liability_confirmed: bool
    documents: tuple[str, ...]
    documents_source: str
    note: str


@dataclass(frozen=True)
class RecoveryRow:
    id: int
    claim_id: int
    reference: str
    state: str
    state_label: str
    carrier: str
    carrier_key: str
    issue_type: str
    issue_label: str
    currency: str
    paid_out_minor: int
    claimable_minor: int
    approved_minor: int | None
    recovered_minor: int
    deadline: date | None
    days_left: int | None
    overdue: bool
    carrier_claim_number: str
    easypost_claim_id: str | None
    carrier_message: str
    actions: tuple[RecoveryAction, ...]
    rule: RuleView | None
    can_file_easypost: bool = False  # "File" sends it through EasyPost
    filing_status: str = ""  # the EasyPost filing: pending | sending | sent | refused
    filing_error: str = ""  # EasyPost's message when it refused
    insured_minor: int | None = None  # the insured value, when known (caps what can be claimed)
    liability_minor: int | None = None  # the carrier's liability, when known
    can_set_insured: bool = False  # the insured value can still be entered or changed
    cancel_status: str = ""  # EasyPost's claim being cancelled: pending | sending | sent | refused
    cancel_error: str = ""  # EasyPost's message when it refused the cancel


@dataclass(frozen=True)
class RecoveryEventRow:
    at: datetime
    actor: str
    action: str
    from_state: str | None
    to_state: str | None


def _rule_view(rec: Recovery) -> RuleView | None:
    rule = carrier_claims.RULES.get(rec.carrier_key)
    if rule is None:
        return None
    w = carrier_claims.window_for(rule, rec.issue_type)
    liability = ("unknown (depends on the parcel's weight)" if rule.liability_minor is None else
                 f"{rule.liability_minor / 100:,.2f} {rule.liability_currency} unless a higher "
                 "value was declared")
    return RuleView(rule.name, w.describe(), w.source, w.confirmed, liability,
                    rule.liability_source, rule.liability_confirmed, rule.documents,
                    rule.documents_source, rule.note)


def easypost_enabled() -> bool:
    return bool(config.secret("EASYPOST_API_KEY"))


def _files_through_easypost(s: Session, rec: Recovery) -> bool:
    return (easypost_enabled() and bool(rec.shipment.tracking_number)
            and rec.carrier_key not in _csv(settings_row(s).recovery_easypost_off))


def _outboxes(s: Session, ids: list[int]) -> tuple[dict, dict]:
    """The EasyPost filings and cancels of these recoveries, by recovery id (two queries for a
    whole list, not two a row)."""
    filings, cancels = {}, {}
    for i in range(0, len(ids), 500):
        chunk = ids[i:i + 500]
        filings.update((f.recovery_id, f) for f in s.scalars(
            select(RecoveryFiling).where(RecoveryFiling.recovery_id.in_(chunk))))
        cancels.update((c.recovery_id, c) for c in s.scalars(
            select(RecoveryCancellation).where(RecoveryCancellation.recovery_id.in_(chunk))))
    return filings, cancels


def _row(rec: Recovery, today: date, s: Session | None = None,
         outboxes: tuple[dict, dict] | None = None) -> RecoveryRow:
    issue = ISSUE_TYPES.get(rec.issue_type)
    if s is not None and outboxes is None:
        outboxes = _outboxes(s, [rec.id])
    filing = None if s is None else outboxes[0].get(rec.id)
    cancel = None if s is None else outboxes[1].get(rec.id)
    extra = {} if s is None else {
        "can_file_easypost": RecoveryAction.FILE in rules.available_actions(rec.state)
        and _files_through_easypost(s, rec),
        "filing_status": filing.status if filing else "",
        "filing_error": filing.last_error if filing and filing.status == "refused" else "",
        "cancel_status": cancel.status if cancel else "",
        "cancel_error": cancel.last_error if cancel and cancel.status == "refused" else ""}
    return RecoveryRow(
        rec.id, rec.claim_id, rec.claim.reference, rec.state,
        STATE_LABELS.get(rec.state, rec.state), rec.carrier, rec.carrier_key, rec.issue_type,
        issue.label if issue else rec.issue_type, rec.currency, rec.paid_out_cents,
        rec.claimable_cents, rec.approved_cents, rec.recovered_cents, rec.deadline,
        rules.days_left(rec.deadline, today) if rec.state in rules.DEADLINE_STATES else None,
        rec.state in rules.DEADLINE_STATES and rules.overdue(rec.deadline, today),
        rec.carrier_claim_number, rec.easypost_claim_id, rec.carrier_message,
        rules.available_actions(rec.state), _rule_view(rec), insured_minor=rec.insured_minor,
        liability_minor=rec.liability_cents,
        can_set_insured=rec.state in rules.INSURED_VALUE_STATES, **extra)


def _today(s: Session, now: datetime | None) -> date:
    return local_date(now or utcnow(), settings_row(s).timezone)


def list_recoveries(engine: Engine, *, carriers: Iterable[str] = (), states: Iterable[str] = (),
                    open_only: bool = True, now: datetime | None = None,
                    limit: int = 500) -> list[RecoveryRow]:
    """Recoveries by deadline (soonest first; none last), filtered by carrier keys and states
    (empty: all); ``open_only``: only those still waiting for the shop or the money."""
    carriers, states = tuple(carriers), tuple(states)
    with read_session(engine) as s:
        q = select(Recovery)
        if states:
            q = q.where(Recovery.state.in_(states))
        elif open_only:
            q = q.where(Recovery.state.in_(rules.OPEN_STATES))
        if carriers:
            q = q.where(Recovery.carrier_key.in_(carriers))
        q = (q.order_by(Recovery.deadline.is_(None), Recovery.deadline, Recovery.id).limit(limit)
             .options(selectinload(Recovery.claim), selectinload(Recovery.shipment)))
        today = _today(s, now)
        recs = list(s.scalars(q))
        outboxes = _outboxes(s, [r.id for r in recs])
        return [_row(r, today, s, outboxes) for r in recs]


def for_claim(engine: Engine, claim_id: int, *, now: datetime | None = None
              ) -> list[tuple[RecoveryRow, list[RecoveryEventRow]]]:
    """The claim's recoveries (one per shipment), each with its events, oldest first."""
    with read_session(engine) as s:
        today = _today(s, now)
        out = []
        for rec in s.scalars(select(Recovery).where(Recovery.claim_id == claim_id)
                             .order_by(Recovery.id)):
            evs = s.scalars(select(RecoveryEvent).where(RecoveryEvent.recovery_id == rec.id)
                            .order_by(RecoveryEvent.id))
            out.append((_row(rec, today, s), [RecoveryEventRow(e.at, e.actor, e.action, e.from_state,
                                                            e.to_state) for e in evs]))
        return out


# --- staff actions --------------------------------------------------------------------------------

# --- the insured value (caps what can be claimed: domain/recoveries.claimable_minor) -------------

_UNCHANGED = object()


def _insured_input(value, currency: str) -> int | None:
    """None (not insured: an empty field), or minor units from the API's int or a form's text."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return _amount(value.strip() if isinstance(value, str) else value, "The insured value",
                   currency)


def _set_insured(s: Session, rec: Recovery, actor: str, value, now: datetime) -> bool:
    """Keep the insured value and what can be claimed under it; one event (and the outbound
    ``recovery.updated``). False when it is what the recovery has already."""
    insured = _insured_input(value, rec.currency)
    if insured == rec.insured_minor:
        return False
    insured = rules.insured_value(rec.state, insured)
    before = (rec.insured_minor, rec.claimable_cents)
    rec.insured_minor = insured
    rec.claimable_cents = rules.claimable_minor(rec.paid_out_cents, rec.liability_cents, insured)
    rec.updated_at = now
    ev = RecoveryEvent(recovery_id=rec.id, claim_id=rec.claim_id, actor=actor, at=now,
                       action=rules.INSURED_VALUE_EVENT, from_state=rec.state, to_state=rec.state,
                       details=json.dumps({"insured": [before[0], insured],
                                           "claimable": [before[1], rec.claimable_cents]}))
    s.add(ev)
    queue_webhooks(s, rec, ev)
    return True


@transactional
def set_insured_value(s: Session, recovery_id: int, actor: str, insured: int | str | None, *,
                      now: datetime | None = None) -> bool:
    """The parcel's insured value (an amount, or empty/None: not insured) while the recovery is
    still to file. True if it changed."""
    return _set_insured(s, load(s, recovery_id), actor, insured, now or utcnow())


@transactional
def file_by_hand(s: Session, recovery_id: int, actor: str, carrier_claim_number: str, *,
                 insured_minor=_UNCHANGED, now: datetime | None = None) -> None:
    """The claim was filed on the carrier's site: record its number there (and, if given, the
    insured value it was filed under)."""
    number = required_text(carrier_claim_number, "The carrier's claim number",
                           "Enter the claim number the carrier gave you.")[:100]
    rec = load(s, recovery_id)
    now = now or utcnow()
    if insured_minor is not _UNCHANGED:
        _set_insured(s, rec, actor, insured_minor, now)
    step(s, rec, RecoveryAction.FILE, actor=actor, at=now, details={"by": "hand"})
    rec.carrier_claim_number = number
    rec.filed_at = now


@transactional
def needs_action(s: Session, recovery_id: int, actor: str, note: str = "", *,
                 now: datetime | None = None) -> None:
    rec = load(s, recovery_id)
    step(s, rec, RecoveryAction.NEEDS_ACTION, actor=actor, at=now)
    if note:
        rec.carrier_message = clean_comment(note)


def _amount(value, label: str, currency: str = "USD") -> int:
    """Minor units (an int, from the API) or an amount as a person writes it (a form's text)."""
    if isinstance(value, str):
        return minor_from_amount(value, currency)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidInput(f"{label} must be a whole, non-negative number of minor units.",
                           ErrorCode.AMOUNT_INVALID)
    return value


@transactional
def record_decision(s: Session, recovery_id: int, actor: str, outcome: str, *,
                    approved_minor: int | str | None = None, paid_minor: int | str | None = None,
                    message: str = "", now: datetime | None = None) -> str:
    """The carrier's (or insurer's) answer: approved, partly approved or rejected; with an
    amount paid, an approval is also recorded as paid. Returns the new state."""
    if outcome not in rules.DECISIONS:
        raise InvalidInput("Choose approved, partly approved or rejected.",
                           ErrorCode.RECOVERY_OUTCOME_INVALID)
    rec = load(s, recovery_id)
    now = now or utcnow()
    approved = None if approved_minor in (None, "") else _amount(approved_minor,
                                                                 "The approved amount",
                                                                 rec.currency)
    if outcome == RecoveryState.APPROVED and approved is None:
        approved = rec.claimable_cents
    if outcome == RecoveryState.REJECTED:
        approved = 0
    step(s, rec, rules.DECISIONS[outcome], actor=actor, at=now, details={"approved": approved})
    rec.approved_cents = approved
    if message:
        rec.carrier_message = clean_comment(message)
    if paid_minor not in (None, "") and outcome != RecoveryState.REJECTED:
        _pay(s, rec, actor, _amount(paid_minor, "The amount paid", rec.currency), now)
    return rec.state


def _pay(s: Session, rec: Recovery, actor: str, paid: int, now: datetime) -> None:
    step(s, rec, RecoveryAction.RECORD_PAYMENT, actor=actor, at=now, details={"paid": paid})
    rec.recovered_cents = paid


@transactional
def record_payment(s: Session, recovery_id: int, actor: str, paid_minor: int | str, *,
                   now: datetime | None = None) -> None:
    rec = load(s, recovery_id)
    _pay(s, rec, actor, _amount(paid_minor, "The amount paid", rec.currency), now or utcnow())


@transactional
def write_off(s: Session, recovery_id: int, actor: str, reason: str = "", *, role: str,
              now: datetime | None = None) -> None:
    """The owner decides the money isn't worth chasing (or can't be had)."""
    if not can(role, "write_off_recoveries"):
        raise AuthError("Only the owner can write off a recovery.")
    rec = load(s, recovery_id)
    step(s, rec, RecoveryAction.WRITE_OFF, actor=actor, at=now, details={"reason": "by_staff"})
    if reason:
        rec.carrier_message = clean_comment(reason)


@transactional
def cancel(s: Session, recovery_id: int, actor: str, reason: str = "", *,
           now: datetime | None = None) -> bool:
    """Staff cancel the recovery (the parcel turned up, it was filed by mistake). One filed
    through EasyPost is cancelled there too, through the outbox (``recovery_cancellations``,
    sent by the ``easypost_claims`` job); a filing still queued is withdrawn. Returns whether an
    EasyPost cancel was queued."""
    rec = load(s, recovery_id)
    now = now or utcnow()
    step(s, rec, RecoveryAction.CANCEL, actor=actor, at=now, details={"reason": "by_staff"})
    if reason:
        rec.carrier_message = clean_comment(reason)
    return cancel_at_easypost(s, rec, now)


# --- the owner's policy (Settings → Recoveries) ---------------------------------------------------

def load_policy(engine: Engine) -> rules.RecoveryPolicy:
    with read_session(engine) as s:
        return policy_of(settings_row(s))


@transactional
def save_policy(s: Session, actor: str, *, carriers: Iterable[str], issue_types: Iterable[str],
                min_minor: int | str, easypost_off: Iterable[str] | None = None) -> bool:
    """Which approved claims open a recovery. Empty lists mean "all". True if anything changed."""
    carriers = sorted(set(carriers))
    issue_types = sorted(set(issue_types))
    known = set(carrier_claims.RECOVERY_CARRIERS) | {carrier_claims.OTHER}
    easypost_off = None if easypost_off is None else sorted(set(easypost_off))
    if not set(carriers) <= known or not set(easypost_off or ()) <= known:
        raise InvalidInput("Unknown carrier.", ErrorCode.SETTING_INVALID)
    if not set(issue_types) <= set(rules.RECOVERABLE_ISSUES):
        raise InvalidInput("Recoveries open only for lost, stolen, damaged or "
                           "delivered-but-not-received claims.", ErrorCode.SETTING_INVALID)
    if isinstance(min_minor, str):  # as the owner typed it, in the store's currency
        min_minor = minor_from_amount(min_minor or "0", settings_row(s).currency)
    if isinstance(min_minor, bool) or not isinstance(min_minor, int) or not \
            0 <= min_minor <= 100_000_000:
        raise InvalidInput("The minimum amount must be between 0 and 1,000,000.",
                           ErrorCode.SETTING_INVALID)
    row = ensure_settings_row(s)
    new = {"recovery_carriers": ",".join(carriers), "recovery_issue_types": ",".join(issue_types),
           "recovery_min_cents": min_minor}
    if easypost_off is not None:
        new["recovery_easypost_off"] = ",".join(easypost_off)
    old = {k: getattr(row, k) for k in new}
    changed = {k: v for k, v in new.items() if old[k] != v}
    if not changed:
        return False
    for k, v in changed.items():
        setattr(row, k, v)
    record_event(s, actor=actor, action=AuditAction.SETTINGS_CHANGED,
                 details={"changed": {k: [old[k], v] for k, v in changed.items()}})
    return True


# --- the background job ---------------------------------------------------------------------------

def run_deadlines(engine: Engine, *, now: datetime | None = None, stop=None) -> dict:
    """Write off recoveries still to file after their deadline; queue the owner's reminders 7
    days and 1 day before (once each: the outbox's key). One short transaction per recovery."""
    now = now or utcnow()
    with read_session(engine) as s:
        ids = due_ids(s)
    counts = {"written_off": 0, "reminded": 0}
    for rid in ids:
        if stop is not None and stop.is_set():
            break
        done = run(engine, lambda s, rid=rid: apply_deadline(s, rid, now))
        if done:
            counts[done] += 1
    return counts



def easypost_off(engine: Engine) -> frozenset[str]:
    with read_session(engine) as s:
        return _csv(settings_row(s).recovery_easypost_off)


# --- filing through EasyPost (the outbox side; adapters/easypost_claims.py sends) -----------------

@transactional
def request_filing(s: Session, recovery_id: int, actor: str, *, insured_minor=_UNCHANGED,
                   now: datetime | None = None) -> bool:
    """"File" with EasyPost: queue the filing in this transaction (the job sends it). Asking
    again while it is queued or sent changes nothing (False); a refused one is queued again."""
    rec = load(s, recovery_id)
    rules.check(RecoveryAction.FILE, rec.state)
    if not _files_through_easypost(s, rec):
        raise InvalidInput("This recovery can't be filed through EasyPost (no EASYPOST_API_KEY, "
                           "turned off for its carrier, or no tracking number): file it on the "
                           "carrier's site and record its claim number.",
                           ErrorCode.RECOVERY_FILING_UNAVAILABLE)
    now = now or utcnow()
    if insured_minor is not _UNCHANGED:
        _set_insured(s, rec, actor, insured_minor, now)
    filing = s.scalars(select(RecoveryFiling).where(RecoveryFiling.recovery_id == rec.id)).first()
    if filing is not None and filing.status not in ("refused", "withdrawn"):
        return False
    if filing is None:
        filing = RecoveryFiling(recovery_id=rec.id, created_at=now)
        s.add(filing)
    filing.status, filing.next_attempt_at, filing.last_error = "pending", now, ""
    filing.attempts, filing.lease_until = 0, None
    s.add(RecoveryEvent(recovery_id=rec.id, claim_id=rec.claim_id, actor=actor, at=now,
                        action="file_requested", from_state=rec.state, to_state=rec.state,
                        details='{"via": "easypost"}'))
    return True


@dataclass(frozen=True)
class FilingWork:
    """What the sender needs for one EasyPost claim (the documents are built by the adapter)."""
    filing_id: int
    recovery_id: int
    claim_id: int
    tracking_code: str
    params: dict


LEASE = timedelta(minutes=5)


def lease_filings(engine: Engine, *, now: datetime | None = None, limit: int = 10
                  ) -> list[FilingWork]:
    """Take due filings (pending, or sending with a lapsed lease) with a conditional UPDATE each,
    so two senders never send the same one."""
    now = now or utcnow()
    with read_session(engine) as s:
        ids = list(s.scalars(select(RecoveryFiling.id).where(
            or_(RecoveryFiling.status == "pending", RecoveryFiling.status == "sending"),
            RecoveryFiling.next_attempt_at <= now,
            or_(RecoveryFiling.lease_until.is_(None), RecoveryFiling.lease_until < now))
            .order_by(RecoveryFiling.next_attempt_at, RecoveryFiling.id).limit(limit)))
    out = []
    for fid in ids:
        def take(s: Session, fid=fid) -> FilingWork | None:
            got = s.execute(update(RecoveryFiling).where(
                RecoveryFiling.id == fid, RecoveryFiling.status.in_(("pending", "sending")),
                or_(RecoveryFiling.lease_until.is_(None), RecoveryFiling.lease_until < now))
                .values(status="sending", lease_until=now + LEASE,
                        attempts=RecoveryFiling.attempts + 1)).rowcount
            if not got:
                return None
            f = s.get(RecoveryFiling, fid)
            rec = s.get(Recovery, f.recovery_id)
            claim, settings = rec.claim, settings_row(s)
            issue = ISSUE_TYPES.get(rec.issue_type)
            params = {
                "tracking_code": rec.shipment.tracking_number or "",
                "type": rules.EASYPOST_CLAIM_TYPES.get(rec.issue_type, "loss"),
                "amount": str(decimal_amount(rec.claimable_cents, rec.currency)),
                "description": f"{issue.label if issue else rec.issue_type}: claim "
                               f"{claim.reference}, order {claim.order.name}.",
                "contact_email": settings.support_email,
                "recipient_name": claim.order.customer_name or "",
            }
            return FilingWork(fid, rec.id, rec.claim_id, params["tracking_code"], params)
        work = run(engine, take)
        if work is not None:
            out.append(work)
    return out


@transactional
def filing_sent(s: Session, filing_id: int, easypost_claim_id: str, *,
                now: datetime | None = None) -> None:
    """EasyPost has the claim: the recovery is filed (once, whatever was asked)."""
    now = now or utcnow()
    f = s.get(RecoveryFiling, filing_id)
    f.status, f.sent_at, f.lease_until, f.easypost_claim_id = "sent", now, None, easypost_claim_id
    rec = s.get(Recovery, f.recovery_id)
    rec.easypost_claim_id = easypost_claim_id[:64]
    if RecoveryAction.FILE in rules.available_actions(rec.state, rules.SYSTEM):
        step(s, rec, RecoveryAction.FILE, actor="system:easypost", by=rules.SYSTEM, at=now,
             details={"via": "easypost", "easypost_claim_id": easypost_claim_id})
        rec.filed_at = now
    elif rec.state == RecoveryState.CANCELLED:  # cancelled while it was on its way: cancel it there
        f.status = "withdrawn"
        queue_cancel(s, rec, now)


@transactional
def filing_refused(s: Session, filing_id: int, message: str, *, now: datetime | None = None) -> None:
    """EasyPost said no (a 4xx): shown with its message; the recovery stays to file."""
    now = now or utcnow()
    f = s.get(RecoveryFiling, filing_id)
    f.status, f.lease_until, f.last_error = "refused", None, (message or "refused")[:2000]
    rec = s.get(Recovery, f.recovery_id)
    s.add(RecoveryEvent(recovery_id=rec.id, claim_id=rec.claim_id, actor="system:easypost",
                        at=now, action="file_refused", from_state=rec.state, to_state=rec.state,
                        details="{}"))


@transactional
def filing_retry(s: Session, filing_id: int, error: str, *, now: datetime | None = None) -> None:
    """A failure that may pass (network, 5xx, 429): tried again later, with backoff."""
    now = now or utcnow()
    f = s.get(RecoveryFiling, filing_id)
    f.status, f.lease_until, f.last_error = "pending", None, (error or "")[:2000]
    f.next_attempt_at = now + retry_backoff(f.attempts)


# --- cancelling at EasyPost (queued by ``cancel``; adapters/easypost_claims.py sends) ------------

@dataclass(frozen=True)
class CancelWork:
    cancel_id: int
    recovery_id: int
    easypost_claim_id: str | None  # None: look it up by tracking code (it was still being filed)
    tracking_code: str
    filing_in_flight: bool  # the filing is still being sent: its claim may not exist yet


def lease_cancellations(engine: Engine, *, now: datetime | None = None, limit: int = 10
                        ) -> list[CancelWork]:
    """Take due cancels (a conditional UPDATE each, as ``lease_filings``)."""
    now = now or utcnow()
    C = RecoveryCancellation
    with read_session(engine) as s:
        ids = list(s.scalars(select(C.id).where(
            C.status.in_(("pending", "sending")), C.next_attempt_at <= now,
            or_(C.lease_until.is_(None), C.lease_until < now))
            .order_by(C.next_attempt_at, C.id).limit(limit)))
    out = []
    for cid in ids:
        def take(s: Session, cid=cid) -> CancelWork | None:
            got = s.execute(update(C).where(
                C.id == cid, C.status.in_(("pending", "sending")),
                or_(C.lease_until.is_(None), C.lease_until < now))
                .values(status="sending", lease_until=now + LEASE, attempts=C.attempts + 1)
            ).rowcount
            if not got:
                return None
            row = s.get(C, cid)
            rec = s.get(Recovery, row.recovery_id)
            filing = s.scalars(select(RecoveryFiling.status)
                               .where(RecoveryFiling.recovery_id == rec.id)).first()
            return CancelWork(cid, rec.id, row.easypost_claim_id or rec.easypost_claim_id,
                              rec.shipment.tracking_number or "", filing == "sending")
        work = run(engine, take)
        if work is not None:
            out.append(work)
    return out


@transactional
def cancel_done(s: Session, cancel_id: int, easypost_claim_id: str | None, *,
                now: datetime | None = None) -> None:
    """EasyPost's claim is cancelled (or EasyPost never had one: "none"); one event."""
    now = now or utcnow()
    row = s.get(RecoveryCancellation, cancel_id)
    row.status = "sent" if easypost_claim_id else "none"
    row.easypost_claim_id, row.sent_at, row.lease_until = easypost_claim_id, now, None
    rec = s.get(Recovery, row.recovery_id)
    s.add(RecoveryEvent(recovery_id=rec.id, claim_id=rec.claim_id, actor="system:easypost", at=now,
                        action="cancelled_at_easypost" if easypost_claim_id else
                        "nothing_to_cancel", from_state=rec.state, to_state=rec.state,
                        details=json.dumps({"easypost_claim_id": easypost_claim_id})))


@transactional
def cancel_refused(s: Session, cancel_id: int, message: str, *, now: datetime | None = None) -> None:
    """EasyPost refused the cancel (a 4xx): kept with its message, shown on the claim page."""
    row = s.get(RecoveryCancellation, cancel_id)
    row.status, row.lease_until, row.last_error = "refused", None, (message or "refused")[:2000]


@transactional
def cancel_retry(s: Session, cancel_id: int, error: str, *, now: datetime | None = None) -> None:
    now = now or utcnow()
    row = s.get(RecoveryCancellation, cancel_id)
    row.status, row.lease_until, row.last_error = "pending", None, (error or "")[:2000]
    row.next_attempt_at = now + retry_backoff(row.attempts)


# --- EasyPost's claim events -------------------------------------------------------------------

@dataclass(frozen=True)
class EasyPostClaimEvent:
    name: str  # claim.submitted | claim.updated | claim.approved | claim.rejected | claim.cancelled
    event_id: str
    claim_id: str  # EasyPost's
    status: str = ""
    status_detail: str = ""
    approved_amount: str | None = None
    tracking_code: str = ""


def apply_easypost_event(s: Session, ev: EasyPostClaimEvent, now: datetime) -> tuple[str, str]:
    """Move the recovery EasyPost's claim belongs to (inside the receipts' transaction).
    Returns (outcome, detail): "applied", or "ignored" (not ours, or a step the recovery can't
    take any more: a redelivery or an old event)."""
    rec = s.scalars(select(Recovery).where(Recovery.easypost_claim_id == ev.claim_id)).first()
    if rec is None:
        return "ignored", f"no recovery for EasyPost claim {ev.claim_id}"
    actor, details = "system:easypost", {"easypost_event": ev.event_id, "event": ev.name}
    action: RecoveryAction | None = None
    if ev.name == "claim.submitted":
        action = RecoveryAction.FILE
    elif ev.name == "claim.updated" and ev.status in ("needs_action", "needs_info"):
        action = RecoveryAction.NEEDS_ACTION
    elif ev.name == "claim.approved":
        approved = rec.claimable_cents if ev.approved_amount in (None, "") else \
            minor_from_amount(ev.approved_amount, rec.currency)
        action = (RecoveryAction.APPROVE if approved >= rec.claimable_cents
                  else RecoveryAction.PARTLY_APPROVE)
        details["approved"] = approved
    elif ev.name == "claim.rejected":
        action = RecoveryAction.REJECT
    elif ev.name == "claim.cancelled":
        action = RecoveryAction.CANCEL
    if ev.status_detail:
        rec.carrier_message = ev.status_detail
    if action is None or action not in rules.available_actions(rec.state, rules.SYSTEM):
        return "ignored", f"{ev.name}: nothing to change (the recovery is {rec.state})"
    step(s, rec, action, actor=actor, by=rules.SYSTEM, at=now, details=details)
    if action == RecoveryAction.FILE:
        rec.filed_at = now
    if "approved" in details:
        rec.approved_cents = details["approved"]
    if action == RecoveryAction.REJECT:
        rec.approved_cents = 0
    return "applied", f"{ev.name}: recovery {rec.id} is {rec.state}"


# --- the API (GET /api/v1/recoveries, POST …/file, POST …/record) ----------------------------------

MAX_API_LIMIT = 200


def api_item(rec: Recovery) -> dict:
    return {"id": rec.id, "claim_reference": rec.claim.reference, "state": rec.state,
            "deadline": rec.deadline.isoformat() if rec.deadline else None,
            "claimable_minor": rec.claimable_cents, "recovered_minor": rec.recovered_cents,
            "approved_minor": rec.approved_cents, "insured_minor": rec.insured_minor,
            "currency": rec.currency,
            "carrier": rec.carrier, "carrier_claim_number": rec.carrier_claim_number or None,
            "easypost_claim_id": rec.easypost_claim_id}


def _api_cursor(rid: int) -> str:
    return base64.urlsafe_b64encode(f"rec|{rid}".encode()).decode().rstrip("=")


def _read_api_cursor(cursor: str) -> int:
    try:
        kind, rid = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode().split("|")
        if kind != "rec" or not rid.isascii() or not rid.isdigit() or len(rid) > 18:
            raise ValueError(rid)
        return int(rid)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidInput("The cursor isn't one this API gave out.", ErrorCode.CURSOR_INVALID)


def api_page(engine: Engine, *, limit: int = 50, cursor: str | None = None,
             states: Iterable[str] = ()) -> tuple[list[dict], str | None]:
    """One page of recoveries, oldest first (by id), and the cursor of the next page."""
    after = _read_api_cursor(cursor) if cursor else 0
    limit = max(1, min(int(limit), MAX_API_LIMIT))
    with read_session(engine) as s:
        q = select(Recovery).where(Recovery.id > after)
        if tuple(states):
            q = q.where(Recovery.state.in_(tuple(states)))
        rows = list(s.scalars(q.order_by(Recovery.id).limit(limit + 1)))
        more = len(rows) > limit
        rows = rows[:limit]
        return [api_item(r) for r in rows], (_api_cursor(rows[-1].id) if more and rows else None)


def api_get(engine: Engine, recovery_id: int) -> dict:
    with read_session(engine) as s:
        return api_item(load(s, recovery_id))


def file_for_api(engine: Engine, recovery_id: int, actor: str, carrier_claim_number: str = "",
                 *, insured_minor: int | None = None, now: datetime | None = None) -> dict:
    """"File", as the API asks: through EasyPost when it can (asked twice: filed once), else by
    hand with the carrier's claim number (asked again with the same number: nothing changes).
    ``insured_minor``: the parcel's insured value, kept before filing (in the same transaction)
    and capping what is claimed; asked again with the same value once filed: nothing changes."""
    insured = _UNCHANGED if insured_minor is None else insured_minor
    with read_session(engine) as s:
        rec = load(s, recovery_id)
        easypost = _files_through_easypost(s, rec)
        already = rec.state != RecoveryState.TO_FILE and rec.carrier_claim_number and \
            rec.carrier_claim_number == (carrier_claim_number or "").strip()
    if easypost and not carrier_claim_number:
        with read_session(engine) as s:
            queued = s.scalars(select(RecoveryFiling.status).where(
                RecoveryFiling.recovery_id == recovery_id)).first()
        if queued not in ("pending", "sending", "sent"):
            request_filing(engine, recovery_id, actor, insured_minor=insured, now=now)
        elif insured is not _UNCHANGED:
            set_insured_value(engine, recovery_id, actor, insured, now=now)
    elif not already:
        file_by_hand(engine, recovery_id, actor, carrier_claim_number, insured_minor=insured,
                     now=now)
    elif insured is not _UNCHANGED:
        set_insured_value(engine, recovery_id, actor, insured, now=now)
    return api_get(engine, recovery_id)


def record_for_api(engine: Engine, recovery_id: int, actor: str, outcome: str, *,
                   approved_minor: int | None = None, paid_minor: int | None = None,
                   message: str = "", now: datetime | None = None) -> dict:
    if outcome == RecoveryState.PAID:
        if paid_minor is None:
            raise InvalidInput("Say how much was paid (paid_minor).", ErrorCode.AMOUNT_INVALID)
        record_payment(engine, recovery_id, actor, paid_minor, now=now)
    else:
        record_decision(engine, recovery_id, actor, outcome, approved_minor=approved_minor,
                        paid_minor=paid_minor, message=message, now=now)
    return api_get(engine, recovery_id)


def stats(engine: Engine) -> dict:
    """Recoveries by state and the money recovered (``python -m claims_core stats``), per
    currency (never added across currencies)."""
    from sqlalchemy import func
    with read_session(engine) as s:
        by_state = dict(s.execute(select(Recovery.state, func.count())
                                  .group_by(Recovery.state)).all())
        recovered = dict(s.execute(select(Recovery.currency, func.sum(Recovery.recovered_cents))
                                   .group_by(Recovery.currency)).all())
        open_claimable = dict(s.execute(
            select(Recovery.currency, func.sum(Recovery.claimable_cents))
            .where(Recovery.state.in_(rules.OPEN_STATES)).group_by(Recovery.currency)).all())
    return {"by_state": {st.value: by_state.get(st, 0) for st in rules.STATES},
            "recovered_minor": {c: int(v or 0) for c, v in sorted(recovered.items())},
            "open_claimable_minor": {c: int(v or 0) for c, v in sorted(open_claimable.items())}}
