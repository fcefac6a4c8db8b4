"""What people type: control characters, free-text limits, required fields; and the one reader
of text and times that come from files and payloads (``read_text``, ``read_time``).

Text is kept verbatim; it is always *shown* as plain text (views/safe_text.py), never as markup.
``verbatim`` and ``joined`` build messages (``domain.messages``) around such text.
"""
from __future__ import annotations

import math
import re
import unicodedata
from datetime import datetime, timezone

from .errors import ErrorCode, InvalidInput
from .messages import Msg, N_

MAX_COMMENT_CHARS = 4000


def strip_controls(text: str | None) -> str:
    """Drop control characters (NUL and friends) from one-line input: no database stores NUL."""
    return "".join(ch for ch in (text or "") if unicodedata.category(ch) != "Cc")


def verbatim(text: str) -> Msg:
    """Text shown as it was written, in every language (a staff note, a name): a message whose
    only content is the text itself, so no catalog translates it and braces in it stay braces."""
    return Msg.of("{text}", text=text)


def as_msg(part: "Msg | str") -> Msg:
    """A catalog message (a ``N_`` string or a ``Msg``) as a ``Msg``, to nest in another one."""
    return part if isinstance(part, Msg) else Msg(part)


def joined(*parts: "Msg | str") -> "Msg | str":
    """Messages shown one after another, separated by a space, each translated on its own.
    Empty parts are left out; a single part comes back as it is ("" when there is none)."""
    kept = [p for p in parts if isinstance(p, Msg) or p]
    if len(kept) <= 1:
        return kept[0] if kept else ""
    out = as_msg(kept[0])
    for p in kept[1:]:
        # TRANSLATORS: two sentences shown one after the other, each already translated.
        out = Msg.of(N_("{first} {second}"), first=out, second=as_msg(p))
    return out


def clean_comment(text: str | None, field: "str | Msg" = N_("Your comments")) -> str:
    """Trim a free-text field and enforce the visible limit. ``field`` names it in the message
    (a catalog message: "Your message")."""
    s = (text or "").replace("\r\n", "\n").strip()
    s = "".join(ch for ch in s if ch in "\n\t" or unicodedata.category(ch) != "Cc")
    if len(s) > MAX_COMMENT_CHARS:
        raise InvalidInput(Msg.of(
            N_("{field} can be at most {limit} characters; this has {count}. Please shorten it."),
            field=as_msg(field), limit=MAX_COMMENT_CHARS, count=len(s)), ErrorCode.TEXT_TOO_LONG)
    return s


def required_text(text: str | None, field: "str | Msg", if_empty: "str | Msg") -> str:
    """Like ``clean_comment``, and the text can't be left empty (``if_empty`` says what to write)."""
    s = clean_comment(text, field)
    if not s:
        raise InvalidInput(if_empty, ErrorCode.TEXT_REQUIRED)
    return s


# --- values read from files and payloads (untrusted) ---------------------------------------------
# The one reader of text and times that arrive from outside: CSV cells, Shopify's and the
# carriers' JSON. Amounts are read by ``money.minor_from_amount``.

_SURROGATES = re.compile(r"[\ud800-\udfff]")  # lone surrogates from JSON "\ud800" can't be stored
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_CONTROLS_BUT_LINES = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # keeps \t and \n
MAX_TIME_CHARS = 64
EARLIEST_YEAR, LATEST_YEAR = 1990, 2099
# besides ISO 8601: what a spreadsheet may leave of it ("2026-1-5 9:05")
_TIME_FORMATS = ("%Y-%m-%d %H:%M:%S %z", "%Y-%m-%d %H:%M %z", "%Y-%m-%dT%H:%M:%S%z",
                 "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M",
                 "%Y-%m-%d")


def read_text(value, cap: int, *, keep_lines: bool = False) -> str:
    """Text from a file or a payload, whatever it holds there: a string or a number as text, ""
    for anything else (nothing, true/false, an object). Control characters and lone surrogates go
    (no database stores NUL); by default it becomes one line (runs of whitespace as one space),
    with ``keep_lines`` its line breaks and tabs stay (an item name in a quoted CSV cell). Stripped
    and cut at ``cap`` characters."""
    if isinstance(value, bool) or value is None:
        return ""
    if isinstance(value, int):
        try:
            value = str(value)
        except ValueError:  # more digits than Python will write out
            return ""
    elif isinstance(value, float):
        if not math.isfinite(value):
            return ""
        value = str(value)
    elif not isinstance(value, str):
        return ""
    value = _SURROGATES.sub("", value)
    if keep_lines:
        return _CONTROLS_BUT_LINES.sub("", value.replace("\r\n", "\n")).strip()[:cap].rstrip()
    return " ".join(_CONTROLS.sub(" ", value).split())[:cap].rstrip()


class UnreadableTime(ValueError):
    """Not a date and time this app can read (callers say which field, in their own words)."""


def read_time(value, *, keep_offset: bool = False) -> datetime:
    """A date and time written as text: ISO 8601 (``2026-11-10T18:33:00Z``, ``2026-11-10
    18:33:00 -0500``, a bare date) or a spreadsheet's shortening of it. No offset means UTC. In
    UTC, or with ``keep_offset`` in its own offset. Refuses (``UnreadableTime``) anything else,
    more than ``MAX_TIME_CHARS`` characters, and years outside 1990–2099."""
    if not isinstance(value, str):
        raise UnreadableTime(value)
    s = value.strip()
    if not s or len(s) > MAX_TIME_CHARS:
        raise UnreadableTime(value)
    if s[-1] in "zZ":
        s = s[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(s)
    except ValueError:
        moment = None
        for fmt in _TIME_FORMATS:
            try:
                moment = datetime.strptime(s, fmt)
                break
            except ValueError:
                continue
        if moment is None:
            raise UnreadableTime(value) from None
    try:
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        utc = moment.astimezone(timezone.utc)
    except (ValueError, OverflowError):
        raise UnreadableTime(value) from None
    if not (EARLIEST_YEAR <= utc.year <= LATEST_YEAR):
        raise UnreadableTime(value)
    return moment if keep_offset else utc
