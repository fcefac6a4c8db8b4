"""#23: a process's writers to one SQLite file take SQLite's write lock in the order they asked
for it (``infra/db._WriterTurns``), a turn whose transaction was dropped without a commit or a
rollback is taken back, and the web process settles its heap at start (``jobs.settle_heap``)."""
from __future__ import annotations

import asyncio
import gc
import threading
import time

import pytest
from sqlalchemy import text

from claims_core.adapters import jobs
from claims_core.infra.db import write_session

from tests.conftest import ON_POSTGRES

sqlite_only = pytest.mark.skipif(ON_POSTGRES, reason="SQLite's one write lock per file")


@sqlite_only
def test_writers_of_a_process_get_the_write_lock_in_the_order_they_asked(engine):
    """One writer holds the lock 300 ms; six more ask for it 20 ms apart. They get it in that
    order. (SQLite's own busy handler, or everyone asking every few ms, serves whoever asks at
    the right moment: any of the 720 orders.)"""
    held = threading.Event()
    got: list[int] = []
    guard = threading.Lock()

    def first():
        with write_session(engine) as s:
            s.execute(text("SELECT 1"))
            held.set()
            time.sleep(0.3)

    def writer(n: int):
        with write_session(engine) as s:
            s.execute(text("SELECT 1"))
            with guard:
                got.append(n)
            time.sleep(0.01)  # holds it a moment, as a real transaction does

    threads = [threading.Thread(target=first)]
    threads[0].start()
    assert held.wait(5)
    for n in range(6):
        t = threading.Thread(target=writer, args=(n,))
        t.start()
        threads.append(t)
        time.sleep(0.02)
    for t in threads:
        t.join(10)
    assert got == list(range(6))


@sqlite_only
def test_a_turn_dropped_mid_transaction_is_taken_back(engine):
    """A transaction ended behind SQLAlchemy's back (its connection rolled back by the driver:
    no commit or rollback event gives the turn back): the next writer still gets in, within
    about a second, instead of waiting for ever."""
    conn = engine.connect()
    conn.begin()
    conn.execute(text("SELECT 1"))  # BEGIN IMMEDIATE: this connection has the turn
    conn.connection.driver_connection.rollback()  # ended without an event
    t0 = time.perf_counter()
    with write_session(engine) as s:
        s.execute(text("SELECT 1"))
    assert time.perf_counter() - t0 < 3
    conn.rollback()  # (gives back nothing: the turn is no longer this connection's)
    conn.close()
    with write_session(engine) as s:  # and the line goes on as before
        s.execute(text("SELECT 1"))


@sqlite_only
def test_two_files_have_lines_of_their_own(engine, tmp_path):
    """A write to another file (the webhook spool) while a write to this one is held: no wait."""
    from claims_core.infra.db import make_engine
    other = make_engine(f"sqlite:///{tmp_path / 'other.db'}")
    try:
        with write_session(engine) as s:
            s.execute(text("SELECT 1"))
            t0 = time.perf_counter()
            with write_session(other) as o:
                o.execute(text("CREATE TABLE IF NOT EXISTS t (x INTEGER)"))
            assert time.perf_counter() - t0 < 1
    finally:
        other.dispose()


def test_the_web_process_settles_its_heap_at_start(monkeypatch):
    """``st.App``'s lifespan puts what is alive at start out of the full collections' sight."""
    monkeypatch.setenv("CLAIMS_BACKGROUND", "off")
    gc.unfreeze()
    assert gc.get_freeze_count() == 0

    async def start_and_stop():
        async with jobs.lifespan():
            return gc.get_freeze_count()
    frozen: list[int] = []
    # in a thread of its own: an earlier test (a browser's) may have left this one's loop running
    t = threading.Thread(target=lambda: frozen.append(asyncio.run(start_and_stop())))
    try:
        t.start()
        t.join(30)
        assert frozen and frozen[0] > 1000
    finally:
        gc.unfreeze()
