"""The evidence pack (``adapters.evidence_pack``): one PDF per claim, read back with pypdf.

Font-agnostic: every test passes with or without DejaVu Sans on the machine; one test forces the
core-font fallback, one checks the Unicode font and is skipped where the font isn't installed.
"""
from __future__ import annotations

import io
import time
from datetime import timedelta

import pypdf
import pytest

from claims_core import domain
from claims_core.adapters import evidence_pack
from claims_core.domain.tracking import Checkpoint, ProofOfDelivery, TrackingUpdate
from claims_core.domain.vocabulary import Milestone
from claims_core.infra.db import write_session
from claims_core.infra.models import Shipment
from claims_core.services import claim_review, customer, decisions, tracking
from claims_core.services.settings import update_settings
from claims_core.services.unit_of_work import run

from tests.support.factories import claim_request, jpeg_bytes, make_order

HOSTILE = "<b>x</b> [link](https://evil.example) **bold** \U0001F4E6 {nb} end"
LONG_URL = "https://carrier.example/pod/" + "a1b2c3d4" * 40  # 348 characters, no space
POD_URL = "https://pod.carrier.example/photo/" + "z" * 150


# --- helpers --------------------------------------------------------------------------------------

def _read(pdf: bytes) -> tuple[pypdf.PdfReader, str]:
    assert pdf[:5] == b"%PDF-"
    reader = pypdf.PdfReader(io.BytesIO(pdf))
    return reader, "\n".join(p.extract_text() for p in reader.pages)


def _flat(text: str) -> str:
    """Whitespace collapsed to single spaces (line wrapping doesn't matter)."""
    return " ".join(text.split())


def _image_count(reader: pypdf.PdfReader) -> int:
    return sum(len(p.images) for p in reader.pages)


def _uri_annotations(reader: pypdf.PdfReader) -> list:
    found = []
    for page in reader.pages:
        for ref in page.get("/Annots") or []:
            annot = ref.get_object()
            action = annot.get("/A")
            if action is not None and "/URI" in action.get_object():
                found.append(annot)
    return found


def _record_tracking(engine, number: str, now) -> None:
    update = TrackingUpdate(
        "17track", number, "UPS",
        checkpoints=(
            Checkpoint(now - timedelta(days=9), Milestone.IN_TRANSIT, "Departed facility",
                       "Louisville, KY"),
            Checkpoint(now - timedelta(days=7), Milestone.DELIVERED,
                       "Left at front porch by driver 42", "Springfield, IL"),
        ),
        expected_delivery=now - timedelta(days=7),
        proof=ProofOfDelivery(signed_by="R. Porter", photo_url=POD_URL, location="Front porch"),
    )
    run(engine, lambda s: tracking.record(s, update, now=now - timedelta(days=7)))


def _full_claim(engine, now, *, photos=2, description="Box was crushed on arrival."):
    """A delivered order with a carrier timeline and proof, a claim with ``photos`` photos and a
    drawn signature, a reply, an internal note and an approval split into refund + store credit."""
    update_settings(engine, "test", {"name": "Harbour & Pine Goods", "store_credit_bonus_pct": 10})
    built = make_order(engine)
    _record_tracking(engine, f"TRK{built.number}X0", now)
    pics = [(f"side-{i}.jpg", jpeg_bytes(seed=17 * i + 3)) for i in range(photos)]
    r = customer.file_claim(engine, claim_request(built, photos=pics, description=description),
                            now=now)
    decisions.staff_message(engine, r.claim_id, "staff:ana", "Ana", "Thanks, we are looking at it.",
                            now=now + timedelta(minutes=5))
    decisions.staff_message(engine, r.claim_id, "staff:ana", "Ana", "Carrier photo shows the dent.",
                            internal=True, now=now + timedelta(minutes=6))
    codes = decisions.approve(engine, r.claim_id, "staff:ana",
                              [decisions.ResolutionInput("refund", 1500),
                               decisions.ResolutionInput("store_credit", 1300, 10)],
                              note="Photos match the carrier's damage report.",
                              now=now + timedelta(minutes=10))
    return r, codes


# --- the full pack --------------------------------------------------------------------------------

def test_pack_holds_order_tracking_statement_photos_conversation_decision_and_audit(engine, now):
    r, codes = _full_claim(engine, now)
    view = claim_review.claim_for_staff(engine, r.claim_id)
    pdf = evidence_pack.build(engine, r.claim_id, now=now + timedelta(hours=1))
    reader, text = _read(pdf)
    flat = _flat(text)

    # title block
    assert "Harbour & Pine Goods" in flat
    assert f"Evidence pack — claim {r.reference}" in flat
    assert "Generated: November 21, 2026 at 16:00 UTC" in flat
    assert "Claim status: Approved" in flat
    # order and shipment
    assert "Order number: #1001" in flat
    assert "Customer: Sam Jones" in flat
    assert "Email: sam@example.com" in flat
    assert "Order total: $118.50" in flat  # 3 mugs at $28.00 + a tote at $34.50
    assert "Shipping protection: yes" in flat
    assert "Carrier: UPS" in flat
    assert "Tracking number: TRK1001X0" in flat
    assert "Shipped: November 11, 2026 at 15:00 UTC" in flat
    assert "Delivered: November 14, 2026 at 15:00 UTC" in flat
    assert f"Filing deadline: {domain.format_date(view.deadline)}" in flat
    # tracking and proof of delivery
    assert "Milestone: Delivered" in flat
    assert "Expected delivery: November 14, 2026 at 15:00 UTC" in flat
    assert "November 14, 2026 at 15:00 UTC · Delivered · Springfield, IL" in flat
    assert "Left at front porch by driver 42" in flat
    assert "November 12, 2026 at 15:00 UTC · In transit · Louisville, KY" in flat
    assert "Departed facility" in flat
    assert "Signed by: R. Porter" in flat
    assert "Location: Front porch" in flat
    assert POD_URL in "".join(text.split())  # printed (wrapped), not linked
    # statement
    assert "Issue: Damaged" in flat
    assert "1 × Hand-thrown Mug (SKU MUG): $28.00" in flat
    assert "Amount claimed: $28.00" in flat
    assert "Box was crushed on arrival." in flat
    assert "Drawn by the customer:" in flat
    # photos: count, names, sizes, hashes
    assert "Photos: 2" in flat
    assert len(view.photos) == 2
    for n, p in enumerate(view.photos, 1):
        assert f"Photo {n}: {p.filename}" in flat
        assert f"Size: {p.width} × {p.height} pixels · review: pending" in flat
        assert f"SHA-256: {p.sha256}" in flat
    assert evidence_pack.NOT_EMBEDDED not in flat
    # every photo plus the drawn signature is embedded, nothing else
    assert _image_count(reader) == 3
    # the conversation with the customer; staff's internal notes stay out of a document that
    # leaves the shop (the audit trail still lists the note)
    assert "November 21, 2026 at 15:05 UTC · Ana (staff)" in flat
    assert "Thanks, we are looking at it." in flat
    assert "Carrier photo shows the dent." not in flat
    assert "internal note" in flat
    # decision
    assert "Refund: $15.00" in flat
    assert f"Store credit: $13.00 + 10% bonus = $14.30 · code {codes[0]}" in flat
    assert "Decision note: Photos match the carrier's damage report." in flat
    # the audit trail: every event's line
    assert len(view.events) >= 3
    for e in view.events:
        assert _flat(e.line) in flat
    assert "claim filed (new → Received)" in flat
    assert "staff:ana · approved" in flat
    # the sections come in order
    order = [flat.index(s) for s in ("Order and shipment", "Tracking timeline and proof of delivery",
                                     "The customer's statement", "Photos: 2", "Conversation",
                                     "Decision note", "Audit trail")]
    assert order == sorted(order)
    # footer on every page
    pages = len(reader.pages)
    assert pages >= 2
    for i, page in enumerate(reader.pages, 1):
        assert f"{r.reference} · page {i} of {pages}" in _flat(page.extract_text())
    assert reader.metadata.title == f"Evidence pack {r.reference}"


def test_pack_is_the_same_bytes_for_the_same_claim_and_time(engine, now):
    r, _ = _full_claim(engine, now, photos=1)
    first = evidence_pack.build(engine, r.claim_id, now=now)
    assert evidence_pack.build(engine, r.claim_id, now=now) == first


def test_six_photos_embed_and_build_quickly(engine, now):
    r, _ = _full_claim(engine, now, photos=6)
    started = time.perf_counter()
    pdf = evidence_pack.build(engine, r.claim_id, now=now)
    took = time.perf_counter() - started
    reader, text = _read(pdf)
    assert "Photos: 6" in _flat(text)
    assert _image_count(reader) == 7  # six photos and the signature
    assert took < 3.0, f"building a six-photo pack took {took:.2f}s"


# --- hostile text ---------------------------------------------------------------------------------

def test_customer_text_is_printed_literally_and_nothing_is_linked(engine, now):
    built = make_order(engine)
    r = customer.file_claim(engine, claim_request(
        built, description=f"{HOSTILE}\nSee {LONG_URL}"), now=now)
    decisions.staff_message(engine, r.claim_id, "staff:ana", "Ana",
                            "Re: [here](javascript:alert(1)) <script>x</script>", now=now)
    pdf = evidence_pack.build(engine, r.claim_id, now=now)
    reader, text = _read(pdf)
    flat = _flat(text)

    assert "<b>x</b> [link](https://evil.example) **bold** " in flat
    # the parcel emoji prints as itself or as "?" (no font has to have it); "{nb}" stays "{nb}"
    assert ("**bold** \U0001F4E6 {nb} end" in flat) or ("**bold** ? {nb} end" in flat)
    assert "Re: [here](javascript:alert(1)) <script>x</script>" in flat
    # a 348-character word wraps (breaks) instead of overflowing or failing
    assert LONG_URL in "".join(text.split())
    assert _uri_annotations(reader) == []
    assert all("/Annots" not in page for page in reader.pages)
    assert b"/URI" not in pdf and b"/JavaScript" not in pdf


def test_core_font_fallback_when_the_unicode_font_is_missing(engine, now, monkeypatch, tmp_path):
    monkeypatch.setattr(evidence_pack, "FONT_PATH", str(tmp_path / "missing.ttf"))
    built = make_order(engine)
    r = customer.file_claim(engine, claim_request(
        built, description=f"{HOSTILE} 中文 — “quoted” €5"), now=now)
    pdf = evidence_pack.build(engine, r.claim_id, now=now)
    reader, text = _read(pdf)
    flat = _flat(text)

    fonts = {str(f.get_object()["/BaseFont"])
             for p in reader.pages for f in p["/Resources"]["/Font"].values()}
    assert fonts and all("Helvetica" in f for f in fonts), fonts
    assert "<b>x</b> [link](https://evil.example) **bold** ? {nb} end ?? - \"quoted\" EUR 5" in flat
    assert f"Evidence pack - claim {r.reference}" in flat
    assert "claim filed (new -> Received)" in flat
    assert f"{r.reference} · page 1 of {len(reader.pages)}" in flat
    assert "Photos: 1" in flat
    assert _image_count(reader) == 2


@pytest.mark.skipif(not __import__("os").path.isfile(evidence_pack.FONT_PATH),
                    reason="DejaVu Sans is not installed on this machine")
def test_unicode_font_prints_what_it_has_glyphs_for(engine, now):
    built = make_order(engine)
    r = customer.file_claim(engine, claim_request(
        built, description="Ünïcödé — “quoted” €5 → ok \U0001F4E6"), now=now)
    reader, text = _read(evidence_pack.build(engine, r.claim_id, now=now))
    flat = _flat(text)
    fonts = {str(f.get_object()["/BaseFont"])
             for p in reader.pages for f in p["/Resources"]["/Font"].values()}
    assert fonts and all("DejaVu" in f for f in fonts), fonts
    assert "Ünïcödé — “quoted” €5 → ok ?" in flat  # DejaVu has no parcel emoji
    assert f"Evidence pack — claim {r.reference}" in flat


# --- the thin cases -------------------------------------------------------------------------------

def test_claim_without_tracking_or_photos_builds(engine, now):
    built = make_order(engine)
    with write_session(engine) as s:
        s.get(Shipment, built.shipment_ids[0]).tracking_number = None
    r = customer.file_claim(engine, claim_request(
        built, issue="missing_item", signature="typed", description="Only the tote came."),
        now=now)
    reader, text = _read(evidence_pack.build(engine, r.claim_id, now=now))
    flat = _flat(text)

    assert r.reference in flat
    assert "Tracking timeline" not in flat
    assert "Tracking number: -" in flat
    assert "Photos: 0" in flat
    assert "No photos were provided." in flat
    assert "Typed name: Sam Jones" in flat
    assert "No decision yet (status: Received)." in flat
    assert "No messages." in flat
    assert _image_count(reader) == 0


def test_denied_claim_shows_the_reason(engine, now):
    built = make_order(engine)
    r = customer.file_claim(engine, claim_request(built), now=now)
    reason = next(iter(domain.DENIAL_LABELS))
    decisions.deny(engine, r.claim_id, "staff:ana", reason, "Damage predates shipping.",
                   now=now + timedelta(hours=1))
    flat = _flat(_read(evidence_pack.build(engine, r.claim_id, now=now))[1])
    view = claim_review.claim_for_staff(engine, r.claim_id)
    assert view.claim.denial_reason
    assert f"Reason: {_flat(str(view.claim.denial_reason))}" in flat
    assert "Damage predates shipping." in flat
    assert "staff:ana · denied (Received → Denied)" in flat


def test_corrupt_photo_is_listed_with_its_hash_not_embedded(engine, now, monkeypatch):
    r, _ = _full_claim(engine, now)
    view = claim_review.claim_for_staff(engine, r.claim_id)
    monkeypatch.setattr(claim_review, "photo_data", lambda *a, **k: b"not a jpeg")
    reader, text = _read(evidence_pack.build(engine, r.claim_id, now=now))
    flat = _flat(text)

    assert "Photos: 2" in flat
    for p in view.photos:
        assert f"SHA-256: {p.sha256} {evidence_pack.NOT_EMBEDDED}" in flat
    assert flat.count(evidence_pack.NOT_EMBEDDED) == 2
    assert _image_count(reader) == 1  # the signature only


def test_unknown_claim_is_not_found(engine):
    with pytest.raises(domain.ClaimNotFound):
        evidence_pack.build(engine, 999_999)


def test_filename():
    assert evidence_pack.filename("CLM-4F7K2Q") == "evidence-CLM-4F7K2Q.pdf"
    assert evidence_pack.filename('CLM-4F"\r\n/../x') == "evidence-CLM-4Fx.pdf"
    assert evidence_pack.filename("") == "evidence-claim.pdf"
