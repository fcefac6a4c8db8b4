"""HTTP around the Streamlit pages (routes and middleware of the ``st.App`` in ``app.py``).

- ``/auth/login`` (GET: a plain form; POST: check the password, start a session, set the
  HttpOnly cookie, go back to the page asked for) and ``/auth/logout``. Streamlit's own websocket
  can't set cookies, so staff sessions start and end here.
- ``StaffGate``: a staff page's URL opened without a session (a bookmark, a reload, a link in a
  notification email) is sent to the log-in form, which then returns to it.
- ``DatabaseFaults``: a fault (the database not set up, unreachable, read-only…) answered with
  the same words the customer pages show (``db_state``), never a bare "Internal Server Error".
- ``/healthz``, ``/readyz``, ``/metrics``: see ``health``.
- ``SecurityHeaders``: a Content-Security-Policy with ``frame-ancestors``, ``nosniff``, a referrer
  policy and ``X-Frame-Options`` on every response.
"""
from __future__ import annotations

import html
from functools import lru_cache
from urllib.parse import urlencode

from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..domain.errors import ClaimRuleError
from ..domain.identifiers import client_address
from ..domain.windows import SESSION_MAX
from ..infra import config
from ..infra.db import make_engine
from ..services import accounts, staff_sessions
from ..services.settings import load_settings
from . import db_state, health

COOKIE = staff_sessions.COOKIE
LOGIN_PATH = "/auth/login"
LOGOUT_PATH = "/auth/logout"
LOGOUT_IN_PAGE = LOGOUT_PATH + "?then=stay"


@lru_cache(maxsize=4)
def _engine_for(url: str) -> Engine:
    return make_engine(url)


def engine() -> Engine:
    """The routes' engine (one per process and database URL; the pages have their own)."""
    return _engine_for(config.database_url())


def safe_next(target: str | None, default: str = "/login") -> str:
    """Where to go after log-in: a path of this site only (no scheme, no host, no ``//``)."""
    t = (target or "").strip()
    if not t.startswith("/") or t.startswith("//") or "\\" in t or any(ord(c) < 32 for c in t):
        return default
    return t


def _same_site(request: Request) -> bool:
    """A form post from this site's own page (browsers send Origin on POST)."""
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None  # a browser without Origin: SameSite cookies still apply
    return origin.rstrip("/") == f"{request.url.scheme}://{request.url.netloc}"


def _cookie_flags(request: Request) -> dict:
    return {"httponly": True, "samesite": "lax", "path": "/",
            "secure": request.url.scheme == "https"}


def _page(title: str, body: str, settings) -> HTMLResponse:
    accent = settings.accent_color if len(settings.accent_color or "") == 7 else "#0f766e"
    return HTMLResponse(
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{html.escape(title)} · {html.escape(settings.name)}</title>"
        "<style>body{font-family:system-ui,sans-serif;max-width:26rem;margin:3rem auto;"
        "padding:0 1rem;color:#1f2937}label{display:block;margin:1rem 0 .3rem;font-size:.9rem}"
        "input{width:100%;box-sizing:border-box;padding:.6rem;font-size:1rem;border:1px solid "
        "#cbd5e1;border-radius:.4rem}button{margin-top:1.2rem;width:100%;padding:.7rem;"
        f"font-size:1rem;color:#fff;background:{accent};border:0;border-radius:.4rem}}"
        ".err{background:#fee2e2;color:#991b1b;padding:.6rem;border-radius:.4rem}"
        "p.note{color:#4b5563;font-size:.85rem}</style></head><body>"
        f"<p>{html.escape(settings.name)}</p><h1>{html.escape(title)}</h1>{body}</body></html>")


def _login_form(settings, next_path: str, error: str = "", username: str = "") -> str:
    err = f"<p class='err' role='alert'>{html.escape(error)}</p>" if error else ""
    return (f"{err}<form method='post' action='{LOGIN_PATH}'>"
            f"<input type='hidden' name='next' value='{html.escape(next_path, quote=True)}'>"
            "<label for='u'>Username</label>"
            f"<input id='u' name='username' autocomplete='username' required "
            f"value='{html.escape(username, quote=True)}'>"
            "<label for='p'>Password</label>"
            "<input id='p' name='password' type='password' autocomplete='current-password' required>"
            "<button type='submit'>Log in</button></form>"
            "<p class='note'>Accounts are created by the owner (Settings → Staff) or with "
            "<code>python -m claims_core add-user</code>.</p>")


async def login_page(request: Request) -> Response:
    settings = await run_in_threadpool(load_settings, engine())
    next_path = safe_next(request.query_params.get("next"))
    if await run_in_threadpool(staff_sessions.resolve, engine(), request.cookies.get(COOKIE)):
        return RedirectResponse(next_path, status_code=303)  # signed in already
    note = "Your session ended. Please log in again." if request.query_params.get("ended") else ""
    body = (f"<p>{html.escape(note)}</p>" if note else "") + _login_form(settings, next_path)
    return _page("Staff log in", body, settings)


async def login(request: Request) -> Response:
    form = await request.form()
    next_path = safe_next(str(form.get("next") or ""))
    username = str(form.get("username") or "")[:200]
    eng = engine()
    settings = await run_in_threadpool(load_settings, eng)
    if not _same_site(request):
        return _page("Staff log in", _login_form(settings, next_path, "Please log in from this "
                                                 "site's own page.", username), settings)
    client = client_address(request.client.host if request.client else None,
                            request.headers.get("x-forwarded-for"), config.trusted_proxies())
    try:  # Argon2 (and any slow-down for repeated failures) in a worker thread
        who = await run_in_threadpool(lambda: accounts.authenticate(
            eng, username, str(form.get("password") or ""), client=client))
    except ClaimRuleError as e:
        resp = _page("Staff log in", _login_form(settings, next_path, e.message, username),
                     settings)
        resp.status_code = 401
        return resp
    old = request.cookies.get(COOKIE)
    if old:  # a new log-in replaces whatever session this browser had
        await run_in_threadpool(staff_sessions.end, eng, old)
    token = await run_in_threadpool(staff_sessions.start, eng, who,
                                    (request.headers.get("user-agent") or "")[:200])
    resp = RedirectResponse(next_path, status_code=303)
    resp.set_cookie(COOKIE, token, max_age=int(SESSION_MAX.total_seconds()),
                    **_cookie_flags(request))
    return resp


async def logout(request: Request) -> Response:
    """Ends the session (row deleted) and clears the cookie: POST only, from this site's own pages
    (the Origin check of log-in), so another site can't log a staff member out. ``?then=stay``
    answers 204, for the log-out page's own request (the page then says you're logged out)."""
    if not _same_site(request):
        return Response("Log out from this site's own page.", status_code=403,
                        media_type="text/plain")
    await run_in_threadpool(staff_sessions.end, engine(), request.cookies.get(COOKIE))
    if request.query_params.get("then") == "stay":
        resp: Response = Response(status_code=204)
    else:
        resp = RedirectResponse("/", status_code=303)
    resp.delete_cookie(COOKIE, **_cookie_flags(request))
    return resp


def routes() -> list[Route]:
    return [Route(LOGIN_PATH, login_page, methods=["GET"]),
            Route(LOGIN_PATH, login, methods=["POST"]),
            Route(LOGOUT_PATH, logout, methods=["POST"])] + health.routes(engine)


class DatabaseFaults(db_state.DatabaseFaults):
    """Whatever a route or the staff gate raised gets the words for the database's state (a plain
    page, the API's problem+json, a webhook's 503 with ``Retry-After``), never a bare 500."""

    def __init__(self, app: ASGIApp):
        super().__init__(app, engine=engine)


def login_url(next_path: str, *, ended: bool = False) -> str:
    query = {"next": safe_next(next_path)}
    if ended:
        query["ended"] = "1"
    return f"{LOGIN_PATH}?{urlencode(query)}"


class StaffGate:
    """Sends a staff page's URL, opened without a session, to the log-in form (and back)."""

    def __init__(self, app: ASGIApp, staff_paths: tuple[str, ...] = ()):
        self.app = app
        self.paths = {"/" + p.strip("/") for p in staff_paths}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("method") == "GET" \
                and scope.get("path", "").rstrip("/") in self.paths:
            request = Request(scope)
            token = request.cookies.get(COOKIE)
            who = await run_in_threadpool(staff_sessions.resolve, engine(), token) \
                if token else None
            if who is None:
                target = scope["path"] + (f"?{request.url.query}" if request.url.query else "")
                resp = RedirectResponse(login_url(target, ended=bool(token)), status_code=303)
                if token:  # a cookie whose session is over: cleared
                    resp.delete_cookie(COOKIE, **_cookie_flags(request))
                await resp(scope, receive, send)
                return
        await self.app(scope, receive, send)


SECURITY_HEADERS = (
    # Streamlit renders with inline styles and its own scripts, so the policy fences what can
    # frame the app, where forms post and what base URL counts, not script sources.
    (b"content-security-policy",
     b"frame-ancestors 'self'; base-uri 'self'; form-action 'self'; object-src 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"strict-origin-when-cross-origin"),
    (b"x-frame-options", b"SAMEORIGIN"),
)
# Over HTTPS only (a browser ignores it over plain HTTP): keep to HTTPS for a year. The scheme is
# the connection's, or X-Forwarded-Proto's when CLAIMS_TRUSTED_PROXIES trusts a proxy
# (adapters/forwarded.py).
HSTS = (b"strict-transport-security", b"max-age=31536000")


class SecurityHeaders:
    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = SECURITY_HEADERS + ((HSTS,) if scope.get("scheme") == "https" else ())

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _v in message.get("headers", [])}
                message["headers"] = list(message.get("headers", [])) + [
                    (k, v) for k, v in headers if k not in present]
            await send(message)

        await self.app(scope, receive, with_headers)
