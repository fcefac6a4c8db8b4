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

from tests.support.browser import (
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
    tap(page.get_by_role("button", name="Claim for this shipment · Shipment 1").click)
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
    page.get_by_text(re.compile("Please tick the box|signature box is empty")).first.wait_for(
        timeout=15000)
    tap(draw_signature, page)
    _toolbar_covers_nothing(page)
    tap(page.get_by_text("I confirm the information in this claim is accurate.").click)
    settle(page)
    _shot(page, f"{size}-7-sign")
    tap(click_button, page, "Submit claim")
    page.get_by_text("Claim received").wait_for(timeout=30000)
    assert tap.count <= 12, f"{tap.count} interactions for a damaged item, two photos, drawn signature"
    print(f"taps without the order link: {tap.count}")
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
    page2.get_by_text("Handle snapped off, box was <b>crushed</b>.").wait_for(timeout=15000)
    assert page2.locator("b", has_text="crushed").count() == 0  # shown as text, not HTML
    _shot(page2, f"{size}-9-view-my-claim")
    other.close()


# --- the signed order link in the shop's shipping email (issue #28) -------------------------------

def _liquid():
    """A Liquid engine with Shopify's ``hmac_sha256`` filter as documented: hex HMAC-SHA256 of the
    input, keyed with the argument (tests/test_order_link.py checks it on Shopify's example)."""
    import hashlib
    import hmac

    from liquid import Environment
    env = Environment()
    env.filters["hmac_sha256"] = lambda value, key: hmac.new(
        str(key).encode(), str(value).encode(), hashlib.sha256).hexdigest()
    return env


def _snippet_link(snippet: str, base: str, name: str, email: str) -> str:
    """The href the Liquid snippet renders for this order, pointed at the app under test."""
    from urllib.parse import urlsplit
    html = _liquid().from_string(snippet).render(order={"name": name, "email": email})
    href = html.split('href="', 1)[1].split('"', 1)[0]
    return base + "/?" + urlsplit(href).query


def _two_shipment_order(db_url: str, number: str, email: str):
    from datetime import timedelta

    from claims_core.infra.db import utcnow

    from tests.support.factories import make_order
    now = utcnow()
    engine = make_engine(db_url)
    built = make_order(engine, number, email, base=now, tracking_prefix=f"OL{number}",
                       shipments=[dict(status="delivered", shipped=now - timedelta(days=11),
                                       delivered=now - timedelta(days=8),
                                       items=[("MUG", 2)]),
                                  dict(status="in_transit", shipped=now - timedelta(days=10),
                                       last_scan=now - timedelta(days=8),
                                       items=[("MUG", 1), ("TOTE", 1)])])
    engine.dispose()
    return built


def _form_prefilled(page, number: str, email: str) -> None:
    from playwright.sync_api import expect
    page.get_by_role("heading", name="File a claim").wait_for(timeout=30000)
    settle(page)
    expect(page.get_by_label("Order number or tracking number")).to_have_value(number, timeout=15000)
    expect(page.get_by_label("Email used at checkout")).to_have_value(email, timeout=15000)
    assert page.get_by_role("heading", name=f"Order #{number}").count() == 0


def test_order_link_from_the_shipping_email(live_app, browser):
    """The owner copies the Liquid snippet from Settings → Email link; the link it renders for an
    order opens that order at 390 px (shipments, deadlines, buttons above the fold, each button
    named after its shipment) and a damaged-item claim with two photos and a drawn signature
    takes at most 10 taps from the email; a tampered or unsigned link, and the old link after the
    secret is rotated, only fill in the look-up form."""
    from tests.support.browser import staff_log_in
    base = live_app["url"]
    number, email = "88001", "link.customer@example.com"
    _two_shipment_order(live_app["db_url"], number, email)

    staff = browser.new_context(viewport=DESKTOP)
    admin = staff.new_page()
    staff_log_in(admin, base, *live_app["owner"])
    admin.goto(base + "/settings")
    admin.get_by_role("tab", name="Email", exact=True).click()  # the group, then its section
    admin.get_by_role("tab", name="Email link").click()
    click_button(admin, "Show the secret and the snippet")
    codes = admin.locator("[data-testid='stCode'] code")
    codes.nth(1).wait_for(timeout=30000)
    secret, snippet = codes.nth(0).inner_text().strip(), codes.nth(1).inner_text().strip()
    assert len(secret) == 48 and f"hmac_sha256: '{secret}'" in snippet
    link = _snippet_link(snippet, base, f"#{number}", email)

    ctx = browser.new_context(viewport=PHONE)
    page = ctx.new_page()
    tap = Taps()
    tap(page.goto, link)  # the tap on the email's button
    page.get_by_role("heading", name=f"Order #{number}").wait_for(timeout=30000)
    settle(page)
    # above the fold at 390 × 844, nothing scrolled: each shipment's deadline and its button
    buttons = [page.get_by_role("button", name=f"Claim for this shipment · Shipment {n}", exact=True)
               for n in (1, 2)]
    deadlines = page.get_by_text("You can claim until")
    deadlines.nth(1).wait_for(timeout=30000)
    assert deadlines.count() == 2
    for el in [*buttons, deadlines.nth(0), deadlines.nth(1)]:
        box = el.bounding_box()
        assert box is not None and box["y"] >= 0 and box["y"] + box["height"] <= PHONE["height"], \
            f"below the fold at 390 px: {box}"
    _shot(page, "phone-link-1-your-order")
    if SHOTS or os.environ.get("PORTAL_README_SHOT"):
        shot(page, Path(__file__).resolve().parents[2] / "docs" / "portal-phone-link-your-order.png")

    tap(buttons[0].click)
    settle(page)
    tap(choose, page, "Damaged — ")
    page.get_by_text("Which items, and how many?").wait_for()
    tap(page.get_by_label(re.compile(r"Hand-thrown Mug \(up to \d\)")).fill, "1")
    page.keyboard.press("Tab")
    settle(page)
    photo = Path(live_app["db_url"].split("///")[-1]).parent / "link-photo-1.jpg"
    if live_app["db_url"].startswith("postgresql"):
        import tempfile
        photo = Path(tempfile.mkdtemp()) / "link-photo-1.jpg"
    photo2 = photo.with_name("link-photo-2.jpg")
    photo.write_bytes(make_photo(21))
    photo2.write_bytes(make_photo(22))
    tap(page.locator("input[type=file]").set_input_files, [str(photo), str(photo2)])
    page.get_by_text("link-photo-2.jpg").first.wait_for(timeout=30000)
    settle(page)
    tap(click_button, page, "Continue")
    page.get_by_text("How would you like it resolved?").wait_for()
    tap(click_button, page, "Continue")
    page.get_by_text("Check and sign your claim").wait_for()
    settle(page)
    # the drawing pad has a name a screen reader reads (its canvas, inside the component)
    pad = page.get_by_role("img", name="Signature pad: draw your signature with your finger or mouse",
                           exact=True)
    pad.wait_for(timeout=15000)
    assert pad.evaluate("e => e.tagName") == "CANVAS"
    tap(draw_signature, page)
    tap(page.get_by_text("I confirm the information in this claim is accurate.").click)
    settle(page)
    tap(click_button, page, "Submit claim")
    page.get_by_text("Claim received").wait_for(timeout=30000)
    print(f"taps with the order link: {tap.count}")
    assert tap.count <= 10, f"{tap.count} interactions from the email's link"
    engine = make_engine(live_app["db_url"])
    with read_session(engine) as s:
        claim = s.scalars(select(Claim).where(Claim.email == email)).one()
        assert claim.issue_type == "damaged" and len(claim.evidence) == 2
        assert claim.signature_kind == "drawn"
    engine.dispose()

    # This signature on another order, or with another email, or no signature: the form, prefilled.
    page.goto(link.replace(f"order={number}", "order=88002"))
    _form_prefilled(page, "88002", email)
    page.goto(link.replace("link.customer", "someone.else"))
    _form_prefilled(page, number, "someone.else@example.com")
    page.goto(link.split("&sig=")[0])
    _form_prefilled(page, number, email)
    _shot(page, "phone-link-2-unsigned-prefilled")
    # The owner rotates the secret: the old link stops opening the order.
    from playwright.sync_api import expect
    click_button(admin, "Rotate the secret")
    expect(codes.nth(0)).not_to_have_text(secret, timeout=30000)  # the new secret, shown once
    assert len(codes.nth(0).inner_text().strip()) == 48
    page.goto(link)
    _form_prefilled(page, number, email)
    click_button(page, "Find my order")  # the look-up works as ever
    page.get_by_role("heading", name=f"Order #{number}").wait_for(timeout=30000)
    staff.close()
    ctx.close()
