"""Engine and transactions.

One engine per process; a short session per user action. On SQLite every write transaction starts
with ``BEGIN IMMEDIATE`` so two writers never deadlock half-way through; read-only work uses a
plain (deferred) ``BEGIN`` and never blocks anyone under WAL.
"""
from __future__ import annotations

import collections
import logging
import os
import threading
import time
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator
from urllib.parse import quote

from sqlalchemy import DateTime, Engine, create_engine, event
from sqlalchemy.dialects.sqlite.base import SQLiteCompiler
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session
from sqlalchemy.types import TypeDecorator

from ..domain.windows import local_date
from . import clock, config

_log = logging.getLogger("claims.db")

BUSY_TIMEOUT_MS = 15_000
MMAP_BYTES = 1 << 30


class UTCDateTime(TypeDecorator):
    """Stores naive UTC, always hands back timezone-aware UTC datetimes.

    Accepts aware datetimes in any zone (converted to UTC); a naive datetime is taken as UTC.
    """

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is not None:
            value = value.astimezone(timezone.utc).replace(tzinfo=None)
        return value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if isinstance(value, str):  # pragma: no cover - defensive, SQLite returns str only for raw SQL
            value = datetime.fromisoformat(value)
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


def utcnow() -> datetime:
    """The app's "now" (aware UTC): every part of the app reads time here. Tests can shift it for
    the whole process and its subprocesses (``CLAIMS_CLOCK_SHIFT``: see ``infra/clock.py``)."""
    return clock.now()


# --- the store's local day in SQL ------------------------------------------------------------------
# PostgreSQL converts with its time zone database (``(col AT TIME ZONE 'UTC') AT TIME ZONE tz``);
# SQLite has none, so every SQLite connection gets ``claims_local_day(utc_timestamp, tz)``: the
# store's local date ('YYYY-MM-DD') of a stored UTC timestamp by ``domain.windows.local_date`` (the
# one rule, zoneinfo: DST-correct). ``infra/rollups.day_of`` is the one place SQL asks for it.
LOCAL_DAY_SQL = "claims_local_day"


def _hour_local_day(hour: str, tz_name: str) -> str | None:
    """The local day of every moment of one UTC hour ('YYYY-MM-DD HH'), or None when the day
    changes inside it (a zone whose offset isn't whole hours)."""
    try:
        start = datetime.fromisoformat(hour + ":00").replace(tzinfo=timezone.utc)
    except ValueError:
        return None
    first = local_date(start, tz_name)
    last = local_date(start + timedelta(hours=1, microseconds=-1), tz_name)
    return first.isoformat() if first == last else None


_HOURS: dict[str, str | None] = {}  # 'YYYY-MM-DD HH' + zone -> _hour_local_day
_MISSING = object()
_STORED = (19, 26)  # the lengths of SQLAlchemy's naive timestamps: 'YYYY-MM-DD HH:MM:SS[.ffffff]'


def sqlite_local_day(value, tz_name) -> str | None:
    """``claims_local_day`` (see above): NULL for NULL or an unreadable value, as ``date()``."""
    if value.__class__ is not str:
        return None
    tz_name = tz_name or "UTC"
    if len(value) in _STORED and value[10] == " ":
        # a naive UTC timestamp as the app stores it: one zone look-up per hour (remembered)
        key = value[:13] + tz_name
        day = _HOURS.get(key, _MISSING)
        if day is _MISSING:
            if len(_HOURS) > 1 << 17:
                _HOURS.clear()
            day = _HOURS[key] = _hour_local_day(value[:13], tz_name)
        if day is not None:
            return day
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return local_date(moment, tz_name).isoformat()


def is_sqlite(engine_or_url) -> bool:
    url = engine_or_url.url if isinstance(engine_or_url, Engine) else make_url(str(engine_or_url))
    return url.get_backend_name() == "sqlite"


class _SQLiteCompiler(SQLiteCompiler):
    """Renders ``select(...).with_hint(Table, "INDEXED BY ix_name", "sqlite")`` as SQLite's own
    index hint (SQLAlchemy's SQLite dialect drops table hints); other databases ignore the hint."""

    def get_from_hint_text(self, table, text):
        return text


def _postgres_connect_args(u) -> dict:
    """A connect timeout (a host that accepts and never answers can't hang a page or a cron tick),
    a statement timeout and TCP keepalives (``CLAIMS_DB_CONNECT_TIMEOUT``,
    ``CLAIMS_DB_STATEMENT_TIMEOUT``); what the URL sets itself wins, its ``options`` are kept."""
    args: dict = {}
    if "connect_timeout" not in u.query:
        args["connect_timeout"] = config.db_connect_timeout()
    for key, value in (("keepalives", 1), ("keepalives_idle", 30), ("keepalives_interval", 10),
                       ("keepalives_count", 3)):
        if key not in u.query:
            args[key] = value
    statement = config.db_statement_timeout()
    options = u.query.get("options", "")
    options = options if isinstance(options, str) else " ".join(options)
    if statement and "statement_timeout" not in options:
        args["options"] = (options + f" -c statement_timeout={statement * 1000}").strip()
    return args


def read_only_reason(path: Path) -> str | None:
    """Why the SQLite file at ``path`` can only be read (its folder or the file not writable:
    a read-only mount, a backup copy, permissions), or None."""
    if not path.exists():
        return None
    if not os.access(path.parent, os.W_OK):
        return "the data folder is read-only"
    if not os.access(path, os.W_OK):
        return "the database file is read-only"
    return None


def is_read_only(engine: Engine) -> bool:
    """Whether this engine opened its SQLite database read-only (``mode=ro``): reads work, every
    write fails with "attempt to write a readonly database"."""
    q = engine.url.query
    return is_sqlite(engine) and (q.get("mode") == "ro" or q.get("immutable") == "1")


def _sqlite_read_only_url(u, path: Path):
    """``path`` opened read-only. In WAL mode SQLite needs the ``-shm`` file even to read; in a
    folder it can't create it in, the file is opened as immutable (nothing here can change it)."""
    query = {"mode": "ro", "uri": "true"}
    if not os.access(path.parent, os.W_OK) and not Path(f"{path}-shm").exists():
        query["immutable"] = "1"
    return u.set(database="file:" + quote(str(path)), query=query)


def make_engine(url: str | None = None) -> Engine:
    """Create the process's engine (``DATABASE_URL`` or SQLite under ``data/``).

    PostgreSQL gets a connect and a statement timeout. A SQLite file that can't be written (its
    folder or the file read-only) is opened read-only: every read works, every write fails with
    "attempt to write a readonly database" (the pages say the shop can't save right now)."""
    url = url or config.database_url()
    u = make_url(url)
    if u.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True, future=True, connect_args=(
            _postgres_connect_args(u) if u.get_backend_name() == "postgresql" else {}))

    # A plain file path gets its folder made; a "file:" URI (read-only copies) is opened as it is.
    if u.database and u.database != ":memory:" and not u.database.startswith("file:"):
        path = Path(u.database)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:  # a read-only parent: connecting says what's wrong
            _log.warning("can't create the data folder %s: %s", path.parent, e)
        reason = read_only_reason(path)
        if reason:
            _log.warning("%s (%s): opening the database read-only", reason, path)
            url = _sqlite_read_only_url(u, path)
    engine = create_engine(
        url,
        connect_args={"timeout": BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
        pool_size=20,
        max_overflow=40,
    )
    engine.dialect.statement_compiler = _SQLiteCompiler

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        # Let SQLAlchemy, not pysqlite, decide when transactions begin.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        try:
            cur.execute("PRAGMA journal_mode=WAL")
        except dbapi_conn.OperationalError:  # a read-only database still serves reads
            pass
        cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        # Read through memory-mapped I/O (the OS page cache, shared by every connection) instead
        # of a read() call per page: large scans (analytics) run ~1.5x faster at 1M claims.
        cur.execute(f"PRAGMA mmap_size={MMAP_BYTES}")
        cur.close()
        dbapi_conn.create_function(LOCAL_DAY_SQL, 2, sqlite_local_day, deterministic=True)

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        if conn.get_execution_options().get("claims_readonly"):
            conn.exec_driver_sql("BEGIN")
        else:
            _begin_immediate(conn)

    event.listen(engine, "commit", _end_turn)
    event.listen(engine, "rollback", _end_turn)

    return engine


EAGER_BUSY_MS = 2  # the writer whose turn it is asks for SQLite's write lock every millisecond


class _WriterTurns:
    """This process's writers to one SQLite file, in line: first come, first served.

    SQLite's write lock has no queue: whoever asks at the moment it is free gets it, so under
    load a writer could lose round after round (a customer waited 1.9 s behind three others
    that each held it tens of milliseconds). Here a process's writers wait their turn in
    order (an ``Event`` each, no CPU), and only the one whose turn it is asks SQLite, every
    millisecond, against the other processes' (a ``worker``, ``tick``) one asker each. A turn
    is handed straight to the next in line when its transaction commits or rolls back
    (``_end_turn``); one whose connection was dropped mid-transaction without either (the pool
    rolled it back) is taken back by the next in line."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._line: collections.deque[threading.Event] = collections.deque()
        self._taken = False
        self._holder = None  # the DBAPI connection whose transaction holds the turn

    def take(self, timeout: float) -> bool:
        """Wait for this thread's turn (False: not within ``timeout``; out of line again)."""
        with self._guard:
            if not self._taken and not self._line:
                self._taken = True
                return True
            mine = threading.Event()
            self._line.append(mine)
        until = time.monotonic() + timeout
        while not mine.wait(min(1.0, max(0.0, until - time.monotonic()))):
            with self._guard:
                if mine.is_set():
                    return True
                if time.monotonic() >= until:
                    self._line.remove(mine)
                    return False
                holder = self._holder
                if holder is not None and not holder.in_transaction:  # dropped, never ended
                    _log.warning("a write transaction's turn was never given back: taken back")
                    self._hand_over()
        return True

    def hold(self, raw) -> None:
        self._holder = raw

    def give_back(self, raw=None) -> None:
        """The turn ends (``raw``: only if that connection's transaction still holds it)."""
        with self._guard:
            if raw is None or raw is self._holder:
                self._hand_over()

    def _hand_over(self) -> None:
        self._holder = None
        if self._line:
            self._line.popleft().set()  # straight to the next in line (still taken)
        else:
            self._taken = False


_turns: dict[str, _WriterTurns] = {}
_turns_guard = threading.Lock()
_TURN = "claims_write_turn"  # in a connection's info while its transaction holds a turn


def _turns_of(conn) -> _WriterTurns:
    key = str(conn.engine.url.database)
    with _turns_guard:
        turns = _turns.get(key)
        if turns is None:
            turns = _turns[key] = _WriterTurns()
        return turns


def _begin_immediate(conn) -> None:
    """``BEGIN IMMEDIATE`` in this process's line of writers to the file (``_WriterTurns``):
    once it is this writer's turn it asks for the write lock every millisecond until
    ``BUSY_TIMEOUT_MS`` (from the first wait) have passed. (SQLite's own busy handler sleeps up
    to 100 ms between tries, the longer it has waited the longer it sleeps: whoever had waited
    longest asked least often.)"""
    raw = conn.connection.driver_connection
    turns = _turns_of(conn)
    start = time.monotonic()
    if not turns.take(BUSY_TIMEOUT_MS / 1000):
        raw.execute("PRAGMA busy_timeout=1")  # not in time: one more try, "database is locked"
        try:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        finally:
            raw.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        return
    began = False
    raw.execute(f"PRAGMA busy_timeout={EAGER_BUSY_MS}")
    try:
        while True:
            try:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
                began = True
                conn.info[_TURN] = turns
                turns.hold(raw)
                return
            except OperationalError as e:
                if "locked" not in str(e) or time.monotonic() - start > BUSY_TIMEOUT_MS / 1000:
                    raise
    finally:
        if not began:
            turns.give_back()
        raw.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")


def _end_turn(conn) -> None:
    """The transaction commits or rolls back: the next writer in line goes."""
    turns = conn.info.pop(_TURN, None)
    if turns is not None:
        turns.give_back(conn.connection.driver_connection)


@contextmanager
def write_session(engine: Engine) -> Iterator[Session]:
    """One write transaction: commits on success, rolls back on any exception."""
    with Session(engine, expire_on_commit=False) as session:
        with session.begin():
            yield session


@contextmanager
def read_session(engine: Engine) -> Iterator[Session]:
    """A read-only transaction (deferred BEGIN on SQLite: never waits for writers)."""
    ro = engine.execution_options(claims_readonly=True)
    with Session(ro, expire_on_commit=False) as session:
        yield session  # closing the session rolls the read transaction back


@contextmanager
def scratch_session(engine: Engine) -> Iterator[Session]:
    """A write transaction that is always rolled back: for previews ("what would this do?")."""
    with Session(engine, expire_on_commit=False) as session:
        session.begin()
        try:
            yield session
        finally:
            session.rollback()


def analyze(engine: Engine) -> None:
    """Refresh the query planner's statistics (after bulk changes: init, demo). Without
    them SQLite can't tell a rare filter from a common one and may read a whole index in order."""
    with engine.connect() as conn:
        conn.exec_driver_sql("ANALYZE")
        conn.commit()


def optimize(engine: Engine) -> None:
    """The periodic upkeep SQLite recommends for long-running apps (``PRAGMA optimize``: re-analyses
    only tables whose statistics have gone stale). PostgreSQL's autovacuum does this by itself."""
    if is_sqlite(engine):
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA optimize")
            conn.commit()
