"""The claims REST API (``claims_core/adapters/api.py``, contract: ``docs/api.md``): keys and
scopes, problem details, the claim list (filters, cursor pages), one claim (items, events,
messages, decision, signed photo links), filing, the staff actions, idempotent writes, orders
pushed by shops without Shopify, the per-key rate limit and the OpenAPI document."""
from __future__ import annotations

import hashlib
import re
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import pytest
from sqlalchemy import func, select
from starlette.applications import Starlette
from starlette.testclient import TestClient

from claims_core.adapters import api, web
from claims_core.infra.db import read_session, utcnow
from claims_core.infra.models import Claim, Decision, Event, Evidence, Order
from claims_core.services import api_keys, customer, decisions

from tests.support.factories import claim_request, make_order

BASE = "http://portal.test"
SUMMARY_FIELDS = {"reference", "status", "issue_type", "category", "order_number", "email",
                  "claimed_cents", "currency", "desired_resolution", "risk_level", "on_hold",
                  "created_at", "updated_at"}
DETAIL_FIELDS = SUMMARY_FIELDS | {"description", "items", "events", "messages", "decision",
                                  "photos", "tracking"}


# --- fixtures and helpers -----------------------------------------------------------------------

def _app_client(db_url, monkeypatch, rate_limit):
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("CLAIMS_API_RATE_LIMIT", rate_limit)
    app = Starlette(routes=[api.mount()])
    return TestClient(app, base_url=BASE)


@pytest.fixture
def client(db_url, engine, monkeypatch):
    with _app_client(db_url, monkeypatch, "1000/hour") as c:
        yield c
    web._engine_for.cache_clear()


@pytest.fixture
def write_key(engine):
    _view, raw = api_keys.create_key(engine, "zapier", "write", "staff:owner")
    return raw


@pytest.fixture
def read_key(engine):
    _view, raw = api_keys.create_key(engine, "dashboard", "read", "staff:owner")
    return raw


def auth(key: str, **extra) -> dict:
    return {"Authorization": f"Bearer {key}", **extra}


def problem(r, status: int, code: str | None = None) -> dict:
    """An RFC 9457 answer with this status (and code): returns its body."""
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"].split(";")[0].strip() == "application/problem+json", \
        r.headers["content-type"]
    body = r.json()
    for field in ("type", "title", "status", "detail", "code"):
        assert field in body, (field, body)
    assert body["status"] == status
    assert isinstance(body["type"], str) and body["type"]
    assert isinstance(body["title"], str) and body["title"]
    assert isinstance(body["detail"], str)
    assert isinstance(body["code"], str) and body["code"]
    if code is not None:
        assert body["code"] == code, body
    if body["code"] == "validation_failed":  # docs/api.md: always with its errors
        assert isinstance(body.get("errors"), list) and body["errors"], body
        assert all({"loc", "msg"} <= set(e) and isinstance(e["loc"], list)
                    for e in body["errors"]), body
    return body


def iso_utc(value: str) -> datetime:
    at = datetime.fromisoformat(value)  # "Z" or "+00:00"
    assert at.utcoffset() == timedelta(0), value
    return at


def recent_order(engine, number="1001", email="sam@example.com", **kw):
    """An order the real clock can still claim (the API files with utcnow())."""
    return make_order(engine, number, email, base=utcnow(), **kw)


def file_existing(engine, built, *, issue="damaged", key=None, **kw):
    """A claim filed through the customer service (damaged: with one photo)."""
    return customer.file_claim(engine, claim_request(built, key=key or f"k-{built.number}",
                                                     issue=issue, **kw))


def get_claim(client, key, reference) -> dict:
    r = client.get(f"/api/v1/claims/{reference}", headers=auth(key))
    assert r.status_code == 200, r.text
    return r.json()


def filing_body(**over) -> dict:
    body = {"order_number": "#1001", "email": "sam@example.com", "issue_type": "missing_item",
            "items": [{"sku": "MUG", "quantity": 1}], "desired_resolution": "refund",
            "description": "One mug was not in the box.", "signature_name": "Sam Jones"}
    body.update(over)
    return body


def order_body(**over) -> dict:
    now = utcnow()
    body = {"email": "kim@example.com", "customer_name": "Kim Lee",
            "created_at": (now - timedelta(days=6)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "currency": "USD", "total_cents": 5895, "protection_fee_cents": 295,
            "line_items": [{"sku": "MUG", "name": "Mug", "quantity": 2, "unit_price_cents": 2800}],
            "shipments": [{"tracking_number": "1ZAPI0000001", "carrier": "UPS",
                           "shipped_at": (now - timedelta(days=5)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                           "status": "delivered",
                           "delivered_at": (now - timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                           "items": [{"sku": "MUG", "quantity": 2}]}],
            "cancelled_at": None}
    body.update(over)
    return body


def count(engine, model, *where) -> int:
    with read_session(engine) as s:
        return s.scalar(select(func.count()).select_from(model).where(*where))


# --- keys ---------------------------------------------------------------------------------------

def test_no_authorization_header_is_401_with_www_authenticate(client, engine):
    recent_order(engine)
    r = client.get("/api/v1/claims")
    problem(r, 401, "unauthorized")
    assert r.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize("header", ["Basic c2FtOnNlY3JldA==", "Bearer", "Bearer ", "ck_abc",
                                    "Token ck_3f9a2b1c_abcdefghijklmnopqrstuvwxyz012345"])
def test_a_malformed_authorization_header_is_401(client, write_key, header):
    r = client.get("/api/v1/claims", headers={"Authorization": header})
    problem(r, 401, "unauthorized")
    assert r.headers["www-authenticate"].startswith("Bearer")


def test_an_unknown_key_is_401(client, write_key):
    fake = write_key[:-4] + ("AAAA" if not write_key.endswith("AAAA") else "BBBB")
    for key in (fake, "ck_3f9a2b1c_" + "x" * 32):
        r = client.get("/api/v1/claims", headers=auth(key))
        problem(r, 401, "unauthorized")
        assert r.headers["www-authenticate"].startswith("Bearer")


def test_a_revoked_key_is_401(client, engine):
    view, raw = api_keys.create_key(engine, "old tool", "write", "staff:owner")
    assert client.get("/api/v1/claims", headers=auth(raw)).status_code == 200
    api_keys.revoke(engine, view.id, "staff:owner")
    r = client.get("/api/v1/claims", headers=auth(raw))
    problem(r, 401, "unauthorized")
    assert r.headers["www-authenticate"].startswith("Bearer")


def test_a_key_looks_like_the_documented_shape(engine):
    view, raw = api_keys.create_key(engine, "shape", "read", "staff:owner")
    assert re.fullmatch(r"ck_[0-9a-f]{8}_[A-Za-z0-9_-]{32}", raw), raw
    assert raw[:11] == view.prefix


def test_last_use_is_noted(client, engine, write_key):
    (view,) = [k for k in api_keys.list_keys(engine) if k.name == "zapier"]
    assert view.last_used_at is None
    before = utcnow() - timedelta(seconds=5)
    assert client.get("/api/v1/claims", headers=auth(write_key)).status_code == 200
    (view,) = [k for k in api_keys.list_keys(engine) if k.name == "zapier"]
    assert view.last_used_at is not None and view.last_used_at >= before


def test_a_read_key_reads(client, engine, read_key):
    built = recent_order(engine)
    receipt = file_existing(engine, built)
    r = client.get("/api/v1/claims", headers=auth(read_key))
    assert r.status_code == 200
    assert [c["reference"] for c in r.json()["items"]] == [receipt.reference]
    assert get_claim(client, read_key, receipt.reference)["reference"] == receipt.reference


@pytest.mark.parametrize("method,path,body", [
    ("POST", "/api/v1/claims", filing_body()),
    ("POST", "/api/v1/claims/{ref}/request-info", {"message": "Send a photo of the label."}),
    ("POST", "/api/v1/claims/{ref}/approve", {"resolution": "refund"}),
    ("POST", "/api/v1/claims/{ref}/deny", {"reason_code": "not_covered"}),
    ("PUT", "/api/v1/orders/7001", None),
])
def test_a_read_key_can_not_write(client, engine, read_key, method, path, body):
    built = recent_order(engine)
    receipt = file_existing(engine, built)
    recent_order(engine, "1002")
    if "orders" in path:
        body = order_body()
    elif path == "/api/v1/claims":
        body = filing_body(order_number="#1002")
    r = client.request(method, path.format(ref=receipt.reference), json=body,
                       headers=auth(read_key))
    problem(r, 403, "insufficient_scope")
    # nothing happened
    assert count(engine, Claim) == 1
    assert count(engine, Decision) == 0
    assert count(engine, Order, Order.order_number == "7001") == 0
    assert get_claim(client, read_key, receipt.reference)["status"] == "submitted"


def test_the_key_is_checked_before_the_body(client, engine, read_key):
    filed = file_existing(engine, recent_order(engine))
    problem(client.post("/api/v1/claims", json={"nonsense": True}), 401, "unauthorized")
    problem(client.post("/api/v1/claims", json={"nonsense": True}, headers=auth(read_key)),
            403, "insufficient_scope")
    problem(client.post(f"/api/v1/claims/{filed.reference}/approve", json={},
                        headers=auth(read_key)), 403, "insufficient_scope")
    problem(client.put("/api/v1/orders/9", json={}, headers=auth(read_key)), 403,
            "insufficient_scope")


# --- problem details ----------------------------------------------------------------------------

def test_unknown_claim_is_404_claim_not_found(client, write_key):
    r = client.get("/api/v1/claims/CLM-XXXXXX", headers=auth(write_key))
    body = problem(r, 404, "claim_not_found")
    assert body["type"].endswith("/claim_not_found")
    assert body.get("instance") == "/api/v1/claims/CLM-XXXXXX"
    for action, payload in (("approve", {"resolution": "refund"}),
                            ("deny", {"reason_code": "not_covered"}),
                            ("request-info", {"message": "Anything?"})):
        r = client.post(f"/api/v1/claims/CLM-XXXXXX/{action}", json=payload,
                        headers=auth(write_key))
        problem(r, 404, "claim_not_found")


def test_problem_details_on_every_error_status(db_url, engine, monkeypatch, write_key, read_key):
    built = recent_order(engine)
    receipt = file_existing(engine, built)
    decisions.deny(engine, receipt.claim_id, "staff:boss", "not_covered")
    with _app_client(db_url, monkeypatch, "6/hour") as c:
        problem(c.get("/api/v1/claims"), 401, "unauthorized")
        problem(c.post(f"/api/v1/claims/{receipt.reference}/approve",
                       json={"resolution": "refund"}, headers=auth(read_key)),
                403, "insufficient_scope")
        problem(c.get("/api/v1/claims/CLM-ZZZZZZ", headers=auth(write_key)), 404,
                "claim_not_found")
        problem(c.post(f"/api/v1/claims/{receipt.reference}/approve",
                       json={"resolution": "refund"}, headers=auth(write_key)),
                409, "illegal_transition")
        body = problem(c.get("/api/v1/claims?limit=0", headers=auth(write_key)), 422,
                       "validation_failed")
        assert body["errors"] and all({"loc", "msg"} <= set(e) for e in body["errors"])
        for _ in range(6):
            c.get("/api/v1/claims", headers=auth(write_key))
        r = c.get("/api/v1/claims", headers=auth(write_key))
        problem(r, 429, "rate_limited")
    web._engine_for.cache_clear()


# --- the claim list -----------------------------------------------------------------------------

@pytest.fixture
def seven(engine):
    """Seven claims on seven orders, filed one after the other; returns their references."""
    refs = []
    for i in range(7):
        number = str(2001 + i)
        email = "twin@example.com" if i in (1, 4) else f"c{i}@example.com"
        built = recent_order(engine, number, email)
        issue = "missing_item" if i in (2, 5) else "damaged"
        refs.append(file_existing(engine, built, issue=issue).reference)
    return refs


def test_pages_walk_every_claim_once_oldest_first(client, write_key, seven):
    seen, pages, cursor = [], [], None
    while True:
        url = "/api/v1/claims?limit=3" + (f"&cursor={cursor}" if cursor else "")
        r = client.get(url, headers=auth(write_key))
        assert r.status_code == 200, r.text
        page = r.json()
        pages.append(len(page["items"]))
        seen += [c["reference"] for c in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert isinstance(cursor, str) and cursor
        assert len(pages) < 10
    assert pages == [3, 3, 1]
    assert seen == seven  # each exactly once, in filing order


def test_default_page_holds_everything_and_says_there_is_no_more(client, write_key, seven):
    page = client.get("/api/v1/claims", headers=auth(write_key)).json()
    assert [c["reference"] for c in page["items"]] == seven
    assert page["next_cursor"] is None


def test_a_summary_has_every_documented_field(client, engine, write_key):
    built = recent_order(engine)
    receipt = file_existing(engine, built)
    (item,) = client.get("/api/v1/claims", headers=auth(write_key)).json()["items"]
    assert set(item) >= SUMMARY_FIELDS
    assert item["reference"] == receipt.reference
    assert item["status"] == "submitted"
    assert item["issue_type"] == "damaged" and item["category"] == "item"
    assert item["order_number"] == "#1001"
    assert item["email"] == "sam@example.com"
    assert item["claimed_cents"] == 2800 and item["currency"] == "USD"
    assert item["desired_resolution"] == "refund"
    assert item["risk_level"] in ("low", "medium", "high")
    assert item["on_hold"] is False
    created = iso_utc(item["created_at"])
    assert abs(created - utcnow()) < timedelta(minutes=5)
    assert iso_utc(item["updated_at"]) >= created


def test_filter_by_status_comma_list(client, engine, write_key, seven):
    with read_session(engine) as s:
        ids = dict(s.execute(select(Claim.reference, Claim.id)).all())
    decisions.deny(engine, ids[seven[0]], "staff:boss", "not_covered")
    decisions.approve(engine, ids[seven[3]], "staff:boss",
                      [decisions.ResolutionInput("refund", 2800)])
    decisions.start_review(engine, ids[seven[6]], "staff:boss")

    def refs(query):
        r = client.get(f"/api/v1/claims?{query}", headers=auth(write_key))
        assert r.status_code == 200, r.text
        return [c["reference"] for c in r.json()["items"]]

    assert refs("status=denied") == [seven[0]]
    assert refs("status=denied,approved") == [seven[0], seven[3]]
    assert refs("status=in_review") == [seven[6]]
    assert refs("status=submitted") == [seven[1], seven[2], seven[4], seven[5]]
    statuses = {c["reference"]: c["status"] for c in
                client.get("/api/v1/claims", headers=auth(write_key)).json()["items"]}
    assert statuses[seven[0]] == "denied" and statuses[seven[3]] == "approved"


def test_filter_by_issue_type(client, write_key, seven):
    r = client.get("/api/v1/claims?issue_type=missing_item", headers=auth(write_key))
    assert [c["reference"] for c in r.json()["items"]] == [seven[2], seven[5]]
    r = client.get("/api/v1/claims?issue_type=missing_item,damaged", headers=auth(write_key))
    assert [c["reference"] for c in r.json()["items"]] == seven
    r = client.get("/api/v1/claims?issue_type=stolen", headers=auth(write_key))
    assert r.json() == {"items": [], "next_cursor": None}


def test_search_by_reference_email_order_and_tracking(client, write_key, seven):
    def refs(q):
        r = client.get("/api/v1/claims", params={"q": q}, headers=auth(write_key))
        assert r.status_code == 200, r.text
        return [c["reference"] for c in r.json()["items"]]

    assert refs(seven[3]) == [seven[3]]
    assert refs(seven[3].lower()) == [seven[3]]
    assert refs("twin@example.com") == [seven[1], seven[4]]
    assert refs("c6@example.com") == [seven[6]]
    assert refs("#2003") == [seven[2]]
    assert refs("TRK2006X0") == [seven[5]]
    assert refs("nobody@example.com") == []


def test_filter_by_carrier(client, engine, write_key):
    now = utcnow()
    ups = recent_order(engine, "3001", "u@example.com")
    fedex = recent_order(engine, "3002", "f@example.com", shipments=[{
        "status": "delivered", "carrier": "FedEx", "shipped": now - timedelta(days=10),
        "delivered": now - timedelta(days=7), "items": [("MUG", 3), ("TOTE", 1)]}])
    a = file_existing(engine, ups).reference
    b = file_existing(engine, fedex).reference
    r = client.get("/api/v1/claims?carrier=FedEx", headers=auth(write_key))
    assert [c["reference"] for c in r.json()["items"]] == [b]
    r = client.get("/api/v1/claims?carrier=UPS,FedEx", headers=auth(write_key))
    assert [c["reference"] for c in r.json()["items"]] == [a, b]


def test_filter_by_risk_level(client, engine, write_key, seven):
    levels = {c["reference"]: c["risk_level"] for c in
              client.get("/api/v1/claims", headers=auth(write_key)).json()["items"]}
    every = client.get("/api/v1/claims?risk_level=low,medium,high", headers=auth(write_key))
    assert [c["reference"] for c in every.json()["items"]] == seven
    level = levels[seven[0]]
    r = client.get(f"/api/v1/claims?risk_level={level}", headers=auth(write_key))
    assert [c["reference"] for c in r.json()["items"]] == [x for x in seven if levels[x] == level]


def test_filters_combine_and_pages_keep_them(client, write_key, seven):
    got, cursor = [], None
    while True:
        params = {"issue_type": "damaged", "limit": 2, **({"cursor": cursor} if cursor else {})}
        page = client.get("/api/v1/claims", params=params, headers=auth(write_key)).json()
        got += [c["reference"] for c in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert got == [seven[i] for i in (0, 1, 3, 4, 6)]
    r = client.get("/api/v1/claims", params={"issue_type": "damaged", "q": "twin@example.com"},
                   headers=auth(write_key))
    assert [c["reference"] for c in r.json()["items"]] == [seven[1], seven[4]]


@pytest.mark.parametrize("query", ["limit=0", "limit=101", "limit=-1", "limit=ten"])
def test_a_limit_outside_1_to_100_is_422(client, write_key, query):
    body = problem(client.get(f"/api/v1/claims?{query}", headers=auth(write_key)), 422,
                   "validation_failed")
    assert isinstance(body["errors"], list) and body["errors"]
    assert all("loc" in e and "msg" in e for e in body["errors"])
    assert any("limit" in e["loc"] for e in body["errors"])


def test_limits_1_and_100_are_fine(client, write_key, seven):
    one = client.get("/api/v1/claims?limit=1", headers=auth(write_key)).json()
    assert [c["reference"] for c in one["items"]] == seven[:1] and one["next_cursor"]
    hundred = client.get("/api/v1/claims?limit=100", headers=auth(write_key)).json()
    assert len(hundred["items"]) == 7 and hundred["next_cursor"] is None


@pytest.mark.parametrize("cursor", ["garbage", "!!!", "eyJpZCI6ICJ4In0", "0" * 300])
def test_a_garbage_cursor_is_422(client, write_key, seven, cursor):
    r = client.get("/api/v1/claims", params={"cursor": cursor}, headers=auth(write_key))
    problem(r, 422, "validation_failed")


# --- one claim ----------------------------------------------------------------------------------

def test_one_claim_in_full(client, engine, write_key):
    built = recent_order(engine)
    receipt = file_existing(engine, built, description="The box was crushed on one side.")
    claim = get_claim(client, write_key, receipt.reference)
    assert set(claim) >= DETAIL_FIELDS
    assert claim["reference"] == receipt.reference and claim["status"] == "submitted"
    assert claim["description"] == "The box was crushed on one side."
    assert claim["items"] == [{"sku": "MUG", "name": "Hand-thrown Mug", "quantity": 1,
                               "amount_cents": 2800}]
    first = claim["events"][0]
    assert first["action"] == "claim_filed" and first["actor"] == "customer"
    assert first["from_status"] is None and first["to_status"] == "submitted"
    iso_utc(first["at"])
    assert claim["messages"] == []
    assert claim["decision"] is None
    assert "tracking" in claim


def test_events_are_oldest_first_and_decision_filled_after_approval(client, engine, write_key):
    built = recent_order(engine)
    receipt = file_existing(engine, built)
    assert get_claim(client, write_key, receipt.reference)["decision"] is None
    decisions.approve(engine, receipt.claim_id, "staff:boss",
                      [decisions.ResolutionInput("refund", 2800)])
    claim = get_claim(client, write_key, receipt.reference)
    assert claim["status"] == "approved"
    actions = [e["action"] for e in claim["events"]]
    assert actions[0] == "claim_filed"
    assert actions.index("review_started") < actions.index("approved")
    ats = [iso_utc(e["at"]) for e in claim["events"]]
    assert ats == sorted(ats)
    d = claim["decision"]
    assert d["outcome"] == "approved" and d["decided_by"] == "staff:boss"
    iso_utc(d["decided_at"])
    assert d["resolutions"] == [{"kind": "refund", "amount_cents": 2800, "bonus_pct": 0,
                                 "store_credit_code": None}]


def test_messages_are_listed(client, engine, write_key):
    built = recent_order(engine)
    receipt = file_existing(engine, built)
    decisions.request_info(engine, receipt.claim_id, "staff:boss", "Alex", "Is the box kept?")
    (msg,) = get_claim(client, write_key, receipt.reference)["messages"]
    assert msg["author_kind"] == "staff" and msg["author_name"] == "Alex"
    assert msg["body"] == "Is the box kept?" and msg["internal"] is False
    iso_utc(msg["created_at"])


def _photo_path(url: str) -> str:
    parts = urlsplit(url)
    if parts.netloc:
        assert parts.netloc == "portal.test", url
    return parts.path + (f"?{parts.query}" if parts.query else "")


def test_photo_links_are_signed_and_work_without_a_key(client, engine, write_key):
    built = recent_order(engine)
    receipt = file_existing(engine, built)  # damaged: one photo
    (photo,) = get_claim(client, write_key, receipt.reference)["photos"]
    with read_session(engine) as s:
        ev = s.scalars(select(Evidence).where(Evidence.claim_id == receipt.claim_id)).one()
        stored, sha, ev_id, name = ev.data, ev.sha256, ev.id, ev.filename
    assert photo["id"] == ev_id and photo["filename"] == name and photo["sha256"] == sha
    expires = iso_utc(photo["expires_at"])
    assert timedelta(minutes=14) <= expires - utcnow() <= timedelta(minutes=16)
    path = _photo_path(photo["url"])
    r = client.get(path)  # no Authorization header
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("image/jpeg")
    assert r.content == stored and r.content[:2] == b"\xff\xd8"
    assert hashlib.sha256(r.content).hexdigest() == hashlib.sha256(stored).hexdigest()


def _tampered(path: str) -> str:
    """The link with one character of its signature (its longest opaque token) changed."""
    tokens = re.findall(r"[A-Za-z0-9_-]{16,}", path)
    if not tokens:
        return path[:-1] + ("A" if path[-1] != "A" else "B")
    token = max(tokens, key=len)
    mid = len(token) // 2
    flipped = token[:mid] + ("A" if token[mid] != "A" else "B") + token[mid + 1:]
    return path.replace(token, flipped, 1)


def _with_id(path: str, old: int, new: int) -> str:
    """The link with the photo id (a number standing on its own) swapped, or unchanged."""
    return re.sub(rf"(?<![0-9A-Za-z]){old}(?![0-9A-Za-z])", str(new), path, count=1)


def test_a_tampered_photo_link_is_404(client, engine, write_key):
    built = recent_order(engine)
    receipt = file_existing(engine, built)
    (photo,) = get_claim(client, write_key, receipt.reference)["photos"]
    path = _photo_path(photo["url"])
    assert client.get(path).status_code == 200
    bad = _tampered(path)
    assert bad != path
    problem(client.get(bad), 404, "not_found")


def test_a_photo_link_opens_only_its_own_photo(client, engine, write_key):
    a = file_existing(engine, recent_order(engine, "1001"))
    b = file_existing(engine, recent_order(engine, "1002", "kim@example.com"))
    (pa,) = get_claim(client, write_key, a.reference)["photos"]
    (pb,) = get_claim(client, write_key, b.reference)["photos"]
    path_a, path_b = _photo_path(pa["url"]), _photo_path(pb["url"])
    assert path_a != path_b
    tried = 0
    qa, qb = urlsplit(path_a).query, urlsplit(path_b).query
    if qa and qb:  # the signature in the query: A's signature on B's photo
        tried += 1
        assert client.get(urlsplit(path_b).path + "?" + qa).status_code == 404
    swapped = _with_id(path_a, pa["id"], pb["id"])
    if swapped != path_a:  # the id in the link: B's id under A's signature
        tried += 1
        assert client.get(swapped).status_code == 404
    if not tried:
        pytest.skip("the link shows neither a query signature nor the photo id")


# --- filing -------------------------------------------------------------------------------------

def test_file_a_claim(client, engine, write_key):
    recent_order(engine)
    r = client.post("/api/v1/claims", json=filing_body(), headers=auth(write_key))
    assert r.status_code == 201, r.text
    claim = r.json()
    assert set(claim) >= DETAIL_FIELDS
    assert claim["status"] == "submitted"
    assert claim["issue_type"] == "missing_item" and claim["order_number"] == "#1001"
    assert claim["email"] == "sam@example.com"
    assert claim["claimed_cents"] == 2800 and claim["desired_resolution"] == "refund"
    assert claim["description"] == "One mug was not in the box."
    assert claim["items"] == [{"sku": "MUG", "name": "Hand-thrown Mug", "quantity": 1,
                               "amount_cents": 2800}]
    first = claim["events"][0]
    assert first["action"] == "claim_filed" and first["to_status"] == "submitted"
    assert first["actor"].startswith("api:") and first["actor"] == "api:zapier"
    assert claim["language"] == "en"  # the store's default language

    with read_session(engine) as s:
        row = s.scalars(select(Claim)).one()
        assert row.reference == claim["reference"] and row.filed_by == "api:zapier"
    # it reads back the same
    assert get_claim(client, write_key, claim["reference"])["items"] == claim["items"]


def test_a_claim_filed_through_the_api_keeps_the_customers_language(client, engine, write_key):
    from claims_core.services.settings import update_settings
    recent_order(engine)
    update_settings(engine, "test", {"default_language": "fr"})
    r = client.post("/api/v1/claims", json={**filing_body(), "language": "de"}, headers=auth(write_key))
    assert r.status_code == 201, r.text
    assert r.json()["language"] == "de"


def test_file_a_shipping_claim_with_tracking_number(client, engine, write_key):
    recent_order(engine)
    body = filing_body(issue_type="not_received", tracking_number="TRK1001X0",
                       description="Never arrived.")
    body.pop("items")
    r = client.post("/api/v1/claims", json=body, headers=auth(write_key))
    assert r.status_code == 201, r.text
    assert r.json()["issue_type"] == "not_received" and r.json()["category"] == "shipping"


@pytest.mark.parametrize("case,code", [
    ("lost_on_delivered", "issue_not_available"),
    ("cancelled", "order_cancelled"),
    ("unprotected", "not_protected"),
])
def test_a_rule_refusal_is_422_with_the_domain_code(client, engine, write_key, case, code):
    if case == "cancelled":
        recent_order(engine, cancelled=True)
    elif case == "unprotected":
        recent_order(engine, protected=False)
    else:
        recent_order(engine)
    body = filing_body()
    if case == "lost_on_delivered":
        body = filing_body(issue_type="lost")
        body.pop("items")
    r = client.post("/api/v1/claims", json=body, headers=auth(write_key))
    problem(r, 422, code)
    assert count(engine, Claim) == 0


def test_the_documented_example_without_photos_needs_photos(client, engine, write_key):
    recent_order(engine)
    r = client.post("/api/v1/claims", json=filing_body(issue_type="damaged"),
                    headers=auth(write_key))
    problem(r, 422, "photos_required")
    assert count(engine, Claim) == 0


def test_two_claimable_shipments_need_the_tracking_number(client, engine, write_key):
    now = utcnow()
    two = [{"status": "delivered", "shipped": now - timedelta(days=10),
            "delivered": now - timedelta(days=7), "items": [("MUG", 3)]},
           {"status": "delivered", "shipped": now - timedelta(days=9),
            "delivered": now - timedelta(days=6), "items": [("TOTE", 1)]}]
    recent_order(engine, shipments=two)
    body = filing_body(items=[{"sku": "TOTE", "quantity": 1}])
    r = client.post("/api/v1/claims", json=body, headers=auth(write_key))
    assert r.status_code == 422, r.text
    problem(r, 422)
    assert count(engine, Claim) == 0
    r = client.post("/api/v1/claims", json={**body, "tracking_number": "trk1001x1"},
                    headers=auth(write_key))
    assert r.status_code == 201, r.text
    assert r.json()["items"] == [{"sku": "TOTE", "name": "Canvas Tote", "quantity": 1,
                                  "amount_cents": 3450}]
    with read_session(engine) as s:
        assert s.scalars(select(Claim.carrier)).one() == "UPS"


def test_a_tracking_number_not_on_the_order_is_422(client, engine, write_key):
    recent_order(engine)
    r = client.post("/api/v1/claims", json=filing_body(tracking_number="1ZNOTTHIS"),
                    headers=auth(write_key))
    assert r.status_code == 422, r.text
    problem(r, 422)
    assert count(engine, Claim) == 0


def test_claiming_more_than_is_left_is_refused(client, engine, write_key):
    built = recent_order(engine)
    file_existing(engine, built, issue="missing_item")  # an open claim on the MUG line
    r = client.post("/api/v1/claims", json=filing_body(), headers=auth(write_key))
    assert r.status_code in (409, 422), r.text
    body = problem(r, r.status_code)
    assert body["code"] in ("already_claimed", "nothing_left_to_claim", "quantity_invalid")
    assert count(engine, Claim) == 1


@pytest.mark.parametrize("drop", ["order_number", "email", "issue_type", "desired_resolution"])
def test_missing_fields_are_422_validation_failed(client, engine, write_key, drop):
    recent_order(engine)
    body = filing_body()
    body.pop(drop)
    r = client.post("/api/v1/claims", json=body, headers=auth(write_key))
    errors = problem(r, 422, "validation_failed")["errors"]
    assert any(drop in e["loc"] for e in errors), errors
    assert count(engine, Claim) == 0


def test_a_body_that_is_not_json_is_422(client, engine, write_key):
    recent_order(engine)
    r = client.post("/api/v1/claims", content=b"{not json", headers=auth(
        write_key, **{"Content-Type": "application/json"}))
    problem(r, 422, "validation_failed")


# --- staff actions ------------------------------------------------------------------------------

@pytest.fixture
def filed(engine):
    built = recent_order(engine)
    return file_existing(engine, built)  # damaged MUG x1, 2800 paid


def test_request_info(client, engine, write_key, filed):
    r = client.post(f"/api/v1/claims/{filed.reference}/request-info",
                    json={"message": "Please send a photo of the shipping label."},
                    headers=auth(write_key))
    assert r.status_code == 200, r.text
    claim = r.json()
    assert claim["status"] == "needs_info"
    (msg,) = claim["messages"]
    assert msg["body"] == "Please send a photo of the shipping label."
    assert msg["author_kind"] == "staff" and msg["internal"] is False
    ev = [e for e in claim["events"] if e["action"] == "info_requested"]
    assert len(ev) == 1 and ev[0]["actor"] == "api:zapier" and ev[0]["to_status"] == "needs_info"


def test_request_info_needs_a_message(client, write_key, filed):
    r = client.post(f"/api/v1/claims/{filed.reference}/request-info", json={"message": "  "},
                    headers=auth(write_key))
    assert r.status_code == 422
    assert problem(r, 422)["code"] in ("text_required", "validation_failed")
    r = client.post(f"/api/v1/claims/{filed.reference}/request-info", json={},
                    headers=auth(write_key))
    problem(r, 422, "validation_failed")


def test_approve_in_full_by_default(client, engine, write_key, filed):
    r = client.post(f"/api/v1/claims/{filed.reference}/approve", json={"resolution": "refund"},
                    headers=auth(write_key))
    assert r.status_code == 200, r.text
    claim = r.json()
    assert claim["status"] == "approved"
    d = claim["decision"]
    assert d["outcome"] == "approved" and d["decided_by"] == "api:zapier"
    assert [(x["kind"], x["amount_cents"]) for x in d["resolutions"]] == [("refund", 2800)]
    ev = [e for e in claim["events"] if e["action"] == "approved"]
    assert len(ev) == 1 and ev[0]["actor"] == "api:zapier"


def test_approve_store_credit_gives_a_code(client, write_key, filed):
    r = client.post(f"/api/v1/claims/{filed.reference}/approve",
                    json={"resolution": "store_credit"}, headers=auth(write_key))
    assert r.status_code == 200, r.text
    (res,) = r.json()["decision"]["resolutions"]
    assert res["kind"] == "store_credit" and res["amount_cents"] == 2800
    assert isinstance(res["store_credit_code"], str) and res["store_credit_code"]


def test_a_partial_approval_needs_a_note(client, engine, write_key, filed):
    url = f"/api/v1/claims/{filed.reference}/approve"
    r = client.post(url, json={"resolution": "refund", "amount_cents": 1000},
                    headers=auth(write_key))
    problem(r, 422, "text_required")
    assert get_claim(client, write_key, filed.reference)["decision"] is None
    r = client.post(url, json={"resolution": "refund", "amount_cents": 1000,
                               "note": "One of three mugs was chipped only."},
                    headers=auth(write_key))
    assert r.status_code == 200, r.text
    d = r.json()["decision"]
    assert d["resolutions"][0]["amount_cents"] == 1000
    assert d["note"] == "One of three mugs was chipped only."
    assert r.json()["status"] == "approved"


def test_approving_more_than_was_paid_is_422(client, write_key, filed):
    r = client.post(f"/api/v1/claims/{filed.reference}/approve",
                    json={"resolution": "refund", "amount_cents": 2801}, headers=auth(write_key))
    problem(r, 422, "amount_above_paid")


def test_approve_with_an_unknown_resolution_is_422(client, write_key, filed):
    r = client.post(f"/api/v1/claims/{filed.reference}/approve",
                    json={"resolution": "cash"}, headers=auth(write_key))
    assert r.status_code == 422
    assert problem(r, 422)["code"] in ("validation_failed", "invalid_input")


def test_deny(client, engine, write_key, filed):
    url = f"/api/v1/claims/{filed.reference}/deny"
    r = client.post(url, json={"reason_code": "because"}, headers=auth(write_key))
    assert r.status_code == 422
    assert problem(r, 422)["code"] == "denial_reason_required"
    assert count(engine, Decision) == 0
    r = client.post(url, json={"reason_code": "not_covered", "note": "Not a shipping issue."},
                    headers=auth(write_key))
    assert r.status_code == 200, r.text
    claim = r.json()
    assert claim["status"] == "denied"
    d = claim["decision"]
    assert d["outcome"] == "denied" and d["reason_code"] == "not_covered"
    assert d["decided_by"] == "api:zapier" and d["resolutions"] == []
    assert next(e for e in claim["events"] if e["action"] == "denied")["actor"] == "api:zapier"


def test_deny_other_needs_a_note(client, write_key, filed):
    r = client.post(f"/api/v1/claims/{filed.reference}/deny", json={"reason_code": "other"},
                    headers=auth(write_key))
    problem(r, 422, "text_required")


def test_approving_a_denied_claim_is_409(client, engine, write_key, filed):
    decisions.deny(engine, filed.claim_id, "staff:boss", "not_covered")
    r = client.post(f"/api/v1/claims/{filed.reference}/approve", json={"resolution": "refund"},
                    headers=auth(write_key))
    problem(r, 409, "illegal_transition")
    assert count(engine, Decision) == 1
    assert get_claim(client, write_key, filed.reference)["status"] == "denied"


def test_approving_a_claim_on_hold_is_409(client, engine, write_key, filed):
    from sqlalchemy import update

    from claims_core.infra.db import write_session
    with write_session(engine) as s:
        s.execute(update(Claim).where(Claim.id == filed.claim_id).values(
            held_at=utcnow(), hold_reason="The carrier now says delivered."))
    claim = get_claim(client, write_key, filed.reference)
    assert claim["on_hold"] is True
    r = client.post(f"/api/v1/claims/{filed.reference}/approve", json={"resolution": "refund"},
                    headers=auth(write_key))
    problem(r, 409, "claim_on_hold")
    assert count(engine, Decision) == 0


# --- idempotency --------------------------------------------------------------------------------

def test_filing_twice_with_one_idempotency_key_files_once(client, engine, write_key):
    recent_order(engine)
    h = auth(write_key, **{"Idempotency-Key": "order-1001-try"})
    first = client.post("/api/v1/claims", json=filing_body(), headers=h)
    assert first.status_code == 201, first.text
    assert first.headers.get("idempotent-replayed") != "true"
    again = client.post("/api/v1/claims", json=filing_body(), headers=h)
    assert again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert count(engine, Claim) == 1


def test_an_idempotency_key_with_another_body_is_409(client, engine, write_key):
    recent_order(engine)
    h = auth(write_key, **{"Idempotency-Key": "k-1"})
    assert client.post("/api/v1/claims", json=filing_body(), headers=h).status_code == 201
    r = client.post("/api/v1/claims", json=filing_body(description="Something else."),
                    headers=h)
    problem(r, 409, "idempotency_conflict")
    assert count(engine, Claim) == 1


def test_an_idempotency_key_on_another_path_is_409(client, engine, write_key):
    recent_order(engine)
    h = auth(write_key, **{"Idempotency-Key": "k-2"})
    claim = client.post("/api/v1/claims", json=filing_body(), headers=h).json()
    r = client.post(f"/api/v1/claims/{claim['reference']}/approve", json={"resolution": "refund"},
                    headers=h)
    problem(r, 409, "idempotency_conflict")
    assert count(engine, Decision) == 0


def test_a_refusal_replays_too(client, engine, write_key):
    recent_order(engine, cancelled=True)
    h = auth(write_key, **{"Idempotency-Key": "k-3"})
    first = client.post("/api/v1/claims", json=filing_body(), headers=h)
    again = client.post("/api/v1/claims", json=filing_body(), headers=h)
    assert first.status_code == again.status_code == 422
    assert first.json() == again.json() and first.json()["code"] == "order_cancelled"


def test_an_overlong_idempotency_key_is_refused(client, engine, write_key):
    recent_order(engine)
    r = client.post("/api/v1/claims", json=filing_body(),
                    headers=auth(write_key, **{"Idempotency-Key": "k" * 201}))
    problem(r, 422, "validation_failed")
    assert count(engine, Claim) == 0


def test_approve_replayed_does_not_approve_twice(client, engine, write_key, filed):
    url = f"/api/v1/claims/{filed.reference}/approve"
    h = auth(write_key, **{"Idempotency-Key": "approve-once"})
    first = client.post(url, json={"resolution": "store_credit"}, headers=h)
    assert first.status_code == 200, first.text
    again = client.post(url, json={"resolution": "store_credit"}, headers=h)
    assert again.status_code == 200
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert count(engine, Decision, Decision.claim_id == filed.claim_id) == 1
    assert count(engine, Event, Event.claim_id == filed.claim_id, Event.action == "approved") == 1
    # without the key, a second approval is a state error
    r = client.post(url, json={"resolution": "store_credit"}, headers=auth(write_key))
    problem(r, 409, "illegal_transition")


def test_idempotency_keys_are_per_api_key(client, engine, write_key):
    recent_order(engine)
    recent_order(engine, "1002")
    _v, other = api_keys.create_key(engine, "other tool", "write", "staff:owner")
    a = client.post("/api/v1/claims", json=filing_body(),
                    headers=auth(write_key, **{"Idempotency-Key": "same"}))
    b = client.post("/api/v1/claims", json=filing_body(order_number="#1002"),
                    headers=auth(other, **{"Idempotency-Key": "same"}))
    assert a.status_code == b.status_code == 201
    assert b.headers.get("idempotent-replayed") != "true"
    assert a.json()["reference"] != b.json()["reference"]
    assert count(engine, Claim) == 2


# --- orders -------------------------------------------------------------------------------------

def test_put_order_creates_then_updates(client, engine, write_key):
    r = client.put("/api/v1/orders/5001", json=order_body(), headers=auth(write_key))
    assert r.status_code == 201, r.text
    assert r.json() == {"order_number": "#5001", "created": True, "shipments": 1}
    with read_session(engine) as s:
        order = s.scalars(select(Order).where(Order.order_number == "5001")).one()
        assert order.email == "kim@example.com" and order.total_cents == 5895
        assert len(order.shipments) == 1
    body = order_body(customer_name="Kim Lee-Park", total_cents=9345)
    body["line_items"].append({"sku": "TOTE", "name": "Tote", "quantity": 1,
                               "unit_price_cents": 3450})
    body["shipments"].append({"tracking_number": "1ZAPI0000002", "carrier": "UPS",
                              "shipped_at": body["shipments"][0]["shipped_at"],
                              "status": "in_transit", "delivered_at": None,
                              "items": [{"sku": "TOTE", "quantity": 1}]})
    r = client.put("/api/v1/orders/5001", json=body, headers=auth(write_key))
    assert r.status_code == 200, r.text
    assert r.json() == {"order_number": "#5001", "created": False, "shipments": 2}
    with read_session(engine) as s:
        order = s.scalars(select(Order).where(Order.order_number == "5001")).one()
        assert order.customer_name == "Kim Lee-Park"
        assert sorted(sh.tracking_number for sh in order.shipments) == ["1ZAPI0000001",
                                                                       "1ZAPI0000002"]
    assert count(engine, Order, Order.order_number == "5001") == 1


def test_the_order_number_in_the_path_may_carry_its_hash(client, engine, write_key):
    r = client.put("/api/v1/orders/%235001", json=order_body(), headers=auth(write_key))
    assert r.status_code == 201, r.text
    assert r.json()["order_number"] == "#5001"
    r = client.put("/api/v1/orders/5001", json=order_body(), headers=auth(write_key))
    assert r.status_code == 200 and r.json()["created"] is False
    assert count(engine, Order) == 1


def test_put_the_same_order_again_is_an_unchanged_update(client, engine, write_key):
    assert client.put("/api/v1/orders/5001", json=order_body(),
                      headers=auth(write_key)).status_code == 201
    r = client.put("/api/v1/orders/5001", json=order_body(), headers=auth(write_key))
    assert r.status_code == 200
    assert r.json() == {"order_number": "#5001", "created": False, "shipments": 1}
    assert count(engine, Order) == 1


def test_a_pushed_order_can_be_claimed(client, engine, write_key):
    assert client.put("/api/v1/orders/5001", json=order_body(),
                      headers=auth(write_key)).status_code == 201
    r = client.post("/api/v1/claims", json=filing_body(order_number="#5001",
                                                        email="kim@example.com"),
                    headers=auth(write_key))
    assert r.status_code == 201, r.text
    claim = r.json()
    assert claim["order_number"] == "#5001" and claim["claimed_cents"] == 2800
    assert claim["items"] == [{"sku": "MUG", "name": "Mug", "quantity": 1, "amount_cents": 2800}]


@pytest.mark.parametrize("change", ["no_email", "bad_total", "bad_date", "bad_shipments"])
def test_put_order_with_an_invalid_body_is_422(client, engine, write_key, change):
    body = order_body()
    if change == "no_email":
        body.pop("email")
    elif change == "bad_total":
        body["total_cents"] = "lots"
    elif change == "bad_date":
        body["created_at"] = "yesterday"
    else:
        body["shipments"] = "none"
    r = client.put("/api/v1/orders/5001", json=body, headers=auth(write_key))
    body = problem(r, 422, "validation_failed")
    assert body["errors"]
    assert count(engine, Order) == 0


def test_put_order_idempotent_replay(client, engine, write_key):
    h = auth(write_key, **{"Idempotency-Key": "push-5001"})
    body = order_body()  # one body sent twice (two calls could straddle a second)
    first = client.put("/api/v1/orders/5001", json=body, headers=h)
    again = client.put("/api/v1/orders/5001", json=body, headers=h)
    assert first.status_code == again.status_code == 201  # the first answer, again
    assert again.json() == first.json() == {"order_number": "#5001", "created": True,
                                            "shipments": 1}
    assert again.headers["idempotent-replayed"] == "true"


# --- rate limit ---------------------------------------------------------------------------------

def test_over_the_rate_limit_is_429_per_key(db_url, engine, monkeypatch, write_key, read_key):
    # hour windows: a fixed window can't roll over in the middle of the test
    with _app_client(db_url, monkeypatch, "3/hour") as c:
        for _ in range(3):
            assert c.get("/api/v1/claims", headers=auth(write_key)).status_code == 200
        r = c.get("/api/v1/claims", headers=auth(write_key))
        problem(r, 429, "rate_limited")
        retry = r.headers["retry-after"]
        assert retry.isdigit() and 0 < int(retry) <= 3600
        # another key has its own allowance
        assert c.get("/api/v1/claims", headers=auth(read_key)).status_code == 200
    web._engine_for.cache_clear()


def test_the_limit_counts_writes_too(db_url, engine, monkeypatch, write_key):
    recent_order(engine)
    with _app_client(db_url, monkeypatch, "2/hour") as c:
        assert c.get("/api/v1/claims", headers=auth(write_key)).status_code == 200
        assert c.post("/api/v1/claims", json=filing_body(),
                      headers=auth(write_key)).status_code == 201
        r = c.post("/api/v1/claims", json=filing_body(order_number="#1001"),
                   headers=auth(write_key))
        problem(r, 429, "rate_limited")
    web._engine_for.cache_clear()


# --- OpenAPI ------------------------------------------------------------------------------------

def test_openapi_lists_the_endpoints(client):
    r = client.get("/api/v1/openapi.json")
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["openapi"].startswith("3.")
    paths = doc["paths"]
    for path in ("/claims", "/claims/{reference}", "/claims/{reference}/approve",
                 "/claims/{reference}/deny", "/claims/{reference}/request-info",
                 "/orders/{order_number}"):
        assert path in paths, sorted(paths)
    assert "get" in paths["/claims"] and "post" in paths["/claims"]
    assert "put" in paths["/orders/{order_number}"]


def test_docs_page_is_html(client):
    r = client.get("/api/v1/docs")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert "openapi.json" in r.text
