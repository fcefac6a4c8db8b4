"""The portal in the customer's language, in a real browser at phone width (issue 17).

- A claim filed in Spanish and one in German: every step speaks the language, amounts and dates
  read the local way, the German page doesn't overflow 390 px, the claim keeps the language and
  the confirmation email in the outbox is in it, with the link carrying it.
- The pseudo-language ``qps`` rewrites every catalog message (⟦àççéñţéð⟧): driven through the
  same journey, any visible text that isn't rewritten, isn't the shop's or the customer's data
  and isn't Streamlit's own chrome bypassed the catalogs.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from sqlalchemy import select

from claims_core.domain.signature import ACCURACY_STATEMENT
from claims_core.domain.vocabulary import ISSUE_TYPES
from claims_core.infra import i18n
from claims_core.infra.db import make_engine, read_session, utcnow
from claims_core.infra.models import Claim, OutboxMessage, Order, settings_row

from tests.support.browser import PHONE, choose, click_button, set_checkbox, settle, shot
from tests.support.factories import make_order

pytestmark = pytest.mark.browser
SHOTS = os.environ.get("PORTAL_SCREENSHOTS")  # a folder: save each step's screenshot there

# Streamlit's own words (the upload widget, input hints): the framework's, not the app's
# (icons are ligatures: "upload", "keyboard_arrow_down"; the upload button's words are the app's:
# see ui._uploader_in_language)
FRAMEWORK = re.compile(r"^(upload|Upload|keyboard_arrow_(down|up|right)|Press Enter to (apply|submit form)|Running\.\.\.|Stop|Deploy)$")
# values, not words: amounts, dates, numbers, references, separators
VALUE = re.compile(r"^[\d\s.,:/·—×•()#%$€£¥+-]*$|^CLM-[0-9A-Z]+$|^https?://\S+$"
                   r"|^[A-Z][a-z]{2,8}\.? \d{1,2}, \d{4}$")  # a date, as CLDR writes it


def _lines(page) -> list[str]:
    # material icons are ligatures ("shield" drawn as a shield): not words, so left out
    text = page.evaluate("""() => { const m = document.querySelector('[data-testid="stMain"]')
                                              || document.body;
                                     const c = m.cloneNode(true);
                                     c.querySelectorAll('[data-testid="stIconMaterial"]')
                                      .forEach(e => e.remove());
                                     document.body.appendChild(c);
                                     const t = c.innerText; c.remove(); return t; }""")
    return [ln.strip() for ln in text.splitlines() if ln.strip()]


def assert_rewritten(page, data: set[str], where: str) -> None:
    """Every visible line is a rewritten message, the shop's or the customer's data, a value,
    or Streamlit's own chrome."""
    bad = []
    for line in _lines(page):
        if "⟦" in line or FRAMEWORK.match(line) or VALUE.match(line):
            continue
        if any(d and d in line for d in data):
            continue
        bad.append(line)
    assert not bad, f"{where}: text that bypassed the catalogs: {bad}"


def _shot(page, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        shot(page, Path(SHOTS) / f"{name}.png")


def _no_sideways_scroll(page, where: str) -> None:
    width = page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= PHONE["width"] + 1, f"{where}: the page is {width}px wide at {PHONE['width']}px"


def an_order(db_url: str, lang: str):
    """A fresh protected order of its own for each journey (one delivered shipment)."""
    engine = make_engine(db_url)
    built = make_order(engine, f"77{abs(hash(lang)) % 1000:03d}", f"{lang}.customer@example.com",
                       base=utcnow(), tracking_prefix=f"LG{lang.upper()}")
    engine.dispose()
    return built


def file_lost_parcel_claim(page, base: str, lang: str, built, check=None) -> str:
    """The order's shipment, delivered but not received, the store's first offer, typed
    signature; returns the claim link. ``check(page, step)`` runs at every step."""
    t = i18n.translator(lang)
    check = check or (lambda _page, _step: None)
    page.goto(f"{base}/?lang={lang}")
    page.get_by_role("heading", name=t("File a claim")).wait_for(timeout=30000)
    settle(page)
    check(page, "1-find-order")
    page.get_by_label(t("Order number or tracking number")).fill(built.number)
    page.get_by_label(t("Email used at checkout")).fill(built.email)
    click_button(page, t("Find my order"))
    page.get_by_role("button", name=t("Claim for this shipment")).first.wait_for(timeout=30000)
    check(page, "2-your-order")
    page.get_by_role("button", name=t("Claim for this shipment")).first.click()
    settle(page)
    check(page, "3-what-went-wrong")
    choose(page, t(ISSUE_TYPES["not_received"].label) + " — ")
    page.locator("textarea").first.fill("Seguimiento parado / Sendung steht still.")
    page.keyboard.press("Tab")
    settle(page)
    check(page, "4-details")
    click_button(page, t("Continue"))
    page.get_by_role("heading", name=t("How would you like it resolved?")).wait_for(timeout=30000)
    check(page, "5-resolution")
    click_button(page, t("Continue"))
    page.get_by_role("heading", name=t("Check and sign your claim")).wait_for(timeout=30000)
    choose(page, t("Type my full name"))
    page.get_by_label(t("Full name"), exact=True).fill("Jamie Rivera")
    page.keyboard.press("Tab")
    set_checkbox(page, t(ACCURACY_STATEMENT), True)
    check(page, "6-check-and-sign")
    click_button(page, t("Submit claim"))
    page.get_by_role("heading", name=t("Claim received")).wait_for(timeout=30000)
    settle(page)
    check(page, "7-confirmation")
    return page.locator("[data-testid='stCode'] code, pre code").first.inner_text().strip()


@pytest.mark.parametrize("lang", ["es", "de"])
def test_a_claim_filed_in_the_customers_language(live_app, browser, lang):
    t = i18n.translator(lang)
    english = i18n.translator("en")
    for message in ("Find my order", "What went wrong?", "Submit claim", "Claim received"):
        assert t(message) != english(message), f"{lang} has no translation of {message!r}"
    ctx = browser.new_context(viewport=PHONE, locale="en-US")  # the URL's ?lang= wins
    page = ctx.new_page()

    def check(page, step):
        _no_sideways_scroll(page, f"{lang} {step}")
        if step == "4-details":  # Streamlit's upload button says the catalog's words
            shown = page.evaluate("""() => getComputedStyle(document.querySelector(
                "[data-testid='stFileUploaderDropzone'] button [data-testid='stMarkdownContainer']"),
                '::after').content""")
            assert t("Add photos") in shown and t("Add photos") != "Add photos"
        _shot(page, f"portal-{lang}-{step}")

    link = file_lost_parcel_claim(page, live_app["url"], lang, an_order(live_app["db_url"], lang),
                                  check)
    assert f"lang={lang}" in link or "token=" in link
    token = link.split("token=")[1].split("&")[0]
    engine = make_engine(live_app["db_url"])
    with read_session(engine) as s:
        claim = s.scalars(select(Claim).where(Claim.access_token == token)).one()
        assert claim.language == lang
        order = s.get(Order, claim.order_id)
        mails = s.scalars(select(OutboxMessage).where(OutboxMessage.claim_id == claim.id,
                                                      OutboxMessage.to_addr == claim.email)).all()
        assert mails, "no confirmation email"
        mail = mails[0]
        assert claim.reference in mail.subject
        assert mail.subject != f"We received your claim {claim.reference}"  # not the English
        assert f"lang={lang}" in mail.body_text
        assert t("View your claim") in mail.body_text or t("View your claim") in mail.body_html
        # the day the claim was filed in the store's calendar, written the customer's way: the
        # app's own clock and formatter with the store's zone (not the UTC day, which differs
        # between midnight UTC and the store's midnight)
        store_tz = settings_row(s).timezone
        assert store_tz != "UTC"  # the demo store's zone: this checks the local day
        filed = i18n.translator(lang, tz=store_tz).date(claim.created_at)
        assert filed in mail.body_text, (filed, mail.body_text)
        reference = claim.reference
        currency = order.currency
    engine.dispose()
    # View My Claim from the link: still in the language, the amount written the local way
    page.goto(link)
    page.get_by_role("heading", name=t("Claim {reference}", reference=reference)).wait_for(timeout=30000)
    settle(page)
    _no_sideways_scroll(page, f"{lang} view my claim")
    _shot(page, f"portal-{lang}-8-view-my-claim")
    body = page.locator("[data-testid='stMain']").inner_text()
    assert t("Conversation") in body
    assert re.search(r"\d+,\d\d", body) or currency == "JPY"  # decimal comma in es and de
    ctx.close()


def test_every_visible_word_comes_from_the_catalogs(live_app, browser):
    """The pseudo-language through the whole journey and View My Claim."""
    built = an_order(live_app["db_url"], i18n.PSEUDO)
    engine = make_engine(live_app["db_url"])
    with read_session(engine) as s:
        order = s.get(Order, built.order_id)
        data = {order.name, order.email, order.customer_name, built.email, "Jamie Rivera",
                "Seguimiento parado / Sendung steht still."}
        data |= {li.name for li in order.line_items}
        data |= {sh.carrier for sh in order.shipments if sh.carrier}
        data |= {sh.tracking_number for sh in order.shipments if sh.tracking_number}
        from claims_core.infra.models import Checkpoint, settings_row
        store = settings_row(s)
        data |= {store.name, store.support_email, store.intro_text}  # the store's own words
        from claims_core.services.settings import texts_of
        data |= {v for texts in texts_of(store).values() for v in texts.values()}
        numbers = [sh.tracking_number for sh in order.shipments if sh.tracking_number]
        for cp in s.scalars(select(Checkpoint).where(Checkpoint.tracking_number.in_(numbers))):
            data |= {cp.message, cp.location}  # the carrier's words, shown as they came
    engine.dispose()
    data.discard("")
    ctx = browser.new_context(viewport=PHONE)
    page = ctx.new_page()
    link = file_lost_parcel_claim(page, live_app["url"], i18n.PSEUDO, built,
                                  lambda p, step: assert_rewritten(p, data, step))
    page.goto(link if "lang=" in link else f"{link}&lang={i18n.PSEUDO}")
    page.locator("h1").first.wait_for(timeout=30000)
    settle(page)
    data.add(link.split("token=")[1].split("&")[0])
    assert_rewritten(page, data | {line for line in _lines(page) if line.startswith("CLM-")},
                     "view my claim")
    ctx.close()
