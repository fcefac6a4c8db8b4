"""Filing recoveries through EasyPost (issue #25, priority 2): the outbox row, the sender job
against a fake EasyPost (pytest-httpserver: path, Basic auth, every field, the base64 packet),
idempotency (asked twice, looked up first), refusals with EasyPost's message."""
from __future__ import annotations

import base64
import json
from datetime import timedelta

import pytest
from sqlalchemy import select
from werkzeug import Response

from claims_core.adapters import easypost_claims, jobs
from claims_core.domain.errors import ClaimRuleError, ErrorCode
from claims_core.infra.db import write_session
from claims_core.infra.models import Recovery, RecoveryFiling
from claims_core.services import decisions, recoveries

from tests.services.test_recoveries import _claim

KEY = "EZTK_test_key"


@pytest.fixture
def easypost(httpserver, monkeypatch):
    monkeypatch.setenv("EASYPOST_API_KEY", KEY)
    monkeypatch.setenv("CLAIMS_EASYPOST_BASE_URL", httpserver.url_for("/v2"))
    return httpserver


def _approved(engine, now, **kw):
    _b, cid = _claim(engine, now, **kw)
    decisions.approve(engine, cid, "staff:t", [decisions.ResolutionInput("refund", 2800)], now=now)
    with write_session(engine) as s:
        rec = s.scalars(select(Recovery).where(Recovery.claim_id == cid)).one()
        return rec.id, rec.shipment.tracking_number, rec.claim.reference


def _state(engine, rid):
    with write_session(engine) as s:
        rec = s.get(Recovery, rid)
        f = s.scalars(select(RecoveryFiling).where(RecoveryFiling.recovery_id == rid)).first()
        return rec.state, rec.easypost_claim_id, f.status if f else None


def _list(claims=()):
    return Response(json.dumps({"claims": list(claims), "has_more": False}),
                    content_type="application/json")


def test_file_sends_one_claim_with_every_field(engine, now, easypost):
    rid, tracking, ref = _approved(engine, now)
    assert recoveries.request_filing(engine, rid, "staff:t", now=now)
    assert not recoveries.request_filing(engine, rid, "staff:t", now=now)  # asked twice: once
    seen = []

    def create(request):
        seen.append(request)
        return Response(json.dumps({"id": "clm_097", "object": "Claim", "status": "submitted",
                                    "tracking_code": tracking}), content_type="application/json")
    easypost.expect_request("/v2/claims", method="GET").respond_with_handler(lambda r: _list())
    easypost.expect_request("/v2/claims", method="POST").respond_with_handler(create)
    assert easypost_claims.send_pending(engine, now=now) == {"sent": 1, "refused": 0, "retry": 0}
    [req] = seen
    assert req.headers["Authorization"] == "Basic " + base64.b64encode(f"{KEY}:".encode()).decode()
    body = req.get_json()
    assert {k: body[k] for k in ("tracking_code", "type", "amount", "contact_email",
                                 "recipient_name")} == {
        "tracking_code": tracking, "type": "damage", "amount": "28.00",
        "contact_email": "support@example.com", "recipient_name": "Sam Jones"}
    assert ref in body["description"] and body["description"].startswith("Damaged")
    [evidence] = body["supporting_documentation_attachments"]
    [invoice] = body["invoice_attachments"]
    assert base64.b64decode(evidence, validate=True).startswith(b"%PDF")
    assert base64.b64decode(invoice, validate=True).startswith(b"%PDF")
    assert _state(engine, rid) == ("filed", "clm_097", "sent")
    assert easypost_claims.send_pending(engine, now=now)["sent"] == 0  # nothing left


def test_a_retry_finds_the_claim_already_filed(engine, now, easypost):
    rid, tracking, _ref = _approved(engine, now)
    recoveries.request_filing(engine, rid, "staff:t", now=now)
    easypost.expect_request("/v2/claims", method="GET").respond_with_handler(
        lambda r: _list([{"id": "clm_other", "object": "Claim", "tracking_code": "ELSE"},
                         {"id": "clm_earlier", "object": "Claim", "tracking_code": tracking}]))
    easypost.expect_request("/v2/claims", method="POST").respond_with_data("no", status=500)
    assert easypost_claims.send_pending(engine, now=now)["sent"] == 1
    assert _state(engine, rid) == ("filed", "clm_earlier", "sent")
    assert all(r.method == "GET" for r, _resp in easypost.log)  # never created a second one


def test_a_refusal_keeps_easyposts_message_and_can_be_asked_again(engine, now, easypost):
    rid, _t, _ref = _approved(engine, now)
    recoveries.request_filing(engine, rid, "staff:t", now=now)
    easypost.expect_request("/v2/claims", method="GET").respond_with_handler(lambda r: _list())
    easypost.expect_request("/v2/claims", method="POST").respond_with_json(
        {"error": {"code": "CLAIM.NOT_ELIGIBLE", "message": "This shipment is not insured.",
                   "errors": []}}, status=422)
    assert easypost_claims.send_pending(engine, now=now)["refused"] == 1
    assert _state(engine, rid) == ("to_file", None, "refused")
    [(row, _events)] = recoveries.for_claim(engine, _claim_id(engine, rid), now=now)
    assert "This shipment is not insured." in row.filing_error
    assert recoveries.request_filing(engine, rid, "staff:t", now=now)  # queued again
    assert _state(engine, rid)[2] == "pending"


def test_a_server_error_is_tried_again_later(engine, now, easypost):
    rid, _t, _ref = _approved(engine, now)
    recoveries.request_filing(engine, rid, "staff:t", now=now)
    easypost.expect_request("/v2/claims", method="GET").respond_with_data("down", status=503)
    assert easypost_claims.send_pending(engine, now=now)["retry"] == 1
    assert _state(engine, rid) == ("to_file", None, "pending")
    assert easypost_claims.send_pending(engine, now=now)["retry"] == 0  # waits its backoff
    # the deadline job leaves a recovery on its way to EasyPost alone
    assert recoveries.run_deadlines(engine, now=now + timedelta(days=400))["written_off"] == 0


def test_file_needs_the_key_and_the_owners_consent(engine, now, monkeypatch, easypost):
    rid, _t, _ref = _approved(engine, now)
    recoveries.save_policy(engine, "staff:o", carriers=[], issue_types=[], min_minor=0,
                           easypost_off=["ups"])
    with pytest.raises(ClaimRuleError) as e:
        recoveries.request_filing(engine, rid, "staff:t", now=now)
    assert e.value.code == ErrorCode.RECOVERY_FILING_UNAVAILABLE
    recoveries.save_policy(engine, "staff:o", carriers=[], issue_types=[], min_minor=0,
                           easypost_off=[])
    monkeypatch.delenv("EASYPOST_API_KEY")
    with pytest.raises(ClaimRuleError):
        recoveries.request_filing(engine, rid, "staff:t", now=now)


def test_the_job_is_in_the_table(engine, now, easypost):
    rid, tracking, _ref = _approved(engine, now)
    recoveries.request_filing(engine, rid, "staff:t", now=now)
    easypost.expect_request("/v2/claims", method="GET").respond_with_handler(
        lambda r: _list([{"id": "clm_1", "object": "Claim", "tracking_code": tracking}]))
    jobs.tick(engine, now=now, smtp=None, smtp_given=True)
    assert _state(engine, rid)[0] == "filed"


def _claim_id(engine, rid):
    with write_session(engine) as s:
        return s.get(Recovery, rid).claim_id


# --- EasyPost's claim events at /webhooks/easypost -------------------------------------------------

from tests.adapters.test_live_feeds import apply as apply_receipts  # noqa: E402
from tests.adapters.test_live_feeds import client, post_easypost, secrets_set  # noqa: E402,F401


def _filed_with_easypost(engine, now, claim_id="clm_500"):
    rid, _t, _ref = _approved(engine, now)
    with write_session(engine) as s:
        s.get(Recovery, rid).easypost_claim_id = claim_id
    return rid


def _event(name, n=1, **claim):
    return {"id": f"evt_{name}_{n}", "object": "Event", "description": name,
            "result": {"id": "clm_500", "object": "Claim", **claim}}


@pytest.mark.usefixtures("secrets_set")
def test_claim_events_move_the_recovery(engine, now, client):
    rid = _filed_with_easypost(engine, now)
    assert post_easypost(client, _event("claim.submitted", status="submitted")).status_code == 200
    apply_receipts(engine)
    assert _state(engine, rid)[0] == "filed"
    post_easypost(client, _event("claim.updated", status="needs_action",
                                 status_detail="Send photos of the box."))
    apply_receipts(engine)
    [(row, _e)] = recoveries.for_claim(engine, _claim_id(engine, rid), now=now)
    assert row.state == "needs_action" and row.carrier_message == "Send photos of the box."
    post_easypost(client, _event("claim.approved", status="approved", approved_amount="20.00"))
    apply_receipts(engine)
    [(row, _e)] = recoveries.for_claim(engine, _claim_id(engine, rid), now=now)
    assert (row.state, row.approved_minor) == ("partly_approved", 2000)  # less than the 28.00


@pytest.mark.usefixtures("secrets_set")
def test_a_rejection_keeps_the_reason_and_a_redelivery_changes_nothing(engine, now, client):
    rid = _filed_with_easypost(engine, now)
    post_easypost(client, _event("claim.submitted"))
    body = _event("claim.rejected", status="rejected", status_detail="Not insured.")
    post_easypost(client, body)
    assert post_easypost(client, body).json()["outcome"] == "duplicate"
    apply_receipts(engine)
    [(row, events)] = recoveries.for_claim(engine, _claim_id(engine, rid), now=now)
    assert (row.state, row.carrier_message, row.approved_minor) == ("rejected", "Not insured.", 0)
    assert [e.to_state for e in events] == ["to_file", "filed", "rejected"]


@pytest.mark.usefixtures("secrets_set")
def test_a_claim_event_without_its_claim_is_refused(engine, client):
    r = post_easypost(client, {"id": "evt_x", "description": "claim.approved", "result": "?"})
    assert r.status_code == 400


# --- staff cancel a recovery filed through EasyPost: POST /v2/claims/{id}/cancel via the outbox ---

def _claim_json(claim_id, tracking, status):
    return Response(json.dumps({"id": claim_id, "object": "Claim", "status": status,
                                "tracking_code": tracking}), content_type="application/json")


def _filed_through_easypost(engine, now, easypost, claim_id="clm_097"):
    rid, tracking, _ref = _approved(engine, now)
    recoveries.request_filing(engine, rid, "staff:t", now=now)
    easypost.expect_oneshot_request("/v2/claims", method="GET").respond_with_handler(
        lambda r: _list())
    easypost.expect_oneshot_request("/v2/claims", method="POST").respond_with_handler(
        lambda r: _claim_json(claim_id, tracking, "submitted"))
    assert easypost_claims.send_pending(engine, now=now)["sent"] == 1
    assert _state(engine, rid) == ("filed", claim_id, "sent")
    return rid, tracking


def _cancel_row(engine, rid):
    from claims_core.infra.models import RecoveryCancellation
    with write_session(engine) as s:
        row = s.scalars(select(RecoveryCancellation)
                        .where(RecoveryCancellation.recovery_id == rid)).first()
        return None if row is None else (row.status, row.easypost_claim_id)


def test_staff_cancel_cancels_the_claim_at_easypost_once(engine, now, easypost):
    rid, tracking = _filed_through_easypost(engine, now, easypost)
    assert recoveries.cancel(engine, rid, "staff:t", "The parcel turned up.", now=now)
    assert _state(engine, rid)[0] == "cancelled" and _cancel_row(engine, rid) == ("pending",
                                                                                 "clm_097")
    with pytest.raises(ClaimRuleError) as e:  # cancelled once
        recoveries.cancel(engine, rid, "staff:t", now=now)
    assert e.value.code == ErrorCode.RECOVERY_ILLEGAL_STEP
    cancels = []

    def cancel(request):
        cancels.append(request)
        return _claim_json("clm_097", tracking, "cancelled")
    easypost.expect_request("/v2/claims/clm_097", method="GET").respond_with_handler(
        lambda r: _claim_json("clm_097", tracking, "submitted"))
    easypost.expect_request("/v2/claims/clm_097/cancel", method="POST").respond_with_handler(cancel)
    assert easypost_claims.send_pending(engine, now=now)["cancelled"] == 1
    [req] = cancels
    assert req.headers["Authorization"] == "Basic " + base64.b64encode(f"{KEY}:".encode()).decode()
    assert _cancel_row(engine, rid) == ("sent", "clm_097")
    assert easypost_claims.send_pending(engine, now=now) == {"sent": 0, "refused": 0, "retry": 0}
    [(row, events)] = recoveries.for_claim(engine, _claim_id(engine, rid), now=now)
    assert row.carrier_message == "The parcel turned up." and row.cancel_status == "sent"
    assert [e.action for e in events][-3:] == ["cancel", "cancel_requested",
                                               "cancelled_at_easypost"]


def test_a_lost_answer_never_cancels_twice(engine, now, easypost):
    rid, tracking = _filed_through_easypost(engine, now, easypost)
    recoveries.cancel(engine, rid, "staff:t", now=now)
    status = {"now": "submitted"}

    def cancel(request):  # EasyPost cancels it, but the answer never arrives
        status["now"] = "cancelled"
        return Response("gateway timeout", status=504)
    easypost.expect_request("/v2/claims/clm_097", method="GET").respond_with_handler(
        lambda r: _claim_json("clm_097", tracking, status["now"]))
    easypost.expect_request("/v2/claims/clm_097/cancel", method="POST").respond_with_handler(cancel)
    assert easypost_claims.send_pending(engine, now=now)["cancel_retry"] == 1
    assert _cancel_row(engine, rid)[0] == "pending"
    assert easypost_claims.send_pending(engine, now=now + timedelta(hours=1))["cancelled"] == 1
    posts = [r for r, _resp in easypost.log if r.path.endswith("/cancel")]
    assert len(posts) == 1  # the retry read the claim first and saw it cancelled
    assert _cancel_row(engine, rid) == ("sent", "clm_097")


def test_a_refused_cancel_shows_easyposts_message(engine, now, easypost):
    rid, tracking = _filed_through_easypost(engine, now, easypost)
    recoveries.cancel(engine, rid, "staff:t", now=now)
    easypost.expect_request("/v2/claims/clm_097", method="GET").respond_with_handler(
        lambda r: _claim_json("clm_097", tracking, "approved"))
    easypost.expect_request("/v2/claims/clm_097/cancel", method="POST").respond_with_json(
        {"error": {"code": "CLAIM.CANNOT_CANCEL", "message": "An approved claim can't be cancelled.",
                   "errors": []}}, status=422)
    assert easypost_claims.send_pending(engine, now=now)["cancel_refused"] == 1
    [(row, _e)] = recoveries.for_claim(engine, _claim_id(engine, rid), now=now)
    assert row.cancel_status == "refused" and "can't be cancelled" in row.cancel_error


def test_cancel_before_the_job_sent_it_withdraws_the_filing(engine, now, easypost):
    rid, _tracking, _ref = _approved(engine, now)
    recoveries.request_filing(engine, rid, "staff:t", now=now)
    assert not recoveries.cancel(engine, rid, "staff:t", now=now)  # nothing to cancel there
    assert _state(engine, rid) == ("cancelled", None, "withdrawn") and _cancel_row(engine, rid) is None
    assert easypost_claims.send_pending(engine, now=now) == {"sent": 0, "refused": 0, "retry": 0}
    assert easypost.log == []  # EasyPost never heard of it


def test_cancelled_while_being_filed_then_cancelled_there(engine, now, easypost):
    rid, tracking, _ref = _approved(engine, now)
    recoveries.request_filing(engine, rid, "staff:t", now=now)
    [work] = recoveries.lease_filings(engine, now=now)  # the sender has it (sending)
    assert recoveries.cancel(engine, rid, "staff:t", now=now)
    assert _cancel_row(engine, rid) == ("pending", None)
    easypost.expect_request("/v2/claims", method="GET").respond_with_handler(lambda r: _list())
    assert easypost_claims.send_pending(engine, now=now)["cancel_retry"] == 1  # not there yet
    recoveries.filing_sent(engine, work.filing_id, "clm_late", now=now)  # the filing lands
    assert _state(engine, rid) == ("cancelled", "clm_late", "withdrawn")
    easypost.expect_request("/v2/claims/clm_late", method="GET").respond_with_handler(
        lambda r: _claim_json("clm_late", tracking, "submitted"))
    easypost.expect_request("/v2/claims/clm_late/cancel", method="POST").respond_with_handler(
        lambda r: _claim_json("clm_late", tracking, "cancelled"))
    assert easypost_claims.send_pending(engine, now=now + timedelta(hours=1))["cancelled"] == 1
    assert _cancel_row(engine, rid) == ("sent", "clm_late")


def test_undone_approval_cancels_at_easypost_and_a_new_one_files_anew(engine, now, easypost):
    rid, tracking = _filed_through_easypost(engine, now, easypost)
    cid = _claim_id(engine, rid)
    decisions.undo_approval(engine, cid, "staff:t", "wrong claim", now=now)
    assert _cancel_row(engine, rid) == ("pending", "clm_097")
    easypost.expect_request("/v2/claims/clm_097", method="GET").respond_with_handler(
        lambda r: _claim_json("clm_097", tracking, "submitted"))
    easypost.expect_request("/v2/claims/clm_097/cancel", method="POST").respond_with_handler(
        lambda r: _claim_json("clm_097", tracking, "cancelled"))
    assert easypost_claims.send_pending(engine, now=now)["cancelled"] == 1
    decisions.approve(engine, cid, "staff:t", [decisions.ResolutionInput("refund", 2800)], now=now)
    assert _state(engine, rid)[0] == "to_file"
    assert recoveries.request_filing(engine, rid, "staff:t", now=now)  # filed again
    easypost.expect_request("/v2/claims", method="GET").respond_with_handler(
        lambda r: _list([{"id": "clm_097", "object": "Claim", "status": "cancelled",
                          "tracking_code": tracking}]))
    easypost.expect_request("/v2/claims", method="POST").respond_with_handler(
        lambda r: _claim_json("clm_new", tracking, "submitted"))
    assert easypost_claims.send_pending(engine, now=now)["sent"] == 1
    assert _state(engine, rid) == ("filed", "clm_new", "sent")  # not the cancelled one


from tests.pages.test_recoveries_pages import app, approved_claim, recovery_id  # noqa: E402,F401


def test_panel_cancels_a_recovery(app, engine, easypost):  # noqa: F811
    cid = approved_claim(engine)
    rid = recovery_id(engine, cid)
    with write_session(engine) as s:
        s.get(Recovery, rid).easypost_claim_id = "clm_panel"
    recoveries.file_by_hand(engine, rid, "staff:t", "EP-1")
    at = app("agent", "views/staff/claim.py", id=cid)
    next(b for b in at.button if b.label == "Cancel the recovery").click().run()
    assert not at.exception and _state(engine, rid)[0] == "cancelled"
    assert _cancel_row(engine, rid) == ("pending", "clm_panel")
    assert any("Cancelling the claim at EasyPost" in i.value for i in at.info)
