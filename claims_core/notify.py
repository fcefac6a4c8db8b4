"""Email: an outbox written with the event that caused it, and a sender that delivers over SMTP.

SMTP comes from the environment (or Streamlit secrets mapped to it): ``CLAIMS_SMTP_HOST``,
``CLAIMS_SMTP_PORT`` (587), ``CLAIMS_SMTP_STARTTLS`` (1), ``CLAIMS_SMTP_USER``,
``CLAIMS_SMTP_PASSWORD``, ``CLAIMS_SMTP_FROM``, ``CLAIMS_PUBLIC_URL`` (for links in mails). With no
host set nothing is sent: the outbox is shown on the staff Outbox page instead.
"""
from __future__ import annotations

import html
import os
import smtplib
import ssl
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import make_msgid

from sqlalchemy import Engine, or_, select, update
from sqlalchemy.orm import Session

from . import rules
from .db import read_session, utcnow, write_session
from .models import Claim, OutboxMessage, StaffUser, StoreSettings  # noqa: F401 (re-exported)

MAX_ATTEMPTS = 8
LEASE = timedelta(minutes=5)


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int = 587
    starttls: bool = True
    user: str = ""
    password: str = ""
    sender: str = "claims@localhost"
    timeout: float = 20.0


def smtp_from_env(env=os.environ) -> SmtpConfig | None:
    host = env.get("CLAIMS_SMTP_HOST", "").strip()
    if not host:
        return None
    return SmtpConfig(host=host, port=int(env.get("CLAIMS_SMTP_PORT", "587")),
                      starttls=env.get("CLAIMS_SMTP_STARTTLS", "1") not in ("0", "false", "no"),
                      user=env.get("CLAIMS_SMTP_USER", ""), password=env.get("CLAIMS_SMTP_PASSWORD", ""),
                      sender=env.get("CLAIMS_SMTP_FROM", "claims@localhost"),
                      timeout=float(env.get("CLAIMS_SMTP_TIMEOUT", "20")))


def public_url() -> str:
    return os.environ.get("CLAIMS_PUBLIC_URL", "http://localhost:8501").rstrip("/")


def claim_link(token: str) -> str:
    return f"{public_url()}/my-claim?token={token}"


# --- templates ----------------------------------------------------------------------------------

SUBJECTS = {
    "claim_received": "We received your claim {ref}",
    "info_requested": "{store} needs more information for claim {ref}",
    "new_message": "New message about your claim {ref}",
    "decision": "A decision on your claim {ref}",
    "reminder": "Reminder: {store} is waiting for your reply on claim {ref}",
    "auto_closed": "Your claim {ref} was closed",
    "staff_new_claim": "New claim {ref} ({issue})",
    "staff_digest": "Daily claims digest for {store}",
}


def render(kind: str, settings: StoreSettings, *, ref: str = "", link: str = "", lines: list[str],
           issue: str = "") -> tuple[str, str, str]:
    """(subject, plain text, HTML). Every line is escaped in the HTML part; the store's name and
    colour brand it."""
    subject = SUBJECTS[kind].format(store=settings.name, ref=ref, issue=issue)
    text = "\n\n".join(lines + ([f"View your claim: {link}"] if link else [])
                       + [f"— {settings.name} · {settings.support_email}"])
    accent = settings.accent_color if len(settings.accent_color or "") == 7 else "#2563eb"
    paras = "".join(f"<p>{html.escape(line).replace(chr(10), '<br>')}</p>" for line in lines)
    button = (f'<p><a href="{html.escape(link, quote=True)}" style="background:{accent};color:#fff;'
              f'padding:10px 16px;border-radius:6px;text-decoration:none">View your claim</a></p>'
              if link else "")
    body = (f'<div style="font-family:sans-serif;max-width:560px">'
            f'<h2 style="color:{accent}">{html.escape(settings.name)}</h2>{paras}{button}'
            f'<p style="color:#4b5563;font-size:13px">{html.escape(settings.name)} · '
            f'{html.escape(settings.support_email)}</p></div>')
    return subject, text, body


def _settings(s: Session) -> StoreSettings:
    from .services import get_settings
    return get_settings(s)


def enqueue(s: Session, *, key: str, kind: str, to: str, claim: Claim | None, lines: list[str],
            link: str = "", issue: str = "", now: datetime | None = None) -> None:
    """Queue one email in the caller's transaction (a no-op if this notification exists)."""
    if not to:
        return
    settings = _settings(s)
    subject, text, body = render(kind, settings, ref=claim.reference if claim else "", link=link,
                                 lines=lines, issue=issue)
    exists = s.scalars(select(OutboxMessage.id).where(OutboxMessage.dedupe_key == key)).first()
    if exists is not None:
        return
    s.add(OutboxMessage(dedupe_key=key, kind=kind, claim_id=claim.id if claim else None, to_addr=to,
                        subject=subject[:300], body_text=text, body_html=body,
                        next_attempt_at=now or utcnow(), created_at=now or utcnow()))


def on_claim_filed(s: Session, claim: Claim, now: datetime) -> None:
    issue = rules.ISSUE_TYPES[claim.issue_type].label
    enqueue(s, key=f"received:{claim.id}", kind="claim_received", to=claim.email, claim=claim,
            link=claim_link(claim.access_token), now=now, lines=[
                f"Thank you — we received your claim {claim.reference} ({issue}).",
                "Our team reviews every claim, usually within 2 business days. If we need anything "
                "else we'll ask you on your claim page, and we'll email you when there's a decision."])
    for u in s.scalars(select(StaffUser).where(StaffUser.active, StaffUser.notify_new_claims,
                                               StaffUser.email != "")):
        enqueue(s, key=f"staffnew:{claim.id}:{u.id}", kind="staff_new_claim", to=u.email,
                claim=claim, issue=issue, now=now, lines=[
                    f"A new claim {claim.reference} ({issue}, "
                    f"{rules.format_cents(claim.claimed_cents)}) was filed.",
                    "The customer wrote:", claim.description or "(no comments)"])


def on_info_requested(s: Session, claim: Claim, message_id: int, body: str, now: datetime) -> None:
    enqueue(s, key=f"info:{claim.id}:{message_id}", kind="info_requested", to=claim.email,
            claim=claim, link=claim_link(claim.access_token), now=now,
            lines=["We need a little more information to decide on your claim:", body,
                   "Reply on your claim page (you can add photos there)."])


def on_staff_message(s: Session, claim: Claim, message_id: int, body: str, now: datetime) -> None:
    enqueue(s, key=f"msg:{claim.id}:{message_id}", kind="new_message", to=claim.email, claim=claim,
            link=claim_link(claim.access_token), now=now,
            lines=["You have a new message about your claim:", body])


def on_decision(s: Session, claim: Claim, decision_id: int, lines: list[str], now: datetime) -> None:
    enqueue(s, key=f"decision:{claim.id}:{decision_id}", kind="decision", to=claim.email,
            claim=claim, link=claim_link(claim.access_token), now=now, lines=lines)


# --- sending ------------------------------------------------------------------------------------

def _take(engine: Engine, now: datetime) -> OutboxMessage | None:
    """Claim one due message for this sender (pending → sending with a lease), or None."""
    with write_session(engine) as s:
        row = s.scalars(
            select(OutboxMessage).where(
                or_(OutboxMessage.status == "pending",
                    (OutboxMessage.status == "sending") & (OutboxMessage.lease_until < now)),
                OutboxMessage.next_attempt_at <= now)
            .order_by(OutboxMessage.id).limit(1)).first()
        if row is None:
            return None
        taken = s.execute(
            update(OutboxMessage).where(OutboxMessage.id == row.id,
                                        OutboxMessage.status == row.status,
                                        OutboxMessage.attempts == row.attempts)
            .values(status="sending", lease_until=now + LEASE)
        ).rowcount
        if taken != 1:
            return None  # another sender got it first
        s.refresh(row)
        s.expunge(row)
        return row


def _deliver(cfg: SmtpConfig, msg: OutboxMessage) -> None:
    em = EmailMessage()
    em["From"] = cfg.sender
    em["To"] = msg.to_addr
    em["Subject"] = msg.subject
    # A stable Message-ID: a receiving server can tell a retry from a new message.
    em["Message-ID"] = make_msgid(idstring=f"outbox-{msg.id}", domain="claims.local")
    em.set_content(msg.body_text)
    em.add_alternative(msg.body_html, subtype="html")
    with smtplib.SMTP(cfg.host, cfg.port, timeout=cfg.timeout) as smtp:
        if cfg.starttls:
            smtp.starttls(context=ssl.create_default_context())
        if cfg.user:
            smtp.login(cfg.user, cfg.password)
        smtp.send_message(em)


def backoff(attempts: int) -> timedelta:
    return timedelta(minutes=min(360, 2 ** max(0, attempts - 1)))


def send_pending(engine: Engine, cfg: SmtpConfig | None, *, now: datetime | None = None,
                 limit: int = 200) -> dict[str, int]:
    """Deliver due messages. A refusal or a time-out leaves the message queued for a retry with
    backoff; after MAX_ATTEMPTS it is marked failed. Safe to run in several processes at once."""
    if cfg is None:
        return {"sent": 0, "retry": 0, "failed": 0, "skipped": 1}
    now = now or utcnow()
    out = {"sent": 0, "retry": 0, "failed": 0, "skipped": 0}
    for _ in range(limit):
        msg = _take(engine, now)
        if msg is None:
            break
        try:
            _deliver(cfg, msg)
        except (smtplib.SMTPException, OSError) as e:
            attempts = msg.attempts + 1
            failed = attempts >= MAX_ATTEMPTS
            with write_session(engine) as s:
                s.execute(update(OutboxMessage).where(OutboxMessage.id == msg.id).values(
                    status="failed" if failed else "pending", attempts=attempts,
                    next_attempt_at=now + backoff(attempts), lease_until=None,
                    last_error=f"{type(e).__name__}: {e}"[:500]))
            out["failed" if failed else "retry"] += 1
            continue
        with write_session(engine) as s:
            s.execute(update(OutboxMessage).where(OutboxMessage.id == msg.id).values(
                status="sent", sent_at=now, attempts=msg.attempts + 1, lease_until=None,
                last_error=""))
        out["sent"] += 1
    return out


@dataclass(frozen=True)
class OutboxRow:
    id: int
    to_addr: str
    subject: str
    status: str
    attempts: int
    created_at: datetime
    last_error: str
    body_text: str


def list_outbox(engine: Engine, limit: int = 200) -> list[OutboxRow]:
    with read_session(engine) as s:
        return [OutboxRow(m.id, m.to_addr, m.subject, m.status, m.attempts, m.created_at,
                          m.last_error, m.body_text)
                for m in s.scalars(select(OutboxMessage).order_by(OutboxMessage.id.desc()).limit(limit))]

