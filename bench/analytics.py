"""Benchmark for the analytics page at scale (issue 16's yardstick), run on demand:

    python bench/analytics.py --claims 100000 1000000 [--keep /tmp/bench]
    python bench/analytics.py --claims 100000 --database-url postgresql+psycopg://…   # PostgreSQL

For each size it fills a database with ``python -m claims_core fill``'s data, recoveries included
(SQLite files are kept under --keep and reused), then measures in one run, as seconds and as ratios to the floor
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
from claims_core.infra.db import make_engine  # noqa: E402
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


def duckdb_measures(db_file: str, f, tz: str = "UTC") -> dict[str, float]:
    try:
        import duckdb
        import duckdb_extension_sqlite_scanner as scanner
    except ImportError:
        return {}
    ext = next((Path(scanner.__file__).parent / "extensions").rglob("sqlite_scanner.duckdb_extension"))
    con = duckdb.connect()
    con.execute(f"LOAD '{ext}'")
    con.execute(f"ATTACH '{db_file}' AS op (TYPE sqlite, READ_ONLY)")
    start, end = (str(t.replace(tzinfo=None))[:19] for t in f.bounds(tz))  # the store's days
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
        today = analytics.store_today(engine)  # the store's local day, as the page
        f = analytics.AnalyticsFilter(today - timedelta(days=180), today)  # the page's default
        m = page_measures(url)
        for name, flt in filters(engine, today).items():
            m[f"every figure, roll-ups, {name}"] = seconds(
                lambda flt=flt: every_figure(analytics, pricing.segment_inputs, engine, flt))
        m["every figure, row-level SQL (180 days)"] = every_figure(
            analytics_rows, analytics_rows.pricing_segment_inputs, engine, f)
        if engine.dialect.name == "sqlite":
            m.update(duckdb_measures(url.removeprefix("sqlite:///"), f,
                                     analytics.store_zone_name(engine)))
        engine.dispose()
        floor = m["empty page (floor)"]
        print(f"\n== {n:,} claims ({engine.dialect.name}) ==")
        print(f"{'measure':48s} {'seconds':>9s} {'× floor':>9s}")
        for name, sec in m.items():
            print(f"{name:48s} {sec:9.3f} {sec / floor:9.1f}", flush=True)


if __name__ == "__main__":
    main()
