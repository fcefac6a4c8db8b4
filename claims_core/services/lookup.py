"""The customer look-up, throttled.

Every failed lookup is recorded twice, against the order number typed and against the
client (a hash of its address). After ``SLOW_AFTER`` misses in the window each further try waits a
little longer; once ``lookup_max_misses`` misses are on record in ``lookup_window_minutes`` the
lookup is refused until the window has moved on, whether or not the details would be right.

The signed order link in the shop's emails (``domain.order_link``) skips the form: with a valid
signature it opens the order as the look-up would; without one (or with a wrong one) it is only a
prefilled form, and counts as a try here.
"""
from __future__ import annotations

import itertools
import threading
import time
from datetime import datetime, timedelta
from typing import Callable

from sqlalchemy import Engine, delete, func, select
from sqlalchemy.orm import Session

from ..domain import order_link
from ..domain.errors import OrderNotFound, TooManyAttempts
from ..domain.identifiers import client_key, lookup_target
from ..domain.messages import Msg, N_
from ..infra.db import is_read_only, read_session, utcnow
from ..infra.models import LookupAttempt
from . import order_views
from .order_views import ClaimSummary, OrderView
from .settings import load_settings
from .unit_of_work import transactional

SLOW_AFTER = 3
MAX_DELAY_SECONDS = 3.0


def _keys(query: str, client: str | None) -> list[str]:
    keys = [client_key(client)]
    target = lookup_target(query)
    if target:
        keys.append("order:" + target)
    return keys


def guarded_lookup(engine: Engine, query: str, email: str, client: str | None, *,
                   now: datetime | None = None,
                   sleep: Callable[[float], None] = time.sleep) -> OrderView:
    """Look up an order for a customer, slowing down and then refusing repeated misses."""
    return _guarded(engine, query, email, client, now or utcnow(), sleep,
                    lambda: order_views._lookup_order(engine, query, email, now=now))


def guarded_find_claims(engine: Engine, query: str, email: str, client: str | None, *,
                        now: datetime | None = None,
                        sleep: Callable[[float], None] = time.sleep) -> list[ClaimSummary]:
    """View My Claim by order number + email, under the same throttle as the order lookup."""
    return _guarded(engine, query, email, client, now or utcnow(), sleep,
                    lambda: order_views._find_claims_for_customer(engine, query, email))


def open_order_link(engine: Engine, order: str, email: str, sig: str, client: str | None, *,
                    now: datetime | None = None) -> OrderView | None:
    """Customer action: open the signed order link from a shop email.

    A valid signature (this order and this email, under the store's current link secret) opens
    the order as the look-up finds it: the same eligibility, the same refusal when it's gone.
    Otherwise — no signature, a wrong one, a link made before the secret was rotated — nothing
    is looked up and None says "show the form, prefilled"; the try is booked as a look-up miss
    against the order number and the client (refused like the look-up once over the limit),
    and whether the order exists is never told."""
    now = now or utcnow()
    settings = load_settings(engine)
    if order_link.verify(settings.order_link_secret, order, email, sig):
        return order_views._lookup_order(engine, order, email, now=now)
    window = timedelta(minutes=settings.lookup_window_minutes)
    _misses, booked = _book(engine, _keys(order, client), now, now - window,
                            settings.lookup_max_misses)
    if booked is None:
        raise _too_many(settings)
    return None


def _too_many(settings) -> TooManyAttempts:
    return TooManyAttempts(Msg.of(
        N_("Too many attempts. For your security, please wait {minutes} minutes and try again, "
           "or contact the store."), minutes=settings.lookup_window_minutes))


def _guarded(engine, query, email, client, now, sleep, attempt):
    settings = load_settings(engine)
    window = timedelta(minutes=settings.lookup_window_minutes)
    keys = _keys(query, client)
    # Count first, in the same transaction that books this try (writers take turns), then look:
    # thirty look-ups at once can't all slip under the limit by counting before any is booked.
    misses, booked = _book(engine, keys, now, now - window, settings.lookup_max_misses)
    if booked is None:
        raise _too_many(settings)
    if misses >= SLOW_AFTER:
        sleep(min(MAX_DELAY_SECONDS, 0.5 * (misses - SLOW_AFTER + 1)))
    try:
        found = attempt()
    except OrderNotFound:
        raise  # the booked try stays: it was a miss
    _unbook(engine, booked)  # found: a right answer doesn't count against anyone
    return found


def _book(engine: Engine, keys: list[str], now: datetime, since: datetime,
          limit: int) -> tuple[int, list[int] | None]:
    """The misses on record for these keys, and this try booked against them (None: refused).

    A read-only database (``infra.db.is_read_only``) can't record a try: the look-up still works,
    and the tries are kept in this process instead, counted on top of those on record — the
    throttle holds per process (a restart or another instance starts its own count)."""
    if is_read_only(engine):
        return _book_in_memory(engine, keys, now, since, limit)
    return _book_in_db(engine, keys, now, since, limit)


_remembered: dict[str, list[tuple[int, datetime]]] = {}  # key -> (negative id, at)
_remembered_lock = threading.Lock()
_next_id = itertools.count(-1, -1)


def _book_in_memory(engine: Engine, keys: list[str], now: datetime, since: datetime,
                    limit: int) -> tuple[int, list[int] | None]:
    with read_session(engine) as s:
        on_record = dict(s.execute(
            select(LookupAttempt.key, func.count()).where(LookupAttempt.key.in_(keys),
                                                          LookupAttempt.at >= since)
            .group_by(LookupAttempt.key)).all())
    with _remembered_lock:
        for k in list(_remembered):
            _remembered[k] = [(i, at) for i, at in _remembered[k] if at >= since]
            if not _remembered[k]:
                del _remembered[k]
        misses = max((on_record.get(k, 0) + len(_remembered.get(k, ())) for k in keys), default=0)
        if misses >= limit:
            return misses, None
        booked = []
        for k in keys:
            booked.append(next(_next_id))
            _remembered.setdefault(k, []).append((booked[-1], now))
        return misses, booked


def _unbook(engine: Engine, ids: list[int]) -> None:
    if any(i < 0 for i in ids):  # kept in memory (a read-only database)
        with _remembered_lock:
            for k in list(_remembered):
                _remembered[k] = [(i, at) for i, at in _remembered[k] if i not in ids]
        return
    _unbook_in_db(engine, ids)


@transactional
def _book_in_db(s: Session, keys: list[str], now: datetime, since: datetime,
                limit: int) -> tuple[int, list[int] | None]:
    if s.bind.dialect.name == "postgresql":  # one booking per key at a time, across processes
        for k in sorted(keys):
            s.execute(select(func.pg_advisory_xact_lock(func.hashtext(k))))
    rows = s.execute(
        select(LookupAttempt.key, func.count()).where(LookupAttempt.key.in_(keys),
                                                      LookupAttempt.at >= since)
        .group_by(LookupAttempt.key)).all()
    misses = max((n for _k, n in rows), default=0)
    if misses >= limit:
        return misses, None
    booked = [LookupAttempt(key=k, at=now) for k in keys]
    s.add_all(booked)
    s.execute(delete(LookupAttempt).where(LookupAttempt.at < now - timedelta(days=1)))
    s.flush()
    return misses, [b.id for b in booked]


@transactional
def _unbook_in_db(s: Session, ids: list[int]) -> None:
    s.execute(delete(LookupAttempt).where(LookupAttempt.id.in_(ids)))
