"""The analytics page in a real browser, small shop against big shop (issue 16), run on demand:

    python bench/analytics_browser.py --small sqlite:////tmp/bench/bench-1000.db \
        --big sqlite:////tmp/bench/bench-1000000.db

Each database must already hold ``python -m claims_core fill`` data (and a staff user is added).
For each, the app is started as the README starts it (``streamlit run app.py``), a staff member
logs in in headless Chromium, and we time, until the page has finished its run:
- the analytics page's first load (the server's figures cold: a fresh server);
- each new filter (a period, an issue type, a carrier, a period again), opened from its link.
It prints seconds per step for both and the difference (big − small): the target is ≤ 1 s.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from claims_core.infra.db import make_engine, utcnow  # noqa: E402
from claims_core.services import accounts, claim_queue  # noqa: E402
from tests.support.browser import DESKTOP, settle, staff_log_in  # noqa: E402
from tests.conftest import CHROMIUM, CHROMIUM_ARGS, running_app  # noqa: E402

USER, PASSWORD = "bench-browser", "bench browser password 1"


def steps(url: str) -> list[tuple[str, str]]:
    engine = make_engine(url)
    try:
        accounts.add_user(engine, USER, "owner", PASSWORD)
    except accounts.AuthError:
        pass
    carrier = claim_queue.carriers(engine)[0]
    engine.dispose()
    today = utcnow().date()
    period = f"{today - timedelta(days=180)}..{today}"
    return [("first load (cold)", f"period={period}"),
            ("new period: 30 days", f"period={today - timedelta(days=30)}..{today}"),
            ("new filter: issue damaged", f"period={period}&issue=damaged"),
            (f"new filter: carrier {carrier}", f"period={period}&carrier={carrier}"),
            ("new period: a year, by week", f"period={today - timedelta(days=365)}..{today}&by=week")]


def measure(url: str) -> dict[str, float]:
    from playwright.sync_api import sync_playwright
    plan = steps(url)
    env = {**os.environ, "DATABASE_URL": url}
    out = {}
    with tempfile.TemporaryDirectory() as d, running_app(env, Path(d) / "streamlit.log") as base:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_context(viewport=DESKTOP).new_page()
            staff_log_in(page, base, USER, PASSWORD)
            for name, query in plan:
                t0 = time.perf_counter()
                page.goto(f"{base}/analytics?{query}")
                page.get_by_text("Is my protection priced right?").wait_for(timeout=600_000)
                settle(page, timeout=600_000)
                out[name] = time.perf_counter() - t0 - 0.65  # settle's own fixed waits
            browser.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--small", required=True, help="database URL of the small shop (e.g. 1,000 claims)")
    ap.add_argument("--big", required=True, help="database URL of the big shop (e.g. 1,000,000 claims)")
    args = ap.parse_args()
    small, big = measure(args.small), measure(args.big)
    print(f"{'step':34s} {'small':>8s} {'big':>8s} {'big − small':>12s}")
    for name in small:
        print(f"{name:34s} {small[name]:8.2f} {big[name]:8.2f} {big[name] - small[name]:12.2f}")


if __name__ == "__main__":
    main()
