"""A friendly page instead of a traceback (``on_script_error`` of the ``st.App``).

Faults a person can do something about get words that say what: the database busy (another
writer held it past the busy timeout), read-only, or full. Anything else gets a short apology;
the details go to the server log, never to the page.
"""
from __future__ import annotations

import logging

import streamlit as st
from sqlalchemy.exc import DBAPIError

log = logging.getLogger("claims.faults")

BUSY = ("The shop is very busy right now. Please try again in a moment — what you typed on "
        "this page is kept.")
CANNOT_SAVE = ("The shop can't save changes right now. Please try again later; if it keeps "
               "happening, contact the store.")
UNREACHABLE = "The shop can't be reached right now. Please try again in a few minutes."
GENERIC = ("Something went wrong on our side, and nothing was saved by that last step. Please "
           "try again; if it keeps happening, contact the store.")


def explain(exc: BaseException) -> str:
    """Which friendly words fit this exception."""
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


def on_script_error(exc: Exception) -> bool:
    log.error("page failed: %s", type(exc).__name__, exc_info=exc)
    st.error(explain(exc))
    return True  # no traceback on the page
