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

from .test_recoveries import _claim

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

from .test_live_feeds import apply as apply_receipts  # noqa: E402
from .test_live_feeds import client, post_easypost, secrets_set  # noqa: E402,F401


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
