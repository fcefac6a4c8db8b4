"""#23: on SQLite the webhook routes store receipts in a spool file of their own
(``infra/spool``), so they never wait behind a customer's write transaction; the background job
moves them into ``webhook_receipts`` (in order, once) and applies them from there."""
from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import create_engine, select, text

from claims_core.infra import spool as spool_db
from claims_core.infra.db import read_session, write_session
from claims_core.infra.models import WebhookReceipt
from claims_core.services import customer_data, health, webhook_receipts
from claims_core.services.webhook_receipts import Delivery

from tests.conftest import ON_POSTGRES

sqlite_only = pytest.mark.skipif(ON_POSTGRES, reason="PostgreSQL writers don't queue: no spool")


def deliver(engine, n: int, *, key: str = "track:TRK1", body: str = "{}") -> str:
    return webhook_receipts.store(engine, Delivery("17track", f"d-{n}", "TRACKING_UPDATED", key,
                                                   body)).outcome


def stored(engine) -> list[tuple[str, str]]:
    with read_session(engine) as s:
        return [tuple(r) for r in s.execute(select(WebhookReceipt.delivery_id,
                                                   WebhookReceipt.status)
                                            .order_by(WebhookReceipt.id))]


def spooled_ids(engine) -> list[str]:
    spool = spool_db.for_database(engine)
    with read_session(spool) as s:
        t = spool_db.spooled_receipts
        return list(s.scalars(select(t.c.delivery_id).order_by(t.c.id)))


def test_postgresql_has_no_spool_and_sqlite_keeps_it_beside_the_database(engine):
    spool = spool_db.for_database(engine)
    if ON_POSTGRES:
        assert spool is None
        assert deliver(engine, 1) == "received"
        assert stored(engine) == [("d-1", "pending")]  # straight into webhook_receipts
        return
    assert spool is not None
    assert spool.url.database == str(spool_db.path_for(engine.url.database))
    assert spool.url.database.endswith("claims-webhook-spool.db")
    assert spool_db.for_database(create_engine("sqlite://")) is None  # in memory


@sqlite_only
def test_a_route_stores_while_a_customer_holds_the_write_lock(engine):
    """A customer's transaction holds the main file's write lock for 3 s: a receipt is stored
    (and the route could answer) at once all the same. Stored in webhook_receipts, it waited
    the whole 3 s."""
    held, release = threading.Event(), threading.Event()

    def customer():
        with write_session(engine) as s:
            s.execute(text("SELECT 1"))  # BEGIN IMMEDIATE: the write lock is held from here
            held.set()
            release.wait(3)

    t = threading.Thread(target=customer)
    t.start()
    try:
        assert held.wait(5)
        t0 = time.perf_counter()
        assert deliver(engine, 1) == "received"
        took = time.perf_counter() - t0
    finally:
        release.set()
        t.join()
    assert took < 1.0, f"the receipt waited {took:.2f} s for the customer's write lock"
    assert spooled_ids(engine) == ["d-1"] and stored(engine) == []


@sqlite_only
def test_the_job_moves_spooled_receipts_in_order_then_applies_them(engine):
    for n in range(5):
        assert deliver(engine, n, key=f"track:TRK{n % 2}") == "received"
    assert spooled_ids(engine) == [f"d-{n}" for n in range(5)]
    # staff and /metrics count them as pending before they are moved
    assert webhook_receipts.receipts_needing_attention(engine)[0] == 5
    assert ("17track", "pending", 5) in health.counts(engine).webhooks_received

    applied = []

    def apply(s, items, now):
        applied.extend(r.delivery_id for r, _ in items)
        return [webhook_receipts.Outcome("applied") for _ in items]
    reader = webhook_receipts.Reader(prepare=lambda *a: None, apply=apply,
                                     tracking_updates=lambda *a: [])
    report = webhook_receipts.apply_pending_receipts(engine, reader)
    assert report.applied == 5
    assert applied == [f"d-{n}" for n in range(5)]  # in the order received
    assert stored(engine) == [(f"d-{n}", "done") for n in range(5)]
    assert spooled_ids(engine) == []
    assert webhook_receipts.receipts_needing_attention(engine)[0] == 0


@sqlite_only
def test_a_redelivery_is_a_duplicate_whether_spooled_or_moved(engine):
    assert deliver(engine, 1) == "received"
    assert deliver(engine, 1) == "duplicate"  # still in the spool
    assert webhook_receipts.move_spooled(engine) == 1
    assert deliver(engine, 1) == "duplicate"  # moved: found in webhook_receipts
    assert spooled_ids(engine) == [] and stored(engine) == [("d-1", "pending")]


@sqlite_only
def test_moving_twice_at_once_or_again_after_a_crash_stores_each_receipt_once(engine,
                                                                             monkeypatch):
    for n in range(40):
        deliver(engine, n, key=f"track:TRK{n}")
    # a crash after the insert, before the spool was emptied
    real_delete = spool_db.spooled_receipts.delete

    def crash():
        raise RuntimeError("the process died here")
    monkeypatch.setattr(spool_db.spooled_receipts, "delete", crash)
    with pytest.raises(RuntimeError):
        webhook_receipts.move_spooled(engine)
    monkeypatch.setattr(spool_db.spooled_receipts, "delete", real_delete)
    assert len(stored(engine)) == 40 and len(spooled_ids(engine)) == 40
    # then two movers at once (the app and a worker)
    threads = [threading.Thread(target=webhook_receipts.move_spooled, args=(engine,))
               for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [d for d, _ in stored(engine)] == [f"d-{n}" for n in range(40)]
    assert spooled_ids(engine) == []


@sqlite_only
def test_a_customer_export_and_erasure_reach_a_body_still_spooled(engine):
    """Only a Shopify body received a moment ago (still spooled) says order #7001 is Sam's: the
    export finds the order through it, and the erasure removes Sam from the body."""
    import io
    import json
    import zipfile

    from tests.support.factories import make_order
    make_order(engine, "7001", email="old-address@example.com")
    with write_session(engine) as s:
        s.execute(text("UPDATE orders SET external_id = '4242'"))
    body = json.dumps({"id": 4242, "email": "sam@example.com", "line_items": [],
                       "phone": "+1 555 0100"})
    assert webhook_receipts.store(engine, Delivery("shopify", "o-1", "orders/updated",
                                                   "shopify:4242", body)).outcome == "received"
    assert spooled_ids(engine) == ["o-1"]

    export = zipfile.ZipFile(io.BytesIO(customer_data.export_customer(engine, "sam@example.com")))
    assert [o["order"] for o in json.loads(export.read("data.json"))["orders"]] == ["#7001"]

    customer_data.erase_customer(engine, "sam@example.com", actor="owner")
    assert spooled_ids(engine) == []
    with read_session(engine) as s:
        assert "sam@example.com" not in s.scalar(select(WebhookReceipt.payload))
    spool_file = spool_db.path_for(engine.url.database)
    for f in (spool_file, spool_file.with_name(spool_file.name + "-wal")):
        if f.exists():  # zeroed when deleted (secure_delete), and the WAL emptied
            assert b"sam@example.com" not in f.read_bytes(), f
