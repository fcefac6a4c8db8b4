"""What people type: control characters, free-text limits, required fields.

Text is kept verbatim; it is always *shown* as plain text (views/safe_text.py), never as markup.
``verbatim`` and ``joined`` build messages (``domain.messages``) around such text.
"""
from __future__ import annotations

import unicodedata

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
