"""``python -m claims_core fill`` (``adapters/bulk.py``) makes recoveries too (issue #25), so the
analytics benchmark measures them: one for every approved lost/stolen/damaged/not-received claim
the shop paid out on, in every state a shop's ledger has (filed, paid in full and in part,
approved and waiting, rejected, written off by staff or by the deadline job, still to file),
shaped as the services write them (amounts through the domain's cap, events that lead to the
state), and counted by the roll-ups."""
from __future__ import annotations

import json
from collections import Counter
from datetime import timedelta

from sqlalchemy import func, select

from claims_core.adapters import bulk
from claims_core.domain import recoveries as rules
from claims_core.domain.vocabulary import GRANTED_STATUSES
from claims_core.infra.db import read_session
from claims_core.infra.models import Claim, Recovery, RecoveryEvent, Resolution
from claims_core.services import analytics, analytics_rows, decisions

from tests.conftest import NOW
from tests.services.test_recoveries import _claim


def test_fill_makes_recoveries_in_every_state_shaped_as_the_services_write_them(engine):
    bulk.fill(engine, 1500, now=NOW, with_photos=0)
    with read_session(engine) as s:
        recs = s.scalars(select(Recovery)).all()
        eligible = set(s.scalars(select(Claim.id).where(
            Claim.status.in_(GRANTED_STATUSES), Claim.issue_type.in_(rules.RECOVERABLE_ISSUES),
            Claim.id.in_(select(Resolution.claim_id)))))
        events: dict[int, list] = {}
        for e in s.scalars(select(RecoveryEvent).order_by(RecoveryEvent.id)):
            events.setdefault(e.recovery_id, []).append(e)
        assert {r.claim_id for r in recs} == eligible and eligible
        states = Counter(r.state for r in recs)
        assert set(states) >= {"to_file", "filed", "needs_action", "approved", "paid", "rejected",
                               "written_off"}
        assert states["paid"] > states["rejected"] > 0  # most filed claims are paid
        partly = [r for r in recs if r.state == "paid" and r.recovered_cents < r.claimable_cents]
        assert partly and all(r.recovered_cents > 0 for r in partly)  # paid in part
        assert any(r.insured_minor is not None for r in recs)
        for r in recs:
            assert r.claimable_cents == rules.claimable_minor(r.paid_out_cents, r.liability_cents,
                                                               r.insured_minor)
            assert r.recovered_cents <= r.claimable_cents and r.updated_at <= NOW
            evs = events[r.id]
            assert evs[0].action == "open" and evs[-1].to_state == r.state
            for before, after in zip(evs, evs[1:]):  # each step from where the last one led
                assert after.from_state == before.to_state and after.at >= before.at
                assert rules.check(rules.RecoveryAction(after.action), before.to_state,
                                   rules.SYSTEM if after.actor == "system" else rules.STAFF)
            assert (r.filed_at is not None) == any(e.action == "file" for e in evs)
        by_deadline = [r for r in recs if r.state == "written_off" and r.filed_at is None]
        assert by_deadline and all(r.deadline < NOW.date() for r in by_deadline)
        assert all(json.loads(events[r.id][-1].details)["reason"] == "deadline_passed"
                   for r in by_deadline)


def test_the_rollups_count_the_bulk_recoveries(engine):
    bulk.fill(engine, 1500, now=NOW, with_photos=0)
    f = analytics.AnalyticsFilter(NOW.date() - timedelta(days=400), NOW.date())
    from_rollups = analytics.recoveries_by_carrier(engine, f)
    assert from_rollups.equals(analytics_rows.recoveries_by_carrier(engine, f))
    with read_session(engine) as s:
        recovered = s.scalar(select(func.sum(Recovery.recovered_cents)))
        lost = s.scalar(select(func.count()).select_from(Recovery).where(
            Recovery.state == "written_off", Recovery.filed_at.is_(None)))
    assert int(from_rollups["recovered"].sum()) == recovered > 0
    assert int(from_rollups["lost_deadline"].sum()) == lost > 0  # money lost to missed deadlines


def test_the_services_carry_on_after_a_fill(engine, now):
    """The ids the bulk rows took (PostgreSQL's sequences moved past them): a claim approved
    afterwards opens its recovery."""
    bulk.fill(engine, 200, now=NOW, with_photos=0)
    _b, cid = _claim(engine, now, number="77001")
    decisions.approve(engine, cid, "staff:t", [decisions.ResolutionInput("refund", 2800)], now=now)
    with read_session(engine) as s:
        assert s.scalar(select(func.count()).select_from(Recovery)
                        .where(Recovery.claim_id == cid)) == 1


def test_product_names_are_each_skus_newest(engine):
    """The SKU breakdown's names (``analytics.product_names``, one index look-up per SKU since the
    1M benchmark): the name on the SKU's newest line item; a SKU without one has none."""
    from claims_core.infra.db import read_session as rs
    from tests.support.factories import make_order
    make_order(engine, "2001", lines=(("MUG", "Old Mug", 2800, 1), ("TOTE", "Canvas Tote", 3450, 1)))
    make_order(engine, "2002", lines=(("MUG", "Hand-thrown Mug", 2800, 1),))
    skus = ["MUG", "TOTE", "GONE"] + [f"X{i}" for i in range(250)]  # more than one chunk
    with rs(engine) as s:
        assert analytics.product_names(s, skus) == {"MUG": "Hand-thrown Mug", "TOTE": "Canvas Tote"}
