"""`python -m claims_core`: every command, with bad input giving a clear message and exit code."""
import json
import os
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from claims_core import auth, cli, demo, migrate, services
from claims_core.db import make_engine

ROOT = Path(__file__).resolve().parents[1]
from .test_import import SAMPLE  # noqa: E402


def run(tmp_path, *args, stdin=""):
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}"}
    return subprocess.run([sys.executable, "-m", "claims_core", *args], cwd=ROOT, env=env,
                          input=stdin, capture_output=True, text=True, timeout=300)


@pytest.fixture
def cli_db(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("DATABASE_URL", url)
    assert cli.main(["init"]) == 0
    return url


def test_commands_need_a_schema(tmp_path):
    out = run(tmp_path, "stats")
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


def test_add_user_reads_password_from_stdin(tmp_path):
    assert run(tmp_path, "init").returncode == 0
    out = run(tmp_path, "add-user", "Alice", "--role", "agent", stdin="correct horse battery\n")
    assert out.returncode == 0, out.stderr
    assert "correct horse" not in out.stdout + out.stderr
    engine = make_engine(f"sqlite:///{tmp_path / 'cli.db'}")
    who = auth.authenticate(engine, "alice", "correct horse battery")
    assert who.role == "agent"
    with sqlite3.connect(tmp_path / "cli.db") as c:
        assert c.execute("select password_hash from staff_users").fetchone()[0].startswith("$argon2id$")
    dup = run(tmp_path, "add-user", "alice", "--role", "owner", stdin="another password\n")
    assert dup.returncode == 2 and "already exists" in dup.stderr
    short = run(tmp_path, "add-user", "bob", "--role", "owner", stdin="short\n")
    assert short.returncode == 2 and "at least" in short.stderr
    badrole = run(tmp_path, "add-user", "bob", "--role", "king", stdin="long enough pass\n")
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
    from .factories import claim_request, make_order
    stop = threading.Event()
    filed = []

    def writer():
        i = 0
        while not stop.is_set() and i < 40:
            built = make_order(engine, number=f"B{i}", email=f"b{i}@example.com",
                               tracking_prefix=f"BK{i}")
            req = claim_request(built, key=f"bk-{i}", issue="missing_item", photos=[],
                                signature="typed")
            filed.append(services.file_claim(engine, req).reference)
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
    with sqlite3.connect(dest) as c:
        assert c.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert c.execute("PRAGMA foreign_key_check").fetchall() == []
        n_claims, = c.execute("select count(*) from claims").fetchone()
        n_filed_events, = c.execute("select count(*) from events where action='claim_filed'").fetchone()
        assert n_claims == n_filed_events  # every claim in the copy has its event: consistent
        orphans = c.execute("select count(*) from claim_items ci left join claims c "
                            "on c.id = ci.claim_id where c.id is null").fetchone()[0]
        assert orphans == 0
    copy = make_engine(f"sqlite:///{dest}")
    assert migrate.is_up_to_date(copy)
    assert services.lookup_order(copy, demo.DEMO_ORDERS[0].number, demo.DEMO_ORDERS[0].email).claimable
