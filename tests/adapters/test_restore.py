"""``python -m claims_core restore FILE``: a SQLite backup put back, round trip with ``backup``.
The file is checked first (SQLite, intact, this app's, a known schema revision), the current
database is kept as a safety copy, a database still in use is refused, and the schema is brought
up to date."""
from __future__ import annotations

import gc
import sqlite3

import pytest
from sqlalchemy import select

from claims_core import cli
from claims_core.infra import migrate
from claims_core.infra.db import make_engine, read_session
from claims_core.infra.models import StaffUser
from claims_core.services import accounts

from tests.conftest import ON_POSTGRES

pytestmark = pytest.mark.skipif(ON_POSTGRES, reason="restore is for SQLite (PostgreSQL: pg_restore)")


@pytest.fixture
def db(tmp_path, monkeypatch):
    path = tmp_path / "data" / "claims.db"
    url = f"sqlite:///{path}"
    monkeypatch.setenv("DATABASE_URL", url)
    assert cli.main(["init"]) == 0
    return url, path


def stop_the_app():
    """The commands run here in this test's process leave their engines to the garbage collector;
    collected, their connections close, as when the app's process ends."""
    gc.collect()


def users(url) -> set[str]:
    engine = make_engine(url)
    try:
        with read_session(engine) as s:
            return set(s.scalars(select(StaffUser.username)))
    finally:
        engine.dispose()


def test_backup_then_restore_round_trip(tmp_path, db, capsys):
    url, path = db
    engine = make_engine(url)
    accounts.add_user(engine, "before", "owner", "a long password")
    backup = tmp_path / "backups" / "monday.db"
    assert cli.main(["backup", str(backup)]) == 0
    accounts.add_user(engine, "after", "agent", "another long password")  # after the backup
    engine.dispose()  # the app is stopped
    stop_the_app()
    capsys.readouterr()

    assert cli.main(["restore", str(backup), "--yes"]) == 0
    out = capsys.readouterr().out
    assert users(url) == {"before"}
    with sqlite3.connect(path) as c:
        assert c.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert migrate.current_revision(make_engine(url)) == migrate.head_revision()
    # the database it replaced is kept, whole
    [safety] = path.parent.glob("claims.before-restore-*.db")
    assert str(safety) in out
    assert users(f"sqlite:///{safety}") == {"before", "after"}
    assert not list(path.parent.glob(".restore-*"))  # no staging file left behind
    # the backup file itself was only read
    assert users(f"sqlite:///{backup}") == {"before"}
    # and the app works on it: a log-in
    assert accounts.authenticate(make_engine(url), "before", "a long password").username == "before"


def test_an_older_backup_is_migrated_to_the_current_schema(tmp_path, db):
    url, path = db
    old = tmp_path / "old.db"
    old_engine = make_engine(f"sqlite:///{old}")
    migrate.upgrade(old_engine, "0015")
    old_engine.dispose()
    stop_the_app()
    assert cli.main(["restore", str(old), "--yes"]) == 0
    assert migrate.current_revision(make_engine(url)) == migrate.head_revision()


def _unchanged(url, path, before: bytes):
    assert path.read_bytes() == before
    assert not list(path.parent.glob("*.before-restore-*"))


@pytest.mark.parametrize("kind", ["text", "foreign sqlite", "unknown revision", "damaged"])
def test_files_that_are_not_a_backup_of_this_app_are_refused(tmp_path, db, capsys, kind):
    url, path = db
    engine = make_engine(url)
    accounts.add_user(engine, "keep", "owner", "a long password")
    engine.dispose()
    con = sqlite3.connect(path)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    before = path.read_bytes()
    bad = tmp_path / "bad.db"
    if kind == "text":
        bad.write_text("id,name\n1,not a database\n")
    elif kind == "foreign sqlite":
        with sqlite3.connect(bad) as c:
            c.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
    elif kind == "unknown revision":
        assert cli.main(["backup", str(bad)]) == 0
        with sqlite3.connect(bad) as c:
            c.execute("UPDATE alembic_version SET version_num = '9999_from_the_future'")
    elif kind == "damaged":
        assert cli.main(["backup", str(bad)]) == 0
        data = bytearray(bad.read_bytes())
        page = 4096
        for i in range(page * 3, min(len(data), page * 6)):  # scribble over a few pages
            data[i] = (i * 7) & 0xFF
        bad.write_bytes(bytes(data))
    stop_the_app()
    capsys.readouterr()
    assert cli.main(["restore", str(bad), "--yes"]) == 2
    err = capsys.readouterr().err
    assert "Nothing was changed" in err
    _unchanged(url, path, before)
    assert users(url) == {"keep"}


def test_a_database_in_use_is_not_replaced(tmp_path, db, capsys):
    url, path = db
    backup = tmp_path / "b.db"
    assert cli.main(["backup", str(backup)]) == 0
    stop_the_app()
    running = make_engine(url)  # the app, still running, holding a connection
    with running.connect() as conn:
        conn.exec_driver_sql("SELECT count(*) FROM claims").fetchone()
        capsys.readouterr()
        assert cli.main(["restore", str(backup), "--yes"]) == 2
        assert "stop the app" in capsys.readouterr().err
    running.dispose()
    stop_the_app()
    assert not list(path.parent.glob("*.before-restore-*"))
    assert cli.main(["restore", str(backup), "--yes"]) == 0  # once stopped


def test_restore_asks_first(tmp_path, db, capsys, monkeypatch):
    url, path = db
    backup = tmp_path / "b.db"
    assert cli.main(["backup", str(backup)]) == 0
    stop_the_app()
    capsys.readouterr()
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    assert cli.main(["restore", str(backup)]) == 2  # no terminal to ask in, and no --yes
    assert "--yes" in capsys.readouterr().err
    assert cli.main(["restore", str(tmp_path / "missing.db"), "--yes"]) == 2
    assert cli.main(["restore", str(path), "--yes"]) == 2  # the current database itself
