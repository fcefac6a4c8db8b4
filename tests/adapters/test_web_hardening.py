"""The HTTP side, hardened (issue #26, point 3): log-out is a same-site POST only; HSTS over
HTTPS; ``X-Forwarded-For`` / ``-Proto`` believed only with ``CLAIMS_TRUSTED_PROXIES`` — checked on
the real server ``streamlit run app.py`` starts."""
from __future__ import annotations

import os
import urllib.request

import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from claims_core.adapters import forwarded, web
from claims_core.services import accounts, staff_sessions

from tests.conftest import running_app

PASSWORD = "a long password"


def _app():
    async def page(request):
        return PlainTextResponse(f"page {request.url.path} {request.client.host}")

    return Starlette(routes=web.routes() + [Route("/{path:path}", page)],
                     middleware=[Middleware(web.SecurityHeaders)])


@pytest.fixture
def client(db_url, engine, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", db_url)
    with TestClient(_app(), base_url="http://portal.test", follow_redirects=False) as c:
        yield c
    web._engine_for.cache_clear()


def _session(engine, client) -> str:
    who = accounts.add_user(engine, "agent1", "agent", PASSWORD)
    token = staff_sessions.start(engine, who)
    client.cookies.set("claims_staff", token)
    return token


# --- log-out --------------------------------------------------------------------------------------

def test_log_out_takes_no_get(client, engine):
    token = _session(engine, client)
    r = client.get("/auth/logout")  # no route takes it (here the catch-all page answers)
    assert r.status_code in (200, 404, 405) and "set-cookie" not in r.headers
    assert staff_sessions.resolve(engine, token) is not None  # a link or an <img> logs no one out


@pytest.mark.parametrize("origin", ["http://evil.example", "null", "https://portal.test",
                                    "http://portal.test.evil.example"])
def test_a_log_out_posted_from_another_site_is_refused(client, engine, origin):
    token = _session(engine, client)
    r = client.post("/auth/logout", headers={"origin": origin})
    assert r.status_code == 403 and "set-cookie" not in r.headers
    assert staff_sessions.resolve(engine, token) is not None


def test_the_log_out_page_s_own_post_ends_the_session(client, engine):
    token = _session(engine, client)
    r = client.post(web.LOGOUT_IN_PAGE, headers={"origin": "http://portal.test"})
    assert r.status_code == 204 and 'claims_staff=""' in r.headers["set-cookie"]
    assert staff_sessions.resolve(engine, token) is None


# --- HSTS -----------------------------------------------------------------------------------------

def test_hsts_over_https_only(db_url, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", db_url)
    with TestClient(_app(), base_url="https://portal.test") as c:
        assert c.get("/").headers["strict-transport-security"] == "max-age=31536000"
    with TestClient(_app(), base_url="http://portal.test") as c:
        assert "strict-transport-security" not in c.get("/").headers
    web._engine_for.cache_clear()


# --- forwarded headers: only from a trusted proxy ----------------------------------------------

def _uvicorn_app(monkeypatch, trusted: str):
    """The app uvicorn would serve for ``app:app`` (as ``streamlit run`` has it load it)."""
    import uvicorn.config
    from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

    monkeypatch.setattr(uvicorn.config, "ProxyHeadersMiddleware", ProxyHeadersMiddleware)
    monkeypatch.setenv("CLAIMS_TRUSTED_PROXIES", trusted)
    forwarded.install()
    cfg = uvicorn.config.Config(_app, factory=True, proxy_headers=True)
    cfg.load()
    return cfg.loaded_app


@pytest.mark.parametrize("trusted, expected_scheme, expected_client", [
    ("", "http", "127.0.0.1"), ("0", "http", "127.0.0.1"), ("1", "https", "203.0.113.9")])
def test_uvicorn_believes_forwarded_headers_only_when_trusted(db_url, monkeypatch, trusted,
                                                             expected_scheme, expected_client):
    monkeypatch.setenv("DATABASE_URL", db_url)
    app = _uvicorn_app(monkeypatch, trusted)
    with TestClient(app, base_url="http://portal.test", client=("127.0.0.1", 5000)) as c:
        r = c.get("/x", headers={"x-forwarded-proto": "https", "x-forwarded-for": "203.0.113.9"})
    assert r.text == f"page /x {expected_client}"
    assert ("strict-transport-security" in r.headers) == (expected_scheme == "https")
    web._engine_for.cache_clear()


def test_the_real_server_ignores_forwarded_headers_unless_told(tmp_path):
    """``streamlit run app.py`` (as the README starts it), asked from 127.0.0.1 with
    ``X-Forwarded-Proto: https``: HTTPS (so HSTS) only with ``CLAIMS_TRUSTED_PROXIES=1``."""
    answers = {}
    for trusted in ("", "1"):
        data = tmp_path / f"trusted{trusted or 0}"
        data.mkdir()
        env = {**os.environ, "CLAIMS_DATA_DIR": str(data), "CLAIMS_BACKGROUND": "off",
               "CLAIMS_TRUSTED_PROXIES": trusted}
        env.pop("DATABASE_URL", None)
        with running_app(env, data / "streamlit.log") as base:
            req = urllib.request.Request(base + "/api/v1/openapi.json", headers={
                "X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"})
            with urllib.request.urlopen(req, timeout=30) as r:
                assert r.status == 200
                answers[trusted] = r.headers.get("strict-transport-security")
    assert answers == {"": None, "1": "max-age=31536000"}
