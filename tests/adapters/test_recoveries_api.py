"""Recoveries through the API (issue #25, priority 3): the list with cursor pages, filing (asking
twice files once), recording the carrier's decision and payment; scopes and codes."""
from __future__ import annotations


from claims_core.services import decisions

from tests.adapters.test_api import auth, client, problem, read_key, write_key  # noqa: F401
from tests.services.test_recoveries import _claim


def _approved(engine, now, n):
    _b, cid = _claim(engine, now, number=str(1000 + n))
    decisions.approve(engine, cid, "staff:t", [decisions.ResolutionInput("refund", 2800)], now=now)
    return cid


def test_list_pages_with_a_cursor(engine, now, client, read_key):  # noqa: F811
    for n in range(3):
        _approved(engine, now, n)
    r = client.get("/api/v1/recoveries?limit=2", headers=auth(read_key))
    assert r.status_code == 200, r.text
    page = r.json()
    assert [i["state"] for i in page["items"]] == ["to_file", "to_file"]
    first = page["items"][0]
    assert set(first) >= {"id", "claim_reference", "state", "deadline", "claimable_minor",
                          "recovered_minor", "carrier", "easypost_claim_id"}
    assert first["claimable_minor"] == 2800 and first["carrier"] == "UPS"
    rest = client.get(f"/api/v1/recoveries?limit=2&cursor={page['next_cursor']}",
                      headers=auth(read_key)).json()
    assert len(rest["items"]) == 1 and rest["next_cursor"] is None
    assert rest["items"][0]["id"] > page["items"][-1]["id"]
    problem(client.get("/api/v1/recoveries?cursor=bogus", headers=auth(read_key)), 422)


def test_file_twice_files_once_then_record(engine, now, client, write_key, read_key):  # noqa: F811
    _approved(engine, now, 0)
    rid = client.get("/api/v1/recoveries", headers=auth(read_key)).json()["items"][0]["id"]
    problem(client.post(f"/api/v1/recoveries/{rid}/file", json={"carrier_claim_number": "X"},
                        headers=auth(read_key)), 403)
    for _ in range(2):
        r = client.post(f"/api/v1/recoveries/{rid}/file", json={"carrier_claim_number": "UPS-77"},
                        headers=auth(write_key))
        assert r.status_code == 200, r.text
        assert r.json()["state"] == "filed" and r.json()["carrier_claim_number"] == "UPS-77"
    r = client.post(f"/api/v1/recoveries/{rid}/record",
                    json={"outcome": "approved", "paid_minor": 2800}, headers=auth(write_key))
    assert r.status_code == 200 and (r.json()["state"], r.json()["recovered_minor"]) == ("paid",
                                                                                      2800)
    problem(client.post(f"/api/v1/recoveries/{rid}/record", json={"outcome": "rejected"},
                        headers=auth(write_key)), 409, "recovery_illegal_step")
    problem(client.post("/api/v1/recoveries/999999/record", json={"outcome": "rejected"},
                        headers=auth(write_key)), 404, "recovery_not_found")


def test_file_through_easypost_when_configured(engine, now, client, write_key, monkeypatch):  # noqa: F811
    monkeypatch.setenv("EASYPOST_API_KEY", "EZTK_x")
    _approved(engine, now, 0)
    rid = client.get("/api/v1/recoveries", headers=auth(write_key)).json()["items"][0]["id"]
    for _ in range(2):
        r = client.post(f"/api/v1/recoveries/{rid}/file", json={}, headers=auth(write_key))
        assert r.status_code == 200 and r.json()["state"] == "to_file"  # queued for the job
    from sqlalchemy import func, select

    from claims_core.infra.db import read_session
    from claims_core.infra.models import RecoveryEvent, RecoveryFiling
    with read_session(engine) as s:
        assert s.scalar(select(func.count()).select_from(RecoveryFiling)) == 1
        assert s.scalar(select(func.count()).select_from(RecoveryEvent)
                        .where(RecoveryEvent.action == "file_requested")) == 1
