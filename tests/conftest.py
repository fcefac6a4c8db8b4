"""Test fixtures: a fresh migrated database per test (SQLite by default, DATABASE_URL if set)."""
from __future__ import annotations

import os
import shutil
import sqlite3
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import text

from claims_core.db import make_engine, write_session
from claims_core.migrate import upgrade
from claims_core.services import ensure_settings

NOW = datetime(2026, 11, 21, 15, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory):
    path = tmp_path_factory.mktemp("template") / "template.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    with write_session(engine) as s:
        ensure_settings(s)
    engine.dispose()
    con = sqlite3.connect(path)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    return path


@pytest.fixture
def db_url(tmp_path, sqlite_template):
    url = os.environ.get("TEST_DATABASE_URL")
    if url:  # PostgreSQL: one fresh schema per test
        import uuid
        from sqlalchemy import create_engine
        schema = "t_" + uuid.uuid4().hex[:12]
        admin = create_engine(url)
        with admin.begin() as c:
            c.execute(text(f'CREATE SCHEMA "{schema}"'))
        sep = "&" if "?" in url else "?"
        scoped = f"{url}{sep}options=-csearch_path%3D{schema}"
        eng = make_engine(scoped)
        upgrade(eng)
        with write_session(eng) as s:
            ensure_settings(s)
        eng.dispose()
        yield scoped
        with admin.begin() as c:
            c.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
        return
    path = tmp_path / "claims.db"
    shutil.copy(sqlite_template, path)
    yield f"sqlite:///{path}"


@pytest.fixture
def engine(db_url):
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def now():
    return NOW
