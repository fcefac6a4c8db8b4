"""Email (outbox + SMTP on loopback), timers, and auto-approve domain."""
from __future__ import annotations

import socket
import threading
from datetime import timedelta
from email import message_from_bytes

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import func, select

from claims_core import cli, domain
from claims_core.adapters import mailer, scheduler
from claims_core.domain import auto_approval as domain_auto_approval
from claims_core.infra.db import write_session
from claims_core.infra.models import (
    Claim,
    Event,
    OutboxMessage,
    Resolution,
    StaffUser,
    StoreSettings,
)
from claims_core.services import auto_approval, claim_views, customer, decisions, notifications
from claims_core.services import settings as store_settings

from tests.conftest import NOW
from tests.support.factories import claim_request, make_order


def outbox(engine):
    with write_session(engine) as s:
        return [(m.kind, m.to_addr, m.status, m.subject) for m in
                s.scalars(select(OutboxMessage).order_by(OutboxMessage.id))]


# --- what gets queued ---------------------------------------------------------------------------

def test_customer_mails_follow_the_claim(engine):
    built = make_order(engine)
    r = customer.file_claim(engine, claim_request(built), now=NOW)
    decisions.request_info(engine, r.claim_id, "staff:t", "Jo", "Photo of the label, please", now=NOW)
    decisions.staff_message(engine, r.claim_id, "staff:t", "Jo", "Thanks!", now=NOW)
    decisions.staff_message(engine, r.claim_id, "staff:t", "Jo", "internal only", internal=True, now=NOW)
    customer.add_customer_message(engine, r.access_token, "here", now=NOW)
    store_settings.update_settings(engine, "test", {"store_credit_bonus_pct": 10})  # the store allows it
    decisions.approve(engine, r.claim_id, "staff:t", [decisions.ResolutionInput("store_credit", 2800, 10)],
                      now=NOW)
    kinds = [k for k, *_ in outbox(engine)]
    assert kinds == ["claim_received", "info_requested", "new_message", "decision"]
    with write_session(engine) as s:
        received = s.scalars(select(OutboxMessage).where(OutboxMessage.kind == "claim_received")).one()
        assert f"my-claim?token={r.access_token}" in received.body_text
        decision = s.scalars(select(OutboxMessage).where(OutboxMessage.kind == "decision")).one()
        code = s.scalars(select(Resolution.store_credit_code)).one()
        assert code in decision.body_text and "$30.80" in decision.body_text


def test_mail_is_written_with_the_event_or_not_at_all(engine, monkeypatch):
    built = make_order(engine)
    from claims_core.domain import AuditAction
    from claims_core.services import handlers

    def boom(*a, **k):
        raise RuntimeError("crash after the outbox row was added")

    table = dict(handlers.EVENT_HANDLERS)
    table[AuditAction.CLAIM_FILED] = (*table[AuditAction.CLAIM_FILED], boom)
    monkeypatch.setattr(handlers, "EVENT_HANDLERS", table)
    with pytest.raises(RuntimeError):
        customer.file_claim(engine, claim_request(built), now=NOW)
    assert outbox(engine) == []


def test_staff_opt_in_new_claim_mail(engine):
    from claims_core.services import accounts
    accounts.add_user(engine, "ann", "agent", "a long password")
    with write_session(engine) as s:
        u = s.scalars(select(StaffUser)).one()
        u.email, u.notify_new_claims = "ann@shop.example", True
    customer.file_claim(engine, claim_request(make_order(engine)), now=NOW)
    assert ("staff_new_claim", "ann@shop.example") in [(k, t) for k, t, *_ in outbox(engine)]


def test_templates_escape_customer_text_and_carry_branding(engine):
    with write_session(engine) as s:
        s.get(StoreSettings, 1).name = "Maple & Co"
    built = make_order(engine)
    r = customer.file_claim(engine, claim_request(built), now=NOW)
    decisions.staff_message(engine, r.claim_id, "staff:t", "Jo", "<script>alert(1)</script> & more", now=NOW)
    with write_session(engine) as s:
        m = s.scalars(select(OutboxMessage).where(OutboxMessage.kind == "new_message")).one()
    assert "<script>" not in m.body_html and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in m.body_html
    assert "<script>alert(1)</script> & more" in m.body_text  # plain text stays as written
    assert "Maple &amp; Co" in m.body_html and "Maple & Co" in m.body_text


# --- SMTP on loopback ---------------------------------------------------------------------------

class Inbox:
    def __init__(self, refuse: bool = False):
        self.messages, self.refuse = [], refuse

    async def handle_DATA(self, server, session, envelope):
        if self.refuse:
            return "550 mailbox unavailable"
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


@pytest.fixture
def smtp_server():
    servers = []

    def start(refuse=False):
        inbox = Inbox(refuse)
        from tests.conftest import _free_port
        port = _free_port()
        ctl = Controller(inbox, hostname="127.0.0.1", port=port)
        ctl.start()
        servers.append(ctl)
        return inbox, mailer.SmtpConfig(host="127.0.0.1", port=port, starttls=False,
                                        sender="claims@shop.example", timeout=3)
    yield start
    for ctl in servers:
        ctl.stop()


def test_delivered_over_smtp_once(engine, smtp_server):
    inbox, cfg = smtp_server()
    built = make_order(engine)
    r = customer.file_claim(engine, claim_request(built), now=NOW)
    assert mailer.send_pending(engine, cfg, now=NOW)["sent"] == 1
    assert mailer.send_pending(engine, cfg, now=NOW + timedelta(hours=1))["sent"] == 0
    [msg] = inbox.messages
    assert msg["To"] == "sam@example.com" and r.reference in msg["Subject"]
    parts = {p.get_content_type(): p.get_payload(decode=True).decode() for p in msg.walk()
             if not p.is_multipart()}
    assert r.access_token in parts["text/plain"] and "<a href=" in parts["text/html"]
    assert outbox(engine)[0][2] == "sent"


def test_refusal_keeps_the_message_queued_then_retries(engine, smtp_server):
    inbox, cfg = smtp_server(refuse=True)
    customer.file_claim(engine, claim_request(make_order(engine)), now=NOW)
    assert mailer.send_pending(engine, cfg, now=NOW) == {"sent": 0, "retry": 1, "failed": 0, "skipped": 0}
    with write_session(engine) as s:
        m = s.scalars(select(OutboxMessage)).one()
        assert (m.status, m.attempts) == ("pending", 1) and "550" in m.last_error
        assert m.next_attempt_at > NOW
    assert mailer.send_pending(engine, cfg, now=NOW)["retry"] == 0  # not due yet: backoff
    inbox.refuse = False
    assert mailer.send_pending(engine, cfg, now=NOW + timedelta(minutes=5))["sent"] == 1
    assert len(inbox.messages) == 1


def test_timeout_keeps_the_message_queued(engine):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(5)  # accepts, never answers
    try:
        cfg = mailer.SmtpConfig(host="127.0.0.1", port=silent.getsockname()[1], starttls=False,
                                timeout=1)
        customer.file_claim(engine, claim_request(make_order(engine)), now=NOW)
        assert mailer.send_pending(engine, cfg, now=NOW)["retry"] == 1
        assert outbox(engine)[0][2] == "pending"
    finally:
        silent.close()


def test_gives_up_after_max_attempts(engine, smtp_server):
    inbox, cfg = smtp_server(refuse=True)
    customer.file_claim(engine, claim_request(make_order(engine)), now=NOW)
    t = NOW
    for _ in range(mailer.MAX_ATTEMPTS):
        mailer.send_pending(engine, cfg, now=t)
        t += timedelta(hours=7)
    assert outbox(engine)[0][2] == "failed"


def test_two_senders_at_once_send_each_message_once(engine, smtp_server):
    inbox, cfg = smtp_server()
    for i in range(10):
        b = make_order(engine, f"M{i}", f"m{i}@example.com", tracking_prefix=f"M{i}")
        customer.file_claim(engine, claim_request(b, key=f"m{i}"), now=NOW)
    threads = [threading.Thread(target=mailer.send_pending, args=(engine, cfg), kwargs={"now": NOW})
               for _ in range(2)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert sorted(m["To"] for m in inbox.messages) == sorted(f"m{i}@example.com" for i in range(10))


def test_no_smtp_configured_leaves_the_outbox_for_the_staff_page(engine, monkeypatch):
    for k in ("CLAIMS_SMTP_HOST",):
        monkeypatch.delenv(k, raising=False)
    assert mailer.smtp_from_env() is None
    customer.file_claim(engine, claim_request(make_order(engine)), now=NOW)
    assert mailer.send_pending(engine, None, now=NOW)["skipped"] == 1
    assert [r.status for r in notifications.list_outbox(engine)] == ["pending"]


# --- timers -------------------------------------------------------------------------------------

@pytest.fixture
def waiting_claim(engine):
    built = make_order(engine)
    r = customer.file_claim(engine, claim_request(built), now=NOW)
    decisions.request_info(engine, r.claim_id, "staff:t", "Jo", "The label please", now=NOW)
    return r


def _status(engine, cid):
    with write_session(engine) as s:
        return s.get(Claim, cid).status


def test_one_reminder_then_closed(engine, waiting_claim):
    r = waiting_claim
    rep = scheduler.tick(engine, now=NOW + timedelta(days=4, hours=23))
    assert rep.reminded == [] and rep.closed == []
    rep = scheduler.tick(engine, now=NOW + timedelta(days=5))
    assert rep.reminded == [r.reference]
    assert scheduler.tick(engine, now=NOW + timedelta(days=6)).reminded == []  # only one reminder
    assert [k for k, *_ in outbox(engine)].count("reminder") == 1
    rep = scheduler.tick(engine, now=NOW + timedelta(days=10))
    assert rep.closed == [r.reference] and _status(engine, r.claim_id) == "closed"
    with write_session(engine) as s:
        ev = s.scalars(select(Event).where(Event.action == "auto_closed")).one()
        assert (ev.actor, ev.from_status, ev.to_status) == ("system", "needs_info", "closed")


def test_reply_reopens_an_auto_closed_claim_within_the_window(engine, waiting_claim):
    r = waiting_claim
    scheduler.tick(engine, now=NOW + timedelta(days=10))
    view = customer.add_customer_message(engine, r.access_token, "Sorry, here it is",
                                         now=NOW + timedelta(days=11))
    assert view.status == "in_review"


def test_reply_after_the_window_does_not_reopen(engine, waiting_claim):
    r = waiting_claim
    scheduler.tick(engine, now=NOW + timedelta(days=10))
    view = customer.add_customer_message(engine, r.access_token, "late", now=NOW + timedelta(days=40))
    assert view.status == "closed"  # shipped 10 days before NOW: the 45-day window is over


def test_two_ticks_at_once_do_each_thing_once(engine, waiting_claim):
    at = NOW + timedelta(days=5)
    threads = [threading.Thread(target=scheduler.tick, args=(engine,), kwargs={"now": at}) for _ in range(2)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert [k for k, *_ in outbox(engine)].count("reminder") == 1
    with write_session(engine) as s:
        assert s.scalar(select(func.count()).select_from(Event).where(Event.action == "reminder_sent")) == 1


def test_daily_digest_once_a_day(engine, waiting_claim):
    from claims_core.services import accounts
    accounts.add_user(engine, "boss", "owner", "a long password")
    with write_session(engine) as s:
        u = s.scalars(select(StaffUser)).one()
        u.email, u.daily_digest = "boss@shop.example", True
    assert scheduler.tick(engine, now=NOW).digests == 1
    assert scheduler.tick(engine, now=NOW + timedelta(hours=1)).digests == 0
    with write_session(engine) as s:
        d = s.scalars(select(OutboxMessage).where(OutboxMessage.kind == "staff_digest")).one()
        assert "Waiting on customers: 1" in d.body_text


def test_daily_digest_goes_out_at_the_owners_hour_of_the_stores_day(engine, waiting_claim):
    """The digest waits for the owner's hour in the store's time zone, and goes once per local
    day (not per UTC day: 22:00 in New York is already tomorrow in UTC)."""
    from datetime import datetime, timezone

    from claims_core.services import accounts
    accounts.add_user(engine, "boss", "owner", "a long password")
    store_settings.update_settings(engine, "test", {"timezone": "America/New_York", "digest_hour": 9})
    with write_session(engine) as s:
        u = s.scalars(select(StaffUser)).one()
        u.email, u.daily_digest = "boss@shop.example", True
    day = datetime(2026, 11, 23, tzinfo=timezone.utc)
    assert scheduler.tick(engine, now=day + timedelta(hours=13, minutes=55)).digests == 0  # 08:55
    assert scheduler.tick(engine, now=day + timedelta(hours=14, minutes=5)).digests == 1  # 09:05
    assert scheduler.tick(engine, now=day + timedelta(hours=27)).digests == 0  # 22:00, same day
    assert scheduler.tick(engine, now=day + timedelta(hours=38)).digests == 1  # 09:00 next day


def test_tick_command(engine, db_url, monkeypatch, capsys):
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.delenv("CLAIMS_SMTP_HOST", raising=False)
    assert cli.main(["tick"]) == 0
    assert '"reminded": []' in capsys.readouterr().out


# --- auto-approve rules -------------------------------------------------------------------------

RULE = auto_approval.RuleSpec("small & first", max_cents=5000, quiet_months=12)


def facts(**kw):
    base = dict(claimed_cents=4999, issue_type="damaged", desired_resolution="refund",
                photo_count=1, months_since_last_claim=None)
    base.update(kw)
    return domain_auto_approval.ClaimFacts(**base)


@pytest.mark.parametrize("kw,ok", [
    ({}, True),
    ({"claimed_cents": 5000}, False),            # "under $50": $50.00 is not under
    ({"claimed_cents": 4999}, True),
    ({"photo_count": 0}, False),                 # damaged needs photos
    ({"issue_type": "lost", "photo_count": 0}, True),  # lost doesn't
    ({"months_since_last_claim": 11.9}, False),
    ({"months_since_last_claim": 12.0}, True),
    ({"desired_resolution": "reshipment"}, False),
    ({"desired_resolution": "store_credit"}, True),
])
def test_rule_conditions_at_their_edges(kw, ok):
    assert domain_auto_approval.rule_matches(RULE, facts(**kw))[0] is ok


def test_issue_type_condition():
    rule = auto_approval.RuleSpec("lost only", 10_000, issue_types=("lost",))
    assert not domain_auto_approval.rule_matches(rule, facts())[0]
    assert domain_auto_approval.rule_matches(rule, facts(issue_type="lost"))[0]


def test_rule_approves_at_filing_names_itself_and_can_be_undone(engine):
    auto_approval.save_rule(engine, "staff:boss", RULE)
    built = make_order(engine)
    r = customer.file_claim(engine, claim_request(built, resolution="store_credit"), now=NOW)
    view = claim_views.get_claim_for_customer(engine, r.access_token)
    assert view.status == "approved" and view.resolutions[0].store_credit_code
    with write_session(engine) as s:
        ev = s.scalars(select(Event).where(Event.action == "approved")).one()
        assert ev.actor == "rule:small & first" and '"rule": "small & first"' in ev.details
    decisions.undo_approval(engine, r.claim_id, "staff:boss", "Photo looks reused")
    view = claim_views.get_claim_for_customer(engine, r.access_token)
    assert view.status == "in_review" and view.resolutions == ()
    # the second claim from this email within 12 months is left for staff
    r2 = customer.file_claim(engine, claim_request(built, key="k2", items={built.items[(0, "TOTE")]: 1},
                                                   resolution="refund"), now=NOW + timedelta(days=1))
    assert claim_views.get_claim_for_customer(engine, r2.access_token).status == "submitted"


def test_inactive_rules_and_big_claims_are_left_alone(engine):
    rid = auto_approval.save_rule(engine, "staff:boss", auto_approval.RuleSpec("tiny", 100))
    built = make_order(engine)
    r = customer.file_claim(engine, claim_request(built), now=NOW)  # $28 is not under $1
    assert claim_views.get_claim_for_customer(engine, r.access_token).status == "submitted"
    auto_approval.set_rule_active(engine, "staff:boss", rid, False)
    with pytest.raises(domain.InvalidInput):
        auto_approval.save_rule(engine, "staff:boss", auto_approval.RuleSpec("tiny", 100))
    with pytest.raises(domain.InvalidInput):
        auto_approval.save_rule(engine, "staff:boss", auto_approval.RuleSpec("bad", 0))
