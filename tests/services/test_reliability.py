"""Concurrency, idempotency, throttling and hostile input (runs on SQLite and PostgreSQL)."""
from __future__ import annotations

import threading
import time
import tomllib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from claims_core import domain
from claims_core.adapters import importer
from claims_core.infra import photos
from claims_core.infra.db import write_session
from claims_core.infra.models import (
    Claim,
    ClaimItem,
    Event,
    LineItem,
    Order,
    Shipment,
    ShipmentItem,
)
from claims_core.services import customer, lookup, order_views

from tests.conftest import NOW
from tests.support.factories import make_order

ROOT = Path(__file__).resolve().parents[2]


def _bulk_orders(engine, n: int, prefix: str = "C") -> list[tuple[int, int, int, str]]:
    """n protected, delivered one-item orders; returns (order_id, shipment_id, item_id, email)."""
    from datetime import timedelta
    made = []
    with write_session(engine) as s:
        for i in range(n):
            li = LineItem(position=1, sku="MUG", name="Mug", quantity=1, unit_price_cents=2800)
            email = f"{prefix.lower()}{i}@example.com"
            o = Order(order_number=f"{prefix}{i}", name=f"#{prefix}{i}", email=email,
                      created_at=NOW - timedelta(days=12), total_cents=2800,
                      protection_fee_cents=195, protection_purchased_at=NOW - timedelta(days=12),
                      line_items=[li])
            sh = Shipment(order=o, tracking_number=f"{prefix}T{i}", carrier="UPS", status="delivered",
                          shipped_at=NOW - timedelta(days=10), delivered_at=NOW - timedelta(days=8),
                          items=[ShipmentItem(line_item=li, quantity=1)])
            s.add_all([o, sh])
            made.append((o, sh, email))
        s.flush()
        return [(o.id, sh.id, sh.items[0].id, email) for o, sh, email in made]


def _request(order_id, shipment_id, item_id, email, key):
    return customer.ClaimRequest(
        idempotency_key=key, order_id=order_id, email=email, shipment_id=shipment_id,
        issue_type="missing_item", items={item_id: 1}, desired_resolution="refund",
        signature_kind="typed", signature_name="Pat Doe", accurate_confirmed=True)


def _run_all(fns, workers=200):
    barrier = threading.Barrier(min(workers, len(fns)))
    results, errors, times = [], [], []

    def go(fn):
        barrier.wait()
        t0 = time.perf_counter()
        try:
            results.append(fn())
        except Exception as e:  # noqa: BLE001 - the test counts every kind
            errors.append(e)
        times.append(time.perf_counter() - t0)

    with ThreadPoolExecutor(max_workers=workers) as ex:
        list(ex.map(go, fns))
    return results, errors, times


@pytest.mark.slow
def test_200_concurrent_claims_for_different_orders(engine):
    orders = _bulk_orders(engine, 200)
    fns = [lambda o=o, i=i: customer.file_claim(engine, _request(*o, key=f"par-{i}"), now=NOW)
           for i, o in enumerate(orders)]
    results, errors, times = _run_all(fns)
    assert errors == [] and len(results) == 200
    with write_session(engine) as s:
        assert s.scalar(select(func.count()).select_from(Claim)) == 200
        assert s.scalar(select(func.count()).select_from(Event)
                        .where(Event.action == "claim_filed")) == 200
    assert len({r.reference for r in results}) == 200


@pytest.mark.slow
def test_200_concurrent_claims_for_the_same_item(engine):
    [o] = _bulk_orders(engine, 1)
    fns = [lambda i=i: customer.file_claim(engine, _request(*o, key=f"same-{i}"), now=NOW)
           for i in range(200)]
    results, errors, _ = _run_all(fns)
    assert len(results) == 1 and len(errors) == 199
    assert all(isinstance(e, domain.AlreadyClaimed) for e in errors), {type(e) for e in errors}
    assert all("already" in e.message for e in errors)
    with write_session(engine) as s:
        assert s.scalar(select(func.count()).select_from(Claim)) == 1
        assert s.scalar(select(func.count()).select_from(ClaimItem)) == 1


def test_idempotency_key_replayed_five_times_at_once(engine):
    [o] = _bulk_orders(engine, 1)
    fns = [lambda: customer.file_claim(engine, _request(*o, key="replay-me"), now=NOW)] * 5
    results, errors, _ = _run_all(fns, workers=5)
    assert errors == [] and len(results) == 5
    assert len({(r.claim_id, r.reference, r.access_token, r.status, r.claimed_cents)
                for r in results}) == 1
    assert sum(r.created for r in results) == 1
    with write_session(engine) as s:
        assert s.scalar(select(func.count()).select_from(Claim)) == 1
        assert s.scalar(select(func.count()).select_from(Event)) == 1


# --- throttling ---------------------------------------------------------------------------------

def _miss(engine, query, email, client, sleeps):
    with pytest.raises(domain.ClaimRuleError) as e:
        lookup.guarded_lookup(engine, query, email, client, now=NOW, sleep=sleeps.append)
    return e.value


def test_eleventh_miss_on_one_order_number_is_refused(engine):
    make_order(engine)
    sleeps: list = []
    for i in range(10):  # from ten different clients
        err = _miss(engine, "1001", f"guess{i}@example.com", f"10.0.0.{i}", sleeps)
        assert err.message == domain.LOOKUP_FAILED
    err = _miss(engine, "#1001", "sam@example.com", "10.9.9.9", sleeps)  # right email, new client
    assert isinstance(err, domain.TooManyAttempts)
    assert sleeps and max(sleeps) <= lookup.MAX_DELAY_SECONDS  # slowed down before refusing
    assert sleeps == sorted(sleeps)
    # a different order from a fresh client is unaffected
    make_order(engine, "1002", "b@example.com", tracking_prefix="B")
    assert lookup.guarded_lookup(engine, "1002", "b@example.com", "10.1.1.1", now=NOW,
                                 sleep=lambda s: None).name == "#1002"


def test_eleventh_miss_from_one_client_is_refused(engine):
    make_order(engine)
    sleeps: list = []
    for i in range(10):  # walking through order numbers
        _miss(engine, str(5000 + i), "sam@example.com", "203.0.113.7", sleeps)
    err = _miss(engine, "1001", "sam@example.com", "203.0.113.7", sleeps)
    assert isinstance(err, domain.TooManyAttempts)


def test_throttle_window_moves_on(engine):
    from datetime import timedelta
    make_order(engine)
    for i in range(10):
        with pytest.raises(domain.OrderNotFound):
            lookup.guarded_lookup(engine, "1001", f"x{i}@example.com", "c", now=NOW, sleep=lambda s: None)
    later = NOW + timedelta(minutes=11)
    assert lookup.guarded_lookup(engine, "1001", "sam@example.com", "c", now=later,
                                 sleep=lambda s: None).name == "#1001"


def test_emails_compared_in_constant_time(monkeypatch):
    calls = []
    from claims_core.domain import identifiers
    real = identifiers.hmac.compare_digest
    monkeypatch.setattr(identifiers.hmac, "compare_digest", lambda a, b: calls.append((a, b)) or real(a, b))
    assert domain.emails_match(" A@B.C ", "a@b.c")
    assert calls == [(b"a@b.c", b"a@b.c")]


def test_lookup_compares_the_email_even_when_the_order_does_not_exist(engine, monkeypatch):
    calls = []
    monkeypatch.setattr(domain, "emails_match", lambda a, b: calls.append(b) or False)
    with pytest.raises(domain.OrderNotFound):
        order_views._lookup_order(engine, "nope", "x@example.com")
    assert len(calls) == 1  # same work either way: timing doesn't tell which part was wrong


# --- configuration ------------------------------------------------------------------------------

def test_streamlit_config_keeps_xsrf_and_matches_the_upload_cap():
    cfg = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert cfg["server"]["enableXsrfProtection"] is True
    # The upload widget counts decimal megabytes (20 "MB" refused a 19.5 MiB photo while the app
    # allowed 20 MiB): the app's cap is in the same megabytes, so both say, and mean, 20 MB.
    assert cfg["server"]["maxUploadSize"] * 1_000_000 == photos.DEFAULT_MAX_BYTES
    from claims_core.infra.models import StoreSettings
    assert StoreSettings.__table__.c.max_photo_bytes.default.arg == photos.DEFAULT_MAX_BYTES


# --- fuzzing ------------------------------------------------------------------------------------

FUZZ = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@FUZZ
@given(query=st.text(max_size=80), email=st.text(max_size=80))
def test_fuzz_order_lookup_only_clear_errors(engine, query, email):
    try:
        order_views._lookup_order(engine, query, email, now=NOW)
    except domain.OrderNotFound as e:
        assert e.message == domain.LOOKUP_FAILED


CSV_HEADER = ("Name,Email,Created at,Fulfilled at,Lineitem quantity,Lineitem name,Lineitem price,"
              "Lineitem sku,Total,Cancelled at\n")
cell = st.one_of(st.text(max_size=12), st.sampled_from(["#1", "1", "-3", "2026-10-01 10:00",
                                                         "x@y.z", "1e309", "NaN", "", "\"", "\n"]))


@FUZZ
@given(rows=st.lists(st.lists(cell, min_size=0, max_size=12), max_size=6),
       raw=st.binary(max_size=200))
def test_fuzz_shopify_import_only_clear_errors(engine, rows, raw):
    import csv
    import io
    buf = io.StringIO()
    w = csv.writer(buf)
    for r in rows:
        w.writerow(r)
    for data in (CSV_HEADER + buf.getvalue(), raw):
        try:
            report = importer.import_orders(engine, data if isinstance(data, bytes) else data.encode(),
                                            preview=True)
        except importer.ImportFileError as e:
            assert e.message
        else:
            assert all(err.line >= 2 and err.reason for err in report.skipped_rows)


@pytest.mark.slow
def test_a_login_flood_does_not_block_customers_filing(engine, monkeypatch):
    """Eight threads hammering the staff log-in (right and wrong passwords) while 30 customers
    file: every filing stores. (With Argon2 inside BEGIN IMMEDIATE, 11 of 30 failed with
    "database is locked".)"""
    import threading

    from claims_core.services import accounts

    accounts.add_user(engine, "flood", "agent", "a long password")
    orders = _bulk_orders(engine, 30, prefix="F")
    stop = threading.Event()

    def flood(i):
        while not stop.is_set():
            try:
                accounts.authenticate(engine, "flood", "a long password" if i % 2 else "wrong",
                                      client=f"10.9.9.{i}", sleep=lambda s: None)
            except accounts.AuthError:
                pass

    flooders = [threading.Thread(target=flood, args=(i,)) for i in range(8)]
    for t in flooders:
        t.start()
    try:
        fns = [lambda o=o, i=i: customer.file_claim(engine, _request(*o, key=f"flood-{i}"), now=NOW)
               for i, o in enumerate(orders)]
        results, errors, _ = _run_all(fns, workers=30)
    finally:
        stop.set()
        for t in flooders:
            t.join()
    assert errors == [] and len(results) == 30
