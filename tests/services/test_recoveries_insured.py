"""The insured value of a recovery (issue #25): entered by staff on the claim page's panel or
through the API's file call, kept on the recovery, capping what can be claimed through the one
domain rule (``claimable_minor``: the insured value instead of the carrier's liability), recorded
as an event, in the roll-ups, and fixed once filed."""
from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from claims_core.domain import recoveries as rules
from claims_core.domain.errors import ClaimRuleError, ErrorCode
from claims_core.domain.recoveries import RecoveryState as S
from claims_core.infra.db import write_session
from claims_core.infra.models import (ROLLUP_RECOVERIES, Recovery, RecoveryEvent, WebhookDelivery,
                                      WebhookEndpoint)
from claims_core.services import decisions, recoveries

from tests.adapters.test_api import auth, client, problem, read_key, write_key  # noqa: F401
from tests.services.test_recoveries import _claim
from tests.pages.test_recoveries_pages import app, approved_claim, recovery_id  # noqa: F401


def _usps_recovery(engine, now, number="1001", paid=11_850):
    """A USPS parcel (liability 100.00) on which the shop paid 118.50."""
    _b, cid = _claim(engine, now, carrier="USPS", number=number, items={"MUG": 3, "TOTE": 1})
    decisions.approve(engine, cid, "staff:t", [decisions.ResolutionInput("refund", paid)], now=now)
    with write_session(engine) as s:
        return s.scalars(select(Recovery.id).where(Recovery.claim_id == cid)).one()


def _facts(engine, rid):
    with write_session(engine) as s:
        rec = s.get(Recovery, rid)
        return rec.insured_minor, rec.claimable_cents


def _insured_events(engine, rid):
    with write_session(engine) as s:
        return [json.loads(e.details) for e in s.scalars(
            select(RecoveryEvent).where(RecoveryEvent.recovery_id == rid,
                                        RecoveryEvent.action == rules.INSURED_VALUE_EVENT)
            .order_by(RecoveryEvent.id))]


def _rolled_up_claimable(engine):
    with write_session(engine) as s:
        return s.scalar(select(func.coalesce(func.sum(ROLLUP_RECOVERIES.c.claimable), 0)))


def test_the_rule_takes_an_insured_value_only_before_filing():
    assert rules.insured_value(S.TO_FILE, 11_000) == 11_000
    assert rules.insured_value(S.TO_FILE, None) is None
    for bad in (0, -5, True, rules.MAX_INSURED_MINOR + 1):
        with pytest.raises(ClaimRuleError) as e:
            rules.insured_value(S.TO_FILE, bad)
        assert e.value.code == ErrorCode.INSURED_VALUE_INVALID
    for state in (S.FILED, S.PAID, S.CANCELLED, S.WRITTEN_OFF):
        with pytest.raises(ClaimRuleError) as e:
            rules.insured_value(state, 11_000)
        assert e.value.code == ErrorCode.RECOVERY_AMOUNT_FIXED


def test_insured_value_caps_the_claim_instead_of_the_liability(engine, now):
    rid = _usps_recovery(engine, now)
    assert _facts(engine, rid) == (None, 10_000)  # USPS liability: 100.00
    assert _rolled_up_claimable(engine) == 10_000
    assert recoveries.set_insured_value(engine, rid, "staff:t", "110.00", now=now)
    assert _facts(engine, rid) == (11_000, 11_000)  # the insurer pays up to the insured value
    assert _rolled_up_claimable(engine) == 11_000  # the roll-up in the same transaction
    assert not recoveries.set_insured_value(engine, rid, "staff:t", 11_000, now=now)  # unchanged
    assert recoveries.set_insured_value(engine, rid, "staff:t", "500", now=now)
    assert _facts(engine, rid) == (50_000, 11_850)  # never more than what the shop paid out
    assert recoveries.set_insured_value(engine, rid, "staff:t", "  ", now=now)  # not insured
    assert _facts(engine, rid) == (None, 10_000)
    assert _insured_events(engine, rid) == [
        {"insured": [None, 11_000], "claimable": [10_000, 11_000]},
        {"insured": [11_000, 50_000], "claimable": [11_000, 11_850]},
        {"insured": [50_000, None], "claimable": [11_850, 10_000]}]
    [(row, _events)] = recoveries.for_claim(engine, _claim_of(engine, rid), now=now)
    assert (row.insured_minor, row.liability_minor, row.can_set_insured) == (None, 10_000, True)


def test_bad_insured_values_are_refused_and_change_nothing(engine, now):
    rid = _usps_recovery(engine, now)
    for bad, code in (("0", ErrorCode.INSURED_VALUE_INVALID), ("lots", ErrorCode.AMOUNT_INVALID),
                      (-1, ErrorCode.AMOUNT_INVALID)):
        with pytest.raises(ClaimRuleError) as e:
            recoveries.set_insured_value(engine, rid, "staff:t", bad, now=now)
        assert e.value.code == code
    assert _facts(engine, rid) == (None, 10_000) and _insured_events(engine, rid) == []


def test_fixed_once_filed_and_kept_when_the_recovery_opens_again(engine, now):
    from datetime import timedelta
    rid = _usps_recovery(engine, now)
    recoveries.set_insured_value(engine, rid, "staff:t", 11_000, now=now)
    cid = _claim_of(engine, rid)
    decisions.undo_approval(engine, cid, "staff:t", "wrong claim", now=now + timedelta(minutes=1))
    decisions.approve(engine, cid, "staff:t", [decisions.ResolutionInput("refund", 11_850)],
                      now=now + timedelta(minutes=2))
    assert _facts(engine, rid) == (11_000, 11_000)  # reopened under the same insured value
    recoveries.file_by_hand(engine, rid, "staff:t", "USPS-1", now=now)
    with pytest.raises(ClaimRuleError) as e:
        recoveries.set_insured_value(engine, rid, "staff:t", 5_000, now=now)
    assert e.value.code == ErrorCode.RECOVERY_AMOUNT_FIXED
    assert _facts(engine, rid) == (11_000, 11_000)


def test_an_insured_value_change_goes_out_as_recovery_updated(engine, now):
    with write_session(engine) as s:
        s.add(WebhookEndpoint(url="https://hooks.example/a", events="recovery.updated",
                              secret="whsec_a"))
    rid = _usps_recovery(engine, now)
    recoveries.set_insured_value(engine, rid, "staff:t", 11_000, now=now)
    with write_session(engine) as s:
        last = s.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id.desc())).first()
        data = json.loads(last.payload)["data"]
    assert (data["action"], data["claimable_minor"]) == ("insured_value", 11_000)


def _claim_of(engine, rid):
    with write_session(engine) as s:
        return s.get(Recovery, rid).claim_id


# --- the API: POST /api/v1/recoveries/{id}/file with insured_minor ---------------------------------

def test_api_files_under_the_insured_value(engine, now, client, write_key):  # noqa: F811
    rid = _usps_recovery(engine, now)
    body = {"carrier_claim_number": "USPS-9", "insured_minor": 11_000}
    for _ in range(2):  # asked again with the same value: nothing changes
        r = client.post(f"/api/v1/recoveries/{rid}/file", json=body, headers=auth(write_key))
        assert r.status_code == 200, r.text
        got = r.json()
        assert (got["state"], got["insured_minor"], got["claimable_minor"]) == ("filed", 11_000,
                                                                                11_000)
    assert len(_insured_events(engine, rid)) == 1
    problem(client.post(f"/api/v1/recoveries/{rid}/file", json={**body, "insured_minor": 9_000},
                        headers=auth(write_key)), 409, "recovery_amount_fixed")
    problem(client.post(f"/api/v1/recoveries/{rid}/file", json={**body, "insured_minor": 0},
                        headers=auth(write_key)), 422)
    assert _facts(engine, rid) == (11_000, 11_000)


def test_api_file_through_easypost_keeps_the_insured_value_first(engine, now, client,  # noqa: F811
                                                                  write_key, monkeypatch):
    monkeypatch.setenv("EASYPOST_API_KEY", "EZTK_x")
    rid = _usps_recovery(engine, now)
    r = client.post(f"/api/v1/recoveries/{rid}/file", json={"insured_minor": 11_500},
                    headers=auth(write_key))
    assert r.status_code == 200, r.text
    assert (r.json()["state"], r.json()["claimable_minor"]) == ("to_file", 11_500)  # queued
    [work] = recoveries.lease_filings(engine)  # the API queued it on the clock
    assert work.params["amount"] == "115.00"  # what EasyPost is asked for


# --- the panel on the staff claim page ---------------------------------------------------------

def test_panel_enters_the_insured_value(app, engine):  # noqa: F811
    cid = approved_claim(engine, carrier="USPS")
    rid = recovery_id(engine, cid)
    at = app("agent", "views/staff/claim.py", id=cid)
    assert any("Capped by the carrier's liability" in c.value for c in at.caption)
    at.text_input(key=f"rec_insured_value_{rid}").set_value("25.00")
    next(b for b in at.button if b.label == "Save the insured value").click().run()
    assert not at.exception and _facts(engine, rid) == (2500, 2500)
    assert any("Insured for $25.00" in c.value for c in at.caption)
    at.text_input(key=f"rec_insured_value_{rid}").set_value("0")
    next(b for b in at.button if b.label == "Save the insured value").click().run()
    assert at.error and _facts(engine, rid) == (2500, 2500)  # refused, shown, nothing changed
    at.text_input(key=f"rec_number_{rid}").set_value("USPS-1")
    next(b for b in at.button if b.label == "Record as filed").click().run()
    assert not [b for b in at.button if b.label == "Save the insured value"]  # fixed once filed
