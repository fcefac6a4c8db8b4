"""A fault in the real server (the st.App's ``on_script_error``): a read-only database. Reading
works (the look-up too: its misses are counted in the process); a step that must write shows words
that say what to do, never a traceback."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from claims_core.adapters.demo import DEMO_ORDERS
from claims_core.domain.errors import LOOKUP_FAILED
from views import faults

from tests.support.browser import DESKTOP, click_button
from tests.conftest import ON_POSTGRES, running_app
from tests.browser.test_browser_links import ROOT

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(ON_POSTGRES, reason="a read-only SQLite file stands for the fault")]


def test_a_read_only_database_gets_the_friendly_page(browser, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    env = {**os.environ, "CLAIMS_DATA_DIR": str(data)}
    env.pop("DATABASE_URL", None)
    subprocess.run([sys.executable, "-m", "claims_core", "demo", "--if-empty", "--orders", "40"],
                   cwd=ROOT, env=env, check=True, capture_output=True, timeout=300)
    frozen = tmp_path / "frozen.db"
    shutil.copy(data / "claims.db", frozen)
    env["DATABASE_URL"] = f"sqlite:///file:{frozen}?mode=ro&uri=true"
    with running_app(env, tmp_path / "streamlit.log") as base:
        ctx = browser.new_context(viewport=DESKTOP)
        page = ctx.new_page()
        page.goto(base)
        page.get_by_text("Find my order").first.wait_for(timeout=60000)  # a read page works
        d = DEMO_ORDERS[0]
        page.get_by_label("Order number or tracking number").fill(d.number)
        page.get_by_label("Email used at checkout").fill("not.the.buyer@example.com")
        click_button(page, "Find my order")  # a miss: counted in the process (nothing to write to)
        page.get_by_text(LOOKUP_FAILED).first.wait_for(timeout=30000)
        page.get_by_label("Email used at checkout").fill(d.email)
        click_button(page, "Find my order")  # the look-up is a read: it works
        page.get_by_text(f"Order #{d.number}").first.wait_for(timeout=30000)
        page.get_by_text("Claim for this shipment · Shipment 1").first.click()  # saves a draft
        page.get_by_text(faults.CANNOT_SAVE).first.wait_for(timeout=30000)
        body = page.inner_text("body")
        assert "Traceback" not in body and "OperationalError" not in body
        assert "readonly" not in body.lower()
        ctx.close()
