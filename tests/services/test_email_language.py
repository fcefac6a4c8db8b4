"""Mails to customers speak the claim's language (``Claim.language``): words from the catalogs,
amounts and dates as that language writes them, links that open the claim page in it. Staff mails
stay English.

German words need the German catalog (translators fill it later); the pseudo-language ``qps``
rewrites every catalog message (⟦…⟧), so it shows now that no sentence bypasses the catalogs.
"""
from __future__ import annotations

import dataclasses
import json
import re
from datetime import timedelta

from sqlalchemy import select

from claims_core.domain import AuditAction
from claims_core.infra import i18n
from claims_core.infra.db import read_session, write_session
from claims_core.infra.models import Claim, Event, OutboxMessage, StaffUser
from claims_core.services import customer, decisions, notifications
from claims_core.services.decisions import ResolutionInput

from tests.conftest import NOW
from tests.support.factories import claim_request, make_order

NOTE = "One mug arrived intact in the second box."


def file_in(engine, lang: str, number="1001", email="sam@example.com"):
    """A claim filed in ``lang``: by the request when it carries a language. A claim keeps only a
    language the portal speaks (the pseudo-language is stored as English), so otherwise its
    language is set right after filing and its 'received' mail written again in it."""
    built = make_order(engine, number=number, email=email)
    kw = {"language": lang} if "language" in {f.name for f in
                                              dataclasses.fields(customer.ClaimRequest)} else {}
    r = customer.file_claim(engine, claim_request(built, key=f"k-{number}", **kw), now=NOW)
    with write_session(engine) as s:
        claim = s.get(Claim, r.claim_id)
        if claim.language == lang:
            return r
        claim.language = lang
        for mail in s.scalars(select(OutboxMessage).where(OutboxMessage.dedupe_key ==
                                                          f"received:{claim.id}")):
            s.delete(mail)
        s.flush()
        ev = s.scalars(select(Event).where(Event.claim_id == claim.id,
                                           Event.action == AuditAction.CLAIM_FILED)).one()
        notifications.on_claim_filed(s, ev, claim)
    return r


def mails(engine, claim_id) -> dict[str, OutboxMessage]:
    with read_session(engine) as s:
        rows = s.scalars(select(OutboxMessage).where(OutboxMessage.claim_id == claim_id)
                         .order_by(OutboxMessage.id)).all()
        for m in rows:
            s.expunge(m)
    return {m.kind: m for m in rows}


def currency_of(engine, claim_id) -> str:
    with read_session(engine) as s:
        return s.get(Claim, claim_id).order.currency


def run_handler(engine, claim_id, handler, waiting_since=1):
    """A reminder / auto-close as the timers send them (the handler with an event in memory)."""
    with write_session(engine) as s:
        claim = s.get(Claim, claim_id)
        ev = Event(claim_id=claim_id, actor="system", at=NOW + timedelta(days=3), action="x",
                   details=json.dumps({"waiting_since_event": waiting_since}))
        handler(s, ev, claim)


def paragraphs(mail: OutboxMessage) -> list[str]:
    return mail.body_text.split("\n\n")


# --- links --------------------------------------------------------------------------------------

def test_claim_link_carries_the_language():
    assert notifications.claim_link("abc").endswith("/my-claim?token=abc")  # callers without one
    assert notifications.claim_link("abc", "de").endswith("/my-claim?token=abc&lang=de")
    assert notifications.claim_link("abc", "de-AT").endswith("&lang=de")
    assert notifications.claim_link("abc", "xx").endswith("&lang=en")


# --- German -------------------------------------------------------------------------------------

def test_german_claim_mails_format_amounts_dates_and_links_in_german(engine):
    de = i18n.translator("de")
    r = file_in(engine, "de")
    decisions.approve(engine, r.claim_id, "staff:1", [ResolutionInput("refund", 1250)],
                      now=NOW + timedelta(days=1), note=NOTE)
    out = mails(engine, r.claim_id)
    currency = currency_of(engine, r.claim_id)

    received, decision = out["claim_received"], out["decision"]
    assert de.date(NOW.date()) in received.body_text  # "21. November 2026"
    assert "November 21, 2026" not in received.body_text
    amount = de.money(1250, currency)  # "12,50 $"
    assert re.search(r"12,50\s", amount)
    assert amount in decision.body_text and "$12.50" not in decision.body_text
    assert NOTE in decision.body_text  # the staff's note is passed on as written
    for mail in (received, decision):
        assert f"my-claim?token={r.access_token}&lang=de" in mail.body_text
        assert f"token={r.access_token}&amp;lang=de" in mail.body_html
        assert 'lang="de"' in mail.body_html
        assert r.reference in mail.subject


# The German catalog: not one English sentence left in the mail.
def test_german_claim_mails_are_written_in_german(engine):
    r = file_in(engine, "de")
    decisions.approve(engine, r.claim_id, "staff:1", [ResolutionInput("refund", 1250)],
                      now=NOW + timedelta(days=1), note=NOTE)
    decision = mails(engine, r.claim_id)["decision"]
    assert decision.subject != f"A decision on your claim {r.reference}"
    assert "Good news: your claim was approved." not in decision.body_text
    assert "View your claim" not in decision.body_text and "View your claim" not in decision.body_html


# --- every sentence through the catalogs (pseudo-language) --------------------------------------

WRAPPED = re.compile(r"⟦.*⟧", re.S)


def assert_translated(mail: OutboxMessage, *data: str) -> None:
    """The subject and every paragraph came from a catalog, except the customer's or store's own
    data (``data``: whole paragraphs written by people) and the footer (store name and address)."""
    assert WRAPPED.fullmatch(mail.subject), mail.subject
    *body, footer = paragraphs(mail)
    assert footer.startswith("— ")
    for para in body:
        assert WRAPPED.fullmatch(para) or para in data, (mail.kind, para)
    assert 'lang="qps"' in mail.body_html
    assert re.search(r">⟦[^<]*⟧</a>", mail.body_html), "the button's text"


def test_every_customer_mail_is_translated(engine):
    en = i18n.translator("en")
    assert i18n.supported("qps") == "qps"
    r = file_in(engine, "qps")
    decisions.request_info(engine, r.claim_id, "staff:t", "Jo", "Photo of the label, please", now=NOW)
    decisions.staff_message(engine, r.claim_id, "staff:t", "Jo", "Thanks!", now=NOW)
    run_handler(engine, r.claim_id, notifications.on_reminder)
    run_handler(engine, r.claim_id, notifications.on_auto_closed)
    customer.add_customer_message(engine, r.access_token, "here", now=NOW)
    decisions.approve(engine, r.claim_id, "staff:1", [ResolutionInput("refund", 1250)],
                      now=NOW + timedelta(days=1), note=NOTE)
    out = mails(engine, r.claim_id)
    assert set(out) == {"claim_received", "info_requested", "new_message", "reminder",
                        "auto_closed", "decision"}
    for mail in out.values():
        assert_translated(mail, "Photo of the label, please", "Thanks!")
        assert f"token={r.access_token}&lang=qps" in mail.body_text
        assert r.reference in mail.subject or mail.kind in ("info_requested", "reminder")
    received, decision = out["claim_received"], out["decision"]
    assert r.reference in received.body_text and en.date(NOW.date()) in received.body_text
    money = i18n.translator("qps").money(1250, currency_of(engine, r.claim_id))
    assert money in decision.body_text and NOTE in decision.body_text


def test_denial_and_store_credit_are_translated(engine):
    r = file_in(engine, "qps")
    decisions.deny(engine, r.claim_id, "staff:t", "not_covered", now=NOW)
    denied = mails(engine, r.claim_id)["decision"]
    assert_translated(denied)
    assert "This problem" not in denied.body_text  # the explanation went through the catalogs

    from claims_core.services import settings as store_settings
    store_settings.update_settings(engine, "test", {"store_credit_bonus_pct": 10})
    r2 = file_in(engine, "qps", number="1002", email="kim@example.com")
    codes = decisions.approve(engine, r2.claim_id, "staff:t",
                              [ResolutionInput("store_credit", 2800, 10)], now=NOW)
    credit = mails(engine, r2.claim_id)["decision"]
    assert_translated(credit)
    money = i18n.translator("qps").money(3080, currency_of(engine, r2.claim_id))  # with the bonus
    assert money in credit.body_text and codes[0] in credit.body_text


def test_decision_updated_is_translated(engine):
    r = file_in(engine, "qps")
    decisions.approve(engine, r.claim_id, "staff:1", [ResolutionInput("refund", 2800)], now=NOW)
    with write_session(engine) as s:  # the first decision mail went out
        s.scalars(select(OutboxMessage).where(OutboxMessage.kind == "decision")).one().status = "sent"
    decisions.undo_approval(engine, r.claim_id, "staff:1", "wrong amount", now=NOW)
    decisions.deny(engine, r.claim_id, "staff:1", "other", "The mug arrived whole.", now=NOW)
    updated = mails(engine, r.claim_id)["decision_updated"]
    assert updated.dedupe_key.startswith(f"decision:{r.claim_id}:")
    assert_translated(updated, "The mug arrived whole.")  # "other": the note is the reason
    assert "The mug arrived whole." in updated.body_text  # the staff's note, as written


# --- English and staff --------------------------------------------------------------------------

def test_english_mails_read_as_before_and_staff_mails_stay_english(engine):
    with write_session(engine) as s:
        s.add(StaffUser(username="ann", role="agent", password_hash="x", email="ann@shop.example",
                        notify_new_claims=True, active=True))
    r = file_in(engine, "en")
    decisions.approve(engine, r.claim_id, "staff:1", [ResolutionInput("refund", 1250)],
                      now=NOW, note=NOTE)
    out = mails(engine, r.claim_id)
    assert out["claim_received"].subject == f"We received your claim {r.reference}"
    assert "Filed on November 21, 2026." in out["claim_received"].body_text
    assert out["decision"].subject == f"A decision on your claim {r.reference}"
    assert paragraphs(out["decision"])[:3] == [
        "Good news: your claim was approved.",
        "Refund of $12.50 to your original payment method.",
        f"Why this amount: {NOTE}"]
    assert f"View your claim: {notifications.public_url()}/my-claim?token={r.access_token}&lang=en" \
        in out["decision"].body_text

    q = file_in(engine, "qps", number="1002", email="kim@example.com")
    staff = mails(engine, q.claim_id)["staff_new_claim"]
    assert staff.subject.startswith("New claim ") and "⟦" not in staff.body_text + staff.subject
