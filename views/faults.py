"""A friendly page instead of a traceback (``on_script_error`` of the ``st.App``).

Faults a person can do something about get words that say what: the database not set up,
unreachable, busy (another writer held it past the busy timeout), read-only, or full. Anything
else gets a short apology; the details go to the server log, never to the page. The words are
catalog messages, shown in the visitor's language when that can be worked out without the
database (it may be what failed).
"""
from __future__ import annotations

import logging

import streamlit as st

from claims_core.adapters import db_state
from claims_core.adapters.db_state import (  # noqa: F401 - the words, for the pages' tests
    BUSY, CANNOT_SAVE, GENERIC, NOT_SET_UP, UNREACHABLE)

log = logging.getLogger("claims.faults")


def explain(exc: BaseException) -> str:
    """Which friendly words fit this exception (English: the catalog message). The state and the
    words are decided in one place for every door of the app: ``claims_core/adapters/db_state``."""
    return db_state.words(db_state.diagnose(exc, _engine()))


def _engine():
    """The pages' engine, to ask whether the database was ever set up (None if there is none)."""
    try:
        from views import ui  # noqa: PLC0415 - the fault page must load even if ui can't

        return ui.cached_engine()
    except Exception:  # noqa: BLE001
        return None


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
