"""A customer files a damaged-item claim in real Chromium, at phone width, with a photo and a
mouse-drawn signature, then opens the View My Claim link in a fresh browser context."""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from sqlalchemy import select

from claims_core.adapters.demo import DEMO_ORDERS, make_photo
from claims_core.infra.db import make_engine, read_session
from claims_core.infra.models import Claim

from .browser import (
    DESKTOP,
    PHONE,
    assert_accessible,
    choose,
    click_button,
    draw_signature,
    settle,
    shot,
)

pytestmark = pytest.mark.browser
SHOTS = os.environ.get("PORTAL_SCREENSHOTS")  # a folder: save each step's screenshot there


def _shot(page, name):
    assert_accessible(page, name)  # every public page and step
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        shot(page, Path(SHOTS) / f"{name}.png")


def _lookup(page, base, number, email):
    page.goto(base)
    page.get_by_label("Order number or tracking number").fill(number)
    page.get_by_label("Email used at checkout").fill(email)
    click_button(page, "Find my order")


@pytest.mark.parametrize("size", ["phone"] + (["desktop"] if SHOTS else []))
def test_damaged_item_claim_with_photo_and_drawn_signature(live_app, browser, tmp_path, size):
    base = live_app["url"]
    viewport = PHONE if size == "phone" else DESKTOP
    demo = DEMO_ORDERS[0]
    ctx = browser.new_context(viewport=viewport)
    page = ctx.new_page()
    page.goto(base)
    page.get_by_text("Find my order").wait_for()
    settle(page)
    _shot(page, f"{size}-1-find-order")
    _lookup(page, base, f" #{demo.number} ", demo.email.upper())
    page.get_by_text(f"Order #{demo.number}").wait_for()
    assert page.get_by_text("Protected", exact=True).is_visible()
    _shot(page, f"{size}-2-your-order")
    click_button(page, "Start a claim")
    choose(page, "Shipment 1 · ")
    choose(page, "A problem with an item")
    choose(page, "Damaged — ")
    _shot(page, f"{size}-3-what-went-wrong")
    click_button(page, "Continue")
    page.get_by_text("Which items, and how many?").wait_for()
    item, price = ("Hand-thrown Mug", "$28.00") if size == "phone" else ("Ceramic Pour-Over Set", "$62.00")
    page.get_by_label(re.compile(re.escape(item) + r" \(up to \d\)")).fill("1")
    page.keyboard.press("Tab")
    settle(page)
    photo, box = tmp_path / "broken-mug.jpg", tmp_path / "crushed-box.png"
    photo.write_bytes(make_photo(11))
    import io as _io

    from PIL import Image
    buf = _io.BytesIO()
    Image.open(_io.BytesIO(make_photo(12))).save(buf, "PNG")
    box.write_bytes(buf.getvalue())
    page.locator("input[type=file]").set_input_files([str(photo), str(box)])
    page.get_by_text("crushed-box.png").first.wait_for(timeout=30000)
    page.get_by_text("broken-mug.jpg").first.wait_for(timeout=30000)
    settle(page)
    page.get_by_label("Anything else we should know? (optional)").fill(
        "Handle snapped off, box was <b>crushed</b>.")
    page.keyboard.press("Tab")
    settle(page)
    _shot(page, f"{size}-4-details")
    click_button(page, "Continue")
    page.get_by_text("How would you like it resolved?").wait_for()
    choose(page, f"Refund of {price}")
    _shot(page, f"{size}-5-resolution")
    click_button(page, "Continue")
    page.get_by_text("Check your claim").wait_for()
    assert page.get_by_text("Handle snapped off, box was <b>crushed</b>.").is_visible()
    _shot(page, f"{size}-6-review")
    click_button(page, "Continue to sign")
    page.get_by_text("Sign your claim").wait_for()
    click_button(page, "Submit claim")  # nothing drawn yet: refused
    assert page.get_by_text("Please tick the box").is_visible() or \
        page.get_by_text("signature box is empty").is_visible()
    draw_signature(page)
    page.get_by_text("I confirm the information in this claim is accurate.").click()
    settle(page)
    _shot(page, f"{size}-7-sign")
    click_button(page, "Submit claim")
    page.get_by_text("Claim received").wait_for(timeout=30000)
    _shot(page, f"{size}-8-confirmation")
    link = page.locator("[data-testid='stCode'] code, pre code").first.inner_text().strip()
    assert "/my-claim?token=" in link

    engine = make_engine(live_app["db_url"])
    with read_session(engine) as s:
        claim = s.scalars(select(Claim).where(Claim.access_token == link.split("token=")[1])).one()
        assert claim.issue_type == "damaged" and claim.signature_kind == "drawn"
        assert claim.signature_png and len(claim.evidence) == 2
        assert claim.claimed_cents == int(price.strip("$").replace(".", ""))
        reference = claim.reference
    engine.dispose()
    ctx.close()

    # Later, on another device: the link alone opens the claim.
    other = browser.new_context(viewport=viewport)
    page2 = other.new_page()
    page2.goto(link)
    page2.get_by_text(f"Claim {reference}").wait_for(timeout=30000)
    settle(page2)
    assert page2.get_by_text("Handle snapped off, box was <b>crushed</b>.").is_visible()
    assert page2.locator("b", has_text="crushed").count() == 0  # shown as text, not HTML
    _shot(page2, f"{size}-9-view-my-claim")
    other.close()
