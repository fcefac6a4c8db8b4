"""Delivering the outbox over SMTP: leases so several senders never send one message twice,
retries with backoff, a stable Message-ID so a receiving server can tell a retry from a new mail.

SMTP comes from the environment (or Streamlit secrets mapped to it): ``CLAIMS_SMTP_HOST``,
``CLAIMS_SMTP_PORT`` (587), ``CLAIMS_SMTP_STARTTLS`` (1), ``CLAIMS_SMTP_USER``,
``CLAIMS_SMTP_PASSWORD``, ``CLAIMS_SMTP_FROM``. With no host set nothing is sent: the outbox is
shown on the staff Outbox page instead.
"""
from __future__ import annotations

import os
import smtplib
import ssl
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import make_msgid

from sqlalchemy import Engine, update

from ..domain.windows import DELIVERY_MAX_ATTEMPTS, retry_backoff
from ..infra.db import utcnow, write_session
from ..infra.outbox import lease_due
from ..infra.models import OutboxMessage

MAX_ATTEMPTS = DELIVERY_MAX_ATTEMPTS


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


# --- sending ------------------------------------------------------------------------------------

def _take(engine: Engine, now: datetime) -> OutboxMessage | None:
    """Claim one due message for this sender (pending → sending with a lease), or None."""
    with write_session(engine) as s:
        taken = lease_due(s, OutboxMessage, now=now, limit=1)
        if not taken:
            return None  # nothing due, or another sender got it first
        s.expunge(taken[0])
        return taken[0]


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
                    next_attempt_at=now + retry_backoff(attempts), lease_until=None,
                    last_error=f"{type(e).__name__}: {e}"[:500]))
            out["failed" if failed else "retry"] += 1
            continue
        with write_session(engine) as s:
            s.execute(update(OutboxMessage).where(OutboxMessage.id == msg.id).values(
                status="sent", sent_at=now, attempts=msg.attempts + 1, lease_until=None,
                last_error=""))
        out["sent"] += 1
    return out
