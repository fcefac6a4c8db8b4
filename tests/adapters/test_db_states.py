"""No bare "Internal Server Error", whatever state the database is in (issue #26).

Each state is made for real — a database nobody set up, PostgreSQL on a closed port, a host name
that doesn't resolve, a SQLite data folder that is read-only (a read-only bind mount when the tests
run as root, whom file modes don't stop; file modes otherwise) — and each door of the app is tried:
a customer page (AppTest, through the ``on_script_error`` the ``st.App`` uses), a staff page
behind the gate, the log-in (``/auth/login``), the API and a webhook. Every door says the same
words (``claims_core/adapters/db_state.py``); the API and the webhooks answer 503 with a code and
``Retry-After``. The last test starts the real server (``streamlit run app.py``) in each state.
"""
from __future__ import annotations

import contextlib
import html
import json
import os
import shutil
import socket
import subprocess
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy.exc import OperationalError
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient
from streamlit.testing.v1 import AppTest

from claims_core.adapters import api, db_state, inbound_webhooks, web
from claims_core.adapters.db_state import DbState
from claims_core.domain.errors import OrderNotFound, TooManyAttempts
from claims_core.infra.db import is_read_only, make_engine, utcnow
from claims_core.services import accounts, api_keys, customer, lookup, staff_sessions
from claims_core.services.settings import load_settings

from views import faults

from tests.conftest import NOW, ON_POSTGRES, running_app
from tests.support.factories import claim_request, make_order

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "a long password"
SECRET = "shopify-test-secret"
STATES = ["not_set_up", "unreachable", "unresolvable", "read_only"]


@dataclass
class Fault:
    state: DbState
    env: dict  # what the app's environment gets (DATABASE_URL or CLAIMS_DATA_DIR)
    api_code: str
    cookie: str = "not-a-session-but-the-gate-must-ask-the-database"
    api_key: str = "ck_" + "x" * 40
    order: tuple[str, str] | None = None
    engine: object = None
    extra: dict = field(default_factory=dict)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens once it is closed


@contextlib.contextmanager
def read_only_folder(folder: Path):
    """``folder`` read-only for real: a read-only bind mount as root (file modes don't stop
    root), file modes otherwise."""
    if os.geteuid() != 0:
        modes = {p: p.stat().st_mode for p in [folder, *folder.iterdir()]}
        for p in modes:
            p.chmod(0o555 if p.is_dir() else 0o444)
        try:
            yield
        finally:
            for p, m in modes.items():
                p.chmod(m)
        return
    made = subprocess.run(["mount", "--bind", "-o", "ro", str(folder), str(folder)],
                          capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"can't make a read-only folder here: {made.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run(["umount", "--lazy", str(folder)], check=True)


def _built_shop(folder: Path, template) -> tuple[str, dict]:
    """A set-up shop in ``folder``: an order, a staff user with a session begun a while ago (its
    last-seen note is due), an API key. Closed cleanly (no -wal/-shm files left)."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(template, folder / "claims.db")
    url = f"sqlite:///{folder / 'claims.db'}"
    eng = make_engine(url)
    built = make_order(eng)
    accounts.add_user(eng, "agent1", "agent", PASSWORD)
    who = accounts.authenticate(eng, "agent1", PASSWORD)
    token = staff_sessions.start(eng, who, now=utcnow() - timedelta(minutes=5))
    _view, key = api_keys.create_key(eng, "ci", "write", "owner")
    eng.dispose()
    return url, {"order": (built.number, built.email), "cookie": token, "api_key": key,
                 "extra": {"built": built}}


@pytest.fixture(params=STATES)
def fault(request, tmp_path, monkeypatch):
    """The app's environment in one database state (``DATABASE_URL`` / ``CLAIMS_DATA_DIR``)."""
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("SHOPIFY_WEBHOOK_SECRET", SECRET)
    name = request.param
    with contextlib.ExitStack() as stack:
        if name == "not_set_up":
            if ON_POSTGRES:  # an empty schema
                f = Fault(DbState.NOT_SET_UP,
                          {"DATABASE_URL": request.getfixturevalue("fresh_db_url")},
                          "database_not_initialised")
            else:  # a new user's first start: an empty data folder
                f = Fault(DbState.NOT_SET_UP, {"CLAIMS_DATA_DIR": str(tmp_path / "data")},
                          "database_not_initialised")
        elif name == "unreachable":
            f = Fault(DbState.UNREACHABLE, {"DATABASE_URL": "postgresql+psycopg://claims:claims@"
                                            f"127.0.0.1:{_closed_port()}/claims"},
                      "database_unavailable")
        elif name == "unresolvable":
            f = Fault(DbState.UNREACHABLE, {"DATABASE_URL": "postgresql+psycopg://claims:claims@"
                                            "db.nowhere.invalid:5432/claims"},
                      "database_unavailable")
        else:
            data = tmp_path / "data"
            _url, made = _built_shop(data, request.getfixturevalue("sqlite_template"))
            stack.enter_context(read_only_folder(data))
            f = Fault(DbState.READ_ONLY, {"CLAIMS_DATA_DIR": str(data)}, "database_read_only",
                      **made)
        for k, v in f.env.items():
            monkeypatch.setenv(k, v)
        try:
            yield f
        finally:
            web.engine().dispose()  # its connections closed before the folder is unmounted
            web._engine_for.cache_clear()


@pytest.fixture
def client(fault):
    """The app's routes and middleware as ``app.py`` puts them together; Streamlit's pages are
    stood in for by a plain answer (the gate is what runs before them)."""
    async def page(request):
        return PlainTextResponse(f"page {request.url.path}")

    app = Starlette(
        routes=web.routes() + inbound_webhooks.routes() + [api.mount(), Route("/{path:path}", page)],
        middleware=[Middleware(web.SecurityHeaders), Middleware(web.DatabaseFaults),
                    Middleware(web.StaffGate, staff_paths=("login", "queue", "analytics"))])
    with TestClient(app, base_url="http://portal.test", follow_redirects=False,
                    raise_server_exceptions=False) as c:
        yield c


def says(r, state: DbState) -> bool:
    return db_state.words(state) in html.unescape(r.text)


def assert_plain_page(r, state: DbState):
    assert r.status_code == 503, (r.status_code, r.text[:300])
    assert r.headers["content-type"].startswith("text/html")
    assert says(r, state), r.text[:500]
    assert int(r.headers["retry-after"]) > 0
    assert "Internal Server Error" not in r.text and "Traceback" not in r.text


def signed_webhook(client):
    from tests.adapters.test_live_feeds import shopify_order  # a whole order, as Shopify sends it

    body = json.dumps(shopify_order()).encode()
    return client.post("/webhooks/shopify", content=body, headers={
        "x-shopify-hmac-sha256": inbound_webhooks.shopify_signature(body, SECRET),
        "x-shopify-topic": "orders/create", "x-shopify-webhook-id": "d-1",
        "content-type": "application/json"})


# --- the staff pages, the log-in, the API, the webhooks ---------------------------------------------

def test_the_log_in_and_the_staff_pages(client, fault):
    form = {"username": "agent1", "password": PASSWORD, "next": "/queue"}
    if fault.state is DbState.READ_ONLY:
        # reads work: the form, and a staff page for a session begun before (its last-seen note,
        # a write, is skipped); logging in must write a session: the words say it can't be saved
        assert client.get("/auth/login").status_code == 200
        r = client.get("/queue", cookies={web.COOKIE: fault.cookie})
        assert r.status_code == 200 and r.text == "page /queue"
        r = client.post("/auth/login", data=form, headers={"origin": "http://portal.test"})
        assert_plain_page(r, fault.state)
        return
    assert_plain_page(client.get("/auth/login?next=/queue"), fault.state)
    assert_plain_page(client.post("/auth/login", data=form,
                                  headers={"origin": "http://portal.test"}), fault.state)
    for path in ("/queue", "/analytics", "/login"):
        r = client.get(path, cookies={web.COOKIE: fault.cookie})
        assert_plain_page(r, fault.state)
        assert r.headers["x-frame-options"] == "SAMEORIGIN"  # still behind the security headers


def test_the_api_answers_problem_json_with_a_code(client, fault):
    auth = {"authorization": f"Bearer {fault.api_key}"}
    if fault.state is DbState.READ_ONLY:  # a write
        r = client.put("/api/v1/orders/2001", headers=auth, json={
            "email": "a@example.com", "created_at": "2026-11-01T10:00:00Z", "total_cents": 1000,
            "line_items": [{"sku": "S", "name": "N", "quantity": 1, "unit_price_cents": 1000}]})
    else:
        r = client.get("/api/v1/claims", headers=auth)
    assert r.status_code == 503, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["code"] == fault.api_code and body["status"] == 503
    assert int(r.headers["retry-after"]) > 0


def test_a_webhook_gets_503_and_retry_after_so_the_sender_retries(client, fault):
    r = signed_webhook(client)
    assert r.status_code == 503, r.text
    assert int(r.headers["retry-after"]) > 0
    assert r.json()["code"] == fault.api_code


def test_health_says_why_it_is_not_ready(client, fault):
    assert client.get("/healthz").status_code == 200  # the process answers all the same
    r = client.get("/readyz")
    if fault.state is DbState.READ_ONLY:  # reads work: ready, and says it's read-only
        assert r.status_code == 200 and r.json()["read_only"] is True
        return
    assert r.status_code == 503
    assert r.json()["reason"] == fault.api_code


# --- the customer pages -------------------------------------------------------------------------------

def _customer_page(script: str):
    """A page of the app as the ``st.App`` runs it: a fault goes to ``on_script_error``."""
    import runpy

    from views import faults
    try:
        runpy.run_path(script, run_name="__main__")
    except Exception as e:  # noqa: BLE001 - what st.App(on_script_error=...) does
        faults.on_script_error(e)


def test_the_customer_page_says_what_to_do(fault, monkeypatch):
    from views import ui

    ui.release_engines()
    # run alone, the page has no navigation to resolve its link to the privacy notice (the app's
    # navigation script registers it; tests/test_privacy_notice.py checks the link)
    monkeypatch.setattr(ui, "privacy_link", lambda: None)
    at = AppTest.from_function(_customer_page, args=(str(ROOT / "views/customer/file_claim.py"),),
                               default_timeout=30).run()
    assert not at.exception, at.exception
    errors = [e.value for e in at.error]
    if fault.state is DbState.READ_ONLY:
        # the look-up works on a read-only database (its misses are counted in this process)
        assert errors == []
        number, email = fault.order
        at.text_input(key="lookup_query").input(number)
        at.text_input(key="lookup_email").input(email)
        at.button[0].click()
        at.run()
        assert not at.exception and [e.value for e in at.error] == []
        shown = [str(m.value) for m in [*at.markdown, *at.subheader, *at.header, *at.title]]
        assert any(number in text for text in shown), shown
    else:
        assert errors == [db_state.words(fault.state)]
    ui.release_engines()


# --- a read-only SQLite database: every read works, every write says it can't be saved -----------

@pytest.fixture
def frozen(tmp_path, sqlite_template):
    data = tmp_path / "data"
    url, made = _built_shop(data, sqlite_template)
    lookup._remembered.clear()  # the throttle's in-process count (a read-only database)
    with read_only_folder(data):
        eng = make_engine(url)
        yield eng, made
        eng.dispose()
    lookup._remembered.clear()


def test_a_read_only_folder_serves_every_read(frozen):
    from claims_core.services import analytics, claim_queue
    eng, made = frozen
    assert is_read_only(eng)
    number, email = made["order"]
    assert lookup.guarded_lookup(eng, number, email, "203.0.113.9", now=NOW).name == f"#{number}"
    assert lookup.guarded_find_claims(eng, number, email, "203.0.113.9", now=NOW) == []
    assert claim_queue.queue_page(eng, claim_queue.QueueFilter()) is not None
    today = NOW.date()
    f = analytics.AnalyticsFilter(today - timedelta(days=90), today)
    assert len(analytics.claim_rates(eng, f).index) >= 0
    assert staff_sessions.resolve(eng, made["cookie"]).username == "agent1"  # no last-seen write
    with pytest.raises(OperationalError) as e:  # filing a claim writes
        customer.file_claim(eng, claim_request(made["extra"]["built"]), now=NOW)
    assert db_state.diagnose(e.value, eng) is DbState.READ_ONLY
    assert faults.explain(e.value) == faults.CANNOT_SAVE  # the customer page's words


def test_on_a_read_only_database_the_look_up_throttle_still_holds(frozen):
    """The misses can't be recorded in the database: they are kept in the process, on top of
    those on record, and the limit still applies (to a wrong email as to a guessed order)."""
    eng, made = frozen
    number, _email = made["order"]
    limit = load_settings(eng).lookup_max_misses
    client = f"198.51.100.{os.getpid() % 250}"
    for _ in range(limit):
        with pytest.raises(OrderNotFound):
            lookup.guarded_lookup(eng, number, "not.the.buyer@example.com", client, now=NOW,
                                  sleep=lambda _s: None)
    with pytest.raises(TooManyAttempts):  # refused, even with the right email
        lookup.guarded_lookup(eng, number, made["order"][1], client, now=NOW,
                              sleep=lambda _s: None)


# --- the real server (``streamlit run app.py``): app.py puts the same pieces together -------------

@pytest.mark.slow
@pytest.mark.parametrize("name", STATES)
def test_the_real_server_in_each_state(name, tmp_path, request):
    env = {**os.environ, "SHOPIFY_WEBHOOK_SECRET": SECRET}
    env.pop("DATABASE_URL", None)
    data = tmp_path / "data"
    made: dict = {}
    with contextlib.ExitStack() as stack:
        if name == "not_set_up":
            state, code = DbState.NOT_SET_UP, "database_not_initialised"
            env["CLAIMS_DATA_DIR"] = str(data)  # a new user's first start
        elif name == "read_only":
            state, code = DbState.READ_ONLY, "database_read_only"
            _url, made = _built_shop(data, request.getfixturevalue("sqlite_template"))
            stack.enter_context(read_only_folder(data))
            env["CLAIMS_DATA_DIR"] = str(data)
        else:
            state, code = DbState.UNREACHABLE, "database_unavailable"
            host = f"127.0.0.1:{_closed_port()}" if name == "unreachable" else "db.nowhere.invalid"
            env["DATABASE_URL"] = f"postgresql+psycopg://claims:claims@{host}/claims"
        base = stack.enter_context(running_app(env, tmp_path / "streamlit.log"))
        with httpx.Client(base_url=base, follow_redirects=False, timeout=30) as c:
            assert c.get("/healthz").status_code == 200
            c.cookies.set(web.COOKIE, made.get("cookie", "an-old-cookie"))
            r = c.get("/queue")
            if state is DbState.READ_ONLY:
                assert r.status_code == 200  # the staff page for a session begun before
                assert c.get("/readyz").json()["read_only"] is True
            else:
                assert_plain_page(r, state)
                assert_plain_page(c.get("/auth/login"), state)
                assert c.get("/readyz").status_code == 503
            key = made.get("api_key", "ck_" + "x" * 40)
            r = c.put("/api/v1/orders/2001", headers={"authorization": f"Bearer {key}"}, json={
                "email": "a@example.com", "created_at": "2026-11-01T10:00:00Z",
                "total_cents": 1000,
                "line_items": [{"sku": "S", "name": "N", "quantity": 1, "unit_price_cents": 1000}]})
            assert r.status_code == 503 and r.json()["code"] == code, r.text
            assert r.headers["content-type"].startswith("application/problem+json")
            r = signed_webhook(c)
            assert r.status_code == 503 and int(r.headers["retry-after"]) > 0, r.text
