"""Recoveries (issue #25): the state machine, the carriers' deadlines and limits, amounts capped,
the approval handler opening and the undo cancelling, the deadline job, the owner's policy."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select, text

from claims_core.adapters import jobs
from claims_core.domain import carrier_claims
from claims_core.domain import recoveries as rules
from claims_core.domain.errors import ClaimRuleError, ErrorCode
from claims_core.domain.recoveries import RecoveryAction as A, RecoveryActor, RecoveryState as S
from claims_core.infra.db import write_session
from claims_core.infra.models import (AppendOnlyError, OutboxMessage, Recovery, RecoveryEvent,
                                      StaffUser)
from claims_core.services import customer, decisions, recoveries

from tests.support.factories import claim_request, make_order


def _utc(*a):
    return datetime(*a, tzinfo=timezone.utc)


# --- the state machine -----------------------------------------------------------------------------

def test_action_table_paths():
    assert rules.check(A.OPEN, None, RecoveryActor.SYSTEM).target == S.TO_FILE
    assert rules.check(A.FILE, S.TO_FILE).target == S.FILED
    assert rules.check(A.NEEDS_ACTION, S.FILED).target == S.NEEDS_ACTION
    assert rules.check(A.PARTLY_APPROVE, S.NEEDS_ACTION).target == S.PARTLY_APPROVED
    assert rules.check(A.RECORD_PAYMENT, S.APPROVED).target == S.PAID
    assert rules.check(A.WRITE_OFF, S.REJECTED).target == S.WRITTEN_OFF
    assert rules.check(A.REOPEN, S.CANCELLED, RecoveryActor.SYSTEM).target == S.TO_FILE


@pytest.mark.parametrize("action,state,actor", [
    (A.FILE, S.PAID, RecoveryActor.STAFF),  # paid is final
    (A.RECORD_PAYMENT, S.TO_FILE, RecoveryActor.STAFF),  # nothing approved yet
    (A.APPROVE, S.TO_FILE, RecoveryActor.STAFF),  # not filed
    (A.CANCEL, S.PAID, RecoveryActor.SYSTEM),
    (A.OPEN, S.TO_FILE, RecoveryActor.SYSTEM),  # exists already
    (A.OPEN, None, RecoveryActor.STAFF),  # only the approval opens one
    (A.REOPEN, S.CANCELLED, RecoveryActor.STAFF),
])
def test_action_table_refuses(action, state, actor):
    with pytest.raises(ClaimRuleError) as e:
        rules.check(action, state, actor)
    assert e.value.code == ErrorCode.RECOVERY_ILLEGAL_STEP


def test_available_actions_follow_the_table():
    assert rules.available_actions(S.TO_FILE) == (A.FILE, A.CANCEL, A.WRITE_OFF)
    assert rules.available_actions(S.PAID) == ()
    assert A.REOPEN not in rules.available_actions(S.CANCELLED)  # the system's alone


def test_claimable_is_capped():
    assert rules.claimable_minor(12_000, 10_000) == 10_000
    assert rules.claimable_minor(4_000, 10_000) == 4_000
    assert rules.claimable_minor(12_000, None) == 12_000
    assert rules.claimable_minor(12_000, 10_000, insured_minor=11_000) == 11_000  # the insurer pays
    assert rules.claimable_minor(12_000, None, insured_minor=500) == 500


def test_policy_narrows():
    p = rules.RecoveryPolicy()
    assert rules.opens_recovery(p, "lost", "ups", 100)
    assert not rules.opens_recovery(p, "defective", "ups", 100)  # not the carrier's fault
    assert not rules.opens_recovery(p, "damaged", "ups", 0)  # nothing paid out
    narrow = rules.RecoveryPolicy(frozenset({"usps"}), frozenset({"damaged"}), 2_000)
    assert rules.opens_recovery(narrow, "damaged", "usps", 2_000)
    assert not rules.opens_recovery(narrow, "damaged", "usps", 1_999)
    assert not rules.opens_recovery(narrow, "damaged", "ups", 5_000)
    assert not rules.opens_recovery(narrow, "lost", "usps", 5_000)


def test_reminders_7_and_1_days_before():
    d = date(2027, 1, 13)
    assert rules.reminder_due(d, date(2027, 1, 5)) is None
    assert rules.reminder_due(d, date(2027, 1, 6)) == 7
    assert rules.reminder_due(d, date(2027, 1, 10)) == 7
    assert rules.reminder_due(d, date(2027, 1, 12)) == 1
    assert rules.reminder_due(d, date(2027, 1, 13)) == 1
    assert rules.reminder_due(d, date(2027, 1, 14)) is None and rules.overdue(d, date(2027, 1, 14))


# --- carriers --------------------------------------------------------------------------------------

@pytest.mark.parametrize("name,key", [("USPS", "usps"), ("United States Postal Service", "usps"),
                                      ("UPS", "ups"), ("FedEx Ground", "fedex"),
                                      ("DHL Express", "dhl_express"), ("Canada Post", "canada_post"),
                                      ("royal-mail", "royal_mail"), ("Hermes", "other"), ("", "other")])
def test_carrier_names(name, key):
    assert carrier_claims.carrier_key(name) == key


SHIPPED = _utc(2026, 11, 1, 18)
DELIVERED = _utc(2026, 11, 6, 15)


@pytest.mark.parametrize("key,issue,deadline", [
    ("usps", "damaged", date(2026, 12, 31)),  # 60 days from mailing
    ("usps", "lost", date(2026, 12, 31)),
    ("ups", "damaged", date(2027, 1, 5)),  # 60 days from delivery
    ("fedex", "damaged", date(2027, 1, 5)),  # 60 days from delivery
    ("fedex", "lost", date(2027, 8, 1)),  # nine months from tendering
    ("dhl_express", "stolen", date(2026, 12, 1)),  # 30 days from acceptance
    ("canada_post", "damaged", date(2027, 1, 30)),  # 90 days from mailing
    ("royal_mail", "not_received", date(2027, 1, 20)),  # 80 days from posting
])
def test_deadlines_per_carrier(key, issue, deadline):
    rule = carrier_claims.RULES[key]
    assert carrier_claims.filing_deadline(rule, issue, shipped_at=SHIPPED, delivered_at=DELIVERED,
                                          tz_name="UTC") == deadline


def test_deadline_counts_the_store_local_day():
    rule = carrier_claims.RULES["usps"]
    late = _utc(2026, 11, 2, 3)  # still 1 November in New York
    assert carrier_claims.filing_deadline(rule, "lost", shipped_at=late, tz_name="America/New_York") \
        == date(2026, 12, 31)
    assert carrier_claims.filing_deadline(rule, "lost", shipped_at=late, tz_name="UTC") \
        == date(2027, 1, 1)


def test_ups_lost_counts_from_the_scheduled_delivery_else_the_ship_date():
    rule = carrier_claims.RULES["ups"]
    assert carrier_claims.filing_deadline(rule, "lost", shipped_at=SHIPPED,
                                          expected_at=_utc(2026, 11, 4, 12)) == date(2027, 1, 3)
    assert carrier_claims.filing_deadline(rule, "lost", shipped_at=SHIPPED) == date(2026, 12, 31)


def test_every_rule_cites_its_sources():
    for rule in carrier_claims.RULES.values():
        for url in (rule.damage.source, rule.loss.source, rule.liability_source,
                    rule.documents_source):
            assert url.startswith(("http://", "https://")), rule.key
        assert rule.documents


def test_liability_only_in_its_own_currency():
    ups = carrier_claims.RULES["ups"]
    assert carrier_claims.liability_in(ups, "USD") == 10_000
    assert carrier_claims.liability_in(ups, "EUR") is None  # never converted
    assert carrier_claims.liability_in(carrier_claims.RULES["dhl_express"], "USD") is None


# --- the ledger through the services ---------------------------------------------------------------

def _claim(engine, now, *, issue="damaged", carrier="UPS", items=None, number="1001"):
    built = make_order(engine, number, f"c{number}@example.com", tracking_prefix=f"T{number}",
                       shipments=[dict(status="delivered", shipped=now - timedelta(days=10),
                                       delivered=now - timedelta(days=7), carrier=carrier,
                                       items=[("MUG", 3), ("TOTE", 1)])])
    if items is not None:
        items = {built.items[(0, sku)]: q for sku, q in items.items()}
    r = customer.file_claim(engine, claim_request(built, key=f"k{number}", issue=issue,
                                                  items=items), now=now)
    return built, r.claim_id


def _recoveries(engine, claim_id=None):
    with write_session(engine) as s:
        q = select(Recovery)
        if claim_id is not None:
            q = q.where(Recovery.claim_id == claim_id)
        return [(r.id, r.state, r.claimable_cents, r.deadline, r.liability_cents)
                for r in s.scalars(q)]


def _events(engine, rid):
    with write_session(engine) as s:
        return [(e.action, e.from_state, e.to_state) for e in
                s.scalars(select(RecoveryEvent).where(RecoveryEvent.recovery_id == rid)
                          .order_by(RecoveryEvent.id))]


def test_approval_opens_one_recovery_with_its_deadline(engine, now):
    _b, cid = _claim(engine, now)
    assert _recoveries(engine) == []  # filed: nothing yet
    decisions.approve(engine, cid, "staff:t", [decisions.ResolutionInput("refund", 2800)], now=now)
    [(rid, state, claimable, deadline, liability)] = _recoveries(engine)
    assert state == S.TO_FILE and claimable == 2800 and liability == 10_000
    # UPS: 60 days from the delivery day (7 days before the tests' NOW)
    assert deadline == (now - timedelta(days=7)).date() + timedelta(days=60)
    assert _events(engine, rid) == [("open", None, "to_file")]


def test_amount_capped_by_the_carriers_liability(engine, now):
    _b, cid = _claim(engine, now, carrier="USPS", items={"MUG": 3, "TOTE": 1})
    decisions.approve(engine, cid, "staff:t", [decisions.ResolutionInput("refund", 11_850)],
                      now=now)
    [(_rid, _s, claimable, _d, liability)] = _recoveries(engine)
    assert liability == 10_000 and claimable == 10_000


def test_not_for_issues_carriers_dont_pay(engine, now):
    _b, cid = _claim(engine, now, issue="defective")
    decisions.approve(engine, cid, "staff:t", [decisions.ResolutionInput("refund", 2800)], now=now)
    assert _recoveries(engine) == []


def test_owner_policy_narrows_and_is_recorded(engine, now):
    assert recoveries.save_policy(engine, "staff:o", carriers=["usps"], issue_types=[],
                                  min_minor=0)
    assert not recoveries.save_policy(engine, "staff:o", carriers=["usps"], issue_types=[],
                                      min_minor=0)  # nothing changed
    _b, cid = _claim(engine, now, carrier="UPS")
    decisions.approve(engine, cid, "staff:t", [decisions.ResolutionInput("refund", 2800)], now=now)
    assert _recoveries(engine) == []
    recoveries.save_policy(engine, "staff:o", carriers=[], issue_types=["damaged"], min_minor=3000)
    _b, cid2 = _claim(engine, now, number="1002")
    decisions.approve(engine, cid2, "staff:t", [decisions.ResolutionInput("refund", 2800)], now=now)
    assert _recoveries(engine) == []  # below the minimum worth filing
    with pytest.raises(ClaimRuleError) as e:
        recoveries.save_policy(engine, "staff:o", carriers=["pony_express"], issue_types=[],
                               min_minor=0)
    assert e.value.code == ErrorCode.SETTING_INVALID


def test_undo_cancels_and_a_new_approval_opens_it_again(engine, now):
    _b, cid = _claim(engine, now)
    decisions.approve(engine, cid, "staff:t", [decisions.ResolutionInput("refund", 2800)], now=now)
    decisions.undo_approval(engine, cid, "staff:t", "wrong claim", now=now + timedelta(minutes=1))
    [(rid, state, *_)] = _recoveries(engine)
    assert state == S.CANCELLED
    decisions.approve(engine, cid, "staff:t", [decisions.ResolutionInput("refund", 1000)],
                      now=now + timedelta(minutes=2), note="part of it")
    [(rid2, state, claimable, *_)] = _recoveries(engine)
    assert rid2 == rid and state == S.TO_FILE and claimable == 1000  # one per claim and shipment
    assert [e[0] for e in _events(engine, rid)] == ["open", "cancel", "reopen"]


def test_unique_per_claim_and_shipment(engine, now):
    _b, cid = _claim(engine, now)
    decisions.approve(engine, cid, "staff:t", [decisions.ResolutionInput("refund", 2800)], now=now)
    with pytest.raises(Exception):
        with write_session(engine) as s:
            r = s.scalars(select(Recovery)).one()
            s.add(Recovery(claim_id=r.claim_id, shipment_id=r.shipment_id, issue_type="lost"))


def test_file_decide_pay(engine, now):
    _b, cid = _claim(engine, now)
    decisions.approve(engine, cid, "staff:t", [decisions.ResolutionInput("refund", 2800)], now=now)
    [(rid, *_)] = _recoveries(engine)
    with pytest.raises(ClaimRuleError) as e:
        recoveries.file_by_hand(engine, rid, "staff:t", "  ")
    assert e.value.code == ErrorCode.TEXT_REQUIRED
    recoveries.file_by_hand(engine, rid, "staff:t", "UPS-123", now=now)
    with pytest.raises(ClaimRuleError) as e:
        recoveries.file_by_hand(engine, rid, "staff:t", "UPS-124", now=now)  # filed once
    assert e.value.code == ErrorCode.RECOVERY_ILLEGAL_STEP
    assert recoveries.record_decision(engine, rid, "staff:t", "partly_approved",
                                      approved_minor=2000, paid_minor=2000, now=now) == S.PAID
    [row] = recoveries.list_recoveries(engine, open_only=False, now=now)
    assert (row.carrier_claim_number, row.approved_minor, row.recovered_minor) == ("UPS-123", 2000,
                                                                                   2000)
    assert [e[2] for e in _events(engine, rid)] == ["to_file", "filed", "partly_approved", "paid"]
    assert recoveries.list_recoveries(engine, now=now) == []  # paid: no longer open
    with pytest.raises(ClaimRuleError) as e:
        recoveries.record_decision(engine, 9999, "staff:t", "rejected")
    assert e.value.code == ErrorCode.RECOVERY_NOT_FOUND


def test_recovery_events_are_append_only(engine, now):
    _b, cid = _claim(engine, now)
    decisions.approve(engine, cid, "staff:t", [decisions.ResolutionInput("refund", 2800)], now=now)
    with pytest.raises(AppendOnlyError):
        with write_session(engine) as s:
            s.scalars(select(RecoveryEvent)).first().action = "x"
    with pytest.raises(Exception, match="append-only"):
        with write_session(engine) as s:
            s.execute(text("DELETE FROM recovery_events"))


def test_list_by_deadline_with_filters_and_overdue(engine, now):
    _b, c1 = _claim(engine, now, carrier="UPS")
    _b, c2 = _claim(engine, now, carrier="DHL Express", number="1002")
    for cid in (c1, c2):
        decisions.approve(engine, cid, "staff:t", [decisions.ResolutionInput("refund", 2800)],
                          now=now)
    rows = recoveries.list_recoveries(engine, now=now)
    assert [r.carrier_key for r in rows] == ["dhl_express", "ups"]  # DHL's 30 days come first
    assert [r.carrier_key for r in recoveries.list_recoveries(engine, carriers=["ups"], now=now)] \
        == ["ups"]
    assert recoveries.list_recoveries(engine, states=["filed"], now=now) == []
    late = now + timedelta(days=40)
    dhl = recoveries.list_recoveries(engine, carriers=["dhl_express"], now=late)[0]
    assert dhl.overdue and dhl.days_left < 0


def _owner(engine, email="owner@shop.example"):
    with write_session(engine) as s:
        s.add(StaffUser(username="own", role="owner", password_hash="x", email=email))


def _reminders(engine):
    with write_session(engine) as s:
        return s.scalar(select(func.count()).select_from(OutboxMessage)
                        .where(OutboxMessage.kind == "staff_recovery_deadline"))


def test_deadline_job_reminds_once_each_then_writes_off(engine, now):
    _owner(engine)
    _b, cid = _claim(engine, now, carrier="DHL Express")
    decisions.approve(engine, cid, "staff:t", [decisions.ResolutionInput("refund", 2800)], now=now)
    [(rid, _s, _c, deadline, _l)] = _recoveries(engine)
    at = lambda d: datetime.combine(deadline - timedelta(days=d), datetime.min.time(),  # noqa: E731
                                    tzinfo=timezone.utc) + timedelta(hours=12)
    assert recoveries.run_deadlines(engine, now=at(8)) == {"written_off": 0, "reminded": 0}
    assert recoveries.run_deadlines(engine, now=at(7))["reminded"] == 1
    assert recoveries.run_deadlines(engine, now=at(5))["reminded"] == 0  # once
    assert _reminders(engine) == 1
    jobs.tick(engine, now=at(1), smtp=None, smtp_given=True)  # through the job table
    assert _reminders(engine) == 2
    assert recoveries.run_deadlines(engine, now=at(0))["reminded"] == 0
    assert recoveries.run_deadlines(engine, now=at(-1)) == {"written_off": 1, "reminded": 0}
    assert _recoveries(engine)[0][1] == S.WRITTEN_OFF
    assert _events(engine, rid)[-1] == ("write_off", "to_file", "written_off")


def test_a_filed_recovery_is_never_written_off_by_the_job(engine, now):
    _b, cid = _claim(engine, now, carrier="DHL Express")
    decisions.approve(engine, cid, "staff:t", [decisions.ResolutionInput("refund", 2800)], now=now)
    [(rid, *_)] = _recoveries(engine)
    recoveries.file_by_hand(engine, rid, "staff:t", "DHL-1", now=now)
    assert recoveries.run_deadlines(engine, now=now + timedelta(days=90))["written_off"] == 0
    with pytest.raises(ClaimRuleError) as e:  # filed: wait for the answer
        recoveries.write_off(engine, rid, "staff:o", "filed: can't", role="owner")
    assert e.value.code == ErrorCode.RECOVERY_ILLEGAL_STEP


def test_only_the_owner_writes_off(engine, now):
    _b, cid = _claim(engine, now)
    decisions.approve(engine, cid, "staff:t", [decisions.ResolutionInput("refund", 2800)], now=now)
    [(rid, *_)] = _recoveries(engine)
    with pytest.raises(ClaimRuleError) as e:
        recoveries.write_off(engine, rid, "staff:a", "meh", role="agent")
    assert e.value.code == ErrorCode.AUTH_FAILED and _recoveries(engine)[0][1] == S.TO_FILE
    recoveries.write_off(engine, rid, "staff:o", "too small", role="owner", now=now)
    assert _recoveries(engine)[0][1] == S.WRITTEN_OFF


# --- the packet ------------------------------------------------------------------------------------

def test_packet_holds_the_evidence_pack_and_an_invoice_from_the_order(engine, now):
    import io
    import zipfile

    import pypdf

    from claims_core.adapters import recovery_packet

    _b, cid = _claim(engine, now, items={"MUG": 2})
    decisions.approve(engine, cid, "staff:t", [decisions.ResolutionInput("refund", 5600)], now=now)
    name, data = recovery_packet.packet_zip(engine, cid, now=now)
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        names = sorted(z.namelist())
        ref = name.removeprefix("recovery-").removesuffix(".zip")
        assert names == [f"evidence-{ref}.pdf", f"invoice-{ref}.pdf"]
        invoice = pypdf.PdfReader(io.BytesIO(z.read(f"invoice-{ref}.pdf")))
    text = "\n".join(p.extract_text() for p in invoice.pages)
    assert "order #1001" in text and "Hand-thrown Mug" in text
    assert "2 × Hand-thrown Mug (SKU MUG) at $28.00 = $56.00" in text
    assert "Paid out to the customer by the shop: $56.00" in text


# --- the outbound webhook ------------------------------------------------------------------------

def test_each_step_queues_recovery_updated_for_endpoints_that_asked(engine, now):
    import json as _json

    from claims_core.infra.models import WebhookDelivery, WebhookEndpoint

    with write_session(engine) as s:
        s.add(WebhookEndpoint(url="https://hooks.example/a", events="recovery.updated",
                              secret="whsec_a"))
        s.add(WebhookEndpoint(url="https://hooks.example/b", events="claim.updated",
                              secret="whsec_b"))
    _b, cid = _claim(engine, now)
    decisions.approve(engine, cid, "staff:t", [decisions.ResolutionInput("refund", 2800)], now=now)
    [(rid, *_)] = _recoveries(engine)
    recoveries.file_by_hand(engine, rid, "staff:t", "UPS-1", now=now)
    with write_session(engine) as s:
        rows = s.scalars(select(WebhookDelivery).where(
            WebhookDelivery.event_type == "recovery.updated").order_by(WebhookDelivery.id)).all()
        assert {r.endpoint_id for r in rows} == {1}  # only the endpoint that asked
        bodies = [_json.loads(r.payload) for r in rows]
    assert [(b["data"]["state"], b["data"]["previous_state"]) for b in bodies] == [
        ("to_file", None), ("filed", "to_file")]
    assert bodies[0]["data"]["claimable_minor"] == 2800


def test_stats_report_recoveries_by_state_and_money_recovered(engine, now):
    from claims_core import cli

    _b, c1 = _claim(engine, now)
    _b, c2 = _claim(engine, now, number="1002")
    for cid in (c1, c2):
        decisions.approve(engine, cid, "staff:t", [decisions.ResolutionInput("refund", 2800)],
                          now=now)
    rid = _recoveries(engine, c1)[0][0]
    recoveries.file_by_hand(engine, rid, "staff:t", "UPS-9", now=now)
    recoveries.record_decision(engine, rid, "staff:t", "partly_approved", approved_minor=2000,
                               paid_minor=1900, now=now)
    got = cli.collect_stats(engine)["recoveries"]
    assert got["by_state"]["paid"] == 1 and got["by_state"]["to_file"] == 1
    assert got["recovered_minor"] == {"USD": 1900}
    assert got["open_claimable_minor"] == {"USD": 2800}


def test_deadlines_follow_the_apps_clock(engine, now):
    """The job and the list read the app's one clock (infra/clock.py) when no time is given."""
    from claims_core.infra import clock

    _owner(engine)
    _b, cid = _claim(engine, now, carrier="DHL Express")
    decisions.approve(engine, cid, "staff:t", [decisions.ResolutionInput("refund", 2800)], now=now)
    deadline = _recoveries(engine)[0][3]
    before = clock.shift()
    try:
        noon = datetime.combine(deadline, datetime.min.time(), tzinfo=timezone.utc) \
            + timedelta(hours=12)
        clock.set_shift(clock.shift_to(noon - timedelta(days=3)))
        assert recoveries.list_recoveries(engine)[0].days_left == 3
        assert recoveries.run_deadlines(engine) == {"written_off": 0, "reminded": 1}
        clock.set_shift(clock.shift_to(noon + timedelta(days=1)))
        assert recoveries.list_recoveries(engine)[0].overdue
        jobs.tick(engine, smtp=None, smtp_given=True)
        assert _recoveries(engine)[0][1] == S.WRITTEN_OFF
    finally:
        clock.set_shift(before.total_seconds())
