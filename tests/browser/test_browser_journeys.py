"""Browser journeys 2–4: a shipping claim at desktop with a typed signature; staff ask for more,
the customer replies with a photo, staff approve store credit and the customer sees the code; an
analyst downloads a CSV."""
from __future__ import annotations

import csv
import io
import re

import pytest

from claims_core.adapters.demo import DEMO_ORDERS, make_photo
from claims_core.infra.db import make_engine, utcnow
from claims_core.services import claim_views, customer

from tests.support.browser import (
    DESKTOP,
    PHONE,
    assert_accessible,
    choose,
    claim_shipment,
    click_button,
    set_checkbox,
    settle,
    staff_log_in,
)
from tests.support.factories import claim_request, make_order

pytestmark = pytest.mark.browser


def log_in(page, base, user, password):
    staff_log_in(page, base, user, password, check_accessible=True)


def open_from_queue(page, reference):
    page.get_by_placeholder("Claim reference, order number, email or tracking number").fill(reference)
    page.keyboard.press("Enter")
    settle(page)
    page.locator("[data-testid='stDataFrame']").first.click(position={"x": 12, "y": 55})
    page.get_by_role("heading", name=f"Claim {reference}").wait_for(timeout=30000)
    settle(page)


def test_shipping_claim_at_desktop_with_typed_signature(live_app, browser):
    demo = DEMO_ORDERS[0]
    ctx = browser.new_context(viewport=DESKTOP)
    page = ctx.new_page()
    page.goto(live_app["url"])
    page.get_by_label("Order number or tracking number").fill(demo.number)
    page.get_by_label("Email used at checkout").fill(demo.email)
    click_button(page, "Find my order")
    claim_shipment(page, 2)
    choose(page, "Lost / tracking not moving — ")  # a tap moves on
    page.get_by_label(re.compile("Tell us what happened")).fill("Tracking stuck at the depot for 9 days.")
    page.keyboard.press("Tab")
    settle(page)
    click_button(page, "Continue")
    choose(page, "Store credit of")
    click_button(page, "Continue")
    choose(page, "Type my full name")
    page.get_by_label("Full name", exact=True).fill("Jamie Rivera")
    page.keyboard.press("Tab")
    set_checkbox(page, "I confirm the information in this claim is accurate.", True)
    click_button(page, "Submit claim")
    page.get_by_text("Claim received").wait_for(timeout=30000)
    assert_accessible(page, "confirmation at desktop")
    link = page.locator("[data-testid='stCode'] code, pre code").first.inner_text().strip()
    ctx.close()
    # View My Claim by order number + email, in another browser
    other = browser.new_context(viewport=PHONE)
    page = other.new_page()
    page.goto(live_app["url"] + "/my-claim")
    page.get_by_role("heading", name="View my claim").wait_for(timeout=30000)
    settle(page)
    assert_accessible(page, "view my claim lookup")
    page.get_by_label("Order number or tracking number").fill(f"#{demo.number}")
    page.get_by_label("Email used at checkout").fill(demo.email.upper())
    click_button(page, "Find my claims")
    token = link.split("token=")[1].split("&")[0]
    engine = make_engine(live_app["db_url"])
    ref = claim_views.get_claim_for_customer(engine, token).reference
    engine.dispose()
    page.get_by_text(ref).first.wait_for()
    page.get_by_role("button", name="Open", exact=True).last.click()  # the newest claim
    settle(page)
    page.get_by_text("Lost / tracking not moving").first.wait_for(timeout=30000)
    other.close()


def test_staff_ask_customer_replies_staff_approve_store_credit(live_app, browser, tmp_path):
    engine = make_engine(live_app["db_url"])
    built = make_order(engine, "J3", "journey3@example.com", base=utcnow(), tracking_prefix="J3T")
    r = customer.file_claim(engine, claim_request(built, key="journey3", resolution="store_credit"))
    engine.dispose()

    staff = browser.new_context(viewport=DESKTOP)
    spage = staff.new_page()
    log_in(spage, live_app["url"], *live_app["owner"])
    open_from_queue(spage, r.reference)
    spage.get_by_role("button", name="Full size").first.click()
    settle(spage)
    spage.get_by_label("What do you need?").fill("Please add a photo of the shipping label.")
    click_button(spage, "Request information")
    spage.get_by_text("Asked the customer").wait_for(timeout=30000)

    phone = browser.new_context(viewport=PHONE)
    cpage = phone.new_page()
    cpage.goto(f"{live_app['url']}/my-claim?token={r.access_token}")
    cpage.get_by_text("waiting for more information").wait_for(timeout=30000)
    assert_accessible(cpage, "view my claim, waiting for you")
    label = tmp_path / "label.jpg"
    label.write_bytes(make_photo(77))
    cpage.get_by_role("textbox", name="Your message").fill("Here is the label.")
    cpage.locator("input[type=file]").set_input_files(str(label))
    settle(cpage)
    click_button(cpage, "Send")
    cpage.get_by_text("Message sent.").wait_for(timeout=30000)
    assert cpage.get_by_text("label.jpg").first.is_visible()

    # staff: back to the queue, the claim is in review again; approve store credit
    spage.get_by_role("link", name="Back to the queue").click()
    settle(spage)
    open_from_queue(spage, r.reference)
    assert spage.get_by_text("Here is the label.").first.is_visible()
    set_checkbox(spage, "Refund", False)
    set_checkbox(spage, "Store credit", True)
    set_checkbox(spage, "Reship the items (takes them from stock)", False)
    click_button(spage, "Approve")
    spage.get_by_text("Claim approved.").wait_for(timeout=30000)
    staff.close()

    cpage.reload()
    cpage.get_by_text("Decision: approved").wait_for(timeout=30000)
    code = cpage.locator("[data-testid='stCode'] code, pre code").first.inner_text().strip()
    assert code.startswith("CREDIT") and code.isalnum()
    assert_accessible(cpage, "view my claim, approved")
    phone.close()


def test_analyst_downloads_a_csv(live_app, browser, engine=None):
    from claims_core.services import accounts
    eng = make_engine(live_app["db_url"])
    try:
        accounts.add_user(eng, "journey-analyst", "analyst", "analyst password 1")
    except accounts.AuthError:
        pass
    eng.dispose()
    ctx = browser.new_context(viewport=DESKTOP, accept_downloads=True)
    page = ctx.new_page()
    log_in(page, live_app["url"], "journey-analyst", "analyst password 1")
    page.get_by_role("heading", name="Analytics").wait_for(timeout=60000)
    settle(page)
    assert page.get_by_text("Claim rate by issue type").is_visible()
    first = page.get_by_role("button", name="Download CSV").first  # under the claim-rate chart
    first.scroll_into_view_if_needed()
    settle(page)  # the charts below have drawn: nothing moves under the click
    with page.expect_download(timeout=30000) as dl:
        first.click()
    data = dl.value.path().read_bytes().decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(data)))
    assert rows[0][:4] == ["issue_type", "issue", "category", "claims"] and len(rows) == 10
    ctx.close()
