"""The privacy notice: the portal's words with the store's retention periods, per language, or
the store's own text; linked from every public page and every customer email. Settings → Privacy
(retention form, what the next run removes, the store's own notice) under AppTest."""
from __future__ import annotations

import dataclasses
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from claims_core.domain import privacy
from claims_core.domain.errors import ErrorCode, InvalidInput
from claims_core.domain.vocabulary import DenialReason
from claims_core.infra import i18n
from claims_core.infra.db import read_session, utcnow
from claims_core.infra.models import OutboxMessage
from claims_core.services import customer, decisions, privacy_notice, retention
from claims_core.services.settings import load_settings, update_settings

from tests.support.factories import claim_request, jpeg_bytes, make_order
from tests.pages.test_staff_app import app, everything  # noqa: F401

APP = str(Path(__file__).resolve().parents[2] / "navigation.py")


def _notice(engine, lang):
    return privacy_notice.paragraphs(load_settings(engine), i18n.translator(lang))


def test_the_notice_says_the_stores_periods_and_contact_in_each_language(engine):
    update_settings(engine, "owner", {"support_email": "privacy@harbour.example"})
    retention.save_policy(engine, "owner", {"retain_photos_months": 18, "retain_draft_days": 5})
    en = " ".join(_notice(engine, "en"))
    assert "18 months" in en and "5 days" in en and "privacy@harbour.example" in en
    assert "90 days" in en and "30 days" in en  # outbox bodies, unmatched mail (defaults)
    for lang in ("es", "fr", "de"):
        text = " ".join(_notice(engine, lang))
        assert text != en and "18" in text and "privacy@harbour.example" in text
    assert len(_notice(engine, "de")) == len(privacy.NOTICE_PARAGRAPHS)


def test_the_stores_own_notice_replaces_it_per_language(engine):
    assert privacy_notice.save_own_text(engine, "owner", "de", "Unser Text.\n\nZweiter Absatz.")
    assert _notice(engine, "de") == ["Unser Text.", "Zweiter Absatz."]
    assert _notice(engine, "fr") != ["Unser Text.", "Zweiter Absatz."]  # default language: en
    privacy_notice.save_own_text(engine, "owner", "en", "Our words.")
    assert _notice(engine, "fr") == ["Our words."]  # falls back to the default language's
    privacy_notice.save_own_text(engine, "owner", "de", "")
    assert _notice(engine, "de") == ["Our words."]
    with pytest.raises(InvalidInput) as e:
        privacy_notice.save_own_text(engine, "owner", "xx", "?")
    assert e.value.code == ErrorCode.SETTING_INVALID


def test_every_customer_email_links_the_notice_in_its_language(engine, now, monkeypatch):
    monkeypatch.setenv("CLAIMS_PUBLIC_URL", "https://claims.harbour.example")
    built = make_order(engine)
    r = customer.file_claim(engine, dataclasses.replace(claim_request(built), language="fr"),
                            now=now)
    decisions.deny(engine, r.claim_id, "staff:ana", DenialReason.NOT_COVERED, now=now)
    with read_session(engine) as s:
        mails = s.scalars(select(OutboxMessage).where(OutboxMessage.claim_id == r.claim_id)).all()
    customer_mails = [m for m in mails if m.to_addr == built.email]
    assert len(customer_mails) >= 2
    for m in customer_mails:
        assert "https://claims.harbour.example/privacy?lang=fr" in m.body_text
        assert 'href="https://claims.harbour.example/privacy?lang=fr"' in m.body_html
        assert "Comment nous traitons vos données" in m.body_text
    staff = [m for m in mails if m.to_addr != built.email]
    assert all("/privacy?lang=" not in m.body_text for m in staff)


def test_the_privacy_page_is_in_every_public_pages_menu_and_footer(db_url, engine, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", db_url)
    retention.save_policy(engine, "owner", {"retain_photos_months": 13})
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    assert not at.exception
    pages = {info["url_pathname"]: info["page_name"] for info in at._registered_pages.values()}
    assert pages.get("privacy") == "Privacy notice"  # in the menu of every page
    assert [el.proto.page for el in at.get("page_link")] == ["privacy"]  # the file page's foot
    at.switch_page("views/customer/privacy.py")
    at.run()
    assert not at.exception
    assert [t.value for t in at.title] == ["Privacy notice"]
    assert "13 months" in "\n".join(t.value for t in at.text)
    at.query_params["lang"] = "de"
    at.run()
    assert [t.value for t in at.title] == ["Datenschutzhinweis"]


def test_settings_privacy_tab_saves_retention_and_shows_what_the_next_run_removes(app, engine, now):
    built = make_order(engine, base=utcnow())
    r = customer.file_claim(engine, claim_request(built, photos=[("a.jpg", jpeg_bytes())]),
                            now=utcnow())
    decisions.deny(engine, r.claim_id, "staff:ana", DenialReason.NOT_COVERED,
                   now=utcnow() - timedelta(days=70))
    at = app("owner", "views/staff/settings.py")
    assert "The next run has nothing to remove." in everything(at)
    at.number_input(key="privacy_retain_photos_months").set_value(2)
    at.button(key="FormSubmitter:privacy_retention-Save retention").click().run()
    assert not at.exception
    assert retention.load_policy(engine)["retain_photos_months"] == 2
    assert "The next run will remove: 1 photo, 1 signature." in everything(at)
    assert retention.due_counts(engine).photos == 1


def test_a_prepared_shopify_data_request_is_downloaded_in_customer_data(app, engine):
    from claims_core.infra.db import write_session
    from claims_core.infra.models import Event, Order
    from claims_core.services import privacy_requests

    built = make_order(engine, base=utcnow())
    with write_session(engine) as s:
        s.get(Order, built.order_id).external_id = "7001"
        privacy_requests.record(s, privacy_requests.parse("customers/data_request", {
            "shop_id": 1, "shop_domain": "x.myshopify.com", "orders_requested": [7001],
            "customer": {"id": 5, "email": built.email}, "data_request": {"id": 77}}), now=utcnow())
    assert privacy_requests.process_due(engine)["exported"] == 1
    [row] = privacy_requests.list_requests(engine)
    at = app("owner", "views/staff/settings.py")
    assert "Shopify requests" in [h.value for h in at.subheader]
    at.button(key=f"privacy_prep_{row.id}").click().run()
    assert not at.exception
    assert [el.proto.label for el in at.get("download_button")] == \
        ["Download the customer's data (ZIP)"]
    with read_session(engine) as s:
        assert s.scalars(select(Event.id).where(
            Event.action == "privacy_export_downloaded")).all()
