"""Anything thrown at the claims API and the three webhook routes is answered, never with a 5xx:
arbitrary paths, query strings, cursors, headers and bodies (JSON of any shape, deep nesting, bytes
that aren't JSON, signed and unsigned webhook bodies, near-valid API bodies with one field wrong).
"""
from __future__ import annotations

import base64
import json
from urllib.parse import quote, urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.testclient import TestClient

from claims_core.adapters import api, inbound_webhooks, web

from tests.adapters.test_api import BASE, file_existing, filing_body, order_body, recent_order

SECRETS = {"SHOPIFY_WEBHOOK_SECRET": "shopify-fuzz-secret",
           "TRACK17_WEBHOOK_KEY": "track17-fuzz-key",
           "EASYPOST_WEBHOOK_SECRET": "easypost-fuzz-secret"}
SIGN = {"/webhooks/shopify": lambda b: {"x-shopify-hmac-sha256": inbound_webhooks.shopify_signature(
            b, SECRETS["SHOPIFY_WEBHOOK_SECRET"])},
        "/webhooks/17track": lambda b: {"sign": inbound_webhooks.track17_signature(
            b, SECRETS["TRACK17_WEBHOOK_KEY"])},
        "/webhooks/easypost": lambda b: {"x-hmac-signature": inbound_webhooks.easypost_signature(
            b, SECRETS["EASYPOST_WEBHOOK_SECRET"])}}

FUZZ = settings(max_examples=250, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.fixture
def world(db_url, engine, monkeypatch):
    """The API and the webhooks as app.py mounts them, a write and a read key, and a claim."""
    from claims_core.services import api_keys
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("CLAIMS_API_RATE_LIMIT", "1000000/hour")
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    filed = file_existing(engine, recent_order(engine))
    recent_order(engine, "1002", "kim@example.com")
    keys = {"write": api_keys.create_key(engine, "fuzz-w", "write", "staff:owner")[1],
            "read": api_keys.create_key(engine, "fuzz-r", "read", "staff:owner")[1]}
    app = Starlette(routes=inbound_webhooks.routes() + [api.mount()],
                    middleware=[Middleware(web.SecurityHeaders)])
    with TestClient(app, base_url=BASE, raise_server_exceptions=False) as c:
        yield c, keys, filed.reference
    web._engine_for.cache_clear()


# --- what is thrown ----------------------------------------------------------------------------

text = st.text(max_size=40)
wild = st.text(st.characters(codec="utf-8"), max_size=30)  # any code point, NUL and controls too
scalars = (st.none() | st.booleans() | st.integers() | st.integers(min_value=2**62) |
           st.floats(allow_infinity=True, allow_nan=True) | wild)
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(text, inner, max_size=4), max_leaves=15)
big_ints = st.sampled_from([0, -1, 2**31, 2**63 - 1, 2**63, 2**64, 10**30, -(2**63) - 1])
cursor_text = st.tuples(st.sampled_from(["2026-01-01T00:00:00+00:00", "2026-01-01T00:00:00",
                                         "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00",
                                         "garbage"]) | wild,
                        big_ints.map(str) | wild).map(lambda t: f"{t[0]}|{t[1]}")
cursors = cursor_text.map(lambda c: base64.urlsafe_b64encode(c.encode("utf-8", "surrogatepass"))
                          .decode().rstrip("=")) | wild


def _mutated(base: dict):
    """A valid body with one field replaced by anything (or removed)."""
    return st.tuples(st.sampled_from(sorted(base)), json_values, st.booleans()).map(
        lambda t: ({k: v for k, v in base.items() if k != t[0]} if t[2]
                   else {**base, t[0]: t[1]}))


def _bodies():
    photo = {"filename": "p.png", "content_base64": base64.b64encode(b"\x89PNG\r\n\x1a\n").decode()}
    near_valid = (_mutated(filing_body())
                  | _mutated(filing_body(photos=[photo], issue_type="damaged"))
                  | _mutated(order_body()) | _mutated({"resolution": "refund", "amount_cents": 1,
                                                       "bonus_pct": 0, "note": "n"})
                  | _mutated({"reason_code": "not_covered", "note": ""})
                  | _mutated({"message": "Please send a photo."}))
    as_json = (near_valid | json_values).map(
        lambda v: json.dumps(v, ensure_ascii=False).encode("utf-8", "surrogatepass"))
    deep = st.integers(1, 20000).map(lambda n: ("[" * n + "]" * n).encode()) | \
        st.integers(1, 5000).map(lambda n: ('{"a":' * n + "1" + "}" * n).encode())
    return st.none() | as_json | deep | st.binary(max_size=200)


ENDPOINTS = [("GET", "/api/v1/claims"), ("GET", "/api/v1/claims"), ("POST", "/api/v1/claims"),
             ("GET", "/api/v1/claims/{}"), ("GET", "/api/v1/claims/{}/evidence.pdf"),
             ("POST", "/api/v1/claims/{}/approve"), ("POST", "/api/v1/claims/{}/deny"),
             ("POST", "/api/v1/claims/{}/request-info"), ("GET", "/api/v1/photos/{}"),
             ("PUT", "/api/v1/orders/{}"), ("GET", "/api/v1/docs"), ("GET", "/api/v1/openapi.json"),
             ("GET", "/api/v1/docs/assets/{}"), ("GET", "/api/v1/{}"),
             ("POST", "/webhooks/shopify"), ("POST", "/webhooks/17track"),
             ("POST", "/webhooks/easypost")]
photo_tokens = st.tuples(big_ints | st.integers(0, 10**6), big_ints | st.integers(),
                         wild | st.sampled_from(["", "abc", "%C3%A9%C3%A9"])).map(
    lambda t: f"{t[0]}.{t[1]}.{t[2]}")
segments = st.sampled_from(["{ref}", "1001", "7001", "swagger-ui.css"]) | wild | photo_tokens
queries = st.dictionaries(st.sampled_from(["status", "issue_type", "carrier", "risk_level", "q",
                                           "limit", "cursor"]) | text,
                          wild | big_ints.map(str), max_size=4) | \
    st.fixed_dictionaries({"cursor": cursors}) | st.just({})
latin = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
                max_size=250)


@st.composite
def requests_(draw, keys: dict, reference: str):
    method, template = draw(st.sampled_from(ENDPOINTS))
    if draw(st.integers(0, 9)) == 0:  # now and then the wrong method
        method = draw(st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]))
    segment = draw(segments).replace("{ref}", reference)
    path = template.format(quote(segment, safe=".%") or "x")
    query = draw(queries)
    headers = {}
    who = draw(st.sampled_from(["write", "write", "write", "read", "none", "junk"]))
    if who in keys:
        headers["authorization"] = f"Bearer {keys[who]}"
    elif who == "junk":
        headers["authorization"] = draw(latin)
    if draw(st.booleans()):
        headers["idempotency-key"] = draw(latin)
    headers["content-type"] = draw(st.sampled_from(["application/json", "text/plain",
                                                    "application/x-www-form-urlencoded"]) | latin)
    for name in draw(st.lists(st.sampled_from(["x-shopify-topic", "x-shopify-webhook-id",
                                               "x-forwarded-for", "x-forwarded-proto", "origin",
                                               "accept", "sign", "x-hmac-signature"]),
                              max_size=3, unique=True)):
        headers[name] = draw(latin)
    body = draw(_bodies())
    if body is not None and path in SIGN and draw(st.booleans()):
        headers.update(SIGN[path](body))
        if path == "/webhooks/shopify":
            headers["x-shopify-topic"] = draw(st.sampled_from(["orders/create", "orders/updated",
                                                               "fulfillments/create",
                                                               "refunds/create"]) | latin)
            headers["x-shopify-webhook-id"] = draw(latin)
    return method, path, query, headers, body


@pytest.mark.slow
def test_the_api_and_the_webhooks_never_answer_5xx(world):
    client, keys, reference = world

    @FUZZ
    @given(st.data())
    def check(data):
        method, path, query, headers, body = data.draw(requests_(keys, reference))
        url = path + ("?" + urlencode(query) if query else "")
        sent = {k: v.encode("latin-1") for k, v in headers.items()}  # as a server reads them
        r = client.request(method, url, headers=sent, content=body)
        assert r.status_code < 500, (method, url, headers, (body or b"")[:300], r.status_code,
                                     r.text[:500])

    check()
