"""Benchmark for the analytics page at scale (issue 16's yardstick), run on demand:

    python bench/analytics.py --claims 100000 1000000 [--keep /tmp/bench]
    python bench/analytics.py --claims 100000 --database-url postgresql+psycopg://…   # PostgreSQL

For each size it fills a database with ``python -m claims_core fill``'s data (SQLite files are
kept under --keep and reused), then measures in one run, as seconds and as ratios to the floor
(an empty page of this app, run through AppTest as a browser's rerun is):
- the analytics page, cold (the server's figure store emptied first) and warm (run again);
- every figure of the page (both trend grains, every breakdown, money, operations, the pricing
  advisor's four segmentations) from the roll-ups, uncached, for the default period and one of
  each filter the page offers (period, issue type, carrier, destination);
- the same figures straight from the rows (``analytics_rows``, what the page did before);
- the claim-rate figure in DuckDB over the same data: through DuckDB's SQLite scanner (the
  extension loaded from the pip package ``duckdb-extension-sqlite-scanner``, of DuckDB's version:
  extensions can't be downloaded here) and from DuckDB's own tables after a copy. Skipped when
  DuckDB isn't installed, and on PostgreSQL.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from claims_core.adapters import bulk  # noqa: E402
from claims_core.infra import migrate  # noqa: E402
from claims_core.infra.db import make_engine, utcnow  # noqa: E402
from claims_core.services import (accounts, analytics, analytics_rows, claim_queue,  # noqa: E402
                                  pricing, staff_sessions)


def seconds(fn, repeat: int = 3) -> float:
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def every_figure(module, pricing_inputs, engine, f) -> float:
    """Seconds to compute every figure of the analytics page (both trend grains, every
    breakdown, money, recoveries, operations, and the pricing advisor's four segmentations),
    uncached."""
    t0 = time.perf_counter()
    module.claim_rates(engine, f)
    for grain in analytics.GRAINS:
        module.rate_trend(engine, f, grain)
        module.outcomes_trend(engine, f, grain)
    for by in ("carrier", "sku", "region", "method"):
        module.breakdown(engine, f, by)
    module.money_by_month(engine, f)
    module.recoveries_by_carrier(engine, f)
    module.operations(engine, f)
    for by in pricing.SEGMENTS:
        pricing_inputs(engine, f.date_from, f.date_to, by)
    return time.perf_counter() - t0


def add_recoveries(engine) -> int:
    """``fill`` makes no recoveries: give every approved claim a carrier pays for one (by its id:
    a fifth each paid back in part, written off past the deadline, filed, rejected, still to
    file), then rebuild the roll-ups. Returns how many."""
    from sqlalchemy import case, func, insert, literal, select

    from claims_core.domain.recoveries import RECOVERABLE_ISSUES
    from claims_core.domain.vocabulary import GRANTED_STATUSES
    from claims_core.infra import rollups
    from claims_core.infra.db import write_session
    from claims_core.infra.models import Claim, Recovery, RecoveryEvent, Resolution, Shipment
    paid = (select(Resolution.claim_id, func.sum(Resolution.amount_cents).label("paid"))
            .where(Resolution.voided_at.is_(None)).group_by(Resolution.claim_id).subquery())
    k = (Claim.id // 5) % 5  # not by id alone: fill assigns carriers by id
    state = case((k == 0, "paid"), (k == 1, "written_off"), (k == 2, "filed"), (k == 3, "rejected"),
                 else_="to_file")
    src = (select(Claim.id, Claim.shipment_id, state, Shipment.carrier, literal("other"),
                  Claim.issue_type, literal("USD"), paid.c.paid, paid.c.paid,
                  case((k == 0, paid.c.paid * 6 // 10), else_=0), literal(""), literal(""),
                  Claim.decided_at, Claim.decided_at,
                  case((k.in_((0, 2, 3)), Claim.decided_at), else_=None))
           .join(paid, paid.c.claim_id == Claim.id).join(Shipment, Shipment.id == Claim.shipment_id)
           .where(Claim.status.in_(GRANTED_STATUSES), Claim.issue_type.in_(RECOVERABLE_ISSUES),
                  Claim.decided_at.is_not(None), paid.c.paid > 0))
    cols = ["claim_id", "shipment_id", "state", "carrier", "carrier_key", "issue_type", "currency",
            "paid_out_cents", "claimable_cents", "recovered_cents", "carrier_claim_number",
            "carrier_message", "created_at", "updated_at", "filed_at"]
    with write_session(engine) as s, rollups.paused():
        if s.scalar(select(func.count()).select_from(Recovery)):
            return 0
        s.execute(insert(Recovery).from_select(cols, src))
        s.execute(insert(RecoveryEvent).from_select(
            ["recovery_id", "claim_id", "actor", "at", "action", "from_state", "to_state", "details"],
            select(Recovery.id, Recovery.claim_id, literal("system"), Recovery.updated_at,
                   literal("write_off"), literal("to_file"), literal("written_off"),
                   literal('{"deadline": "2026-01-01", "reason": "deadline_passed"}'))
            .where(Recovery.state == "written_off")))
        n = s.scalar(select(func.count()).select_from(Recovery))
    rollups.rebuild(engine)
    return n


def filters(engine, today) -> dict[str, analytics.AnalyticsFilter]:
    """The page's default (180 days) and one of each filter it offers."""
    carriers = claim_queue.carriers(engine)[:2]
    base = analytics.AnalyticsFilter(today - timedelta(days=180), today)
    return {
        "180 days (default)": base,
        "a year": analytics.AnalyticsFilter(today - timedelta(days=365), today),
        "30 days": analytics.AnalyticsFilter(today - timedelta(days=30), today),
        "issue: damaged, lost": analytics.AnalyticsFilter(base.date_from, base.date_to,
                                                          issue_types=("damaged", "lost")),
        f"carrier: {', '.join(carriers)}": analytics.AnalyticsFilter(base.date_from, base.date_to,
                                                                  carriers=tuple(carriers)),
        f"destination: {analytics.countries(engine)[:1]}": analytics.AnalyticsFilter(
            base.date_from, base.date_to, countries=tuple(analytics.countries(engine)[:1])),
    }


CLAIM_RATES = """
WITH ps AS (SELECT s.id, s.order_id FROM {p}shipments s JOIN {p}orders o ON o.id = s.order_id
            WHERE NOT s.is_replacement AND s.shipped_at >= '{start}' AND s.shipped_at < '{end}'
              AND o.cancelled_at IS NULL AND o.protection_purchased_at IS NOT NULL
              AND o.protection_purchased_at <= s.shipped_at)
SELECT (SELECT count(*) FROM ps), (SELECT count(DISTINCT order_id) FROM ps), c.issue_type, count(*)
FROM {p}claims c JOIN ps ON ps.id = c.shipment_id GROUP BY c.issue_type"""


def duckdb_measures(db_file: str, f) -> dict[str, float]:
    try:
        import duckdb
        import duckdb_extension_sqlite_scanner as scanner
    except ImportError:
        return {}
    ext = next((Path(scanner.__file__).parent / "extensions").rglob("sqlite_scanner.duckdb_extension"))
    con = duckdb.connect()
    con.execute(f"LOAD '{ext}'")
    con.execute(f"ATTACH '{db_file}' AS op (TYPE sqlite, READ_ONLY)")
    start, end = str(f.start)[:19], str(f.end)[:19]
    out = {"DuckDB claim rates, SQLite scanner": seconds(
        lambda: con.execute(CLAIM_RATES.format(p="op.", start=start, end=end)).fetchall())}
    t0 = time.perf_counter()
    for table in ("orders", "shipments", "claims"):
        con.execute(f"CREATE TABLE {table} AS SELECT * FROM op.{table}")
    out["DuckDB copy of 3 tables (once)"] = time.perf_counter() - t0
    out["DuckDB claim rates, own tables"] = seconds(
        lambda: con.execute(CLAIM_RATES.format(p="", start=start, end=end)).fetchall())
    return out


def page_measures(url: str) -> dict[str, float]:
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from views import ui

    os.environ["DATABASE_URL"] = url
    engine = make_engine(url)
    try:
        who = accounts.add_user(engine, "bench", "owner", "bench password 1 long")
    except accounts.AuthError:
        who = accounts.authenticate(engine, "bench", "bench password 1 long")
    token = staff_sessions.start(engine, who)
    ui.staff_cookie = lambda: token  # AppTest can't send the cookie; a real session stands in

    def page(path: str):
        at = AppTest.from_file(str(ROOT / "navigation.py"), default_timeout=900)
        at.run()
        at.switch_page(path)
        return at

    floor = page("views/customer/view_claim.py")
    floor.run()
    out = {"empty page (floor)": seconds(floor.run)}
    at = page("views/staff/analytics.py")
    st.cache_resource.clear()  # the figure store: cold
    t0 = time.perf_counter()
    at.run()
    out["analytics page, cold"] = time.perf_counter() - t0
    assert not at.exception, at.exception
    out["analytics page, warm"] = seconds(at.run)
    engine.dispose()
    return out


def _claims_in(engine) -> int:
    from sqlalchemy import inspect, text
    if not inspect(engine).has_table("claims"):
        return 0
    with engine.connect() as c:
        return c.execute(text("SELECT count(*) FROM claims")).scalar_one()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--claims", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--keep", help="folder for the SQLite databases (default: a temporary one)")
    ap.add_argument("--database-url", help="a PostgreSQL URL instead (one size; filled when empty)")
    args = ap.parse_args()
    folder = Path(args.keep or tempfile.mkdtemp(prefix="claims-bench-analytics-"))
    folder.mkdir(parents=True, exist_ok=True)
    for n in args.claims:
        url = args.database_url or f"sqlite:///{folder / f'bench-{n}.db'}"
        engine = make_engine(url)
        if not _claims_in(engine):
            t0 = time.perf_counter()
            bulk.fill(engine, n)
            print(f"filled {n:,} claims in {time.perf_counter() - t0:.0f} s", flush=True)
        migrate.upgrade(engine)
        t0 = time.perf_counter()
        if made := add_recoveries(engine):
            print(f"added {made:,} recoveries in {time.perf_counter() - t0:.0f} s", flush=True)
        today = utcnow().date()
        f = analytics.AnalyticsFilter(today - timedelta(days=180), today)  # the page's default
        m = page_measures(url)
        for name, flt in filters(engine, today).items():
            m[f"every figure, roll-ups, {name}"] = seconds(
                lambda flt=flt: every_figure(analytics, pricing.segment_inputs, engine, flt))
        m["every figure, row-level SQL (180 days)"] = every_figure(
            analytics_rows, analytics_rows.pricing_segment_inputs, engine, f)
        if engine.dialect.name == "sqlite":
            m.update(duckdb_measures(url.removeprefix("sqlite:///"), f))
        engine.dispose()
        floor = m["empty page (floor)"]
        print(f"\n== {n:,} claims ({engine.dialect.name}) ==")
        print(f"{'measure':48s} {'seconds':>9s} {'× floor':>9s}")
        for name, sec in m.items():
            print(f"{name:48s} {sec:9.3f} {sec / floor:9.1f}", flush=True)


if __name__ == "__main__":
    main()
