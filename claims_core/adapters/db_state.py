"""What state the database is in when something failed, and the one set of words for it.

Every door of the app says the same thing about the same fault: the customer pages (the
``st.App``'s ``on_script_error``, ``views/faults.py``), the staff pages' gate and the log-in
(``DatabaseFaults``: a plain page), the API (``application/problem+json`` with a code) and the
webhooks (503 with ``Retry-After``, so the sender retries and nothing is lost).

- ``classify(exc)`` names the fault from the exception alone (no database needed);
- ``diagnose(exc, engine)`` also asks the database, when the exception doesn't say, whether it
  was ever set up (``python -m claims_core init``) — an empty database fails with "no such
  table", which means nothing to a shop owner;
- ``words(state)`` is the message for a person; ``code(state)`` the API's error code.
"""
from __future__ import annotations

import errno
import html
import logging
from enum import StrEnum
from functools import lru_cache

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..domain.errors import ErrorCode
from ..domain.messages import N_
from ..infra import i18n, migrate

log = logging.getLogger("claims.faults")


class DbState(StrEnum):
    NOT_SET_UP = "not_set_up"  # no schema, or migrations pending: run init
    UNREACHABLE = "unreachable"  # refused, no such host, timed out, can't open the file
    BUSY = "busy"  # another writer held the lock past the busy timeout
    READ_ONLY = "read_only"  # reads work, a write was refused
    FULL = "full"  # the disk is full
    BROKEN = "broken"  # anything else


BUSY = N_("The shop is very busy right now. Please try again in a moment — what you typed on "
          "this page is kept.")
CANNOT_SAVE = N_("The shop can't save changes right now. Please try again later; if it keeps "
                 "happening, contact the store.")
UNREACHABLE = N_("The shop can't be reached right now. Please try again in a few minutes.")
GENERIC = N_("Something went wrong on our side, and nothing was saved by that last step. Please "
             "try again; if it keeps happening, contact the store.")
# Words for whoever runs the shop (a customer can't act on them): English, like the CLI.
NOT_SET_UP = ("The shop's database isn't set up yet. Run `python -m claims_core init` "
              "(the README's start command does), then reload this page.")

_WORDS = {DbState.NOT_SET_UP: NOT_SET_UP, DbState.UNREACHABLE: UNREACHABLE, DbState.BUSY: BUSY,
          DbState.READ_ONLY: CANNOT_SAVE, DbState.FULL: CANNOT_SAVE, DbState.BROKEN: GENERIC}
_CODES = {DbState.NOT_SET_UP: ErrorCode.DATABASE_NOT_INITIALISED,
          DbState.READ_ONLY: ErrorCode.DATABASE_READ_ONLY,
          DbState.BROKEN: ErrorCode.INTERNAL_ERROR}
# seconds a client (a webhook sender, an API client) should wait before trying again
_RETRY_AFTER = {DbState.BUSY: 5, DbState.UNREACHABLE: 30, DbState.NOT_SET_UP: 120,
                DbState.READ_ONLY: 300, DbState.FULL: 300}

_UNREACHABLE_SIGNS = ("connection refused", "connection failed", "could not connect",
                      "failed to resolve host", "could not translate host name",
                      "name or service not known", "timeout expired", "timed out",
                      "server closed the connection", "terminating connection",
                      "connection is closed", "connection not open", "no route to host",
                      "network is unreachable", "unable to open database file",
                      "password authentication failed")


def words(state: DbState) -> str:
    """What to tell a person (English; a catalog message where a customer can read it)."""
    return _WORDS[state]


def code(state: DbState) -> ErrorCode:
    return _CODES.get(state, ErrorCode.DATABASE_UNAVAILABLE)


def retry_after(state: DbState) -> int | None:
    return _RETRY_AFTER.get(state)


def classify(exc: BaseException) -> DbState:
    """The fault this exception shows, from the exception alone."""
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).lower()
    if isinstance(exc, DBAPIError) or "sqlite" in type(exc).__module__ \
            or "psycopg" in type(orig).__module__:
        if "database is locked" in text or "could not obtain lock" in text \
                or "statement timeout" in text or "lock timeout" in text:
            return DbState.BUSY
        if "readonly" in text or "read-only" in text or "read only" in text \
                or getattr(orig, "sqlstate", None) == "25006":
            return DbState.READ_ONLY
        if "disk is full" in text or "no space left" in text or "disk full" in text:
            return DbState.FULL
        if "no such table" in text or "undefined table" in text \
                or ("relation" in text and "does not exist" in text):
            return DbState.NOT_SET_UP
        if any(sign in text for sign in _UNREACHABLE_SIGNS) \
                or ("database" in text and "does not exist" in text) \
                or ("connection" in text and ("refused" in text or "failed" in text)):
            return DbState.UNREACHABLE
    if isinstance(exc, OSError) and getattr(exc, "errno", None) == errno.ENOSPC:
        return DbState.FULL
    return DbState.BROKEN


@lru_cache(maxsize=1)
def _head() -> str:
    return migrate.head_revision()


def schema_state(engine: Engine) -> tuple[str | None, str]:
    """The database's migration revision (None: never set up) and the code's."""
    return migrate.current_revision(engine), _head()


def diagnose(exc: BaseException, engine: Engine | None) -> DbState:
    """``classify``, and for a database error the exception doesn't explain, whether the schema
    is there and current (a half-migrated database fails in any number of ways)."""
    state = classify(exc)
    if state is DbState.BROKEN and isinstance(exc, DBAPIError) and engine is not None:
        try:
            current, head = schema_state(engine)
            if current != head:
                return DbState.NOT_SET_UP
        except Exception as e:  # noqa: BLE001 - asking may fail the same way
            return classify(e)
    return state


# --- the answers ----------------------------------------------------------------------------------

def _language(request: Request) -> str:
    return i18n.negotiate(request.query_params.get("lang"), None,
                          request.headers.get("accept-language"), None)


def translated(text: str, lang: str) -> str:
    """``text`` in ``lang`` when the catalogs have it, else as it is (this must never fail)."""
    try:
        return i18n.translator(lang)(text) or text
    except Exception:  # noqa: BLE001
        log.warning("fault page: no translation", exc_info=True)
        return text


def _headers(state: DbState) -> dict:
    wait = retry_after(state)
    return {"Retry-After": str(wait)} if wait else {}


def _status(state: DbState) -> int:
    return 500 if state is DbState.BROKEN else 503


def page(state: DbState, request: Request) -> HTMLResponse:
    """The plain page a browser gets (the staff pages' gate, the log-in): the same words the
    customer pages show, in the visitor's language where the catalogs have them."""
    lang = _language(request)
    text = translated(words(state), lang)
    body = ("<!doctype html><html lang='" + html.escape(lang) + "'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            "<title>Claims</title><style>body{font-family:system-ui,sans-serif;max-width:30rem;"
            "margin:3rem auto;padding:0 1rem;color:#1f2937}.err{background:#fee2e2;color:#991b1b;"
            "padding:.8rem;border-radius:.4rem}</style></head><body>"
            f"<p class='err' role='alert' data-state='{state.value}'>{html.escape(text)}</p>"
            "</body></html>")
    return HTMLResponse(body, status_code=_status(state), headers=_headers(state))


def problem(state: DbState, instance: str) -> JSONResponse:
    """The API's answer: ``application/problem+json`` with the code (and ``Retry-After``)."""
    c = str(code(state))
    body = {"type": "https://docs.claims-portal.dev/problems/" + c,
            "title": c.replace("_", " ").capitalize(), "status": _status(state),
            "detail": words(state), "code": c, "instance": instance}
    return JSONResponse(body, status_code=_status(state), media_type="application/problem+json",
                        headers=_headers(state))


def webhook_answer(state: DbState) -> JSONResponse:
    """A webhook that couldn't be stored: 503 (or 500) with ``Retry-After``: every sender
    (Shopify, 17TRACK, EasyPost) retries a delivery that wasn't acknowledged with a 2xx."""
    headers = _headers(state) or {"Retry-After": "60"}
    return JSONResponse({"error": words(state), "code": str(code(state))},
                        status_code=503 if state is not DbState.BROKEN else 500, headers=headers)


def log_fault(state: DbState, exc: BaseException, method, path) -> None:
    """One line for a state the words explain (the cause included); the traceback otherwise."""
    if state is DbState.BROKEN:
        log.error("%s %s failed: %s", method, path, type(exc).__name__, exc_info=exc)
    else:
        cause = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        log.error("%s %s: the database is %s (%s: %s)", method, path, state.value,
                  type(exc).__name__, cause[0][:300] if cause else "")


def answer(state: DbState, request: Request) -> Response:
    """The answer for this request's kind of door (API, webhook, or a browser's page)."""
    path = request.url.path
    if path.startswith("/api/"):
        return problem(state, path)
    if path.startswith("/webhooks/"):
        return webhook_answer(state)
    return page(state, request)


class DatabaseFaults:
    """Catches what a route or a middleware inside it raised (before any answer went out) and
    answers with the words for the fault instead of a bare "Internal Server Error"."""

    def __init__(self, app: ASGIApp, engine=None):
        self.app = app
        self.engine = engine  # a callable giving the routes' engine (for ``diagnose``)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception as exc:  # noqa: BLE001 - every fault gets an answer
            if started:
                raise
            engine = None
            if self.engine is not None:
                try:
                    engine = self.engine()
                except Exception:  # noqa: BLE001
                    engine = None
            state = await run_in_threadpool(diagnose, exc, engine)
            log_fault(state, exc, scope.get("method"), scope.get("path"))
            await answer(state, Request(scope))(scope, receive, send)
