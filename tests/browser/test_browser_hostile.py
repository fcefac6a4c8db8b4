"""Customer text with markdown, HTML, <script>, javascript: links and images stays inert text on
the customer's and the staff's pages, in a real browser."""
from __future__ import annotations

from datetime import timedelta

import pytest

from claims_core.infra.db import make_engine, utcnow
from claims_core.domain.tracking import Checkpoint, TrackingUpdate
from claims_core.domain.vocabulary import Milestone
from claims_core.services import customer, decisions, tracking
from claims_core.services.unit_of_work import run

from tests.support.browser import DESKTOP, PHONE, click_button, settle
from tests.support.factories import claim_request, make_order

pytestmark = pytest.mark.browser

HOSTILE = ("Look <script>window.pwned=1</script> <img src=https://evil.example/x.png "
           "onerror=\"window.pwned=2\"> [click me](javascript:window.pwned=3) "
           "![pic](https://evil.example/y.png) **bold** <a href='https://evil.example'>link</a> 📦")


def _inert(page):
    shown = page.get_by_text("[click me](javascript:window.pwned=3)", exact=False)
    assert shown.count() >= 3 and shown.first.is_visible()  # comments, messages, carrier scan
    assert page.evaluate("() => window.pwned") is None
    assert page.locator("img[src*='evil.example']").count() == 0
    bad = page.locator("a[href*='evil.example'], a[href^='javascript']")
    assert bad.count() == 0, [bad.nth(i).evaluate("e => e.parentElement.outerHTML") for i in range(bad.count())]


def test_hostile_text_is_inert_everywhere(live_app, browser):
    engine = make_engine(live_app["db_url"])
    built = make_order(engine, "H1", "hostile@example.com", base=utcnow(), tracking_prefix="HX")
    r = customer.file_claim(engine, claim_request(built, key="hostile", description=HOSTILE,
                                                  signature="typed", signature_name="<b>Eve</b>"))
    customer.add_customer_message(engine, r.access_token, HOSTILE)
    decisions.staff_message(engine, r.claim_id, "staff:t", "Shop", "Reply with " + HOSTILE)
    # a carrier feed's words too (timeline message and place, on both pages)
    run(engine, lambda s: tracking.record(s, TrackingUpdate("17track", "HXH1X0", "UPS", (
        Checkpoint(utcnow() - timedelta(hours=1), Milestone.DELIVERED, HOSTILE,
                   "www.evil.example [x](https://evil.example)"),))))
    engine.dispose()

    phone = browser.new_context(viewport=PHONE)
    page = phone.new_page()
    page.goto(f"{live_app['url']}/my-claim?token={r.access_token}")
    page.get_by_text(f"Claim {r.reference}").wait_for(timeout=30000)
    settle(page)
    _inert(page)  # the claim details are open for a claim in progress
    phone.close()

    staff = browser.new_context(viewport=DESKTOP)
    page = staff.new_page()
    page.goto(live_app["url"] + "/login")
    page.get_by_label("Username").fill(live_app["owner"][0])
    page.locator("input[type=password]").fill(live_app["owner"][1])
    click_button(page, "Log in")
    page.get_by_placeholder("Claim reference, order number, email or tracking number").fill(r.reference)
    page.keyboard.press("Enter")
    settle(page)
    page.locator("[data-testid='stDataFrame']").first.click(position={"x": 12, "y": 55})
    page.get_by_role("heading", name=f"Claim {r.reference}").wait_for(timeout=30000)
    settle(page)
    _inert(page)
    staff.close()
