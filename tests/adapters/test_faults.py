"""Faults get a friendly page, and nothing is lost: each fault a shop's server can hit, made for
real where a test can make it, and the words ``views/faults.py`` shows for it (``on_script_error``
of the ``st.App`` calls it instead of Streamlit's traceback page)."""
from __future__ import annotations

import errno
import shutil
import sqlite3
import threading

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from streamlit.testing.v1 import AppTest

from claims_core.infra.db import make_engine, read_session, write_session
from claims_core.services import customer, order_views
from views import faults

from tests.conftest import NOW, ON_POSTGRES
from tests.support.factories import claim_request, make_order

sqlite_only = pytest.mark.skipif(ON_POSTGRES, reason="makes SQLite's own faults (lock, read-only)")


@sqlite_only
def test_a_lock_held_past_the_busy_timeout_says_busy(db_url, monkeypatch):
    from claims_core.infra import db

    monkeypatch.setattr(db, "BUSY_TIMEOUT_MS", 200)
    path = db_url.removeprefix("sqlite:///")
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another writer holds the database
    engine = make_engine(db_url)
    try:
        with pytest.raises(OperationalError) as e:
            with write_session(engine) as s:
                s.execute(text("UPDATE store_settings SET name = 'x'"))
        assert faults.explain(e.value) == faults.BUSY
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        engine.dispose()


@sqlite_only
def test_a_read_only_database_still_serves_reads_and_says_it_cannot_save(db_url, tmp_path):
    built_engine = make_engine(db_url)
    built = make_order(built_engine)
    built_engine.dispose()
    copy = tmp_path / "readonly.db"
    shutil.copy(db_url.removeprefix("sqlite:///"), copy)
    engine = make_engine(f"sqlite:///file:{copy}?mode=ro&uri=true")
    try:
        view = order_views._lookup_order(engine, built.number, built.email, now=NOW)  # a read page
        assert view.name == f"#{built.number}"
        with pytest.raises(OperationalError) as e:  # filing writes
            customer.file_claim(engine, claim_request(built), now=NOW)
        assert faults.explain(e.value) == faults.CANNOT_SAVE
    finally:
        engine.dispose()


def test_a_full_disk_says_it_cannot_save():
    full = OperationalError("INSERT …", {}, sqlite3.OperationalError("database or disk is full"))
    assert faults.explain(full) == faults.CANNOT_SAVE
    assert faults.explain(OSError(errno.ENOSPC, "No space left on device")) == faults.CANNOT_SAVE


def test_an_unreachable_database_and_anything_else():
    gone = OperationalError("SELECT 1", {}, Exception("connection to server failed: refused"))
    assert faults.explain(gone) == faults.UNREACHABLE
    assert faults.explain(ZeroDivisionError()) == faults.GENERIC


def test_the_fault_page_shows_words_not_a_traceback():
    def page():
        import sqlite3

        from sqlalchemy.exc import OperationalError

        from views import faults
        shown = faults.on_script_error(
            OperationalError("UPDATE", {}, sqlite3.OperationalError("database is locked")))
        assert shown is True  # Streamlit's own exception display is suppressed

    at = AppTest.from_function(page).run()
    assert not at.exception
    assert [e.value for e in at.error] == [faults.BUSY]


def test_concurrent_readers_never_wait_for_a_writer(engine):
    """Read pages use a deferred BEGIN: a held write lock doesn't slow them down (WAL)."""
    if ON_POSTGRES:
        pytest.skip("SQLite's locking")
    started, done = threading.Event(), threading.Event()

    def hold():
        with write_session(engine) as s:
            s.execute(text("UPDATE store_settings SET name = name"))
            started.set()
            done.wait(5)

    t = threading.Thread(target=hold)
    t.start()
    started.wait(5)
    try:
        with read_session(engine) as s:
            assert s.execute(text("SELECT count(*) FROM store_settings")).scalar() == 1
    finally:
        done.set()
        t.join()
