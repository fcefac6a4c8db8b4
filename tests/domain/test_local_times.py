"""Every time a person reads is the store's local time, written by the one formatter
(``domain.format_moment`` for staff, the customer's locale in the store's zone for customers).

The hard hour: 01:30 UTC on December 7 is 20:30 on December 6 in a New York store. Written in UTC
it reads a day (and five hours) off.
"""
from __future__ import annotations

import re
from datetime import datetime, timezone

from sqlalchemy import select, update

from claims_core import cli, domain
from claims_core.adapters import evidence_pack
from claims_core.infra.db import write_session
from claims_core.infra.models import (ApiKey, InboundMail, Message, OutboxMessage, PrivacyRequest,
                                      StoreSettings, WebhookDelivery, WebhookEndpoint)
from claims_core.services import api_keys, claim_review, customer, privacy_requests

from tests.conftest import STORE_TZ
from tests.support.factories import claim_request, make_order
from tests.adapters.test_evidence_pack import _flat, _read
from tests.services.test_privacy_shopify import customer_redact
from tests.pages.test_staff_app import app, everything  # noqa: F401 - staff pages under AppTest
from tests.pages.test_view_claim_app import texts, view  # noqa: F401 - View My Claim under AppTest

T = datetime(2026, 12, 7, 1, 30, tzinfo=timezone.utc)  # 20:30 on December 6 in New York
LOCAL = "December 6, 2026 at 20:30 EST"  # T as staff read it
UTC_TIME = re.compile(r"\b01:30\b|\b1:30\s?AM\b|December 7|Dec 7|UTC")


def _new_york(engine) -> None:
    with write_session(engine) as s:
        s.get(StoreSettings, 1).timezone = STORE_TZ


def _claim_filed_at_t(engine, number="1001"):
    built = make_order(engine, number, f"c{number}@example.com", base=T)
    return built, customer.file_claim(engine, claim_request(built, key=f"k-{number}"), now=T)


def test_the_one_formatter_writes_t_in_the_stores_zone():
    assert domain.format_moment(T, STORE_TZ) == LOCAL
    assert domain.format_moment(T, "UTC") == "December 7, 2026 at 01:30 UTC"


# --- 1. View My Claim: the conversation's times ------------------------------------------------

def test_view_my_claim_shows_message_times_in_the_stores_zone(view, engine):  # noqa: F811
    _new_york(engine)
    _b, r = _claim_filed_at_t(engine)
    with write_session(engine) as s:
        s.add(Message(claim_id=r.claim_id, author_kind="staff", author_name="Ana",
                      body="We are looking at it.", created_at=T))
    at = view(r.access_token)
    line = next(x for x in texts(at).splitlines() if x.startswith("Ana · "))
    assert line == "Ana · Dec 6, 8:30\u202fPM" or line == "Ana · Dec 6, 8:30 PM", line
    assert not UTC_TIME.search(line)


# --- 2. The staff audit trail and the evidence pack ----------------------------------------------

def test_audit_trail_lines_are_the_stores_local_time(engine):
    _new_york(engine)
    _b, r = _claim_filed_at_t(engine)
    view = claim_review.claim_for_staff(engine, r.claim_id)
    filed = next(e for e in view.events if e.action == "claim_filed")
    assert filed.at == T
    assert filed.line.startswith(f"{LOCAL} · ")
    assert "claim filed (new → Received)" in filed.line

    flat = _flat(_read(evidence_pack.build(engine, r.claim_id, now=T))[1])
    assert "times UTC" not in flat
    assert _flat(filed.line) in flat


def test_an_event_line_in_a_utc_store_says_utc():
    ev = claim_review.EventView(T, "staff:ana", "note_added", None, None, {}, "UTC")
    assert ev.line == "December 7, 2026 at 01:30 UTC · staff:ana · note added"


# --- 3. Staff pages: Outbox and the Settings tabs ------------------------------------------------

def test_outbox_page_shows_queued_times_in_the_stores_zone(app, engine, monkeypatch):  # noqa: F811
    monkeypatch.delenv("CLAIMS_SMTP_HOST", raising=False)
    _new_york(engine)
    _claim_filed_at_t(engine)
    with write_session(engine) as s:
        s.execute(update(OutboxMessage).values(created_at=T))
    at = app("owner", "views/staff/outbox.py")
    table = at.dataframe[0].value
    assert "Queued (UTC)" not in table.columns
    assert set(table["Queued"]) == {LOCAL}


def test_settings_tabs_show_times_in_the_stores_zone(app, engine, monkeypatch):  # noqa: F811
    monkeypatch.delenv("CLAIMS_SMTP_HOST", raising=False)
    _new_york(engine)
    _b, r = _claim_filed_at_t(engine)
    api_keys.create_key(engine, "help desk", "read", "owner1")
    with write_session(engine) as s:
        s.execute(update(ApiKey).values(last_used_at=T, created_at=T))
        s.execute(update(OutboxMessage).values(status="failed", attempts=8, created_at=T,
                                               last_error="SMTPRecipientsRefused"))
        ep = WebhookEndpoint(url="https://hooks.example.com/x", events="claim.filed",
                             secret="whsec_test")
        s.add(ep)
        s.flush()
        s.add(WebhookDelivery(endpoint_id=ep.id, message_id="msg_1", event_type="claim.filed",
                              claim_id=r.claim_id, payload="{}", created_at=T))
        s.add(InboundMail(message_id="<u1@example.com>", received_at=T, from_addr="x@example.com",
                          subject="Where is it", status="unmatched", reason="no_match",
                          body_text="Hello"))
    at = app("owner", "views/staff/settings.py")
    assert not at.exception, at.exception
    frames = [d.value for d in at.dataframe]
    keys = next(f for f in frames if "Last used" in f.columns)
    assert list(keys["Last used"]) == [LOCAL] and list(keys["Made"]) == ["December 6, 2026"]
    deliveries = next(f for f in frames if "Event" in f.columns and "Queued" in f.columns)
    assert list(deliveries["Queued"]) == [LOCAL]
    failed_mail = next(f for f in frames if "To" in f.columns and "Queued" in f.columns)
    assert set(failed_mail["Queued"]) == {LOCAL}
    labels = [e.label for e in at.expander]
    assert any(label.startswith(f"{LOCAL} · ") and "Where is it" in label for label in labels), labels


# --- 4. What else a person reads: the CLI's key list, a privacy request's receipt ---------------

def test_cli_key_list_shows_last_use_in_the_stores_zone(db_url, engine, monkeypatch, capsys):
    monkeypatch.setenv("DATABASE_URL", db_url)
    _new_york(engine)
    api_keys.create_key(engine, "help desk", "read", "owner1")
    with write_session(engine) as s:
        s.execute(update(ApiKey).values(last_used_at=T))
    assert cli.main(["api-key", "list"]) == 0
    out = capsys.readouterr().out
    assert f"last used {LOCAL}" in out and "2026-12-07" not in out


def test_privacy_request_receipt_says_its_due_day_in_the_stores_calendar(engine):
    _new_york(engine)
    with write_session(engine) as s:
        new, detail = privacy_requests.record(
            s, privacy_requests.parse("customers/redact", customer_redact()), now=T)
        due = s.scalars(select(PrivacyRequest.due_at)).one()
    assert new
    local_due = domain.local_date(due, STORE_TZ)
    assert local_due != due.astimezone(timezone.utc).date()  # the hard hour, really
    assert detail.endswith(f"(due {domain.format_date(local_due)})")
