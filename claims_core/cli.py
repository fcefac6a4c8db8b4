"""``python -m claims_core`` — set up, fill, import, add staff, back up, count.

Exit codes: 0 done; 1 done but some rows were skipped (listed); 2 nothing done (the message says why).
"""
from __future__ import annotations

import argparse
import getpass
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.engine import make_url

import httpx

from .adapters import bulk, demo, demo_tracking
from .services import analytics_rows, api_keys, recoveries
from .adapters.importer import ImportFileError, ImportReport, import_orders, import_shipments, import_stock
from .adapters.mailer import smtp_from_env
from .adapters.scheduler import tick
from .domain.errors import AuthError, ClaimRuleError
from .domain.vocabulary import STATUSES
from .domain.windows import format_moment
from .infra import config, migrate, rollups
from .infra.db import analyze, is_sqlite, make_engine, read_session, write_session
from .infra.models import (ensure_settings_row, Claim, ClaimItem, Event, Evidence, LineItem, Message, Order, Resolution,
                     Shipment, ShipmentItem, StaffUser, Stock)
from .services.accounts import add_user
from .services.settings import load_settings


class CliError(Exception):
    pass


def _engine():
    return make_engine()


def cmd_init(args) -> int:
    engine = _engine()
    before = migrate.current_revision(engine)
    migrate.upgrade(engine)
    with write_session(engine) as s:
        ensure_settings_row(s)
    analyze(engine)
    after = migrate.current_revision(engine)
    where = engine.url.render_as_string(hide_password=True)
    if before == after:
        print(f"Database {where} is up to date (revision {after}).")
    else:
        print(f"Database {where} upgraded from {before or 'empty'} to revision {after}.")
    return 0


def cmd_demo(args) -> int:
    engine = _engine()
    if args.reset:
        _reset(engine)
    migrate.upgrade(engine)
    if demo.has_data(engine):
        if args.if_empty:
            print("The database already has data; demo data not added.")
            return 0
        raise CliError("The database already has orders. Use --reset to replace everything "
                       "with demo data, or --if-empty to keep it.")
    print("Generating demo data (takes a few seconds)…")
    out = demo.generate(engine, orders=args.orders)
    analyze(engine)
    print(f"Demo store ready: {out['orders']} orders, {out['claims']} claims.")
    print("Demo orders to try on the portal (order number + email):")
    for d in demo.DEMO_ORDERS:
        print(f"  #{d.number}  {d.email}  — {d.what}")
    if out["logins"]:
        print("\nStaff logins (shown only this once; add your own with `add-user`):")
        for user, (role, password) in out["logins"].items():
            print(f"  {user:8s} ({role:7s})  password: {password}")
    return 0


def _reset(engine) -> None:
    if is_sqlite(engine):
        engine.dispose()
        db = make_url(str(engine.url)).database
        for suffix in ("", "-wal", "-shm"):
            p = Path(db + suffix)
            if p.exists():
                p.unlink()
    else:
        from sqlalchemy import text
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))


def _print_report(report: ImportReport) -> int:
    print(report.summary())
    for note in report.notes:
        print("  " + note)
    for err in report.skipped_rows:
        print(f"  skipped {err}", file=sys.stderr)
    return 0 if report.ok else 1


def _read_file(path: str) -> bytes:
    p = Path(path)
    if not p.is_file():
        raise CliError(f"No such file: {path}")
    return p.read_bytes()


def _import(fn, args) -> int:
    engine = _engine()
    _require_schema(engine)
    try:
        report = fn(engine, _read_file(args.file), preview=args.preview)
    except ImportFileError as e:
        raise CliError(f"{args.file}: {e.message} Nothing was imported.")
    return _print_report(report)


def _require_schema(engine) -> None:
    if not migrate.is_up_to_date(engine):
        raise CliError("The database isn't set up (or is out of date). Run "
                       "`python -m claims_core init` first.")


def cmd_add_user(args) -> int:
    engine = _engine()
    _require_schema(engine)
    if sys.stdin.isatty():
        password = getpass.getpass(f"Password for {args.name}: ")
        if getpass.getpass("Repeat it: ") != password:
            raise CliError("The two passwords differ. Nothing was changed.")
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    try:
        user = add_user(engine, args.name, args.role, password, args.display_name or "")
    except AuthError as e:
        raise CliError(e.message)
    print(f"Added {user.username} ({user.role}).")
    return 0


def cmd_backup(args) -> int:
    engine = _engine()
    dest = Path(args.dest)
    if dest.exists() and not args.force:
        raise CliError(f"{dest} already exists. Choose another name or pass --force.")
    dest.parent.mkdir(parents=True, exist_ok=True)
    if is_sqlite(engine):
        src_path = make_url(str(engine.url)).database
        if not src_path or not Path(src_path).exists():
            raise CliError("There is no database to back up yet.")
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".backup-", suffix=".db")
        os.close(fd)
        try:
            # SQLite's online backup API: a consistent snapshot while the app keeps writing.
            src = sqlite3.connect(src_path, timeout=30)
            dst = sqlite3.connect(tmp)
            with dst:
                src.backup(dst)
            dst.execute("PRAGMA integrity_check")
            dst.close()
            src.close()
            os.replace(tmp, dest)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    else:
        if shutil.which("pg_dump") is None:
            raise CliError("pg_dump is needed to back up PostgreSQL; install postgresql-client.")
        url = engine.url.set(drivername="postgresql")
        env = {**os.environ}
        if url.password:  # through the environment, never on the command line (ps would show it)
            env["PGPASSWORD"] = str(url.password)
            url = url.set(password=None)
        result = subprocess.run(
            ["pg_dump", "--format=custom", f"--file={dest}", url.render_as_string(hide_password=False)],
            capture_output=True, text=True, env=env,
        )
        if result.returncode != 0:
            raise CliError(f"pg_dump failed: {result.stderr.strip()}")
    print(f"Backup written to {dest} ({dest.stat().st_size:,} bytes).")
    return 0


APP_TABLES = ("alembic_version", "store_settings", "orders", "claims", "events")


def _known_revision(revision: str) -> bool:
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError
    try:
        return ScriptDirectory.from_config(migrate.alembic_config()).get_revision(revision) is not None
    except CommandError:
        return False


def _check_backup_file(path: Path) -> str:
    """The schema revision of a SQLite backup of this app, or a CliError saying what it is not."""
    with open(path, "rb") as f:
        if f.read(16) != b"SQLite format 3\x00":
            raise CliError(f"{path} is not a SQLite database. Nothing was changed.")
    conn = sqlite3.connect(path)
    try:
        problems = [r[0] for r in conn.execute("PRAGMA integrity_check")]
        if problems != ["ok"]:
            raise CliError(f"{path} is damaged (integrity check: {'; '.join(problems[:5])}). "
                           "Nothing was changed.")
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        missing = [t for t in APP_TABLES if t not in tables]
        if missing:
            raise CliError(f"{path} is not a database of this app (no {', '.join(missing)} "
                           "table). Nothing was changed.")
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.DatabaseError as e:
        raise CliError(f"{path} can't be read as a database ({e}). Nothing was changed.")
    finally:
        conn.close()
    revision = row[0] if row else None
    if not revision or not _known_revision(revision):
        raise CliError(f"{path} was made by another version of this app (schema revision "
                       f"{revision or 'none'} is unknown here): update the app first. "
                       "Nothing was changed.")
    return revision


def cmd_restore(args) -> int:
    """Put a SQLite backup back in place of the current database: the file is checked first
    (a SQLite database of this app, intact, a schema revision this version knows), the current
    database is kept as a safety copy beside it, the app must be stopped (no other connection
    may be open), and the schema is brought up to date afterwards."""
    engine = _engine()
    if not is_sqlite(engine):
        raise CliError("restore is for SQLite. For PostgreSQL, stop the app and run "
                       "pg_restore --clean --if-exists --dbname=DATABASE_URL FILE (see the README).")
    src = Path(args.file)
    if not src.is_file():
        raise CliError(f"{src} doesn't exist. Nothing was changed.")
    db_path = Path(make_url(str(engine.url)).database or "")
    engine.dispose()
    if not str(db_path) or str(db_path) == ":memory:":
        raise CliError("The database is not a file; nothing to restore into.")
    if db_path.exists() and src.resolve() == db_path.resolve():
        raise CliError(f"{src} is the current database itself. Nothing was changed.")
    db_path.parent.mkdir(parents=True, exist_ok=True)
    # A private copy of the backup first (through SQLite, so a backup still in WAL mode comes
    # whole and the file given is never written to); everything is checked on the copy.
    fd, staged = tempfile.mkstemp(dir=db_path.parent, prefix=".restore-", suffix=".db")
    os.close(fd)
    try:
        reader = sqlite3.connect(f"{src.resolve().as_uri()}?mode=ro", uri=True)
        writer = sqlite3.connect(staged)
        try:
            with writer:
                reader.backup(writer)
            writer.execute("PRAGMA journal_mode=DELETE")
        except sqlite3.DatabaseError as e:
            raise CliError(f"{src} can't be read as a database ({e}). Nothing was changed.")
        finally:
            writer.close()
            reader.close()
        revision = _check_backup_file(Path(staged))
        if not args.yes:
            if not sys.stdin.isatty():
                raise CliError("restore replaces the current database: pass --yes to confirm. "
                               "Nothing was changed.")
            answer = input(f"Replace {db_path} with {src}? The current one is kept as a copy. "
                           "Type yes to go on: ")
            if answer.strip().lower() != "yes":
                raise CliError("Nothing was changed.")
        safety = None
        if db_path.exists():
            current = sqlite3.connect(db_path, timeout=1)
            try:
                # Out of WAL mode only works for the only connection: the app must be stopped.
                mode = current.execute("PRAGMA journal_mode=DELETE").fetchone()[0]
            except sqlite3.OperationalError:
                mode = "busy"
            if mode != "delete":
                current.close()
                raise CliError(f"{db_path} is in use: stop the app (and the worker, and any tick "
                               "job) first, then run restore again. Nothing was changed.")
            stamp = time.strftime("%Y%m%d-%H%M%S")
            safety = db_path.with_name(f"{db_path.stem}.before-restore-{stamp}{db_path.suffix}")
            keep = sqlite3.connect(safety)
            with keep:
                current.backup(keep)
            keep.close()
            current.close()
        for extra in ("-wal", "-shm", "-journal"):  # nothing of the old file may be replayed
            Path(f"{db_path}{extra}").unlink(missing_ok=True)
        os.replace(staged, db_path)
    finally:
        if os.path.exists(staged):
            os.unlink(staged)
    engine = _engine()
    migrate.upgrade(engine)
    after = migrate.current_revision(engine)
    engine.dispose()
    print(f"Restored {db_path} from {src} (schema revision {revision}"
          + (f", upgraded to {after}" if after != revision else "") + ").")
    if safety is not None:
        print(f"The database it replaced is kept as {safety}.")
    print("Start the app again.")
    return 0


def collect_stats(engine) -> dict:
    with read_session(engine) as s:
        count = lambda model: s.scalar(select(func.count()).select_from(model)) or 0  # noqa: E731
        by_status = dict(s.execute(select(Claim.status, func.count()).group_by(Claim.status)).all())
        return {
            "orders": count(Order),
            "protected_orders": s.scalar(select(func.count()).select_from(Order)
                                         .where(Order.protection_purchased_at.is_not(None))) or 0,
            "line_items": count(LineItem),
            "shipments": count(Shipment),
            "shipment_items": count(ShipmentItem),
            "stock_skus": count(Stock),
            "claims": count(Claim),
            "claims_by_status": {st: by_status.get(st, 0) for st in STATUSES},
            "claim_items": count(ClaimItem),
            "photos": count(Evidence),
            "messages": count(Message),
            "resolutions": count(Resolution),
            "events": count(Event),
            "staff_users": count(StaffUser),
            "recoveries": recoveries.stats(engine),  # carrier claims by state, money recovered
        }


def cmd_stats(args) -> int:
    engine = _engine()
    _require_schema(engine)
    print(json.dumps(collect_stats(engine), indent=2))
    return 0


def cmd_tick(args) -> int:
    engine = _engine()
    _require_schema(engine)
    report = tick(engine, smtp=smtp_from_env())
    print(json.dumps({"reminded": report.reminded, "closed": report.closed,
                      "digests": report.digests, "drafts_purged": report.drafts_purged,
                      "mail": report.mail, "shopify": report.shopify,
                      "webhooks": report.webhooks, "failed": report.failed}))
    return 1 if report.failed else 0


def cmd_worker(args) -> int:
    """The background jobs in the foreground, each on its cadence, until Ctrl-C or SIGTERM."""
    import signal
    import threading

    from .adapters import jobs

    engine = _engine()
    _require_schema(engine)
    stop = threading.Event()

    def _stop(signum, _frame):
        print(f"stopping (signal {signum}): finishing what is being sent", file=sys.stderr, flush=True)
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    print("worker: " + ", ".join(f"{j.name} every {j.every:g} s" for j in jobs.JOBS)
          + " (Ctrl-C to stop)", flush=True)
    jobs.work_until_stopped(engine, stop)
    print("worker stopped", flush=True)
    return 0


def cmd_simulate_tracking(args) -> int:
    engine = _engine()
    _require_schema(engine)
    key = config.secret("TRACK17_WEBHOOK_KEY")
    if not key:
        raise CliError("Set TRACK17_WEBHOOK_KEY (the same value for the app and for this command), "
                       "e.g. export TRACK17_WEBHOOK_KEY=demo-key, and restart the app.")
    try:
        moved = demo_tracking.simulate(engine, args.url, key, count=args.count, rounds=args.rounds,
                                       interval=args.interval)
    except httpx.HTTPError as e:
        raise CliError(f"Couldn't reach the app at {args.url} ({e}). Is it running?")
    for m in moved:
        print(f"  {m.tracking_number:24s} → {m.milestone:18s} HTTP {m.status_code}")
    refused = [m for m in moved if m.status_code != 200]
    if refused:
        raise CliError(f"{len(refused)} events were refused (HTTP {refused[0].status_code}); "
                       "is TRACK17_WEBHOOK_KEY the same for the app?")
    print(f"{len(moved)} carrier events posted to {args.url.rstrip('/')}/webhooks/17track.")
    return 0


def cmd_fill(args) -> int:
    """Bulk scale data (the benchmark's): N claims, each on its own order, with progress."""
    if args.claims < 1:
        raise CliError("--claims is at least 1.")
    engine = _engine()
    started = time.perf_counter()

    def progress(done: int, total: int) -> None:
        rate = done / max(time.perf_counter() - started, 1e-6)
        print(f"  {done:>10,} / {total:,} claims  ({rate:,.0f}/s)", flush=True)

    print(f"Filling {args.claims:,} claims into {engine.url.render_as_string(hide_password=True)}…")
    bulk.fill(engine, args.claims, seed=args.seed, progress=progress)
    print(f"Done in {time.perf_counter() - started:.1f} s.")
    return 0


def cmd_rollups(args) -> int:
    """Recompute the analytics roll-ups from the rows, or compare every figure both ways."""
    engine = _engine()
    _require_schema(engine)
    if args.rebuild:
        started = time.perf_counter()
        counts = rollups.rebuild(engine)
        print(f"Rebuilt in {time.perf_counter() - started:.1f} s: "
              + ", ".join(f"{name} {n:,} rows" for name, n in counts.items()))
        return 0
    started = time.perf_counter()
    problems = analytics_rows.differences(engine)
    for p in problems:
        print(p)
    print(f"{'Every figure matches the rows' if not problems else f'{len(problems)} figures differ'}"
          f" ({time.perf_counter() - started:.1f} s).")
    return 1 if problems else 0


def cmd_catalogs(args) -> int:
    """The translation catalogs: extract the messages and merge them into each language, or
    check that every language has every message (no fuzzy, same placeholders)."""
    from .infra import catalogs  # noqa: PLC0415 - Babel's extractor only for this command
    if args.action == "update":
        for lang, missing in catalogs.update().items():
            print(f"{lang}: {missing} messages to translate")
        return 0
    problems = catalogs.problems()
    for p in problems:
        print(p)
    print("Every catalog is complete." if not problems else f"{len(problems)} problems.")
    return 1 if problems else 0


def cmd_api_key(args) -> int:
    engine = _engine()
    _require_schema(engine)
    if args.action == "create":
        try:
            view, raw = api_keys.create_key(engine, args.name or "", args.scope, "cli")
        except ClaimRuleError as e:
            raise CliError(e.message)
        print(f"API key {view.prefix} ({view.scope}) for “{view.name}”. Copy it now; it is not "
              "shown again:")
        print(raw)
        return 0
    if args.action == "revoke":
        match = [k for k in api_keys.list_keys(engine) if k.prefix == args.prefix]
        if not match:
            raise CliError(f"No key {args.prefix}. `api-key list` shows them.")
        api_keys.revoke(engine, match[0].id, "cli")
        print(f"Revoked {args.prefix}.")
        return 0
    tz = load_settings(engine).timezone  # times in the store's zone
    for k in api_keys.list_keys(engine):
        used = format_moment(k.last_used_at, tz) if k.last_used_at else "never"
        state = "revoked" if k.revoked_at else "active"
        print(f"{k.prefix}  {k.scope:5s}  {state:7s}  last used {used:30s}  {k.name}")
    return 0


def cmd_customer(args) -> int:
    """A customer's personal data: export it as a ZIP, or erase it (services/customer_data.py)."""
    from .services import customer_data
    engine = _engine()
    _require_schema(engine)
    try:
        if args.action == "export":
            data = customer_data.export_customer(engine, args.email,
                                                 shopify_customer_id=args.shopify_customer_id,
                                                 include_staff_notes=not args.no_staff_notes)
            Path(args.out).write_bytes(data)
            print(f"Wrote {args.out} ({len(data)} bytes).")
            return 0
        if not args.yes:
            raise CliError("Erasing can't be undone: add --yes to erase this customer's data.")
        r = customer_data.erase_customer(engine, args.email, actor="cli", request_ref=args.ref,
                                         shopify_customer_id=args.shopify_customer_id)
    except ClaimRuleError as e:
        raise CliError(f"{e.message} [{e.code}]")
    print(f"Erased: {r.orders} orders, {r.claims} claims, {r.rows} rows "
          f"(erasure #{r.erasure_id}).")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m claims_core",
                                description="Shipping-protection claims portal: administration.")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("init", help="create or upgrade the database schema").set_defaults(fn=cmd_init)
    d = sub.add_parser("demo", help="fill the database with demo data")
    d.add_argument("--orders", type=int, default=2400, help="how many random orders (default 2400)")
    d.add_argument("--if-empty", action="store_true", help="do nothing if there is data already")
    d.add_argument("--reset", action="store_true", help="delete everything first")
    d.set_defaults(fn=cmd_demo)
    for name, fn, what in (("import-orders", import_orders, "a Shopify admin orders export CSV"),
                           ("import-shipments", import_shipments, "a shipments CSV"),
                           ("import-stock", import_stock, "a stock CSV (sku,on_hand)")):
        ip = sub.add_parser(name, help=f"import {what}")
        ip.add_argument("file")
        ip.add_argument("--preview", action="store_true", help="check only, write nothing")
        ip.set_defaults(fn=lambda a, _fn=fn: _import(_fn, a))
    u = sub.add_parser("add-user", help="add a staff user (password from a prompt or stdin)")
    u.add_argument("name")
    u.add_argument("--role", required=True, choices=["owner", "agent", "analyst"])
    u.add_argument("--display-name")
    u.set_defaults(fn=cmd_add_user)
    b = sub.add_parser("backup", help="write a consistent copy of the database")
    b.add_argument("dest")
    b.add_argument("--force", action="store_true", help="overwrite DEST")
    b.set_defaults(fn=cmd_backup)
    rs = sub.add_parser("restore", help="put a SQLite backup back (stop the app first; the current "
                        "database is kept as a copy)")
    rs.add_argument("file")
    rs.add_argument("--yes", action="store_true", help="don't ask for confirmation")
    rs.set_defaults(fn=cmd_restore)
    sub.add_parser("stats", help="counts as JSON").set_defaults(fn=cmd_stats)
    sub.add_parser("tick", help="reminders, auto-close, digests, then send mail (run every minute)"
                   ).set_defaults(fn=cmd_tick)
    sub.add_parser("worker", help="run the background jobs (mail, timers, Shopify, webhooks) until "
                   "stopped: for CLAIMS_BACKGROUND=off").set_defaults(fn=cmd_worker)
    fl = sub.add_parser("fill", help="bulk scale data: N claims, each on its own order (benchmarks)")
    fl.add_argument("--claims", type=int, required=True, help="how many claims, e.g. 1000000")
    fl.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    fl.set_defaults(fn=cmd_fill)
    ru = sub.add_parser("rollups", help="check the analytics roll-ups against the rows, or rebuild them")
    what = ru.add_mutually_exclusive_group()
    what.add_argument("--check", action="store_true",
                      help="compare every figure with the rows (the default; exit 1 if any differs)")
    what.add_argument("--rebuild", action="store_true", help="recompute them from the rows")
    ru.set_defaults(fn=cmd_rollups)
    cat = sub.add_parser("catalogs", help="translation catalogs: update them from the code, or check them")
    cat.add_argument("action", choices=("update", "check"))
    cat.set_defaults(fn=cmd_catalogs)
    k = sub.add_parser("api-key", help="make, list or revoke keys for the REST API")
    ksub = k.add_subparsers(dest="action", required=True)
    kc = ksub.add_parser("create", help="a new key, printed once")
    kc.add_argument("--name", required=True, help="what will use it, e.g. the help desk")
    kc.add_argument("--scope", required=True, choices=["read", "write"])
    ksub.add_parser("list", help="every key with its scope and last use")
    kr = ksub.add_parser("revoke", help="stop a key working")
    kr.add_argument("prefix", help="the key's first part, e.g. ck_3f9a2b1c")
    k.set_defaults(fn=cmd_api_key)
    cu = sub.add_parser("customer", help="a customer's personal data: export it or erase it")
    cusub = cu.add_subparsers(dest="action", required=True)
    ce = cusub.add_parser("export", help="everything kept about the customer, as one ZIP")
    ce.add_argument("email")
    ce.add_argument("--out", required=True, help="the ZIP file to write")
    ce.add_argument("--no-staff-notes", action="store_true", help="leave internal notes out")
    cr = cusub.add_parser("erase", help="erase the customer's personal data (can't be undone)")
    cr.add_argument("email")
    cr.add_argument("--yes", action="store_true", help="confirm the erasure")
    cr.add_argument("--ref", default="", help="the request's reference, recorded with the erasure")
    for c in (ce, cr):
        c.add_argument("--shopify-customer-id", default=None)
    cu.set_defaults(fn=cmd_customer)
    t = sub.add_parser("simulate-tracking",
                       help="post signed 17TRACK events to the running app: parcels move on")
    t.add_argument("--url", default="http://localhost:8501", help="the app (default %(default)s)")
    t.add_argument("--count", type=int, default=10, help="parcels per round (default 10)")
    t.add_argument("--rounds", type=int, default=1, help="steps to move them (default 1)")
    t.add_argument("--interval", type=float, default=5.0, help="seconds between rounds")
    t.set_defaults(fn=cmd_simulate_tracking)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except CliError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; nothing more was written", file=sys.stderr)
        return 130
