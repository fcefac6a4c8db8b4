"""The HTTP side of the app (``claims_core/adapters/web.py``): the staff log-in that sets the
session cookie, log-out, the gate that sends staff links to the log-in, security headers; and the
session rows behind the cookie (``services/staff_sessions.py``)."""
from __future__ import annotations

from datetime import timedelta

import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from claims_core.adapters import web
from claims_core.infra.db import utcnow
from claims_core.services import accounts, staff_sessions

PASSWORD = "a long password"


@pytest.fixture
def client(db_url, engine, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", db_url)
    accounts.add_user(engine, "agent1", "agent", PASSWORD)

    async def page(request):  # stands in for Streamlit's pages
        return PlainTextResponse(f"page {request.url.path}")

    app = Starlette(
        routes=web.routes() + [Route("/{path:path}", page)],
        middleware=[Middleware(web.SecurityHeaders),
                    Middleware(web.StaffGate, staff_paths=("login", "queue", "claim"))])
    with TestClient(app, base_url="http://portal.test", follow_redirects=False) as c:
        yield c
    web._engine_for.cache_clear()


def log_in(client, password=PASSWORD, next_path="/queue", **headers):
    return client.post("/auth/login", data={"username": "agent1", "password": password,
                                            "next": next_path},
                       headers={"origin": "http://portal.test", **headers})


def test_login_sets_an_httponly_samesite_cookie_and_returns_to_the_page(client, engine):
    r = log_in(client)
    assert r.status_code == 303 and r.headers["location"] == "/queue"
    cookie = r.headers["set-cookie"]
    assert "claims_staff=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
    assert "Secure" not in cookie  # plain http here; https gets Secure
    token = r.cookies["claims_staff"]
    assert staff_sessions.resolve(engine, token).username == "agent1"
    # the row holds the token's hash, never the token
    from sqlalchemy import select

    from claims_core.infra.db import read_session
    from claims_core.infra.models import StaffSession
    with read_session(engine) as s:
        assert s.scalars(select(StaffSession.token_hash)).all() == [staff_sessions.token_hash(token)]


def test_https_cookie_is_secure(db_url, engine, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", db_url)
    accounts.add_user(engine, "agent1", "agent", PASSWORD)
    app = Starlette(routes=web.routes())
    with TestClient(app, base_url="https://portal.test", follow_redirects=False) as c:
        r = c.post("/auth/login", data={"username": "agent1", "password": PASSWORD},
                   headers={"origin": "https://portal.test"})
    web._engine_for.cache_clear()
    assert "Secure" in r.headers["set-cookie"]


def test_wrong_password_and_unknown_user_read_the_same(client):
    a = log_in(client, password="wrong password")
    b = client.post("/auth/login", data={"username": "nobody", "password": PASSWORD},
                    headers={"origin": "http://portal.test"})
    assert a.status_code == b.status_code == 401 and "set-cookie" not in a.headers
    assert accounts.LOGIN_FAILED.split(",")[0] in a.text and accounts.LOGIN_FAILED.split(",")[0] in b.text


@pytest.mark.parametrize("target", ["https://evil.example/x", "//evil.example/x", "/\\evil.example",
                                    "javascript:alert(1)", ""])
def test_after_login_only_same_site_paths(client, target):
    r = log_in(client, next_path=target)
    assert r.status_code == 303 and r.headers["location"] == "/login"


def test_a_login_posted_from_another_site_is_refused(client):
    r = log_in(client, origin="http://evil.example")
    assert r.status_code == 200 and "set-cookie" not in r.headers


def test_a_new_login_replaces_the_browser_s_old_session(client, engine):
    first = log_in(client).cookies["claims_staff"]
    client.cookies.set("claims_staff", first)
    second = log_in(client).cookies["claims_staff"]
    assert first != second  # the token rotates at every log-in
    assert staff_sessions.resolve(engine, first) is None
    assert staff_sessions.resolve(engine, second) is not None


def test_logout_deletes_the_row_and_clears_the_cookie(client, engine):
    token = log_in(client).cookies["claims_staff"]
    client.cookies.set("claims_staff", token)
    r = client.post("/auth/logout", headers={"origin": "http://portal.test"})
    assert r.status_code == 303 and 'claims_staff=""' in r.headers["set-cookie"]
    assert staff_sessions.resolve(engine, token) is None


def test_a_staff_link_without_a_session_goes_to_the_login_and_back(client):
    r = client.get("/claim?id=7")
    assert r.status_code == 303
    assert r.headers["location"] == "/auth/login?next=%2Fclaim%3Fid%3D7"
    form = client.get(r.headers["location"])
    assert form.status_code == 200
    assert "value='/claim?id=7'" in form.text
    done = log_in(client, next_path="/claim?id=7")
    assert done.headers["location"] == "/claim?id=7"
    client.cookies.set("claims_staff", done.cookies["claims_staff"])
    assert client.get("/claim?id=7").text == "page /claim"  # signed in: the page itself


def test_public_pages_and_the_websocket_are_not_gated(client):
    assert client.get("/").status_code == 200
    assert client.get("/my-claim?token=x").status_code == 200


def test_security_headers_on_every_response(client):
    for path in ("/", "/auth/login", "/my-claim"):
        h = client.get(path).headers
        assert "frame-ancestors" in h["content-security-policy"]
        assert h["x-content-type-options"] == "nosniff"
        assert h["referrer-policy"] == "strict-origin-when-cross-origin"


# --- the session rows ---------------------------------------------------------------------------

def test_idle_and_absolute_expiry(engine):
    who = accounts.add_user(engine, "sam", "agent", PASSWORD)
    now = utcnow()
    token = staff_sessions.start(engine, who, now=now)
    assert staff_sessions.resolve(engine, token, now=now + timedelta(hours=1)) is not None
    # used every hour: alive until the absolute end, then over
    for h in range(2, 12):
        assert staff_sessions.resolve(engine, token, now=now + timedelta(hours=h)) is not None
    assert staff_sessions.resolve(engine, token, now=now + timedelta(hours=12, minutes=1)) is None
    idle = staff_sessions.start(engine, who, now=now)
    assert staff_sessions.resolve(engine, idle, now=now + timedelta(hours=2, minutes=1)) is None


def test_deactivation_and_password_change_end_sessions_at_once(engine):
    accounts.add_user(engine, "boss", "owner", PASSWORD)
    who = accounts.add_user(engine, "sam", "agent", PASSWORD)
    token = staff_sessions.start(engine, who)
    accounts.set_active(engine, "sam", False, actor="staff:boss")
    assert staff_sessions.resolve(engine, token) is None  # the open tab stops working now
    accounts.set_active(engine, "sam", True, actor="staff:boss")
    token = staff_sessions.start(engine, who)
    accounts.change_password(engine, "sam", "another long password", actor="staff:boss")
    assert staff_sessions.resolve(engine, token) is None


def test_a_forged_or_overlong_cookie_is_nobody(engine):
    assert staff_sessions.resolve(engine, "made-up") is None
    assert staff_sessions.resolve(engine, "x" * 5000) is None
    assert staff_sessions.resolve(engine, None) is None
