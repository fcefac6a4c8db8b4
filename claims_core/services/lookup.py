"""The customer look-up, throttled.

Every failed lookup is recorded twice, against the order number typed and against the
client (a hash of its address). After ``SLOW_AFTER`` misses in the window each further try waits a
little longer; once ``lookup_max_misses`` misses are on record in ``lookup_window_minutes`` the
lookup is refused until the window has moved on, whether or not the details would be right.
"""
from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Callable

from sqlalchemy import Engine, delete, func, select
from sqlalchemy.orm import Session

from ..domain.errors import OrderNotFound, TooManyAttempts
from ..domain.identifiers import client_key, lookup_target
from ..domain.messages import Msg, N_
from ..infra.db import utcnow
from ..infra.models import LookupAttempt
from . import customer
from .customer import ClaimSummary, OrderView
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
                    lambda: customer.lookup_order(engine, query, email, now=now))


def guarded_find_claims(engine: Engine, query: str, email: str, client: str | None, *,
                        now: datetime | None = None,
                        sleep: Callable[[float], None] = time.sleep) -> list[ClaimSummary]:
    """View My Claim by order number + email, under the same throttle as the order lookup."""
    return _guarded(engine, query, email, client, now or utcnow(), sleep,
                    lambda: customer.find_claims_for_customer(engine, query, email))


def _guarded(engine, query, email, client, now, sleep, attempt):
    settings = load_settings(engine)
    window = timedelta(minutes=settings.lookup_window_minutes)
    keys = _keys(query, client)
    # Count first, in the same transaction that books this try (writers take turns), then look:
    # thirty look-ups at once can't all slip under the limit by counting before any is booked.
    misses, booked = _book(engine, keys, now, now - window, settings.lookup_max_misses)
    if booked is None:
        raise TooManyAttempts(Msg.of(
            N_("Too many attempts. For your security, please wait {minutes} minutes and try again, "
               "or contact the store."), minutes=settings.lookup_window_minutes))
    if misses >= SLOW_AFTER:
        sleep(min(MAX_DELAY_SECONDS, 0.5 * (misses - SLOW_AFTER + 1)))
    try:
        found = attempt()
    except OrderNotFound:
        raise  # the booked try stays: it was a miss
    _unbook(engine, booked)  # found: a right answer doesn't count against anyone
    return found


@transactional
def _book(s: Session, keys: list[str], now: datetime, since: datetime,
          limit: int) -> tuple[int, list[int] | None]:
    """The misses on record for these keys, and this try booked against them (None: refused)."""
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
def _unbook(s: Session, ids: list[int]) -> None:
    s.execute(delete(LookupAttempt).where(LookupAttempt.id.in_(ids)))
