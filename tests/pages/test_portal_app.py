"""The customer portal under AppTest: every step, every branch, every bad input.

The canvas and the file picker can't be driven under AppTest, so the tests stand in for the two
small functions in ``pages/ui.py`` that wrap them and feed signature PNG bytes and photo files.
The real drawing and uploading are proven in the browser test.
"""
from __future__ import annotations

import io
from datetime import timedelta
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import func, select
from streamlit.testing.v1 import AppTest

from claims_core import domain
from claims_core.infra.db import utcnow, write_session
from claims_core.infra.models import Claim, ClaimDraft, Evidence, StoreSettings
from claims_core.services import customer, decisions
from views import ui

from tests.support.factories import claim_request, jpeg_bytes, make_order, signature_png

APP = str(Path(__file__).resolve().parents[2] / "navigation.py")


class Portal:
    def __init__(self, at: AppTest, sig: dict, uploads: list):
        self.at, self.sig, self.uploads = at, sig, uploads

    # reading
    def titles(self):
        return [t.value for t in self.at.title]

    def errors(self):
        return [e.value for e in self.at.error]

    def all_text(self):
        parts = [m.value for m in self.at.markdown] + [t.value for t in self.at.text] + \
            [c.value for c in self.at.caption] + [e.value for e in self.at.error] + \
            [w.value for w in self.at.warning] + [s.value for s in self.at.success] + \
            [i.value for i in self.at.info]
        return "\n".join(str(p) for p in parts)

    # acting
    def run(self):
        self.at.run()
        assert not self.at.exception, self.at.exception
        return self

    def click(self, key):
        self.at.button(key=key).click()
        return self.run()

    def lookup(self, query, email):
        self.at.text_input(key="lookup_query").input(query)
        self.at.text_input(key="lookup_email").input(email)
        self.at.button[0].click()
        return self.run()

    def choose(self, key, value):
        self.at.radio(key=key).set_value(value)
        return self.run()


@pytest.fixture
def portal(db_url, engine, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", db_url)
    sig = {"png": signature_png()}
    uploads: list = []
    monkeypatch.setattr(ui, "signature_pad", lambda key: sig["png"])
    monkeypatch.setattr(ui, "photo_uploader",
                        lambda label, key, collapsed=False, **_kw: uploads.pop(0) if uploads else [])

    def start():
        return Portal(AppTest.from_file(APP, default_timeout=60), sig, uploads).run()
    return start


def order(engine, **kw):
    return make_order(engine, base=utcnow(), **kw)


def two_shipments(engine, **kw):
    now = utcnow()
    return make_order(engine, base=now, shipments=[
        dict(status="delivered", shipped=now - timedelta(days=10), delivered=now - timedelta(days=8),
             items=[("MUG", 3)]),
        dict(status="in_transit", shipped=now - timedelta(days=10), last_scan=now - timedelta(days=8),
             items=[("TOTE", 1)]),
    ], **kw)


def claims(engine):
    with write_session(engine) as s:
        return s.scalars(select(Claim)).all()


def to_details(p: Portal, built, issue="damaged", shipment=None):
    if p.titles() == ["File a claim"]:
        p.lookup(f"#{built.number}", built.email.upper())
    assert p.titles() == [f"Order #{built.number}"]
    p.click(f"start_claim_{shipment or built.shipment_ids[0]}")
    p.choose("issue", issue)  # a tap on what went wrong moves on
    return p


def to_sign(p: Portal, built, *, mug=1, photos=True, resolution="refund", description="Crushed box"):
    to_details(p, built)
    p.at.number_input(key=f"qty_{built.items[(0, 'MUG')]}").set_value(mug)
    if photos:
        p.uploads.append([("box.jpg", jpeg_bytes())])
        p.run()
    p.at.text_area(key="description").input(description)
    p.click("continue")
    assert p.titles() == ["How would you like it resolved?"], p.errors()
    p.choose("resolution", resolution)
    p.click("continue")
    assert p.titles() == ["Check and sign your claim"]
    return p


# --- the happy paths ----------------------------------------------------------------------------

def test_item_claim_every_step(portal, engine):
    built = order(engine)
    p = portal()
    assert p.titles() == ["File a claim"]
    assert "shipping confirmation email" in p.all_text()
    p.lookup(" 1001 ", "  SAM@Example.com ")
    text = p.all_text()
    assert "Protected" in "".join(h.proto.body for h in p.at.get("html")) or "Protected" in text
    assert "You can claim until" in text and "Hand-thrown Mug" in text
    to_sign(p, built, mug=2)
    p.at.checkbox(key="accurate").check()
    p.click("submit")
    assert p.titles() == ["Claim received"]
    [claim] = claims(engine)
    assert claim.reference in p.all_text()
    assert claim.issue_type == "damaged" and claim.desired_resolution == "refund"
    assert claim.claimed_cents == 5600 and claim.signature_kind == "drawn" and claim.signature_png
    assert claim.description == "Crushed box"
    with write_session(engine) as s:
        assert s.scalar(select(func.count()).select_from(Evidence)) == 1
        assert s.scalar(select(func.count()).select_from(ClaimDraft)) == 0  # used up
    codes = [c.value for c in p.at.code]
    assert any(f"my-claim?token={claim.access_token}" in c for c in codes)


def test_shipping_claim_on_second_of_two_shipments_typed_signature(portal, engine):
    built = two_shipments(engine)
    p = portal()
    p.lookup(built.number, built.email)
    # each shipment has its own button
    assert {b.key for b in p.at.button if b.key.startswith("start_claim_")} == \
        {f"start_claim_{i}" for i in built.shipment_ids}
    p.click(f"start_claim_{built.shipment_ids[1]}")
    # an in-transit shipment offers only shipping issues
    assert [o.split(" — ")[0] for o in p.at.radio(key="issue").options] == \
        ["Delayed", "Lost / tracking not moving"]
    p.choose("issue", "lost")
    assert p.titles() == ["Lost / tracking not moving"]
    p.at.text_area(key="description").input("Tracking stuck in Memphis since last week")
    p.click("continue")
    p.choose("resolution", "store_credit")
    p.click("continue")
    p.choose("sign_mode", "typed")
    p.at.text_input(key="typed_name").input("Sam Jones")
    p.at.checkbox(key="accurate").check()
    p.click("submit")
    assert p.titles() == ["Claim received"], p.errors()
    [claim] = claims(engine)
    assert (claim.issue_type, claim.shipment_id, claim.signature_kind, claim.signature_name) == \
        ("lost", built.shipment_ids[1], "typed", "Sam Jones")
    assert claim.claimed_cents == 3450


def test_a_shipment_is_chosen_by_its_own_button(portal, engine):
    built = order(engine)
    p = portal()
    p.lookup(built.number, built.email)
    p.click(f"start_claim_{built.shipment_ids[0]}")
    assert p.titles() == ["What went wrong?"] and all(r.key != "ship" for r in p.at.radio)


def test_the_store_s_first_resolution_is_chosen_to_start_with(portal, engine):
    built = order(engine, stock={"MUG": 5})
    p = portal()
    to_details(p, built)
    p.at.number_input(key=f"qty_{built.items[(0, 'MUG')]}").set_value(1)
    p.uploads.append([("a.jpg", jpeg_bytes())])
    p.run()
    p.click("continue")
    radio = p.at.radio(key="resolution")
    assert radio.index == 0 and radio.value == radio.options[0] or radio.value == "reshipment"
    p.click("continue")  # no choice needed
    assert p.titles() == ["Check and sign your claim"]


@pytest.mark.parametrize("resolution", ["refund", "store_credit", "reshipment"])
def test_each_resolution(portal, engine, resolution):
    built = order(engine, stock={"MUG": 5})
    with write_session(engine) as s:
        s.get(StoreSettings, 1).store_credit_bonus_pct = 10
    p = portal()
    to_details(p, built)
    p.at.number_input(key=f"qty_{built.items[(0, 'MUG')]}").set_value(2)
    p.uploads.append([("a.jpg", jpeg_bytes())])
    p.run()
    p.click("continue")
    labels = p.at.radio(key="resolution").options
    assert any("Refund of $56.00" in o for o in labels)
    assert any("Store credit of $61.60 (includes a 10% bonus)" in o for o in labels)
    assert any("replacement" in o for o in labels)
    p.choose("resolution", resolution)
    p.click("continue")
    p.at.checkbox(key="accurate").check()
    p.click("submit")
    assert claims(engine)[0].desired_resolution == resolution


def test_only_enabled_resolutions_and_reshipment_greyed_without_stock(portal, engine):
    built = order(engine, stock={"MUG": 0})
    with write_session(engine) as s:
        s.get(StoreSettings, 1).offer_refund = False
    p = portal()
    to_details(p, built)
    p.at.number_input(key=f"qty_{built.items[(0, 'MUG')]}").set_value(1)
    p.uploads.append([("a.jpg", jpeg_bytes())])
    p.run()
    p.click("continue")
    assert p.at.radio(key="resolution").options == ["Store credit of $28.00, as a discount code"]
    assert "enough in stock" in p.all_text()


def test_review_has_a_way_back_to_each_part(portal, engine):
    built = order(engine)
    p = portal()
    to_sign(p, built)
    for key, title in [("change_issue", "What went wrong?"), ("change_details", "Damaged"),
                       ("change_resolution", "How would you like it resolved?")]:
        p.click(key)
        assert p.titles() == [title]
        while p.titles() != ["Check and sign your claim"]:
            p.click("continue")
    assert "Crushed box" in [t.value for t in p.at.text]  # still there after the round trips


def test_each_step_change_is_one_script_run(portal, engine, monkeypatch):
    """A click that moves the wizard runs the script once (the move happens in the button's
    callback), not twice as a button followed by st.rerun() would: the customer waits half as long.
    Counted by the branding, which the page draws exactly once per run."""
    built = order(engine)
    p = portal()
    runs = []
    real = ui.branding
    monkeypatch.setattr(ui, "branding", lambda settings: runs.append(1) or real(settings))

    def one_run(act, title):
        runs.clear()
        act()
        assert p.titles() == [title], p.errors()
        assert len(runs) == 1, f"{title}: {len(runs)} script runs"

    one_run(lambda: p.lookup(built.number, built.email), f"Order #{built.number}")
    one_run(lambda: p.click(f"start_claim_{built.shipment_ids[0]}"), "What went wrong?")
    one_run(lambda: p.choose("issue", "damaged"), "Damaged")
    p.at.number_input(key=f"qty_{built.items[(0, 'MUG')]}").set_value(1)
    p.uploads.append([("box.jpg", jpeg_bytes())])
    p.run()
    one_run(lambda: p.click("back"), "What went wrong?")
    one_run(lambda: p.click("continue"), "Damaged")
    one_run(lambda: p.click("continue"), "How would you like it resolved?")
    p.choose("resolution", "refund")
    one_run(lambda: p.click("continue"), "Check and sign your claim")
    one_run(lambda: p.click("change_details"), "Damaged")
    assert p.at.number_input(key=f"qty_{built.items[(0, 'MUG')]}").value == 1  # kept
    one_run(lambda: p.click("continue"), "How would you like it resolved?")
    one_run(lambda: p.click("continue"), "Check and sign your claim")


def test_typed_text_counts_when_continue_is_clicked_straight_away(portal, engine):
    """The description typed and never "committed" (no Enter, no click elsewhere) still arrives:
    the callback reads the value sent with the click."""
    built = order(engine)
    p = portal()
    to_details(p, built, issue="stolen")
    p.at.text_area(key="description").input("Left at the wrong door")
    p.click("continue")
    p.choose("resolution", "refund")
    p.click("continue")
    assert "Left at the wrong door" in [t.value for t in p.at.text]


# --- orders that can't be claimed ---------------------------------------------------------------

def test_unprotected_order(portal, engine):
    built = order(engine, protected=False)
    p = portal().lookup(built.number, built.email)
    text = p.all_text()
    assert "doesn't include shipping protection" in text and "support@example.com" in text
    assert not any(b.key.startswith("start_claim") for b in p.at.button)


def test_window_closed_order(portal, engine):
    now = utcnow()
    built = make_order(engine, base=now, created=now - timedelta(days=62), shipments=[
        dict(status="delivered", shipped=now - timedelta(days=60), delivered=now - timedelta(days=58),
             items=[("MUG", 3)])])
    p = portal().lookup(built.number, built.email)
    closed = domain.format_date((now - timedelta(days=60)).date() + timedelta(days=45))
    assert f"closed on {closed}" in p.all_text()


def test_not_shipped_order(portal, engine):
    built = order(engine, shipments=[])
    assert "hasn't shipped yet" in portal().lookup(built.number, built.email).all_text()


def test_already_claimed_order_lists_the_claim(portal, engine):
    built = order(engine, lines=(("MUG", "Hand-thrown Mug", 2800, 1),))
    r = customer.file_claim(engine, claim_request(built, items={built.items[(0, "MUG")]: 1}))
    p = portal().lookup(built.number, built.email)
    text = p.all_text()
    assert r.reference in text and "Received" in text and "already covered" in text


# --- bad input ----------------------------------------------------------------------------------

def test_lookup_misses_get_one_neutral_message(portal, engine):
    order(engine)
    other = order(engine, number="2002", email="other@example.com", tracking_prefix="OT")
    p = portal()
    seen = set()
    for query, email in [("9999", "sam@example.com"), ("1001", "wrong@example.com"),
                         (f"OT{other.number}X0", "sam@example.com")]:
        p.lookup(query, email)
        seen.update(p.errors())
        assert p.titles() == ["File a claim"]
    assert seen == {domain.LOOKUP_FAILED}


def test_repeated_misses_are_refused_for_a_while(portal, engine, monkeypatch):
    from claims_core.services import lookup
    monkeypatch.setattr(lookup.time, "sleep", lambda s: None)
    built = order(engine)
    p = portal()
    for i in range(10):
        p.lookup("1001", f"guess{i}@example.com")
        assert p.errors() == [domain.LOOKUP_FAILED]
    p.lookup("1001", built.email)  # even the right details are refused now
    assert "Too many attempts" in p.errors()[0]
    assert p.titles() == ["File a claim"]


def test_empty_lookup(portal):
    p = portal().lookup("  ", "")
    assert "Enter your order number" in p.errors()[0]


HOSTILE = ("<script>alert('x')</script> **bold** [click](javascript:alert(1)) "
           "![img](http://evil.example/x.png) <img src=x onerror=alert(1)> 📦🔥")


def test_hostile_comment_is_plain_text_everywhere(portal, engine):
    built = order(engine)
    p = portal()
    to_sign(p, built, description=HOSTILE)  # the page that shows the claim, to sign
    assert HOSTILE in [t.value for t in p.at.text]
    assert all(HOSTILE not in m.value for m in p.at.markdown)
    p.at.checkbox(key="accurate").check()
    p.click("submit")
    [claim] = claims(engine)
    assert claim.description == HOSTILE
    v = portal()
    v.at.query_params["token"] = claim.access_token
    v.at.run()
    v.at.switch_page("views/customer/view_claim.py")
    v.run()
    assert HOSTILE in [t.value for t in v.at.text]
    assert all(HOSTILE not in m.value for m in v.at.markdown)


def test_ten_thousand_character_comment(portal, engine):
    built = order(engine)
    p = portal()
    to_details(p, built)
    p.at.number_input(key=f"qty_{built.items[(0, 'MUG')]}").set_value(1)
    p.uploads.append([("a.jpg", jpeg_bytes())])
    p.run()
    assert "Up to 4,000 characters" in p.all_text()  # the limit is visible
    p.at.text_area(key="description").input("x" * 10_000)
    p.click("continue")
    assert "at most 4,000 characters; this has 10,000" in p.errors()[0]
    assert p.titles() == ["Damaged"]
    assert p.at.text_area(key="description").value == "x" * 10_000  # nothing lost: shorten it


def test_quantity_zero(portal, engine):
    built = order(engine)
    p = portal()
    to_details(p, built)
    p.uploads.append([("a.jpg", jpeg_bytes())])
    p.run()
    p.click("continue")
    assert "at least one item" in p.errors()[0]


def test_quantity_never_above_claimable(portal, engine):
    built = order(engine)
    p = portal()
    to_details(p, built)
    qty = p.at.number_input(key=f"qty_{built.items[(0, 'MUG')]}")
    assert qty.max == 3
    # another claim takes two mugs while this customer is on the page
    other = customer.file_claim(engine, claim_request(built, key="other",
                                                      items={built.items[(0, "MUG")]: 2}))
    decisions.approve(engine, other.claim_id, "staff:t", [decisions.ResolutionInput("refund", 5600)])
    qty.set_value(3)
    p.uploads.append([("a.jpg", jpeg_bytes())])
    p.run()
    p.click("continue")
    # the picker now offers at most the one mug left, and nothing above it gets through
    assert p.at.number_input(key=f"qty_{built.items[(0, 'MUG')]}").max == 1
    assert "Hand-thrown Mug (up to 1)" in [n.label for n in p.at.number_input]
    assert p.titles() == ["Damaged"] and p.errors()
    assert len(claims(engine)) == 1


def _png_bomb(megapixels: int) -> bytes:
    side = int((megapixels * 1_000_000) ** 0.5)
    buf = io.BytesIO()
    Image.new("1", (side, side)).save(buf, "PNG", optimize=True)
    return buf.getvalue()


def test_bad_photos_each_named_with_a_reason(portal, engine):
    built = order(engine)
    p = portal()
    to_details(p, built)
    truncated = jpeg_bytes(size=(1200, 900))[:3000]
    bomb = _png_bomb(60)
    assert len(bomb) < 400_000
    p.uploads.append([
        ("receipt.jpg", b"%PDF-1.7\n1 0 obj<<>>endobj\n" + b"0" * 500),
        ("half.jpg", truncated),
        ("huge.png", bomb),
        ("fine.jpg", jpeg_bytes()),
    ])
    p.run()
    errors = p.errors()
    assert len(errors) == 3
    assert errors[0].startswith("receipt.jpg: ") and "JPEG, PNG, WebP or HEIC" in errors[0]
    assert errors[1].startswith("half.jpg: ") and "damaged or incomplete" in errors[1]
    assert errors[2].startswith("huge.png: ") and "megapixels" in errors[2]
    with write_session(engine) as s:
        import json
        draft = s.scalars(select(ClaimDraft)).one()
        assert [ph["filename"] for ph in json.loads(draft.data)["photos"]] == ["fine.jpg"]


def test_more_photos_than_allowed(portal, engine):
    built = order(engine)
    with write_session(engine) as s:
        s.get(StoreSettings, 1).max_photos = 2
    p = portal()
    to_details(p, built)
    p.uploads.append([(f"p{i}.jpg", jpeg_bytes(seed=i * 37)) for i in range(3)])
    p.run()
    assert p.errors() == ["p2.jpg: you can add at most 2 photos."]


def test_photos_required_for_damage(portal, engine):
    built = order(engine)
    p = portal()
    to_details(p, built)
    p.at.number_input(key=f"qty_{built.items[(0, 'MUG')]}").set_value(1)
    p.click("continue")
    assert "add at least one photo" in p.errors()[0]


def test_blank_signature_and_missing_tick(portal, engine):
    built = order(engine)
    p = portal()
    to_sign(p, built)
    p.sig["png"] = None  # nothing drawn
    p.at.checkbox(key="accurate").check()
    p.click("submit")
    assert "signature box is empty" in p.errors()[0]
    p.sig["png"] = signature_png(blank=True)  # a canvas image with no ink
    p.click("submit")
    assert "signature box is empty" in p.errors()[0]
    p.sig["png"] = signature_png()
    p.at.checkbox(key="accurate").uncheck()
    p.click("submit")
    assert "tick the box" in p.errors()[0]
    assert claims(engine) == []
    p.at.checkbox(key="accurate").check()
    p.click("submit")
    assert p.titles() == ["Claim received"]


def test_drawn_signature_required_above_threshold(portal, engine):
    built = order(engine, total_cents=80_000)
    p = portal()
    to_sign(p, built)
    # drawing first; typing only with "I can't draw" (tests/test_signature_alternative.py)
    assert p.at.radio(key="sign_mode").options == ["Draw my signature", "Type my full name"]
    assert "please draw your signature" in p.all_text()
    p.choose("sign_mode", "typed")
    p.at.text_input(key="typed_name").input("Sam Jones")
    p.at.checkbox(key="accurate").check()
    p.click("submit")
    assert "draw your signature" in p.errors()[0]
    assert claims(engine) == []


def test_window_closing_while_filling_in(portal, engine):
    built = order(engine)  # shipped 10 days ago
    p = portal()
    to_sign(p, built)
    with write_session(engine) as s:
        s.get(StoreSettings, 1).filing_window_days = 5  # the window has now closed
    p.at.checkbox(key="accurate").check()
    p.click("submit")
    assert "closed on" in p.errors()[0]
    assert claims(engine) == []


def test_second_claim_for_the_same_items(portal, engine):
    built = order(engine)
    p = portal()
    to_sign(p, built)
    customer.file_claim(engine, claim_request(built, key="elsewhere"))  # same mug, another tab
    p.at.checkbox(key="accurate").check()
    p.click("submit")
    assert "already" in p.errors()[0]
    assert len(claims(engine)) == 1


def test_submitting_twice_makes_one_claim(portal, engine):
    built = order(engine)
    p = portal()
    to_sign(p, built)
    p.at.checkbox(key="accurate").check()
    p.click("submit")
    first = p.at.session_state["claim_flow"]["receipt"]["reference"]
    # the back button / a replayed click: the same form state submitted again
    p.at.session_state["claim_flow"]["step"] = "review"
    p.run()
    p.at.checkbox(key="accurate").check()
    p.click("submit")
    assert p.at.session_state["claim_flow"]["receipt"]["reference"] == first
    assert len(claims(engine)) == 1


def test_progress_survives_a_closed_tab(portal, engine):
    built = order(engine)
    p = portal()
    to_details(p, built)
    p.at.number_input(key=f"qty_{built.items[(0, 'MUG')]}").set_value(2)
    p.uploads.append([("box.jpg", jpeg_bytes())])
    p.run()
    p.at.text_area(key="description").input("Dented")
    p.click("continue")  # saved at the resolution step
    fresh = portal()  # a new browser session
    fresh.lookup(built.number, built.email)
    assert "Continue where you left off?" in fresh.all_text()
    fresh.click("continue_draft")
    assert fresh.titles() == ["How would you like it resolved?"]
    fresh.choose("resolution", "refund")
    fresh.click("continue")
    assert "Dented" in [t.value for t in fresh.at.text]
    fresh.at.checkbox(key="accurate").check()
    fresh.click("submit")
    [claim] = claims(engine)
    assert claim.claimed_cents == 5600 and claim.description == "Dented"
    with write_session(engine) as s:
        assert s.scalar(select(func.count()).select_from(Evidence)) == 1


def test_start_over_discards_the_draft(portal, engine):
    built = order(engine)
    p = portal()
    to_details(p, built)
    fresh = portal().lookup(built.number, built.email)
    fresh.click("start_over")
    assert "Continue where you left off?" not in fresh.all_text()
    with write_session(engine) as s:
        assert s.scalar(select(func.count()).select_from(ClaimDraft)) == 0


def test_branding_comes_from_store_settings(portal, engine):
    with write_session(engine) as s:
        st_ = s.get(StoreSettings, 1)
        st_.name, st_.intro_text, st_.accent_color = "Maple & *Co*", "We're sorry! Start here.", "#aa3300"
        st_.support_email = "care@maple.example"
        buf = io.BytesIO()
        Image.new("RGB", (64, 64), (170, 51, 0)).save(buf, "PNG")
        st_.logo_png = buf.getvalue()
    built = order(engine, protected=False)
    p = portal()
    assert "We're sorry! Start here." in [t.value for t in p.at.text]
    assert any("Maple" in m.value and "\\*Co\\*" in m.value for m in p.at.markdown)  # literal, not italics
    assert any("#aa3300" in h.proto.body for h in p.at.get("html"))
    p.lookup(built.number, built.email)
    assert "care@maple.example" in p.all_text()
