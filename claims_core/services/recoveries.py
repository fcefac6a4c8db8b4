"""Recoveries, the staff's actions: the list (Recoveries page), one claim's recoveries (the panel
on the claim page), filing by hand, recording the carrier's decision and payment, writing off,
the owner's policy (Settings → Recoveries) and the deadline job. The ledger's rules:
``domain/recoveries.py`` and ``domain/carrier_claims.py``; the part inside other transactions:
``recovery_ledger.py``."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Iterable

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from ..domain import carrier_claims
from ..domain import recoveries as rules
from ..domain.errors import ErrorCode, InvalidInput
from ..domain.money import minor_from_amount
from ..domain.recoveries import STATE_LABELS, RecoveryAction, RecoveryState
from ..domain.text import clean_comment, required_text
from ..domain.vocabulary import ISSUE_TYPES, AuditAction
from ..domain.windows import local_date
from ..infra.db import read_session, utcnow
from ..infra.models import Claim, Recovery, RecoveryEvent, ensure_settings_row, settings_row
from .events import record_event
from .recovery_ledger import apply_deadline, due_ids, load, policy_of, step
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


def _row(rec: Recovery, today: date) -> RecoveryRow:
    issue = ISSUE_TYPES.get(rec.issue_type)
    return RecoveryRow(
        rec.id, rec.claim_id, rec.claim.reference, rec.state,
        STATE_LABELS.get(rec.state, rec.state), rec.carrier, rec.carrier_key, rec.issue_type,
        issue.label if issue else rec.issue_type, rec.currency, rec.paid_out_cents,
        rec.claimable_cents, rec.approved_cents, rec.recovered_cents, rec.deadline,
        rules.days_left(rec.deadline, today) if rec.state in rules.DEADLINE_STATES else None,
        rec.state in rules.DEADLINE_STATES and rules.overdue(rec.deadline, today),
        rec.carrier_claim_number, rec.easypost_claim_id, rec.carrier_message,
        rules.available_actions(rec.state), _rule_view(rec))


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
        q = q.order_by(Recovery.deadline.is_(None), Recovery.deadline, Recovery.id).limit(limit)
        today = _today(s, now)
        return [_row(r, today) for r in s.scalars(q)]


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
            out.append((_row(rec, today), [RecoveryEventRow(e.at, e.actor, e.action, e.from_state,
                                                            e.to_state) for e in evs]))
        return out


# --- staff actions --------------------------------------------------------------------------------

@transactional
def file_by_hand(s: Session, recovery_id: int, actor: str, carrier_claim_number: str, *,
                 now: datetime | None = None) -> None:
    """The claim was filed on the carrier's site: record its number there."""
    number = required_text(carrier_claim_number, "The carrier's claim number",
                           "Enter the claim number the carrier gave you.")[:100]
    rec = load(s, recovery_id)
    now = now or utcnow()
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
                           ErrorCode.INVALID_INPUT)
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
def write_off(s: Session, recovery_id: int, actor: str, reason: str = "", *,
              now: datetime | None = None) -> None:
    """The owner decides the money isn't worth chasing (or can't be had)."""
    rec = load(s, recovery_id)
    step(s, rec, RecoveryAction.WRITE_OFF, actor=actor, at=now, details={"reason": "by_staff"})
    if reason:
        rec.carrier_message = clean_comment(reason)


# --- the owner's policy (Settings → Recoveries) ---------------------------------------------------

def load_policy(engine: Engine) -> rules.RecoveryPolicy:
    with read_session(engine) as s:
        return policy_of(settings_row(s))


@transactional
def save_policy(s: Session, actor: str, *, carriers: Iterable[str], issue_types: Iterable[str],
                min_minor: int | str) -> bool:
    """Which approved claims open a recovery. Empty lists mean "all". True if anything changed."""
    carriers = sorted(set(carriers))
    issue_types = sorted(set(issue_types))
    known = set(carrier_claims.RECOVERY_CARRIERS) | {carrier_claims.OTHER}
    if not set(carriers) <= known:
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


def claim_reference(engine: Engine, recovery_id: int) -> str:
    with read_session(engine) as s:
        rec = load(s, recovery_id)
        return s.get(Claim, rec.claim_id).reference

