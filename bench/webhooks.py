"""Benchmark: sustained carrier webhooks on SQLite while customers file claims.

    python bench/webhooks.py [--seconds 20] [--senders 50] [--filers 4]

Starts the app as the README does (``streamlit run app.py``; its background jobs apply the
webhook receipts every 2 s) on a fresh SQLite database with orders whose shipments are in
transit, then:
- baseline: ``--senders`` threads call Streamlit's health endpoint (``/_stcore/health``, the
  cheapest request the server answers) for ``--seconds``, with the same client;
- ``--senders`` threads post signed 17TRACK ``TRACKING_UPDATED`` webhooks for ``--seconds``, each
  with a new scan (one in ten for a tracking number no order has yet), while ``--filers``
  customers file claims through the customer service on the same database, a thread each in
  one process of their own (as a web process's sessions do); every write transaction a
  customer begins is timed: how long it waited for SQLite's write lock, from the moment it
  asked (its turn in the process's line of writers, ``infra/db._WriterTurns``, then
  ``BEGIN IMMEDIATE``), and how long it held it (to COMMIT);
- afterwards it waits until every receipt is applied (at most 120 s).
Reports: the webhook rate as a ratio of the health rate, latency p50/p95/p99, lost events
(acknowledged but never stored as a checkpoint), "applied within" (a receipt's applied_at −
received_at, max and p99), and the customers' errors, write waits and lock holds.
"""
from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from sqlalchemy import event, text  # noqa: E402

from claims_core.adapters.demo_tracking import push_17track, sign_17track  # noqa: E402
from claims_core.domain.vocabulary import Milestone  # noqa: E402
from claims_core.infra import migrate  # noqa: E402
from claims_core.infra.db import make_engine, write_session  # noqa: E402
from claims_core.infra.models import LineItem, Order, Shipment, ShipmentItem  # noqa: E402
from claims_core.services import customer as customer_service  # noqa: E402
from claims_core.services import webhook_receipts  # noqa: E402
from tests.conftest import running_app  # noqa: E402

KEY = "bench-17track-key"
NOW = datetime.now(timezone.utc)


def make_orders(engine, n: int) -> list[tuple[int, int, int, str, str]]:
    """n protected orders, each one shipment in transit: (order, shipment, item, email, tracking)."""
    out = []
    with write_session(engine) as s:
        made = []
        for i in range(n):
            li = LineItem(position=1, sku="MUG", name="Mug", quantity=1, unit_price_cents=2800)
            o = Order(order_number=f"B{i}", name=f"#B{i}", email=f"b{i}@example.com",
                      created_at=NOW - timedelta(days=30), total_cents=2800, protection_fee_cents=195,
                      protection_purchased_at=NOW - timedelta(days=30), line_items=[li])
            sh = Shipment(order=o, tracking_number=f"1ZBENCH{i:08d}", carrier="UPS",
                          status="in_transit", shipped_at=NOW - timedelta(days=20),
                          last_scan_at=NOW - timedelta(days=15),
                          items=[ShipmentItem(line_item=li, quantity=1)])
            s.add_all([o, sh])
            made.append((o, sh))
        s.flush()
        out = [(o.id, sh.id, sh.items[0].id, o.email, sh.tracking_number) for o, sh in made]
    return out


def hammer(url: str, seconds: float, threads: int, make_request) -> tuple[list[float], list[int]]:
    """Send requests from ``threads`` threads for ``seconds``: latencies and status codes."""
    stop = time.perf_counter() + seconds
    lat, codes, lock = [], [], threading.Lock()

    def worker(_):
        with httpx.Client(timeout=30) as client:
            while time.perf_counter() < stop:
                method, path, body, headers = make_request()
                t0 = time.perf_counter()
                try:
                    status = client.request(method, url + path, content=body,
                                            headers=headers).status_code
                except httpx.HTTPError:  # not acknowledged: counts as lost if it was an event
                    status = 0
                dt = time.perf_counter() - t0
                with lock:
                    lat.append(dt)
                    codes.append(status)

    with ThreadPoolExecutor(max_workers=threads) as ex:
        list(ex.map(worker, range(threads)))
    return lat, codes


def _file(engine, order: tuple, key: str) -> None:
    o, sh, _item, email, _t = order
    customer_service.file_claim(engine, customer_service.ClaimRequest(
        idempotency_key=key, order_id=o, email=email, shipment_id=sh, issue_type="lost",
        items={}, desired_resolution="refund", signature_kind="typed", signature_name="Pat Doe",
        accurate_confirmed=True))


def file_claims(db_url: str, orders: list, filers: int, seconds: float):
    """``filers`` customers filing claims for ``seconds``, a thread each, in a process of their
    own (as a web process's sessions do). Returns the orders filed, the errors, and how long
    each write transaction's BEGIN IMMEDIATE waited for the lock (from its first try)."""
    engine = make_engine(db_url)
    # a fresh process's first claim compiles the SQL a filing runs (SQLAlchemy's statement
    # cache), ≈ 0.35 s inside its write transaction: filed before the clock starts, as a web
    # process filed its first claim long ago (the README gives this cold figure too)
    warm = orders[-1]
    _file(engine, warm, "bench-warm-up")
    waits, held, began, holding, lock = [], [], {}, {}, threading.Lock()

    @event.listens_for(engine, "before_cursor_execute")
    def _before(conn, cursor, statement, *a):
        if statement == "BEGIN IMMEDIATE":  # (the first try: a busy one is tried again)
            began.setdefault(threading.get_ident(), time.perf_counter())

    @event.listens_for(engine, "after_cursor_execute")
    def _after(conn, cursor, statement, *a):
        if statement == "BEGIN IMMEDIATE":
            now = time.perf_counter()
            with lock:
                waits.append(now - began.pop(threading.get_ident()))
            holding[threading.get_ident()] = now

    @event.listens_for(engine, "commit")
    def _commit(conn):
        t0 = holding.pop(threading.get_ident(), None)
        if t0 is not None:
            with lock:
                held.append(time.perf_counter() - t0)

    @event.listens_for(engine, "begin", insert=True)  # before the line of writers
    def _begin(conn):  # (infra/db._WriterTurns), so waiting in it counts
        if not conn.get_execution_options().get("claims_readonly"):  # (a read doesn't wait)
            began.setdefault(threading.get_ident(), time.perf_counter())

    filed, errors = [], []
    stop = time.perf_counter() + seconds

    def customer(k: int) -> None:
        for j in range(k, len(orders) - 1, filers):
            if time.perf_counter() >= stop:
                return
            try:
                _file(engine, orders[j], f"bench-{j}")
                with lock:
                    filed.append(j)
            except Exception as e:  # noqa: BLE001 - every kind counts
                with lock:
                    errors.append(repr(e))

    with ThreadPoolExecutor(max_workers=filers) as ex:
        list(ex.map(customer, range(filers)))
    engine.dispose()
    return filed, errors, waits, held


@contextlib.contextmanager
def worker(kind: str, env: dict, folder: Path):
    """`python -m claims_core worker` beside the app, when asked for."""
    if kind != "worker":
        yield None
        return
    with open(folder / "worker.log", "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "claims_core", "worker"], cwd=ROOT, env=env,
                                stdout=log, stderr=subprocess.STDOUT)
        try:
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--senders", type=int, default=50)
    ap.add_argument("--filers", type=int, default=4)
    ap.add_argument("--orders", type=int, default=5000)
    ap.add_argument("--background", choices=("app", "worker"), default="app",
                    help="who applies the receipts: the web app's own jobs (the default set-up), "
                         "or `python -m claims_core worker` beside it (CLAIMS_BACKGROUND=off)")
    args = ap.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="claims-bench-webhooks-"))
    db_url = f"sqlite:///{folder / 'claims.db'}"
    engine = make_engine(db_url)
    migrate.upgrade(engine)
    orders = make_orders(engine, args.orders)
    env = {**os.environ, "CLAIMS_DATA_DIR": str(folder), "TRACK17_WEBHOOK_KEY": KEY,
           "CLAIMS_BACKGROUND": "on" if args.background == "app" else "off"}
    env.pop("DATABASE_URL", None)

    counter = itertools.count()

    def webhook():
        i = next(counter)
        number = orders[i % len(orders)][4] if i % 10 else f"1ZUNKNOWN{i:08d}"
        at = NOW - timedelta(days=14) + timedelta(seconds=i)  # a new scan every time
        body = json.dumps(push_17track(number, "UPS", Milestone.IN_TRANSIT, f"Scan {i}",
                                       "Memphis, TN, US", at)).encode()
        return "POST", "/webhooks/17track", body, {"sign": sign_17track(body, KEY)}

    with running_app(env, folder / "streamlit.log") as url, worker(args.background, env, folder):
        hammer(url, 2, 2, lambda: ("GET", "/_stcore/health", None, {}))  # warm up
        base_lat, base_codes = hammer(url, args.seconds, args.senders,
                                      lambda: ("GET", "/_stcore/health", None, {}))
        # customers file from a process of their own, a thread each (as a web process's
        # sessions do), not from this one, whose 50 sender threads would keep Python's GIL from
        # a customer holding the write lock
        with ProcessPoolExecutor(max_workers=1) as customers:
            filing = customers.submit(file_claims, db_url, orders, args.filers, args.seconds)
            lat, codes = hammer(url, args.seconds, args.senders, webhook)
            filed, filing_errors, waits, held = filing.result()
        sent_done = time.perf_counter()
        while time.perf_counter() - sent_done < 120:  # the app's job applies what is left
            with engine.connect() as c:
                left = c.execute(text("SELECT count(*) FROM webhook_receipts "
                                      "WHERE status = 'pending'")).scalar_one()
            left += sum(webhook_receipts.spooled(engine).values())  # not moved in yet
            if not left:
                break
            time.sleep(0.5)
        drained = time.perf_counter() - sent_done
    ok = codes.count(200)
    with engine.connect() as c:
        stored = c.execute(text("SELECT count(*) FROM checkpoints WHERE message LIKE 'Scan %'")
                           ).scalar_one()
        holds = c.execute(text("SELECT count(*) FROM claims WHERE held_at IS NOT NULL")).scalar_one()
        statuses = dict(c.execute(text("SELECT status, count(*) FROM webhook_receipts "
                                       "GROUP BY status")).all())
        times = c.execute(text("SELECT received_at, applied_at FROM webhook_receipts "
                               "WHERE applied_at IS NOT NULL")).all()
    engine.dispose()
    within = [(datetime.fromisoformat(str(b)) - datetime.fromisoformat(str(a))).total_seconds()
              for a, b in times]
    rate, base_rate = ok / args.seconds, len(base_codes) / args.seconds
    p = lambda xs, q: statistics.quantiles(xs, n=100)[q - 1] if len(xs) > 1 else max(xs)  # noqa: E731
    print(f"SQLite, {args.senders} webhook senders + {args.filers} customers filing, "
          f"{args.seconds:.0f} s, {args.orders:,} orders; receipts applied by "
          + ("the app's own background job (every 2 s)" if args.background == "app"
             else "`python -m claims_core worker` beside the app (CLAIMS_BACKGROUND=off)"))
    print(f"baseline /_stcore/health: {base_rate:8.1f} req/s  p50 {p(base_lat, 50) * 1000:6.1f} ms  "
          f"p95 {p(base_lat, 95) * 1000:6.1f} ms  p99 {p(base_lat, 99) * 1000:6.1f} ms")
    print(f"17TRACK webhooks:         {rate:8.1f} ev/s   p50 {p(lat, 50) * 1000:6.1f} ms  "
          f"p95 {p(lat, 95) * 1000:6.1f} ms  p99 {p(lat, 99) * 1000:6.1f} ms  "
          f"max {max(lat) * 1000:6.1f} ms  ({rate / base_rate:.2f}× the baseline's rate)")
    print(f"acknowledged {ok}, other answers {len(codes) - ok}, stored {stored}, "
          f"lost {ok - stored}; receipts {statuses}")
    print(f"applied within: p50 {p(within, 50):.2f} s, p99 {p(within, 99):.2f} s, "
          f"max {max(within):.2f} s; all applied {drained:.1f} s after the senders stopped")
    print(f"claims filed meanwhile: {len(filed)}, errors {len(filing_errors)}"
          + (f" (first: {filing_errors[0]})" if filing_errors else "")
          + f"; claims put on hold by the scans: {holds}")
    if waits:
        print(f"filers' write waits (their turn, then BEGIN IMMEDIATE): {len(waits)} "
              f"transactions, p50 {p(waits, 50) * 1000:.1f} ms, p99 {p(waits, 99) * 1000:.1f} ms, "
              f"max {max(waits) * 1000:.1f} ms; the lock held (BEGIN to COMMIT) p50 "
              f"{p(held, 50) * 1000:.1f} ms, p99 {p(held, 99) * 1000:.1f} ms")


if __name__ == "__main__":
    main()
