"""Nothing slow inside a write transaction: filing a claim decodes its photos and re-encodes its
drawn signature (Pillow, tens of milliseconds) before it takes SQLite's write lock, so other
writers (customers, webhook receipts) never wait for image work."""
from __future__ import annotations

import sqlite3

import pytest

from claims_core.infra.db import utcnow
from claims_core.services import customer
from tests.conftest import ON_POSTGRES
from tests.support.factories import claim_request, jpeg_bytes, make_order

pytestmark = pytest.mark.skipif(ON_POSTGRES, reason="probes SQLite's write lock")


def _write_lock_is_held(engine) -> bool:
    con = sqlite3.connect(engine.url.database, timeout=0)
    try:
        con.execute("BEGIN IMMEDIATE")
        con.rollback()
        return False
    except sqlite3.OperationalError as e:
        assert "locked" in str(e)
        return True
    finally:
        con.close()


def test_a_drawn_signature_and_photos_are_worked_on_before_the_write_lock(engine, monkeypatch):
    built = make_order(engine, base=utcnow())
    seen = []
    for name in ("normalize_signature", "process_photo"):
        real = getattr(customer, name)

        def probe(*args, _real=real, _name=name, **kwargs):
            seen.append((_name, _write_lock_is_held(engine)))
            return _real(*args, **kwargs)
        monkeypatch.setattr(customer, name, probe)
    r = customer.file_claim(engine, claim_request(built, photos=[("box.jpg", jpeg_bytes())]))
    assert r.claim_id
    assert ("normalize_signature", False) in seen and ("process_photo", False) in seen
    assert all(not held for _name, held in seen), seen
