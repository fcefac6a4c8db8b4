"""Email replies: the reply address that names a claim, and which inbound mail is a customer's reply.

Every email to a customer carries ``Reply-To: <local>+<token>@<domain>`` (from ``CLAIMS_REPLY_TO``).
The token is the claim's id in base 36 and an HMAC of it under the server's key, in lower-case
letters and digits only (some mail servers lower-case local parts), so a customer can't write to
another claim by changing the number. A mail belongs to a claim by a valid token in To, Cc or
Delivered-To; else by ``In-Reply-To``/``References`` naming one of our messages *and* coming from
the claim's email. Auto-replies, delivery reports and our own mail are ignored (and recorded).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass
from email.utils import getaddresses
from typing import Iterable, Mapping

from .identifiers import normalize_email
from .text import MAX_COMMENT_CHARS, clean_comment

TOKEN_MAC_CHARS = 12  # 60 bits of HMAC: no one guesses another claim's address
_B36 = "0123456789abcdefghijklmnopqrstuvwxyz"
_TOKEN = re.compile(r"^([0-9a-z]{1,13})-([a-z2-7]{%d})$" % TOKEN_MAC_CHARS)

# Why a mail was set aside without reaching a claim (recorded with it).
AUTO_REPLY = "auto_reply"
BOUNCE = "bounce"
LOOP = "loop"
FORGED_TOKEN = "forged_token"
NO_MATCH = "no_match"
EMPTY = "empty"


def _b36(n: int) -> str:
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = _B36[r] + out
        if n == 0:
            return out


def _mac(claim_id: int, key: bytes) -> str:
    digest = hmac.new(key, f"reply-to:{claim_id}".encode(), hashlib.sha256).digest()
    return base64.b32encode(digest).decode().lower()[:TOKEN_MAC_CHARS]


def reply_token(claim_id: int, key: bytes) -> str:
    """``<claim id base 36>-<mac>``: short, lower case, only letters, digits and one dash."""
    return f"{_b36(claim_id)}-{_mac(claim_id, key)}"


def claim_id_from_token(token: str, key: bytes) -> int | None:
    """The claim a token names, or None when it is malformed or its MAC is wrong (forged)."""
    m = _TOKEN.match((token or "").strip().lower())
    if not m:
        return None
    claim_id = int(m.group(1), 36)
    return claim_id if hmac.compare_digest(m.group(2), _mac(claim_id, key)) else None


def _split(address: str) -> tuple[str, str] | None:
    addr = normalize_email(address)
    if addr.count("@") != 1:
        return None
    local, domain = addr.split("@")
    return (local, domain) if local and domain else None


def reply_address(base: str, token: str) -> str:
    """``claims@shop.example`` + token → ``claims+token@shop.example`` ("" with no base)."""
    parts = _split(base)
    if parts is None:
        return ""
    local, domain = parts
    return f"{local.split('+')[0]}+{token}@{domain}"


def token_in(address: str, base: str) -> str | None:
    """The token of a plus-address on our reply address (any case), else None."""
    ours, got = _split(base), _split(address)
    if ours is None or got is None or got[1] != ours[1]:
        return None
    local, _, tag = got[0].partition("+")
    return tag if local == ours[0].split("+")[0] and tag else None


def addresses(values: Iterable[str]) -> list[str]:
    """Every address in header values (``To``, ``Cc``…), normalised."""
    return [normalize_email(a) for _n, a in getaddresses([v for v in values if v]) if a]


def message_ids(values: Iterable[str]) -> list[str]:
    """The ``<…>`` ids in ``In-Reply-To`` / ``References`` values, in order."""
    return [m.strip() for v in values if v for m in re.findall(r"<[^<>\s]+>", v)]


def ignore_reason(headers: Mapping[str, str], content_type: str, *, sender: str,
                  own_addresses: Iterable[str], ours: bool) -> str | None:
    """Why this mail must not reach a claim: our own mail coming back (``ours``: its Message-ID is
    one we sent, or it comes from one of our addresses), a delivery report, an auto-reply."""
    h = {k.lower(): (v or "").strip() for k, v in headers.items()}
    own = {normalize_email(a) for a in own_addresses if a}
    if ours or (sender and normalize_email(sender) in own) or any(
            sender and token_in(sender, a) for a in own):
        return LOOP
    if content_type.lower() == "multipart/report" or h.get("return-path", "x") in ("<>", ""):
        return BOUNCE
    if sender and sender.split("@")[0].lower() in ("mailer-daemon", "postmaster"):
        return BOUNCE
    if h.get("auto-submitted", "no").lower() != "no":
        return AUTO_REPLY
    if "x-autoreply" in h or "x-autorespond" in h:
        return AUTO_REPLY
    if h.get("precedence", "").lower() in ("bulk", "junk", "list"):
        return AUTO_REPLY
    return None


@dataclass(frozen=True)
class Match:
    """Which claim a mail belongs to (``claim_id``), or why none (``reason``)."""
    claim_id: int | None
    reason: str = ""
    by: str = ""  # token | thread


def match_by_token(recipients: Iterable[str], base: str, key: bytes) -> Match | None:
    """A valid token in a recipient → that claim; only forged ones → refused; none → None."""
    forged = False
    for addr in recipients:
        token = token_in(addr, base)
        if token is None:
            continue
        claim_id = claim_id_from_token(token, key)
        if claim_id is not None:
            return Match(claim_id, by="token")
        forged = True
    return Match(None, FORGED_TOKEN) if forged else None


def match_by_thread(claim_id: int | None, sender: str, claim_email: str | None) -> Match:
    """A reply to one of our messages counts only from the claim's own email."""
    if claim_id is not None and claim_email and normalize_email(sender) == normalize_email(claim_email):
        return Match(claim_id, by="thread")
    return Match(None, NO_MATCH)


def customer_text(text: str) -> str:
    """A reply's text as customer text: controls dropped, cut to the comment limit (mail isn't
    refused for being long; the rest is left out, marked with an ellipsis)."""
    s = (text or "").replace("\r\n", "\n").strip()
    if len(s) > MAX_COMMENT_CHARS:
        s = s[:MAX_COMMENT_CHARS - 1].rstrip() + "…"
    return clean_comment(s)
