"""Money that came back, in analytics (issue #25): gross paid out, recovered, net cost, the
recovery rate by carrier, money lost to missed deadlines, and the pricing advisor on net cost."""
from __future__ import annotations

import dataclasses
from datetime import datetime, time, timedelta, timezone

from sqlalchemy import select

from claims_core.domain.pricing import Assumptions, SegmentInputs, advise, claims_cost
from claims_core.infra.db import read_session
from claims_core.infra.models import Recovery
from claims_core.services import analytics, analytics_rows, customer, decisions, pricing, recoveries

from tests.support.factories import claim_request, make_order

STAFF = "staff:1"


def _approved_claim(engine, now, number, *, issue, carrier="UPS", refund=5600):
    if issue == "lost":  # tracking stopped moving two weeks ago
        parcel = dict(status="in_transit", shipped=now - timedelta(days=20),
                      last_scan=now - timedelta(days=15))
    else:
        parcel = dict(status="delivered", shipped=now - timedelta(days=10),
                      delivered=now - timedelta(days=7))
    built = make_order(engine, number, f"c{number}@example.com", tracking_prefix=f"T{number}",
                       created=now - timedelta(days=25),
                       shipments=[dict(**parcel, carrier=carrier, items=[("MUG", 3), ("TOTE", 1)])])
    cid = customer.file_claim(engine, claim_request(built, key=f"k{number}", issue=issue),
                              now=now).claim_id
    decisions.approve(engine, cid, STAFF, [decisions.ResolutionInput("refund", refund)], now=now,
                      note="Part of it.")
    with read_session(engine) as s:
        rec = s.scalars(select(Recovery).where(Recovery.claim_id == cid)).one()
        return rec.id, rec.claimable_cents, rec.deadline


def _figures(engine, f):
    money = analytics.money_by_month(engine, f)
    rec = analytics.recoveries_by_carrier(engine, f)
    return analytics.net_cost(money, rec), rec


def _fee(engine, f, count_recoveries):
    a = dataclasses.replace(pricing.assumptions(engine, count_recoveries=count_recoveries),
                            min_orders=1, min_claims=1)
    [(inputs, adv)] = pricing.report(engine, f.date_from, f.date_to, "all", a)
    return inputs, adv


def test_a_partly_approved_recovery_lowers_net_cost_and_the_advisors_fee(engine, now):
    f = analytics.AnalyticsFilter(now.date() - timedelta(days=30), now.date() + timedelta(days=1))
    rid, claimable, _deadline = _approved_claim(engine, now, "2001", issue="lost")
    assert claimable == 5600
    net, _rec = _figures(engine, f)
    assert (net.paid_cents, net.recovered_cents, net.net_cents) == (5600, 0, 5600)
    _i, gross_advice = _fee(engine, f, False)
    _i, same = _fee(engine, f, True)
    assert same.flat_fee_cents == gross_advice.flat_fee_cents  # nothing came back yet
    assert gross_advice.claims_cost_cents == 5600

    recoveries.file_by_hand(engine, rid, STAFF, "UPS-77", now=now + timedelta(hours=1))
    assert recoveries.record_decision(engine, rid, STAFF, "partly_approved", approved_minor=2000,
                                      paid_minor=2000, now=now + timedelta(days=2)) == "paid"

    net, rec = _figures(engine, f)
    assert (net.paid_cents, net.recovered_cents, net.net_cents) == (5600, 2000, 3600)
    assert net.recovery_rate == 2000 / 5600
    [row] = rec.to_dict("records")
    assert (row["carrier"], row["recoveries"], row["filed"], row["recovered"],
            row["recovery_rate"]) == ("UPS", 1, 1, 2000, round(2000 / 5600, 3))

    inputs, net_advice = _fee(engine, f, True)
    assert inputs.recovered_cents == 2000
    assert net_advice.claims_cost_cents == 3600
    # 3600 / 0.6 / 1 order = 6000 (flat, to 5¢) against 5600 / 0.6 = 9333.3… → 9335
    assert (net_advice.flat_fee_cents, gross_advice.flat_fee_cents) == (6000, 9335)
    _i, still_gross = _fee(engine, f, False)
    assert still_gross.flat_fee_cents == 9335  # unticked: the gross cost, as before
    assert analytics_rows.differences(engine, [f]) == []


def test_a_recovery_written_off_past_its_deadline_is_money_lost(engine, now):
    f = analytics.AnalyticsFilter(now.date() - timedelta(days=30), now.date() + timedelta(days=1))
    _rid, claimable, deadline = _approved_claim(engine, now, "2002", issue="damaged",
                                               carrier="FedEx", refund=2800)
    # another, written off by the owner: not a missed deadline
    rid2, _c, _d = _approved_claim(engine, now, "2003", issue="stolen", carrier="FedEx",
                                   refund=1000)
    recoveries.write_off(engine, rid2, STAFF, "Not worth it.", role="owner", now=now)
    net, _rec = _figures(engine, f)
    assert (net.lost_deadline, net.lost_deadline_cents) == (0, 0)
    after = datetime.combine(deadline + timedelta(days=1), time(12), tzinfo=timezone.utc)
    assert recoveries.run_deadlines(engine, now=after)["written_off"] == 1
    net, rec = _figures(engine, f)
    assert (net.lost_deadline, net.lost_deadline_cents) == (1, claimable) == (1, 2800)
    [row] = rec.to_dict("records")
    assert (row["carrier"], row["written_off"], row["lost_deadline"]) == ("FedEx", 2, 1)
    assert net.recovered_cents == 0 and net.net_cents == net.paid_cents == 3800
    assert analytics_rows.differences(engine, [f]) == []


def test_an_undone_approval_takes_its_recovery_out(engine, now):
    f = analytics.AnalyticsFilter(now.date() - timedelta(days=30), now.date() + timedelta(days=1))
    with read_session(engine) as s:
        assert s.scalar(select(Recovery.id)) is None
    _approved_claim(engine, now, "2004", issue="not_received")
    assert len(analytics.recoveries_by_carrier(engine, f)) == 1
    with read_session(engine) as s:
        cid = s.scalar(select(Recovery.claim_id))
    decisions.undo_approval(engine, cid, STAFF, "wrong claim", now=now + timedelta(minutes=1))
    assert len(analytics.recoveries_by_carrier(engine, f)) == 0
    assert analytics_rows.differences(engine, [f]) == []


def test_net_cost_takes_off_what_came_back_only_when_ticked_and_never_below_zero():
    seg = SegmentInputs("All orders", 1200, 354000, 9_600_000, 40, 100000, 50000, 40000, 10,
                        recovered_cents=50000)
    assert claims_cost(seg, Assumptions()) == 156000
    assert claims_cost(seg, Assumptions(count_recoveries=True)) == 106000
    assert claims_cost(dataclasses.replace(seg, recovered_cents=10**9),
                       Assumptions(count_recoveries=True)) == 0
    gross, net = advise(seg, Assumptions()), advise(seg, Assumptions(count_recoveries=True))
    assert net.flat_fee_cents < gross.flat_fee_cents
    assert net.paid_claims_range == gross.paid_claims_range  # the range's count is unchanged
    few = dataclasses.replace(seg, paid_claims=4)
    assert not advise(few, Assumptions(count_recoveries=True)).enough_data  # same rules


def test_upgrading_across_0025_fills_the_recoveries_roll_up(db_url, now):
    """A database from before the recoveries roll-up gets it (and ``rollup_orders.recovered``)
    computed from its rows when upgraded."""
    from alembic import command

    from claims_core.infra import migrate
    from claims_core.infra.db import make_engine

    from tests.infra.test_rollups import table_contents
    engine = make_engine(db_url)
    rid, _c, _d = _approved_claim(engine, now, "2005", issue="damaged", refund=2800)
    recoveries.file_by_hand(engine, rid, STAFF, "UPS-9", now=now)
    recoveries.record_decision(engine, rid, STAFF, "approved", paid_minor=2000, now=now)
    kept = table_contents(engine)
    assert [v[4] for v in kept["rollup_recoveries"].values()] == [2000]  # recovered
    cfg = migrate.alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0024")  # the table and the column are gone
    migrate.upgrade(engine)
    assert table_contents(engine) == kept
    engine.dispose()
