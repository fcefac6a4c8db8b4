"""Analytics → queue drill-down in a real browser: clicking a bar of the claim-rate chart opens
the queue filtered to that issue type, and the link can be shared."""
from __future__ import annotations

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from claims_core import domain

from tests.support.browser import DESKTOP, settle, staff_log_in

pytestmark = pytest.mark.browser


def test_clicking_a_bar_opens_its_claims_in_the_queue(live_app, browser):
    ctx = browser.new_context(viewport=DESKTOP)
    page = ctx.new_page()
    staff_log_in(page, live_app["url"], *live_app["owner"])
    page.goto(live_app["url"] + "/analytics?period=2020-01-01..2030-12-31&by=month")
    page.get_by_text("Claim rate by issue type").wait_for(timeout=60000)
    settle(page, timeout=60000)
    assert "period=2020-01-01..2030-12-31" in page.url  # the view's own link
    bar = page.locator(".js-plotly-plot .bars path >> visible=true").first  # a non-zero bar
    bar.wait_for(timeout=30000)
    for attempt in range(3):  # a click that lands before Plotly binds its handler is lost: again
        bar.click(force=True)
        try:
            page.wait_for_url("**/queue?issue=*", timeout=15000)
            break
        except PlaywrightTimeoutError:
            if attempt == 2:
                raise
    settle(page)
    issue = page.url.split("issue=")[1].split("&")[0]
    label = domain.ISSUE_TYPES[issue].label
    issue_filter = page.locator("[data-testid='stMultiSelect']").nth(0)
    assert label in issue_filter.inner_text()
    # the same link, opened fresh (shared), shows the same filter
    fresh = browser.new_context(viewport=DESKTOP).new_page()
    staff_log_in(fresh, live_app["url"], *live_app["owner"])
    fresh.goto(live_app["url"] + f"/queue?issue={issue}")
    fresh.get_by_text("Claims queue").wait_for(timeout=30000)
    settle(fresh)
    assert label in fresh.locator("[data-testid='stMultiSelect']").nth(0).inner_text()
    ctx.close()
