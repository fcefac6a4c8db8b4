"""Recoveries in the staff app (AppTest): the Recoveries page, the claim page's panel, Settings →
Recoveries."""
from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from claims_core.infra.db import utcnow, write_session
from claims_core.infra.models import Recovery, StoreSettings
from claims_core.services import accounts, customer, decisions, staff_sessions
from views import navigation, ui

from tests.support.factories import claim_request, make_order

APP = str(Path(__file__).resolve().parents[2] / "navigation.py")


@pytest.fixture
def app(db_url, engine, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", db_url)
    users = {role: accounts.add_user(engine, f"{role}1", role, "a long password")
             for role in accounts.ROLES}

    def start(role, page, **query):
        at = AppTest.from_file(APP, default_timeout=60)
        token = staff_sessions.start(engine, users[role])
        monkeypatch.setattr(ui, "staff_cookie", lambda: token)
        for k, v in query.items():
            at.query_params[k] = str(v)
        at.run()
        at.switch_page(page)
        at.run()
        assert not at.exception, at.exception
        return at
    return start


def approved_claim(engine, number="1001", carrier="UPS", days_ago=10):
    now = utcnow()
    built = make_order(engine, number, f"c{number}@example.com", base=now,
                       created=now - timedelta(days=days_ago + 2),
                       tracking_prefix=f"T{number}",
                       shipments=[dict(status="delivered", shipped=now - timedelta(days=days_ago),
                                       delivered=now - timedelta(days=days_ago - 3),
                                       carrier=carrier, items=[("MUG", 3), ("TOTE", 1)])])
    r = customer.file_claim(engine, claim_request(built, key=f"k{number}"))
    decisions.approve(engine, r.claim_id, "staff:t", [decisions.ResolutionInput("refund", 2800)])
    return r.claim_id


def recovery(engine, claim_id):
    with write_session(engine) as s:
        rec = s.scalars(select(Recovery).where(Recovery.claim_id == claim_id)).one()
        return rec.state, rec.carrier_claim_number, rec.recovered_cents


def test_menu_lists_recoveries_for_owner_and_agent_only():
    assert "Recoveries" in navigation.menu_titles("owner")
    assert "Recoveries" in navigation.menu_titles("agent")
    assert "Recoveries" not in navigation.menu_titles("analyst")


def test_recoveries_page_by_deadline_with_overdue_cue_and_filters(app, engine):
    approved_claim(engine, "1001", "UPS")
    approved_claim(engine, "1002", "DHL Express", days_ago=40)  # DHL: 30 days from shipping
    at = app("agent", "views/staff/recoveries.py")
    assert [t.value for t in at.title] == ["Recoveries"]
    df = at.dataframe[0].value
    assert list(df["Carrier"]) == ["DHL Express", "UPS"]
    assert list(df["Due"]) == ["Overdue", ""]
    at.multiselect(key="rec_carriers").set_value(["ups"]).run()
    assert list(at.dataframe[0].value["Carrier"]) == ["UPS"]
    at.multiselect(key="rec_states").set_value(["paid"]).run()
    assert not at.dataframe and "No recoveries match" in at.info[0].value


def test_recoveries_page_refuses_an_analyst(app):
    at = app("analyst", "views/staff/recoveries.py")
    assert [t.value for t in at.title] == [] and "doesn't give access" in at.error[0].value


def test_claim_panel_files_records_and_pays(app, engine):
    cid = approved_claim(engine)
    at = app("agent", "views/staff/claim.py", id=cid)
    assert any("can be claimed" in m.value for m in at.markdown)
    assert any("UPS: claims within 60 days from the delivery date" in c.value for c in at.caption)
    rid = recovery_id(engine, cid)
    at.text_input(key=f"rec_number_{rid}").set_value("1Z-CLAIM-9")
    next(b for b in at.button if b.label == "Record as filed").click().run()
    assert not at.exception and recovery(engine, cid)[:2] == ("filed", "1Z-CLAIM-9")
    at.selectbox(key=f"rec_outcome_{rid}").set_value("approved")
    at.text_input(key=f"rec_paid_{rid}").set_value("28.00")
    next(b for b in at.button if b.label == "Record the decision").click().run()
    assert not at.exception and recovery(engine, cid) == ("paid", "1Z-CLAIM-9", 2800)


def test_write_off_is_the_owners(app, engine):
    cid = approved_claim(engine)
    at = app("agent", "views/staff/claim.py", id=cid)
    assert not [b for b in at.button if b.label == "Write off"]
    at = app("owner", "views/staff/claim.py", id=cid)
    next(b for b in at.button if b.label == "Write off").click().run()
    assert not at.exception and recovery(engine, cid)[0] == "written_off"


def test_claim_panel_shows_a_refusal_by_its_message(app, engine):
    cid = approved_claim(engine)
    at = app("agent", "views/staff/claim.py", id=cid)
    next(b for b in at.button if b.label == "Record as filed").click().run()  # no number
    assert "claim number" in at.error[0].value and recovery(engine, cid)[0] == "to_file"


def recovery_id(engine, claim_id):
    with write_session(engine) as s:
        return s.scalars(select(Recovery.id).where(Recovery.claim_id == claim_id)).one()


def test_settings_recoveries_tab_saves_the_policy(app, engine):
    at = app("owner", "views/staff/settings.py")
    assert "Recoveries" in [t.label for t in at.tabs]
    at.multiselect(key="rec_policy_carriers").set_value(["usps", "ups"])
    at.text_input(key="rec_policy_min").set_value("15.00")
    next(b for b in at.button if b.label == "Save recoveries").click().run()
    assert not at.exception
    with write_session(engine) as s:
        row = s.get(StoreSettings, 1)
        assert (row.recovery_carriers, row.recovery_min_cents) == ("ups,usps", 1500)


def test_claim_panel_files_through_easypost_when_configured(app, engine, monkeypatch):
    monkeypatch.setenv("EASYPOST_API_KEY", "EZTK_x")
    cid = approved_claim(engine)
    at = app("agent", "views/staff/claim.py", id=cid)
    next(b for b in at.button if b.label == "File through EasyPost").click().run()
    assert not at.exception
    assert any("On its way to EasyPost" in i.value for i in at.info)
    assert not [b for b in at.button if b.label == "File through EasyPost"]  # asked once
