"""Live feeds: carrier and Shopify webhooks, the tracking they build, what it changes.

The webhook routes are driven over HTTP (Starlette's test client on the app's own routes), with
real signatures; the tracking rules are checked in the domain and through the services.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from starlette.applications import Starlette
from starlette.testclient import TestClient

from claims_core import domain
from claims_core.adapters import importer, inbound_webhooks, web
from claims_core.services import webhook_receipts
from claims_core.domain.tracking import Checkpoint, TrackingState, hold_reason, summarise
from claims_core.domain.vocabulary import IssueType, Milestone, ShipmentStatus
from claims_core.infra.db import read_session, write_session
from claims_core.infra.models import (Checkpoint as CheckpointRow, Claim, Event, Message, Order,
                                      OrderRefund, OutboxMessage, Shipment, StaffUser,
                                      WebhookReceipt)
from claims_core.services import claim_queue, customer, decisions, order_views, tracking
from claims_core.services.approvals import ResolutionInput

from tests.conftest import NOW
from tests.support.factories import claim_request, make_order

SHOPIFY_SECRET = "shpss_test_secret"
TRACK17_KEY = "track17-test-key"
EASYPOST_SECRET = "easypost-test-secret"


# --- payload builders ----------------------------------------------------------------------------

def _iso(dt) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def track17(number: str, events: list[tuple], *, status: str = "InTransit", eta=None,
            event: str = "TRACKING_UPDATED") -> dict:
    """A 17TRACK push. ``events``: (time, description, location, stage, sub_status), any order."""
    evs = [{"time_iso": _iso(t), "time_utc": _iso(t), "description": d, "location": loc,
            "stage": stage, "sub_status": sub} for t, d, loc, stage, sub in events]
    evs.sort(key=lambda e: e["time_utc"], reverse=True)
    info = {"latest_status": {"status": status, "sub_status": f"{status}_Other"},
            "latest_event": evs[0] if evs else None,
            "time_metrics": {"estimated_delivery_date": {"from": _iso(eta) if eta else None,
                                                         "to": _iso(eta) if eta else None}},
            "tracking": {"providers": [{"provider": {"key": 100002, "name": "UPS"},
                                        "events": evs}]}}
    return {"event": event, "data": {"number": number, "carrier": 100002, "track_info": info}}


def shopify_order(number="2001", *, order_id=555001, email="Alex@Example.com", cancelled_at=None,
                  refunds=(), risk=None) -> dict:
    body = {
        "id": order_id, "name": f"#{number}", "email": email,
        "created_at": "2026-11-01T10:00:00-05:00", "currency": "USD",
        "financial_status": "paid", "fulfillment_status": None, "cancelled_at": cancelled_at,
        "subtotal_price": "88.00", "total_tax": "0.00", "total_price": "98.95",
        "total_shipping_price_set": {"shop_money": {"amount": "8.00", "currency_code": "USD"}},
        "shipping_lines": [{"title": "Standard", "price": "8.00"}],
        "shipping_address": {"name": "Alex Kim", "address1": "12 Elm St", "city": "Memphis",
                             "zip": "38104", "province_code": "TN", "country_code": "US"},
        "line_items": [
            {"id": 1, "sku": "MUG", "name": "Hand-thrown Mug", "quantity": 2, "price": "28.00",
             "total_discount": "0.00", "requires_shipping": True},
            {"id": 2, "sku": "TOTE", "name": "Canvas Tote", "quantity": 1, "price": "32.00",
             "total_discount": "0.00", "requires_shipping": True},
            {"id": 3, "sku": "SHIP-PROTECT", "name": "Shipping Protection", "quantity": 1,
             "price": "2.95", "total_discount": "0.00", "requires_shipping": False},
        ],
        "refunds": [{"id": rid, "transactions": [{"kind": "refund", "status": "success",
                                                  "amount": amt}]} for rid, amt in refunds],
    }
    if risk:
        body["risk_level"] = risk
    return body


def fulfillment(order_id=555001, tracking="1Z999AA10000002001", *, status=None, fid=777001,
                updated="2026-11-03T12:00:00-05:00") -> dict:
    return {"id": fid, "order_id": order_id, "status": "success", "shipment_status": status,
            "created_at": "2026-11-02T09:00:00-05:00", "updated_at": updated,
            "tracking_company": "UPS", "tracking_number": tracking, "tracking_numbers": [tracking],
            "line_items": [{"id": 1, "sku": "MUG", "name": "Hand-thrown Mug", "quantity": 2},
                           {"id": 2, "sku": "TOTE", "name": "Canvas Tote", "quantity": 1}]}


# --- the routes over HTTP --------------------------------------------------------------------------

@pytest.fixture
def secrets_set(monkeypatch, tmp_path):
    monkeypatch.setenv("CLAIMS_SECRETS_FILE", str(tmp_path / "none.toml"))
    monkeypatch.setenv("SHOPIFY_WEBHOOK_SECRET", SHOPIFY_SECRET)
    monkeypatch.setenv("TRACK17_WEBHOOK_KEY", TRACK17_KEY)
    monkeypatch.setenv("EASYPOST_WEBHOOK_SECRET", EASYPOST_SECRET)


@pytest.fixture
def client(db_url, engine, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", db_url)
    app = Starlette(routes=inbound_webhooks.routes())
    with TestClient(app, base_url="http://portal.test") as c:
        yield c
    web._engine_for.cache_clear()


def post_shopify(client, topic: str, body: dict | bytes, *, webhook_id="wh-1", secret=SHOPIFY_SECRET,
                 signature: str | None = None):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    sig = signature if signature is not None else base64.b64encode(
        hmac.new(secret.encode(), raw, hashlib.sha256).digest()).decode()
    return client.post("/webhooks/shopify", content=raw, headers={
        "X-Shopify-Topic": topic, "X-Shopify-Hmac-Sha256": sig, "X-Shopify-Webhook-Id": webhook_id,
        "Content-Type": "application/json"})


def post_17track(client, body: dict | bytes, *, key=TRACK17_KEY, sign: str | None = None):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    sig = sign if sign is not None else hashlib.sha256(raw + b"/" + key.encode()).hexdigest()
    return client.post("/webhooks/17track", content=raw, headers={"sign": sig})


def post_easypost(client, body: dict, *, secret=EASYPOST_SECRET):
    raw = json.dumps(body).encode()
    sig = "hmac-sha256-hex=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    return client.post("/webhooks/easypost", content=raw, headers={"X-Hmac-Signature": sig})


def apply(engine) -> webhook_receipts.ApplyReport:
    """What the background job does every 2 s: apply the receipts the routes stored."""
    return inbound_webhooks.apply_pending_receipts(engine)


def receipt_of(engine, delivery_id: str) -> WebhookReceipt:
    webhook_receipts.move_spooled(engine)  # (SQLite: the routes store in a spool; the job moves it)
    with read_session(engine) as s:
        return s.scalars(select(WebhookReceipt).where(WebhookReceipt.delivery_id == delivery_id)).one()


def last_receipt(engine) -> WebhookReceipt:
    webhook_receipts.move_spooled(engine)
    with read_session(engine) as s:
        return s.scalars(select(WebhookReceipt).order_by(WebhookReceipt.id.desc())).first()


def count(engine, model) -> int:
    with read_session(engine) as s:
        return s.scalar(select(func.count()).select_from(model))


def test_a_route_without_its_secret_is_not_there(client, monkeypatch, tmp_path):
    monkeypatch.setenv("CLAIMS_SECRETS_FILE", str(tmp_path / "none.toml"))
    for name in ("SHOPIFY_WEBHOOK_SECRET", "TRACK17_WEBHOOK_KEY", "EASYPOST_WEBHOOK_SECRET"):
        monkeypatch.delenv(name, raising=False)
    assert post_shopify(client, "orders/create", shopify_order()).status_code == 404
    assert post_17track(client, track17("1Z1", [])).status_code == 404
    assert client.post("/webhooks/easypost", content=b"{}").status_code == 404


def test_the_secret_may_come_from_secrets_toml(client, engine, monkeypatch, tmp_path):
    f = tmp_path / "secrets.toml"
    f.write_text(f'SHOPIFY_WEBHOOK_SECRET = "{SHOPIFY_SECRET}"\n')
    monkeypatch.setenv("CLAIMS_SECRETS_FILE", str(f))
    monkeypatch.delenv("SHOPIFY_WEBHOOK_SECRET", raising=False)
    assert post_shopify(client, "orders/create", shopify_order()).status_code == 200


@pytest.mark.usefixtures("secrets_set")
def test_a_wrong_or_missing_signature_is_401_and_stores_nothing(client, engine):
    body = shopify_order()
    assert post_shopify(client, "orders/create", body, secret="not the secret").status_code == 401
    assert post_shopify(client, "orders/create", body, signature="").status_code == 401
    assert post_17track(client, track17("1Z1", []), key="wrong").status_code == 401
    assert post_easypost(client, {"id": "evt_1"}, secret="wrong").status_code == 401
    # the signature covers the raw bytes: the same JSON re-serialised doesn't verify
    raw = json.dumps(body).encode()
    good = base64.b64encode(hmac.new(SHOPIFY_SECRET.encode(), raw, hashlib.sha256).digest()).decode()
    spaced = json.dumps(body, indent=1).encode()
    assert post_shopify(client, "orders/create", spaced, signature=good).status_code == 401
    assert count(engine, Order) == 0 and count(engine, WebhookReceipt) == 0


@pytest.mark.usefixtures("secrets_set")
def test_bad_bodies_get_a_reason(client, engine):
    r = post_shopify(client, "orders/create", b"{not json")
    assert r.status_code == 400 and "not JSON" in r.json()["error"]
    r = post_shopify(client, "orders/create", {"name": "#1", "line_items": []}, webhook_id="wh-2")
    assert r.status_code == 400 and "email" in r.json()["error"]
    r = post_17track(client, {"event": "TRACKING_UPDATED", "data": "nope"})
    assert r.status_code == 400 and r.json()["error"]
    big = b'{"pad": "' + b"x" * 1_000_001 + b'"}'
    assert post_shopify(client, "orders/create", big, webhook_id="wh-3").status_code == 413
    assert count(engine, Order) == 0 and count(engine, WebhookReceipt) == 0


@pytest.mark.usefixtures("secrets_set")
def test_a_redelivered_webhook_is_acknowledged_and_changes_nothing(client, engine):
    r1 = post_shopify(client, "orders/create", shopify_order(), webhook_id="wh-dup")
    assert r1.status_code == 200 and r1.json()["outcome"] == "received"
    assert count(engine, Order) == 0  # acknowledged at once, applied in the background
    assert apply(engine).applied == 1
    assert receipt_of(engine, "wh-dup").outcome == "applied"
    with read_session(engine) as s:
        events = s.scalar(select(func.count()).select_from(Event))
    changed = shopify_order(email="someone.else@example.com")  # same id, different body
    r2 = post_shopify(client, "orders/create", changed, webhook_id="wh-dup")
    assert r2.status_code == 200 and r2.json()["outcome"] == "duplicate"
    assert not apply(engine)
    with read_session(engine) as s:
        assert s.scalars(select(Order.email)).all() == ["alex@example.com"]
        assert s.scalar(select(func.count()).select_from(Event)) == events


@pytest.mark.usefixtures("secrets_set")
def test_a_shopify_order_is_the_same_order_as_its_csv_export_row(client, engine, db_url, tmp_path):
    r = post_shopify(client, "orders/create", shopify_order(risk="high", refunds=[(91, "10.00")]))
    assert r.status_code == 200
    apply(engine)
    csv = ("Name,Email,Financial Status,Fulfillment Status,Currency,Subtotal,Shipping,Taxes,Total,"
           "Shipping Method,Created at,Lineitem quantity,Lineitem name,Lineitem price,Lineitem sku,"
           "Lineitem requires shipping,Shipping Name,Shipping Address1,Shipping City,Shipping Zip,"
           "Shipping Province,Shipping Country,Id,Risk Level,Refunded Amount\n"
           "#3001,alex@example.com,paid,,USD,88.00,8.00,0.00,98.95,Standard,2026-11-01 10:00:00 -0500,"
           "2,Hand-thrown Mug,28.00,MUG,true,Alex Kim,12 Elm St,Memphis,38104,TN,US,555002,High,10.00\n"
           "#3001,,,,,,,,,,,1,Canvas Tote,32.00,TOTE,true,,,,,,,,,\n"
           "#3001,,,,,,,,,,,1,Shipping Protection,2.95,SHIP-PROTECT,false,,,,,,,,,\n")
    importer.import_orders(engine, csv)
    fields = ("email", "customer_name", "created_at", "currency", "subtotal_cents", "shipping_cents",
              "tax_cents", "total_cents", "protection_fee_cents", "protection_purchased_at",
              "shipping_address1", "shipping_city", "shipping_zip", "shipping_province",
              "shipping_country", "risk_level", "refunded_cents", "cancelled_at")
    with read_session(engine) as s:
        web_order = s.scalars(select(Order).where(Order.order_number == "2001")).one()
        csv_order = s.scalars(select(Order).where(Order.order_number == "3001")).one()
        for f in fields:
            assert getattr(web_order, f) == getattr(csv_order, f), f
        assert web_order.protection_fee_cents == 295 and web_order.risk_level == "high"
        assert web_order.refunded_cents == 1000
        lines = lambda o: [(li.sku, li.quantity, li.unit_price_cents, li.is_protection)  # noqa: E731
                           for li in o.line_items]
        assert lines(web_order) == lines(csv_order)
        assert web_order.external_id == "555001" and web_order.source == "shopify"


@pytest.mark.usefixtures("secrets_set")
def test_cancelled_and_refunded_orders_cannot_take_claims(client, engine):
    post_shopify(client, "orders/create", shopify_order(), webhook_id="a")
    post_shopify(client, "fulfillments/create", fulfillment(), webhook_id="b")
    apply(engine)
    with read_session(engine) as s:
        order_id = s.scalars(select(Order.id)).one()
    view = order_views.get_order_for_customer(engine, order_id, "alex@example.com", now=NOW)
    assert view.claimable
    r = post_shopify(client, "refunds/create", {"id": 92, "order_id": 555001, "transactions": [
        {"kind": "refund", "status": "success", "amount": "98.95"}]}, webhook_id="c")
    assert r.status_code == 200
    apply(engine)
    view = order_views.get_order_for_customer(engine, order_id, "alex@example.com", now=NOW)
    assert not view.claimable and domain.ErrorCode.ORDER_REFUNDED in view.reason_codes
    post_shopify(client, "orders/cancelled",
                 shopify_order(cancelled_at="2026-11-05T10:00:00-05:00"), webhook_id="d")
    apply(engine)
    view = order_views.get_order_for_customer(engine, order_id, "alex@example.com", now=NOW)
    assert domain.ErrorCode.ORDER_CANCELLED in view.reason_codes


@pytest.mark.usefixtures("secrets_set")
def test_a_fulfillment_before_its_order_waits_and_is_applied_when_the_order_arrives(client, engine):
    r = post_shopify(client, "fulfillments/create", fulfillment(status="in_transit"), webhook_id="f1")
    assert r.status_code == 200 and r.json()["outcome"] == "received"
    apply(engine)
    assert receipt_of(engine, "f1").outcome == "waiting"
    assert count(engine, Shipment) == 0
    r = post_shopify(client, "orders/create", shopify_order(), webhook_id="o1")
    assert r.status_code == 200
    apply(engine)
    assert "1 waiting" in receipt_of(engine, "o1").detail
    with read_session(engine) as s:
        sh = s.scalars(select(Shipment)).one()
        assert sh.tracking_number == "1Z999AA10000002001" and sh.carrier == "UPS"
        assert sh.source == "shopify" and sh.external_id == "777001"
        assert sh.status == ShipmentStatus.IN_TRANSIT and sh.milestone == Milestone.IN_TRANSIT
        assert sorted(si.quantity for si in sh.items) == [1, 2]  # the protection line isn't shipped
        assert s.scalars(select(WebhookReceipt.outcome).where(
            WebhookReceipt.delivery_id == "f1")).one() == "applied"


@pytest.mark.usefixtures("secrets_set")
def test_carrier_events_build_the_timeline_whatever_order_they_arrive_in(client, engine):
    built = make_order(engine, "4001", shipments=[dict(
        status="in_transit", shipped=NOW - timedelta(days=5), items=[("MUG", 3), ("TOTE", 1)])])
    number = "TRK4001X0"
    t0 = NOW - timedelta(days=4)
    early = track17(number, [(t0, "Picked up", "Louisville, KY, US", "PickedUp", None),
                             (t0 + timedelta(days=1), "Arrived at Facility", "Memphis, TN, US",
                              None, None)], eta=NOW + timedelta(days=2))
    late = track17(number, [(t0 + timedelta(days=3), "Delivered, front door", "Memphis, TN, US",
                             "Delivered", "Delivered_Other")], status="Delivered")
    assert post_17track(client, late).status_code == 200  # the newest news arrives first
    assert post_17track(client, early).status_code == 200  # then an older one
    apply(engine)
    with read_session(engine) as s:
        sh = s.get(Shipment, built.shipment_ids[0])
        assert sh.status == ShipmentStatus.DELIVERED and sh.milestone == Milestone.DELIVERED
        assert sh.delivered_at == t0 + timedelta(days=3)
        assert sh.last_scan_at == t0 + timedelta(days=3)
        assert s.scalar(select(func.count()).select_from(CheckpointRow)) == 3
    # the same scans again: nothing new
    before = count(engine, Event)
    assert post_17track(client, early).json()["outcome"] == "duplicate"
    assert count(engine, CheckpointRow) == 3 and count(engine, Event) == before
    view = order_views.get_order_for_customer(engine, built.order_id, built.email, now=NOW)
    t = view.shipments[0].tracking
    assert [e.message for e in t.entries] == ["Delivered, front door", "Arrived at Facility",
                                              "Picked up"]
    assert t.milestone == Milestone.DELIVERED and t.step == 3
    assert "not received" in str(t.explanation)


@pytest.mark.usefixtures("secrets_set")
def test_an_event_for_an_unknown_tracking_number_is_kept_until_its_shipment_arrives(client, engine):
    make_order(engine, "4101", shipments=[])
    number = "1Z999AA10000004101"
    r = post_17track(client, track17(number, [(NOW - timedelta(days=2), "Out for delivery",
                                               "Memphis, TN, US", "OutForDelivery", None)],
                                     status="OutForDelivery"))
    assert r.status_code == 200
    apply(engine)
    assert "kept until" in last_receipt(engine).detail
    importer.import_shipments(engine, (
        "order,tracking_number,carrier,shipped_at,status,sku,quantity\n"
        f"#4101,{number},UPS,{(NOW - timedelta(days=3)):%Y-%m-%d %H:%M},fulfilled,MUG,3\n"))
    with read_session(engine) as s:
        sh = s.scalars(select(Shipment).where(Shipment.tracking_number == number)).one()
        assert sh.milestone == Milestone.OUT_FOR_DELIVERY and sh.status == ShipmentStatus.IN_TRANSIT
    # a later CSV import can't wind live tracking back
    importer.import_shipments(engine, (
        "order,tracking_number,carrier,shipped_at,status,sku,quantity\n"
        f"#4101,{number},UPS,{(NOW - timedelta(days=3)):%Y-%m-%d %H:%M},fulfilled,MUG,3\n"))
    with read_session(engine) as s:
        assert s.scalars(select(Shipment.milestone).where(
            Shipment.tracking_number == number)).one() == Milestone.OUT_FOR_DELIVERY


@pytest.mark.usefixtures("secrets_set")
def test_easypost_updates_and_proof_of_delivery(client, engine):
    built = make_order(engine, "4201", shipments=[dict(
        status="in_transit", shipped=NOW - timedelta(days=5), items=[("MUG", 3), ("TOTE", 1)])])
    tracker = {"id": "evt_1", "object": "Event", "description": "tracker.updated",
               "result": {"object": "Tracker", "tracking_code": "TRK4201X0", "carrier": "USPS",
                          "status": "delivered", "signed_by": "DANA W",
                          "updated_at": _iso(NOW - timedelta(hours=3)),
                          "est_delivery_date": _iso(NOW - timedelta(days=1)),
                          "tracking_details": [
                              {"message": "Delivered, In/At Mailbox", "status": "delivered",
                               "datetime": _iso(NOW - timedelta(hours=3)),
                               "tracking_location": {"city": "MEMPHIS", "state": "TN"}}]}}
    r = post_easypost(client, tracker)
    assert r.status_code == 200, r.text
    assert post_easypost(client, tracker).json()["outcome"] == "duplicate"  # same event id
    assert apply(engine).applied == 1
    with read_session(engine) as s:
        sh = s.get(Shipment, built.shipment_ids[0])
        assert sh.status == ShipmentStatus.DELIVERED
    t = order_views.get_order_for_customer(engine, built.order_id, built.email, now=NOW).shipments[0].tracking
    assert t.proof.signed_by == "DANA W" and t.has_proof


# --- eligibility follows live tracking (the domain's one rule) -------------------------------------

class Policy:
    filing_window_days = 45
    lost_wait_days = 7
    timezone = "UTC"


def _issues(status, milestone=None, last_scan_days=1, expected_in_days=None):
    return domain.available_issue_types(
        status, NOW - timedelta(days=20), NOW - timedelta(days=last_scan_days), NOW, 7,
        milestone=milestone,
        expected_delivery_at=None if expected_in_days is None else NOW + timedelta(days=expected_in_days))


def test_not_received_only_once_delivered():
    assert IssueType.NOT_RECEIVED in _issues(ShipmentStatus.DELIVERED, Milestone.DELIVERED)
    for m, st in ((Milestone.IN_TRANSIT, ShipmentStatus.IN_TRANSIT),
                  (Milestone.OUT_FOR_DELIVERY, ShipmentStatus.IN_TRANSIT),
                  (Milestone.INFO_RECEIVED, ShipmentStatus.FULFILLED)):
        assert IssueType.NOT_RECEIVED not in _issues(st, m)


def test_delayed_only_past_the_expected_delivery_day():
    assert IssueType.DELAYED not in _issues(ShipmentStatus.IN_TRANSIT, Milestone.IN_TRANSIT,
                                            expected_in_days=2)
    assert IssueType.DELAYED not in _issues(ShipmentStatus.IN_TRANSIT, Milestone.IN_TRANSIT,
                                            expected_in_days=0)  # today is still the day
    assert IssueType.DELAYED in _issues(ShipmentStatus.IN_TRANSIT, Milestone.IN_TRANSIT,
                                        expected_in_days=-1)
    assert IssueType.DELAYED in _issues(ShipmentStatus.IN_TRANSIT, Milestone.IN_TRANSIT)  # no date
    msg = domain.explain_issue_unavailable(IssueType.DELAYED, ShipmentStatus.IN_TRANSIT, 7,
                                           NOW + timedelta(days=2))
    assert "November 23, 2026" in str(msg)


def test_lost_only_after_the_quiet_period_and_never_at_a_pickup_point():
    assert IssueType.LOST not in _issues(ShipmentStatus.IN_TRANSIT, Milestone.IN_TRANSIT, 6)
    assert IssueType.LOST in _issues(ShipmentStatus.IN_TRANSIT, Milestone.IN_TRANSIT, 7)
    assert IssueType.LOST not in _issues(ShipmentStatus.IN_TRANSIT, Milestone.AVAILABLE_FOR_PICKUP, 30)


def test_the_portal_explains_when_lost_becomes_possible():
    state = TrackingState(Milestone.IN_TRANSIT, ShipmentStatus.IN_TRANSIT, NOW - timedelta(days=1),
                          None, "Memphis, TN, US")
    text = str(domain.tracking.explain(state, None, NOW - timedelta(days=3), NOW, 7, "UTC"))
    assert text.startswith("Your parcel was scanned yesterday in Memphis, TN, US.")
    assert "If it hasn't moved by November 27, 2026 you can report it lost." in text


def test_the_newest_checkpoint_by_time_decides_not_the_last_to_arrive():
    a = Checkpoint(NOW - timedelta(days=2), Milestone.IN_TRANSIT, "Departed")
    b = Checkpoint(NOW - timedelta(days=1), Milestone.DELIVERED, "Delivered")
    c = Checkpoint(NOW, Milestone.RETURNED, "Returned to sender")
    assert summarise([b, a]).milestone == Milestone.DELIVERED
    assert summarise([a, b]).delivered_at == b.at
    after = summarise([c, a, b])
    assert after.milestone == Milestone.RETURNED and after.delivered_at is None


# --- holds on late news ---------------------------------------------------------------------------

def test_hold_reasons():
    filed = NOW - timedelta(days=1)
    scan = [Checkpoint(NOW, Milestone.IN_TRANSIT, "Arrived", "Memphis, TN")]
    older = [Checkpoint(filed - timedelta(hours=1), Milestone.IN_TRANSIT, "Arrived")]
    assert "Memphis, TN" in hold_reason(IssueType.LOST, filed, scan)
    assert hold_reason(IssueType.NOT_RECEIVED, filed, scan)
    assert hold_reason(IssueType.LOST, filed, older) == ""  # known before the claim
    assert hold_reason(IssueType.DELAYED, filed, scan) == ""  # moving isn't arriving
    assert hold_reason(IssueType.DELAYED, filed, [Checkpoint(NOW, Milestone.DELIVERED, "Delivered")])
    assert hold_reason(IssueType.DAMAGED, filed, scan) == ""


@pytest.mark.usefixtures("secrets_set")
def test_a_scan_after_a_lost_claim_holds_it_and_tells_the_agent(client, engine):
    built = make_order(engine, "4301", created=NOW - timedelta(days=25), shipments=[dict(
        status="in_transit", shipped=NOW - timedelta(days=20), last_scan=NOW - timedelta(days=15),
        items=[("MUG", 3), ("TOTE", 1)])])
    with write_session(engine) as s:
        s.add(StaffUser(username="ana", display_name="Ana", role="agent", password_hash="x",
                        email="ana@shop.example", notify_new_claims=True))
    receipt = customer.file_claim(engine, claim_request(built, issue="lost"), now=NOW - timedelta(hours=2))
    r = post_17track(client, track17("TRK4301X0", [(NOW - timedelta(hours=1), "Arrived at Facility",
                                                    "Memphis, TN, US", None, None)]))
    assert r.status_code == 200
    apply(engine)
    assert "1 claims put on hold" in last_receipt(engine).detail
    with read_session(engine) as s:
        claim = s.scalars(select(Claim).where(Claim.reference == receipt.reference)).one()
        assert claim.held_at is not None and "Memphis, TN, US" in claim.hold_reason
        note = s.scalars(select(Message).where(Message.claim_id == claim.id)).one()
        assert note.internal and note.author_kind == "system"
        mail = s.scalars(select(OutboxMessage).where(OutboxMessage.kind == "staff_hold")).one()
        assert mail.to_addr == "ana@shop.example" and receipt.reference in mail.subject
        claim_id, version = claim.id, claim.version
    with pytest.raises(domain.ClaimRuleError) as e:
        decisions.approve(engine, claim_id, "agent:ana", [ResolutionInput("refund", 100)], note="part")
    assert e.value.code == domain.ErrorCode.CLAIM_ON_HOLD
    # the same scan again: no second hold, no second mail
    post_17track(client, track17("TRK4301X0", [(NOW - timedelta(hours=1), "Arrived at Facility",
                                                "Memphis, TN, US", None, None)]))
    apply(engine)
    with read_session(engine) as s:
        assert s.scalar(select(func.count()).select_from(OutboxMessage).where(
            OutboxMessage.kind == "staff_hold")) == 1
        assert s.scalar(select(func.count()).select_from(Claim).where(Claim.held_at.is_not(None))) == 1
    held = claim_queue.queue_page(engine, claim_queue.QueueFilter(tab="all", on_hold=True))
    assert [(r.reference, r.status_label) for r in held.rows] == [(receipt.reference,
                                                                   "Received · on hold")]
    decisions.release_hold(engine, claim_id, "agent:ana", "Checked: it's stuck in Memphis",
                           expected_version=version)
    assert claim_queue.queue_page(engine, claim_queue.QueueFilter(tab="all", on_hold=True)).rows == []
    decisions.approve(engine, claim_id, "agent:ana", [ResolutionInput("refund", 100)], note="part")
    with read_session(engine) as s:
        actions = s.scalars(select(Event.action).where(Event.claim_id == claim_id)).all()
        assert ["hold_placed", "hold_released"] == [a for a in actions if "hold" in a]
    with pytest.raises(domain.ClaimRuleError) as e:
        decisions.release_hold(engine, claim_id, "agent:ana")
    assert e.value.code == domain.ErrorCode.NOT_ON_HOLD


@pytest.mark.usefixtures("secrets_set")
def test_a_delivery_after_a_delayed_claim_holds_it(client, engine):
    built = make_order(engine, "4401", shipments=[dict(
        status="in_transit", shipped=NOW - timedelta(days=6), last_scan=NOW - timedelta(days=1),
        items=[("MUG", 3), ("TOTE", 1)])])
    receipt = customer.file_claim(engine, claim_request(built, issue="delayed"), now=NOW - timedelta(hours=5))
    post_17track(client, track17("TRK4401X0", [(NOW - timedelta(hours=4), "Departed", "Memphis, TN, US",
                                                None, None)]))
    apply(engine)
    with read_session(engine) as s:
        assert s.scalars(select(Claim.held_at).where(Claim.reference == receipt.reference)).one() is None
    post_17track(client, track17("TRK4401X0", [(NOW - timedelta(hours=1), "Delivered", "Memphis, TN, US",
                                                "Delivered", None)], status="Delivered"))
    apply(engine)
    with read_session(engine) as s:
        claim = s.scalars(select(Claim).where(Claim.reference == receipt.reference)).one()
        assert claim.held_at is not None and "delivered" in claim.hold_reason


def test_tracking_record_is_idempotent_at_the_service(engine):
    built = make_order(engine, "4501", shipments=[dict(
        status="in_transit", shipped=NOW - timedelta(days=3), items=[("MUG", 3), ("TOTE", 1)])])
    upd = domain.TrackingUpdate("demo", "trk4501x0", checkpoints=(
        Checkpoint(NOW - timedelta(days=1), Milestone.IN_TRANSIT, "Departed", "Louisville, KY"),))
    from claims_core.services.unit_of_work import run
    first = run(engine, lambda s: tracking.record(s, upd, now=NOW))
    again = run(engine, lambda s: tracking.record(s, upd, now=NOW))
    assert (first.new_checkpoints, first.shipments) == (1, 1)
    assert (again.new_checkpoints, again.holds) == (0, 0)
    with read_session(engine) as s:
        assert s.get(Shipment, built.shipment_ids[0]).last_scan_at == NOW - timedelta(days=1)
        assert s.scalar(select(func.count()).select_from(Event).where(
            Event.action == "tracking_updated")) == 1
        assert s.scalar(select(func.count()).select_from(OrderRefund)) == 0


def test_a_scan_dated_far_in_the_future_is_left_out(engine):
    built = make_order(engine, "4601", shipments=[dict(
        status="in_transit", shipped=NOW - timedelta(days=3), items=[("MUG", 3), ("TOTE", 1)])])
    from claims_core.services.unit_of_work import run
    upd = domain.TrackingUpdate("17track", "TRK4601X0", checkpoints=(
        Checkpoint(NOW - timedelta(days=1), Milestone.IN_TRANSIT, "Departed"),
        Checkpoint(NOW + timedelta(days=30), Milestone.DELIVERED, "Delivered (carrier clock)")))
    out = run(engine, lambda s: tracking.record(s, upd, now=NOW))
    assert out.new_checkpoints == 1
    with read_session(engine) as s:
        assert s.get(Shipment, built.shipment_ids[0]).status == ShipmentStatus.IN_TRANSIT


# --- risk from the shop's own fraud signal and claim velocity ------------------------------------

def test_shopifys_risk_level_and_claims_piling_up_at_one_address_raise_the_risk(engine):
    from claims_core.services import claim_review
    built = make_order(engine, "4701", created=NOW - timedelta(days=20))
    with write_session(engine) as s:
        order = s.get(Order, built.order_id)
        order.risk_level, order.shipping_address1, order.shipping_zip = "high", "9 Oak Ln", "38104"
    for i in range(3):  # other orders, other emails, the same door, recently
        other = make_order(engine, f"47{10 + i}", f"o{i}@example.com", created=NOW - timedelta(days=20),
                           tracking_prefix=f"V{i}")
        with write_session(engine) as s:
            o = s.get(Order, other.order_id)
            o.shipping_address1, o.shipping_zip = "9 Oak Ln", "38104"
        customer.file_claim(engine, claim_request(other, key=f"v{i}"), now=NOW - timedelta(days=i + 1))
    r = customer.file_claim(engine, claim_request(built, key="main"), now=NOW)
    view = claim_review.claim_for_staff(engine, r.claim_id)
    labels = {sig.label: sig.detail for sig in view.signals}
    assert labels["Shopify's fraud analysis"] == "high risk order"
    assert labels["Many recent claims at this address"].startswith("3 in the 60 days")
    assert view.risk_level == "high" and view.order_risk_level == "high"


# --- simulate-tracking posts what a carrier would ------------------------------------------------

@pytest.mark.usefixtures("secrets_set")
def test_simulate_tracking_moves_parcels_through_the_real_route(client, engine):
    from claims_core.adapters import demo_tracking
    built = make_order(engine, "4801", shipments=[dict(
        status="in_transit", shipped=NOW - timedelta(days=2), items=[("MUG", 3), ("TOTE", 1)])])
    posted = []

    def post(url, content, headers):
        posted.append(url)
        status = client.post(url.removeprefix("http://portal.test"), content=content,
                             headers=headers).status_code
        apply(engine)  # the app's background job, between two rounds
        return status

    moved = demo_tracking.simulate(engine, "http://portal.test", TRACK17_KEY, count=5, rounds=3,
                                   post=post)
    # out for delivery, then delivered; delivered parcels aren't moved again
    assert [(m.milestone, m.status_code) for m in moved] == [("out_for_delivery", 200),
                                                             ("delivered", 200)]
    assert posted[0] == "http://portal.test/webhooks/17track"
    with read_session(engine) as s:
        assert s.get(Shipment, built.shipment_ids[0]).status == ShipmentStatus.DELIVERED


def test_demo_histories_agree_with_each_shipments_status(engine):
    from claims_core.adapters import demo
    demo.generate(engine, orders=120, create_staff=False, log=lambda *_: None)
    with read_session(engine) as s:
        rows = s.execute(select(Shipment.tracking_number, Shipment.status, Shipment.milestone)
                         .where(Shipment.milestone.is_not(None))).all()
        assert len(rows) > 10
        for number, status, milestone in rows:
            facts = tracking.checkpoint_facts(s.scalars(select(CheckpointRow).where(
                CheckpointRow.tracking_number == number)))
            assert summarise(facts).status == status, number
            assert max(c.at for c in facts) <= utcnow_()


def utcnow_():
    from claims_core.infra.db import utcnow
    return utcnow()


@pytest.mark.usefixtures("secrets_set")
def test_tracking_stopped_is_remembered_and_said(client, engine):
    built = make_order(engine, "4901", shipments=[dict(
        status="in_transit", shipped=NOW - timedelta(days=9), items=[("MUG", 3), ("TOTE", 1)])])
    post_17track(client, track17("TRK4901X0", [(NOW - timedelta(days=8), "Departed", "Memphis, TN, US",
                                                None, None)]))
    r = post_17track(client, {"event": "TRACKING_STOPPED", "data": {"number": "TRK4901X0",
                                                                    "carrier": 100002}})
    assert r.status_code == 200, r.text
    apply(engine)
    t = order_views.get_order_for_customer(engine, built.order_id, built.email, now=NOW).shipments[0].tracking
    assert t.stopped and t.milestone == Milestone.IN_TRANSIT


def test_concurrent_deliveries_for_one_parcel_end_on_the_newest_scan(engine):
    """20 carrier events for one parcel at once, in shuffled order: every scan is stored and the
    shipment ends on the newest (PostgreSQL: the tracking row's lock makes them take turns)."""
    import random
    from concurrent.futures import ThreadPoolExecutor
    from claims_core.services.unit_of_work import run
    built = make_order(engine, "5101", shipments=[dict(
        status="in_transit", shipped=NOW - timedelta(days=5), items=[("MUG", 3), ("TOTE", 1)])])
    times = [NOW - timedelta(hours=40 - i) for i in range(20)]
    updates = [domain.TrackingUpdate("17track", "TRK5101X0", checkpoints=(
        Checkpoint(t, Milestone.DELIVERED if i == 19 else Milestone.IN_TRANSIT, f"Scan {i}"),))
        for i, t in enumerate(times)]
    random.Random(7).shuffle(updates)
    with ThreadPoolExecutor(max_workers=10) as ex:
        list(ex.map(lambda u: run(engine, lambda s: tracking.record(s, u, now=NOW)), updates))
    with read_session(engine) as s:
        sh = s.get(Shipment, built.shipment_ids[0])
        assert (sh.status, sh.last_scan_at) == (ShipmentStatus.DELIVERED, times[-1])
        assert s.scalar(select(func.count()).select_from(CheckpointRow)) == 20


# --- found in review ---------------------------------------------------------------------------

@pytest.mark.usefixtures("secrets_set")
def test_one_bad_waiting_event_doesnt_stop_its_order(client, engine):
    wrong = fulfillment(tracking="1ZWRONG0000000001", fid=1)
    wrong["line_items"][0]["quantity"] = 2
    right = fulfillment(tracking="1ZRIGHT0000000001", fid=2)
    assert post_shopify(client, "fulfillments/create", wrong, webhook_id="w1").status_code == 200
    assert post_shopify(client, "fulfillments/create", right, webhook_id="w2").status_code == 200
    apply(engine)
    assert receipt_of(engine, "w1").outcome == receipt_of(engine, "w2").outcome == "waiting"
    r = post_shopify(client, "orders/create", shopify_order(), webhook_id="o1")
    assert r.status_code == 200, r.text
    apply(engine)
    with read_session(engine) as s:
        assert s.scalars(select(Order.order_number)).all() == ["2001"]
        outcomes = dict(s.execute(select(WebhookReceipt.delivery_id, WebhookReceipt.outcome)).all())
        assert outcomes["w1"] == "applied" and outcomes["w2"] == "rejected"
        assert "would carry" in s.scalars(select(WebhookReceipt.detail).where(
            WebhookReceipt.delivery_id == "w2")).one()


@pytest.mark.usefixtures("secrets_set")
def test_a_corrected_tracking_number_updates_the_shipment(client, engine):
    post_shopify(client, "orders/create", shopify_order(), webhook_id="o")
    post_shopify(client, "fulfillments/create", fulfillment(tracking="1ZTYPO", fid=5), webhook_id="f1")
    r = post_shopify(client, "fulfillments/update", fulfillment(tracking="1ZFIXED", fid=5),
                     webhook_id="f2")
    assert r.status_code == 200, r.text
    apply(engine)
    with read_session(engine) as s:
        assert s.scalars(select(Shipment.tracking_number)).all() == ["1ZFIXED"]


@pytest.mark.usefixtures("secrets_set")
def test_an_older_order_update_arriving_late_doesnt_undo_a_cancellation(client, engine):
    cancelled = shopify_order(cancelled_at="2026-11-05T10:00:00-05:00")
    cancelled["updated_at"] = "2026-11-05T10:00:00-05:00"
    older = shopify_order()
    older["updated_at"] = "2026-11-04T09:00:00-05:00"
    post_shopify(client, "orders/cancelled", cancelled, webhook_id="c")
    r = post_shopify(client, "orders/updated", older, webhook_id="u")
    assert r.status_code == 200
    apply(engine)
    assert receipt_of(engine, "u").outcome == "ignored"
    with read_session(engine) as s:
        assert s.scalars(select(Order.cancelled_at)).one() is not None


@pytest.mark.usefixtures("secrets_set")
def test_odd_shapes_in_a_signed_body_are_a_400_not_a_crash(client, engine):
    for i, (field, value) in enumerate((("total_shipping_price_set", {"shop_money": "x"}),
                                         ("refunds", [{"id": 1, "transactions": 5}]),
                                         ("shipping_lines", 7))):
        body = shopify_order()
        body[field] = value
        r = post_shopify(client, "orders/create", body, webhook_id=f"odd{i}")
        assert r.status_code == 400, (field, r.status_code, r.text)
    assert count(engine, Order) == 0


@pytest.mark.usefixtures("secrets_set")
def test_the_portals_own_refund_isnt_counted_as_refunded_outside_the_claim(client, engine):
    post_shopify(client, "orders/create", shopify_order(), webhook_id="o")
    r = post_shopify(client, "refunds/create", {"id": 77, "order_id": 555001,
                                                "note": "Claim CLM-ABC123 (CLM-ABC123/R4), approved",
                                                "transactions": [{"kind": "refund", "status": "success",
                                                                  "amount": "98.95"}]}, webhook_id="r")
    assert r.status_code == 200
    apply(engine)
    with read_session(engine) as s:
        assert s.scalars(select(Order.refunded_cents)).one() == 0
