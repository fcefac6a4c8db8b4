"""The API's evidence pack endpoint and the ``api-key`` command line."""
from __future__ import annotations

import io

import pytest
from pypdf import PdfReader
from starlette.applications import Starlette
from starlette.testclient import TestClient

from claims_core import cli
from claims_core.adapters import api, web
from claims_core.infra.db import utcnow
from claims_core.services import api_keys, customer

from tests.support.factories import claim_request, make_order


@pytest.fixture
def client(db_url, engine, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", db_url)
    with TestClient(Starlette(routes=[api.mount()]), base_url="http://portal.test") as c:
        yield c
    web._engine_for.cache_clear()


def test_the_evidence_pack_comes_from_the_api_too(client, engine):
    built = make_order(engine, "8001", "e8001@example.com", base=utcnow(), tracking_prefix="EV")
    r = customer.file_claim(engine, claim_request(built, key="ev"))
    _view, key = api_keys.create_key(engine, "carrier claims", "read", "owner:o")
    resp = client.get(f"/api/v1/claims/{r.reference}/evidence.pdf",
                      headers={"Authorization": f"Bearer {key}"})
    assert resp.status_code == 200 and resp.headers["content-type"] == "application/pdf"
    assert f"evidence-{r.reference}.pdf" in resp.headers["content-disposition"]
    text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(resp.content)).pages)
    assert r.reference in text
    assert client.get(f"/api/v1/claims/{r.reference}/evidence.pdf").status_code == 401
    assert client.get("/api/v1/claims/CLM-NOPE00/evidence.pdf",
                      headers={"Authorization": f"Bearer {key}"}).status_code == 404


def test_api_key_commands(db_url, engine, monkeypatch, capsys):
    monkeypatch.setenv("DATABASE_URL", db_url)
    assert cli.main(["api-key", "create", "--name", "help desk", "--scope", "write"]) == 0
    raw = capsys.readouterr().out.strip().splitlines()[-1]
    key = api_keys.authenticate(engine, raw)
    assert key is not None and (key.name, key.scope) == ("help desk", "write")
    assert cli.main(["api-key", "list"]) == 0
    listed = capsys.readouterr().out
    assert key.prefix in listed and "active" in listed and raw not in listed
    assert cli.main(["api-key", "revoke", key.prefix]) == 0
    assert api_keys.authenticate(engine, raw) is None
    assert cli.main(["api-key", "revoke", "ck_missing"]) == 2
    assert cli.main(["api-key", "create", "--name", " ", "--scope", "read"]) == 2
