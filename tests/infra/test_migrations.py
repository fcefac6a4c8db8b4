"""Alembic: the models match the migrations, and `init` upgrades an older database intact."""
import os
import subprocess
import sys
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

from claims_core import cli
from claims_core.infra import migrate
from claims_core.infra.db import make_engine
from claims_core.infra.models import Base

ROOT = Path(__file__).resolve().parents[2]


def test_models_match_migrations(engine):
    with engine.connect() as c:
        diff = compare_metadata(MigrationContext.configure(c, opts={"compare_type": True}),
                                Base.metadata)
    assert diff == []


def test_init_upgrades_an_earlier_revision_with_data_intact(fresh_db_url, monkeypatch):
    url = fresh_db_url
    old = make_engine(url)
    migrate.upgrade(old, "0001")
    assert migrate.current_revision(old) == "0001"
    with old.begin() as c:
        c.execute(text("INSERT INTO store_settings (id, name, logo_png, accent_color, support_email,"
                       " intro_text, timezone, currency, filing_window_days, lost_wait_days,"
                       " offer_refund, offer_reshipment, offer_store_credit, store_credit_bonus_pct,"
                       " max_photos, max_photo_bytes, signature_threshold_cents, protection_pattern,"
                       " updated_at) VALUES (1, 'Old Shop', NULL, '#123456', 'a@b.c', 'hi', 'UTC',"
                       " 'USD', 30, 5, TRUE, FALSE, TRUE, 5, 4, 1000000, 100, 'protect',"
                       " '2026-01-01')"))
        c.execute(text("INSERT INTO orders (id, order_number, name, email, customer_name, created_at,"
                       " financial_status, fulfillment_status, currency, subtotal_cents,"
                       " shipping_cents, tax_cents, total_cents, protection_fee_cents,"
                       " protection_purchased_at, shipping_method, shipping_address1, shipping_city,"
                       " shipping_zip, shipping_province, shipping_country, source, updated_at)"
                       " VALUES (1, '1001', '#1001', 'sam@example.com', 'Sam', '2026-10-01 10:00:00',"
                       " 'paid', 'fulfilled', 'USD', 5000, 0, 0, 5000, 195, '2026-10-01 10:00:00',"
                       " '', '', '', '', '', 'US', 'import', '2026-10-01')"))
        c.execute(text("INSERT INTO events (id, order_id, actor, at, action, details)"
                       " VALUES (1, 1, 'cli', '2026-10-01 10:00:00', 'imported', '{}')"))
    old.dispose()

    monkeypatch.setenv("DATABASE_URL", url)
    assert cli.main(["init"]) == 0

    eng = make_engine(url)
    assert migrate.current_revision(eng) == migrate.head_revision()
    with eng.connect() as c:
        assert c.execute(text("SELECT name, filing_window_days, lookup_max_misses,"
                              " lookup_window_minutes FROM store_settings")).one() == \
            ("Old Shop", 30, 10, 10)
        assert c.execute(text("SELECT order_number, email, total_cents FROM orders")).one() == \
            ("1001", "sam@example.com", 5000)
        assert c.execute(text("SELECT action FROM events")).scalar_one() == "imported"
        assert c.execute(text("SELECT count(*) FROM claim_drafts")).scalar_one() == 0
    assert cli.main(["init"]) == 0  # running it again is harmless
    eng.dispose()


def test_init_from_the_command_line(fresh_db_url):
    env = {**os.environ, "DATABASE_URL": fresh_db_url}
    out = subprocess.run([sys.executable, "-m", "claims_core", "init"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "upgraded from empty" in out.stdout
