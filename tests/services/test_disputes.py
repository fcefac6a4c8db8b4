"""Chargebacks (issue #25, "don't pay twice"): Shopify's ``disputes/create`` and ``disputes/update``
webhooks mark the order disputed, hold its open claims (approval refused with ``order_disputed``
in the service and the API) until the dispute closes or the owner releases the hold, flag an
approved claim in the queue and on the claim page, and email the owner through the outbox."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select, update
from starlette.applications import Starlette
from starlette.testclient import TestClient

from claims_core import domain
from claims_core.adapters import api, inbound_webhooks, web
from claims_core.domain import disputes as rules
from claims_core.infra.db import read_session, utcnow, write_session
from claims_core.infra.models import Claim, Event, Message, Order, OutboxMessage, StaffUser
from claims_core.services import api_keys, claim_queue, customer, decisions
from claims_core.services.approvals import ResolutionInput

from tests.support.factories import claim_request, make_order
from tests.adapters.test_live_feeds import apply, client, last_receipt, post_shopify, secrets_set  # noqa: F401
from tests.pages.test_staff_app import app, everything  # noqa: F401  (the staff AppTest fixture)

SHOPIFY_ORDER_ID = 820982911946154508


def dispute(status="needs_response", *, dispute_id=35982383, order_id=SHOPIFY_ORDER_ID,
            reason="product_not_received", kind="chargeback") -> dict:
    """A ``disputes/*`` body: Shopify's REST Dispute resource."""
    return {"id": dispute_id, "order_id": order_id, "type": kind, "amount": "28.00",
            "currency": "USD", "reason": reason, "network_reason_code": "4855", "status": status,
            "evidence_due_by": "2026-12-20T19:00:00-05:00", "evidence_sent_on": None,
            "finalized_on": None, "initiated_at": "2026-12-06T19:00:00-05:00"}


def shopify_linked_order(engine, number: str, *, owner_email="owner@shop.example"):
    """An order that came from Shopify (its id is the disputes' order_id), an owner who wants mail."""
    built = make_order(engine, number, f"c{number}@example.com", base=utcnow(),
                       tracking_prefix=f"D{number}")
    with write_session(engine) as s:
        s.execute(update(Order).where(Order.id == built.order_id).values(
            external_id=str(SHOPIFY_ORDER_ID), source="shopify"))
        if owner_email and not s.scalars(select(StaffUser).where(StaffUser.username == "boss")).first():
            s.add(StaffUser(username="boss", display_name="Boss", role="owner", password_hash="x",
                            email=owner_email))
    return built


def file_for(engine, built, key="k1"):
    return customer.file_claim(engine, claim_request(built, key=key))


def claim_row(engine, claim_id) -> Claim:
    with read_session(engine) as s:
        return s.get(Claim, claim_id)


def dispute_mails(engine) -> list[OutboxMessage]:
    with read_session(engine) as s:
        return s.scalars(select(OutboxMessage).where(OutboxMessage.kind == "staff_dispute")).all()


# --- the rule --------------------------------------------------------------------------------------

def test_an_open_dispute_is_one_not_won_lost_accepted_or_refunded():
    assert [s for s in rules.STATUSES if rules.is_open(s)] == ["needs_response", "under_review"]
    assert not rules.is_open("") and not rules.is_open(None)
    with pytest.raises(ValueError):
        rules.check_status("pending")
    with pytest.raises(domain.ClaimRuleError) as e:
        rules.check_not_disputed(utcnow(), "x")
    assert e.value.code == domain.ErrorCode.ORDER_DISPUTED
    rules.check_not_disputed(None)
    assert rules.paying_twice(True, "under_review") and not rules.paying_twice(True, "won")
    assert not rules.paying_twice(False, "needs_response")


# --- the webhook, the hold and its release ---------------------------------------------------------

@pytest.mark.usefixtures("secrets_set")
def test_a_signed_dispute_holds_the_open_claim_until_it_is_won(client, engine):  # noqa: F811
    built = shopify_linked_order(engine, "7101")
    r = file_for(engine, built)
    resp = post_shopify(client, "disputes/create", dispute(), webhook_id="d-1")
    assert resp.status_code == 200 and resp.json()["outcome"] == "received"
    apply(engine)
    assert "1 claims held" in last_receipt(engine).detail
    with read_session(engine) as s:
        order = s.get(Order, built.order_id)
        assert (order.dispute_status, order.dispute_id, order.dispute_reason) == (
            "needs_response", "35982383", "product_not_received")
        assert order.dispute_amount_minor == 2800 and order.dispute_evidence_due_at is not None
        claim = s.get(Claim, r.claim_id)
        assert claim.dispute_held_at is not None and "chargeback" in claim.dispute_hold_reason
        note = s.scalars(select(Message).where(Message.claim_id == r.claim_id)).one()
        assert note.internal and note.author_kind == "system"
    mails = dispute_mails(engine)
    assert [m.to_addr for m in mails] == ["owner@shop.example"] and r.reference in mails[0].subject
    with pytest.raises(domain.ClaimRuleError) as e:
        decisions.approve(engine, r.claim_id, "agent:ana", [ResolutionInput("refund", 2800)])
    assert e.value.code == domain.ErrorCode.ORDER_DISPUTED

    # the same delivery again, and the same body under another delivery id: nothing changes
    again = post_shopify(client, "disputes/create", dispute(), webhook_id="d-1")
    assert again.json()["outcome"] == "duplicate"
    post_shopify(client, "disputes/create", dispute(), webhook_id="d-1-resent")
    apply(engine)
    assert last_receipt(engine).outcome == "ignored"
    with read_session(engine) as s:
        assert s.scalar(select(func.count()).select_from(Event).where(
            Event.action.like("dispute%"))) == 2  # received, hold placed
    assert len(dispute_mails(engine)) == 1

    # under review: still open, still held; won: the hold is released and approving works
    post_shopify(client, "disputes/update", dispute("under_review"), webhook_id="d-2")
    apply(engine)
    assert claim_row(engine, r.claim_id).dispute_held_at is not None
    post_shopify(client, "disputes/update", dispute("won"), webhook_id="d-3")
    apply(engine)
    claim = claim_row(engine, r.claim_id)
    assert claim.dispute_held_at is None and claim.dispute_hold_reason == ""
    with read_session(engine) as s:
        actions = s.scalars(select(Event.action).where(Event.claim_id == r.claim_id)
                            .order_by(Event.id)).all()
    assert [a for a in actions if "dispute" in a] == ["dispute_hold_placed", "dispute_hold_released"]
    decisions.approve(engine, r.claim_id, "agent:ana", [ResolutionInput("refund", 2800)])
    assert claim_row(engine, r.claim_id).status == domain.APPROVED


@pytest.mark.usefixtures("secrets_set")
def test_an_unsigned_or_badly_shaped_dispute_changes_nothing(client, engine):  # noqa: F811
    built = shopify_linked_order(engine, "7201")
    r = file_for(engine, built)
    assert post_shopify(client, "disputes/create", dispute(), signature="").status_code == 401
    assert post_shopify(client, "disputes/create", dispute(), secret="wrong").status_code == 401
    bad = post_shopify(client, "disputes/create", dispute("pending"), webhook_id="bad")
    assert bad.status_code == 400 and "status" in bad.json()["error"]
    apply(engine)
    with read_session(engine) as s:
        assert s.get(Order, built.order_id).dispute_status == ""
        assert s.get(Claim, r.claim_id).dispute_held_at is None


@pytest.mark.usefixtures("secrets_set")
def test_a_dispute_before_its_order_waits_for_it(client, engine):  # noqa: F811
    post_shopify(client, "disputes/create", dispute(order_id=999777), webhook_id="early")
    apply(engine)
    assert last_receipt(engine).outcome == "waiting"


def test_only_the_owner_releases_a_dispute_hold_and_it_is_an_event(engine):
    built = shopify_linked_order(engine, "7301")
    r = file_for(engine, built)
    from claims_core.services import disputes
    from claims_core.services.unit_of_work import run

    def land(s):
        disputes.record(s, s.get(Order, built.order_id), dispute(), now=utcnow())
    run(engine, land)
    with pytest.raises(domain.ClaimRuleError) as e:
        decisions.release_dispute_hold(engine, r.claim_id, "agent:ana", "agent")
    assert e.value.code == domain.ErrorCode.ACCOUNT_RULE
    decisions.release_dispute_hold(engine, r.claim_id, "owner:boss", "owner", "Paying anyway")
    assert claim_row(engine, r.claim_id).dispute_held_at is None
    with read_session(engine) as s:
        ev = s.scalars(select(Event).where(Event.claim_id == r.claim_id,
                                           Event.action == "dispute_hold_released")).one()
        assert ev.actor == "owner:boss"
    # a new status of the same open dispute doesn't undo the owner's release
    run(engine, lambda s: disputes.record(s, s.get(Order, built.order_id),
                                          dispute("under_review"), now=utcnow()))
    assert claim_row(engine, r.claim_id).dispute_held_at is None
    decisions.approve(engine, r.claim_id, "owner:boss", [ResolutionInput("refund", 2800)])


def test_a_claim_filed_on_a_disputed_order_is_held_as_it_is_filed(engine):
    built = shopify_linked_order(engine, "7401")
    from claims_core.services import disputes
    from claims_core.services.unit_of_work import run
    run(engine, lambda s: disputes.record(s, s.get(Order, built.order_id), dispute(),
                                          now=utcnow()))
    r = file_for(engine, built)
    assert claim_row(engine, r.claim_id).dispute_held_at is not None


# --- the API ---------------------------------------------------------------------------------------

@pytest.fixture
def api_client(db_url, engine, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("CLAIMS_API_RATE_LIMIT", "1000/hour")
    with TestClient(Starlette(routes=[api.mount()]), base_url="http://portal.test") as c:
        yield c
    web._engine_for.cache_clear()


def test_approving_a_disputed_claim_through_the_api_is_409_order_disputed(api_client, engine):
    built = shopify_linked_order(engine, "7501")
    r = file_for(engine, built)
    from claims_core.services import disputes
    from claims_core.services.unit_of_work import run
    run(engine, lambda s: disputes.record(s, s.get(Order, built.order_id), dispute(),
                                          now=utcnow()))
    _view, key = api_keys.create_key(engine, "zapier", "write", "staff:owner")
    resp = api_client.post(f"/api/v1/claims/{r.reference}/approve", json={"resolution": "refund"},
                           headers={"Authorization": f"Bearer {key}"})
    assert resp.status_code == 409, resp.text
    assert resp.json()["code"] == "order_disputed"
    assert claim_row(engine, r.claim_id).status != domain.APPROVED


# --- an approved claim: flagged in the queue, on the claim page, and by email -----------------------

@pytest.mark.usefixtures("secrets_set")
def test_an_approved_claim_on_a_disputed_order_is_flagged_and_the_owner_told(app, engine,  # noqa: F811
                                                                              db_url, monkeypatch):
    built = shopify_linked_order(engine, "7601")
    r = file_for(engine, built)
    decisions.approve(engine, r.claim_id, "agent:ana", [ResolutionInput("refund", 2800)])
    with write_session(engine) as s:  # the fixture's owner gets the email
        s.execute(update(StaffUser).where(StaffUser.username == "owner1").values(
            email="owner1@shop.example"))
    monkeypatch.setenv("DATABASE_URL", db_url)
    with TestClient(Starlette(routes=inbound_webhooks.routes()), base_url="http://portal.test") as c:
        assert post_shopify(c, "disputes/create", dispute(), webhook_id="f-1").status_code == 200
    web._engine_for.cache_clear()
    apply(engine)
    assert "1 approved claims flagged" in last_receipt(engine).detail
    assert claim_row(engine, r.claim_id).status == domain.APPROVED  # nothing undone: owner decides
    assert sorted(m.to_addr for m in dispute_mails(engine)) == ["owner1@shop.example",
                                                                "owner@shop.example"]
    assert "paying twice" in dispute_mails(engine)[0].body_text

    rows = claim_queue.queue_page(engine, claim_queue.QueueFilter(tab="approved")).rows
    assert [(x.reference, x.chargeback) for x in rows] == [(r.reference, "Paying twice?")]

    at = app("agent", "views/staff/queue.py", tab="approved")
    frames = [d.value for d in at.dataframe]
    assert any("Chargeback" in f.columns and "Paying twice?" in list(f["Chargeback"])
               for f in frames), frames

    at = app("owner", "views/staff/claim.py", id=r.claim_id)
    assert any("paying twice" in e.value for e in at.error)
    assert "Evidence for the dispute" in everything(at)
    assert "dispute_evidence_pack" in [b.key for b in at.get("download_button")]


def test_a_held_claim_page_offers_the_release_to_the_owner_only(app, engine):  # noqa: F811
    built = shopify_linked_order(engine, "7701")
    r = file_for(engine, built)
    from claims_core.services import disputes
    from claims_core.services.unit_of_work import run
    run(engine, lambda s: disputes.record(s, s.get(Order, built.order_id), dispute(),
                                          now=utcnow() - timedelta(minutes=1)))
    at = app("agent", "views/staff/claim.py", id=r.claim_id)
    keys = [b.key for b in at.button]
    assert "FormSubmitter:approve-Approve" not in keys
    assert "FormSubmitter:release_dispute_hold-Release chargeback hold" not in keys
    assert any("chargeback" in w.value for w in at.warning)
    at = app("owner", "views/staff/claim.py", id=r.claim_id)
    at.button(key="FormSubmitter:release_dispute_hold-Release chargeback hold").click()
    at.run()
    assert not at.exception, at.exception
    assert claim_row(engine, r.claim_id).dispute_held_at is None
    assert "FormSubmitter:approve-Approve" in [b.key for b in at.button]
