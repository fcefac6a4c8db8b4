"""Benchmark: the app at 10k / 100k / 1M claims, measured in one run against a floor.

    python bench/bench.py --claims 10000 100000 1000000

For each size it fills a fresh SQLite database (bulk inserts), then times with AppTest:
- the floor: an empty Streamlit page;
- the staff queue with several filters and a search;
- one claim with photos;
- the analytics page (warm: second run, figures cached);
- each portal step (find order → order → what went wrong → details → resolution → review → sign);
- the naive baseline: the claims table loaded into pandas and filtered there.
Plus one 12 MP photo processed, and 200 customers filing at once on SQLite (p95).
Prints seconds and the ratio to the floor. Numbers are medians of several runs.
"""
from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pandas as pd  # noqa: E402
from sqlalchemy import text  # noqa: E402

from claims_core.adapters import bulk  # noqa: E402
from claims_core.adapters.demo import make_photo  # noqa: E402
from claims_core.infra import migrate  # noqa: E402
from claims_core.infra.db import make_engine, utcnow  # noqa: E402
from claims_core.infra.photos import process_photo  # noqa: E402
from claims_core.services import accounts, customer  # noqa: E402


def fill(url: str, n_claims: int) -> None:
    t0 = time.perf_counter()
    engine = make_engine(url)
    bulk.fill(engine, n_claims)
    engine.dispose()
    print(f"  filled {n_claims:,} claims in {time.perf_counter() - t0:.1f} s", flush=True)


# --- measuring ----------------------------------------------------------------------------------

def timed(fn, repeat: int = 5) -> float:
    fn()  # warm
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def race(measures: dict, rounds: int = 9) -> dict[str, float]:
    """Median seconds of each measure, run in interleaved rounds (floor, queue, ..., floor, queue,
    ...) so that a slow moment of the machine falls on all of them alike."""
    for fn in measures.values():
        fn()  # warm
    samples: dict[str, list[float]] = {name: [] for name in measures}
    for _ in range(rounds):
        for name, fn in measures.items():
            t0 = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - t0)
    return {name: statistics.median(xs) for name, xs in samples.items()}


def app_runs(url: str) -> dict[str, float]:
    from streamlit.testing.v1 import AppTest

    from claims_core.services.analytics import (
        AnalyticsFilter,
        breakdown,
        claim_rates,
        money_by_month,
        operations,
        outcomes_trend,
        rate_trend,
        store_today,
    )

    os.environ["DATABASE_URL"] = url
    engine = make_engine(url)
    migrate.upgrade(engine)  # a kept database from an older run gets the newest indexes
    try:
        who = accounts.add_user(engine, "bench", "owner", "bench password 1")
    except accounts.AuthError:
        who = accounts.authenticate(engine, "bench", "bench password 1")
    with engine.connect() as c:
        claim_id = c.execute(text("SELECT min(claim_id) FROM evidence")).scalar_one()
        recent = (utcnow() - timedelta(days=30)).replace(tzinfo=None)
        order_row = c.execute(text("SELECT o.order_number, o.email FROM orders o "
                                   "JOIN claims c ON c.order_id = o.id "
                                   "JOIN shipments s ON s.id = c.shipment_id "
                                   "WHERE c.status IN ('denied','closed') AND s.shipped_at > :recent "
                                   "ORDER BY o.id LIMIT 1"), {"recent": recent}).one()
        ref = c.execute(text("SELECT reference FROM claims ORDER BY id DESC LIMIT 1")).scalar_one()
    m: dict = {}

    bare = AppTest.from_string("import streamlit as st\nst.write('')", default_timeout=900)
    m["bare Streamlit page"] = bare.run
    # The floor: a page of this app that does no claims work (View my claim's lookup form).
    # Every AppTest run executes app.py (navigation, settings, styles) and then the page, as a
    # browser's rerun does, so every figure below includes that shared cost, the floor's too.
    shell = AppTest.from_file(str(ROOT / "navigation.py"), default_timeout=900)
    shell.run()
    shell.switch_page("views/customer/view_claim.py")
    shell.run()
    m["empty page (floor)"] = shell.run

    # AppTest can't send the session cookie: a real staff session's token stands in for it
    # (as in the tests), so the staff pages below do their real work.
    from claims_core.services import staff_sessions
    from views import ui
    token = staff_sessions.start(engine, who)
    ui.staff_cookie = lambda: token

    def staff_app(page, **query):
        at = AppTest.from_file(str(ROOT / "navigation.py"), default_timeout=900)
        for k, v in query.items():
            at.query_params[k] = str(v)
        at.run()
        at.switch_page(page)
        at.run()
        return at

    q0 = staff_app("views/staff/queue.py")
    m["queue: as it opens (to do, oldest)"] = q0.run
    q = staff_app("views/staff/queue.py")
    q.multiselect(key="q_issue").set_value(["damaged", "lost", "stolen"])
    q.multiselect(key="q_carrier").set_value(["UPS", "USPS"])
    q.multiselect(key="q_res").set_value(["refund", "store_credit"])
    q.run()
    m["queue: 3 filters"] = q.run
    qs = staff_app("views/staff/queue.py")
    qs.text_input(key="q_text").set_value(ref)
    qs.run()
    m["queue: search by reference"] = qs.run

    c = staff_app("views/staff/claim.py", id=claim_id)
    m["one claim with photos"] = c.run

    today = store_today(engine)  # the store's local day, as the page
    flt = AnalyticsFilter(today - timedelta(days=180), today)  # the page's default period
    t0 = time.perf_counter()
    for fn in (lambda: claim_rates(engine, flt), lambda: rate_trend(engine, flt, "month"),
               lambda: outcomes_trend(engine, flt, "month"), lambda: breakdown(engine, flt, "carrier"),
               lambda: money_by_month(engine, flt), lambda: operations(engine, flt)):
        fn()
    cold = time.perf_counter() - t0
    a = staff_app("views/staff/analytics.py")  # computes and caches the figures once
    m["analytics (warm)"] = a.run

    # the portal, step by step (a denied claim's order: its items are claimable again)
    number, email = order_row
    p = AppTest.from_file(str(ROOT / "navigation.py"), default_timeout=900)
    p.run()
    m["portal: find your order (page)"] = p.run

    def lookup():
        p.session_state["claim_flow"] = {"step": "lookup"}
        p.run()
        p.text_input(key="lookup_query").input(number)
        p.text_input(key="lookup_email").input(email)
        t0 = time.perf_counter()
        p.button[0].click().run()  # the click: look-up and the order page, one script run
        return time.perf_counter() - t0
    lookup()
    flow = dict(p.session_state["claim_flow"])
    next(b for b in p.button if b.key and b.key.startswith("start_claim_")).click().run()
    p.radio(key="issue").set_value(_first_value(p)).run()  # a tap moves on to the details
    flow = dict(p.session_state["claim_flow"])

    def step(name):
        def show():
            p.session_state["claim_flow"] = dict(flow, step=name)
            p.run()
        return show
    for name, label in (("order", "your order"), ("issue", "what went wrong"), ("details", "details"),
                        ("resolution", "resolution"), ("review", "check and sign")):
        m[f"portal: {label}"] = step(name)
    out = race(m)
    out["portal: look up (submit)"] = statistics.median(lookup() for _ in range(9))
    out["analytics (cold, first computation)"] = cold
    engine.dispose()
    return out


def _first_value(at):
    """The first issue offered (radio values are the issue codes)."""
    from claims_core import domain
    labels = at.radio(key="issue").options
    for code, t in domain.ISSUE_TYPES.items():
        if any(lbl.startswith(t.label + " —") for lbl in labels):
            return code


def naive_baseline(url: str) -> float:
    engine = make_engine(url)

    def run():
        df = pd.read_sql("SELECT * FROM claims", engine)
        sel = df[df.status.isin(["submitted", "in_review"]) & df.issue_type.isin(["damaged", "lost", "stolen"])
                 & df.carrier.isin(["UPS", "USPS"])]
        sel.sort_values("created_at").head(25)
    t = timed(run, repeat=2)
    engine.dispose()
    return t


def photo_12mp() -> float:
    import io

    from PIL import Image
    img = Image.new("RGB", (4000, 3000))
    small = Image.open(io.BytesIO(make_photo(3, 1000, 750)))
    img.paste(small.resize((4000, 3000)))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90)
    raw = buf.getvalue()
    return timed(lambda: process_photo(raw, "12mp.jpg"), repeat=7)


BURST = """
import resource, sys, threading
sys.path.insert(0, {root!r})
from claims_core.infra import photos
photos._DECODES = threading.BoundedSemaphore({limit})
raw = open({path!r}, "rb").read()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
done = []
def one():
    photos.process_photo(raw, "big.{ext}", max_bytes=60 * 1024 * 1024)
    done.append(1)
threads = [threading.Thread(target=one) for _ in range(24)]
for t in threads:
    t.start()
for t in threads:
    t.join()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(f"{{before:.0f}} {{peak:.0f}} {{len(done)}}")
"""


def burst_50mp(fmt: str = "JPEG", limit: int | None = None) -> tuple[float, float, float]:
    """Peak memory (MB) of one fresh process while 24 uploads of one 50 MP photo are processed at
    once, with the app's bound on concurrent decodes (``limit`` None) or another."""
    import subprocess
    from PIL import Image, ImageDraw

    from claims_core.infra import photos
    img = Image.radial_gradient("L").resize((8660, 5770)).convert("RGB")  # 49.97 MP
    ImageDraw.Draw(img).rectangle([800, 800, 7000, 4000], outline=(200, 40, 40), width=60)
    path = Path(tempfile.mkdtemp()) / ("big.jpg" if fmt == "JPEG" else "big.png")
    img.save(path, fmt, **({"quality": 85} if fmt == "JPEG" else {}))
    code = BURST.format(root=str(ROOT), limit=limit or photos.MAX_CONCURRENT_DECODES,
                        path=str(path), ext=path.suffix[1:])
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    before, peak, done = (float(x) for x in out.stdout.split())
    assert done == 24, out.stderr
    return before, peak, path.stat().st_size / 1e6


def concurrent_200(url: str) -> tuple[int, int, float]:
    from tests.services.test_reliability import (  # the same data shape the tests use
        _bulk_orders,
        _request,
    )
    engine = make_engine(url)
    run = secrets.token_hex(4)
    orders = _bulk_orders(engine, 200, prefix="K" + run[:6].upper())
    times, errors = [], []

    def one(i):
        t0 = time.perf_counter()
        try:
            customer.file_claim(engine, _request(*orders[i], key=f"conc-{run}-{i}"),
                                now=datetime(2026, 11, 21, 15, tzinfo=timezone.utc))
        except Exception as e:  # noqa: BLE001
            errors.append(e)
        times.append(time.perf_counter() - t0)

    with ThreadPoolExecutor(max_workers=200) as ex:
        list(ex.map(one, range(200)))
    with engine.connect() as c:
        stored = c.execute(text("SELECT count(*) FROM claims WHERE idempotency_key LIKE :k"),
                           {"k": f"conc-{run}-%"}).scalar_one()
    engine.dispose()
    return stored, len(errors), statistics.quantiles(times, n=20)[18]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--claims", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--keep", help="folder for the databases (default: a temporary one)")
    args = ap.parse_args()
    folder = Path(args.keep or tempfile.mkdtemp(prefix="claims-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    print(f"photo: one 12 MP JPEG processed in {photo_12mp():.3f} s")
    for fmt in ("JPEG", "PNG"):
        for limit in (None, 24):
            before, peak, size = burst_50mp(fmt, limit)  # before: the process with the file read
            label = "the app's bound" if limit is None else "no bound (24 at once)"
            print(f"24 × one 50 MP {fmt} ({size:.1f} MB) at once, {label}: peak {peak:.0f} MB "
                  f"(process at {before:.0f} MB before)", flush=True)
    for n in args.claims:
        url = f"sqlite:///{folder / f'bench-{n}.db'}"
        print(f"\n== {n:,} claims ==", flush=True)
        if not Path(url.removeprefix("sqlite:///")).exists():
            fill(url, n)
        results = app_runs(url)
        naive = naive_baseline(url)
        floor = results["empty page (floor)"]
        print(f"{'measure':38s} {'seconds':>9s} {'× floor':>8s}")
        for name, sec in results.items():
            print(f"{name:38s} {sec:9.3f} {sec / floor:8.2f}")
        print(f"{'naive: pandas load + filter':38s} {naive:9.3f} {naive / floor:8.2f}")
        print(f"queue (3 filters) is {naive / results['queue: 3 filters']:.0f}× faster than the naive baseline")
        stored, errors, p95 = concurrent_200(url)
        print(f"200 concurrent filings: {stored} stored, {errors} errors, p95 {p95:.3f} s", flush=True)


if __name__ == "__main__":
    main()
