"""Health you can see (issue #23): ``/healthz``, ``/readyz``, ``/metrics`` and the timeouts that
keep a database host that never answers from hanging a page or a cron tick."""
from __future__ import annotations

import contextlib
import socket
import threading
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from starlette.applications import Starlette
from starlette.testclient import TestClient

from claims_core.adapters import db_state, health, web
from claims_core.infra import config, migrate
from claims_core.infra.db import make_engine, utcnow, write_session
from claims_core.infra.models import OutboxMessage, WebhookReceipt
from claims_core.services import customer

from tests.conftest import NOW, ON_POSTGRES, pg_admin_url
from tests.support.factories import claim_request, make_order

TOKEN = "a-metrics-token-of-some-length"


@contextlib.contextmanager
def silent_server():
    """A TCP server that accepts connections and never says a word (a hung database host)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    held, stop = [], threading.Event()

    def accept():
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(srv.accept()[0])
            except OSError:
                pass

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    try:
        yield srv.getsockname()[1]
    finally:
        stop.set()
        t.join(2)
        for c in held:
            c.close()
        srv.close()


def app_client(url: str, monkeypatch) -> TestClient:
    monkeypatch.setenv("DATABASE_URL", url)
    web._engine_for.cache_clear()
    return TestClient(Starlette(routes=web.routes()), raise_server_exceptions=False)


@pytest.fixture
def client(db_url, monkeypatch):
    with app_client(db_url, monkeypatch) as c:
        yield c
    web.engine().dispose()
    web._engine_for.cache_clear()


# --- /healthz and /readyz ----------------------------------------------------------------------------

def test_healthz_answers_without_the_database(monkeypatch):
    with silent_server() as port, app_client(
            f"postgresql+psycopg://u:p@127.0.0.1:{port}/x", monkeypatch) as c:
        started = time.monotonic()
        r = c.get("/healthz")
        assert r.status_code == 200 and r.json() == {"status": "ok"}
        assert time.monotonic() - started < 1  # it never waited for the hung host
    web._engine_for.cache_clear()


def test_readyz_when_ready(client):
    r = client.get("/readyz")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "ready" and body["revision"] == migrate.head_revision()
    assert body["read_only"] is False
    assert r.headers["cache-control"] == "no-store"


def test_readyz_says_not_set_up_and_migrations_pending(fresh_db_url, monkeypatch):
    with app_client(fresh_db_url, monkeypatch) as c:
        r = c.get("/readyz")
        assert r.status_code == 503 and r.json()["reason"] == "database_not_initialised"
        eng = make_engine(fresh_db_url)
        migrate.upgrade(eng, "0015")  # an older release's schema
        eng.dispose()
        r = c.get("/readyz")
        assert r.status_code == 503, r.text
        assert r.json()["reason"] == "migrations_pending" and r.json()["current"] == "0015"
    web.engine().dispose()
    web._engine_for.cache_clear()


def test_readyz_gives_up_on_a_host_that_never_answers(monkeypatch):
    monkeypatch.setattr(health, "READY_TIMEOUT", 0.5)
    with silent_server() as port, app_client(
            f"postgresql+psycopg://u:p@127.0.0.1:{port}/x", monkeypatch) as c:
        started = time.monotonic()
        r = c.get("/readyz")
        assert time.monotonic() - started < 2
        assert r.status_code == 503 and r.json()["reason"] == "database_unavailable"
    web._engine_for.cache_clear()


# --- timeouts ----------------------------------------------------------------------------------------

def test_the_engine_gives_up_on_a_host_that_never_answers(monkeypatch):
    monkeypatch.setenv("CLAIMS_DB_CONNECT_TIMEOUT", "2")
    failed: list = []

    def connect(eng):
        try:
            with eng.connect():
                pass
        except OperationalError as e:
            failed.append(e)

    with silent_server() as port:
        eng = make_engine(f"postgresql+psycopg://u:p@127.0.0.1:{port}/x")
        started = time.monotonic()
        t = threading.Thread(target=connect, args=(eng,), daemon=True)
        t.start()
        t.join(15)  # without a connect timeout: as long as the host keeps quiet (for ever)
        took = time.monotonic() - started
    assert not t.is_alive() and failed, "still waiting for a host that never answers"
    assert took < 6, took
    assert db_state.classify(failed[0]) is db_state.DbState.UNREACHABLE
    eng.dispose()


def test_timeouts_come_from_the_settings_and_keep_the_urls_own_options(monkeypatch):
    from claims_core.infra.db import _postgres_connect_args
    from sqlalchemy.engine import make_url

    monkeypatch.setenv("CLAIMS_DB_CONNECT_TIMEOUT", "7")
    monkeypatch.setenv("CLAIMS_DB_STATEMENT_TIMEOUT", "45")
    args = _postgres_connect_args(make_url("postgresql+psycopg://u:p@h/db?options=-csearch_path%3Dx"))
    assert args["connect_timeout"] == 7
    assert args["options"] == "-csearch_path=x -c statement_timeout=45000"
    monkeypatch.setenv("CLAIMS_DB_STATEMENT_TIMEOUT", "0")  # off
    assert "options" not in _postgres_connect_args(make_url("postgresql+psycopg://u:p@h/db"))
    monkeypatch.setenv("CLAIMS_DB_CONNECT_TIMEOUT", "soon")  # not a number: the default
    assert config.db_connect_timeout() == 5


@pytest.mark.skipif(not ON_POSTGRES, reason="PostgreSQL's statement timeout")
def test_a_statement_over_the_timeout_is_cancelled(monkeypatch):
    monkeypatch.setenv("CLAIMS_DB_STATEMENT_TIMEOUT", "1")
    eng = make_engine(pg_admin_url())
    try:
        started = time.monotonic()
        with pytest.raises(OperationalError) as e:
            with eng.connect() as c:
                c.execute(text("SELECT pg_sleep(5)"))
        assert time.monotonic() - started < 4
        assert db_state.classify(e.value) is db_state.DbState.BUSY
    finally:
        eng.dispose()


# --- /metrics ----------------------------------------------------------------------------------------

def scrape(client, token=TOKEN) -> dict:
    r = client.get("/metrics", headers={"authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain; version=")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(r.text) for s in fam.samples}


def test_metrics_are_off_without_a_token_and_need_it(client, monkeypatch):
    monkeypatch.delenv("CLAIMS_METRICS_TOKEN", raising=False)
    monkeypatch.setenv("CLAIMS_SECRETS_FILE", "/nonexistent/secrets.toml")
    assert client.get("/metrics").status_code == 404
    monkeypatch.setenv("CLAIMS_METRICS_TOKEN", TOKEN)
    assert client.get("/metrics").status_code == 401
    r = client.get("/metrics", headers={"authorization": "Bearer not-the-token"})
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
    assert client.get("/metrics", headers={"authorization": TOKEN}).status_code == 401
    assert client.get("/metrics", headers={"authorization": f"Bearer {TOKEN}"}).status_code == 200


def test_metrics_read_the_database_at_scrape_time(client, engine, monkeypatch):
    monkeypatch.setenv("CLAIMS_METRICS_TOKEN", TOKEN)
    before = scrape(client)
    assert before[("claims_database_up", ())] == 1
    assert before[("claims_filed_total", ())] == 0
    built = make_order(engine)
    customer.file_claim(engine, claim_request(built), now=NOW)
    at = utcnow().replace(microsecond=0)
    with write_session(engine) as s:
        s.add(WebhookReceipt(source="shopify", delivery_id="d-1", topic="orders/create",
                             outcome="applied", received_at=at))
        s.add(WebhookReceipt(source="17track", delivery_id="d-2", topic="TRACKING_UPDATED",
                             outcome="ignored", received_at=at))
        s.add(OutboxMessage(dedupe_key="m-1", kind="test", to_addr="a@example.com", subject="s",
                            body_text="b", body_html="b", status="failed"))
        s.execute(text("INSERT INTO background_jobs (name, last_success_at) VALUES "
                       "('send_emails', :at)"), {"at": at.replace(tzinfo=None)})
    after = scrape(client)
    assert after[("claims_filed_total", ())] == 1
    assert after[("claims_claims", (("status", "submitted"),))] == 1
    assert after[("claims_webhooks_received_total", (("outcome", "applied"),
                                                     ("source", "shopify")))] == 1
    assert after[("claims_webhooks_received_total", (("outcome", "ignored"),
                                                     ("source", "17track")))] == 1
    assert after[("claims_outbox_messages", (("kind", "email"), ("status", "failed")))] == 1
    emails = sum(v for (name, labels), v in after.items() if name == "claims_outbox_messages"
                 and dict(labels)["kind"] == "email")
    with engine.connect() as c:
        assert emails == c.execute(text("SELECT count(*) FROM outbox")).scalar()
    assert after[("claims_job_last_success_timestamp_seconds", (("job", "send_emails"),))] \
        == at.timestamp()


def test_metrics_without_the_jobs_table_skip_it(client, engine, monkeypatch):
    """A database from before migration 0016 has no background_jobs: the rest still shows."""
    monkeypatch.setenv("CLAIMS_METRICS_TOKEN", TOKEN)
    with engine.begin() as c:
        c.execute(text("DROP TABLE background_jobs"))
    got = scrape(client)
    assert got[("claims_database_up", ())] == 1 and ("claims_filed_total", ()) in got
    assert not any(name.startswith("claims_job_") for name, _ in got)


def test_metrics_say_the_database_is_down(monkeypatch):
    monkeypatch.setenv("CLAIMS_METRICS_TOKEN", TOKEN)
    port = socket.socket()
    port.bind(("127.0.0.1", 0))
    closed = port.getsockname()[1]
    port.close()
    with app_client(f"postgresql+psycopg://u:p@127.0.0.1:{closed}/x", monkeypatch) as c:
        assert scrape(c) == {("claims_database_up", ()): 0}
    web._engine_for.cache_clear()
