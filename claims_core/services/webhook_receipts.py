"""Inbound webhooks after their route: the receipts (stored at once, applied in the background).

A route (``adapters/inbound_webhooks.py``) checks a delivery's signature and shape, then hands it
here as a ``Delivery``: ``store`` keeps the signed, checked body as a pending receipt in one
short transaction (once per source and delivery id: a redelivery is ``duplicate`` and changes
nothing). The receipts of concurrent requests are stored together (``_GroupCommit``: one
commit for many). On PostgreSQL they go into ``webhook_receipts``; on SQLite into the spool
(``infra/spool``, a file of its own, so the routes never wait for a customer's write
transaction), from where ``move_spooled`` brings them into ``webhook_receipts``.

``apply_pending_receipts`` (a background job, every ~2 s; also from ``tick``) moves what is
spooled, reads the due receipts and has them parsed before any write transaction, then applies
them oldest first, **in order per order / per tracking number** (``sequence_key``: a later
receipt never overtakes an earlier one of the same order or parcel), many at once in short transactions (as many as take
about ``BATCH_SECONDS``, then the lock is left free for ``PAUSE_SECONDS``; a SQLite writer
waiting its turn asks for the lock every millisecond, ``infra/db._begin_immediate``, so a
customer waiting meanwhile gets it). What a receipt *means* is the business of the adapter that
received it (it knows each sender's format): it passes a ``Reader`` whose ``prepare`` parses a
body outside the write lock and whose ``apply`` carries it out through the services in the
batch's transaction. A carrier push with thousands of scans is stored
``tracking.CHECKPOINTS_PER_TRANSACTION`` at a time, so no other writer waits long. A Shopify
fulfillment or refund for an order not seen yet is kept (``waiting``, ``apply_waiting``) and
applied when the order arrives. A receipt that fails is tried again with backoff
(``domain.windows.retry_backoff``); one that can't be applied (``Rejected``) ends ``failed`` with
its reason (``last_error``), shown to staff (Settings → Live feeds, ``receipts_needing_attention``,
``retry_receipt``) and never dropped.
"""
from __future__ import annotations

import asyncio
import json
import logging
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Callable

from sqlalchemy import Engine, func, select, tuple_
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, defer

from ..domain.tracking import TrackingUpdate
from ..domain.windows import retry_backoff
from ..infra import spool as spool_db
from ..infra.db import read_session, utcnow, write_session
from ..infra.models import WebhookReceipt, settings_row
from . import tracking
from .events import PENDING
from .unit_of_work import run

log = logging.getLogger("claims.webhooks")

# the background job
READ_AHEAD = 200  # receipts read and parsed at a time, outside any write transaction
BATCH_SECONDS = 0.04  # one transaction applies receipts for about this long at most…
BATCH_SIZE = 8  # …first this many at once; then as many as took about that long last time
# (remembered from one run of the job to the next, per database),
BATCH_MAX = 100  # up to this many (applied set-based: a few statements for the lot)
# between two transactions the write lock is left free this long, so a writer waiting meanwhile
# (a customer; it asks every millisecond: infra/db._begin_immediate) gets its turn
PAUSE_SECONDS = 0.015
MAX_ATTEMPTS = 5  # tries of a receipt that fails unexpectedly before it is marked failed
BIG_BODY_CHARS = 50_000  # a carrier body this long is applied on its own, in bounded transactions

# at most this many bodies parsed at once in threads (the applier's, and the routes' for a body
# over ``INLINE_BODY_BYTES``; a usual one is read on the event loop): fewer threads wanting
# Python's GIL, so the thread that holds a SQLite write lock (storing receipts, applying them)
# gets it back quickly
READING = threading.BoundedSemaphore(4)


class Rejected(Exception):
    """The body can't be used (a route answers 400 with ``reason``; a stored receipt ends
    ``failed`` with it)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Outcome:
    outcome: str  # applied | duplicate | waiting | ignored | received
    detail: str = ""
    subject: str = ""  # waiting: the order it waits for (``apply_waiting``)


@dataclass(frozen=True)
class Delivery:
    """A checked delivery, ready to be stored as a receipt."""

    source: str
    delivery_id: str
    topic: str
    sequence_key: str  # receipts with the same key are applied in the order received
    body: str


@dataclass(frozen=True)
class Reader:
    """What the receiving adapter knows of its senders' bodies.

    ``prepare(source, topic, body)``: the stored body parsed, outside any transaction (what it
    raises is raised again when the receipt is applied: ``Rejected`` fails the receipt, anything
    else is retried). ``apply(session, [(receipt, prepared), …], now)``: carry out receipts in
    the batch's transaction, in their order, an outcome each (receipts of different orders and
    parcels may be applied together, set-based). ``tracking_updates(source, body)``: a big carrier push read into its updates
    (their scans are stored in bounded transactions)."""

    prepare: Callable[[str, str, str], object]
    apply: Callable[[Session, list[tuple[WebhookReceipt, object]], datetime], list[Outcome]]
    tracking_updates: Callable[[str, str], list[TrackingUpdate]]


# --- storing a receipt (one short transaction) ---------------------------------------------------

GROUP_MAX = 200  # receipts stored per transaction at most
_WRITER_IDLE_S = 2.0


def _new_rows(batch: list[tuple[Delivery, datetime]], seen: set[tuple[str, str]]
              ) -> tuple[list[dict], list[Outcome]]:
    """The rows to insert for the deliveries not ``seen`` yet, and an outcome per delivery."""
    rows, outcomes = [], []
    for d, now in batch:
        key = (d.source, d.delivery_id)
        if key in seen:
            outcomes.append(Outcome("duplicate"))
            continue
        seen.add(key)
        outcomes.append(Outcome("received"))
        rows.append(dict(source=d.source, delivery_id=d.delivery_id, topic=d.topic,
                         received_at=now, sequence_key=d.sequence_key, payload=d.body))
    return rows, outcomes


def _keys_in(s: Session, table, wanted: set[tuple[str, str]]) -> set[tuple[str, str]]:
    return set(s.execute(select(table.c.source, table.c.delivery_id).where(
        tuple_(table.c.source, table.c.delivery_id).in_(list(wanted)))).all())


def _as_receipt(row: dict) -> dict:
    """A spooled or new row as a pending ``webhook_receipts`` row."""
    return {**row, "status": "pending", "attempts": 0, "next_attempt_at": row["received_at"],
            "outcome": "pending", "subject": "", "detail": "", "last_error": ""}


def _insert_ignoring_copies(s: Session, table, rows: list[dict]) -> None:
    """``rows`` inserted at once; one stored by another process meanwhile is left as it is."""
    insert = pg_insert if s.get_bind().dialect.name == "postgresql" else sqlite_insert
    s.connection().execute(insert(table).on_conflict_do_nothing(
        index_elements=["source", "delivery_id"]), rows)


def _insert_all(s: Session, batch: list[tuple[Delivery, datetime]]) -> list[Outcome]:
    """Store the batch in ``webhook_receipts`` in two statements (few statements: the transaction
    holding the write lock never waits long for Python's GIL, even with 50 requests running):
    which deliveries are stored already, then the new ones at once."""
    table = WebhookReceipt.__table__
    rows, outcomes = _new_rows(batch, _keys_in(s, table, {(d.source, d.delivery_id)
                                                           for d, _ in batch}))
    if rows:
        _insert_ignoring_copies(s, table, [_as_receipt(r) for r in rows])
    return outcomes


def _spool_all(spool: Engine, db: Engine, batch: list[tuple[Delivery, datetime]]
               ) -> list[Outcome]:
    """Store the batch in the spool (``infra/spool``): a delivery is a ``duplicate`` when the
    spool has it, or (read while the spool's write lock is held, so a receipt being moved is
    seen in one place or the other) ``webhook_receipts`` has it."""
    wanted = {(d.source, d.delivery_id) for d, _ in batch}
    with write_session(spool) as s:
        seen = _keys_in(s, spool_db.spooled_receipts, wanted)
        if len(seen) < len(wanted):
            with read_session(db) as main:  # a read: never waits for the main file's writers
                seen |= _keys_in(main, WebhookReceipt.__table__, wanted - seen)
        rows, outcomes = _new_rows(batch, seen)
        if rows:
            s.connection().execute(spool_db.spooled_receipts.insert(), rows)
    return outcomes


class _GroupCommit:
    """The receipts of concurrent requests stored together: one writer thread per engine takes
    whatever is queued (up to ``GROUP_MAX``) and inserts it in one short transaction. SQLite
    commits one transaction at a time anyway; one commit for many receipts, handed over without
    the busy handler's sleeps, is what lets 50 senders through. The thread ends when idle."""

    _lock = threading.Lock()
    _writers: dict[int, _GroupCommit] = {}

    def __init__(self, db: Engine):
        self.db = db
        self.queue: queue.SimpleQueue = queue.SimpleQueue()

    @classmethod
    def submit(cls, db: Engine, d: Delivery, now: datetime | None) -> Future:
        """Queue the delivery; the future is its ``Outcome`` once committed."""
        done: Future = Future()
        with cls._lock:
            writer = cls._writers.get(id(db))
            if writer is None or writer.db is not db:
                writer = cls._writers[id(db)] = cls(db)
                threading.Thread(target=writer._run, name="webhook-receipts-writer",
                                 daemon=True).start()
            writer.queue.put((d, now, done))
        return done

    def _run(self) -> None:
        while True:
            try:
                first = self.queue.get(timeout=_WRITER_IDLE_S)
            except queue.Empty:
                with self._lock:
                    if self.queue.empty():
                        if self._writers.get(id(self.db)) is self:
                            del self._writers[id(self.db)]
                        return
                continue
            batch = [first]
            while len(batch) < GROUP_MAX:
                try:
                    batch.append(self.queue.get_nowait())
                except queue.Empty:
                    break
            t0 = time.perf_counter()
            try:
                at = utcnow()
                stamped = [(d, now or at) for d, now, _ in batch]
                spool = spool_db.for_database(self.db)
                if spool is not None:
                    outcomes = _spool_all(spool, self.db, stamped)
                else:
                    with write_session(self.db) as s:
                        outcomes = _insert_all(s, stamped)
            except BaseException as e:  # noqa: BLE001 - each waiting request answers it
                for *_, done in batch:
                    done.set_exception(e)
                continue
            took = time.perf_counter() - t0
            if took > 1:
                log.warning("storing %d webhook receipts took %.1f s", len(batch), took)
            for (*_, done), outcome in zip(batch, outcomes):
                done.set_result(outcome)


def store(db: Engine, d: Delivery, *, now: datetime | None = None) -> Outcome:
    """Store the delivery as a pending receipt, once: ``received``, or ``duplicate`` when this
    delivery id was stored before (nothing changes). Returns once it is committed (on SQLite in
    the spool, ``infra/spool``: ``move_spooled`` brings it into ``webhook_receipts``)."""
    return _GroupCommit.submit(db, d, now).result(timeout=30)  # (unless the database hangs)


async def store_async(db: Engine, d: Delivery) -> Outcome:
    """``store`` for a route on the event loop: it waits for the commit without a thread."""
    return await asyncio.wait_for(asyncio.wrap_future(_GroupCommit.submit(db, d, None)), 30)


SPOOL_MOVE_MAX = 200  # spooled receipts moved per transaction


def move_spooled(db: Engine) -> int:
    """Move what the routes spooled (SQLite) into ``webhook_receipts``, oldest first, as pending
    receipts: up to ``SPOOL_MOVE_MAX`` in one short insert, then they are deleted from the spool.
    Safe to run twice at once, and after a crash between the two (a receipt moved already is
    left as it is). Returns how many were moved. The applier runs it before reading what is due;
    so do a customer's export and erasure (a body still spooled names the customer too)."""
    spool = spool_db.for_database(db)
    if spool is None:
        return 0
    table, moved = spool_db.spooled_receipts, 0
    while True:
        with read_session(spool) as s:
            rows = [dict(r) for r in s.execute(select(table).order_by(table.c.id)
                                               .limit(SPOOL_MOVE_MAX)).mappings()]
        if not rows:
            return moved
        ids = [r.pop("id") for r in rows]
        with write_session(db) as s:
            _insert_ignoring_copies(s, WebhookReceipt.__table__, [_as_receipt(r) for r in rows])
        with write_session(spool) as s:
            s.execute(table.delete().where(table.c.id.in_(ids)))
        moved += len(rows)
        if len(rows) < SPOOL_MOVE_MAX:
            return moved
        _pause()


def spooled(db: Engine) -> dict[str, int]:
    """How many receipts wait in the spool, per source (none without a spool)."""
    spool = spool_db.for_database(db)
    if spool is None:
        return {}
    table = spool_db.spooled_receipts
    with read_session(spool) as s:
        return dict(s.execute(select(table.c.source, func.count()).group_by(table.c.source)).all())


# --- applying receipts (the background job) -------------------------------------------------------

def protection_pattern(s: Session) -> str:
    """The store's protection-line pattern (an order's upsert reads it)."""
    return settings_row(s).protection_pattern


def apply_waiting(s: Session, subject: str, apply_one: Callable[[str, object], Outcome],
                  now: datetime) -> int:
    """Apply the receipts kept ``waiting`` for the Shopify order ``subject`` (it has just
    arrived), oldest first, each in its own savepoint: one that can't be applied (``Rejected``)
    ends failed and doesn't stop the others. ``apply_one(topic, payload)``. Returns how many."""
    if not subject:
        return 0
    waiting = s.scalars(select(WebhookReceipt).where(
        WebhookReceipt.outcome == "waiting", WebhookReceipt.source == "shopify",
        WebhookReceipt.subject == subject).order_by(WebhookReceipt.id)).all()
    for w in waiting:  # each on its own: one bad event doesn't stop the order
        try:
            with s.begin_nested():
                result = apply_one(w.topic, json.loads(w.payload))
        except Rejected as e:
            _fail(w, e.reason)
            log.warning("waiting %s event %s rejected: %s", w.topic, w.delivery_id, w.detail)
            continue
        w.outcome, w.detail, w.payload, w.applied_at = (
            result.outcome, result.detail[:2000], "", now)
    return len(waiting)


def _fail(receipt: WebhookReceipt, reason: str) -> None:
    receipt.status, receipt.outcome = "failed", "rejected"
    receipt.detail = receipt.last_error = reason[:2000]


@dataclass
class _Prepared:
    """A due receipt read and parsed before the write transaction (reading and parsing JSON
    while holding SQLite's write lock would make every other writer wait for it)."""

    id: int
    key: str
    big: bool
    parsed: object = None
    error: Exception | None = None  # what parsing raised: raised again when it is applied


def _prepare(reader: Reader, receipt_id: int, key: str, source: str, topic: str,
             body: str) -> _Prepared:
    big = source != "shopify" and len(body) > BIG_BODY_CHARS
    p = _Prepared(receipt_id, key, big)
    if big:
        return p
    try:
        p.parsed = reader.prepare(source, topic, body)
    except Exception as e:  # noqa: BLE001 - raised again where the receipt is applied
        p.error = e
    return p


def _apply(reader: Reader, s: Session, receipt: WebhookReceipt, now: datetime) -> Outcome:
    """One receipt, its body parsed afresh."""
    parsed = reader.prepare(receipt.source, receipt.topic, receipt.payload)
    [outcome] = reader.apply(s, [(receipt, parsed)], now)
    return outcome


@dataclass
class ApplyReport:
    applied: int = 0  # done (applied, waiting for their order, or ignored)
    retry: int = 0  # failed this time, tried again later
    failed: int = 0  # can't be applied: shown to staff
    transactions: int = 0
    longest_transaction_s: float = 0.0
    errors: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.applied or self.retry or self.failed)


def _done(receipt: WebhookReceipt, result: Outcome, now: datetime) -> None:
    receipt.status, receipt.outcome, receipt.detail = "done", result.outcome, result.detail[:2000]
    receipt.applied_at, receipt.last_error = now, ""
    if result.subject:
        receipt.subject = result.subject[:64]
    if result.outcome != "waiting":
        receipt.payload = ""  # applied: the body isn't needed any more


def _failed_attempt(receipt: WebhookReceipt, error: Exception, now: datetime,
                    report: ApplyReport) -> None:
    receipt.attempts += 1
    receipt.last_error = f"{type(error).__name__}: {error}"[:2000]
    if receipt.attempts >= MAX_ATTEMPTS:
        receipt.status = "failed"
        report.failed += 1
    else:
        receipt.next_attempt_at = now + retry_backoff(receipt.attempts)
        report.retry += 1
    log.warning("%s receipt %s (%s) failed (attempt %d): %s", receipt.source, receipt.id,
                receipt.delivery_id, receipt.attempts, receipt.last_error)


class _Spoiled(Exception):
    """A receipt failed in a batch applied without savepoints: the batch is rolled back and
    applied again, each receipt in its own savepoint."""


def _read_due(reader: Reader, db: Engine, now: datetime
              ) -> tuple[list[_Prepared], dict[str, int]]:
    """The due receipts oldest first (at most ``READ_AHEAD``), read and parsed outside any write
    transaction, and per order/parcel the earliest receipt waiting for its retry (it holds the
    later ones back)."""
    with read_session(db) as s:
        rows = s.execute(select(WebhookReceipt.id, WebhookReceipt.sequence_key,
                                WebhookReceipt.source, WebhookReceipt.topic, WebhookReceipt.payload)
                         .where(WebhookReceipt.status == "pending",
                                WebhookReceipt.next_attempt_at <= now)
                         .order_by(WebhookReceipt.id).limit(READ_AHEAD)).all()
        keys = {r.sequence_key for r in rows}
        held_from = dict(s.execute(select(WebhookReceipt.sequence_key, func.min(WebhookReceipt.id))
                                   .where(WebhookReceipt.status == "pending",
                                          WebhookReceipt.next_attempt_at > now,
                                          WebhookReceipt.sequence_key.in_(keys))
                                   .group_by(WebhookReceipt.sequence_key)).all()) if keys else {}
    with READING:  # parsing is CPU: no more threads wanting the GIL than the routes allow
        return [_prepare(reader, *r) for r in rows], held_from


def _apply_batch(reader: Reader, s: Session, due: list[_Prepared], held_from: dict[str, int],
                 now: datetime, report: ApplyReport, *, isolated: bool,
                 size: int = BATCH_SIZE) -> tuple[int, int | None]:
    """Apply receipts of ``due`` (read beforehand) in this transaction, oldest first, at most
    ``size``. Returns how many of ``due`` it went through, and the id of a big receipt met (to be
    applied on its own next), else None. A receipt applied meanwhile by someone else (no longer
    due) is passed over, and so is one whose order or parcel has an earlier receipt waiting for
    its retry.

    Receipts rarely fail, so a batch is first applied as one piece, set-based (``isolated``
    False: ``reader.apply`` gets them all at once, no savepoint per receipt); if one fails, the
    batch is rolled back (``_Spoiled``) and applied again with each receipt in its own
    savepoint, where a failure is recorded (for at most ``BATCH_SECONDS``)."""
    started = time.perf_counter()
    chunk = due[:size]
    # one statement for the batch's rows (their bodies stay unread: parsed already)
    rows = {r.id: r for r in s.scalars(
        select(WebhookReceipt).options(defer(WebhookReceipt.payload))
        .where(WebhookReceipt.id.in_([p.id for p in chunk]),
               WebhookReceipt.status == "pending", WebhookReceipt.next_attempt_at <= now))}
    todo: list[tuple[int, _Prepared, WebhookReceipt]] = []
    went, big = len(chunk), None
    for n, p in enumerate(chunk):
        receipt = rows.get(p.id)
        if receipt is None:
            continue  # applied (or put back for a retry) by another applier meanwhile
        if p.big:
            went, big = n + 1, p.id
            break
        todo.append((n, p, receipt))
    if not isolated:
        todo = [(n, p, r) for n, p, r in todo
                if not (p.key in held_from and held_from[p.key] < p.id)]
        failed = next((p.error for _, p, _ in todo if p.error is not None), None)
        if failed is not None:
            raise _Spoiled() from failed
        try:
            results = reader.apply(s, [(r, p.parsed) for _, p, r in todo], now)
        except Exception as e:  # noqa: BLE001 - applied again, receipt by receipt
            raise _Spoiled() from e
        for (_, _, receipt), result in zip(todo, results, strict=True):
            _done(receipt, result, now)
            report.applied += 1
        s.flush()  # (as the commit would: counted in the batch's time)
        report.longest_transaction_s = time.perf_counter() - started
        return went, big
    for i, (n, p, receipt) in enumerate(todo):
        if i and time.perf_counter() - started > BATCH_SECONDS:
            return n, None  # (at least one per transaction, however slow the machine)
        if p.key in held_from and held_from[p.key] < p.id:
            continue
        events = s.info.setdefault(PENDING, [])
        recorded = len(events)
        try:
            with s.begin_nested():
                result = _apply(reader, s, receipt, now)
        except Rejected as e:
            del events[recorded:]  # rolled back with the savepoint: no handler answers them
            _fail(receipt, e.reason)
            report.failed += 1
            log.warning("%s receipt %s (%s) can't be applied: %s", receipt.source, receipt.id,
                        receipt.delivery_id, e.reason)
            continue
        except Exception as e:  # noqa: BLE001 - a receipt's own failure never stops the others
            del events[recorded:]
            _failed_attempt(receipt, e, now, report)
            held_from[p.key] = receipt.id
            continue
        _done(receipt, result, now)
        report.applied += 1
    return went, big


def _apply_big(reader: Reader, db: Engine, receipt_id: int, now: datetime,
               report: ApplyReport) -> None:
    """A big carrier push, in bounded transactions: its scans ``CHECKPOINTS_PER_TRANSACTION`` at a
    time (oldest first), then the rest of the update and the receipt in a last one."""
    with read_session(db) as s:
        receipt = s.get(WebhookReceipt, receipt_id)
        source, body = receipt.source, receipt.payload
    try:
        updates = reader.tracking_updates(source, body)
    except Rejected as e:
        def fail(s: Session, reason: str = e.reason) -> None:
            _fail(s.get(WebhookReceipt, receipt_id), reason)
        run(db, fail)
        report.failed += 1
        return
    step = tracking.CHECKPOINTS_PER_TRANSACTION
    outcomes = []
    try:
        for update in updates:
            oldest_first = list(reversed(update.checkpoints))
            earlier = oldest_first[:-step] if len(oldest_first) > step else []
            last = oldest_first[len(earlier):]
            stored: list = []
            for i in range(0, len(earlier), step):
                chunk = earlier[i:i + step]
                t0 = time.perf_counter()
                stored += run(db, lambda s, chunk=chunk, u=update: tracking.store_checkpoints(
                    s, u.tracking_number, chunk, u.source, now=now))
                _count(report, t0)
                _pause()
            final = replace(update, checkpoints=tuple(reversed(last)))
            with read_session(db) as s:  # read outside the write lock
                known = tracking.checkpoints_of(s, update.tracking_number)
            t0 = time.perf_counter()
            outcomes.append(run(db, lambda s, f=final, b=stored, k=known: tracking.record(
                s, f, now=now, stored_before=b, known=k)))
            _count(report, t0)
    except Exception as e:  # noqa: BLE001 - tried again later, shown to staff in the end
        def retry(s: Session, e=e) -> None:
            _failed_attempt(s.get(WebhookReceipt, receipt_id), e, now, report)
        run(db, retry)
        return
    waiting = [o.tracking_number for o in outcomes if o.shipments == 0]
    detail = (f"{sum(o.new_checkpoints for o in outcomes)} new checkpoints, "
              f"{sum(o.holds for o in outcomes)} claims put on hold")
    if waiting:
        detail += f"; kept until an order ships {', '.join(waiting)}"

    def finish(s: Session) -> None:
        _done(s.get(WebhookReceipt, receipt_id), Outcome("applied", detail), now)
    run(db, finish)
    report.applied += 1


def _pause() -> None:
    """The others' turn (see ``PAUSE_SECONDS``)."""
    time.sleep(PAUSE_SECONDS)


def _count(report: ApplyReport, t0: float) -> None:
    report.transactions += 1
    report.longest_transaction_s = max(report.longest_transaction_s, time.perf_counter() - t0)


def apply_pending_receipts(db: Engine, reader: Reader, *, now: datetime | None = None,
                           max_seconds: float = 30.0,
                           stop: threading.Event | None = None) -> ApplyReport:
    """Apply every due receipt (the background job; safe to run from several processes: each
    batch is one write transaction, and on PostgreSQL one applier at a time takes a batch).
    ``stop`` (shutdown): finish the batch in hand, take no more."""
    report = ApplyReport()
    fixed_now = now
    until = time.perf_counter() + max_seconds
    isolated = False
    due: list[_Prepared] = []
    held_from: dict[str, int] = {}
    size = _batch_sizes.get(str(db.url), BATCH_SIZE)
    while time.perf_counter() < until and not (stop is not None and stop.is_set()):
        at = fixed_now or utcnow()
        if not due:
            if move_spooled(db):
                _pause()
            due, held_from = _read_due(reader, db, at)
            if not due:
                break  # all done
        before = report.applied + report.failed + report.retry
        t0 = time.perf_counter()
        tally = ApplyReport()
        try:
            taken, big = run(db, lambda s, due=due, held=held_from, size=size: _apply_batch(
                reader, s, due, held, at, tally, isolated=isolated, size=size)
                if _my_turn(s) else (0, None))
        except _Spoiled:
            isolated = True  # the same batch again, receipt by receipt
            _count(report, t0)
            continue
        except DBAPIError as e:  # the database refused the whole batch: the next run tries again
            log.warning("applying webhook receipts: %s", e)
            report.errors.append(str(e)[:500])
            break
        if not isolated:  # the next batch as big as fits in BATCH_SECONDS on this machine now
            took = tally.longest_transaction_s  # (the work in the transaction, not the wait)
            if took > BATCH_SECONDS and size > 1:
                size = max(1, size // 2)
            elif took < BATCH_SECONDS / 2 and taken >= size:
                size = min(BATCH_MAX, size * 2)
            _batch_sizes[str(db.url)] = size
        isolated = False
        report.applied += tally.applied
        report.retry += tally.retry
        report.failed += tally.failed
        _count(report, t0)
        if big is not None:
            _apply_big(reader, db, big, at, report)
        if not taken:
            break  # another applier's turn (PostgreSQL)
        del due[:taken]
        if not due and report.applied + report.failed + report.retry == before:
            break  # nothing could move (held back behind a retry, or applied by another applier)
        _pause()
    return report


_batch_sizes: dict[str, int] = {}  # per database: the batch size the last run ended with


def _my_turn(s: Session) -> bool:
    """PostgreSQL: one applier at a time (a transaction-scoped advisory lock), so two processes
    never apply one order's receipts out of order. SQLite's write lock already does this."""
    if s.get_bind().dialect.name != "postgresql":
        return True
    return bool(s.scalar(select(func.pg_try_advisory_xact_lock(0x77656268))))


# --- what staff see --------------------------------------------------------------------------------

@dataclass(frozen=True)
class ReceiptRow:
    id: int
    source: str
    topic: str
    delivery_id: str
    received_at: datetime
    status: str
    attempts: int
    last_error: str


def receipts_needing_attention(db: Engine, *, limit: int = 50) -> tuple[int, int, list[ReceiptRow]]:
    """(pending, failed, the failed and retrying receipts newest first) for the settings page."""
    with read_session(db) as s:
        counts = dict(s.execute(select(WebhookReceipt.status, func.count())
                                .where(WebhookReceipt.status != "done")
                                .group_by(WebhookReceipt.status)).all())
        rows = s.execute(select(
            WebhookReceipt.id, WebhookReceipt.source, WebhookReceipt.topic,
            WebhookReceipt.delivery_id, WebhookReceipt.received_at, WebhookReceipt.status,
            WebhookReceipt.attempts, WebhookReceipt.last_error)
            .where((WebhookReceipt.status == "failed")
                   | ((WebhookReceipt.status == "pending") & (WebhookReceipt.attempts > 0)))
            .order_by(WebhookReceipt.id.desc()).limit(limit)).all()
    return (counts.get("pending", 0) + sum(spooled(db).values()), counts.get("failed", 0),
            [ReceiptRow(*r) for r in rows])


def retry_receipt(db: Engine, receipt_id: int, *, now: datetime | None = None) -> bool:
    """Staff's retry of a failed receipt: pending again, tried at the next run."""
    now = now or utcnow()

    def go(s: Session) -> bool:
        r = s.get(WebhookReceipt, receipt_id)
        if r is None or r.status != "failed" or not r.payload:
            return False
        r.status, r.attempts, r.next_attempt_at, r.outcome = "pending", 0, now, "pending"
        return True
    return run(db, go)
