"""Tracking numbers registered with 17TRACK by themselves (#23), against a fake 17TRACK
(pytest-httpserver) that checks the v2.2 register call's shape and answers as 17TRACK documents:
``{"code": 0, "data": {"accepted": [{origin, number, carrier, tag}], "rejected": [{number, tag,
error: {code, message}}]}}``."""
from __future__ import annotations

import json
from datetime import timedelta

import pytest
from pytest_httpserver import HTTPServer
from sqlalchemy import select
from werkzeug import Request, Response

from claims_core.adapters import importer, inbound_webhooks, track17
from claims_core.infra.db import read_session, utcnow, write_session
from claims_core.infra.models import Track17Registration
from claims_core.services import track17_registration

from tests.conftest import NOW
from tests.support.factories import make_order
from tests.pages.test_staff_app import app  # noqa: F401  (the staff AppTest fixture)

KEY = "17track-api-test-key"
CANT_DETECT = -18019903


class Fake17Track:
    """17TRACK's register endpoint: every call is checked against the documented shape."""

    def __init__(self, server: HTTPServer):
        self.server = server
        self.calls: list[list[dict]] = []
        self.fail_with: int | None = None  # answer this HTTP status instead
        self.code = 0  # the answer's "code"
        server.expect_request("/track/v2.2/register", method="POST").respond_with_handler(self.handle)

    def handle(self, request: Request) -> Response:
        assert request.headers.get("17token") == KEY
        assert request.headers.get("Content-Type", "").startswith("application/json")
        body = json.loads(request.get_data())
        assert isinstance(body, list) and 1 <= len(body) <= 40
        for item in body:
            assert set(item) <= {"number", "carrier"} and isinstance(item["number"], str)
            assert "carrier" not in item or isinstance(item["carrier"], int)
        self.calls.append(body)
        if self.fail_with:
            return Response("unavailable", status=self.fail_with)
        if self.code:
            return Response(json.dumps({"code": self.code, "data": {"errors": [
                {"code": self.code, "message": "Invalid security key."}]}}),
                content_type="application/json")
        accepted, rejected = [], []
        for item in body:
            n = item["number"]
            if n.startswith("BAD"):
                rejected.append({"number": n, "tag": "", "error": {
                    "code": CANT_DETECT, "message": "Carrier cannot be detected. Visit carrier "
                                                   "info for carrier code and send as a parameter."}})
            elif n.startswith("OLD"):
                rejected.append({"number": n, "tag": "", "error": {
                    "code": track17_registration.ALREADY_REGISTERED,
                    "message": f"Tracking number {n} is already registered."}})
            else:
                accepted.append({"origin": 1, "number": n, "carrier": item.get("carrier", 0),
                                 "tag": ""})
        return Response(json.dumps({"code": 0, "data": {"accepted": accepted, "rejected": rejected}}),
                        content_type="application/json")


@pytest.fixture
def fake(httpserver: HTTPServer, monkeypatch, tmp_path):
    monkeypatch.setenv("CLAIMS_SECRETS_FILE", str(tmp_path / "none.toml"))
    monkeypatch.setenv("TRACK17_API_KEY", KEY)
    monkeypatch.setenv("CLAIMS_TRACK17_BASE_URL", httpserver.url_for("/").rstrip("/"))
    return Fake17Track(httpserver)


def rows(engine) -> dict[str, Track17Registration]:
    with read_session(engine) as s:
        return {r.tracking_number: r for r in s.scalars(select(Track17Registration))}


def import_shipments(engine, numbers: list[str], carrier="UPS"):
    for i, _n in enumerate(numbers):
        make_order(engine, f"70{i:02d}", shipments=[])
    shipped = (NOW - timedelta(days=2)).strftime("%Y-%m-%d %H:%M")
    csv = "order,tracking_number,carrier,shipped_at,status,sku,quantity\n" + "".join(
        f"#70{i:02d},{n},{carrier},{shipped},fulfilled,MUG,3\n" for i, n in enumerate(numbers))
    report = importer.import_shipments(engine, csv)
    assert report.created == len(numbers), report


def test_imported_numbers_are_registered_40_per_call_with_the_carrier_code(engine, fake):
    numbers = [f"1Z999AA1{i:010d}" for i in range(45)]
    import_shipments(engine, numbers)
    queued = rows(engine)
    assert set(queued) == set(numbers) and {r.status for r in queued.values()} == {"pending"}

    out = track17.send_pending(engine)
    assert out["registered"] == 45
    assert [len(c) for c in fake.calls] == [40, 5]
    assert {c["carrier"] for call in fake.calls for c in call} == {100002}  # UPS
    assert {r.status for r in rows(engine).values()} == {"registered"}
    # sent once: nothing more to send, and a re-import queues nothing new
    assert track17.send_pending(engine)["registered"] == 0 and len(fake.calls) == 2


def test_numbers_17track_rejects_are_shown_with_its_reason(engine, fake):
    import_shipments(engine, ["BADNUMBER01", "OLDNUMBER01", "1Z999AA10000000777"], carrier="Acme")
    out = track17.send_pending(engine)
    assert (out["registered"], out["rejected"]) == (2, 1)
    assert all("carrier" not in c for c in fake.calls[0])  # a carrier 17TRACK doesn't know: detected
    got = rows(engine)
    assert got["OLDNUMBER01"].status == "registered"  # "already registered" is registered
    bad = got["BADNUMBER01"]
    assert (bad.status, bad.error_code) == ("rejected", CANT_DETECT)
    counts, refused = track17_registration.needing_attention(engine)
    assert counts["rejected"] == 1 and counts["registered"] == 2
    assert [(r.tracking_number, r.code) for r in refused] == [("BADNUMBER01", CANT_DETECT)]
    assert "Carrier cannot be detected" in refused[0].reason
    assert track17.send_pending(engine) == {"registered": 0, "rejected": 0, "retry": 0, "failed": 0}


def test_a_failed_call_is_tried_again_with_backoff_then_marked_failed(engine, fake):
    import_shipments(engine, ["1Z999AA10000000888"])
    fake.fail_with = 503
    t = utcnow()
    assert track17.send_pending(engine, now=t)["retry"] == 1
    [row] = rows(engine).values()
    assert (row.status, row.attempts) == ("pending", 1) and "503" in row.last_error
    assert row.next_attempt_at == t + timedelta(minutes=1)
    assert track17.send_pending(engine, now=t + timedelta(seconds=30))["retry"] == 0  # not due
    assert len(fake.calls) == 1

    fake.fail_with, fake.code = None, -18010002  # HTTP 200, but the call refused: a bad key
    assert track17.send_pending(engine, now=t + timedelta(minutes=2))["retry"] == 1
    [row] = rows(engine).values()
    assert row.error_code == -18010002 and "Invalid security key" in row.last_error

    fake.code = 0
    assert track17.send_pending(engine, now=t + timedelta(hours=1))["registered"] == 1
    assert rows(engine)["1Z999AA10000000888"].status == "registered"


def test_a_number_that_keeps_failing_ends_failed_for_staff(engine, fake):
    import_shipments(engine, ["1Z999AA10000000999"])
    fake.fail_with = 500
    t = utcnow()
    for _ in range(track17_registration.MAX_ATTEMPTS):
        track17.send_pending(engine, now=t)
        t += timedelta(days=1)
    [row] = rows(engine).values()
    assert (row.status, row.attempts) == ("failed", track17_registration.MAX_ATTEMPTS)
    counts, refused = track17_registration.needing_attention(engine)
    assert counts == {"failed": 1} and refused[0].tracking_number == "1Z999AA10000000999"


def test_without_a_key_nothing_is_queued_or_sent(engine, fake, monkeypatch):
    monkeypatch.delenv("TRACK17_API_KEY")
    import_shipments(engine, ["1Z999AA10000000555"])
    assert rows(engine) == {}
    assert track17.send_pending(engine)["registered"] == 0 and fake.calls == []


def test_queued_in_the_same_transaction_as_the_shipment(engine, fake):
    with pytest.raises(RuntimeError):
        with write_session(engine) as s:
            assert track17_registration.queue(s, "1z999 aa1 0000000444", "UPS")
            raise RuntimeError("the import failed after all")
    assert rows(engine) == {}
    with write_session(engine) as s:
        assert track17_registration.queue(s, "1z999 aa1 0000000444", "UPS")
        assert not track17_registration.queue(s, "1Z999AA10000000444", "UPS")  # once per number
    assert list(rows(engine)) == ["1Z999AA10000000444"]


def test_a_shopify_fulfillment_and_the_api_queue_their_numbers(engine, fake, db_url, monkeypatch):
    from starlette.applications import Starlette
    from starlette.testclient import TestClient

    from claims_core.adapters import api, web
    from claims_core.services import api_keys

    from tests.adapters.test_api import auth, order_body
    from tests.adapters.test_live_feeds import (SHOPIFY_SECRET, fulfillment, post_shopify,
                                  shopify_order)
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("SHOPIFY_WEBHOOK_SECRET", SHOPIFY_SECRET)
    with TestClient(Starlette(routes=inbound_webhooks.routes()), base_url="http://portal.test") as c:
        post_shopify(c, "orders/create", shopify_order(), webhook_id="o")
        post_shopify(c, "fulfillments/create", fulfillment(tracking="1ZSHOP0000000001"),
                     webhook_id="f")
    inbound_webhooks.apply_pending_receipts(engine)
    _view, key = api_keys.create_key(engine, "zapier", "write", "staff:owner")
    with TestClient(Starlette(routes=[api.mount()]), base_url="http://portal.test") as c:
        r = c.put("/api/v1/orders/5001", json=order_body(), headers=auth(key))
        assert r.status_code in (200, 201), r.text
    web._engine_for.cache_clear()
    assert set(rows(engine)) == {"1ZSHOP0000000001", "1ZAPI0000001"}
    track17.send_pending(engine)
    assert {c["number"] for call in fake.calls for c in call} == {"1ZSHOP0000000001", "1ZAPI0000001"}


def test_the_sender_is_a_background_job():
    from claims_core.adapters import jobs
    assert any(j.run is track17.background_job for j in jobs.JOBS)


def test_staff_see_the_numbers_17track_refused(app, engine, fake):  # noqa: F811
    import_shipments(engine, ["BADNUMBER02"], carrier="Acme")
    track17.send_pending(engine)
    at = app("owner", "views/staff/settings.py")
    shown = [str(df.value.to_dict("records")) for df in at.dataframe]
    assert any("BADNUMBER02" in t and "Carrier cannot be detected" in t for t in shown), shown
