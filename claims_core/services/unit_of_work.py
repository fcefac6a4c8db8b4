"""One unit of work per user action: a write transaction that runs the event handlers before it
commits, retries what the database says may be retried, and turns a lost race on a claim's version
into ``StaleClaim``.

Use ``@transactional`` on a function whose first parameter is the session: callers pass the engine
in its place. Anything slow (photo decoding, password hashing, HTTP) happens before, outside.
"""
from __future__ import annotations

import functools
import time
from typing import Callable, Concatenate, ParamSpec, TypeVar

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from ..domain.errors import StaleClaim
from ..infra.db import write_session
from .events import PENDING
from .handlers import dispatch

P = ParamSpec("P")
T = TypeVar("T")
ATTEMPTS = 3
_RETRY_PG_CODES = {"40001", "40P01"}  # serialization failure, deadlock detected


def retryable(e: DBAPIError) -> bool:
    """A transaction the database rolled back only because of another one: try it again."""
    code = getattr(getattr(e, "orig", None), "sqlstate", None) or getattr(
        getattr(e, "orig", None), "pgcode", None)
    # SQLite's "database is locked" is not retried: its busy timeout has already waited.
    return code in _RETRY_PG_CODES


def run(engine: Engine, work: Callable[[Session], T]) -> T:
    """Run ``work(session)`` in one write transaction with the event handlers, then commit."""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            with write_session(engine) as s:
                s.info[PENDING] = []
                result = work(s)
                dispatch(s)
                return result
        except StaleDataError:
            raise StaleClaim()
        except DBAPIError as e:
            if attempt == ATTEMPTS or not retryable(e):
                raise
            time.sleep(0.05 * 2 ** attempt)
    raise AssertionError("unreachable")  # pragma: no cover


def transactional(fn: Callable[Concatenate[Session, P], T]) -> Callable[Concatenate[Engine, P], T]:
    """Make ``fn(session, …)`` a user action called as ``fn(engine, …)``."""
    @functools.wraps(fn)
    def action(engine: Engine, *args: P.args, **kwargs: P.kwargs) -> T:
        return run(engine, lambda s: fn(s, *args, **kwargs))
    return action
