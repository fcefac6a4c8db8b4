"""What the second security probe found in the claims API (issue #26, point 3), each proven here:
the key is checked and the body bounded before a byte of it is read (chunked too); a photo is
bounded from its base64 length; whole ``Idempotency-Key`` values (hashed) tell requests apart;
odd paths and cursors are 4xx, never 500 (and a fuzz test throws anything at the API and the
webhooks); money, ids and counts are strict integers; the rate limit is shared by every instance
(counted in the database); the docs load nothing from another host."""
from __future__ import annotations

import asyncio
import base64
import re

import pytest
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.testclient import TestClient

from claims_core.adapters import api, web
from claims_core.infra.db import read_session
from claims_core.infra.models import ApiIdempotency, ApiRateCounter, Claim
from claims_core.services import api_keys, claims_api

from tests.adapters.test_api import (BASE, auth, count, file_existing, filing_body, order_body, problem,
                       recent_order)


@pytest.fixture
def client(db_url, engine, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("CLAIMS_API_RATE_LIMIT", "1000/hour")
    with TestClient(Starlette(routes=[api.mount()]), base_url=BASE) as c:
        yield c
    web._engine_for.cache_clear()


@pytest.fixture
def write_key(engine):
    return api_keys.create_key(engine, "zapier", "write", "staff:owner")[1]


@pytest.fixture
def read_key(engine):
    return api_keys.create_key(engine, "dashboard", "read", "staff:owner")[1]


# --- the body: the key first, then a bounded read -----------------------------------------------

def _asgi(app, method: str, path: str, headers: dict, chunks) -> tuple[int, dict, bytes, int]:
    """One request straight through ASGI: (status, headers, body, bytes of the body the app
    pulled). ``chunks`` arrive one per ``receive()``, as a server streams them."""
    pulled = 0
    source = iter(chunks)

    async def receive():
        nonlocal pulled
        chunk = next(source, None)
        if chunk is None:
            return {"type": "http.request", "body": b"", "more_body": False}
        pulled += len(chunk)
        return {"type": "http.request", "body": chunk, "more_body": True}

    sent = []

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
             "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "",
             "query_string": b"", "client": ("127.0.0.1", 50000), "server": ("portal.test", 80),
             "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()]}
    asyncio.run(app(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], {k.decode(): v.decode() for k, v in start["headers"]}, body, pulled


CHUNK = b"x" * 65536


def _stream(total: int):
    for _ in range(total // len(CHUNK)):
        yield CHUNK


@pytest.fixture
def asgi_app(db_url, engine, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", db_url)
    yield Starlette(routes=[api.mount()])
    web._engine_for.cache_clear()


def test_without_a_key_nothing_of_the_body_is_read(asgi_app):
    big = 64 * 1024 * 1024
    # declared: 64 MB of JSON, no key
    status, headers, body, pulled = _asgi(asgi_app, "POST", "/api/v1/claims", {
        "content-type": "application/json", "content-length": str(big)}, _stream(big))
    assert status == 401 and pulled == 0, (status, pulled)
    assert headers["content-type"].startswith("application/problem+json")
    # chunked, no Content-Length: still not a byte
    status, _h, _b, pulled = _asgi(asgi_app, "PUT", "/api/v1/orders/1001",
                                   {"content-type": "application/json"}, _stream(8 * 1024 * 1024))
    assert status == 401 and pulled == 0, (status, pulled)


def test_a_read_key_or_a_key_over_its_limit_reads_nothing_either(asgi_app, engine, read_key,
                                                                 monkeypatch):
    status, _h, _b, pulled = _asgi(asgi_app, "POST", "/api/v1/claims", {
        "authorization": f"Bearer {read_key}", "content-type": "application/json"},
        _stream(4 * 1024 * 1024))
    assert status == 403 and pulled == 0


def test_a_declared_body_over_the_limit_is_413_before_it_is_read(asgi_app, write_key):
    for method, path, limit in (("POST", "/api/v1/claims", api.MAX_CLAIM_BODY_BYTES),
                                ("PUT", "/api/v1/orders/1001", api.MAX_BODY_BYTES),
                                ("POST", "/api/v1/claims/CLM-AAAAAA/approve", api.MAX_BODY_BYTES)):
        status, headers, body, pulled = _asgi(asgi_app, method, path, {
            "authorization": f"Bearer {write_key}", "content-type": "application/json",
            "content-length": str(limit + 1)}, _stream(limit + len(CHUNK)))
        assert (status, pulled) == (413, 0), (path, status, pulled)
        assert headers["content-type"].startswith("application/problem+json")
        assert b'"code":"body_too_large"' in body


def test_a_chunked_body_is_counted_as_it_arrives_and_stops_past_the_limit(asgi_app, write_key):
    for method, path, limit in (("PUT", "/api/v1/orders/1001", api.MAX_BODY_BYTES),
                                ("POST", "/api/v1/claims", api.MAX_CLAIM_BODY_BYTES)):
        status, headers, body, pulled = _asgi(asgi_app, method, path, {
            "authorization": f"Bearer {write_key}", "content-type": "application/json"},
            _stream(limit + 8 * len(CHUNK)))
        assert status == 413, (path, status, body[:300])
        assert limit < pulled <= limit + len(CHUNK), (path, pulled)  # stopped at the limit
        assert headers["content-type"].startswith("application/problem+json")
        assert b'"code":"body_too_large"' in body


def test_a_body_within_the_limit_still_works(client, engine, write_key):
    r = client.put("/api/v1/orders/7001", json=order_body(), headers=auth(write_key))
    assert r.status_code == 201, r.text


def test_a_photo_over_the_cap_is_refused_from_its_base64_length_undecoded(client, engine,
                                                                          write_key, monkeypatch):
    recent_order(engine)
    decoded = []
    monkeypatch.setattr(api, "_b64", lambda data: decoded.append(len(data)) or b"")
    just_over = "A" * (api.MAX_PHOTO_BASE64 + 4)  # decodes to a little over the photo cap
    r = client.post("/api/v1/claims", headers=auth(write_key), json=filing_body(
        issue_type="damaged", photos=[{"filename": "big.jpg", "content_base64": just_over}]))
    body = problem(r, 422, "validation_failed")
    assert body["errors"][0]["loc"] == ["body", "photos", 0, "content_base64"], body["errors"]
    assert decoded == [] and count(engine, Claim) == 0
    # the cap is the photo module's own
    from claims_core.infra import photos
    assert api.MAX_PHOTO_BASE64 * 3 // 4 >= photos.DEFAULT_MAX_BYTES
    assert (api.MAX_PHOTO_BASE64 - 4) * 3 // 4 < photos.DEFAULT_MAX_BYTES


# --- Idempotency-Key: the whole value ---------------------------------------------------------

def test_long_idempotency_keys_sharing_a_prefix_are_different_requests(client, engine, write_key):
    recent_order(engine, "1001", "sam@example.com")
    recent_order(engine, "1002", "kim@example.com")
    common = "k" * 150
    first = client.post("/api/v1/claims", json=filing_body(),
                        headers=auth(write_key, **{"Idempotency-Key": common + "AAAA"}))
    second = client.post("/api/v1/claims",
                         json=filing_body(order_number="#1002", email="kim@example.com"),
                         headers=auth(write_key, **{"Idempotency-Key": common + "BBBB"}))
    assert first.status_code == second.status_code == 201, (first.text, second.text)
    assert second.json()["reference"] != first.json()["reference"]
    assert second.json()["order_number"] == "#1002"
    assert count(engine, Claim) == 2
    with read_session(engine) as s:  # only hashes of the whole values are kept
        kept = set(s.scalars(select(ApiIdempotency.key_hash)))
        claim_keys = set(s.scalars(select(Claim.idempotency_key)))
    assert kept == {claims_api.idempotency_hash(common + "AAAA"),
                    claims_api.idempotency_hash(common + "BBBB")}
    assert all(len(k) == 64 for k in kept)
    assert not any(common in k for k in claim_keys)
    # and a replay of each still gets its own first answer
    again = client.post("/api/v1/claims",
                        json=filing_body(order_number="#1002", email="kim@example.com"),
                        headers=auth(write_key, **{"Idempotency-Key": common + "BBBB"}))
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["reference"] == second.json()["reference"]


# --- odd input is a 4xx, never a 500 ------------------------------------------------------------

def test_a_photo_link_with_a_non_ascii_signature_is_404(client):
    r = client.get("/api/v1/photos/1.9999999999.%C3%A9%C3%A9")
    problem(r, 404, "not_found")
    problem(client.get("/api/v1/photos/%D9%A1.9999999999.abc"), 404, "not_found")  # Arabic 1


@pytest.mark.parametrize("raw", ["2026-01-01T00:00:00+00:00|9223372036854775808",
                                 "2026-01-01T00:00:00+00:00|-1",
                                 "2026-01-01T00:00:00+00:00|٣",
                                 "0001-01-01T00:00:00+14:00|1",
                                 "2026-01-01T00:00:00|1|2"])
def test_a_cursor_out_of_range_is_422(client, write_key, raw):
    cursor = base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")
    problem(client.get(f"/api/v1/claims?cursor={cursor}", headers=auth(write_key)), 422,
            "validation_failed")


def test_a_naive_cursor_time_reads_as_utc(client, engine, write_key):
    filed = file_existing(engine, recent_order(engine))
    cursor = base64.urlsafe_b64encode(b"2000-01-01T00:00:00|0").decode().rstrip("=")
    r = client.get(f"/api/v1/claims?cursor={cursor}", headers=auth(write_key))
    assert r.status_code == 200, r.text
    assert [c["reference"] for c in r.json()["items"]] == [filed.reference]


def test_a_nul_in_the_address_or_the_body_is_4xx(client, engine, write_key):
    filed = file_existing(engine, recent_order(engine))
    problem(client.get("/api/v1/claims?q=a%00b", headers=auth(write_key)), 400, "bad_request")
    problem(client.get("/api/v1/claims/CLM%00", headers=auth(write_key)), 400, "bad_request")
    problem(client.post(f"/api/v1/claims/{filed.reference}/request-info",
                        json={"message": "a\u0000b"}, headers=auth(write_key)),
            422, "validation_failed")


# --- strict integers ----------------------------------------------------------------------------

@pytest.mark.parametrize("amount", [True, 1.0, "1", "1.5"])
def test_amounts_are_strict_integers(client, engine, write_key, amount):
    filed = file_existing(engine, recent_order(engine))
    r = client.post(f"/api/v1/claims/{filed.reference}/approve",
                    json={"resolution": "refund", "amount_cents": amount, "note": "partial"},
                    headers=auth(write_key))
    body = problem(r, 422, "validation_failed")
    assert body["errors"][0]["loc"] == ["body", "amount_cents"]
    with read_session(engine) as s:
        assert s.get(Claim, filed.claim_id).status == "submitted"  # nothing approved


@pytest.mark.parametrize("path, value", [
    (("line_items", 0, "quantity"), True), (("line_items", 0, "unit_price_cents"), "2800"),
    (("total_cents",), 5895.0), (("protection_fee_cents",), False),
    (("shipments", 0, "items", 0, "quantity"), "2")])
def test_order_money_and_counts_are_strict_integers(client, engine, write_key, path, value):
    body = order_body()
    target = body
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    r = client.put("/api/v1/orders/7002", json=body, headers=auth(write_key))
    problem(r, 422, "validation_failed")


def test_claim_quantities_and_bonus_are_strict_integers(client, engine, write_key):
    recent_order(engine)
    problem(client.post("/api/v1/claims", headers=auth(write_key),
                        json=filing_body(items=[{"sku": "MUG", "quantity": True}])),
            422, "validation_failed")
    filed = file_existing(engine, recent_order(engine, "1003"))
    problem(client.post(f"/api/v1/claims/{filed.reference}/approve", headers=auth(write_key),
                        json={"resolution": "store_credit", "bonus_pct": "5"}),
            422, "validation_failed")


# --- the rate limit, shared by every instance --------------------------------------------------

def test_two_instances_share_one_rate_limit(db_url, engine, monkeypatch, write_key, read_key):
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("CLAIMS_API_RATE_LIMIT", "4/hour")
    instances = [TestClient(Starlette(routes=[api.mount()]), base_url=BASE) for _ in range(2)]

    def ask(i: int, key: str):
        web._engine_for.cache_clear()  # each call: a new engine, as another process has
        return instances[i].get("/api/v1/claims", headers=auth(key))

    assert [ask(i % 2, write_key).status_code for i in range(4)] == [200] * 4
    for i in range(2):  # neither instance lets a fifth through
        r = ask(i, write_key)
        problem(r, 429, "rate_limited")
        assert 0 < int(r.headers["retry-after"]) <= 3600
    assert ask(1, read_key).status_code == 200  # another key has its own count
    with read_session(engine) as s:
        assert sorted(s.scalars(select(ApiRateCounter.hits))) == [1, 6]
    web._engine_for.cache_clear()


def test_a_new_window_starts_a_new_count_and_drops_the_old(engine, write_key):
    from datetime import timedelta

    from claims_core.infra.db import utcnow
    key = api_keys.list_keys(engine)[0]
    t0 = utcnow().replace(minute=0, second=5, microsecond=0)
    verdicts = [api_keys.count_request(engine, key.id, 2, 60, now=t0) for _ in range(3)]
    assert [v.allowed for v in verdicts] == [True, True, False]
    assert verdicts[-1].retry_after == 55
    later = api_keys.count_request(engine, key.id, 2, 60, now=t0 + timedelta(minutes=1))
    assert later.allowed and later.hits == 1
    with read_session(engine) as s:  # the old window is gone
        assert len(s.scalars(select(ApiRateCounter)).all()) == 1


# --- the docs page: everything from the app itself ------------------------------------------------

def test_the_docs_load_nothing_from_another_host(client):
    r = client.get("/api/v1/docs")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    page = r.text
    assert not re.search(r"""(?:https?:)?//[a-z0-9.-]""", page, re.I), page  # no other host
    assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", page)
    assets += re.findall(r"""url: *["']([^"']+)["']""", page)
    assert len(assets) >= 4, assets  # the script, the stylesheet, the icon, the OpenAPI document
    for url in assets:
        assert url.startswith("/api/v1/"), url
        got = client.get(url)
        assert got.status_code == 200 and got.content, url
    assert "validatorUrl" in page and '"validatorUrl": null' in page  # no badge from a validator


# --- migration 0020: the keys already kept are hashed in place ----------------------------------

def test_0020_hashes_the_keys_kept_before_it(client, engine, write_key):
    from alembic import command
    from sqlalchemy import text

    from claims_core.infra import migrate

    recent_order(engine)
    raw = "retry-" + "x" * 150  # longer than the 128 characters claims kept
    h = auth(write_key, **{"Idempotency-Key": raw})
    first = client.post("/api/v1/claims", json=filing_body(), headers=h)
    assert first.status_code == 201, first.text
    portal = file_existing(engine, recent_order(engine, "1002", "kim@example.com"), key="portal-k")
    key_id = api_keys.list_keys(engine)[0].id

    cfg = migrate.alembic_config()  # back to 0019, with the keys as 0019 kept them
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0019")
    with engine.begin() as conn:
        conn.execute(text("UPDATE api_idempotency SET idem_key = :k"), {"k": raw})
        conn.execute(text("UPDATE claims SET idempotency_key = :k"
                          " WHERE idempotency_key LIKE 'api:%'"), {"k": f"api:{key_id}:{raw}"[:128]})
    web._engine_for.cache_clear()
    migrate.upgrade(engine)

    with read_session(engine) as s:
        kept = s.scalars(select(ApiIdempotency.key_hash)).all()
        assert kept == [claims_api.idempotency_hash(raw)]
        keys = dict(s.execute(select(Claim.reference, Claim.idempotency_key)).all())
    assert keys[portal.reference] == "portal-k"  # the portal's own keys are left alone
    api_key = keys[first.json()["reference"]]
    assert api_key.startswith(f"api:{key_id}:") and len(api_key) == len(f"api:{key_id}:") + 64
    again = client.post("/api/v1/claims", json=filing_body(), headers=h)  # still a replay
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["reference"] == first.json()["reference"]
    assert count(engine, Claim) == 2
