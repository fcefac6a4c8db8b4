"""Customers' email replies: what happens to each mail read from the shop's mailbox.

The adapter (``adapters/inbound_mail.py``) reads and parses the mail and decodes its photos (outside
any transaction); ``receive`` decides, in one unit of work: a Message-ID seen before is skipped;
our own mail, delivery reports and auto-replies are recorded and ignored; a mail that belongs to a
claim (``domain/email_replies``) becomes the customer's reply on it through the same service as a
reply on View My Claim (``customer.reply_on_claim``: the message, the event, back to review or
reopened); anything else waits under Settings → Unmatched mail for staff to attach or discard.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .. import domain
from ..domain import email_replies
from ..domain.lifecycle import Action
from ..domain.messages import Msg, N_
from ..infra import config, i18n
from ..infra.db import read_session, utcnow
from ..infra.models import Claim, InboundMail, Message, OutboxMessage, settings_row
from ..infra.photos import ProcessedPhoto, rejected
from . import mail_tokens
from .customer import reply_on_claim
from .unit_of_work import run

NOT_A_PHOTO = N_("only photos (JPEG, PNG, WebP or HEIC) can be sent by email; this file was not "
                 "added to your claim")
PHOTOS_NOT_ASKED = N_("photos can be added when the store asks for more information; this one was "
                      "not added to your claim")
PHOTOS_FULL = N_("this claim holds as many photos as it can; this one was not added")
MAX_RAW_KEPT = 30 * 1024 * 1024  # an unmatched mail is kept whole (for staff) up to this size


@dataclass(frozen=True)
class IncomingMail:
    """One mail as the adapter read it. ``text`` is the reply's new text (quotes and signature
    gone); ``photos`` decoded by the photo pipeline; ``refused`` (file name, why) the rest."""
    message_id: str
    sender: str
    subject: str = ""
    recipients: tuple[str, ...] = ()
    thread_ids: tuple[str, ...] = ()
    headers: dict = field(default_factory=dict)
    content_type: str = "text/plain"
    text: str = ""
    photos: tuple[ProcessedPhoto, ...] = ()
    refused: tuple[tuple[str, Msg], ...] = ()
    raw: bytes = b""


@dataclass(frozen=True)
class Outcome:
    status: str  # attached | unmatched | ignored | duplicate
    reason: str = ""
    claim_reference: str = ""


def own_addresses() -> list[str]:
    """Where our own mail comes from: a mail from one of these is a loop."""
    return [a for a in (mail_tokens.reply_base(), config.secret("CLAIMS_SMTP_FROM")) if a]


def receive(engine: Engine, mail: IncomingMail, *, now: datetime | None = None) -> Outcome:
    """Record one mail and act on it, once per Message-ID."""
    now = now or utcnow()
    try:
        return run(engine, lambda s: _receive(s, mail, now))
    except IntegrityError:  # another reader recorded the same Message-ID at the same moment
        return Outcome("duplicate")


def seen(engine: Engine, message_id: str) -> bool:
    with read_session(engine) as s:
        return s.scalar(select(InboundMail.id).where(InboundMail.message_id == message_id)) is not None


def _receive(s: Session, mail: IncomingMail, now: datetime) -> Outcome:
    if s.scalar(select(InboundMail.id).where(InboundMail.message_id == mail.message_id)) is not None:
        return Outcome("duplicate")
    ours = s.scalar(select(OutboxMessage.id).where(
        OutboxMessage.message_id == mail.message_id).limit(1)) is not None
    reason = email_replies.ignore_reason(mail.headers, mail.content_type, sender=mail.sender,
                                         own_addresses=own_addresses(), ours=ours)
    if reason:
        _record(s, mail, now, "ignored", reason)
        return Outcome("ignored", reason)
    match = _match(s, mail)
    claim = s.get(Claim, match.claim_id) if match.claim_id is not None else None
    if claim is None:
        why = match.reason or email_replies.NO_MATCH
        _record(s, mail, now, "unmatched", why, raw=mail.raw[:MAX_RAW_KEPT])
        return Outcome("unmatched", why)
    return _attach(s, claim, mail, now, _record(s, mail, now, "attached", match.by))


def _match(s: Session, mail: IncomingMail) -> email_replies.Match:
    base = mail_tokens.reply_base()
    by_token = email_replies.match_by_token(mail.recipients, base, mail_tokens.reply_key(s)) \
        if base else None
    if by_token is not None:
        return by_token
    claim_id = s.scalar(select(OutboxMessage.claim_id).where(
        OutboxMessage.message_id.in_(mail.thread_ids), OutboxMessage.message_id != "",
        OutboxMessage.claim_id.is_not(None)).limit(1)) if mail.thread_ids else None
    email = s.scalar(select(Claim.email).where(Claim.id == claim_id)) if claim_id else None
    return email_replies.match_by_thread(claim_id, mail.sender, email)


def _record(s: Session, mail: IncomingMail, now: datetime, status: str, reason: str, *,
            raw: bytes | None = None) -> InboundMail:
    row = InboundMail(message_id=mail.message_id[:500], received_at=now,
                      from_addr=mail.sender[:254], subject=mail.subject[:300], status=status,
                      reason=reason[:32], body_text=email_replies.customer_text(mail.text), raw=raw)
    s.add(row)
    s.flush()  # the unique Message-ID is checked here
    return row


def _attach(s: Session, claim: Claim, mail: IncomingMail, now: datetime, row: InboundMail,
            ) -> Outcome:
    """The mail becomes the customer's reply on ``claim``; what it couldn't carry is said in the
    conversation, in the customer's language."""
    settings = settings_row(s)
    text = email_replies.customer_text(mail.text)
    notes = [rejected(name, why) for name, why in mail.refused]
    photos = list(mail.photos)
    if photos and not domain.allows(Action.CUSTOMER_REPLY, claim.status):
        notes += [rejected(p.filename, PHOTOS_NOT_ASKED) for p in photos]
        photos = []
    room = max(0, domain.reply_photo_limit(settings.max_photos) - len(claim.evidence))
    notes += [rejected(p.filename, PHOTOS_FULL) for p in photos[room:]]
    photos = photos[:room]
    row.claim_id, row.status, row.raw = claim.id, "attached", None
    if not text and not photos and not notes:
        row.status, row.reason = "ignored", email_replies.EMPTY
        return Outcome("ignored", email_replies.EMPTY, claim.reference)
    reply_on_claim(s, claim, text, photos, now, via="email")
    t = i18n.translator(claim.language)
    for note in notes:
        claim.messages.append(Message(author_kind="system", author_name=settings.name,
                                      body=t(note), created_at=now))
    s.flush()
    return Outcome("attached", row.reason, claim.reference)


# --- staff: Settings → Unmatched mail -------------------------------------------------------------

@dataclass(frozen=True)
class UnmatchedMail:
    id: int
    received_at: datetime
    from_addr: str
    subject: str
    body_text: str
    reason: str


def list_unmatched(engine: Engine, limit: int = 100) -> list[UnmatchedMail]:
    with read_session(engine) as s:
        rows = s.scalars(select(InboundMail).where(InboundMail.status == "unmatched")
                         .order_by(InboundMail.received_at.desc(), InboundMail.id.desc())
                         .limit(limit))
        return [UnmatchedMail(r.id, r.received_at, r.from_addr, r.subject, r.body_text, r.reason)
                for r in rows]


def unmatched_raw(engine: Engine, mail_id: int) -> bytes:
    """The whole mail as received, for the adapter to parse again before staff attach it."""
    with read_session(engine) as s:
        row = s.get(InboundMail, mail_id)
        if row is None or row.status != "unmatched":
            raise domain.ClaimRuleError("That mail was already handled.", domain.ErrorCode.NOT_FOUND)
        return row.raw or b""


def _unmatched_row(s: Session, mail_id: int) -> InboundMail:
    row = s.get(InboundMail, mail_id)
    if row is None or row.status != "unmatched":
        raise domain.ClaimRuleError("That mail was already handled.", domain.ErrorCode.NOT_FOUND)
    return row


def attach_unmatched(engine: Engine, mail_id: int, reference: str, actor: str,
                     mail: IncomingMail, *, now: datetime | None = None) -> Outcome:
    """Staff attach an unmatched mail to a claim (by its reference): it becomes the customer's
    reply there, as if it had matched."""
    now = now or utcnow()
    ref = (reference or "").strip().upper()

    def work(s: Session) -> Outcome:
        row = _unmatched_row(s, mail_id)
        claim = s.scalars(select(Claim).where(Claim.reference == ref)).first() if ref else None
        if claim is None:
            raise domain.ClaimNotFound("No claim has that reference.")
        row.handled_by, row.handled_at, row.reason = actor[:100], now, "staff"
        return _attach(s, claim, mail, now, row)
    return run(engine, work)


def discard_unmatched(engine: Engine, mail_id: int, actor: str, *,
                      now: datetime | None = None) -> None:
    now = now or utcnow()

    def work(s: Session) -> None:
        row = _unmatched_row(s, mail_id)
        row.status, row.raw, row.handled_by, row.handled_at = "discarded", None, actor[:100], now
    run(engine, work)
