"""Live tracking: store what a carrier feed reports, bring shipments up to date, hold claims the
news calls into question, and read a shipment's timeline.

Checkpoints are kept per normalised tracking number (a database constraint makes each scan one
row), so an event may arrive before its order: it waits and is applied when a shipment with that
tracking number appears (``apply_to_shipments`` is called by ``order_sync`` too). A shipment's
status is recomputed from *all* its checkpoints each time (``domain.tracking.summarise``), so a
replay changes nothing and an old event arriving late never winds it back.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Iterable, Sequence

from sqlalchemy import select, tuple_
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from ..domain import tracking as rules
from ..domain.identifiers import normalize_tracking
from ..domain.lifecycle import Actor
from ..domain.messages import Msg
from ..domain.tracking import Checkpoint as CheckpointFact
from ..domain.tracking import ProofOfDelivery, TrackingState, TrackingUpdate
from ..domain.vocabulary import (MILESTONE_LABELS, MILESTONE_PATH, OPEN_STATUSES, AuditAction,
                                 Milestone)
from ..infra.db import utcnow
from ..infra.models import Checkpoint, Claim, Message, Shipment, Tracking, settings_row
from .events import record_event

SYSTEM_NAME = "Carrier tracking"
FUTURE_SLACK = timedelta(days=1)


@dataclass(frozen=True)
class UpdateOutcome:
    tracking_number: str
    new_checkpoints: int
    shipments: int  # shipments it applied to (0: kept until the order arrives)
    holds: int


def _insert_ignoring_duplicates(s: Session, rows: list[dict]) -> None:
    if not rows:
        return
    dialect = s.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    # executemany (one cached statement), not a VALUES list compiled afresh each time: 10× faster
    s.execute(insert(Checkpoint).on_conflict_do_nothing(
        index_elements=["tracking_number", "key"]), rows)


def _tracking_row(s: Session, number: str) -> Tracking:
    """The tracking number's row, created if new, locked for this transaction (PostgreSQL: two
    deliveries for one parcel take turns, so neither overwrites the other's news)."""
    row = s.scalars(select(Tracking).where(Tracking.tracking_number == number)
                    .with_for_update()).first()
    if row is None:
        dialect = s.get_bind().dialect.name
        insert = pg_insert if dialect == "postgresql" else sqlite_insert
        s.execute(insert(Tracking).values(
            tracking_number=number, carrier="", source="", pod_signed_by="", pod_photo_url="",
            pod_location="", updated_at=utcnow()).on_conflict_do_nothing(
            index_elements=["tracking_number"]))
        row = s.scalars(select(Tracking).where(Tracking.tracking_number == number)
                        .with_for_update()).one()
    return row


# A carrier may push a parcel's whole history at once (8–14k scans seen): its checkpoints are
# stored this many per transaction (``store_checkpoints``), so no other writer waits long.
CHECKPOINTS_PER_TRANSACTION = 500


def store_checkpoints(s: Session, number: str, checkpoints: Sequence[CheckpointFact], source: str,
                      *, now: datetime) -> list[CheckpointFact]:
    """Store the scans of one tracking number not stored yet (in the caller's transaction);
    returns the new ones. A scan dated more than a day ahead is a carrier's clock error: it
    would outrank every real scan to come, so it is left out."""
    number = normalize_tracking(number)
    known = set(s.scalars(select(Checkpoint.key).where(
        Checkpoint.tracking_number == number,
        Checkpoint.key.in_([c.key for c in checkpoints]))).all()) if checkpoints else set()
    new: list[CheckpointFact] = []
    seen: set[str] = set()
    rows = []
    for c in checkpoints:
        if c.key in known or c.key in seen or c.at > now + FUTURE_SLACK:
            continue
        seen.add(c.key)
        new.append(c)
        rows.append(dict(tracking_number=number, key=c.key, at=c.at, milestone=str(c.milestone),
                         sub_status=c.sub_status[:64], message=c.message[:500], place=c.place[:200],
                         source=source[:16], received_at=now))
    _insert_ignoring_duplicates(s, rows)
    return new


def record(s: Session, update: TrackingUpdate, *, now: datetime | None = None,
           stored_before: Sequence[CheckpointFact] = (),
           known: Sequence[CheckpointFact] | None = None) -> UpdateOutcome:
    """Store one normalised carrier update in the caller's transaction and apply it.

    ``stored_before``: scans of this same update already stored by earlier transactions
    (``store_checkpoints``, for a big push); they count as new news here (holds). ``known``:
    every scan of the number stored before this transaction, read beforehand outside it (a big
    push: thousands of rows aren't read while holding the write lock)."""
    now = now or utcnow()
    number = normalize_tracking(update.tracking_number)
    if not number:
        raise ValueError("the update has no tracking number")
    fresh = store_checkpoints(s, number, update.checkpoints, update.source, now=now)
    meta = _tracking_row(s, number)
    _note(meta, update, now)
    s.flush()
    new_facts = [*stored_before, *fresh]
    applied, holds = apply_to_shipments(s, number, new_facts, fallback=update.milestone, now=now,
                                        actor=f"carrier:{update.source}",
                                        facts=None if known is None else [*known, *fresh],
                                        meta=meta)
    return UpdateOutcome(number, len(new_facts), applied, holds)


def _note(meta: Tracking, update: TrackingUpdate, now: datetime) -> None:
    """What an update says of the parcel itself (carrier, expected delivery, proof, stopped)."""
    if update.carrier and not meta.carrier:
        meta.carrier = update.carrier[:64]
    meta.source = update.source[:16]
    as_of = update.newest_time
    if update.expected_delivery is not None and (
            meta.expected_as_of is None or as_of is None or as_of >= meta.expected_as_of):
        meta.expected_delivery_at = update.expected_delivery
        meta.expected_as_of = as_of
    if update.proof:
        meta.pod_signed_by = update.proof.signed_by[:200] or meta.pod_signed_by
        meta.pod_photo_url = update.proof.photo_url[:1000] or meta.pod_photo_url
        meta.pod_location = update.proof.location[:300] or meta.pod_location
    if update.stopped and meta.stopped_at is None:
        meta.stopped_at = now
    meta.updated_at = now


def record_many(s: Session, updates: Sequence[TrackingUpdate], *,
                now: datetime | None = None) -> list[UpdateOutcome]:
    """``record`` for many updates in the caller's transaction, with the same result as recording
    them one after the other, in a few statements for the lot instead of a dozen each (the
    webhook applier's batches: the write lock is held briefly for many parcels). Updates of a
    parcel already in the lot start a new lot, so each parcel's news is applied in order."""
    now = now or utcnow()
    out: list[UpdateOutcome] = []
    lot: list[TrackingUpdate] = []
    numbers: set[str] = set()
    for u in updates:
        number = normalize_tracking(u.tracking_number)
        if not number:
            raise ValueError("the update has no tracking number")
        if number in numbers:
            out += _record_lot(s, lot, now)
            lot, numbers = [], set()
        lot.append(u)
        numbers.add(number)
    return out + (_record_lot(s, lot, now) if lot else [])


def _record_lot(s: Session, updates: Sequence[TrackingUpdate], now: datetime) -> list[UpdateOutcome]:
    """``record_many`` for updates of different parcels."""
    numbers = [normalize_tracking(u.tracking_number) for u in updates]
    # the scans not stored yet (one statement to read, one to insert)
    wanted = {(n, c.key) for n, u in zip(numbers, updates) for c in u.checkpoints}
    known = set(s.execute(select(Checkpoint.tracking_number, Checkpoint.key).where(
        tuple_(Checkpoint.tracking_number, Checkpoint.key).in_(list(wanted)))).all()) \
        if wanted else set()
    fresh: dict[str, list[CheckpointFact]] = {}
    rows = []
    for n, u in zip(numbers, updates):
        new = fresh[n] = []
        for c in u.checkpoints:
            if (n, c.key) in known or c.at > now + FUTURE_SLACK:
                continue
            known.add((n, c.key))
            new.append(c)
            rows.append(dict(tracking_number=n, key=c.key, at=c.at, milestone=str(c.milestone),
                             sub_status=c.sub_status[:64], message=c.message[:500],
                             place=c.place[:200], source=u.source[:16], received_at=now))
    _insert_ignoring_duplicates(s, rows)
    # the tracking rows, created where new (locked for this transaction, as ``_tracking_row``)
    metas = {m.tracking_number: m for m in s.scalars(
        select(Tracking).where(Tracking.tracking_number.in_(numbers)).with_for_update())}
    missing = [n for n in numbers if n not in metas]
    if missing:
        insert = pg_insert if s.get_bind().dialect.name == "postgresql" else sqlite_insert
        s.execute(insert(Tracking).on_conflict_do_nothing(index_elements=["tracking_number"]), [
            dict(tracking_number=n, carrier="", source="", pod_signed_by="", pod_photo_url="",
                 pod_location="", updated_at=utcnow()) for n in missing])
        metas.update({m.tracking_number: m for m in s.scalars(
            select(Tracking).where(Tracking.tracking_number.in_(missing)).with_for_update())})
    for n, u in zip(numbers, updates):
        _note(metas[n], u, now)
    s.flush()
    # the shipments of these parcels, every scan of those that have one, their open claims
    shipments: dict[str, list[Shipment]] = {}
    for sh in s.scalars(select(Shipment).where(Shipment.tracking_number.in_(numbers))
                        .order_by(Shipment.id)):
        shipments.setdefault(sh.tracking_number, []).append(sh)
    facts: dict[str, list] = {}
    if shipments:
        for r in s.execute(select(Checkpoint.tracking_number, Checkpoint.at, Checkpoint.milestone,
                                  Checkpoint.message, Checkpoint.place, Checkpoint.sub_status)
                           .where(Checkpoint.tracking_number.in_(list(shipments)))):
            facts.setdefault(r[0], []).append(r[1:])
    with_news = [sh.id for n in shipments if fresh[n] for sh in shipments[n]]
    open_claims: dict[int, list[Claim]] = {}
    if with_news:
        for c in s.scalars(select(Claim).where(Claim.shipment_id.in_(with_news),
                                               Claim.status.in_(OPEN_STATUSES),
                                               Claim.held_at.is_(None)).order_by(Claim.id)):
            open_claims.setdefault(c.shipment_id, []).append(c)
    out = []
    for n, u in zip(numbers, updates):
        ships = shipments.get(n, [])
        holds = 0
        if ships:
            state = rules.summarise(checkpoint_facts(
                _Row(*f) for f in facts.get(n, [])), fallback=u.milestone)
            holds = _bring_up_to_date(s, n, ships, state, metas[n], fresh[n], now=now,
                                      actor=f"carrier:{u.source}", open_claims=open_claims)
        out.append(UpdateOutcome(n, len(fresh[n]), len(ships), holds))
    s.flush()
    return out


@dataclass(frozen=True)
class _Row:
    at: datetime
    milestone: str
    message: str
    place: str
    sub_status: str


def is_live(s: Session, number: str) -> bool:
    """Has a carrier feed reported this tracking number?"""
    return s.scalars(select(Tracking.id).where(
        Tracking.tracking_number == normalize_tracking(number))).first() is not None


def checkpoint_facts(rows: Iterable[Checkpoint]) -> list[CheckpointFact]:
    out = []
    for r in rows:
        try:
            milestone = Milestone(r.milestone)
        except ValueError:
            continue
        out.append(CheckpointFact(r.at, milestone, r.message, r.place, r.sub_status))
    return out


def checkpoints_of(s: Session, number: str) -> list[CheckpointFact]:
    """Every stored scan of a tracking number."""
    return _checkpoints(s, normalize_tracking(number))


def _checkpoints(s: Session, number: str) -> list[CheckpointFact]:
    # the columns only (no ORM objects): a parcel may have thousands of scans
    return checkpoint_facts(s.execute(select(
        Checkpoint.at, Checkpoint.milestone, Checkpoint.message, Checkpoint.place,
        Checkpoint.sub_status).where(Checkpoint.tracking_number == number)))


def apply_to_shipments(s: Session, number: str, new: Sequence[CheckpointFact] = (), *,
                       fallback: Milestone | None = None, now: datetime | None = None,
                       actor: str = "carrier",
                       facts: Sequence[CheckpointFact] | None = None,
                       meta: Tracking | None = None) -> tuple[int, int]:
    """Bring every shipment with this tracking number up to date with what is known of it, and
    hold the open claims the new checkpoints call into question. Returns (shipments, holds).
    ``meta``: the number's tracking row, locked already in this transaction (``record``)."""
    now = now or utcnow()
    number = normalize_tracking(number)
    # the tracking row's lock first: a delivery for this parcel and an import creating its
    # shipment take turns, and whoever comes second sees what the first committed
    if meta is None:
        meta = s.scalars(select(Tracking).where(Tracking.tracking_number == number)
                         .with_for_update()).first()
    if meta is None:
        return 0, 0
    shipments = s.scalars(select(Shipment).where(Shipment.tracking_number == number)).all()
    if not shipments:
        return 0, 0
    state = rules.summarise(_checkpoints(s, number) if facts is None else facts, fallback=fallback)
    holds = _bring_up_to_date(s, number, shipments, state, meta, new, now=now, actor=actor)
    s.flush()
    return len(shipments), holds


def _bring_up_to_date(s: Session, number: str, shipments: Sequence[Shipment], state: TrackingState,
                      meta: Tracking, new: Sequence[CheckpointFact], *, now: datetime, actor: str,
                      open_claims: dict[int, list[Claim]] | None = None) -> int:
    """The shipments of one tracking number set to ``state`` (an event for each that changed),
    and the open claims the ``new`` checkpoints call into question held. ``open_claims``: each
    shipment's open claims not on hold, read beforehand (``record_many``). Returns the holds."""
    holds = 0
    for sh in shipments:
        before = (sh.status, sh.milestone, sh.last_scan_at, sh.delivered_at, sh.expected_delivery_at)
        if state.milestone is not None:
            sh.milestone = str(state.milestone)
            sh.status = str(state.status)
        if state.last_scan_at is not None:
            sh.last_scan_at = state.last_scan_at
        if state.milestone == Milestone.DELIVERED:
            sh.delivered_at = state.delivered_at
        elif state.milestone is not None:
            sh.delivered_at = None
        sh.expected_delivery_at = meta.expected_delivery_at
        if meta.carrier and not sh.carrier:
            sh.carrier = meta.carrier
        after = (sh.status, sh.milestone, sh.last_scan_at, sh.delivered_at, sh.expected_delivery_at)
        if after != before:
            record_event(s, actor=actor, action=AuditAction.TRACKING_UPDATED, order_id=sh.order_id,
                         details={"shipment_id": sh.id, "tracking_number": number,
                                  "milestone": sh.milestone, "status": sh.status,
                                  "previous_status": before[0]}, at=now)
        if new:
            holds += _hold_claims(s, sh, new, now, None if open_claims is None
                                  else open_claims.get(sh.id, []))
    return holds


def _hold_claims(s: Session, sh: Shipment, new: Sequence[CheckpointFact], now: datetime,
                 claims: Sequence[Claim] | None = None) -> int:
    if claims is None:
        claims = s.scalars(
            select(Claim).where(Claim.shipment_id == sh.id, Claim.status.in_(OPEN_STATUSES),
                                Claim.held_at.is_(None))).all()
    n = 0
    tz_name = settings_row(s).timezone if claims else "UTC"
    for claim in claims:
        reason = rules.hold_reason(claim.issue_type, claim.created_at, new, tz_name)
        if reason:
            place_hold(s, claim, reason, now=now)
            n += 1
    return n


def place_hold(s: Session, claim: Claim, reason: str, *, now: datetime) -> None:
    """Put ``claim`` on hold with a system note (staff only) and an event the handlers answer
    (the agent is told by email)."""
    claim.held_at = now
    claim.hold_reason = reason
    claim.updated_at = now
    msg = Message(claim_id=claim.id, author_kind=Actor.SYSTEM, author_name=SYSTEM_NAME,
                  body=f"On hold: {reason}", internal=True, created_at=now)
    s.add(msg)
    s.flush()
    record_event(s, actor=Actor.SYSTEM, action=AuditAction.HOLD_PLACED, claim=claim,
                 details={"reason": reason, "message_id": msg.id}, at=now)


# --- reading ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    milestone: str
    milestone_label: str  # a catalog message (N_)
    message: str  # the carrier's own words, as it sent them
    place: str


@dataclass(frozen=True)
class ShipmentTracking:
    """A shipment's tracking, ready to show: the state, the checkpoints newest first, the expected
    delivery, proof of delivery and one sentence for the customer (a catalog message: a customer
    page shows it with ``t(…)``, ``str()`` of it is the English)."""

    tracking_number: str
    carrier: str
    milestone: str | None
    milestone_label: str  # a catalog message (N_), "" when unknown
    step: int  # how far along MILESTONE_PATH (0-based; -1 when off the path or unknown)
    expected_delivery_at: datetime | None
    entries: tuple[TimelineEntry, ...]
    proof: ProofOfDelivery
    explanation: Msg | str  # "" when no carrier feed reported it
    live: bool  # a carrier feed has reported this tracking number
    stopped: bool = False  # the feed said it will send no more (17TRACK's TRACKING_STOPPED)

    @property
    def has_proof(self) -> bool:
        return bool(self.proof)


def _step(milestone: Milestone | None) -> int:
    if milestone is None:
        return -1
    if milestone == Milestone.AVAILABLE_FOR_PICKUP:
        return MILESTONE_PATH.index(Milestone.OUT_FOR_DELIVERY)
    return MILESTONE_PATH.index(milestone) if milestone in MILESTONE_PATH else -1


def shipment_tracking(s: Session, sh: Shipment, *, now: datetime, lost_wait_days: int,
                      tz_name: str) -> ShipmentTracking:
    number = sh.tracking_number or ""
    facts = _checkpoints(s, number) if number else []
    meta = s.scalars(select(Tracking).where(Tracking.tracking_number == number)).first() \
        if number else None
    if facts:
        state = rules.summarise(facts)
    else:  # no live feed: what the imports said
        try:
            m = Milestone(sh.milestone) if sh.milestone else None
        except ValueError:
            m = None
        state = TrackingState(m, None, sh.last_scan_at, sh.delivered_at)
    expected = meta.expected_delivery_at if meta else sh.expected_delivery_at
    proof = ProofOfDelivery(meta.pod_signed_by, meta.pod_photo_url, meta.pod_location) \
        if meta else ProofOfDelivery()
    entries = tuple(TimelineEntry(c.at, str(c.milestone), MILESTONE_LABELS[c.milestone], c.message,
                                  c.place) for c in rules.ordered(facts))
    label = MILESTONE_LABELS[state.milestone] if state.milestone else ""
    explanation = rules.explain(state, expected, sh.shipped_at, now, lost_wait_days, tz_name) \
        if (facts or meta) else ""
    return ShipmentTracking(number, sh.carrier or (meta.carrier if meta else ""),
                            str(state.milestone) if state.milestone else None, label,
                            _step(state.milestone), expected, entries, proof, explanation,
                            live=meta is not None,
                            stopped=bool(meta and meta.stopped_at) and state.milestone != Milestone.DELIVERED)
