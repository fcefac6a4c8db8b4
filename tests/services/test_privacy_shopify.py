"""Shopify's mandatory compliance webhooks on ``POST /webhooks/shopify``: the same HMAC check,
stored as a receipt, recorded when the receipt is applied, carried out by the
``privacy_requests`` job (export + owner mail; erasure; erasure waiting for an open claim)."""
from __future__ import annotations

import io
import json
import zipfile
from datetime import timedelta

from sqlalchemy import func, select

from claims_core.adapters import inbound_webhooks, jobs
from claims_core.domain.vocabulary import DenialReason
from claims_core.infra.db import read_session, utcnow, write_session
from claims_core.infra.models import Claim, Event, Order, OutboxMessage, PrivacyRequest, StaffUser
from claims_core.services import customer, decisions, privacy_requests

from tests.support.factories import claim_request, jpeg_bytes, make_order
from tests.adapters.test_live_feeds import client, post_shopify, secrets_set  # noqa: F401

SHOP = {"shop_id": 954889, "shop_domain": "harbour-pine.myshopify.com"}


def data_request(email="sam@example.com", *, request_id=9999, orders=(7001,)):
    return {**SHOP, "orders_requested": list(orders),
            "customer": {"id": 191167, "email": email, "phone": "555-625-1199"},
            "data_request": {"id": request_id}}


def customer_redact(email="sam@example.com", *, orders=(7001,)):
    return {**SHOP, "customer": {"id": 191167, "email": email, "phone": "555-625-1199"},
            "orders_to_redact": list(orders)}


def _order(engine, number="1001", email="sam@example.com", shopify_id="7001"):
    built = make_order(engine, number=number, email=email)
    with write_session(engine) as s:
        s.get(Order, built.order_id).external_id = shopify_id
    return built


def _owner(engine, email="owner@harbour.example"):
    with write_session(engine) as s:
        s.add(StaffUser(username="olive", display_name="Olive", role="owner", password_hash="x",
                        email=email))


def _requests(engine) -> list[PrivacyRequest]:
    with read_session(engine) as s:
        return list(s.scalars(select(PrivacyRequest).order_by(PrivacyRequest.id)))


def _email_of(engine, order_id) -> str:
    with read_session(engine) as s:
        return s.get(Order, order_id).email


# --- over HTTP ---------------------------------------------------------------------------------------

def test_unsigned_or_wrongly_signed_compliance_webhooks_are_refused(engine, secrets_set, client):
    for topic, body in (("customers/data_request", data_request()),
                        ("customers/redact", customer_redact()), ("shop/redact", SHOP)):
        assert post_shopify(client, topic, body, signature="").status_code == 401
        assert post_shopify(client, topic, body, secret="not-the-secret").status_code == 401
    with read_session(engine) as s:
        assert s.scalar(select(func.count()).select_from(PrivacyRequest)) == 0


def test_a_body_of_the_wrong_shape_is_a_400(engine, secrets_set, client):
    r = post_shopify(client, "customers/redact", {**SHOP, "customer": "sam"})
    assert r.status_code == 400
    r = post_shopify(client, "customers/data_request", {"customer": {"email": "a@b.c"}},
                     webhook_id="wh-2")
    assert r.status_code == 400


def test_data_request_prepares_the_export_and_mails_the_owner_once(engine, now, secrets_set,
                                                                     client):
    built = _order(engine)
    _owner(engine)
    r = post_shopify(client, "customers/data_request", data_request("Sam@Example.com"))
    assert r.status_code == 200 and r.json()["outcome"] == "received"
    assert _requests(engine) == []  # recorded when the receipt is applied (in the background)
    inbound_webhooks.apply_pending_receipts(engine)
    [req] = _requests(engine)
    assert (req.kind, req.status, req.email) == ("data_request", "pending", "sam@example.com")
    assert req.due_at - req.received_at == timedelta(days=30)
    assert json.loads(req.order_numbers) == [built.number]  # Shopify's order id → our order

    # the same delivery again, and the same request under another delivery id: nothing changes
    assert post_shopify(client, "customers/data_request", data_request()).json()["outcome"] == \
        "duplicate"
    post_shopify(client, "customers/data_request", data_request(), webhook_id="wh-again")
    inbound_webhooks.apply_pending_receipts(engine)
    assert len(_requests(engine)) == 1

    assert privacy_requests.process_due(engine, now=utcnow())["exported"] == 1
    assert privacy_requests.process_due(engine, now=utcnow() + timedelta(hours=1)) == \
        {"exported": 0, "erased": 0, "waiting": 0, "failed": 0}
    rows = privacy_requests.list_requests(engine)
    assert rows[0].status == "done" and rows[0].export_ready
    name, data = privacy_requests.download_export(engine, rows[0].id, "staff:olive")
    assert name.endswith(".zip")
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        assert json.loads(z.read("data.json"))["email"] == "sam@example.com"
    with read_session(engine) as s:
        mails = s.scalars(select(OutboxMessage).where(OutboxMessage.kind == "privacy_export_ready")
                          ).all()
        assert [m.to_addr for m in mails] == ["owner@harbour.example"]
        assert "Settings → Customer data" in mails[0].body_text
        due = req.due_at
        assert f"{due:%B} {due.day}, {due.year}" in mails[0].body_text  # the 30-day deadline
        # the log holds no personal data
        details = s.scalars(select(Event.details).where(Event.action.like("privacy%"))).all()
        assert details and not any("sam@" in d for d in details)


def test_customer_redact_erases_now_when_no_claim_is_open(engine, now, secrets_set, client):
    built = _order(engine)
    other = _order(engine, number="1002", email="kim@example.com", shopify_id="7002")
    post_shopify(client, "customers/redact", customer_redact())
    inbound_webhooks.apply_pending_receipts(engine)
    report = jobs.tick(engine, now=utcnow(), smtp=None, smtp_given=True)
    assert "privacy_requests" not in report.failed
    assert _email_of(engine, built.order_id) != "sam@example.com"
    assert _email_of(engine, other.order_id) == "kim@example.com"
    [req] = _requests(engine)
    assert req.status == "done" and req.email == ""  # the request keeps no personal data either


def test_customer_redact_with_an_open_claim_waits_until_it_is_decided(engine, now, secrets_set,
                                                                       client):
    built = _order(engine)
    r = customer.file_claim(engine, claim_request(built, photos=[("a.jpg", jpeg_bytes())]),
                            now=now)
    post_shopify(client, "customers/redact", customer_redact())
    inbound_webhooks.apply_pending_receipts(engine)
    assert privacy_requests.process_due(engine, now=utcnow())["waiting"] == 1
    [req] = _requests(engine)
    with read_session(engine) as s:
        ref = s.get(Claim, r.claim_id).reference
    assert req.status == "waiting" and ref in req.detail
    assert _email_of(engine, built.order_id) == "sam@example.com"  # not erased under staff's feet

    decisions.deny(engine, r.claim_id, "staff:ana", DenialReason.NOT_COVERED,
                   now=utcnow() + timedelta(days=2))
    assert privacy_requests.process_due(engine, now=utcnow() + timedelta(days=2))["erased"] == 1
    assert _email_of(engine, built.order_id) != "sam@example.com"
    assert _requests(engine)[0].status == "done"


def test_shop_redact_erases_every_customer_and_keeps_the_claims(engine, now, secrets_set, client):
    a = _order(engine)
    b = _order(engine, number="1002", email="kim@example.com", shopify_id="7002")
    r = customer.file_claim(engine, claim_request(a), now=now)
    decisions.deny(engine, r.claim_id, "staff:ana", DenialReason.NOT_COVERED, now=now)
    assert post_shopify(client, "shop/redact", SHOP).status_code == 200
    inbound_webhooks.apply_pending_receipts(engine)
    assert privacy_requests.process_due(engine, now=utcnow())["erased"] == 1
    assert "@example.com" not in _email_of(engine, a.order_id) + _email_of(engine, b.order_id)
    with read_session(engine) as s:
        c = s.get(Claim, r.claim_id)
        assert c is not None and c.status == "denied" and c.email != "sam@example.com"


def test_a_failing_request_is_retried_then_marked_failed(engine, now, monkeypatch):
    with write_session(engine) as s:
        privacy_requests.record(s, privacy_requests.parse("customers/redact", customer_redact()),
                                now=now)
    from claims_core.services import customer_data

    def boom(*a, **k):
        raise RuntimeError("disk full")
    monkeypatch.setattr(customer_data, "erase_customer", boom)
    at = now
    for _ in range(privacy_requests.MAX_ATTEMPTS):
        privacy_requests.process_due(engine, now=at)
        at += timedelta(days=1)
    [req] = _requests(engine)
    assert req.status == "failed" and "disk full" in req.last_error

