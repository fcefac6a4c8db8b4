"""Retention (Settings → Privacy): what the daily job removes, when, and what it leaves alone.

Times come from the tests' fixed ``now`` (the app's clock injected), moved forward by calendar
months / days; the same queries give the Settings page's counts and the job's removal.
"""
from __future__ import annotations

import io
from datetime import timedelta

import pypdf
import pytest
from sqlalchemy import select

from claims_core.adapters import evidence_pack, jobs
from claims_core.domain import privacy
from claims_core.domain.errors import ErrorCode, InvalidInput
from claims_core.domain.vocabulary import DenialReason
from claims_core.infra.db import read_session, write_session
from claims_core.infra.models import (ROLLUP_CLAIMS, ROLLUP_DURATIONS, ROLLUP_ORDERS, ROLLUP_PAYOUTS,
                                      ROLLUP_SHIPMENTS, ROLLUP_UNITS, Claim, ClaimDraft, Evidence,
                                      InboundMail, OutboxMessage, WebhookReceipt)
from claims_core.services import customer, decisions, drafts, retention

from tests.support.factories import claim_request, jpeg_bytes, make_order

ROLLUPS = (ROLLUP_SHIPMENTS, ROLLUP_UNITS, ROLLUP_CLAIMS, ROLLUP_DURATIONS, ROLLUP_PAYOUTS,
           ROLLUP_ORDERS)


def _rollups(engine) -> dict:
    with read_session(engine) as s:
        return {t.name: sorted(tuple(r) for r in s.execute(select(t)).all()) for t in ROLLUPS}


def _claim(engine, now, number, *, photos=2, decide="deny", key=None, decided_at=None):
    built = make_order(engine, number=number, email=f"c{number}@example.com")
    pics = [(f"p{i}.jpg", jpeg_bytes(seed=int(number) * 7 + i)) for i in range(photos)]
    r = customer.file_claim(engine, claim_request(built, key=key or f"k-{number}", photos=pics),
                            now=now)
    decided_at = decided_at or now
    if decide == "deny":
        decisions.deny(engine, r.claim_id, "staff:ana", DenialReason.NOT_COVERED, now=decided_at)
    elif decide == "approve":
        decisions.approve(engine, r.claim_id, "staff:ana",
                          [decisions.ResolutionInput("refund", 1000)], note="part",
                          now=decided_at)
    return r


def test_bounds_and_defaults_live_in_the_domain_and_are_enforced(engine):
    policy = retention.load_policy(engine)
    assert policy == {r.setting: r.default for r in privacy.RETENTION_RULES}
    assert policy["retain_photos_months"] == 24 and policy["retain_webhook_days"] == 30
    assert policy["retain_outbox_days"] == 90 and policy["retain_unmatched_mail_days"] == 30
    assert policy["retain_draft_days"] == 7
    for bad in ({"retain_photos_months": 0}, {"retain_webhook_days": 366},
                {"retain_outbox_days": "90"}, {"retain_draft_days": True}):
        with pytest.raises(InvalidInput) as e:
            retention.save_policy(engine, "owner", bad)
        assert e.value.code == ErrorCode.SETTING_INVALID
    with pytest.raises(InvalidInput) as e:
        retention.save_policy(engine, "owner", {"name": 3})
    assert e.value.code == ErrorCode.SETTING_UNKNOWN
    assert retention.save_policy(engine, "owner", {"retain_photos_months": 6}) == \
        ["retain_photos_months"]
    assert retention.load_policy(engine)["retain_photos_months"] == 6


def test_photos_and_signatures_go_n_months_after_the_decision_and_rollups_stay(engine, now):
    old = _claim(engine, now, "1001", decide="deny")  # decided at ``now``
    granted = _claim(engine, now, "1002", decide="approve")
    open_ = _claim(engine, now, "1003", decide=None)  # never decided: kept however old
    later = _claim(engine, now, "1004", decide="deny",
                   decided_at=now + timedelta(days=62))  # decided 2 months on

    before_24 = privacy.months_before(now, -24) - timedelta(hours=1)
    assert retention.due_counts(engine, now=before_24).photos == 0

    at = privacy.months_before(now, -24) + timedelta(hours=1)  # 24 months and an hour later
    due = retention.due_counts(engine, now=at)
    assert (due.photos, due.signatures) == (4, 2)
    rollups = _rollups(engine)

    done = retention.apply_retention(engine, now=at)
    assert done.photos == 4 and done.signatures == 2
    assert _rollups(engine) == rollups  # the analytics figures don't move
    assert retention.due_counts(engine, now=at).photos == 0  # a second run finds nothing
    assert retention.apply_retention(engine, now=at).total == 0

    with read_session(engine) as s:
        for r in (old, granted):
            e = s.scalars(select(Evidence).where(Evidence.claim_id == r.claim_id)).first()
            assert e.removed_at is not None and e.data == b"" and e.thumbnail == b""
            assert e.sha256 and e.filename  # the record of the photo stays
            c = s.get(Claim, r.claim_id)
            assert c.signature_png is None and c.signature_removed_at is not None
            assert c.status in ("denied", "approved")  # unchanged
        for r in (open_, later):
            e = s.scalars(select(Evidence).where(Evidence.claim_id == r.claim_id)).first()
            assert e.removed_at is None and len(e.data) > 1000
            assert s.get(Claim, r.claim_id).signature_png is not None


def test_evidence_pack_after_retention_says_removed_instead_of_the_photo(engine, now):
    r = _claim(engine, now, "1001", photos=2)
    before = evidence_pack.build(engine, r.claim_id, now=now)
    assert sum(len(p.images) for p in pypdf.PdfReader(io.BytesIO(before)).pages) == 3  # + signature
    retention.apply_retention(engine, now=privacy.months_before(now, -25))
    pdf = evidence_pack.build(engine, r.claim_id, now=now)
    reader = pypdf.PdfReader(io.BytesIO(pdf))
    text = " ".join(" ".join(p.extract_text() for p in reader.pages).split())
    assert sum(len(p.images) for p in reader.pages) == 0
    assert text.count("removed under the retention policy") == 3  # two photos, the signature
    assert "Photos: 2" in text


def test_webhook_payloads_outbox_bodies_drafts_and_unmatched_mail(engine, now):
    old, fresh = now - timedelta(days=31), now - timedelta(days=29)
    with write_session(engine) as s:
        def receipt(n, at, status="done", outcome="applied"):
            s.add(WebhookReceipt(source="shopify", delivery_id=f"d{n}", topic="orders/create",
                                 received_at=at, status=status, outcome=outcome,
                                 payload='{"email": "x@example.com"}', next_attempt_at=at))
        receipt(1, old)
        receipt(2, old, outcome="waiting")
        receipt(3, old, status="failed", outcome="rejected")
        receipt(4, old, status="pending", outcome="pending")  # still to apply: kept
        receipt(5, fresh)

        def mail(n, at, status):
            s.add(OutboxMessage(dedupe_key=f"m{n}", kind="claim_received", to_addr="a@example.com",
                                subject="s", body_text="Dear Sam", body_html="<p>Dear Sam</p>",
                                status=status, created_at=at, next_attempt_at=at))
        mail(1, now - timedelta(days=91), "sent")
        mail(2, now - timedelta(days=91), "pending")  # not out yet: kept
        mail(3, now - timedelta(days=89), "sent")

        def inbound(n, at, status):
            s.add(InboundMail(message_id=f"<{n}@x>", received_at=at, from_addr="x@example.com",
                              subject="hi", status=status, body_text="my address is …",
                              raw=b"raw mail"))
        inbound(1, old, "unmatched")
        inbound(2, fresh, "unmatched")
        inbound(3, old, "attached")  # became a message on its claim: that is the claim's record
    built = make_order(engine)
    drafts.save_draft(engine, built.order_id, built.email, {"step": 2}, now=now - timedelta(days=5))
    retention.save_policy(engine, "owner", {"retain_draft_days": 3})

    due = retention.due_counts(engine, now=now)
    assert (due.webhook_payloads, due.outbox_bodies, due.drafts, due.unmatched_mail) == (3, 1, 1, 1)
    done = retention.apply_retention(engine, now=now)
    assert done.as_dict() == due.as_dict()

    with read_session(engine) as s:
        r = {x.delivery_id: x for x in s.scalars(select(WebhookReceipt))}
        assert [r[f"d{n}"].payload == "" for n in range(1, 6)] == [True, True, True, False, False]
        assert r["d2"].outcome == "ignored"  # waited for an order that never came
        assert r["d4"].status == "pending"
        o = {x.dedupe_key: x for x in s.scalars(select(OutboxMessage))}
        assert (o["m1"].body_text, o["m1"].body_html, o["m1"].to_addr) == ("", "", "a@example.com")
        assert o["m2"].body_text and o["m3"].body_text
        m = {x.message_id: x for x in s.scalars(select(InboundMail))}
        assert (m["<1@x>"].status, m["<1@x>"].raw, m["<1@x>"].body_text) == ("discarded", None, "")
        assert m["<2@x>"].status == "unmatched" and m["<2@x>"].raw == b"raw mail"
        assert m["<3@x>"].body_text
        assert s.scalars(select(ClaimDraft)).all() == []


def test_draft_setting_sets_how_long_a_new_draft_is_kept(engine, now):
    built = make_order(engine)
    retention.save_policy(engine, "owner", {"retain_draft_days": 2})
    drafts.save_draft(engine, built.order_id, built.email, {"step": 1}, now=now)
    assert drafts.load_draft(engine, built.order_id, built.email,
                             now=now + timedelta(days=1)) is not None
    assert drafts.load_draft(engine, built.order_id, built.email,
                             now=now + timedelta(days=2, minutes=1)) is None


def test_the_background_job_applies_the_policy_on_tick(engine, now):
    assert "retention" in jobs.JOBS_BY_NAME
    assert jobs.JOBS_BY_NAME["retention"].every == 24 * 3600
    r = _claim(engine, now, "1001", photos=1)
    report = jobs.tick(engine, now=privacy.months_before(now, -25), smtp=None, smtp_given=True)
    assert "retention" not in report.failed
    with read_session(engine) as s:
        assert s.scalars(select(Evidence.removed_at).where(Evidence.claim_id == r.claim_id)).one()

