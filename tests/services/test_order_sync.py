"""Order sync (#27): every source parses into the domain's snapshots and one service writes them.

The orders export, Shopify's order webhooks and the API go through ``services/order_sync.py``:
the same unit of work, the same rows, the same ``ORDER_SYNCED`` events. Text and times from files
and payloads are read in one place (``domain.text``).
"""
from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from claims_core.adapters import api_orders, carrier_feeds, importer, shopify_orders, track17
from claims_core.domain import orders as domain_orders
from claims_core.domain.orders import OrderDataError, ShipmentSnapshot, ShippedItem
from claims_core.domain.text import UnreadableTime, read_text, read_time
from claims_core.domain.vocabulary import AuditAction
from claims_core.infra.db import read_session
from claims_core.infra.models import Event, LineItem, Order, OrderRefund, Shipment
from claims_core.services import order_sync
from claims_core.services.unit_of_work import run

from tests.conftest import NOW
from tests.adapters.test_live_feeds import shopify_order as live_feeds_order

CSV = ("Name,Email,Financial Status,Fulfillment Status,Currency,Subtotal,Shipping,Taxes,Total,"
       "Shipping Method,Created at,Lineitem quantity,Lineitem name,Lineitem price,Lineitem sku,"
       "Lineitem requires shipping,Shipping Name,Shipping Address1,Shipping City,Shipping Zip,"
       "Shipping Province,Shipping Country,Id,Risk Level\n"
       "#2001,alex@example.com,paid,,USD,88.00,8.00,0.00,98.95,Standard,2026-11-01 10:00:00 -0500,"
       "2,Hand-thrown Mug,28.00,MUG,true,Alex Kim,12 Elm St,Memphis,38104,TN,US,555001,High\n"
       "#2001,,,,,,,,,,,1,Canvas Tote,32.00,TOTE,true,,,,,,,,\n"
       "#2001,,,,,,,,,,,1,Shipping Protection,2.95,SHIP-PROTECT,false,,,,,,,,\n")


def shopify_order(**changes) -> dict:
    """The live-feed tests' order 2001, as Shopify's webhook sends it."""
    body = live_feeds_order(risk="high")
    body.update(changes)
    return body


PATTERN = r"protect"


def synced_events(engine, order_number=None):
    with read_session(engine) as s:
        q = select(Event).where(Event.action == AuditAction.ORDER_SYNCED).order_by(Event.id)
        if order_number:
            q = q.join(Order, Order.id == Event.order_id).where(Order.order_number == order_number)
        return [(ev.actor, json.loads(ev.details)) for ev in s.scalars(q)]


def order_rows(engine, number):
    """Everything the order sync writes for one order, without ids and the source's own marks."""
    skip = {"id", "order_number", "name", "source", "external_id", "financial_status",
            "source_updated_at", "updated_at"}
    with read_session(engine) as s:
        o = s.scalars(select(Order).where(Order.order_number == number)).one()
        cols = {c.key: getattr(o, c.key) for c in Order.__table__.columns if c.key not in skip}
        lines = [tuple(getattr(li, c.key) for c in LineItem.__table__.columns
                       if c.key not in ("id", "order_id")) for li in o.line_items]
        return cols, lines


# --- the snapshots -------------------------------------------------------------------------------

def test_the_csv_export_and_the_webhook_give_the_same_snapshot():
    [from_csv], report = importer.parse_orders_export(CSV, PATTERN)
    assert report.ok
    from_web = shopify_orders.parse_order(shopify_order(), PATTERN)
    assert from_csv.source == "import" and from_web.source == "shopify"
    same = lambda snap: replace(  # noqa: E731 - what only the source says, left out
        snap, source="", line=0, financial_status="", refunds=None, refunded_total_minor=None,
        lines=tuple(replace(ln, line=0) for ln in snap.lines))
    assert same(from_csv) == same(from_web)
    assert from_web.protection_fee_minor() == 295 and from_web.risk_level == "high"
    with pytest.raises(AttributeError):  # frozen: a parsed order can't be changed on its way
        from_web.email = "someone@example.com"


def test_snapshot_rules_protection_and_stand_in():
    [snap], _ = importer.parse_orders_export(CSV.replace(",paid,,", ",paid,fulfilled,", 1),
                                             PATTERN)
    assert [ln.is_protection for ln in snap.lines] == [False, False, True]
    assert snap.stand_in_lines() == [0, 1]  # the protection line is never shipped
    earlier = snap.created_at - timedelta(days=1)
    assert snap.protection_purchased_at(earlier) == earlier  # a known time is kept
    assert replace(snap, lines=snap.lines[:2]).protection_purchased_at(earlier) is None


def test_shipment_rules_in_the_domain():
    lines = [domain_orders.LineSnapshot("MUG", "Mug", 2, 100), domain_orders.LineSnapshot(
        "SHIP-PROTECT", "Protection", 1, 295, is_protection=True)]
    rows = [type("L", (), dict(id=i, sku=ln.sku, name=ln.name, quantity=ln.quantity,
                               is_protection=ln.is_protection)) for i, ln in enumerate(lines, 1)]
    snap = ShipmentSnapshot("7", "1Z1", NOW, (ShippedItem("MUG", 1, 3), ShippedItem("MUG", 1, 4)),
                            "import")
    assert domain_orders.match_items("7", rows, snap) == {1: 2}
    with pytest.raises(OrderDataError) as refused:
        domain_orders.match_items("7", rows, replace(snap, items=(ShippedItem("SHIP-PROTECT", 1, 5),)))
    assert refused.value.line == 5
    assert "would carry 3" in domain_orders.over_ordered("7", rows, {1: 1}, {1: 2})
    assert domain_orders.over_ordered("7", rows, {}, {1: 2}) is None
    assert domain_orders.shipment_fields(snap, live=True) == {"carrier": "", "shipped_at": NOW}
    with pytest.raises(OrderDataError, match="before shipped_at"):
        domain_orders.check_shipment(replace(snap, status="delivered",
                                             delivered_at=NOW - timedelta(days=1)))


# --- one reader of untrusted text and times ------------------------------------------------------

def test_one_reader_of_text_and_times_for_every_feed():
    assert carrier_feeds._text is read_text
    assert carrier_feeds._Unreadable is UnreadableTime
    assert read_text("  Pat\x00 \u202aLee \n ", 50) == "Pat \u202aLee"
    assert read_text("Mug,\r\nlarge\x07", 50, keep_lines=True) == "Mug,\nlarge"
    assert [read_text(v, 10) for v in (True, None, {"a": 1}, [1], 12, 1.5, "x\ud800y")] == \
        ["", "", "", "", "12", "1.5", "xy"]
    assert track17._text(["not text"]) == "" and track17._text("a\nb") == "a b"
    utc = datetime(2026, 11, 10, 23, 33, tzinfo=timezone.utc)
    for written in ("2026-11-10 18:33:00 -0500", "2026-11-10T18:33:00-05:00", "2026-11-10T23:33Z",
                    "2026-11-10 23:33"):
        assert read_time(written) == utc, written
    assert read_time("2026-11-10T18:33:00-05:00", keep_offset=True).utcoffset() == timedelta(hours=-5)
    for bad in ("yesterday", "1890-01-01", "2026-13-01", 20261110, "9" * 100):
        with pytest.raises(UnreadableTime):
            read_time(bad)


def test_a_payload_with_control_characters_is_stored_cleanly(engine):
    """No database stores NUL: a name with one used to reach the insert as it was."""
    body = shopify_order()
    body["shipping_address"] = dict(body["shipping_address"], name="Alex\x00 Kim")
    body["line_items"][0]["name"] = "Hand-thrown\x00 Mug"
    snap = shopify_orders.parse_order(body, PATTERN)
    run(engine, lambda s: order_sync.upsert_order(s, snap, actor="shopify", now=NOW))
    with read_session(engine) as s:
        o = s.scalars(select(Order)).one()
        assert o.customer_name == "Alex Kim" and o.line_items[0].name == "Hand-thrown Mug"


# --- one service, one set of events ---------------------------------------------------------------

def test_a_csv_import_records_order_synced_like_a_webhook(engine):
    report = importer.import_orders(engine, CSV, protection_pattern=PATTERN)
    assert report.created == 1
    assert synced_events(engine) == [("import", {"source": "import", "created": True})]
    again = importer.import_orders(engine, CSV, protection_pattern=PATTERN)
    assert again.unchanged == 1 and len(synced_events(engine)) == 1  # nothing changed: no event
    changed = importer.import_orders(engine, CSV.replace("98.95", "99.95"),
                                     protection_pattern=PATTERN)
    assert changed.updated == 1
    assert synced_events(engine)[-1] == ("import", {"source": "import", "created": False})


def test_a_preview_records_nothing(engine):
    report = importer.import_orders(engine, CSV, preview=True, protection_pattern=PATTERN)
    assert report.created == 1 and not report.written
    assert synced_events(engine) == []
    with read_session(engine) as s:
        assert s.scalar(select(func.count()).select_from(Order)) == 0


def test_the_same_order_via_csv_and_via_webhook_gives_the_same_rows(engine, db_url):
    importer.import_orders(engine, CSV.replace("#2001", "#3001"), protection_pattern=PATTERN)
    snap = shopify_orders.parse_order(shopify_order(), PATTERN)
    done = run(engine, lambda s: order_sync.upsert_order(s, snap, actor="shopify", now=NOW,
                                                         details={"topic": "orders/create"}))
    assert done.created and done.changed and not done.stale
    assert order_rows(engine, "2001") == order_rows(engine, "3001")
    assert synced_events(engine, "2001") == [
        ("shopify", {"source": "shopify", "created": True, "topic": "orders/create"})]
    with read_session(engine) as s:
        web, csv = (s.scalars(select(Order).where(Order.order_number == n)).one()
                    for n in ("2001", "3001"))
        assert (web.source, csv.source) == ("shopify", "import")


def test_a_replayed_or_older_webhook_changes_nothing_and_records_nothing(engine):
    newer = shopify_orders.parse_order(shopify_order(updated_at="2026-11-05T10:00:00Z",
                                                     cancelled_at="2026-11-05T10:00:00Z"), PATTERN)
    older = shopify_orders.parse_order(shopify_order(updated_at="2026-11-04T10:00:00Z"), PATTERN)
    sync = lambda snap: run(engine, lambda s: order_sync.upsert_order(  # noqa: E731
        s, snap, actor="shopify", now=NOW))
    assert sync(newer).created
    assert not sync(newer).changed
    assert sync(older).stale
    assert len(synced_events(engine)) == 1
    with read_session(engine) as s:
        assert s.scalars(select(Order.cancelled_at)).one() is not None


def test_shipments_and_refunds_go_through_the_service_and_record_events(engine):
    importer.import_orders(engine, CSV, protection_pattern=PATTERN)
    report = importer.import_shipments(engine, (
        "order,tracking_number,carrier,shipped_at,status,sku,quantity\n"
        "#2001,1Z100,UPS,2026-11-02 10:00,in_transit,MUG,2\n"
        "#2001,1Z100,UPS,2026-11-02 10:00,in_transit,TOTE,1\n"
        "#2001,1Z200,UPS,2026-11-02 10:00,in_transit,SHIP-PROTECT,1\n"))
    assert report.created == 1 and [e.line for e in report.skipped_rows] == [4]
    assert synced_events(engine)[-1] == ("import", {"source": "import", "shipment": "created"})

    def refund(s):
        order = order_sync.order_by_external_id(s, "555001")
        return order_sync.add_refund(s, order, shopify_orders.parse_refund(
            {"id": 9, "transactions": [{"kind": "refund", "status": "success", "amount": "5.00"}]},
            order.currency), actor="shopify", now=NOW)

    assert run(engine, refund) is True
    assert run(engine, refund) is False  # the same refund again: by id, once
    with read_session(engine) as s:
        assert s.scalars(select(Order.refunded_cents)).one() == 500
        assert sorted(s.scalars(select(OrderRefund.external_id))) == ["9", "export"]
    assert synced_events(engine)[-1] == ("shopify", {"source": "shopify", "refund": True})


def test_the_api_parses_then_the_service_writes(engine):
    data = {"email": "Kim@Example.com", "customer_name": "Kim", "created_at": NOW,
            "currency": "usd", "total_cents": 3095, "protection_fee_cents": 295,
            "line_items": [{"sku": "MUG", "name": "Mug", "quantity": 1, "unit_price_cents": 2800}],
            "shipments": [{"tracking_number": "1zapi1", "carrier": "UPS", "shipped_at": NOW,
                           "status": "delivered", "delivered_at": NOW - timedelta(hours=1),
                           "items": [{"sku": "MUG", "quantity": 1}]}]}
    with pytest.raises(OrderDataError, match="shipment 1: delivered_at is before shipped_at"):
        api_orders.parse_order("#5001", data)
    data["shipments"][0]["delivered_at"] = NOW + timedelta(days=1)
    snap, shipments = api_orders.parse_order("#5001", data)
    assert snap.protection_fee_minor() == 295 and shipments[0].tracking_number == "1ZAPI1"
    order, created, n = run(engine, lambda s: order_sync.sync_api_order(
        s, snap, shipments, actor="api:key-1", now=NOW))
    assert created and n == 1 and order.source == "api"
    assert [(a, d.get("shipment") or d.get("created")) for a, d in synced_events(engine)] == [
        ("api:key-1", True), ("api:key-1", "created")]
    with read_session(engine) as s:
        assert s.scalars(select(Shipment.status)).one() == "delivered"


def test_the_importer_only_parses():
    """The importer and the other order parsers don't touch the models: the service does."""
    import ast
    import inspect

    for module in (importer, shopify_orders, api_orders):
        tree = ast.parse(inspect.getsource(module))
        imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        assert not {m for m in imported if m.endswith("models") or m.endswith("db")}, module
