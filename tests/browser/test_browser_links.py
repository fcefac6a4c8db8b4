"""Links into the app work on a freshly started server, and customer text that looks like a
markdown link (a photo's file name, a typed signature) reaches every page as plain text."""
from __future__ import annotations

import contextlib
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from claims_core.adapters.demo import DEMO_ORDERS
from claims_core.infra.db import make_engine, read_session
from claims_core.infra.models import Claim
from claims_core.infra.photos import clean_filename

from tests.support.browser import (
    DESKTOP,
    PHONE,
    choose,
    claim_shipment,
    click_button,
    set_checkbox,
    settle,
    staff_log_in,
)
from tests.conftest import ON_POSTGRES, _pg_schema, running_app

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]

# --- 1. the first request after a fresh start ---------------------------------------------------

FIRST_PATHS = ["/my-claim?token=doesnotexist0000000000", "/staff_settings", "/ui", "/analytics",
               "/queue", "/claim?id=1", "/login"]
# Names of the old pages/ folder's files: not pages of the app. Streamlit may say "Page not found"
# there, but must run the app's main page, never the file.
NOT_PAGES = {"/staff_settings", "/ui"}
STAFF_HEADINGS = {"Claims queue", "Settings", "Analytics", "Outbox", "New claim for a customer"}
# Page links that must never be offered to a visitor without a staff session: the old pages/
# folder's internal files, and the staff pages.
FORBIDDEN_LINKS = {"ui", "staff settings", "staff_settings", "claims queue", "settings",
                   "analytics", "outbox", "new claim for a customer"}

# Remembers, from before the first byte of the page, whatever ever appeared: a "Page not found"
# notice (even one shown only for a moment) and every heading.
WATCH = """
window.__seen = {pnf: false, headings: new Set()};
const scan = () => {
  if (!document.body) return;
  if (document.body.textContent.includes('Page not found')) window.__seen.pnf = true;
  for (const h of document.querySelectorAll('h1, h2, h3'))
    window.__seen.headings.add(h.textContent.trim());
};
new MutationObserver(scan).observe(document, {subtree: true, childList: true, characterData: true});
"""


def _nav_links(page) -> list[tuple[str, str]]:
    """(name, href) of every link in the page, with the navigation's "Staff" menu opened."""
    dialog = page.get_by_role("dialog")
    if dialog.count():  # a notice over the page would swallow the click: close it first
        page.keyboard.press("Escape")
        dialog.first.wait_for(state="hidden", timeout=5000)
    menu = page.locator("header, [data-testid='stSidebar']").get_by_text("Staff", exact=True)
    if menu.count():
        menu.first.click(timeout=5000)
        page.wait_for_timeout(500)
    links = page.evaluate(
        "() => [...document.querySelectorAll('a')].map(a => [a.innerText, a.getAttribute('href')])")
    page.keyboard.press("Escape")
    # A link's text starts with its icon's name on a line of its own: keep the last line.
    return [((text or "").strip().split("\n")[-1].strip(), href or "") for text, href in links]


def _first_visit(browser, base: str, path: str) -> list[str]:
    """Open ``base + path`` as the server's very first request; return what is wrong there."""
    ctx = browser.new_context(viewport=DESKTOP)
    ctx.add_init_script(WATCH)
    page = ctx.new_page()
    problems = []
    try:
        page.goto(base + path)
        where = path.split("?")[0]
        expect = "View my claim" if where == "/my-claim" else (
            None if where in NOT_PAGES else "Staff log in")  # a staff page asks for a log-in
        page.wait_for_function(
            """(want) => { const t = document.body.innerText;
                           return want ? t.includes(want)
                                       : t.includes('Staff log in') || t.includes('Find my order'); }""",
            arg=expect, timeout=30000)
        settle(page)
        page.wait_for_timeout(1000)  # a late notice would come with the first run's messages
        body = page.inner_text("body")
        seen = page.evaluate("() => ({pnf: window.__seen.pnf, headings: [...window.__seen.headings]})")
        if where not in NOT_PAGES and (seen["pnf"] or "Page not found" in body):
            notice = re.search(r"Page not found[^\n]*\n?[^\n]*", body)
            problems.append(f"{path}: 'Page not found' shown (url now {page.url}): "
                            f"{notice.group(0) if notice else '(shown for a moment)'!r}")
        if path.startswith("/my-claim"):
            if not page.get_by_role("heading", name="View my claim").count():
                problems.append(f"{path}: no 'View my claim' heading")
            if "This claim link isn't valid" not in body and "Find my claims" not in body:
                problems.append(f"{path}: neither the invalid-link message nor the find form")
        else:
            if "Staff log in" not in body and "Find my order" not in body:
                problems.append(f"{path}: neither the staff log-in nor the public page")
            ran = STAFF_HEADINGS & set(seen["headings"])
            if ran:
                problems.append(f"{path}: a staff page ran without a session: {sorted(ran)}")
        bad = [(name, href) for name, href in _nav_links(page)
               if name.lower() in FORBIDDEN_LINKS
               or href.rstrip("/").rsplit("/", 1)[-1].split("?")[0] in ("ui", "staff_settings")]
        if bad:
            problems.append(f"{path}: the navigation lists {bad}")
    except Exception as e:  # a page that never showed what it should: report, go on to the next
        problems.append(f"{path}: {type(e).__name__}: {str(e).splitlines()[0]} — body: "
                        f"{page.inner_text('body')[:300]!r}")
    finally:
        ctx.close()
    return problems


def test_first_request_after_a_fresh_start_lands(browser, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    env = {**os.environ, "CLAIMS_DATA_DIR": str(data)}
    env.pop("DATABASE_URL", None)
    with contextlib.ExitStack() as stack:
        if ON_POSTGRES:  # as live_app does: the app on a schema of its own
            env["DATABASE_URL"] = stack.enter_context(_pg_schema(migrated=False))
        subprocess.run([sys.executable, "-m", "claims_core", "demo", "--if-empty", "--orders", "60"],
                       cwd=ROOT, env=env, check=True, capture_output=True, timeout=300)
        problems = []
        for i, path in enumerate(FIRST_PATHS):  # one fresh server per link, one after the other
            with running_app(env, tmp_path / f"streamlit-{i}.log") as base:
                problems += _first_visit(browser, base, path)
    assert not problems, "first request after a fresh start:\n" + "\n".join(problems)


# --- 2. customer markdown stays text ------------------------------------------------------------

PHOTO_NAME = "[win](https://evil.example).jpg"  # the name; "/" cuts it to its last part
# A name that keeps every character (no "/"): markdown link, image and a bare www. address.
PHOTO_NAME_2 = "[win](evil.example) ![i](http:evil.example) www.evil.example.jpg"
TYPED_NAME = "[Jamie](https://evil.example) www.evil.example"


# What the photo pipeline keeps of each name (a path's last part), shown as typed.
SHOWN = [clean_filename(PHOTO_NAME), PHOTO_NAME_2]


def _jpeg(shade: int = 0) -> bytes:
    from PIL import Image, ImageDraw
    img = Image.new("RGB", (320, 240), (205, 180 - shade, 140))
    d = ImageDraw.Draw(img)
    d.rectangle([60, 50, 260, 190], outline=(90, 60, 30), width=5)
    d.line([(80, 70), (240, 170)], fill=(40, 25, 15), width=4)
    d.ellipse([140, 90, 190, 140], fill=(60, 40, 25))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=85)
    return buf.getvalue()


def _inert(page, where: str, *texts: str) -> list[str]:
    """What is wrong on this page: a link or image to evil.example anywhere in the document, or
    one of ``texts`` not shown (as text). Collected, so one run reports every page."""
    problems = []
    found = page.evaluate("""() => ({
        a: [...document.querySelectorAll('a[href*="evil.example"]')].map(e => e.outerHTML),
        img: [...document.querySelectorAll('img[src*="evil.example"]')].map(e => e.outerHTML)})""")
    if found["a"] or found["img"]:
        problems.append(f"{where}: markdown became markup: {found['a'] + found['img']}")
    for text in texts:
        shown = page.get_by_text(text, exact=False)
        if not (shown.count() and shown.first.is_visible()):
            near = [line for line in page.inner_text("body").splitlines() if "evil" in line]
            problems.append(f"{where}: {text!r} is not shown; lines with 'evil' there: {near}")
    return problems


def test_markdown_in_a_file_name_and_a_typed_signature_is_inert(live_app, browser):
    base = live_app["url"]
    demo = DEMO_ORDERS[0]  # #5001: total ≈ $407, under the $500 signature threshold (typed allowed)
    ctx = browser.new_context(viewport=PHONE)
    page = ctx.new_page()
    page.goto(base)
    page.get_by_label("Order number or tracking number").fill(demo.number)
    page.get_by_label("Email used at checkout").fill(demo.email)
    click_button(page, "Find my order")
    claim_shipment(page, 1)
    choose(page, "Damaged — ")  # a tap moves on
    page.get_by_text("Which items, and how many?").wait_for()
    # the Pour-Over Set: test_browser_portal claims a Hand-thrown Mug on this shipment (phone)
    page.get_by_label(re.compile(r"Ceramic Pour-Over Set \(up to \d\)")).fill("1")
    page.keyboard.press("Tab")
    settle(page)
    page.locator("input[type=file]").set_input_files(
        [{"name": PHOTO_NAME, "mimeType": "image/jpeg", "buffer": _jpeg()},
         {"name": PHOTO_NAME_2, "mimeType": "image/jpeg", "buffer": _jpeg(60)}])
    page.get_by_role("img", name="Photo you added").nth(1).wait_for(timeout=30000)
    settle(page)
    problems = _inert(page, "the filing form's thumbnails", *SHOWN)

    click_button(page, "Continue")
    page.get_by_text("How would you like it resolved?").wait_for()
    choose(page, "Refund of $62.00")
    click_button(page, "Continue")
    page.get_by_text("Check and sign your claim").wait_for()
    choose(page, "Type my full name")
    page.get_by_label("Full name", exact=True).fill(TYPED_NAME)
    page.keyboard.press("Tab")
    settle(page)
    set_checkbox(page, "I confirm the information in this claim is accurate.", True)
    click_button(page, "Submit claim")
    page.get_by_text("Claim received").wait_for(timeout=30000)
    link = page.locator("[data-testid='stCode'] code, pre code").first.inner_text().strip()
    assert "/my-claim?token=" in link
    ctx.close()

    engine = make_engine(live_app["db_url"])
    with read_session(engine) as s:
        claim = s.scalars(select(Claim).where(Claim.access_token == link.split("token=")[1].split("&")[0])).one()
        assert claim.signature_kind == "typed" and claim.signature_name == TYPED_NAME
        stored = [e.filename for e in claim.evidence]
        if stored != SHOWN:
            problems.append(f"the claim's photos are stored as {stored}, not {SHOWN}")
        reference = claim.reference
    engine.dispose()

    # View My Claim, from the link shown at the end
    ctx = browser.new_context(viewport=PHONE)
    page = ctx.new_page()
    page.goto(link)
    page.get_by_text(f"Claim {reference}").wait_for(timeout=30000)
    settle(page)
    problems += _inert(page, "View my claim", *SHOWN, TYPED_NAME)
    ctx.close()

    # the staff claim page
    ctx = browser.new_context(viewport=DESKTOP)
    page = ctx.new_page()
    staff_log_in(page, base, *live_app["owner"])
    page.get_by_placeholder("Claim reference, order number, email or tracking number").fill(reference)
    page.keyboard.press("Enter")
    settle(page)
    page.locator("[data-testid='stDataFrame']").first.click(position={"x": 12, "y": 55})
    page.get_by_role("heading", name=f"Claim {reference}").wait_for(timeout=30000)
    settle(page)
    problems += _inert(page, "the staff claim page", *SHOWN, TYPED_NAME)
    ctx.close()
    assert not problems, "customer markdown:\n" + "\n".join(problems)
