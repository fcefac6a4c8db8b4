"""`python -m claims_core`: every command, with bad input giving a clear message and exit code."""
import json
import os
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from sqlalchemy import text

from claims_core import cli
from claims_core.adapters import demo
from claims_core.infra import migrate
from claims_core.infra.db import make_engine
from claims_core.services import accounts, customer, order_views

ROOT = Path(__file__).resolve().parents[2]
from tests.adapters.test_import import SAMPLE  # noqa: E402


def run(url, *args, stdin=""):
    env = {**os.environ, "DATABASE_URL": url}
    return subprocess.run([sys.executable, "-m", "claims_core", *args], cwd=ROOT, env=env,
                          input=stdin, capture_output=True, text=True, timeout=300)


@pytest.fixture
def cli_db(fresh_db_url, monkeypatch):
    url = fresh_db_url
    monkeypatch.setenv("DATABASE_URL", url)
    assert cli.main(["init"]) == 0
    return url


def test_commands_need_a_schema(fresh_db_url):
    out = run(fresh_db_url, "stats")
    assert out.returncode == 2 and "init" in out.stderr


def test_import_orders_and_stats(tmp_path, cli_db, capsys):
    assert cli.main(["import-orders", str(SAMPLE)]) == 0
    assert cli.main(["import-orders", str(SAMPLE)]) == 0
    capsys.readouterr()
    assert cli.main(["stats"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["orders"] == 25 and stats["protected_orders"] == 17 and stats["line_items"] == 59


def test_import_bad_file_exits_2_and_writes_nothing(tmp_path, cli_db, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"%PDF-1.4\x00\x00binary")
    assert cli.main(["import-orders", str(bad)]) == 2
    assert "Nothing was imported" in capsys.readouterr().err
    assert cli.main(["import-orders", str(tmp_path / "missing.csv")]) == 2
    assert "No such file" in capsys.readouterr().err
    assert cli.collect_stats(make_engine(cli_db))["orders"] == 0


def test_import_with_bad_rows_exits_1_and_lists_them(tmp_path, cli_db, capsys):
    text = SAMPLE.read_text(encoding="utf-8").replace(",3,Trail Runner 2", ",three,Trail Runner 2")
    f = tmp_path / "rows.csv"
    f.write_text(text, encoding="utf-8")
    assert cli.main(["import-orders", str(f)]) == 1
    err = capsys.readouterr().err
    assert "line 2: Lineitem quantity “three” is not a whole number" in err
    assert "line 47: Lineitem quantity" in err  # #1020 has the same line
    assert cli.collect_stats(make_engine(cli_db))["orders"] == 23  # the two bad orders skipped


def test_import_shipments_and_stock(tmp_path, cli_db, capsys):
    assert cli.main(["import-orders", str(SAMPLE)]) == 0
    ships = tmp_path / "s.csv"
    ships.write_text("order,tracking_number,carrier,shipped_at,delivered_at,status,last_scan_at,"
                     "sku,quantity\n#1002,1Z1,UPS,2026-11-10 10:00,,in_transit,,TR2-NV-10,1\n")
    stock = tmp_path / "k.csv"
    stock.write_text("sku,on_hand\nTR2-NV-10,3\n")
    assert cli.main(["import-shipments", str(ships)]) == 0
    assert cli.main(["import-stock", str(stock)]) == 0
    assert cli.main(["import-stock", "--preview", str(stock)]) == 0
    assert cli.collect_stats(make_engine(cli_db))["stock_skus"] == 1


def test_add_user_reads_password_from_stdin(fresh_db_url):
    assert run(fresh_db_url, "init").returncode == 0
    out = run(fresh_db_url, "add-user", "Alice", "--role", "agent", stdin="correct horse battery\n")
    assert out.returncode == 0, out.stderr
    assert "correct horse" not in out.stdout + out.stderr
    engine = make_engine(fresh_db_url)
    who = accounts.authenticate(engine, "alice", "correct horse battery")
    assert who.role == "agent"
    from sqlalchemy import text
    with engine.connect() as c:
        assert c.execute(text("select password_hash from staff_users")).scalar_one().startswith("$argon2id$")
    engine.dispose()
    dup = run(fresh_db_url, "add-user", "alice", "--role", "owner", stdin="another password\n")
    assert dup.returncode == 2 and "already exists" in dup.stderr
    short = run(fresh_db_url, "add-user", "bob", "--role", "owner", stdin="short\n")
    assert short.returncode == 2 and "at least" in short.stderr
    badrole = run(fresh_db_url, "add-user", "bob", "--role", "king", stdin="long enough pass\n")
    assert badrole.returncode == 2


def test_password_is_never_an_argument():
    parser = cli.build_parser()
    with pytest.raises(SystemExit):
        parser.parse_args(["add-user", "x", "--role", "agent", "--password", "secret123456"])


def test_demo_then_backup_while_filing(tmp_path, cli_db, capsys):
    engine = make_engine(cli_db)
    out = demo.generate(engine, orders=120, log=lambda *_: None)
    assert out["claims"] > 5 and set(out["logins"]) == {"owner", "jordan", "riley"}
    assert cli.main(["demo"]) == 2  # refuses to mix with existing data
    assert cli.main(["demo", "--if-empty"]) == 0

    # File claims on the demo orders while the backup runs.
    from tests.support.factories import claim_request, make_order
    stop = threading.Event()
    filed = []

    def writer():
        i = 0
        while not stop.is_set() and i < 40:
            built = make_order(engine, number=f"B{i}", email=f"b{i}@example.com",
                               tracking_prefix=f"BK{i}")
            req = claim_request(built, key=f"bk-{i}", issue="missing_item", photos=[],
                                signature="typed")
            filed.append(customer.file_claim(engine, req).reference)
            i += 1

    t = threading.Thread(target=writer)
    t.start()
    dest = tmp_path / "backups" / "copy.db"
    try:
        assert cli.main(["backup", str(dest)]) == 0
    finally:
        stop.set()
        t.join()
    assert cli.main(["backup", str(dest)]) == 2  # won't overwrite without --force
    if dest.stat().st_size and cli_db.startswith("sqlite"):
        copy_url = f"sqlite:///{dest}"
        with sqlite3.connect(dest) as c:
            assert c.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            assert c.execute("PRAGMA foreign_key_check").fetchall() == []
    else:
        copy_url = _restore_pg(dest, cli_db)
    copy = make_engine(copy_url)
    with copy.connect() as c:
        n_claims = c.execute(text("select count(*) from claims")).scalar_one()
        n_filed = c.execute(text("select count(*) from events where action='claim_filed'")).scalar_one()
        assert n_claims == n_filed > 0  # every claim in the copy has its event: consistent
        orphans = c.execute(text("select count(*) from claim_items ci left join claims c "
                                 "on c.id = ci.claim_id where c.id is null")).scalar_one()
        assert orphans == 0
    assert migrate.is_up_to_date(copy)
    assert order_views._lookup_order(copy, demo.DEMO_ORDERS[0].number, demo.DEMO_ORDERS[0].email).claimable
    copy.dispose()


def _restore_pg(dump, scoped_url: str) -> str:
    """Restore a pg_dump into a new database and return a URL to the test's schema in it."""
    import uuid
    from urllib.parse import parse_qs, urlsplit

    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url
    base = make_url(scoped_url)
    schema = parse_qs(urlsplit(scoped_url).query)["options"][0].split("=")[-1]
    name = "restore_" + uuid.uuid4().hex[:8]
    admin = create_engine(base.set(query={}), isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    target = base.set(drivername="postgresql", database=name, query={})
    out = subprocess.run(["pg_restore", "--no-owner", f"--dbname={target.render_as_string(hide_password=False)}",
                          str(dump)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return base.set(database=name).render_as_string(hide_password=False).split("?")[0] + \
        f"?options=-csearch_path%3D{schema}"


def test_fill_makes_bulk_claims_with_decisions_and_reports_progress(cli_db, capsys):
    assert cli.main(["fill", "--claims", "60"]) == 0
    out = capsys.readouterr().out
    assert "60 / 60 claims" in out and "Done in" in out
    engine = make_engine(cli_db)
    with engine.connect() as c:
        claims = c.execute(text("SELECT count(*) FROM claims")).scalar_one()
        decided = c.execute(text("SELECT count(*) FROM claims WHERE status IN "
                                 "('approved', 'resolved', 'denied')")).scalar_one()
        decisions = c.execute(text("SELECT count(*) FROM decisions")).scalar_one()
        granted = c.execute(text("SELECT count(*) FROM claims WHERE status IN "
                                 "('approved', 'resolved')")).scalar_one()
        resolutions = c.execute(text("SELECT count(*) FROM resolutions")).scalar_one()
        regions = c.execute(text("SELECT count(DISTINCT shipping_country) FROM orders")).scalar_one()
    engine.dispose()
    assert (claims, decisions, resolutions) == (60, decided, granted) and regions > 1
    assert cli.main(["fill", "--claims", "0"]) == 2
    # the bulk rows went in without the ORM: fill rebuilt the analytics roll-ups from them
    capsys.readouterr()
    assert cli.main(["rollups", "--check"]) == 0
    assert "Every figure matches the rows" in capsys.readouterr().out


def test_rollups_check_finds_a_drifted_figure_and_rebuild_mends_it(cli_db, capsys):
    assert cli.main(["fill", "--claims", "30"]) == 0
    engine = make_engine(cli_db)
    with engine.begin() as c:  # behind the ORM's back: the roll-ups can't know
        c.execute(text("UPDATE claims SET issue_type = 'stolen' WHERE issue_type <> 'stolen'"))
    engine.dispose()
    capsys.readouterr()
    assert cli.main(["rollups"]) == 1
    assert "differ" in capsys.readouterr().out
    assert cli.main(["rollups", "--rebuild"]) == 0
    assert "Rebuilt in" in capsys.readouterr().out
    assert cli.main(["rollups", "--check"]) == 0
