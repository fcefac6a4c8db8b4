"""What people type: control characters, free-text limits, required fields.

Text is kept verbatim; it is always *shown* as plain text (views/safe_text.py), never as markup.
"""
from __future__ import annotations

import unicodedata

from .errors import ErrorCode, InvalidInput

MAX_COMMENT_CHARS = 4000


def strip_controls(text: str | None) -> str:
    """Drop control characters (NUL and friends) from one-line input: no database stores NUL."""
    return "".join(ch for ch in (text or "") if unicodedata.category(ch) != "Cc")


def clean_comment(text: str | None, field: str = "Your comments") -> str:
    """Trim a free-text field and enforce the visible limit."""
    s = (text or "").replace("\r\n", "\n").strip()
    s = "".join(ch for ch in s if ch in "\n\t" or unicodedata.category(ch) != "Cc")
    if len(s) > MAX_COMMENT_CHARS:
        raise InvalidInput(
            f"{field} can be at most {MAX_COMMENT_CHARS:,} characters; this has {len(s):,}. "
            "Please shorten it.", ErrorCode.TEXT_TOO_LONG)
    return s


def required_text(text: str | None, field: str, if_empty: str) -> str:
    """Like ``clean_comment``, and the text can't be left empty (``if_empty`` says what to write)."""
    s = clean_comment(text, field)
    if not s:
        raise InvalidInput(if_empty, ErrorCode.TEXT_REQUIRED)
    return s
