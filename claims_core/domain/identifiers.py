"""Identifier normalisation: order numbers, tracking numbers, emails, and the key a look-up is
counted under. Search and the look-up throttle both use these, so every spelling of one identifier
finds the same order and counts against the same limit."""
from __future__ import annotations

import hmac
import re
import unicodedata

from .text import strip_controls


def _nfkc(raw: str | None) -> str:
    return unicodedata.normalize("NFKC", strip_controls(raw))


def normalize_order_number(raw: str | None) -> str:
    """``#1001``, ``1001``, `` 1001 `` and ``＃1001`` all become ``1001``."""
    s = _nfkc(raw).strip().lstrip("#").strip()
    return re.sub(r"\s+", "", s).upper()


def normalize_tracking(raw: str | None) -> str:
    """``1Z-999 AA1``, ``1z999aa1`` and ``1Z999AA1`` all become ``1Z999AA1``."""
    return re.sub(r"[\s\-]+", "", _nfkc(raw)).upper()


def normalize_email(raw: str | None) -> str:
    """Emails compare case-insensitively, ignoring stray spaces."""
    return _nfkc(raw).strip().lower()


def emails_match(given: str, on_file: str) -> bool:
    """Constant-time comparison of two emails after normalising both."""
    return hmac.compare_digest(normalize_email(given).encode("utf-8"),
                               normalize_email(on_file).encode("utf-8"))


def lookup_target(query: str | None) -> str:
    """The one key a typed order or tracking number is throttled under: the query as both
    cleaners read it (no ``#``, spaces or dashes, upper case), so ``1Z-999…``, ``1z 999…`` and
    ``1Z999…`` are one target, as they are one shipment to the search."""
    return normalize_tracking(normalize_order_number(query))[:100]
