"""Reading customers' email replies from the shop's mailbox over IMAP (``imap-tools``).

Settings (environment or ``.streamlit/secrets.toml``, through ``infra/config``):
``CLAIMS_IMAP_HOST`` (none: nothing is read), ``CLAIMS_IMAP_PORT`` (993), ``CLAIMS_IMAP_USER``,
``CLAIMS_IMAP_PASSWORD``, ``CLAIMS_IMAP_SSL`` (1; 0 for a plain connection, tests only),
``CLAIMS_IMAP_FOLDER`` (INBOX). The replies come to ``CLAIMS_REPLY_TO``'s plus-addresses.

``poll_mailbox`` takes each unseen mail, parses it here (the reply's new text without quoted
history or signature, in English, Spanish, French and German; HTML-only mail as text; photos
through the photo pipeline, outside any transaction) and hands it to ``services/inbound_mail``,
which records it once per Message-ID and decides. Then the mail is marked seen and moved to
"Processed" where the server allows.
"""
from __future__ import annotations

import hashlib
import logging
import re
import threading
from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import parseaddr

from bs4 import BeautifulSoup
from imap_tools import AND, MailBox, MailBoxUnencrypted
from mailparser_reply import EmailReplyParser
from sqlalchemy import Engine

from ..domain import email_replies
from ..infra import config
from ..infra.db import utcnow
from ..infra.photos import PhotoRejected, clean_filename, process_photo
from ..services import inbound_mail
from ..services.settings import load_settings

log = logging.getLogger("claims.inbound_mail")

LANGUAGES = ["en", "es", "fr", "de"]  # the portal's languages
PROCESSED_FOLDER = "Processed"
MAX_PER_POLL = 50
_HEADERS = ("auto-submitted", "x-autoreply", "x-autorespond", "precedence", "return-path")


@dataclass(frozen=True)
class ImapConfig:
    host: str
    port: int = 993
    user: str = ""
    password: str = ""
    ssl: bool = True
    folder: str = "INBOX"
    timeout: float = 30.0


def imap_from_config() -> ImapConfig | None:
    """The mailbox from ``CLAIMS_IMAP_*`` (None when no host is set: replies aren't read)."""
    host = config.secret("CLAIMS_IMAP_HOST")
    if not host:
        return None
    raw_port = config.secret("CLAIMS_IMAP_PORT")
    try:
        port = int(raw_port) if raw_port else 993
    except ValueError:
        log.warning("CLAIMS_IMAP_PORT=%r is not a number; using 993", raw_port)
        port = 993
    return ImapConfig(host=host, port=port, user=config.secret("CLAIMS_IMAP_USER"),
                      password=config.secret("CLAIMS_IMAP_PASSWORD"),
                      ssl=config.secret("CLAIMS_IMAP_SSL").lower() not in ("0", "false", "no", "off"),
                      folder=config.secret("CLAIMS_IMAP_FOLDER") or "INBOX")


# --- the reply's new text ---------------------------------------------------------------------------

_ATTRIBUTION_END = re.compile(r":\s*$")
_PHONE_SIGNATURE = re.compile(  # "sent from my phone" lines the library's tables miss (de, fr)
    r"^\s*(?:Von meine[mr] \S+(?: \S+)? gesendet|Envoy[ée] de mon \S+(?: \S+)?)\s*$",
    re.IGNORECASE | re.MULTILINE)


def html_to_text(html: str) -> str:
    """An HTML-only mail as text, without the quoted history mail clients put in it."""
    soup = BeautifulSoup(html or "", "html.parser")
    for tag in soup(["script", "style", "head", "title"]):
        tag.decompose()
    for tag in soup.select("blockquote, .gmail_quote, .gmail_signature, [data-smartmail], "
                           "#Signature, .moz-cite-prefix, .yahoo_quoted"):
        tag.decompose()
    outlook = soup.select_one("#divRplyFwdMsg, #appendonsend")  # Outlook: the quote follows it
    if outlook is not None:
        for sib in list(outlook.find_next_siblings()):
            sib.decompose()
        outlook.decompose()
    for br in soup.find_all("br"):
        br.replace_with("\n")
    for block in soup.find_all(["p", "div", "li", "tr", "h1", "h2", "h3", "h4", "table", "hr"]):
        block.insert_after("\n")
    text = soup.get_text()
    return re.sub(r"\n{3,}", "\n\n", "\n".join(line.strip() for line in text.splitlines())).strip()


def reply_text(plain: str, html: str = "") -> str:
    """The reply's new text only: quoted history, the attribution line ("On … wrote:") and the
    signature dropped, in the portal's four languages (``mail-parser-reply``, plus the quote
    markers and phone signatures its tables miss)."""
    text = plain if (plain or "").strip() else html_to_text(html)
    text = (text or "").replace("\r\n", "\n")
    parsed = EmailReplyParser(languages=LANGUAGES).read(text)
    body = parsed.replies[0].body if parsed.replies else text
    body = "\n".join(_without_quote(body.split("\n")))
    body = _PHONE_SIGNATURE.split(body)[0]
    return body.strip()


def _without_quote(lines: list[str]) -> list[str]:
    """Cut at the first quoted line ("> …"), with the attribution paragraph ending in ":" just
    above it ("El lun, 7 dic 2026, Tienda escribió:", wrapped on up to 3 lines); a reply written
    below the quote keeps its own lines."""
    first = next((i for i, ln in enumerate(lines) if ln.lstrip().startswith(">")), None)
    if first is None:
        return lines
    j = first - 1
    while j >= 0 and not lines[j].strip():
        j -= 1
    cut = first
    if j >= 0 and _ATTRIBUTION_END.search(lines[j]):
        start = j
        while start > 0 and lines[start - 1].strip() and j - start < 2:
            start -= 1
        cut = start
    kept = lines[:cut]
    if not "".join(kept).strip():  # answered below the quote
        kept = [ln for ln in lines if not ln.lstrip().startswith(">")]
    return kept


# --- one mail -------------------------------------------------------------------------------------

def _message_id(em: EmailMessage, raw: bytes) -> str:
    ids = email_replies.message_ids([str(em.get("Message-ID", ""))])
    return ids[0] if ids else f"<sha256-{hashlib.sha256(raw).hexdigest()}@inbound.invalid>"


def _body(em: EmailMessage, subtype: str) -> str:
    part = em.get_body(preferencelist=(subtype,))
    if part is None:
        return ""
    try:
        return part.get_content()
    except (LookupError, UnicodeError, AssertionError):
        payload = part.get_payload(decode=True) or b""
        return payload.decode("utf-8", "replace")


def parse(raw: bytes, *, max_photo_bytes: int) -> inbound_mail.IncomingMail:
    """Read one RFC 822 mail: who, to whom, in reply to what, its new text, its photos (decoded
    and cleaned by the photo pipeline) and the files refused."""
    em: EmailMessage = BytesParser(policy=policy.default).parsebytes(raw)
    headers = {k: str(em.get(k, "")) for k in _HEADERS if em.get(k) is not None}
    recipients = tuple(email_replies.addresses(
        str(v) for name in ("To", "Cc", "Delivered-To", "X-Original-To")
        for v in (em.get_all(name) or [])))
    thread = tuple(email_replies.message_ids([str(em.get("In-Reply-To", "")),
                                              str(em.get("References", ""))]))
    sender = parseaddr(str(em.get("From", "")))[1]
    ctype = em.get_content_type()
    text, photos, refused = "", [], []
    if ctype != "multipart/report":
        text = reply_text(_body(em, "plain"), _body(em, "html"))
        for part in em.iter_attachments():
            name = clean_filename(part.get_filename() or "attachment")
            data = part.get_payload(decode=True) or b""
            if part.get_content_maintype() != "image":
                refused.append((name, inbound_mail.NOT_A_PHOTO))
                continue
            try:
                photos.append(process_photo(data, name, max_bytes=max_photo_bytes))
            except PhotoRejected as e:
                refused.append((name, e.reason))
    return inbound_mail.IncomingMail(
        message_id=_message_id(em, raw), sender=sender, subject=str(em.get("Subject", ""))[:300],
        recipients=recipients, thread_ids=thread, headers=headers, content_type=ctype, text=text,
        photos=tuple(photos), refused=tuple(refused), raw=raw)


def handle_raw(engine: Engine, raw: bytes, *, now: datetime | None = None) -> inbound_mail.Outcome:
    """Parse one mail (photos decoded here, before any transaction) and let the service decide."""
    settings = load_settings(engine)
    return inbound_mail.receive(engine, parse(raw, max_photo_bytes=settings.max_photo_bytes),
                                now=now)


def attach_unmatched(engine: Engine, mail_id: int, reference: str, actor: str, *,
                     now: datetime | None = None) -> inbound_mail.Outcome:
    """Staff attach an unmatched mail to a claim: parsed again from the kept copy (photos
    decoded outside the transaction), then recorded as the customer's reply."""
    raw = inbound_mail.unmatched_raw(engine, mail_id)
    mail = parse(raw, max_photo_bytes=load_settings(engine).max_photo_bytes)
    return inbound_mail.attach_unmatched(engine, mail_id, reference, actor, mail, now=now)


# --- the mailbox ------------------------------------------------------------------------------------

def _connect(cfg: ImapConfig):
    box = (MailBox(cfg.host, cfg.port, timeout=cfg.timeout) if cfg.ssl
           else MailBoxUnencrypted(cfg.host, cfg.port, timeout=cfg.timeout))
    return box.login(cfg.user, cfg.password, initial_folder=cfg.folder)


def _processed_folder(box) -> str | None:
    try:
        if not box.folder.exists(PROCESSED_FOLDER):
            box.folder.create(PROCESSED_FOLDER)
        return PROCESSED_FOLDER
    except Exception as e:  # noqa: BLE001 - a server that won't: the mail is only marked seen
        log.info("no %r folder on the mail server (%s); mail is only marked seen", PROCESSED_FOLDER, e)
        return None


def poll_mailbox(engine: Engine, *, now: datetime | None = None, cfg: ImapConfig | None = None,
                 limit: int = MAX_PER_POLL, stop: threading.Event | None = None) -> dict[str, int]:
    """Read the unseen mail once: each becomes a reply on its claim, an ignored mail or an
    unmatched one (once per Message-ID, even if the server shows it again); then it is marked
    seen and moved to "Processed". No mailbox configured: nothing happens."""
    cfg = cfg or imap_from_config()
    out = {"attached": 0, "unmatched": 0, "ignored": 0, "duplicate": 0, "failed": 0}
    if cfg is None:
        out["skipped"] = 1
        return out
    with _connect(cfg) as box:
        processed = _processed_folder(box)
        for msg in box.fetch(AND(seen=False), mark_seen=False, limit=limit, bulk=True):
            if stop is not None and stop.is_set():  # shutting down: the rest stays unseen
                break
            try:
                outcome = handle_raw(engine, msg.obj.as_bytes(), now=now or utcnow())
            except Exception:  # noqa: BLE001 - one bad mail must not stop the others
                log.exception("inbound mail uid %s could not be handled", msg.uid)
                out["failed"] += 1
                continue
            out[outcome.status] = out.get(outcome.status, 0) + 1
            box.flag(msg.uid, "\\Seen", True)
            if processed:
                try:
                    box.move(msg.uid, processed)
                except Exception as e:  # noqa: BLE001
                    log.info("could not move mail uid %s to %s: %s", msg.uid, processed, e)
    return out


def background_job(ctx) -> dict:
    """The ``imap_inbound`` job of ``adapters/jobs.py`` (every ~15 s; nothing without a mailbox)."""
    return poll_mailbox(ctx.engine, now=ctx.now, stop=ctx.stop)
