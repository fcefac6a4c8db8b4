"""One clock, one time zone: the app's "now" can be injected (for the whole process and the apps
it starts), and every date a person reads is the store's local day, so a shipment's day and its
filing deadline (counted from the same local day) agree at any hour.

The hard hour: just after midnight UTC a New York store is still on the day before. A shipment
fulfilled then is the store's day before; written as its UTC day it looked one day short of the
45-day window ("shipped Nov 27 … you can file until Jan 10").
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import select

from claims_core import domain
from claims_core.adapters import evidence_pack
from claims_core.infra import clock, i18n
from claims_core.infra.db import utcnow, write_session
from claims_core.infra.models import OutboxMessage, StoreSettings
from claims_core.services import customer

from tests.conftest import STORE_TZ, clock_moment
from tests.support.factories import claim_request, make_order
from tests.adapters.test_evidence_pack import _flat, _read
from tests.pages.test_portal_app import portal  # noqa: F401 - the portal under AppTest
from tests.pages.test_staff_app import app, everything, open_claim  # noqa: F401 - staff pages under AppTest

ROOT = Path(__file__).resolve().parents[2]
WINDOW = 45  # the store's default filing window (days)
DAY = r"([A-Z][a-z]+ \d{1,2}, \d{4})"  # a day as the app writes it in English ("November 26, 2026")


def _day(text: str):
    return datetime.strptime(text, "%B %d, %Y").date()


@pytest.fixture
def after_utc_midnight():
    """The app's clock set to 00:05 UTC (the store in New York still on the day before), for this
    test only; the run's own clock (``CLAIMS_TEST_CLOCK``) comes back afterwards."""
    before = clock.shift()
    clock.set_shift(clock.shift_to(clock_moment("after-utc-midnight")))
    yield utcnow()
    clock.set_shift(before.total_seconds())


@pytest.fixture
def new_york_store(engine):
    with write_session(engine) as s:
        s.get(StoreSettings, 1).timezone = STORE_TZ
    return STORE_TZ


def _shipped_at_utc_midnight(engine, now, number="1001"):
    """A delivered shipment fulfilled 10 days ago at this same early UTC hour (the store's day
    before, in its calendar)."""
    shipped = now - timedelta(days=10)
    assert shipped.date() != domain.local_date(shipped, STORE_TZ)  # the hard hour, really
    built = make_order(engine, number, f"c{number}@example.com", base=now, shipments=[
        dict(status="delivered", shipped=shipped, delivered=now - timedelta(days=7),
             items=[("MUG", 3), ("TOTE", 1)])])
    return built, shipped


# --- the clock -----------------------------------------------------------------------------------

def test_the_named_moments_are_the_hard_hours_nearest_the_real_time():
    real = datetime(2026, 12, 7, 2, 6, tzinfo=timezone.utc)
    assert clock_moment("after-utc-midnight", real) == datetime(2026, 12, 7, 0, 5, tzinfo=timezone.utc)
    # 23:30 in New York (EST) is 04:30 UTC the next day
    assert clock_moment("before-store-midnight", real) == datetime(2026, 12, 7, 4, 30,
                                                                   tzinfo=timezone.utc)
    assert clock_moment("real", real) is None
    assert clock_moment("2026-12-07T00:05:00Z") == datetime(2026, 12, 7, 0, 5, tzinfo=timezone.utc)


def test_the_shifted_clock_is_the_apps_clock_and_reaches_subprocesses(after_utc_midnight):
    assert utcnow() - after_utc_midnight < timedelta(seconds=5)
    assert utcnow().hour == 0 and utcnow().minute in (5, 6)
    # a child started now (``streamlit run``, ``python -m claims_core demo``) reads the same clock
    out = subprocess.run(
        [sys.executable, "-c", "from claims_core.infra.db import utcnow; print(utcnow().isoformat())"],
        cwd=ROOT, env={**os.environ}, capture_output=True, text=True, timeout=60, check=True)
    assert abs(datetime.fromisoformat(out.stdout.strip()) - utcnow()) < timedelta(seconds=30)


def test_a_start_instant_ticks_and_is_handed_down_as_a_shift():
    """``CLAIMS_CLOCK_START`` starts the clock at an instant; the process's children inherit the
    running clock (a shift), not a fresh start at that instant."""
    child = ("import json, os, subprocess, sys, time\n"
             "from claims_core.infra.db import utcnow\n"
             "first = utcnow(); time.sleep(1.2)\n"
             "grand = subprocess.run([sys.executable, '-c', 'from claims_core.infra.db import utcnow;"
             " print(utcnow().isoformat())'], capture_output=True, text=True, check=True)\n"
             "print(json.dumps({'first': first.isoformat(), 'grand': grand.stdout.strip(),"
             " 'start': os.environ.get('CLAIMS_CLOCK_START'),"
             " 'shift': os.environ.get('CLAIMS_CLOCK_SHIFT')}))\n")
    env = {k: v for k, v in os.environ.items() if k != clock.SHIFT_ENV}
    env[clock.START_ENV] = "2026-12-07T00:05:00Z"
    out = subprocess.run([sys.executable, "-c", child], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=120, check=True)
    got = json.loads(out.stdout)
    start = datetime(2026, 12, 7, 0, 5, tzinfo=timezone.utc)
    first, grand = datetime.fromisoformat(got["first"]), datetime.fromisoformat(got["grand"])
    assert timedelta(0) <= first - start < timedelta(seconds=5)
    assert timedelta(seconds=1) <= grand - first < timedelta(seconds=30)  # ticking, not restarted
    assert got["start"] is None and float(got["shift"]) != 0


# --- one formatter: the store's local day everywhere ------------------------------------------------

def test_the_formatter_writes_a_moment_as_the_stores_local_day():
    moment = datetime(2026, 12, 7, 2, 6, tzinfo=timezone.utc)  # 21:06 on the 6th in New York
    assert domain.format_date(moment, STORE_TZ) == "December 6, 2026"
    assert domain.format_moment(moment, STORE_TZ) == "December 6, 2026 at 21:06 EST"
    assert i18n.translator("de", tz=STORE_TZ).date(moment) == "6. Dezember 2026"
    assert i18n.translator("de", tz=STORE_TZ)("{d}", d=moment) == "6. Dezember 2026"
    assert i18n.translator("de").date(moment) == "7. Dezember 2026"  # a UTC store: its own day
    with pytest.raises(TypeError):  # a moment without a zone has no day a person should read
        domain.format_date(moment)


def test_order_page_shipped_day_and_deadline_are_45_local_days_apart(
        portal, engine, new_york_store, after_utc_midnight):  # noqa: F811
    built, shipped = _shipped_at_utc_midnight(engine, after_utc_midnight)
    p = portal()
    p.lookup(f"#{built.number}", built.email)
    assert p.titles() == [f"Order #{built.number}"]
    text = p.all_text()
    shown = re.search(r"[Ss]hipped " + DAY, text)
    until = re.search(r"until " + DAY, text)
    assert shown and until, text
    local = domain.local_date(shipped, STORE_TZ)
    assert _day(shown[1]) == local  # the store's day, not the UTC one (a day later)
    assert _day(until[1]) == local + timedelta(days=WINDOW)
    assert (_day(until[1]) - _day(shown[1])).days == WINDOW


def test_staff_claim_page_shipped_day_and_window_agree(app, engine, new_york_store,  # noqa: F811
                                                       after_utc_midnight):
    built, shipped = _shipped_at_utc_midnight(engine, after_utc_midnight)
    r = customer.file_claim(engine, claim_request(built, key="k-clock"), now=after_utc_midnight)
    body = everything(open_claim(app, r.claim_id))
    shown = re.search(r"shipped " + DAY, body)
    until = re.search(r"window until " + DAY, body)
    filed = re.search(r"Filed " + DAY, body)
    assert shown and until and filed, body
    assert _day(shown[1]) == domain.local_date(shipped, STORE_TZ)
    assert (_day(until[1]) - _day(shown[1])).days == WINDOW
    assert _day(filed[1]) == domain.local_date(after_utc_midnight, STORE_TZ)  # still "yesterday"


def test_evidence_pack_and_email_write_the_local_day(engine, new_york_store, after_utc_midnight):
    built, shipped = _shipped_at_utc_midnight(engine, after_utc_midnight)
    r = customer.file_claim(engine, claim_request(built, key="k-pack"), now=after_utc_midnight)
    today = domain.local_date(after_utc_midnight, STORE_TZ)
    assert today == after_utc_midnight.date() - timedelta(days=1)

    flat = _flat(_read(evidence_pack.build(engine, r.claim_id))[1])
    shown = re.search(r"Shipped: " + DAY + r" at \d\d:\d\d EST", flat)
    until = re.search(r"Filing deadline: " + DAY, flat)
    filed = re.search(r"Claim filed: " + DAY + r" at \d\d:\d\d EST", flat)
    generated = re.search(r"Generated: " + DAY, flat)
    assert shown and until and filed and generated, flat
    assert _day(shown[1]) == domain.local_date(shipped, STORE_TZ)
    assert (_day(until[1]) - _day(shown[1])).days == WINDOW
    assert _day(filed[1]) == today and _day(generated[1]) == today

    with write_session(engine) as s:
        mail = s.scalars(select(OutboxMessage).where(OutboxMessage.claim_id == r.claim_id,
                                                     OutboxMessage.to_addr == built.email)).first()
        assert mail is not None
        body = mail.body_text
    assert f"Filed on {domain.format_date(today)}." in body
    assert domain.format_date(after_utc_midnight.date()) not in body  # not the UTC day
