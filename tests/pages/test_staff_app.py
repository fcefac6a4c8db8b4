"""Staff pages under AppTest: login, roles, queue filters, every action on a claim, settings."""
from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select
from streamlit.testing.v1 import AppTest

from claims_core.infra.db import utcnow, write_session
from claims_core.infra.models import (
    Claim,
    Evidence,
    Order,
    StaffUser,
    Stock,
    StoreSettings,
)
from claims_core.services import accounts, claim_views, customer, decisions
from claims_core.services import settings as store_settings
from claims_core.services import staff_sessions
from views import navigation, ui

from tests.support.factories import claim_request, make_order
from tests.adapters.test_import import SAMPLE

APP = str(Path(__file__).resolve().parents[2] / "navigation.py")


@pytest.fixture
def app(db_url, engine, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setattr(ui, "photo_uploader", lambda label, key, collapsed=False, **_kw: [])
    users = {role: accounts.add_user(engine, f"{role}1", role, "a long password") for role in accounts.ROLES}

    def start(role=None, page=None, **query):
        at = AppTest.from_file(APP, default_timeout=60)
        # AppTest can't send cookies: the cookie a browser would send stands in (a real session)
        token = staff_sessions.start(engine, users[role]) if role else None
        monkeypatch.setattr(ui, "staff_cookie", lambda: token)
        for k, v in query.items():
            at.query_params[k] = str(v)
        at.run()
        if page:  # after the first run, which registered st.navigation's pages
            at.switch_page(page)
            at.run()
        assert not at.exception, at.exception
        return at
    return start


def titles(at):
    return [t.value for t in at.title]


def everything(at):
    return "\n".join(str(x.value) for kind in ("markdown", "text", "caption", "error", "warning",
                                                "success", "info") for x in getattr(at, kind))


def page_names(at):
    """The pages st.navigation registered in the last run."""
    return [info["page_name"] for info in at._registered_pages.values()]


def fresh_claim(engine, number="1001", **kw):
    built = make_order(engine, number, f"c{number}@example.com", base=utcnow(),
                       tracking_prefix=f"T{number}", stock=kw.pop("stock", None))
    r = customer.file_claim(engine, claim_request(built, key=f"k{number}", **kw))
    return built, r


def open_claim(app, claim_id, role="agent"):
    return app(role, "views/staff/claim.py", id=claim_id)


def status(engine, claim_id):
    with write_session(engine) as s:
        return s.get(Claim, claim_id).status


# --- login and roles ----------------------------------------------------------------------------

def test_staff_pages_need_login(app):
    at = app()
    assert "Staff log in" in page_names(at) and navigation.menu_titles(None) == []


def test_a_staff_page_without_a_session_offers_the_login_and_the_way_back(app):
    """Reached inside the app without a session (the HTTP gate catches full page loads): the
    log-in, which returns to this very page."""
    at = app(page="views/staff/claim.py", id=42)
    assert titles(at) == ["Staff log in"]
    assert any("/auth/login?next=" in h.proto.body for h in at.get("html"))


@pytest.mark.parametrize("role,sees,hidden", [
    ("owner", ["Claims queue", "Settings"], []),
    ("agent", ["Claims queue", "New claim for a customer"], ["Settings"]),
    ("analyst", ["Analytics"], ["Claims queue", "Settings"]),
])
def test_each_roles_view(app, role, sees, hidden):
    app(role)
    names = navigation.menu_titles(role)
    for n in sees:
        assert n in names
    for n in hidden:
        assert n not in names


def test_page_refuses_wrong_role_even_when_reached(app, engine):
    at = app("agent", "views/staff/settings.py")  # a link an agent can still follow
    assert titles(at) == [] and "doesn't give access" in at.error[0].value


def test_expired_session_logs_out(app, engine, monkeypatch):
    who = accounts.authenticate(engine, "agent1", "a long password")
    token = staff_sessions.start(engine, who, now=utcnow() - timedelta(hours=13))
    monkeypatch.setattr(ui, "staff_cookie", lambda: token)
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page("views/staff/queue.py").run()
    assert titles(at) == ["Staff log in"] and "session ended" in everything(at)


# --- queue --------------------------------------------------------------------------------------

def test_queue_tabs_filters_search(app, engine):
    _b1, r1 = fresh_claim(engine, "1001")
    _b2, r2 = fresh_claim(engine, "1002", issue="missing_item", photos=[], resolution="store_credit")
    decisions.request_info(engine, r2.claim_id, "staff:t", "T", "label please")
    at = app("agent", "views/staff/queue.py")
    assert titles(at) == ["Claims queue"]
    table = at.dataframe(key="q_table").value
    assert list(table["Claim"]) == [r1.reference]
    at.segmented_control(key="q_tab").set_value("waiting").run()
    assert list(at.dataframe(key="q_table").value["Claim"]) == [r2.reference]
    at.text_input(key="q_text").input("c1001@example.com").run()
    assert "No claims match" in everything(at)
    at.segmented_control(key="q_tab").set_value("todo").run()
    assert list(at.dataframe(key="q_table").value["Claim"]) == [r1.reference]
    at.text_input(key="q_text").input("").run()
    at.multiselect(key="q_issue").set_value(["missing_item"]).run()
    assert "No claims match" in everything(at)
    at.multiselect(key="q_issue").set_value([]).run()
    for key, value, hits in [("q_cat", "item", 1), ("q_cat", "shipping", 0), ("q_cat", None, 1),
                             ("q_res", ["refund"], 1), ("q_res", ["reshipment"], 0), ("q_res", [], 1),
                             ("q_risk", ["high"], 0), ("q_risk", [], 1),
                             ("q_carrier", ["UPS"], 1), ("q_carrier", [], 1)]:
        widget = at.selectbox(key=key) if key == "q_cat" else at.multiselect(key=key)
        widget.set_value(value).run()
        rows = at.dataframe(key="q_table").value if hits else None
        assert (len(rows) if rows is not None else 0) == hits or ("No claims match" in everything(at)) == (hits == 0)
    at.number_input(key="q_min").set_value(100.0).run()
    assert "No claims match" in everything(at)
    at.number_input(key="q_min").set_value(None).run()
    at.number_input(key="q_max").set_value(10.0).run()
    assert "No claims match" in everything(at)
    at.number_input(key="q_max").set_value(None).run()
    today = utcnow().date()
    at.date_input(key="q_dates").set_value((today - timedelta(days=1), today)).run()
    assert list(at.dataframe(key="q_table").value["Claim"]) == [r1.reference]
    at.date_input(key="q_dates").set_value((today - timedelta(days=30), today - timedelta(days=10))).run()
    assert "No claims match" in everything(at)


def test_queue_age_and_overdue_cue(app, engine):
    built = make_order(engine, base=utcnow())
    customer.file_claim(engine, claim_request(built), now=utcnow() - timedelta(days=3))
    df = app("agent", "views/staff/queue.py").dataframe(key="q_table").value
    assert df["Due"].iloc[0] == "Overdue" and df["Age"].iloc[0] == "3 d"


def test_queue_csv_export_button(app, engine):
    fresh_claim(engine)
    at = app("agent", "views/staff/queue.py")
    assert at.get("download_button")


def test_queue_counts_past_the_cap_and_pages_on(app, engine, monkeypatch):
    from claims_core.adapters import bulk
    from claims_core.services import claim_queue
    bulk.fill(engine, 90, with_photos=0)
    monkeypatch.setattr(claim_queue, "COUNT_CAP", 20)
    at = app("agent", "views/staff/queue.py")
    tab = at.segmented_control(key="q_tab")
    assert "Approved (20+)" in tab.options  # the options as shown
    tab.set_value("approved").run()
    footer = " ".join(m.value for m in at.markdown)
    assert "Page 1 · 20+ claims" in footer
    first = list(at.dataframe(key="q_table").value["Claim"])
    assert len(first) == 25 and not at.button(key="q_next").disabled and at.button(key="q_prev").disabled
    at.button(key="q_next").click().run()
    second = list(at.dataframe(key="q_table").value["Claim"])
    assert "Page 2 · 20+ claims" in " ".join(m.value for m in at.markdown)
    assert second and not set(first) & set(second)
    assert isinstance(at.dataframe(key="q_table").value["Amount"].iloc[0], Decimal)


# --- one claim: every action --------------------------------------------------------------------

def test_claim_page_shows_the_facts(app, engine):
    built, r = fresh_claim(engine, description="<b>Broken</b> [x](javascript:alert(1))")
    at = open_claim(app, r.claim_id)
    assert titles(at) == [f"Claim {r.reference}"]
    body = everything(at)
    assert "Damaged" in body and "Order #1001" in body
    assert "<b>Broken</b> [x](javascript:alert(1))" in [t.value for t in at.text]
    assert all("javascript:" not in m.value for m in at.markdown)


def test_approve_refund_prefilled_and_editable_down(app, engine):
    _b, r = fresh_claim(engine)
    at = open_claim(app, r.claim_id)
    assert at.number_input(key="ap_refund_amt").value == 28.0
    assert at.number_input(key="ap_refund_amt").max == 28.0  # never above what was paid
    at.number_input(key="ap_refund_amt").set_value(20.0)
    at.button(key="FormSubmitter:approve-Approve").click().run()
    assert "Say why the amount is less" in at.error[0].value  # a partial amount needs its reason
    at.text_input(key="ap_note").input("The handle can be glued; part of the price back.")
    at.button(key="FormSubmitter:approve-Approve").click().run()
    assert "Claim approved." in everything(at)
    view = claim_views.get_claim_for_customer(engine, r.access_token)
    assert view.status == "approved" and [(x.kind, x.amount_cents) for x in view.resolutions] == [("refund", 2000)]


def test_approve_partial_split(app, engine):
    store_settings.update_settings(engine, "test", {"store_credit_bonus_pct": 10})
    _b, r = fresh_claim(engine)
    at = open_claim(app, r.claim_id)
    at.checkbox(key="ap_refund").check()
    at.number_input(key="ap_refund_amt").set_value(10.0)
    at.checkbox(key="ap_credit").check()
    at.number_input(key="ap_credit_amt").set_value(18.0)
    at.number_input(key="ap_bonus").set_value(10)  # the form allows up to the store's bonus
    at.button(key="FormSubmitter:approve-Approve").click().run()
    view = claim_views.get_claim_for_customer(engine, r.access_token)
    assert [(x.kind, x.amount_cents, x.bonus_pct) for x in view.resolutions] == \
        [("refund", 1000, 0), ("store_credit", 1800, 10)]
    assert view.resolutions[1].store_credit_code


def test_split_above_paid_refused_in_the_page(app, engine):
    _b, r = fresh_claim(engine)
    at = open_claim(app, r.claim_id)
    at.checkbox(key="ap_refund").check()
    at.checkbox(key="ap_credit").check()  # 28 + 28 > 28
    at.button(key="FormSubmitter:approve-Approve").click().run()
    assert "more than the" in at.error[0].value and "28.00 paid" in at.error[0].value
    assert status(engine, r.claim_id) == "submitted"


def test_approve_reshipment_decrements_stock(app, engine):
    _b, r = fresh_claim(engine, stock={"MUG": 3}, resolution="reshipment")
    at = open_claim(app, r.claim_id)
    at.checkbox(key="ap_reship").check()
    at.button(key="FormSubmitter:approve-Approve").click().run()
    with write_session(engine) as s:
        assert s.get(Stock, "MUG").on_hand == 2
    assert status(engine, r.claim_id) == "approved"


def test_deny_with_reason(app, engine):
    _b, r = fresh_claim(engine)
    at = open_claim(app, r.claim_id)
    at.selectbox(key="deny_reason").set_value("other")
    at.button(key="FormSubmitter:deny-Deny").click().run()
    assert "Explain the reason" in at.error[0].value
    at.text_area(key="deny_note").input("Photos show a different item.")
    at.button(key="FormSubmitter:deny-Deny").click().run()
    assert status(engine, r.claim_id) == "denied"
    view = claim_views.get_claim_for_customer(engine, r.access_token)
    assert "Photos show a different item." in str(view.denial_reason)
    # approving a denied claim is not offered; reopening is
    assert not [b for b in at.button if b.key == "FormSubmitter:approve-Approve"]
    at.button(key="reopen").click().run()
    assert status(engine, r.claim_id) == "in_review"


def test_request_info_then_customer_sees_it(app, engine):
    _b, r = fresh_claim(engine)
    at = open_claim(app, r.claim_id)
    at.text_area(key="ask_body").input("Please send a photo of the label.")
    at.button(key="FormSubmitter:ask-Request information").click().run()
    assert status(engine, r.claim_id) == "needs_info"
    view = claim_views.get_claim_for_customer(engine, r.access_token)
    assert view.messages[-1].body == "Please send a photo of the label."


def test_start_review_close_resolve(app, engine):
    _b, r = fresh_claim(engine)
    at = open_claim(app, r.claim_id)
    at.button(key="start_review").click().run()
    assert status(engine, r.claim_id) == "in_review"
    at.button(key="close").click().run()
    assert status(engine, r.claim_id) == "closed"
    _b2, r2 = fresh_claim(engine, "1002")
    decisions.approve(engine, r2.claim_id, "staff:t", [decisions.ResolutionInput("refund", 2800)])
    at = open_claim(app, r2.claim_id)
    at.button(key="mark_resolved").click().run()
    assert status(engine, r2.claim_id) == "resolved"


def test_assign_note_and_message(app, engine):
    _b, r = fresh_claim(engine)
    at = open_claim(app, r.claim_id)
    with write_session(engine) as s:
        agent_id = s.scalars(select(StaffUser.id).where(StaffUser.username == "agent1")).one()
    at.selectbox(key="assignee").set_value(agent_id)
    at.button(key="assign_save").click().run()
    at.text_area(key="note_body").input("Customer called twice.")
    at.button(key="FormSubmitter:note-Save note").click().run()
    at.text_area(key="staff_reply").input("We're on it!")
    at.button(key="FormSubmitter:reply-Send to customer").click().run()
    view = claim_views.get_claim_for_customer(engine, r.access_token)
    assert [m.body for m in view.messages] == ["We're on it!"]  # the note stays internal
    assert "Customer called twice." in [t.value for t in at.text]
    assert "assigned to agent1" in everything(at)


def test_photo_review_in_page(app, engine):
    _b, r = fresh_claim(engine)
    at = open_claim(app, r.claim_id)
    with write_session(engine) as s:
        eid = s.scalars(select(Evidence.id)).one()
    at.radio(key=f"verdict_{eid}").set_value("rejected")
    at.button(key=f"FormSubmitter:review_{eid}-Save review").click().run()
    assert "Say why" in at.error[0].value
    at.text_input(key=f"note_{eid}").input("Blurry")
    at.radio(key=f"verdict_{eid}").set_value("rejected")
    at.button(key=f"FormSubmitter:review_{eid}-Save review").click().run()
    with write_session(engine) as s:
        e = s.get(Evidence, eid)
        assert (e.review_status, e.review_note) == ("rejected", "Blurry")
    at.button(key=f"full_{eid}").click().run()
    assert at.button(key="close_full")  # the full-size photo is open


def test_someone_else_decided_meanwhile(app, engine):
    _b, r = fresh_claim(engine)
    at = open_claim(app, r.claim_id)  # agent A looks at the claim
    decisions.deny(engine, r.claim_id, "staff:b", "duplicate")  # agent B decides first
    at.button(key="FormSubmitter:approve-Approve").click().run()
    assert "Someone else changed this claim" in everything(at)
    assert status(engine, r.claim_id) == "denied"
    assert "Denied" in "".join(h.proto.body for h in at.get("html"))  # the new state is shown


def test_stale_approve_refused_when_the_form_is_still_there(app, engine):
    from claims_core.services import claim_review
    _b, r = fresh_claim(engine)
    at = open_claim(app, r.claim_id)
    with write_session(engine) as s:
        owner_id = s.scalars(select(StaffUser.id).where(StaffUser.username == "owner1")).one()
    claim_review.assign(engine, r.claim_id, "staff:owner1", owner_id)  # changes the claim
    at.button(key="FormSubmitter:approve-Approve").click().run()
    assert status(engine, r.claim_id) == "submitted"  # the approval based on the old view failed
    assert "Someone else changed this claim" in everything(at)
    at.button(key="FormSubmitter:approve-Approve").click().run()  # now on the fresh view: lands
    assert status(engine, r.claim_id) == "approved"


# --- new claim on behalf ------------------------------------------------------------------------

def test_file_on_behalf(app, engine):
    built = make_order(engine, base=utcnow())
    at = app("agent", "views/staff/new_claim.py")
    at.text_input(key="sn_query").input("#1001")
    at.button[0].click().run()
    at.selectbox(key="sn_issue").set_value("missing_item").run()
    at.number_input(key=f"sn_qty_{built.items[(0, 'TOTE')]}").set_value(1).run()
    at.text_area(key="sn_desc").input("Called in: tote missing from the box")
    at.checkbox(key="sn_ok").check()
    at.button(key="sn_submit").click().run()
    with write_session(engine) as s:
        c = s.scalars(select(Claim)).one()
        assert (c.filed_by, c.issue_type, c.signature_name) == ("staff:agent1", "missing_item", "Sam Jones")


# --- settings -----------------------------------------------------------------------------------

def test_settings_rules_branding_users(app, engine):
    at = app("owner", "views/staff/settings.py")
    assert titles(at) == ["Settings"]
    at.number_input(key="s_window").set_value(30)
    at.checkbox(key="s_reship").uncheck()
    at.button(key="FormSubmitter:rules_form-Save claim rules").click().run()
    assert "Claim rules saved." in everything(at)
    at.text_input(key="s_support").input("not an email")
    at.button(key="FormSubmitter:brand_form-Save branding").click().run()
    assert "doesn't look like an email" in at.error[0].value
    at.text_input(key="s_support").input("help@shop.example")
    at.text_input(key="s_name").input("Shop & Co")
    at.button(key="FormSubmitter:brand_form-Save branding").click().run()
    with write_session(engine) as s:
        st_ = s.get(StoreSettings, 1)
        assert (st_.filing_window_days, st_.offer_reshipment, st_.support_email, st_.name) == \
            (30, False, "help@shop.example", "Shop & Co")
    at.text_input(key="s_new_user").input("newbie")
    at.text_input(key="s_new_pw").input("short")
    at.button(key="FormSubmitter:add_user-Add user").click().run()
    assert "at least 10" in at.error[0].value
    at.text_input(key="s_new_user").input("newbie")
    at.text_input(key="s_new_pw").input("long enough pw")
    at.button(key="FormSubmitter:add_user-Add user").click().run()
    assert accounts.authenticate(engine, "newbie", "long enough pw").role == "agent"


def test_settings_for_a_yen_store_and_languages(app, engine):
    """A store in yen: amounts are whole yen (the page used to crash on ¥50,000); the store's
    default language and texts per language are saved."""
    from claims_core.services.settings import store_text, update_settings
    update_settings(engine, "test", {"currency": "JPY"})
    at = app("owner", "views/staff/settings.py")
    assert not at.exception
    threshold = at.number_input(key="s_threshold")
    assert threshold.value == 50000 and "JPY" in threshold.label  # the default, ¥50,000
    threshold.set_value(60000)
    at.button(key="FormSubmitter:rules_form-Save claim rules").click().run()
    assert "Claim rules saved." in everything(at)
    at.selectbox(key="s_default_lang").set_value("de")
    at.button(key="FormSubmitter:language_form-Save language and currency").click().run()
    at.radio(key="s_texts_lang").set_value("de").run()
    at.text_area(key="s_intro_de").input("Willkommen!")
    at.button(key="FormSubmitter:texts_de-Save Deutsch texts").click().run()
    assert "Deutsch texts saved." in everything(at)
    with write_session(engine) as s:
        row = s.get(StoreSettings, 1)
        assert (row.signature_threshold_cents, row.default_language) == (60000, "de")
        assert store_text(row, "intro", "fr") == "Willkommen!"  # the default language's


def test_settings_import_preview_errors_then_import(app, engine, monkeypatch):
    text = SAMPLE.read_text(encoding="utf-8").replace(",3,Trail Runner 2", ",three,Trail Runner 2")
    picked = {"s_import_orders": ("orders.csv", text.encode())}
    monkeypatch.setattr(ui, "file_picker", lambda label, types, key: picked.get(key))
    at = app("owner", "views/staff/settings.py")
    body = everything(at)
    assert "Preview:" in body and "23 created" in body and "2 rows will be skipped" in body
    errors = next(d.value for d in at.dataframe if "Line" in d.value.columns)  # the import's report
    assert list(errors["Line"]) == [2, 47] and "three" in errors["Problem"].iloc[0]
    with write_session(engine) as s:
        assert s.scalar(select(func.count()).select_from(Order)) == 0  # the preview wrote nothing
    at.button(key="s_import_go").click().run()
    assert "23 created" in everything(at) and at.get("download_button")
    with write_session(engine) as s:
        assert s.scalar(select(func.count()).select_from(Order)) == 23


def test_settings_bad_import_file(app, engine, monkeypatch):
    monkeypatch.setattr(ui, "file_picker", lambda label, types, key:
                        ("orders.csv", b"%PDF\x00\x01") if key == "s_import_orders" else None)
    at = app("owner", "views/staff/settings.py")
    assert "orders.csv:" in at.error[0].value and "Nothing was imported" in at.error[0].value


def test_settings_logo(app, engine, monkeypatch):
    import io

    from PIL import Image
    buf = io.BytesIO()
    Image.new("RGB", (600, 300), (10, 20, 30)).save(buf, "PNG")
    picks = {"s_logo": ("logo.png", buf.getvalue())}
    monkeypatch.setattr(ui, "file_picker", lambda label, types, key: picks.get(key))
    at = app("owner", "views/staff/settings.py")
    at.button(key="s_logo_save").click().run()
    with write_session(engine) as s:
        logo = s.get(StoreSettings, 1).logo_png
    assert Image.open(io.BytesIO(logo)).size == (256, 128)
    picks["s_logo"] = ("logo.png", b"not an image")
    at.button(key="s_logo_save").click().run()
    assert "must be a PNG" in at.error[0].value


# --- email, automation ---------------------------------------------------------------------------

def test_outbox_page_lists_what_would_be_sent(app, engine, monkeypatch):
    monkeypatch.delenv("CLAIMS_SMTP_HOST", raising=False)
    _b, r = fresh_claim(engine)
    at = app("owner", "views/staff/outbox.py")
    assert "No SMTP server is configured" in everything(at)
    table = at.dataframe[0].value
    assert list(table["To"]) == ["c1001@example.com"] and list(table["Status"]) == ["pending"]
    assert any(r.access_token in t.value for t in at.text)


def test_automation_tab_adds_a_rule_that_approves(app, engine):
    at = app("owner", "views/staff/settings.py")
    at.text_input(key="r_name").input("Small first claims")
    at.number_input(key="r_max").set_value(40.0)
    at.button(key="FormSubmitter:new_rule-Add rule").click().run()
    assert "Rule “Small first claims” added." in everything(at)
    _b, r = fresh_claim(engine)  # $28, first claim, with a photo: approved at filing
    assert status(engine, r.claim_id) == "approved"
    at = open_claim(app, r.claim_id)
    assert "rule:Small first claims" in everything(at)
    at.text_input(key="undo_why").input("Looks like a duplicate")
    at.button(key="FormSubmitter:undo-Undo approval").click().run()
    assert status(engine, r.claim_id) == "in_review"


def test_staff_notification_preferences(app, engine):
    at = app("owner", "views/staff/settings.py")
    at.selectbox(key="s_notify_user").set_value("agent1")
    at.checkbox(key="s_notify_new").check()
    at.button(key="FormSubmitter:notify_user-Save notifications").click().run()
    assert "Add an email address" in at.error[0].value
    at.text_input(key="s_notify_email").input("agent@shop.example")
    at.button(key="FormSubmitter:notify_user-Save notifications").click().run()
    with write_session(engine) as s:
        u = s.scalars(select(StaffUser).where(StaffUser.username == "agent1")).one()
        assert (u.email, u.notify_new_claims, u.daily_digest) == ("agent@shop.example", True, False)
