"""Outbound webhooks: what is queued for which event, Standard Webhooks signatures verified with
the ``standardwebhooks`` verifier, retries with backoff, auto-disable with an email to the owner,
replay, and the refusal of private, loopback and link-local targets."""
from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest
from pytest_httpserver import HTTPServer
from sqlalchemy import select
from standardwebhooks.webhooks import Webhook
from werkzeug import Request, Response

from claims_core import domain
from claims_core.adapters import outbound_webhooks, scheduler
from claims_core.infra.db import read_session, utcnow, write_session
from claims_core.infra.models import OutboxMessage, StaffUser, WebhookDelivery, WebhookEndpoint
from claims_core.services import customer, decisions, webhook_endpoints
from claims_core.services import outbound_webhooks as outbound_service
from claims_core.services.approvals import ResolutionInput

from tests.support.factories import claim_request, make_order

ALL = list(domain.webhook_targets.EVENT_TYPES)


def public(_host):
    return ["93.184.216.34"]


@pytest.mark.parametrize("address", ["127.0.0.1", "10.1.2.3", "192.168.0.10", "172.16.5.5",
                                     "169.254.169.254", "::1", "fe80::1", "fc00::5", "0.0.0.0",
                                     "100.64.0.1", "224.0.0.1"])
def test_private_loopback_and_link_local_targets_are_refused(engine, address):
    with pytest.raises(domain.ClaimRuleError) as e:
        outbound_webhooks.add_endpoint(engine, "https://hooks.example.com/x", ALL, "owner:o",
                                       resolver=lambda _h: ["93.184.216.34", address])
    assert "private network" in e.value.message
    with read_session(engine) as s:
        assert s.scalars(select(WebhookEndpoint)).all() == []


def test_urls_are_checked_and_private_targets_need_the_setting(engine):
    for bad in ("ftp://x.example.com", "https://", "not a url", "http://hooks.example.com/x",
                "https://user:pw@hooks.example.com/x"):
        with pytest.raises(domain.ClaimRuleError):
            outbound_webhooks.add_endpoint(engine, bad, ALL, "owner:o", resolver=public)
    with pytest.raises(domain.ClaimRuleError):  # resolves to nothing
        outbound_webhooks.add_endpoint(engine, "https://nowhere.invalid/x", ALL, "owner:o",
                                       resolver=lambda _h: [])
    with pytest.raises(domain.ClaimRuleError):  # an unknown event type
        outbound_webhooks.add_endpoint(engine, "https://hooks.example.com/x", ["claim.exploded"],
                                       "owner:o", resolver=public)
    ep = outbound_webhooks.add_endpoint(engine, "https://hooks.example.com/x", ["claim.created"],
                                        "owner:o", resolver=public)
    assert ep.secret.startswith("whsec_") and ep.events == ("claim.created",)
    webhook_endpoints.allow_private_targets(engine, True, "owner:o")
    local = outbound_webhooks.add_endpoint(engine, "http://127.0.0.1:9/x", ALL, "owner:o",
                                           resolver=lambda _h: ["127.0.0.1"])
    assert local.active


class _PartnersClock(datetime):
    """The receiver's clock agrees with the app's (under an injected test clock too)."""
    @classmethod
    def now(cls, tz=None):
        return utcnow().astimezone(tz) if tz else utcnow()


@pytest.fixture
def receiver(httpserver: HTTPServer, engine, monkeypatch):
    """A local endpoint (private targets allowed, as a local integration would) that verifies
    every delivery with the standardwebhooks verifier (its clock the app's: a timestamp 5 minutes
    off is refused) and answers from a script."""
    import standardwebhooks.webhooks
    monkeypatch.setattr(standardwebhooks.webhooks, "datetime", _PartnersClock)
    webhook_endpoints.allow_private_targets(engine, True, "owner:o")
    got, script = [], []
    box = {}

    def handle(request: Request) -> Response:
        headers = {k.lower(): v for k, v in request.headers.items()}
        verified = Webhook(box["secret"]).verify(request.get_data(), headers)  # raises if not signed
        got.append((headers, verified))
        return Response(status=script.pop(0) if script else 200)

    httpserver.expect_request("/hook", method="POST").respond_with_handler(handle)
    ep = outbound_webhooks.add_endpoint(engine, httpserver.url_for("/hook"), ALL, "owner:o",
                                        resolver=lambda _h: ["127.0.0.1"])
    box["secret"] = ep.secret
    return ep, got, script


def _claim(engine, number="7001"):
    built = make_order(engine, number, f"w{number}@example.com", base=utcnow(), tracking_prefix="W")
    return customer.file_claim(engine, claim_request(built, key=f"w{number}"))


def test_events_are_signed_per_standard_webhooks_and_verified(engine, receiver):
    ep, got, _script = receiver
    r = _claim(engine)
    decisions.staff_message(engine, r.claim_id, "staff:a", "Ana", "We're on it")
    decisions.approve(engine, r.claim_id, "staff:a", [ResolutionInput("refund", 2800)])
    out = outbound_webhooks.send_pending(engine)
    assert out["delivered"] == len(got) and out["failed"] == 0
    types = [payload["type"] for _h, payload in got]
    assert types == ["claim.created", "message.created", "claim.updated", "recovery.updated",
                     "claim.updated", "claim.approved"]  # received → in review → approved
    # (the approved damaged parcel opened a recovery from the carrier: recovery.updated)
    headers, created = got[0]
    assert headers["webhook-id"].startswith("msg_") and headers["webhook-signature"].startswith("v1,")
    assert created["data"]["reference"] == r.reference and created["data"]["status"] == "submitted"
    assert got[1][1]["data"]["message"]["body"] == "We're on it"
    assert got[-1][1]["data"]["status"] == "approved"
    # a forged body doesn't verify
    from standardwebhooks.webhooks import WebhookVerificationError
    forged = json.dumps({**created, "data": {**created["data"], "claimed_cents": 1}})
    with pytest.raises(WebhookVerificationError):
        Webhook(ep.secret).verify(forged, headers)
    assert outbound_webhooks.send_pending(engine)["delivered"] == 0  # nothing twice


def test_only_the_events_an_endpoint_asked_for_and_never_internal_notes(engine, receiver):
    ep, got, _ = receiver
    webhook_endpoints.set_active(engine, ep.id, False, "owner:o")
    denied_only = outbound_webhooks.add_endpoint(engine, receiver[0].url, ["claim.denied"],
                                                 "owner:o", resolver=lambda _h: ["127.0.0.1"])
    r = _claim(engine, "7002")
    decisions.staff_message(engine, r.claim_id, "staff:a", "Ana", "internal", internal=True)
    decisions.deny(engine, r.claim_id, "staff:a", "not_covered" if "not_covered" in
                   domain.DENIAL_LABELS else next(iter(domain.DENIAL_LABELS)), "no")
    with read_session(engine) as s:
        rows = s.scalars(select(WebhookDelivery)).all()
    assert {(d.endpoint_id, d.event_type) for d in rows} == {(denied_only.id, "claim.denied")}


def test_failures_retry_with_backoff_then_deliver(engine, receiver):
    _ep, got, script = receiver
    _claim(engine, "7003")
    script.extend([500, 503])
    now = utcnow()
    assert outbound_webhooks.send_pending(engine, now=now)["retry"] == 1
    with read_session(engine) as s:
        d = s.scalars(select(WebhookDelivery)).one()
        assert (d.status, d.attempts, d.last_status_code) == ("pending", 1, 500)
        assert d.next_attempt_at == now + timedelta(minutes=1)
    assert outbound_webhooks.send_pending(engine, now=now)["retry"] == 0  # not due yet
    assert outbound_webhooks.send_pending(engine, now=now + timedelta(minutes=1))["retry"] == 1
    with read_session(engine) as s:
        d = s.scalars(select(WebhookDelivery)).one()
        assert d.next_attempt_at == now + timedelta(minutes=1) + timedelta(minutes=2)
    assert outbound_webhooks.send_pending(engine, now=now + timedelta(minutes=3))["delivered"] == 1
    ids = {h["webhook-id"] for h, _p in got}
    assert len(got) == 3 and len(ids) == 1  # every retry carries the same webhook-id


def test_an_endpoint_that_keeps_failing_is_disabled_and_the_owner_told(engine, receiver):
    ep, got, script = receiver
    with write_session(engine) as s:
        s.add(StaffUser(username="olga", role="owner", password_hash="x", email="olga@shop.example"))
    for i in range(10):
        _claim(engine, f"71{i:02d}")
    script.extend([500] * 50)
    out = outbound_webhooks.send_pending(engine)
    assert out["retry"] == outbound_service.DISABLE_AFTER_FAILURES
    with read_session(engine) as s:
        row = s.get(WebhookEndpoint, ep.id)
        assert not row.active and "failed deliveries in a row" in row.disabled_reason
        mail = s.scalars(select(OutboxMessage).where(OutboxMessage.kind == "webhook_disabled")).one()
        assert mail.to_addr == "olga@shop.example" and ep.url in mail.body_text
    assert outbound_webhooks.send_pending(engine, now=utcnow() + timedelta(hours=1))["retry"] == 0
    # switched on again: the waiting deliveries go out
    webhook_endpoints.set_active(engine, ep.id, True, "owner:o")
    script.clear()
    assert outbound_webhooks.send_pending(engine, now=utcnow() + timedelta(hours=1))["delivered"] == 10


def test_a_delivery_can_be_replayed(engine, receiver):
    _ep, got, _ = receiver
    _claim(engine, "7201")
    scheduler.tick(engine)
    [d] = webhook_endpoints.deliveries(engine)
    assert d.status == "delivered"
    webhook_endpoints.replay(engine, d.id, "owner:o")
    assert outbound_webhooks.send_pending(engine)["delivered"] == 1
    assert [h["webhook-id"] for h, _p in got] == [d.message_id, d.message_id]


def test_a_target_that_moved_into_a_private_network_is_refused_at_sending(engine):
    ep = outbound_webhooks.add_endpoint(engine, "https://hooks.example.com/x", ALL, "owner:o",
                                        resolver=public)
    _claim(engine, "7301")
    out = outbound_webhooks.send_pending(engine, resolver=lambda _h: ["10.0.0.8"])
    assert out["retry"] == 1
    with read_session(engine) as s:
        d = s.scalars(select(WebhookDelivery).where(WebhookDelivery.endpoint_id == ep.id)).one()
        assert "private network" in d.last_error and d.last_status_code is None
