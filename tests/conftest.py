"""Test fixtures: a fresh migrated database per test (SQLite by default, DATABASE_URL if set)."""
from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import sys
from datetime import datetime, timezone

import pytest
from sqlalchemy import text

from claims_core.infra.db import make_engine, write_session
from claims_core.infra.migrate import upgrade
from claims_core.infra.models import ensure_settings_row as ensure_settings

NOW = datetime(2026, 11, 21, 15, 0, tzinfo=timezone.utc)


# --- the app's clock at the hard moments of the day ------------------------------------------------
# ``CLAIMS_TEST_CLOCK`` (or ``--clock``) shifts the app's one clock (``infra.db.utcnow()``) for the
# whole run, in this process and in every app it starts (``streamlit run``, ``claims_core demo``
# inherit ``CLAIMS_CLOCK_SHIFT``):
#   real                   the real clock (the default)
#   after-utc-midnight     00:05 UTC: the UTC day has turned, the store's (New York) has not
#   before-store-midnight  23:30 in the store's zone: the UTC day turned hours ago, the store's
#                          turns in 30 minutes (enough for a whole run to stay in that window)
#   2026-12-07T00:05:00Z   any instant the clock starts at (then ticks)
# The nearest such moment to the real time is used, so the shift stays under a day. Expected
# dates in tests come from the same clock and the store's zone, never from datetime.now().
STORE_TZ = "America/New_York"  # the demo store's zone (claims_core/adapters/demo.py)
CLOCK_MOMENTS = {"after-utc-midnight": ("UTC", 0, 5), "before-store-midnight": (STORE_TZ, 23, 30)}


def clock_moment(name: str | None, real_now: datetime | None = None) -> datetime | None:
    """The instant a ``CLAIMS_TEST_CLOCK`` name stands for (None: the real clock)."""
    from datetime import time, timedelta
    from zoneinfo import ZoneInfo

    from claims_core.infra import clock
    name = (name or "real").strip()
    if name == "real":
        return None
    if name not in CLOCK_MOMENTS:
        try:
            return clock.parse_instant(name)
        except ValueError:
            raise pytest.UsageError(f"CLAIMS_TEST_CLOCK: {name!r} is not one of real, "
                                    f"{', '.join(CLOCK_MOMENTS)} or an ISO instant") from None
    zone_name, hour, minute = CLOCK_MOMENTS[name]
    zone = ZoneInfo(zone_name)
    real_now = real_now or datetime.now(timezone.utc)  # the real clock, to stay near it
    today = real_now.astimezone(zone).date()
    candidates = [datetime.combine(today + timedelta(days=d), time(hour, minute), tzinfo=zone)
                  for d in (-1, 0, 1)]
    return min(candidates, key=lambda m: abs(m - real_now)).astimezone(timezone.utc)


def pytest_addoption(parser):
    parser.addoption("--clock", default=None,
                     help="the app's clock for this run: real, after-utc-midnight, "
                          "before-store-midnight or an ISO instant (default: $CLAIMS_TEST_CLOCK)")


def pytest_configure(config):
    from claims_core.infra import clock
    name = config.getoption("--clock", default=None) or os.environ.get("CLAIMS_TEST_CLOCK")
    moment = clock_moment(name)
    if moment is not None:
        clock.set_shift(clock.shift_to(moment))


def pytest_report_header(config):
    from claims_core.infra import clock
    from claims_core.infra.db import utcnow
    if clock.shift():
        return (f"app clock: {utcnow():%Y-%m-%d %H:%M:%S} UTC "
                f"(shifted {clock.shift().total_seconds():+.0f} s; CLAIMS_TEST_CLOCK)")
    return None


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


# The suite runs on PostgreSQL when DATABASE_URL points at one (each test in its own schema).
PG_ADMIN_URL = os.environ.get("DATABASE_URL", "") if os.environ.get(
    "DATABASE_URL", "").startswith("postgresql") else None
ON_POSTGRES = PG_ADMIN_URL is not None


def pg_admin_url() -> str | None:
    return PG_ADMIN_URL


@contextlib.contextmanager
def _pg_schema(migrated: bool):
    import uuid

    from sqlalchemy import create_engine
    admin_url = pg_admin_url()
    schema = "t_" + uuid.uuid4().hex[:12]
    admin = create_engine(admin_url)
    with admin.begin() as c:
        c.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in admin_url else "?"
    scoped = f"{admin_url}{sep}options=-csearch_path%3D{schema}"
    if migrated:
        eng = make_engine(scoped)
        upgrade(eng)
        with write_session(eng) as s:
            ensure_settings(s)
        eng.dispose()
    try:
        yield scoped
    finally:
        with admin.begin() as c:
            c.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def db_url(tmp_path, request):
    """A fresh, migrated database for one test."""
    if ON_POSTGRES:
        with _pg_schema(migrated=True) as url:
            yield url
        return
    template = request.getfixturevalue("sqlite_template")
    path = tmp_path / "claims.db"
    shutil.copy(template, path)
    yield f"sqlite:///{path}"


@pytest.fixture
def fresh_db_url(tmp_path):
    """An empty database (no schema yet) for one test."""
    if ON_POSTGRES:
        with _pg_schema(migrated=False) as url:
            yield url
        return
    yield f"sqlite:///{tmp_path / 'fresh.db'}"


@pytest.fixture(autouse=True)
def _release_app_engines():
    """AppTest pages cache one engine per database URL; drop them after each test so their
    connections close (PostgreSQL would run out of connections otherwise)."""
    yield
    ui = sys.modules.get("views.ui")  # only when a page ran: a domain test never imports the pages
    if ui is not None:
        ui.release_engines()


@pytest.fixture
def engine(db_url):
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def now():
    return NOW


# --- the real app in a real browser ------------------------------------------------------------

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def _browser_missing_reason() -> str | None:
    if not os.path.exists(CHROMIUM):
        return f"Chromium not found at {CHROMIUM} (apt-get install -y chromium)"
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install -r requirements-dev.txt)"
    return None


def _skip_or_fail(reason: str):
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"browser tests must run in CI: {reason}")
    pytest.skip(reason)


def _free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def live_app(tmp_path_factory):
    """`streamlit run app.py` on a free port, on a fresh SQLite database with demo data, as the
    README starts it. Yields the base URL and the database URL; stopped at the end."""
    import subprocess
    import sys
    from pathlib import Path

    reason = _browser_missing_reason()
    if reason:
        _skip_or_fail(reason)
    root = Path(__file__).resolve().parents[1]
    data = tmp_path_factory.mktemp("live")
    env = {**os.environ, "CLAIMS_DATA_DIR": str(data), "CLAIMS_PSEUDO_LANGUAGE": "1"}
    env.pop("DATABASE_URL", None)
    stack = contextlib.ExitStack()
    db_url = f"sqlite:///{data / 'claims.db'}"
    if ON_POSTGRES:  # the same journeys against the app on PostgreSQL
        db_url = stack.enter_context(_pg_schema(migrated=False))
        env["DATABASE_URL"] = db_url
    subprocess.run([sys.executable, "-m", "claims_core", "demo", "--if-empty", "--orders", "300"],
                   cwd=root, env=env, check=True, capture_output=True, timeout=600)
    owner = ("browser-owner", "browser owner password")
    subprocess.run([sys.executable, "-m", "claims_core", "add-user", owner[0], "--role", "owner"],
                   cwd=root, env=env, check=True, capture_output=True, timeout=120,
                   input=(owner[1] + "\n").encode())
    base = stack.enter_context(running_app(env, data / "streamlit.log"))
    yield {"url": base, "db_url": db_url, "owner": owner}
    stack.close()


@contextlib.contextmanager
def running_app(env: dict, log_path):
    """`streamlit run app.py` (as the README starts it) on a free port on 127.0.0.1, until the
    with-block ends (terminate, then kill if it won't stop). Yields the base URL."""
    import subprocess
    import sys
    import time
    import urllib.request
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    port = _free_port()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
             "--server.headless", "true", "--server.address", "127.0.0.1"],
            cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.time() + 60
            while True:
                try:
                    if urllib.request.urlopen(base + "/_stcore/health", timeout=2).read() == b"ok":
                        break
                except OSError:
                    if proc.poll() is not None or time.time() > deadline:
                        raise RuntimeError("streamlit did not start: " + Path(log_path).read_text())
                    time.sleep(0.2)
            yield base
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture(scope="session")
def browser(live_app):
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()
