"""The analytics roll-ups against the rows (issue 16).

A property test runs random histories through the real services (orders with one or two
shipments, filings, approvals with partial refunds, store credit with a bonus and reshipments,
denials, requests for information, staff replies, undone approvals, reopenings, closing,
cancellations, a carrier corrected, shipments deleted, an ORM bulk update; and the recoveries
those approvals open: filed, told the carrier needs something, approved, partly approved and paid
in part, rejected, written off by staff or by the deadline job, cancelled by an undone approval
or by staff, their insured value entered or cleared)
and then checks:

- the roll-up tables hold exactly what a rebuild from the rows computes, and
- every figure of the analytics page (``analytics``, read from the roll-ups) equals the same
  figure straight from the rows (``analytics_rows``), for several filters, and so does the pricing
  advisor's every segment.

The store's time zone is drawn too (days are the store's local days, issue 26): UTC, New York,
Kolkata (+05:30) or Auckland; the recoveries' histories end with the owner changing it.
"""
from __future__ import annotations

import contextlib
import shutil
import tempfile
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, update

from claims_core.domain.durations import duration_bucket, nearest_rank
from claims_core.domain.errors import ClaimRuleError
from claims_core.infra import rollups
from claims_core.infra.db import make_engine, read_session, write_session
from claims_core.infra.migrate import upgrade
from claims_core.infra.models import Claim, Order, Recovery, Shipment
from claims_core.services import analytics, analytics_rows, decisions, pricing, recoveries
from claims_core.services import settings as store_settings
from claims_core.services.recovery_ledger import apply_deadline
from claims_core.services.unit_of_work import run
from claims_core.services.decisions import ResolutionInput

from tests.conftest import NOW, ON_POSTGRES, _pg_schema
from tests.support.factories import claim_request, make_order

CARRIERS = ("UPS", "FedEx", "USPS")
ISSUES = ("damaged", "defective", "missing_item", "not_received", "stolen")
STAFF = "staff:1"
ZONES = ("UTC", "America/New_York", "Asia/Kolkata", "Pacific/Auckland")
zone = st.sampled_from(ZONES)


@contextlib.contextmanager
def fresh_engine(template: Path, tz: str = "UTC"):
    """A fresh database whose store is in ``tz``."""
    if ON_POSTGRES:
        with _pg_schema(migrated=True) as url:
            engine = make_engine(url)
            try:
                store_settings.update_settings(engine, STAFF, {"timezone": tz})
                yield engine
            finally:
                engine.dispose()
        return
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "claims.db"
        shutil.copy(template, path)
        engine = make_engine(f"sqlite:///{path}")
        try:
            store_settings.update_settings(engine, STAFF, {"timezone": tz})
            yield engine
        finally:
            engine.dispose()


# --- the tables against a rebuild ------------------------------------------------------------------

def table_contents(engine) -> dict[str, dict[tuple, tuple]]:
    """Every roll-up row with a non-zero measure (a row that went back to zero is as good as none)."""
    out = {}
    with read_session(engine) as s:
        for r in rollups.ROLLUPS:
            n = len(r.keys)
            out[r.table.name] = {tuple(row[:n]): tuple(int(v) for v in row[n:])
                                 for row in s.execute(select(r.table)) if any(row[n:])}
    return out


def assert_tables_match_rebuild(engine) -> None:
    kept = table_contents(engine)
    rollups.rebuild(engine)
    assert table_contents(engine) == kept


# --- every figure, both ways -----------------------------------------------------------------------

def _frames_equal(a, b) -> None:
    if isinstance(a, pd.DataFrame):
        pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True),
                                      check_dtype=False)
    else:
        assert a == b


def assert_figures_match(engine, f: analytics.AnalyticsFilter) -> None:
    for name, args in (("claim_rates", ()), ("rate_trend", ("week",)), ("rate_trend", ("month",)),
                       ("outcomes_trend", ("week",)), ("outcomes_trend", ("month",)),
                       ("breakdown", ("carrier",)), ("breakdown", ("region",)),
                       ("breakdown", ("method",)), ("breakdown", ("sku",)),
                       ("money_by_month", ()), ("operations", ()), ("recoveries_by_carrier", ())):
        fast = getattr(analytics, name)(engine, f, *args)
        rows = getattr(analytics_rows, name)(engine, f, *args)
        try:
            _frames_equal(fast, rows)
        except AssertionError as e:
            raise AssertionError(f"{name}{args} with {f}: {e}\nroll-ups:\n{fast}\nrows:\n{rows}") from None
    for by in pricing.SEGMENTS:
        assert (pricing.segment_inputs(engine, f.date_from, f.date_to, by)
                == analytics_rows.pricing_segment_inputs(engine, f.date_from, f.date_to, by)), by


FILTERS = (
    analytics.AnalyticsFilter(NOW.date() - timedelta(days=400), NOW.date() + timedelta(days=30)),
    analytics.AnalyticsFilter(NOW.date() - timedelta(days=20), NOW.date() - timedelta(days=9)),
    analytics.AnalyticsFilter(NOW.date() - timedelta(days=400), NOW.date() + timedelta(days=30),
                              carriers=("UPS", "USPS")),
    analytics.AnalyticsFilter(NOW.date() - timedelta(days=60), NOW.date() + timedelta(days=30),
                              issue_types=("damaged", "not_received"), carriers=("FedEx",)),
    analytics.AnalyticsFilter(NOW.date() - timedelta(days=400), NOW.date() + timedelta(days=30),
                              countries=("CA",)),
)


# --- random histories --------------------------------------------------------------------------------

order_spec = st.fixed_dictionaries({
    "protected": st.booleans(),
    "days_ago": st.integers(12, 40),
    "shipments": st.lists(st.tuples(st.sampled_from(CARRIERS), st.integers(0, 2)), min_size=0,
                          max_size=2),
    "province": st.sampled_from(("CA", "NY", "")),
    "country": st.sampled_from(("US", "CA")),
    "mugs": st.integers(1, 3),
})

step = st.one_of(
    st.tuples(st.just("file"), st.integers(0, 9), st.integers(0, 1), st.sampled_from(ISSUES),
              st.sampled_from(("refund", "store_credit", "reshipment"))),
    st.tuples(st.just("approve"), st.integers(0, 9), st.sampled_from(("refund", "store_credit", "reshipment")),
              st.integers(1, 100), st.integers(0, 10)),
    st.tuples(st.just("approve_split"), st.integers(0, 9)),
    st.tuples(st.just("deny"), st.integers(0, 9)),
    st.tuples(st.just("request_info"), st.integers(0, 9)),
    st.tuples(st.just("message"), st.integers(0, 9)),
    st.tuples(st.just("undo"), st.integers(0, 9)),
    st.tuples(st.just("reopen"), st.integers(0, 9)),
    st.tuples(st.just("close"), st.integers(0, 9)),
    st.tuples(st.just("resolve"), st.integers(0, 9)),
    st.tuples(st.just("cancel_order"), st.integers(0, 9)),
    st.tuples(st.just("carrier"), st.integers(0, 9), st.sampled_from(CARRIERS + ("",))),
    st.tuples(st.just("delete_shipment"), st.integers(0, 9)),
    st.tuples(st.just("unprotect"), st.integers(0, 9)),  # an ORM bulk UPDATE, not a flush
    # the recoveries the approvals open (``idx`` picks one)
    st.tuples(st.just("rec_file"), st.integers(0, 9)),
    st.tuples(st.just("rec_needs_action"), st.integers(0, 9)),
    st.tuples(st.just("rec_decide"), st.integers(0, 9),
              st.sampled_from(("approved", "partly_approved", "rejected")), st.integers(0, 100),
              st.booleans()),
    st.tuples(st.just("rec_pay"), st.integers(0, 9), st.integers(0, 100)),
    st.tuples(st.just("rec_write_off"), st.integers(0, 9)),
    st.tuples(st.just("rec_deadline"), st.integers(0, 9)),  # the job, long after the deadline
)


def _recovery(engine, idx) -> tuple[int, int] | None:
    with read_session(engine) as s:
        rows = s.execute(select(Recovery.id, Recovery.claimable_cents).order_by(Recovery.id)).all()
    return tuple(rows[idx % len(rows)]) if rows else None


def run_recovery_step(engine, op, at) -> None:
    kind, idx, *rest = op
    picked = _recovery(engine, idx)
    if picked is None:
        return
    rid, claimable = picked
    if kind == "rec_file":
        recoveries.file_by_hand(engine, rid, STAFF, f"CL-{rid}", now=at)
    elif kind == "rec_needs_action":
        recoveries.needs_action(engine, rid, STAFF, "A photo of the box, please.", now=at)
    elif kind == "rec_decide":
        outcome, pct, pay = rest
        approved = claimable * pct // 100
        recoveries.record_decision(engine, rid, STAFF, outcome, approved_minor=approved,
                                   paid_minor=approved if pay else None, now=at)
    elif kind == "rec_pay":
        recoveries.record_payment(engine, rid, STAFF, claimable * rest[0] // 100, now=at)
    elif kind == "rec_write_off":
        recoveries.write_off(engine, rid, STAFF, "Not worth it.", role="owner", now=at)
    elif kind == "rec_deadline":
        run(engine, lambda s: apply_deadline(s, rid, at + timedelta(days=400)))
    elif kind == "rec_insured":
        recoveries.set_insured_value(engine, rid, STAFF, rest[0], now=at)
    elif kind == "rec_cancel":
        recoveries.cancel(engine, rid, STAFF, now=at)


def build_orders(engine, specs) -> list:
    built = []
    for i, spec in enumerate(specs):
        created = NOW - timedelta(days=spec["days_ago"], hours=i)
        shipments = [dict(status="delivered", carrier=carrier,
                          shipped=created + timedelta(days=1 + lag, hours=3 * j),
                          delivered=created + timedelta(days=4 + lag),
                          items=[("MUG", spec["mugs"])] if j == 0 else [("TOTE", 1)])
                     for j, (carrier, lag) in enumerate(spec["shipments"])]
        b = make_order(engine, f"{7000 + i}", f"c{i}@example.com", protected=spec["protected"],
                       created=created, shipments=shipments,
                       lines=(("MUG", "Mug", 2800, spec["mugs"]), ("TOTE", "Tote", 3450, 1)))
        with write_session(engine) as s:
            s.get(Order, b.order_id).shipping_province = spec["province"]
            s.get(Order, b.order_id).shipping_country = spec["country"]
        built.append(b)
    return built


def _claim_ids(engine) -> list[int]:
    with read_session(engine) as s:
        return list(s.scalars(select(Claim.id).order_by(Claim.id)))


def _claimed_cents(engine, claim_id) -> int:
    with read_session(engine) as s:
        return s.get(Claim, claim_id).claimed_cents


def run_step(engine, built, claims: list[int], op, at) -> None:
    kind, idx, *rest = op
    pick = claims[idx % len(claims)] if claims else None
    try:
        if kind.startswith("rec_"):
            run_recovery_step(engine, op, at)
        elif kind == "file":
            b = built[idx % len(built)]
            shipment, issue, wanted = rest
            if shipment >= len(b.shipment_ids):
                return
            items = {b.items[(shipment, "MUG" if shipment == 0 else "TOTE")]: 1}
            from claims_core.services import customer
            r = customer.file_claim(engine, claim_request(b, key=f"k{at.timestamp()}", shipment=shipment,
                                                         issue=issue, items=items, resolution=wanted),
                                    now=at)
            claims.append(r.claim_id)
        elif pick is None:
            return
        elif kind == "approve":
            res_kind, pct, bonus = rest
            cents = max(1, _claimed_cents(engine, pick) * pct // 100)
            decisions.approve(engine, pick, STAFF, [ResolutionInput(res_kind, cents,
                                                                    bonus if res_kind == "store_credit" else 0)],
                              now=at, note="Part of it arrived.")
        elif kind == "approve_split":
            cents = _claimed_cents(engine, pick)
            decisions.approve(engine, pick, STAFF, [ResolutionInput("refund", cents // 2),
                                                    ResolutionInput("store_credit", cents - cents // 2, 5)],
                              now=at, note="Half back, half as credit.")
        elif kind == "deny":
            decisions.deny(engine, pick, STAFF, "other", "Not covered.", now=at)
        elif kind == "request_info":
            decisions.request_info(engine, pick, STAFF, "Agent", "A photo of the label, please.", now=at)
        elif kind == "message":
            decisions.staff_message(engine, pick, STAFF, "Agent", "Looking into it.", now=at)
        elif kind == "undo":
            decisions.undo_approval(engine, pick, STAFF, "Approved by mistake.", now=at)
        elif kind == "reopen":
            decisions.reopen(engine, pick, STAFF, now=at)
        elif kind == "close":
            decisions.close(engine, pick, STAFF, now=at)
        elif kind == "resolve":
            decisions.mark_resolved(engine, pick, STAFF, now=at)
        elif kind == "cancel_order":
            with write_session(engine) as s:
                s.get(Order, built[idx % len(built)].order_id).cancelled_at = at
        elif kind == "carrier":
            with write_session(engine) as s:
                sh = s.scalars(select(Shipment).where(Shipment.order_id == built[idx % len(built)].order_id)
                               .order_by(Shipment.id)).first()
                if sh is not None:
                    sh.carrier = rest[0]
        elif kind == "delete_shipment":
            with write_session(engine) as s:
                for sh in s.scalars(select(Shipment).where(Shipment.order_id == built[idx % len(built)].order_id)):
                    if s.scalar(select(Claim.id).where(Claim.shipment_id == sh.id).limit(1)) is None:
                        s.delete(sh)
                        break
        elif kind == "unprotect":
            with write_session(engine) as s:
                s.execute(update(Order).where(Order.id == built[idx % len(built)].order_id)
                          .values(protection_purchased_at=None))
    except ClaimRuleError:
        pass  # a refusal (wrong status, not eligible…) changes nothing: that is part of the test


@settings(max_examples=8 if ON_POSTGRES else 40, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(specs=st.lists(order_spec, min_size=1, max_size=4), steps=st.lists(step, min_size=1, max_size=14),
       tz=zone)
def test_rollups_equal_the_rows_over_random_histories(sqlite_template, specs, steps, tz):
    with fresh_engine(sqlite_template, tz) as engine:
        built = build_orders(engine, specs)
        claims: list[int] = []
        for i, op in enumerate(steps):
            run_step(engine, built, claims, op, NOW + timedelta(hours=5 * i + 1))
        for f in FILTERS:
            assert_figures_match(engine, f)
        assert_tables_match_rebuild(engine)


recovery_step = st.one_of(
    st.tuples(st.just("rec_file"), st.integers(0, 9)),
    st.tuples(st.just("rec_needs_action"), st.integers(0, 9)),
    st.tuples(st.just("rec_decide"), st.integers(0, 9),
              st.sampled_from(("approved", "partly_approved", "rejected")), st.integers(0, 100),
              st.booleans()),
    st.tuples(st.just("rec_pay"), st.integers(0, 9), st.integers(0, 100)),
    st.tuples(st.just("rec_write_off"), st.integers(0, 9)),
    st.tuples(st.just("rec_deadline"), st.integers(0, 9)),
    st.tuples(st.just("undo"), st.integers(0, 9)),  # approval undone: its recovery is cancelled
    st.tuples(st.just("approve"), st.integers(0, 9), st.sampled_from(("refund", "store_credit")),
              st.integers(1, 100), st.integers(0, 10)),  # approved again: the recovery reopens
    st.tuples(st.just("reopen"), st.integers(0, 9)),
    st.tuples(st.just("carrier"), st.integers(0, 9), st.sampled_from(CARRIERS)),
    st.tuples(st.just("cancel_order"), st.integers(0, 9)),
    # the insured value entered (or cleared: None) caps what can be claimed; staff cancel
    st.tuples(st.just("rec_insured"), st.integers(0, 9), st.one_of(st.none(), st.integers(1, 20_000))),
    st.tuples(st.just("rec_cancel"), st.integers(0, 9)),
)


@settings(max_examples=6 if ON_POSTGRES else 30, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(specs=st.lists(order_spec.filter(lambda o: o["shipments"]), min_size=1, max_size=3),
       issues=st.lists(st.sampled_from(("damaged", "not_received", "stolen")), min_size=3, max_size=3),
       steps=st.lists(recovery_step, min_size=1, max_size=12), zones=st.tuples(zone, zone))
def test_recoveries_in_the_rollups_equal_the_rows(sqlite_template, specs, issues, steps, zones):
    """Every order gets a recoverable claim, approved (a recovery opens); then random recovery
    steps, undone and repeated approvals, carriers corrected, orders cancelled; then the owner
    moves the store to another zone (the roll-ups move in the same call)."""
    with fresh_engine(sqlite_template, zones[0]) as engine:
        built = build_orders(engine, specs)
        claims: list[int] = []
        for i in range(len(built)):
            run_step(engine, built, claims, ("file", i, 0, issues[i], "refund"), NOW + timedelta(hours=i))
        for i in range(len(claims)):
            run_step(engine, built, claims, ("approve", i, "refund", 80, 0),
                     NOW + timedelta(hours=5, minutes=i))
        for i, op in enumerate(steps):
            run_step(engine, built, claims, op, NOW + timedelta(hours=5 * i + 6))
        store_settings.update_settings(engine, STAFF, {"timezone": zones[1]})
        for f in FILTERS:
            assert_figures_match(engine, f)
        assert_tables_match_rebuild(engine)


# --- the pieces ------------------------------------------------------------------------------------

def test_a_rolled_back_transaction_leaves_the_rollups_alone(db_url):
    engine = make_engine(db_url)
    b = make_order(engine, "8001", shipments=[dict(status="delivered", carrier="UPS",
                                                   shipped=NOW - timedelta(days=10), items=[("MUG", 3)])])
    before = table_contents(engine)
    assert before["rollup_shipments"]  # the order is in
    with pytest.raises(RuntimeError):
        with write_session(engine) as s:
            s.get(Order, b.order_id).cancelled_at = NOW
            s.flush()
            raise RuntimeError("changed my mind")
    assert table_contents(engine) == before
    with write_session(engine) as s:
        s.get(Order, b.order_id).cancelled_at = NOW
    assert not table_contents(engine)["rollup_shipments"]  # a cancelled order is out of the cohort
    engine.dispose()


def test_upgrading_across_the_rollups_revision_fills_them(db_url):
    """A database from before the roll-ups gets them computed from its rows when upgraded."""
    from alembic import command

    from claims_core.infra import migrate
    engine = make_engine(db_url)
    make_order(engine, "8002")
    kept = table_contents(engine)
    assert kept["rollup_orders"]
    cfg = migrate.alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0012")  # the tables are gone
    upgrade(engine)
    assert table_contents(engine) == kept
    engine.dispose()


def test_only_staff_events_cost_a_snapshot(db_url):
    """A carrier's event (each tracking scan writes one) can't move a roll-up: no snapshot of its
    order; a staff event on a claim (its first response) still does, whatever the case of 'staff:'
    (SQLite's LIKE ignores it), and the figures stay right."""
    from claims_core.services import customer
    from claims_core.services.events import record_event
    engine = make_engine(db_url)
    b = make_order(engine, "8003")
    claim_id = customer.file_claim(engine, claim_request(b), now=NOW).claim_id
    statements = []
    with write_session(engine) as s:
        rollups_sql = lambda conn, cur, stmt, *a: statements.append(stmt)  # noqa: E731
        from sqlalchemy import event as sa_event
        sa_event.listen(s.connection(), "before_cursor_execute", rollups_sql)
        record_event(s, actor="carrier:17track", action="tracking_updated", order_id=b.order_id,
                     at=NOW)
        s.flush()
        tracker = s.info.get("rollups")
        assert tracker is None or not tracker.orders
        assert not any("rollup_" in x for x in statements)
    for actor in ("staff:1", "STAFF:2"):
        with write_session(engine) as s:
            record_event(s, actor=actor, action="note_added", claim=s.get(Claim, claim_id),
                         at=NOW + timedelta(hours=1))
            s.flush()
            assert s.info["rollups"].orders == {b.order_id}
    assert_tables_match_rebuild(engine)
    engine.dispose()


@pytest.mark.parametrize("seconds,edge", [(-5, 0), (0, 0), (1, 900), (900, 900), (901, 1800),
                                          (86_400, 86_400), (86_401, 90_000), (172_800, 172_800),
                                          (7 * 86_400 + 1, 7 * 86_400 + 21_600),
                                          (31 * 86_400 - 5, 31 * 86_400)])
def test_duration_buckets(seconds, edge, db_url):
    assert duration_bucket(seconds) == edge
    engine = make_engine(db_url)
    from sqlalchemy import BigInteger, literal
    with read_session(engine) as s:
        assert s.scalar(select(rollups.duration_bucket(literal(seconds, BigInteger)))) == edge
    engine.dispose()


def test_nearest_rank():
    assert nearest_rank([], 0.5) is None
    assert nearest_rank([(3600, 1)], 0.9) == 3600
    # 10 durations: 1 h ×5, 2 h ×4, 10 h ×1 → median 1 h (5th), p90 2 h (9th)
    counts = [(7200, 4), (3600, 5), (36000, 1)]
    assert nearest_rank(counts, 0.5) == 3600
    assert nearest_rank(counts, 0.9) == 7200
    assert nearest_rank(counts, 1.0) == 36000
