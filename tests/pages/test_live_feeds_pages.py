"""What people see of live feeds, under AppTest: the timeline on the order page and the issue
step's explanation, the staff claim page's hold (and its release), proof of delivery beside the
customer's statement, a failed write-back with its retry, and the Shopify settings that never
show the token."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from claims_core.domain.tracking import Checkpoint, ProofOfDelivery, TrackingUpdate
from claims_core.domain.vocabulary import Milestone
from claims_core.infra.db import read_session, utcnow, write_session
from claims_core.infra.models import Claim, ShopifyWrite
from claims_core.services import customer, decisions, shopify_connection, tracking
from claims_core.services.approvals import ResolutionInput
from claims_core.services.unit_of_work import run

from tests.support.factories import claim_request, make_order
from tests.pages.test_staff_app import APP, app, everything  # noqa: F401  (the staff AppTest fixture)


def _feed(engine, number, *cps, proof=ProofOfDelivery(), expected=None):
    run(engine, lambda s: tracking.record(s, TrackingUpdate(
        "17track", number, "UPS", tuple(cps), proof=proof, expected_delivery=expected)))


def test_the_order_page_shows_the_timeline_and_the_issue_step_explains_the_choices(db_url, engine,
                                                                                   monkeypatch):
    from streamlit.testing.v1 import AppTest
    monkeypatch.setenv("DATABASE_URL", db_url)
    now = utcnow()
    built = make_order(engine, "6101", "t6101@example.com", base=now, tracking_prefix="LIVE",
                       shipments=[dict(status="in_transit", shipped=now - timedelta(days=3),
                                       items=[("MUG", 3), ("TOTE", 1)])])
    _feed(engine, "LIVE6101X0",
          Checkpoint(now - timedelta(days=3), Milestone.IN_TRANSIT, "Picked up", "Louisville, KY"),
          Checkpoint(now - timedelta(days=1), Milestone.IN_TRANSIT, "Arrived at facility",
                     "Memphis, TN"), expected=now + timedelta(days=2))
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.text_input(key="lookup_query").input("#6101")
    at.text_input(key="lookup_email").input(built.email)
    at.button[0].click()
    at.run()
    assert not at.exception, at.exception
    shown = everything(at)
    assert "Track your shipment" in shown and "Arrived at facility" in shown
    assert "yesterday in Memphis, TN" in shown and "report it lost" in shown
    assert "Expected delivery:" in shown
    # nothing to claim yet: not late, not stalled (the explanation above says when)
    assert f"start_claim_{built.shipment_ids[0]}" not in [b.key for b in at.button]
    # the carrier moves the expected day into the past: "delayed" opens
    _feed(engine, "LIVE6101X0", Checkpoint(now - timedelta(hours=2), Milestone.IN_TRANSIT,
                                           "Delay in transit", "Memphis, TN"),
          expected=now - timedelta(days=1))
    at.button(key="another_order").click()
    at.run()
    at.text_input(key="lookup_query").input("#6101")
    at.text_input(key="lookup_email").input(built.email)
    at.button[0].click()
    at.run()
    at.button(key=f"start_claim_{built.shipment_ids[0]}").click()
    at.run()
    assert not at.exception, at.exception
    issue = at.radio(key="issue")
    assert [o.split(" — ")[0] for o in issue.options] == ["Delayed"]
    assert "so you can report it delayed" in everything(at)


def _claim(engine, number, issue):
    now = utcnow()
    built = make_order(engine, number, f"c{number}@example.com", base=now, tracking_prefix="POD",
                       created=now - timedelta(days=30),
                       shipments=[dict(status="in_transit", shipped=now - timedelta(days=20),
                                       last_scan=now - timedelta(days=14),
                                       items=[("MUG", 3), ("TOTE", 1)])]
                       if issue == "lost" else None)
    r = customer.file_claim(engine, claim_request(built, key=f"k{number}", issue=issue))
    return built, r


def test_a_held_claim_says_why_and_an_agent_releases_it(app, engine):  # noqa: F811
    built, r = _claim(engine, "6201", "lost")
    _feed(engine, "POD6201X0", Checkpoint(utcnow(), Milestone.IN_TRANSIT, "Arrived", "Memphis, TN"))
    at = app("agent", "views/staff/claim.py", id=r.claim_id)
    assert any("On hold" in w.value and "Memphis, TN" in w.value for w in at.warning)
    submit_keys = [b.key for b in at.button]
    assert "FormSubmitter:approve-Approve" not in submit_keys  # approving waits for the release
    assert "FormSubmitter:deny-Deny" in submit_keys
    at.text_input(key="hold_note").input("Checked with UPS: stuck since")
    at.button(key="FormSubmitter:release_hold-Release hold").click()
    at.run()
    assert not at.exception, at.exception
    with read_session(engine) as s:
        assert s.get(Claim, r.claim_id).held_at is None
    assert not any("On hold" in w.value for w in at.warning)
    assert "FormSubmitter:approve-Approve" in [b.key for b in at.button]


def test_proof_of_delivery_stands_beside_a_not_received_statement(app, engine):  # noqa: F811
    built, r = _claim(engine, "6301", "not_received")
    _feed(engine, "POD6301X0", Checkpoint(utcnow() - timedelta(days=7), Milestone.DELIVERED,
                                          "Delivered, front porch", "Austin, TX"),
          proof=ProofOfDelivery(signed_by="J. RIVERA", location="Front porch"))
    at = app("agent", "views/staff/claim.py", id=r.claim_id)
    shown = everything(at)
    assert "Proof of delivery" in shown and "Signed by: J. RIVERA" in shown
    assert "Left at: Front porch" in shown and "Customer's statement" in shown
    assert "Carrier tracking" in shown and "Delivered, front porch" in shown


def test_a_failed_write_back_shows_shopifys_reason_and_a_retry_button(app, engine, monkeypatch):  # noqa: F811
    built, r = _claim(engine, "6401", "damaged")
    shopify_connection.save_connection(engine, "owner:o", "test-shop", "shpat_" + "a" * 32)
    decisions.approve(engine, r.claim_id, "agent:a", [ResolutionInput("refund", 2800)])
    with write_session(engine) as s:
        s.execute(update(ShopifyWrite).values(status="failed", attempts=1,
                                              last_error="user_error: Amount exceeds refundable"))
    sent = []
    from claims_core.adapters import shopify_write_back
    monkeypatch.setattr(shopify_write_back, "send_pending", lambda engine, **kw: sent.append(1) or {})
    at = app("agent", "views/staff/claim.py", id=r.claim_id)
    assert "Shopify said: user_error: Amount exceeds refundable" in everything(at)
    write_id = engine and _write_id(engine)
    at.button(key=f"retry_write_{write_id}").click()
    at.run()
    assert not at.exception, at.exception
    assert sent == [1]
    with read_session(engine) as s:
        assert s.get(ShopifyWrite, write_id).status == "pending"


def _write_id(engine) -> int:
    with read_session(engine) as s:
        return s.scalars(select(ShopifyWrite.id)).one()


def test_the_shopify_token_is_saved_and_never_shown(app, engine):  # noqa: F811
    token = "shpat_" + "f00d" * 8
    at = app("owner", "views/staff/settings.py")
    at.text_input(key="shopify_domain").input("northwind")
    at.text_input(key="shopify_token").input(token)
    at.button(key="FormSubmitter:shopify_form-Save").click()
    at.run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert shopify_connection.connection(engine).active, [b.key for b in at.button]
    at.run()
    assert token not in everything(at)
    assert at.session_state["shopify_token"] == ""
    for t in at.text_input:
        assert t.value != token and token not in (t.placeholder or "")
    assert any("configured" in (t.placeholder or "") for t in at.text_input)
