"""Each rule has one home: regression tests for the layered ``claims_core``.

Store-credit bonus cap (staff and auto-approve alike, one rounding everywhere); per-shipment filing
deadlines and every eligibility reason; one look-up throttle key for every spelling; the lifecycle
action table; side effects hung off events in the action's own transaction; the import
architecture; an ``ErrorCode`` on every refusal.

Builds its own small data with ``claims_core.infra.models`` (no dependency on ``factories``).
Asserts match error codes, never wording.
"""
from __future__ import annotations

import inspect
import shutil
import subprocess
import sys
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlalchemy import Integer, cast, func, literal, select

from claims_core.domain import errors as errors_module
from claims_core.domain import lifecycle
from claims_core.domain.auto_approval import RuleSpec
from claims_core.domain.eligibility import evaluate
from claims_core.domain.errors import ClaimRuleError, ErrorCode
from claims_core.domain.identifiers import lookup_target
from claims_core.domain.lifecycle import ACTIONS, TRANSITIONS, Action, Actor
from claims_core.domain.money import credit_with_bonus
from claims_core.domain.vocabulary import AuditAction, ClaimStatus
from claims_core.infra.db import read_session, write_session
from claims_core.infra.models import (
    Claim,
    ClaimItem,
    Event,
    LineItem,
    LookupAttempt,
    Order,
    OutboxMessage,
    Resolution,
    Shipment,
    ShipmentItem,
)
from claims_core.services import analytics, decisions, handlers, lookup
from claims_core.services.approvals import ResolutionInput
from claims_core.services.auto_approval import save_rule
from claims_core.services.customer import ClaimRequest, file_claim
from claims_core.services.order_views import OrderView, get_order_for_customer
from claims_core.services.events import apply
from claims_core.services.settings import update_settings

ROOT = Path(__file__).resolve().parents[2]


# --- a little data --------------------------------------------------------------------------------

def make_order(engine, now, number="5001", email="pat@example.com", *,
               lines=(("MUG", "Hand-thrown Mug", 1005, 1),), shipments=None, cancelled=False):
    """An order with protection bought at checkout. ``shipments``: dicts with ``tracking``,
    ``shipped`` and optionally ``status`` (default delivered) and ``items`` [(sku, qty)] (default
    everything). Returns (order id, [shipment ids])."""
    created = now - timedelta(days=40)
    if shipments is None:
        shipments = [dict(tracking=f"TRK{number}", shipped=now - timedelta(days=10))]
    with write_session(engine) as s:
        items = [LineItem(position=i, sku=sku, name=name, quantity=q, unit_price_cents=p)
                 for i, (sku, name, p, q) in enumerate(lines, 1)]
        subtotal = sum(li.unit_price_cents * li.quantity for li in items)
        items.append(LineItem(position=len(items) + 1, sku="SHIP-PROTECT",
                              name="Shipping Protection", quantity=1, unit_price_cents=295,
                              requires_shipping=False, is_protection=True))
        order = Order(order_number=number, name=f"#{number}", email=email,
                      customer_name="Pat Lee", created_at=created, currency="USD",
                      subtotal_cents=subtotal, total_cents=subtotal + 295,
                      protection_fee_cents=295, protection_purchased_at=created,
                      cancelled_at=created + timedelta(hours=1) if cancelled else None,
                      fulfillment_status="fulfilled", line_items=items)
        s.add(order)
        s.flush()
        by_sku = {li.sku: li for li in items}
        ids = []
        for spec in shipments:
            shipped = spec["shipped"]
            status = spec.get("status", "delivered")
            delivered = shipped + timedelta(days=2) if status == "delivered" else None
            carried = spec.get("items") or [(sku, q) for sku, _n, _p, q in lines]
            sh = Shipment(order_id=order.id, tracking_number=spec["tracking"], carrier="UPS",
                          status=status, shipped_at=shipped, delivered_at=delivered,
                          last_scan_at=delivered or shipped,
                          items=[ShipmentItem(line_item_id=by_sku[sku].id, quantity=q)
                                 for sku, q in carried])
            s.add(sh)
            s.flush()
            ids.append(sh.id)
        return order.id, ids


def request(order_id, shipment_id, *, key="k-1", email="pat@example.com", resolution="refund"):
    """A "stolen" claim (shipping issue: no photos, covers every item), signed with a typed name."""
    return ClaimRequest(idempotency_key=key, order_id=order_id, email=email,
                        shipment_id=shipment_id, issue_type="stolen",
                        desired_resolution=resolution, signature_kind="typed",
                        signature_name="Pat Lee", accurate_confirmed=True,
                        description="Porch was empty.")


def one_claim(engine, now, **kw):
    order_id, (shipment_id,) = make_order(engine, now)
    return file_claim(engine, request(order_id, shipment_id, **kw), now=now)


def count(engine, model, *where):
    with read_session(engine) as s:
        return s.scalar(select(func.count()).select_from(model).where(*where))


# --- 1. the store-credit bonus: one cap, one formula -------------------------------------------

def test_staff_bonus_above_the_store_cap_is_refused_and_nothing_is_written(engine, now):
    update_settings(engine, "test", {"store_credit_bonus_pct": 10})
    receipt = one_claim(engine, now)
    with pytest.raises(ClaimRuleError) as refused:
        decisions.approve(engine, receipt.claim_id, "staff:amy",
                          [ResolutionInput("store_credit", 1005, bonus_pct=11)], now=now)
    assert refused.value.code == ErrorCode.BONUS_ABOVE_CAP
    assert count(engine, Resolution) == 0
    with read_session(engine) as s:
        assert s.get(Claim, receipt.claim_id).status == ClaimStatus.SUBMITTED


def test_staff_bonus_at_the_store_cap_is_granted(engine, now):
    update_settings(engine, "test", {"store_credit_bonus_pct": 10})
    receipt = one_claim(engine, now)
    codes = decisions.approve(engine, receipt.claim_id, "staff:amy",
                              [ResolutionInput("store_credit", 1005, bonus_pct=10)], now=now)
    assert len(codes) == 1
    with read_session(engine) as s:
        claim = s.get(Claim, receipt.claim_id)
        assert claim.status == ClaimStatus.APPROVED
        [res] = claim.resolutions
        assert (res.kind, res.amount_cents, res.bonus_pct) == ("store_credit", 1005, 10)


def test_any_bonus_is_above_a_cap_of_zero(engine, now):
    update_settings(engine, "test", {"store_credit_bonus_pct": 0})
    receipt = one_claim(engine, now)
    with pytest.raises(ClaimRuleError) as refused:
        decisions.approve(engine, receipt.claim_id, "staff:amy",
                          [ResolutionInput("store_credit", 500, bonus_pct=1)], now=now)
    assert refused.value.code == ErrorCode.BONUS_ABOVE_CAP


def test_auto_approve_rule_grants_store_credit_with_the_stores_bonus(engine, now):
    update_settings(engine, "test", {"store_credit_bonus_pct": 10})
    save_rule(engine, "owner", RuleSpec("small claims", max_cents=100_000, quiet_months=None))
    receipt = one_claim(engine, now, resolution="store_credit")
    with read_session(engine) as s:
        claim = s.get(Claim, receipt.claim_id)
        assert claim.status == ClaimStatus.APPROVED
        [res] = claim.resolutions
        assert (res.kind, res.amount_cents, res.bonus_pct) == ("store_credit", 1005, 10)
        approved = s.scalars(select(Event).where(Event.claim_id == claim.id,
                                                 Event.action == AuditAction.APPROVED)).one()
        assert approved.actor == "rule:small claims"


@pytest.mark.parametrize("amount, pct, expected", [
    (1005, 10, 1106),  # 100.5 -> 101
    (25, 10, 28),      # 2.5 -> 3 (banker's rounding would give 2)
    (15, 10, 17),      # 1.5 -> 2
    (14, 10, 15),      # 1.4 -> 1
    (1000, 0, 1000),
    (0, 50, 0),
    (999, 100, 1998),
])
def test_credit_with_bonus_rounds_the_bonus_half_up(amount, pct, expected):
    assert credit_with_bonus(amount, pct) == expected


def test_credit_with_bonus_is_the_same_in_sql(engine):
    cases = [(a, p) for a in (1, 5, 14, 15, 25, 1005, 1995, 123_457) for p in (0, 5, 10, 15, 50)]
    with read_session(engine) as s:
        for a, p in cases:
            in_sql = s.scalar(select(credit_with_bonus(cast(literal(a), Integer),
                                                       cast(literal(p), Integer))))
            assert in_sql == credit_with_bonus(a, p), (a, p)


def test_analytics_counts_store_credit_with_the_same_rounded_bonus(engine, now):
    update_settings(engine, "test", {"store_credit_bonus_pct": 10})
    # 1005 at 10 %: 100.5 -> 101 (1106); 1004 at 10 %: 100.4 -> 100 (1104). Rounding each
    # credit half up to the cent, then adding, gives 2210 (adding 50 and dividing exactly,
    # 1106.0 + 1104.9, would round to 2211).
    for number, price in (("5001", 1005), ("5002", 1004)):
        order_id, (shipment_id,) = make_order(engine, now, number,
                                              lines=(("MUG", "Mug", price, 1),))
        receipt = file_claim(engine, request(order_id, shipment_id, key=f"k-{number}"), now=now)
        decisions.approve(engine, receipt.claim_id, "staff:amy",
                          [ResolutionInput("store_credit", price, bonus_pct=10)], now=now)
    f = analytics.AnalyticsFilter(date(now.year, now.month, 1), now.date())
    frame = analytics.money_by_month(engine, f)
    row = frame[frame["store_credit"] > 0]
    assert len(row) == 1
    expected = credit_with_bonus(1005, 10) + credit_with_bonus(1004, 10)
    assert expected == 1106 + 1104
    assert int(row["store_credit"].iloc[0]) == expected
    assert int(row["refunds"].iloc[0]) == 0
    assert int(row["paid_out"].iloc[0]) == expected


def test_analytics_store_credit_of_one_claim_rounds_the_bonus_down_below_half(engine, now):
    update_settings(engine, "test", {"store_credit_bonus_pct": 10})
    order_id, (shipment_id,) = make_order(engine, now, lines=(("MUG", "Mug", 1004, 1),))
    receipt = file_claim(engine, request(order_id, shipment_id), now=now)
    decisions.approve(engine, receipt.claim_id, "staff:amy",
                      [ResolutionInput("store_credit", 1004, bonus_pct=10)], now=now)
    frame = analytics.money_by_month(
        engine, analytics.AnalyticsFilter(date(now.year, now.month, 1), now.date()))
    assert frame["store_credit"].tolist() == [1104]  # 100.4 -> 100, as credit_with_bonus says


# --- 2. deadlines per shipment; every eligibility reason --------------------------------------

def test_each_shipment_has_its_own_deadline_in_the_store_calendar(engine, now):
    update_settings(engine, "test", {"timezone": "America/New_York", "filing_window_days": 15})
    today = now.date()
    # 03:00 UTC is still the evening before in New York: the first shipment's day 0 is the day
    # before its UTC date, so its window ended 6 days ago (5 days ago by the UTC calendar)
    early = datetime.combine(today - timedelta(days=20), time(3, 0), tzinfo=timezone.utc)
    late = datetime.combine(today - timedelta(days=11), time(16, 0), tzinfo=timezone.utc)
    order_id, (first, second) = make_order(
        engine, now, lines=(("MUG", "Mug", 2800, 1), ("TOTE", "Tote", 3450, 1)),
        shipments=[dict(tracking="TRKA", shipped=early, items=[("MUG", 1)]),
                   dict(tracking="TRKB", shipped=late, items=[("TOTE", 1)])])
    for view in (lookup.guarded_lookup(engine, "#5001", "pat@example.com", "10.0.0.1", now=now),
                 get_order_for_customer(engine, order_id, "pat@example.com", now=now)):
        assert isinstance(view, OrderView)
        assert not hasattr(view, "deadline")
        by_id = {sh.id: sh for sh in view.shipments}
        assert by_id[first].deadline == today - timedelta(days=6)
        assert by_id[second].deadline == today + timedelta(days=4)
        # the first shipment's window has closed, the second's hasn't
        assert not by_id[first].claimable
        assert ErrorCode.WINDOW_CLOSED in by_id[first].reason_codes
        assert by_id[second].claimable
        assert by_id[second].reason_codes == ()
        assert view.claimable
        assert [sh.id for sh in view.claimable_shipments] == [second]


def test_evaluate_returns_every_reason(now):
    order = SimpleNamespace(cancelled_at=now - timedelta(days=100),
                            protection_purchased_at=now - timedelta(days=101),
                            claim_deadline_override=None)
    shipment = SimpleNamespace(status="delivered", shipped_at=now - timedelta(days=90),
                               last_scan_at=now - timedelta(days=88))
    settings = SimpleNamespace(filing_window_days=45, lost_wait_days=7, timezone="UTC")
    verdict = evaluate(order, shipment, [1], now, settings)
    assert not verdict.ok
    assert ErrorCode.ORDER_CANCELLED in verdict.codes
    assert ErrorCode.WINDOW_CLOSED in verdict.codes
    assert verdict.deadline == (now - timedelta(days=90)).date() + timedelta(days=45)

    nothing_left = evaluate(order, shipment, [0, 0], now, settings)
    assert set(nothing_left.codes) >= {ErrorCode.ORDER_CANCELLED, ErrorCode.WINDOW_CLOSED,
                                       ErrorCode.NOTHING_LEFT_TO_CLAIM}

    fine = evaluate(SimpleNamespace(cancelled_at=None,
                                    protection_purchased_at=now - timedelta(days=20),
                                    claim_deadline_override=None),
                    SimpleNamespace(status="delivered", shipped_at=now - timedelta(days=10),
                                    last_scan_at=now - timedelta(days=8)),
                    [1], now, settings)
    assert fine.ok and fine.codes == ()


# --- 3. one look-up key for every spelling of a number ----------------------------------------

def test_lookup_target_is_one_key_for_every_spelling():
    assert lookup_target("1Z-999 AA1") == lookup_target("1z 999aa1") == lookup_target("1Z999AA1")
    assert lookup_target("#1001") == lookup_target(" 1001 ") == lookup_target("1001")
    assert lookup_target("1Z999AA1") != lookup_target("1Z999AA2")


def test_misses_on_every_spelling_count_against_one_limit(engine, now):
    update_settings(engine, "test", {"lookup_max_misses": 3})
    make_order(engine, now, shipments=[dict(tracking="1Z999AA1", shipped=now - timedelta(days=5))])
    spellings = ["1Z-999 AA1", "1z 999aa1", "1Z999AA1"]
    for i, query in enumerate(spellings):  # a new client each time: only the order key adds up
        with pytest.raises(ClaimRuleError) as miss:
            lookup.guarded_lookup(engine, query, "someone.else@example.com", f"10.0.0.{i}",
                                  now=now, sleep=lambda _s: None)
        assert miss.value.code == ErrorCode.ORDER_NOT_FOUND
    order_keys = {k for (k,) in _keys(engine) if k.startswith("order:")}
    assert len(order_keys) == 1
    # the limit is reached: refused even with the right email, from yet another client
    with pytest.raises(ClaimRuleError) as refused:
        lookup.guarded_lookup(engine, "1Z999AA1", "pat@example.com", "10.0.0.99",
                              now=now, sleep=lambda _s: None)
    assert refused.value.code == ErrorCode.TOO_MANY_ATTEMPTS
    # once the window has moved on, the right details find the order again
    later = now + timedelta(minutes=11)
    view = lookup.guarded_lookup(engine, "1z-999-aa1", "pat@example.com", "10.0.0.99",
                                 now=later, sleep=lambda _s: None)
    assert view.name == "#5001"


def _keys(engine):
    with read_session(engine) as s:
        return s.execute(select(LookupAttempt.key)).all()


# --- 4. the action table ---------------------------------------------------------------------

STAFF_ACTIONS = {
    ClaimStatus.SUBMITTED: {Action.START_REVIEW, Action.REQUEST_INFO, Action.APPROVE, Action.DENY,
                            Action.CLOSE},
    ClaimStatus.IN_REVIEW: {Action.REQUEST_INFO, Action.APPROVE, Action.DENY, Action.CLOSE},
    ClaimStatus.NEEDS_INFO: {Action.CLOSE},
    ClaimStatus.APPROVED: {Action.UNDO_APPROVAL, Action.RESOLVE},
    ClaimStatus.RESOLVED: set(),
    ClaimStatus.DENIED: {Action.REOPEN},
    ClaimStatus.CLOSED: {Action.REOPEN},
}


@pytest.mark.parametrize("status", list(ClaimStatus))
def test_staff_actions_per_status(status):
    offered = lifecycle.available_actions(status, Actor.STAFF)
    assert set(offered) == STAFF_ACTIONS[status]
    assert len(offered) == len(set(offered))
    for action in offered:
        assert lifecycle.allows(action, status, Actor.STAFF)


def test_customer_and_system_actions():
    assert set(lifecycle.available_actions(ClaimStatus.NEEDS_INFO, Actor.CUSTOMER)) == {
        Action.CUSTOMER_REPLY}
    assert set(lifecycle.available_actions(ClaimStatus.CLOSED, Actor.CUSTOMER)) == {
        Action.REOPEN_BY_CUSTOMER}
    assert set(lifecycle.available_actions(ClaimStatus.NEEDS_INFO, Actor.SYSTEM)) == {
        Action.AUTO_CLOSE}
    assert lifecycle.available_actions(ClaimStatus.RESOLVED, Actor.CUSTOMER) == ()


def test_transitions_are_derived_from_the_actions():
    assert set(TRANSITIONS) == set(ClaimStatus)
    for status in ClaimStatus:
        assert TRANSITIONS[status] == {step.target for step in ACTIONS.values()
                                       if status in step.sources}, status
    assert TRANSITIONS[ClaimStatus.RESOLVED] == frozenset()
    assert TRANSITIONS[ClaimStatus.APPROVED] == {ClaimStatus.RESOLVED, ClaimStatus.IN_REVIEW}
    for step in ACTIONS.values():
        for source in step.sources:
            assert lifecycle.can_transition(source, step.target)


def test_apply_refuses_an_illegal_action_and_writes_nothing(engine, now):
    receipt = one_claim(engine, now)
    events_before = count(engine, Event)
    with pytest.raises(ClaimRuleError) as refused:
        with write_session(engine) as s:
            apply(s, s.get(Claim, receipt.claim_id), Action.RESOLVE, actor="staff:amy", at=now)
    assert refused.value.code == ErrorCode.ILLEGAL_TRANSITION
    # and through a staff action
    with pytest.raises(ClaimRuleError) as again:
        decisions.mark_resolved(engine, receipt.claim_id, "staff:amy", now=now)
    assert again.value.code == ErrorCode.ILLEGAL_TRANSITION
    with read_session(engine) as s:
        assert s.get(Claim, receipt.claim_id).status == ClaimStatus.SUBMITTED
    assert count(engine, Event) == events_before


# --- 5. side effects hang off events, in the action's transaction -----------------------------

def test_filing_queues_exactly_one_claim_received_mail(engine, now):
    receipt = one_claim(engine, now)
    again = file_claim(engine, request(*_ids(engine, receipt.claim_id)), now=now)  # same key
    assert again.claim_id == receipt.claim_id and not again.created
    with read_session(engine) as s:
        mails = s.scalars(select(OutboxMessage).where(OutboxMessage.kind == "claim_received")).all()
        assert len(mails) == 1
        [mail] = mails
        assert mail.claim_id == receipt.claim_id
        assert mail.to_addr == "pat@example.com"
        assert mail.status == "pending"
        filed = s.scalars(select(Event).where(Event.claim_id == receipt.claim_id,
                                              Event.action == AuditAction.CLAIM_FILED)).one()
        assert mail.created_at == filed.at  # queued for the event, in its transaction


def _ids(engine, claim_id):
    with read_session(engine) as s:
        c = s.get(Claim, claim_id)
        return c.order_id, c.shipment_id


class Boom(Exception):
    pass


def test_a_failing_handler_rolls_back_the_whole_action(engine, now, monkeypatch):
    from claims_core.services import notifications

    def boom(s, ev, claim):
        raise Boom()

    # the mail handler runs first and writes its outbox row; the failure after it must take
    # that row down with the claim
    monkeypatch.setitem(handlers.EVENT_HANDLERS, AuditAction.CLAIM_FILED,
                        (notifications.on_claim_filed, boom))
    order_id, (shipment_id,) = make_order(engine, now)
    events_before = count(engine, Event)
    with pytest.raises(Boom):
        file_claim(engine, request(order_id, shipment_id), now=now)
    assert count(engine, Claim) == 0
    assert count(engine, ClaimItem) == 0
    assert count(engine, OutboxMessage) == 0
    assert count(engine, Event) == events_before


# --- 6. architecture ---------------------------------------------------------------------------

def test_import_contracts_are_kept():
    exe = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))
    result = subprocess.run([exe, "--no-cache"], cwd=ROOT, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def _graph():
    grimp = pytest.importorskip("grimp")
    return grimp.build_graph("claims_core", include_external_packages=True, cache_dir=None)


def _ours(module: str) -> bool:
    return (module == "claims_core" or module.startswith("claims_core.")) and not (
        module.startswith("claims_core.infra.migrations"))


def test_no_import_cycles_in_claims_core():
    graph = _graph()
    cycles = []
    for a in sorted(m for m in graph.modules if _ours(m)):
        for b in sorted(graph.find_modules_directly_imported_by(a)):
            if not _ours(b):
                continue
            back = graph.find_shortest_chain(importer=b, imported=a)
            if back is not None:
                cycles.append((a, b, back))
    assert cycles == []


def test_nothing_in_claims_core_imports_streamlit():
    graph = _graph()
    for external in ("streamlit", "streamlit_drawable_canvas"):
        if external not in graph.modules:
            continue  # nobody in the graph imports it at all
        importers = graph.find_modules_that_directly_import(external)
        assert not [m for m in importers if m.startswith("claims_core")], external


# adapters that write rows themselves by design (demo and bulk data); nothing else in adapters
# or pages touches the models
MODELS_IN_ADAPTERS = {"claims_core.adapters.demo", "claims_core.adapters.demo_tracking",
                      "claims_core.adapters.bulk"}


def test_adapters_and_pages_reach_the_models_only_through_services():
    import configparser  # noqa: PLC0415

    cfg = configparser.ConfigParser()
    cfg.read(ROOT / ".importlinter")
    contracts = [cfg[name] for name in cfg.sections()
                 if cfg[name].get("type") == "forbidden"
                 and "claims_core.infra.models" in cfg[name].get("forbidden_modules", "").split()]
    assert contracts, "no import-linter contract keeps the models out of adapters and pages"
    [contract] = contracts
    assert {"claims_core.adapters", "views"} <= set(contract["source_modules"].split())
    ignored = {line.split("->")[0].strip() for line in contract.get("ignore_imports", "").splitlines()
               if "->" in line and not line.strip().startswith("#")}
    assert ignored <= MODELS_IN_ADAPTERS
    grimp = pytest.importorskip("grimp")
    graph = grimp.build_graph("claims_core", "views", cache_dir=None)
    direct = {m for m in graph.find_modules_that_directly_import("claims_core.infra.models")
              if m.startswith(("claims_core.adapters", "views"))}
    assert direct <= MODELS_IN_ADAPTERS, sorted(direct - MODELS_IN_ADAPTERS)


def test_the_domain_map_names_every_domain_module():
    import re  # noqa: PLC0415

    import claims_core.domain as domain_package  # noqa: PLC0415

    listed = set(re.findall(r"``([a-z_]+)``", domain_package.__doc__))
    modules = {p.stem for p in Path(domain_package.__file__).parent.glob("*.py")
               if p.stem != "__init__"}
    assert modules - listed == set(), "add them to the list in claims_core/domain/__init__.py"
    assert listed - modules == set(), "the list in claims_core/domain/__init__.py names these"


# --- 7. every refusal has a code --------------------------------------------------------------

def _all_subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _all_subclasses(sub)


def test_every_refusal_class_has_an_error_code():
    in_errors = [obj for _name, obj in inspect.getmembers(errors_module, inspect.isclass)
                 if issubclass(obj, ClaimRuleError)]
    assert len(in_errors) > 10
    # plus those defined elsewhere (lifecycle, services) once they are imported
    import claims_core.services.claim_review  # noqa: F401
    import claims_core.services.customer  # noqa: F401
    for cls in {*in_errors, *_all_subclasses(ClaimRuleError)}:
        assert isinstance(cls.code, ErrorCode), cls
    assert isinstance(lifecycle.IllegalTransition("submitted", "resolved").code, ErrorCode)


# --- 8. one home for the rules that were split (issue #27) -------------------------------------

def _py_files(*roots):
    for root in roots:
        path = ROOT / root
        yield from ([path] if path.suffix == ".py" else sorted(path.rglob("*.py")))


def _rel(path):
    return path.relative_to(ROOT).as_posix()


# money: one parser, one rounding rule, one bound --------------------------------------------------

def _three_readers(text, currency):
    """What a form, a CSV import and a Shopify answer make of the same amount (or the refusal)."""
    from claims_core.adapters import importer, shopify_admin
    from claims_core.domain import money

    out = []
    for read in (money.minor_from_amount,
                 lambda t, c: importer.parse_money(t, "Total", c),
                 shopify_admin._to_minor):
        try:
            out.append(read(text, currency))
        except (ClaimRuleError, ValueError):
            out.append("refused")
    return out


@pytest.mark.parametrize("text,currency,minor", [
    ("12.50", "USD", 1250), ("40.0", "USD", 4000), ("1250.0", "JPY", 1250), ("1.5", "KWD", 1500),
    ("0.125", "USD", 13), ("0.135", "USD", 14),  # half up (half-even would make 12 and 14)
    ("2.5", "JPY", 3), ("3.5", "JPY", 4), ("0.0005", "KWD", 1),
    ("1,234.50", "USD", 123450), ("$12", "USD", 1200), ("EUR 9.99", "EUR", 999),
    ("20000000.00", "USD", 2_000_000_000), ("2000000000", "JPY", 2_000_000_000),
])
def test_forms_imports_and_shopify_read_an_amount_alike(text, currency, minor):
    assert _three_readers(text, currency) == [minor, minor, minor]


@pytest.mark.parametrize("text,currency", [
    ("20000000.01", "USD"), ("2000000001", "JPY"), ("2000000.001", "KWD"),  # above the one bound
    ("1e309", "USD"), ("NaN", "USD"), ("-3", "USD"), ("12,50", "EUR"), ("12,50 euros", "EUR"),
    ("abc", "USD"),
])
def test_forms_imports_and_shopify_refuse_the_same_amounts(text, currency):
    assert _three_readers(text, currency) == ["refused"] * 3


def test_the_bound_is_the_databases_integer():
    from claims_core.domain import money
    assert money.MAX_MINOR_UNITS < 2**31
    with pytest.raises(ClaimRuleError) as refused:
        money.minor_from_amount(money.MAX_MINOR_UNITS + 1, "JPY")
    assert refused.value.code == ErrorCode.AMOUNT_INVALID


def test_amounts_are_rounded_in_one_place():
    """Rounding an amount to a whole minor unit happens in ``domain/money.py`` only."""
    rounding = ("quantize(", "to_integral", "ROUND_HALF", "ROUND_UP", "ROUND_DOWN")
    found = {_rel(p) for p in _py_files("claims_core", "views")
             if any(r in p.read_text(encoding="utf-8") for r in rounding)}
    assert found == {"claims_core/domain/money.py"}


def test_python_names_say_minor_units_not_cents():
    """Functions say what they hold (a yen amount is yen); columns and the API keep ``*_cents``."""
    from claims_core import domain
    import ast

    assert not hasattr(domain, "cents_from_amount") and not hasattr(domain, "format_cents")
    named = []
    for p in _py_files("claims_core", "views"):
        tree = ast.parse(p.read_text(encoding="utf-8"))
        in_class = {id(f) for c in ast.walk(tree) if isinstance(c, ast.ClassDef) for f in c.body}
        named += [f"{_rel(p)}:{f.name}" for f in ast.walk(tree)
                  if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
                  and "cents" in f.name and id(f) not in in_class]  # methods mirror columns
    assert named == []


# "decided": one definition ---------------------------------------------------------------------

def test_decided_means_approved_resolved_or_denied_everywhere():
    from claims_core.adapters import bulk
    from claims_core.domain import vocabulary
    from claims_core.infra import rollups

    assert vocabulary.DECIDED_STATUSES == {ClaimStatus.APPROVED, ClaimStatus.RESOLVED,
                                           ClaimStatus.DENIED}
    for module in (rollups, bulk):  # they use the vocabulary's, not a copy
        copies = [v for k, v in vars(module).items()
                  if "DECIDED" in k and v is not vocabulary.DECIDED_STATUSES]
        assert copies == [], module.__name__


def test_decided_at_is_recorded_by_every_step_into_a_decided_status_and_no_other(engine, now):
    from claims_core.domain.vocabulary import DECIDED_STATUSES

    receipt = one_claim(engine, now)
    checked = 0
    for action, step in ACTIONS.items():
        for source in sorted(step.sources):
            with write_session(engine) as s:
                claim = s.get(Claim, receipt.claim_id)
                claim.status, claim.decided_at = source, None
                s.flush()
                apply(s, claim, action, actor="staff:amy", at=now)
                decided = step.target in DECIDED_STATUSES and source not in DECIDED_STATUSES
                assert (claim.decided_at is not None) == decided, (action, source)
                checked += 1
                s.rollback()
    assert checked >= 15


# the default store-credit bonus: the service decides -------------------------------------------

def test_store_credit_without_a_bonus_gets_the_default_the_service_chooses(engine, now):
    from claims_core.services import claim_review

    update_settings(engine, "test", {"store_credit_bonus_pct": 7})
    receipt = one_claim(engine, now, resolution="store_credit")
    view = claim_review.claim_for_staff(engine, receipt.claim_id)
    assert (view.bonus_default_pct, view.bonus_cap_pct) == (7, 7)  # the staff form starts here
    decisions.approve(engine, receipt.claim_id, "staff:amy",
                      [ResolutionInput("store_credit", 1005, None)], now=now)
    with read_session(engine) as s:
        [res] = s.get(Claim, receipt.claim_id).resolutions
        assert (res.amount_cents, res.bonus_pct) == (1005, 7)


def test_only_the_approval_service_reads_the_stores_bonus_to_grant():
    readers = {_rel(p) for p in _py_files("claims_core/services", "claims_core/adapters", "views")
               if "store_credit_bonus_pct" in p.read_text(encoding="utf-8")}
    # settings validates and edits it, the demo sets it; approvals is where a grant reads it
    assert readers == {"claims_core/services/approvals.py", "claims_core/services/settings.py",
                       "claims_core/adapters/demo.py", "views/settings_claim_rules.py"}


# stock for a reshipment: one key ---------------------------------------------------------------

def test_reshipment_preview_and_grant_count_stock_under_one_key(engine, now):
    from claims_core.domain.resolutions import stock_key
    from claims_core.infra.models import Stock
    from claims_core.services.order_views import resolution_choices

    update_settings(engine, "test", {"offer_reshipment": True})
    order_id, (sid,) = make_order(engine, now, lines=(("", "Hand-made card", 500, 2),))
    with write_session(engine) as s:
        s.add(Stock(sku="", on_hand=10))  # a stock row without a SKU is no item's stock
        line_id = s.scalars(select(LineItem.id).where(LineItem.name == "Hand-made card")).one()

    def preview():
        return next(o for o in resolution_choices(engine, sid, None, "stolen")
                    if o.kind == "reshipment").available

    assert not preview()
    receipt = file_claim(engine, request(order_id, sid), now=now)
    with pytest.raises(ClaimRuleError) as refused:
        decisions.approve(engine, receipt.claim_id, "staff:amy", [ResolutionInput("reshipment")],
                          now=now)
    assert refused.value.code == ErrorCode.OUT_OF_STOCK  # as the preview said
    with write_session(engine) as s:  # stock under the item's own key: both say yes
        s.add(Stock(sku=stock_key("", line_id), on_hand=2))
    decisions.approve(engine, receipt.claim_id, "staff:amy", [ResolutionInput("reshipment")],
                      now=now)
    with read_session(engine) as s:
        assert s.get(Stock, stock_key("", line_id)).on_hand == 0
        assert s.get(Stock, "").on_hand == 10


# the throttled look-up is the only public one --------------------------------------------------

def test_the_customer_lookup_is_only_reachable_through_the_throttle():
    from claims_core.services import claim_views, customer, order_views

    for module in (customer, order_views, claim_views):
        public = {n for n, f in inspect.getmembers(module, inspect.isfunction)
                  if f.__module__ == module.__name__ and not n.startswith("_")}
        assert not public & {"lookup_order", "find_claims_for_customer"}
    callers = {_rel(p) for p in _py_files("claims_core", "views", "app.py", "navigation.py")
               if "_lookup_order(" in p.read_text(encoding="utf-8")
               or "_find_claims_for_customer(" in p.read_text(encoding="utf-8")}
    # the throttled look-up (and the signed link, which books a miss when it doesn't verify),
    # and the API key's look-up (authenticated and rate-limited by the API)
    assert callers <= {"claims_core/services/lookup.py", "claims_core/services/claims_api.py",
                       "claims_core/services/order_views.py"}


# error codes: one code per refusal, the API's status follows it -------------------------------

def _refusal_kinds():
    import claims_core.adapters.api  # noqa: F401 - every module that defines a kind
    import claims_core.services.claim_review  # noqa: F401
    import claims_core.services.customer  # noqa: F401
    return {cls.__name__: cls for cls in {ClaimRuleError, *_all_subclasses(ClaimRuleError)}}


def _message(node):
    """A refusal's message as written (the catalog text, or the f-string's template), or None
    when it is only known at run time (``ship.reason``)."""
    import ast

    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Call) and node.args and getattr(node.func, "id", getattr(
            node.func, "attr", "")) in ("N_", "of"):
        return _message(node.args[0])
    name = getattr(node, "attr", getattr(node, "id", None))
    if isinstance(node, (ast.Name, ast.Attribute)) and name and name.isupper() \
            and isinstance(getattr(errors_module, name, None), str):
        return str(getattr(errors_module, name))
    if isinstance(node, (ast.JoinedStr, ast.BinOp)):
        return ast.unparse(node)
    return None


def _refusals():
    """(where, message, code) of every refusal claims_core makes; code None when it is chosen at
    run time (the eligibility verdict's own code)."""
    import ast

    kinds = _refusal_kinds()
    out = []
    for p in _py_files("claims_core"):
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            name = getattr(node.func, "attr", getattr(node.func, "id", None))
            if name not in kinds or name in ("StaleClaim", "PhotosRejected") or not node.args:
                continue
            code_node = node.args[1] if len(node.args) > 1 else next(
                (k.value for k in node.keywords if k.arg == "code"), None)
            if code_node is None:
                code = kinds[name].code
            elif isinstance(code_node, ast.Attribute) and code_node.attr in ErrorCode.__members__:
                code = ErrorCode[code_node.attr]
            else:
                code = None
            out.append((f"{_rel(p)}:{node.lineno}", _message(node.args[0]), code))
    return out


# Input no rule of its own covers (a query parameter out of range): the generic code is right.
GENERIC_INPUT = {"f'limit is 1 to {MAX_LIMIT}.'"}


def test_every_refusal_carries_its_own_code():
    refusals = _refusals()
    assert len(refusals) > 100
    generic = [(where, msg) for where, msg, code in refusals
               if code == ErrorCode.INVALID_INPUT and msg not in GENERIC_INPUT]
    assert generic == []


def test_the_same_refusal_never_carries_two_codes():
    codes: dict[str, set] = {}
    for where, msg, code in _refusals():
        if msg is not None and code is not None:
            codes.setdefault(msg, set()).add(code)
    assert {m: c for m, c in codes.items() if len(c) > 1} == {}


def test_every_code_has_one_http_status():
    from claims_core.adapters import api

    assert set(api.STATUS_BY_CODE) == set(ErrorCode)
    assert api.STATUS_BY_CODE[ErrorCode.PHOTO_NOT_FOUND] == 404
    assert api.STATUS_BY_CODE[ErrorCode.STALE_CLAIM] == 409
    assert api.STATUS_BY_CODE[ErrorCode.AMOUNT_ABOVE_PAID] == 422


def test_a_photo_that_isnt_part_of_the_claim_is_one_refusal_everywhere(engine, now):
    from claims_core.adapters import api
    from claims_core.services import claim_review
    from claims_core.services.claim_views import get_evidence_image

    receipt = one_claim(engine, now)
    tries = (lambda: claim_review.photo_data(engine, receipt.claim_id, 999_999),
             lambda: claim_review.review_photo(engine, receipt.claim_id, 999_999, "staff:amy",
                                               "accepted", now=now),
             lambda: get_evidence_image(engine, receipt.access_token, 999_999))
    answers = set()
    for attempt in tries:
        with pytest.raises(ClaimRuleError) as refused:
            attempt()
        problem = api.from_rule(refused.value)
        answers.add((refused.value.code, problem.status, problem.code))
    assert answers == {(ErrorCode.PHOTO_NOT_FOUND, 404, "photo_not_found")}


# --- retention and migrations -------------------------------------------------------------------

def test_tick_purges_expired_drafts_and_their_photos(engine, now):
    """Drafts (with their photos) expire after seven days and ``tick`` deletes them."""
    from claims_core.adapters import scheduler
    from claims_core.adapters.demo import make_photo
    from claims_core.infra.models import ClaimDraft
    from claims_core.services import drafts

    from tests.support.factories import make_order as factory_order

    built = factory_order(engine, base=now)
    photos, errors = drafts.add_photos([], [("box.jpg", make_photo(3))], max_photos=3,
                                       max_bytes=5_000_000)
    assert not errors and photos
    drafts.save_draft(engine, built.order_id, built.email, {"step": "details", "photos": photos},
                      now=now)
    scheduler.tick(engine, now=now + timedelta(days=6))  # not expired yet: kept
    with read_session(engine) as s:
        assert s.scalar(select(func.count()).select_from(ClaimDraft)) == 1
    report = scheduler.tick(engine, now=now + timedelta(days=7, minutes=1))
    assert report.drafts_purged == 1
    with read_session(engine) as s:
        assert s.scalar(select(func.count()).select_from(ClaimDraft)) == 0
    assert drafts.load_draft(engine, built.order_id, built.email, now=now) is None


def test_the_web_process_never_migrates(fresh_db_url, monkeypatch):
    """A page on a database whose schema isn't there says to run ``init`` and changes nothing:
    migrations run from the start command, never from a page (several instances would race)."""
    from streamlit.testing.v1 import AppTest

    from claims_core.infra import migrate
    from claims_core.infra.db import make_engine

    monkeypatch.setenv("DATABASE_URL", fresh_db_url)
    at = AppTest.from_file(str(Path(__file__).resolve().parents[2] / "navigation.py"), default_timeout=60)
    at.run()
    assert any("python -m claims_core init" in e.value for e in at.error)
    engine = make_engine(fresh_db_url)
    try:
        assert migrate.current_revision(engine) is None
    finally:
        engine.dispose()
