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


def _toolbar_covers_nothing(page):
    """The signature pad's toolbar (it appears over the pad's top edge on hover or touch) covers
    no words of the page."""
    page.locator("canvas").last.hover()
    page.wait_for_timeout(400)
    overlap = page.evaluate("""() => {
        const bar = document.querySelector('.dc-toolbar') ||
            [...document.querySelectorAll('*')].map(e => e.shadowRoot).filter(Boolean)
              .map(r => r.querySelector('.dc-toolbar')).find(Boolean);
        if (!bar) return [];
        const b = bar.getBoundingClientRect();
        return [...document.querySelectorAll('p, h1, h2, h3, label, [data-testid="stText"]')]
          .filter(e => e.offsetParent !== null && e.innerText.trim())
          .filter(e => { const r = e.getBoundingClientRect();
                         return r.left < b.right && r.right > b.left && r.top < b.bottom && r.bottom > b.top; })
          .map(e => e.innerText.slice(0, 60)); }""")
    assert overlap == [], f"the pad's toolbar covers: {overlap}"


def _lookup(page, base, number, email):
    page.goto(base)
    page.get_by_label("Order number or tracking number").fill(number)
    page.get_by_label("Email used at checkout").fill(email)
    click_button(page, "Find my order")


class Taps:
    """Counts what the customer does: each fill, tap, choice, upload and drawing is one."""

    def __init__(self):
        self.count = 0

    def __call__(self, action, *args, **kwargs):
        self.count += 1
        return action(*args, **kwargs)


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
    tap = Taps()
    tap(page.get_by_label("Order number or tracking number").fill, f" #{demo.number} ")
    tap(page.get_by_label("Email used at checkout").fill, demo.email.upper())
    tap(click_button, page, "Find my order")
    page.get_by_text(f"Order #{demo.number}").wait_for()
    assert page.get_by_text("Protected", exact=True).is_visible()
    _shot(page, f"{size}-2-your-order")
    tap(page.get_by_role("button", name="Claim for this shipment").first.click)  # Shipment 1
    settle(page)
    _shot(page, f"{size}-3-what-went-wrong")
    tap(choose, page, "Damaged — ")  # a tap on what went wrong moves on
    page.get_by_text("Which items, and how many?").wait_for()
    item, price = ("Hand-thrown Mug", "$28.00") if size == "phone" else ("Ceramic Pour-Over Set", "$62.00")
    tap(page.get_by_label(re.compile(re.escape(item) + r" \(up to \d\)")).fill, "1")
    page.keyboard.press("Tab")
    settle(page)
    photo, box = tmp_path / "broken-mug.jpg", tmp_path / "crushed-box.png"
    photo.write_bytes(make_photo(11))
    import io as _io

    from PIL import Image
    buf = _io.BytesIO()
    Image.open(_io.BytesIO(make_photo(12))).save(buf, "PNG")
    box.write_bytes(buf.getvalue())
    tap(page.locator("input[type=file]").set_input_files, [str(photo), str(box)])  # two photos
    page.get_by_text("crushed-box.png").first.wait_for(timeout=30000)
    page.get_by_text("broken-mug.jpg").first.wait_for(timeout=30000)
    settle(page)
    # optional, so not counted: the customer's own words (shown as text everywhere)
    page.get_by_label("Anything else we should know? (optional)").fill(
        "Handle snapped off, box was <b>crushed</b>.")
    page.keyboard.press("Tab")
    settle(page)
    _shot(page, f"{size}-4-details")
    tap(click_button, page, "Continue")
    page.get_by_text("How would you like it resolved?").wait_for()
    _shot(page, f"{size}-5-resolution")
    tap(click_button, page, "Continue")  # the store's first offer is already chosen
    page.get_by_text("Check and sign your claim").wait_for()
    assert page.get_by_text("Handle snapped off, box was <b>crushed</b>.").is_visible()
    # the phone has no keyboard: no "Press Enter to apply" hints
    assert page.locator("[data-testid='InputInstructions']:visible").count() == 0
    _shot(page, f"{size}-6-check-and-sign")
    click_button(page, "Submit claim")  # a deliberate mistake, not counted: nothing drawn yet
    assert page.get_by_text("Please tick the box").is_visible() or \
        page.get_by_text("signature box is empty").is_visible()
    tap(draw_signature, page)
    _toolbar_covers_nothing(page)
    tap(page.get_by_text("I confirm the information in this claim is accurate.").click)
    settle(page)
    _shot(page, f"{size}-7-sign")
    tap(click_button, page, "Submit claim")
    page.get_by_text("Claim received").wait_for(timeout=30000)
    assert tap.count <= 12, f"{tap.count} interactions for a damaged item, two photos, drawn signature"
    _shot(page, f"{size}-8-confirmation")
    link = page.locator("[data-testid='stCode'] code, pre code").first.inner_text().strip()
    assert "/my-claim?token=" in link

    engine = make_engine(live_app["db_url"])
    with read_session(engine) as s:
        claim = s.scalars(select(Claim).where(Claim.access_token == link.split("token=")[1].split("&")[0])).one()
        assert claim.issue_type == "damaged" and claim.signature_kind == "drawn"
        assert claim.signature_png and len(claim.evidence) == 2
        assert claim.claimed_cents == int(price.strip("$").replace(".", ""))
        assert claim.desired_resolution  # the store's first offer, kept as it was
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
