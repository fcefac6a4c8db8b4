"""``/api/v1/docs`` in a real browser: Swagger UI renders the API from the app's own files, and
the page asks no other host for anything (it works offline and under the app's CSP)."""
from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from tests.support.browser import DESKTOP

pytestmark = pytest.mark.browser


def test_the_api_docs_render_from_the_app_alone(live_app, browser):
    base = live_app["url"]
    ctx = browser.new_context(viewport=DESKTOP)
    page = ctx.new_page()
    hosts, failed, errors = set(), [], []
    page.on("request", lambda r: hosts.add(urlsplit(r.url).netloc))
    page.on("requestfailed", lambda r: failed.append(r.url))
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(base + "/api/v1/docs")
    page.get_by_text("Claims portal API").first.wait_for(timeout=30000)  # the document's title
    page.locator(".opblock-summary-path", has_text="/claims/{reference}/approve").first.wait_for(
        timeout=30000)  # the operations are listed
    assert hosts == {urlsplit(base).netloc}, hosts
    assert not failed and not errors, (failed, errors)
    ctx.close()
