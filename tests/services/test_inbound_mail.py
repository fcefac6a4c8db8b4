"""Email replies become messages on the claim: a real IMAP server (pymap) and SMTP catcher
(aiosmtpd), mails shaped like Gmail's, Outlook's and Apple Mail's in four languages."""
from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from datetime import timedelta
from email import message_from_bytes
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from imap_tools import AND, MailBoxUnencrypted
from sqlalchemy import select

from claims_core import domain
from claims_core.adapters import inbound_mail, mailer, scheduler
from claims_core.domain import email_replies
from claims_core.infra.db import write_session
from claims_core.infra.models import Claim, Event, InboundMail, OutboxMessage
from claims_core.services import claim_views, customer, decisions
from claims_core.services import inbound_mail as inbound_service

from tests.support import mail_fixtures as mails
from tests.conftest import NOW, _free_port
from tests.support.factories import jpeg_bytes, make_order
from tests.support.factories import claim_request

SHOP = "claims@shop.example"
USER, PASSWORD = "shopbox", "imap-test-password"
LATER = NOW + timedelta(hours=1)


# --- servers -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def imap_port():
    """pymap on a free port (in-memory mailboxes), stopped at the end."""
    port = _free_port()
    exe = Path(sys.executable).with_name("pymap")
    cmd = [str(exe) if exe.exists() else "pymap", "--host", "127.0.0.1", "--port", str(port),
           "--no-tls", "dict", "--demo-data", "--demo-user", USER, "--demo-password", PASSWORD]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                proc.kill()
                raise RuntimeError("pymap did not start")
            time.sleep(0.1)
    yield port
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


def _box(port):
    return MailBoxUnencrypted("127.0.0.1", port).login(USER, PASSWORD)


@pytest.fixture
def imap(imap_port, monkeypatch, tmp_path):
    """An empty INBOX (the demo mail removed) and the app pointed at it."""
    with _box(imap_port) as box:
        for folder in ("INBOX", "Processed"):
            if box.folder.exists(folder):
                box.folder.set(folder)
                uids = box.uids()
                if uids:
                    box.delete(uids)
    for k, v in {"CLAIMS_IMAP_HOST": "127.0.0.1", "CLAIMS_IMAP_PORT": str(imap_port),
                 "CLAIMS_IMAP_USER": USER, "CLAIMS_IMAP_PASSWORD": PASSWORD,
                 "CLAIMS_IMAP_SSL": "0", "CLAIMS_IMAP_FOLDER": "INBOX",
                 "CLAIMS_REPLY_TO": SHOP, "CLAIMS_SMTP_FROM": SHOP,
                 "CLAIMS_SECRETS_FILE": str(tmp_path / "none.toml")}.items():
        monkeypatch.setenv(k, v)

    class Imap:
        port = imap_port

        @staticmethod
        def append(raw: bytes) -> None:
            with _box(imap_port) as box:
                box.append(raw, "INBOX")

        @staticmethod
        def poll(engine, now=LATER):
            return inbound_mail.poll_mailbox(engine, now=now)
    return Imap


class Inbox:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


@pytest.fixture
def smtp():
    inbox = Inbox()
    ctl = Controller(inbox, hostname="127.0.0.1", port=_free_port())
    ctl.start()
    yield inbox, mailer.SmtpConfig(host="127.0.0.1", port=ctl.port, starttls=False, sender=SHOP,
                                   timeout=3)
    ctl.stop()


# --- helpers -------------------------------------------------------------------------------------

def _file(engine, number="1001", email="sam@example.com", waiting=True):
    built = make_order(engine, number=number, email=email)
    r = customer.file_claim(engine, claim_request(built, key=f"k-{number}"), now=NOW)
    if waiting:
        decisions.request_info(engine, r.claim_id, "staff:t", "Jo", "The label please",
                               now=NOW + timedelta(minutes=5))
    return r


def _reply_to(engine, claim_id) -> str:
    with write_session(engine) as s:
        return s.scalars(select(OutboxMessage.reply_to).where(OutboxMessage.claim_id == claim_id,
                                                              OutboxMessage.reply_to != "")).first()


def _claim(engine, claim_id):
    with write_session(engine) as s:
        c = s.get(Claim, claim_id)
        msgs = [(m.author_kind, m.body) for m in c.messages]
        return c.status, msgs, len(c.evidence)


def _inbound(engine):
    with write_session(engine) as s:
        return [(r.status, r.reason, r.claim_id) for r in s.scalars(select(InboundMail)
                                                                    .order_by(InboundMail.id))]


# --- the reply address ----------------------------------------------------------------------------

def test_reply_token_is_signed_short_and_survives_lower_casing():
    key = b"k" * 32
    token = email_replies.reply_token(1234, key)
    assert len(token) <= 20 and token == token.lower() and token.replace("-", "").isalnum()
    addr = email_replies.reply_address(SHOP, token)
    assert addr == f"claims+{token}@shop.example"
    assert email_replies.token_in(addr.upper(), SHOP) == token.lower()
    assert email_replies.claim_id_from_token(token.upper(), key) == 1234
    # another claim's number with this MAC, or another key: refused
    other = f"{email_replies._b36(1235)}-{token.split('-')[1]}"
    assert email_replies.claim_id_from_token(other, key) is None
    assert email_replies.claim_id_from_token(token, b"x" * 32) is None
    assert email_replies.token_in("claims+abc@other.example", SHOP) is None
    assert email_replies.token_in("sales+abc@shop.example", SHOP) is None


def test_every_customer_mail_carries_the_claims_reply_address(engine, smtp, imap):
    inbox, cfg = smtp
    r = _file(engine)
    assert mailer.send_pending(engine, cfg, now=LATER)["sent"] == 2  # received + info requested
    for em in inbox.messages:
        token = email_replies.token_in(em["Reply-To"], SHOP)
        assert token and em["Auto-Submitted"] == "auto-generated"
        with write_session(engine) as s:
            from claims_core.services import mail_tokens
            assert email_replies.claim_id_from_token(token, mail_tokens.reply_key(s)) == r.claim_id
    with write_session(engine) as s:
        stored = set(s.scalars(select(OutboxMessage.message_id)))
    assert {em["Message-ID"] for em in inbox.messages} == stored
    assert all(m.endswith("@shop.example>") for m in stored)


def test_staff_mail_has_no_customer_reply_address(engine, monkeypatch):
    from claims_core.infra.models import StaffUser
    from claims_core.services import accounts
    monkeypatch.setenv("CLAIMS_REPLY_TO", SHOP)
    accounts.add_user(engine, "ann", "agent", "a long password")
    with write_session(engine) as s:
        u = s.scalars(select(StaffUser)).one()
        u.email, u.notify_new_claims = "ann@shop.example", True
    _file(engine, waiting=False)
    with write_session(engine) as s:
        rows = {(m.kind, bool(m.reply_to)) for m in s.scalars(select(OutboxMessage))}
    assert ("claim_received", True) in rows and ("staff_new_claim", False) in rows


# --- replies from real clients ------------------------------------------------------------------

@pytest.mark.parametrize("lang", ["en", "es", "fr", "de"])
@pytest.mark.parametrize("style", ["gmail", "outlook", "apple"])
def test_a_reply_in_any_client_and_language_lands_on_the_claim_as_new_text(engine, imap, style,
                                                                           lang):
    r = _file(engine)
    raw, new_text = mails.client_reply(style, lang, sender="sam@example.com",
                                       to=_reply_to(engine, r.claim_id), ref=r.reference)
    imap.append(raw)
    assert imap.poll(engine)["attached"] == 1
    status, msgs, _ = _claim(engine, r.claim_id)
    assert msgs[-1] == ("customer", new_text)  # no quote, no signature, no attribution
    assert status == "in_review"  # waiting for information → back in review


def test_the_reply_is_recorded_as_the_page_records_it(engine, imap):
    r = _file(engine)
    imap.append(mails.plain(sender="Sam@Example.com", to=_reply_to(engine, r.claim_id).upper(),
                            text="Here it is"))
    imap.poll(engine)
    with write_session(engine) as s:
        evs = [(e.action, e.actor, e.from_status, e.to_status, json.loads(e.details or "{}").get("via"))
               for e in s.scalars(select(Event).where(Event.claim_id == r.claim_id)
                                  .order_by(Event.id))][-2:]
    assert evs == [("customer_message", "customer", None, None, "email"),
                   ("customer_replied", "customer", "needs_info", "in_review", None)]
    view = claim_views.get_claim_for_customer(engine, r.access_token)
    assert view.messages[-1].body == "Here it is" and view.status == "in_review"


def test_html_only_reply_becomes_text(engine, imap):
    r = _file(engine)
    raw, text = mails.html_only_reply(sender="sam@example.com", to=_reply_to(engine, r.claim_id))
    imap.append(raw)
    imap.poll(engine)
    assert _claim(engine, r.claim_id)[1][-1] == ("customer", text)


def test_photo_goes_through_the_pipeline_and_other_files_are_refused(engine, imap):
    r = _file(engine)
    imap.append(mails.with_attachments(
        sender="sam@example.com", to=_reply_to(engine, r.claim_id), text="Photo of the label.",
        files=[("label.jpg", "image/jpeg", jpeg_bytes(seed=3)),
               ("invoice.pdf", "application/pdf", b"%PDF-1.4 not a photo"),
               ("fake.png", "image/png", b"not really a png")]))
    assert imap.poll(engine)["attached"] == 1
    status, msgs, photos = _claim(engine, r.claim_id)
    assert photos == 2  # the claim's own + the mailed one
    assert msgs[-3] == ("customer", "Photo of the label.")
    notes = [b for k, b in msgs[-2:] if k == "system"]
    assert len(notes) == 2 and notes[0].startswith("invoice.pdf:") and notes[1].startswith("fake.png:")
    with write_session(engine) as s:
        ev = s.scalars(select(Claim).where(Claim.id == r.claim_id)).one().evidence[-1]
        assert ev.content_type == "image/jpeg" and ev.message_id is not None  # re-encoded, linked


def test_refusal_note_is_in_the_customers_language(engine, imap):
    built = make_order(engine)
    req = claim_request(built, key="de-1")
    req.language = "de"
    r = customer.file_claim(engine, req, now=NOW)
    decisions.request_info(engine, r.claim_id, "staff:t", "Jo", "Etikett bitte", now=NOW)
    imap.append(mails.with_attachments(sender="sam@example.com", to=_reply_to(engine, r.claim_id),
                                       text="Anbei.", files=[("a.pdf", "application/pdf", b"x")]))
    imap.poll(engine)
    note = _claim(engine, r.claim_id)[1][-1]
    assert note[0] == "system" and note[1].startswith("a.pdf:") and "photos" not in note[1]


def test_photos_by_email_outside_an_information_request_are_not_added(engine, imap):
    r = _file(engine, waiting=False)
    imap.append(mails.with_attachments(sender="sam@example.com", to=_reply_to(engine, r.claim_id),
                                       text="One more.", files=[("b.jpg", "image/jpeg", jpeg_bytes())]))
    imap.poll(engine)
    status, msgs, photos = _claim(engine, r.claim_id)
    assert photos == 1 and msgs[-2] == ("customer", "One more.")
    assert msgs[-1][0] == "system" and msgs[-1][1].startswith("b.jpg:")
    assert status == "submitted"


def test_reply_reopens_an_auto_closed_claim_within_the_window_then_is_a_message(engine, imap):
    r = _file(engine)
    scheduler.tick(engine, now=NOW + timedelta(days=11))
    assert _claim(engine, r.claim_id)[0] == "closed"
    to = _reply_to(engine, r.claim_id)
    imap.append(mails.plain(sender="sam@example.com", to=to, text="Sorry, I was away."))
    imap.poll(engine, now=NOW + timedelta(days=12))
    assert _claim(engine, r.claim_id)[0] == "in_review"
    with write_session(engine) as s:
        assert s.scalars(select(Event.action).where(Event.claim_id == r.claim_id)
                         .order_by(Event.id.desc())).first() == "reopened_by_customer"
    imap.append(mails.plain(sender="sam@example.com", to=to, text="And one more thing."))
    imap.poll(engine, now=NOW + timedelta(days=12, hours=1))
    status, msgs, _ = _claim(engine, r.claim_id)
    assert status == "in_review" and msgs[-1] == ("customer", "And one more thing.")


def test_long_reply_is_capped(engine, imap):
    r = _file(engine)
    imap.append(mails.plain(sender="sam@example.com", to=_reply_to(engine, r.claim_id),
                            text="word " * 2000))
    imap.poll(engine)
    body = _claim(engine, r.claim_id)[1][-1][1]
    assert len(body) == domain.MAX_COMMENT_CHARS and body.endswith("…")


# --- matching -------------------------------------------------------------------------------------

def test_reply_without_token_matches_by_thread_only_from_the_claims_email(engine, imap, smtp):
    inbox, cfg = smtp
    r = _file(engine)
    mailer.send_pending(engine, cfg, now=LATER)
    ours = inbox.messages[-1]["Message-ID"]
    imap.append(mails.plain(sender="SAM@example.com", to="support@shop.example",
                            text="Answer by thread", in_reply_to=ours))
    imap.append(mails.plain(sender="mallory@evil.example", to="support@shop.example",
                            text="Not the customer", in_reply_to=ours))
    out = imap.poll(engine)
    assert (out["attached"], out["unmatched"]) == (1, 1)
    assert _claim(engine, r.claim_id)[1][-1] == ("customer", "Answer by thread")
    assert _inbound(engine) == [("attached", "thread", r.claim_id), ("unmatched", "no_match", None)]


def test_forged_token_and_strangers_mail_are_left_for_staff(engine, imap):
    r = _file(engine)
    real = email_replies.token_in(_reply_to(engine, r.claim_id), SHOP)
    forged = f"{email_replies._b36(r.claim_id + 1)}-{real.split('-')[1]}"
    imap.append(mails.plain(sender="sam@example.com", to=f"claims+{forged}@shop.example",
                            text="forged"))
    imap.append(mails.plain(sender="who@stranger.example", to=SHOP, text="Do you sell hats?"))
    out = imap.poll(engine)
    assert out["unmatched"] == 2
    assert [x[:2] for x in _inbound(engine)] == [("unmatched", "forged_token"), ("unmatched", "no_match")]
    assert _claim(engine, r.claim_id)[1][-1][0] != "customer"
    listed = inbound_service.list_unmatched(engine)
    assert {u.body_text for u in listed} == {"forged", "Do you sell hats?"}


def test_staff_attach_or_discard_unmatched_mail(engine, imap):
    r = _file(engine)
    imap.append(mails.with_attachments(sender="other@family.example", to=SHOP, text="From my wife's account",
                                       files=[("c.jpg", "image/jpeg", jpeg_bytes(seed=9))]))
    imap.append(mails.plain(sender="spam@spam.example", to=SHOP, text="Buy now"))
    imap.poll(engine)
    first, second = sorted(inbound_service.list_unmatched(engine), key=lambda u: u.id)
    with pytest.raises(domain.ClaimRuleError) as e:
        inbound_mail.attach_unmatched(engine, first.id, "CLM-NOPE00", "staff:jo", now=LATER)
    assert e.value.code == domain.ErrorCode.CLAIM_NOT_FOUND
    out = inbound_mail.attach_unmatched(engine, first.id, r.reference.lower(), "staff:jo", now=LATER)
    assert out.status == "attached"
    status, msgs, photos = _claim(engine, r.claim_id)
    assert msgs[-1] == ("customer", "From my wife's account") and photos == 2
    assert status == "in_review"
    inbound_service.discard_unmatched(engine, second.id, "staff:jo", now=LATER)
    assert inbound_service.list_unmatched(engine) == []
    with pytest.raises(domain.ClaimRuleError) as e:
        inbound_service.discard_unmatched(engine, second.id, "staff:jo")
    assert e.value.code == domain.ErrorCode.NOT_FOUND
    with write_session(engine) as s:
        assert all(r.raw is None for r in s.scalars(select(InboundMail)))


# --- ignored ----------------------------------------------------------------------------------------

def test_auto_replies_bounces_and_our_own_mail_are_ignored_and_recorded(engine, imap, smtp):
    inbox, cfg = smtp
    r = _file(engine)
    to = _reply_to(engine, r.claim_id)
    mailer.send_pending(engine, cfg, now=LATER)
    imap.append(mails.auto_reply(sender="sam@example.com", to=to))
    imap.append(mails.plain(sender="sam@example.com", to=to, text="list", extra={"Precedence": "bulk"}))
    imap.append(mails.plain(sender="sam@example.com", to=to, text="x", extra={"X-Autorespond": "1"}))
    imap.append(mails.bounce(to=SHOP, original="sam@example.com"))
    imap.append(inbox.messages[-1].as_bytes())  # our own mail coming back
    imap.append(mails.plain(sender=to, to=to, text="from ourselves"))
    assert imap.poll(engine)["ignored"] == 6
    assert [x[:2] for x in _inbound(engine)] == [
        ("ignored", "auto_reply"), ("ignored", "auto_reply"), ("ignored", "auto_reply"),
        ("ignored", "bounce"), ("ignored", "loop"), ("ignored", "loop")]
    status, msgs, _ = _claim(engine, r.claim_id)
    assert status == "needs_info" and msgs[-1][0] != "customer"


def test_the_same_message_twice_is_one_reply_and_leaves_the_inbox(engine, imap):
    r = _file(engine)
    raw = mails.plain(sender="sam@example.com", to=_reply_to(engine, r.claim_id), text="Once",
                      message_id="<same-1@mail.customer.example>")
    imap.append(raw)
    imap.append(raw)
    out = imap.poll(engine)
    assert (out["attached"], out["duplicate"]) == (1, 1)
    imap.append(raw)
    assert imap.poll(engine)["duplicate"] == 1
    assert [b for k, b in _claim(engine, r.claim_id)[1] if k == "customer"] == ["Once"]
    with _box(imap.port) as box:
        assert list(box.fetch(AND(seen=False), mark_seen=False)) == []
        assert box.uids() == []  # moved out of INBOX
        box.folder.set("Processed")
        assert len(box.uids()) == 3


def test_no_mailbox_configured_reads_nothing(engine, monkeypatch, tmp_path):
    monkeypatch.delenv("CLAIMS_IMAP_HOST", raising=False)
    monkeypatch.setenv("CLAIMS_SECRETS_FILE", str(tmp_path / "none.toml"))
    assert inbound_mail.poll_mailbox(engine)["skipped"] == 1


# --- Settings → Unmatched mail ------------------------------------------------------------------

from tests.pages.test_staff_app import app, everything  # noqa: E402,F401  (the staff AppTest fixture)


def test_staff_attach_and_discard_on_the_settings_page(app, engine, monkeypatch, tmp_path):
    monkeypatch.setenv("CLAIMS_REPLY_TO", SHOP)
    monkeypatch.setenv("CLAIMS_SECRETS_FILE", str(tmp_path / "none.toml"))
    r = _file(engine)
    inbound_mail.handle_raw(engine, mails.plain(sender="aunt@family.example", to=SHOP,
                                                subject="[click](http://evil.example)",
                                                text="**Not bold** for Sam's claim"), now=LATER)
    inbound_mail.handle_raw(engine, mails.plain(sender="spam@spam.example", to=SHOP,
                                                text="Buy now"), now=LATER)
    first, second = sorted(inbound_service.list_unmatched(engine), key=lambda u: u.id)
    at = app("owner", "views/staff/settings.py")
    assert "**Not bold** for Sam's claim" in [t.value for t in at.text]  # plain text, as sent
    at.text_input(key=f"unmatched_ref_{first.id}").input("clm-nope00")
    at.button(key=f"unmatched_attach_{first.id}").click().run()
    assert at.error and "No claim has that reference" in at.error[0].value
    at.text_input(key=f"unmatched_ref_{first.id}").input(r.reference)
    at.button(key=f"unmatched_attach_{first.id}").click().run()
    assert f"Attached to {r.reference}" in everything(at).replace("\\", "")
    assert _claim(engine, r.claim_id)[1][-1] == ("customer", "**Not bold** for Sam's claim")
    at.button(key=f"unmatched_discard_{second.id}").click().run()
    assert inbound_service.list_unmatched(engine) == []
    assert "No unmatched mail." in everything(at)


# --- the real app: `streamlit run app.py`, its background jobs, no tick ---------------------------

def _wait_for(predicate, seconds: float) -> bool:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.25)
    return bool(predicate())


def test_the_running_app_mails_the_customer_and_reads_the_reply(engine, db_url, imap, smtp,
                                                               tmp_path):
    """No tick: the web process's background jobs send the "received" mail and read the reply."""
    import os

    from claims_core.services import claim_review

    from tests.conftest import running_app
    inbox, cfg = smtp
    env = {**os.environ, "DATABASE_URL": db_url, "CLAIMS_SMTP_HOST": "127.0.0.1",
           "CLAIMS_SMTP_PORT": str(cfg.port), "CLAIMS_SMTP_STARTTLS": "0",
           "CLAIMS_BACKGROUND": "on"}
    log = tmp_path / "app.log"
    with running_app(env, log):
        r = _file(engine, waiting=False)
        assert _wait_for(lambda: any(r.reference in (m["Subject"] or "") for m in inbox.messages),
                         60), log.read_text()
        received = next(m for m in inbox.messages if r.reference in m["Subject"])
        assert email_replies.token_in(received["Reply-To"], SHOP)
        decisions.request_info(engine, r.claim_id, "staff:t", "Jo", "The label please")
        assert _claim(engine, r.claim_id)[0] == "needs_info"
        raw, text = mails.client_reply("gmail", "en", sender="sam@example.com",
                                       to=received["Reply-To"], ref=r.reference,
                                       in_reply_to=received["Message-ID"])
        imap.append(raw)
        appended = time.monotonic()

        def on_the_claim():
            view = claim_views.get_claim_for_customer(engine, r.access_token)
            return view.messages and view.messages[-1].body == text and view.status == "in_review"
        assert _wait_for(on_the_claim, 60), log.read_text()
        print(f"reply on the claim {time.monotonic() - appended:.1f} s after it reached the mailbox")
    staff = claim_review.claim_for_staff(engine, r.claim_id)
    assert staff.claim.messages[-1].body == text and staff.claim.status == "in_review"
    assert any(e.action == "customer_replied" for e in staff.events)
