"""Delivering the outbox over SMTP: leases so several senders never send one message twice,
retries with backoff, a stable Message-ID so a receiving server can tell a retry from a new mail.

SMTP comes from the environment or ``.streamlit/secrets.toml`` (``infra.config.smtp_settings``):
``CLAIMS_SMTP_HOST``, ``CLAIMS_SMTP_PORT`` (587), ``CLAIMS_SMTP_STARTTLS`` (1), ``CLAIMS_SMTP_USER``,
``CLAIMS_SMTP_PASSWORD``, ``CLAIMS_SMTP_FROM``. With no host set nothing is sent: the outbox is
shown on the staff Outbox page instead.

A message's Message-ID is decided when it is queued (``outbox.message_id``) and every try sends
that one. While a message is being sent its lease is renewed (``services.mail_outbox.holding``),
so a slow server never lets another sender take it over and send it again. The outbox's rows are
``services/mail_outbox.py``'s business: this module only talks SMTP.
"""
from __future__ import annotations

import smtplib
import ssl
import threading
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage

from sqlalchemy import Engine

from ..infra import config
from ..infra.db import utcnow
from ..services import mail_outbox
from ..services.mail_outbox import MailJob

MAX_ATTEMPTS = mail_outbox.MAX_ATTEMPTS


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int = 587
    starttls: bool = True
    user: str = ""
    password: str = ""
    sender: str = "claims@localhost"
    timeout: float = 20.0


def smtp_from_env() -> SmtpConfig | None:
    """The configured SMTP server (environment or secrets.toml), None when there is none."""
    settings = config.smtp_settings()
    return SmtpConfig(**settings) if settings else None


# --- sending ------------------------------------------------------------------------------------

def _deliver(cfg: SmtpConfig, msg: MailJob) -> None:
    em = EmailMessage()
    em["From"] = cfg.sender
    em["To"] = msg.to_addr
    em["Subject"] = msg.subject
    if msg.reply_to:  # the claim's signed reply address: an answer lands on the claim
        em["Reply-To"] = msg.reply_to
    em["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies back; our loops detectable
    # A stable Message-ID: a receiving server can tell a retry from a new message.
    em["Message-ID"] = msg.message_id or f"<outbox-{msg.id}@{config.mail_domain()}>"
    em.set_content(msg.body_text)
    em.add_alternative(msg.body_html, subtype="html")
    with smtplib.SMTP(cfg.host, cfg.port, timeout=cfg.timeout) as smtp:
        if cfg.starttls:
            smtp.starttls(context=ssl.create_default_context())
        if cfg.user:
            smtp.login(cfg.user, cfg.password)
        smtp.send_message(em)


def send_pending(engine: Engine, cfg: SmtpConfig | None, *, now: datetime | None = None,
                 limit: int = 200, stop: threading.Event | None = None) -> dict[str, int]:
    """Deliver due messages. A refusal or a time-out leaves the message queued for a retry with
    backoff; after MAX_ATTEMPTS it is marked failed. Safe to run in several processes at once."""
    if cfg is None:
        return {"sent": 0, "retry": 0, "failed": 0, "skipped": 1}
    fixed = now
    out = {"sent": 0, "retry": 0, "failed": 0, "skipped": 0}
    for _ in range(limit):
        if stop is not None and stop.is_set():
            break  # shutting down: what is not taken stays queued for the next run
        now = fixed or utcnow()  # each message on the clock of its own moment
        msg = mail_outbox.take_one(engine, now)
        if msg is None:
            break  # nothing due, or another sender got it first
        try:
            with mail_outbox.holding(engine, msg):
                _deliver(cfg, msg)
        except Exception as e:  # noqa: BLE001 - refused, timed out, or unwritable: tried again later
            status = mail_outbox.record_failed(engine, msg, f"{type(e).__name__}: {e}", now=now)
            out["failed" if status == "failed" else "retry"] += 1
            continue
        mail_outbox.record_sent(engine, msg, now=now)
        out["sent"] += 1
    return out
