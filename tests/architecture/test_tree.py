"""The tests sit next to the layer they test, and the shared fixtures stay out of the way of
tests that don't need them."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TESTS = ROOT / "tests"
AREAS = {"domain", "infra", "services", "adapters", "pages", "browser", "architecture"}


def test_every_test_file_sits_in_the_folder_of_its_layer():
    flat = sorted(p.name for p in TESTS.glob("test_*.py"))
    assert flat == [], f"put these in tests/<layer>/: {flat}"
    folders = {p.parent.name for p in TESTS.rglob("test_*.py")}
    assert folders <= AREAS, folders - AREAS


def test_browser_tests_are_in_the_browser_folder_and_only_there():
    for p in TESTS.rglob("test_*.py"):
        drives_chromium = re.search(r"^pytestmark = \[?pytest\.mark\.browser\b", p.read_text(), re.M) is not None
        assert drives_chromium == (p.parent.name == "browser"), p.relative_to(ROOT)


def test_a_domain_test_runs_without_importing_the_pages():
    code = ("import sys, pytest\n"
            "rc = pytest.main(['-q', '-p', 'no:cacheprovider', 'tests/domain/test_rules.py'])\n"
            "pages = sorted(m for m in sys.modules if m == 'views' or m.startswith('views.'))\n"
            "print('PAGES', pages)\n"
            "sys.exit(int(rc))\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "PAGES []" in r.stdout, r.stdout[-500:]
