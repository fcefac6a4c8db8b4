"""A friendly page instead of a traceback (``on_script_error`` of the ``st.App``).

Faults a person can do something about get words that say what: the database busy (another
writer held it past the busy timeout), read-only, or full. Anything else gets a short apology;
the details go to the server log, never to the page. The words are catalog messages, shown in
the visitor's language when that can be worked out without the database (it may be what failed).
"""
from __future__ import annotations

import logging

import streamlit as st
from sqlalchemy.exc import DBAPIError

from claims_core.domain.messages import N_

log = logging.getLogger("claims.faults")

BUSY = N_("The shop is very busy right now. Please try again in a moment — what you typed on "
          "this page is kept.")
CANNOT_SAVE = N_("The shop can't save changes right now. Please try again later; if it keeps "
                 "happening, contact the store.")
UNREACHABLE = N_("The shop can't be reached right now. Please try again in a few minutes.")
GENERIC = N_("Something went wrong on our side, and nothing was saved by that last step. Please "
             "try again; if it keeps happening, contact the store.")


def explain(exc: BaseException) -> str:
    """Which friendly words fit this exception (English: the catalog message)."""
    text = str(getattr(exc, "orig", None) or exc).lower()
    if isinstance(exc, DBAPIError) or "sqlite" in type(exc).__module__:
        if "database is locked" in text or "could not obtain lock" in text:
            return BUSY
        if "readonly" in text or "read-only" in text or "read only" in text:
            return CANNOT_SAVE
        if "disk is full" in text or "no space left" in text or "disk full" in text:
            return CANNOT_SAVE
        if "connection" in text and ("refused" in text or "failed" in text):
            return UNREACHABLE
    if isinstance(exc, OSError) and getattr(exc, "errno", None) == 28:  # ENOSPC
        return CANNOT_SAVE
    return GENERIC


def translated(text: str) -> str:
    """``text`` (one of the messages above) in the visitor's language, else in English: this page
    must never fail. The language comes from ``?lang=`` and the browser only, like ``ui.t()``
    without the store's default language, which would need the database."""
    try:
        from claims_core.infra import i18n  # noqa: PLC0415 - the fault page's one dependency

        headers = st.context.headers or {}
        accept = headers.get("Accept-Language") if hasattr(headers, "get") else None
        locale = st.context.locale
        locale = locale if isinstance(locale, str) else None
        code = i18n.negotiate(st.query_params.get("lang"), locale,
                              accept if isinstance(accept, str) else None, None)
        t = i18n.translator(code, i18n.region_of(code, locale))
        return t(text) or text
    except Exception:  # noqa: BLE001 - whatever went wrong, the English words still help
        log.warning("fault page: no translation", exc_info=True)
        return text


def on_script_error(exc: Exception) -> bool:
    log.error("page failed: %s", type(exc).__name__, exc_info=exc)
    st.error(translated(explain(exc)))
    return True  # no traceback on the page
