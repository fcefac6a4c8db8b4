"""The evidence pack: one PDF per claim, for a carrier claim or a chargeback response.

``build(engine, claim_id)`` reads the claim through the staff services (``claim_review``,
``settings``) and lays out, in order: a title block, the order and shipment, the carrier's timeline
and proof of delivery, the customer's statement and signature, every photo (the stored copy,
embedded), the conversation, the decision and the full audit trail; each page's footer reads
"CLM-… · page N of M". ``filename(reference)`` names the download.

Customer and carrier text is printed as text, never interpreted: no markdown, no HTML, no links
(``multi_cell(markdown=False)``; fpdf's "{nb}" page-count alias is switched off for everything but
the footer, so a customer who types "{nb}" sees "{nb}"). Text uses DejaVu Sans when the font file is
on the machine (``FONT_PATH``); characters it has no glyph for print as "?". Without the font, the
core Helvetica font is used: a few typographic characters are spelt in ASCII ("→" as "->") and
anything else outside Latin-1 prints as "?". A photo that can't be decoded is listed with its hash
and "(image could not be embedded)".
"""
from __future__ import annotations

import io
import os
import re
import unicodedata
from datetime import date, datetime, timezone

from fpdf import FPDF
from fpdf.enums import WrapMode, XPos, YPos
from fpdf.errors import FPDFException

from ..domain.errors import ClaimRuleError
from ..domain.money import credit_with_bonus, format_minor
from ..domain.text import strip_controls
from ..domain.vocabulary import (
    DENIED,
    RESOLUTION_LABELS,
    SHIPMENT_STATUS_LABELS,
    ResolutionKind,
)
from ..domain.windows import format_date, format_moment
from ..infra.db import utcnow
from ..services import claim_review, retention
from ..services.settings import load_settings

FONT_PATH = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
BOLD_FONT_PATH = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"

MIME_TYPE = "application/pdf"
NOT_EMBEDDED = "(image could not be embedded)"
REMOVED = "(removed under the retention policy)"  # Settings → Privacy

_PAGE_ALIAS = "{nb}"
_PHOTO_MAX_HEIGHT_MM = 100.0  # two photos to a page
_SIGNATURE_BOX_MM = (80.0, 27.0)

# Spelt out for the core font (Latin-1 only); anything else it can't encode becomes "?".
_ASCII_SPELLING = str.maketrans({
    "\u2192": "->", "\u2190": "<-", "\u2014": "-", "\u2013": "-", "\u2212": "-",
    "\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2026": "...",
    "\u2022": "*", "\u20ac": "EUR ", "\u2122": "(TM)", "\u00a0": " ",
})


def filename(reference: str) -> str:
    """The download's file name, e.g. ``evidence-CLM-4F7K2Q.pdf`` (only letters, digits and
    hyphens from the reference, so it is safe in a Content-Disposition header)."""
    safe = re.sub(r"[^A-Za-z0-9-]", "", reference or "")
    return f"evidence-{safe or 'claim'}.pdf"


def build(engine, claim_id: int, *, now: datetime | None = None) -> bytes:
    """The claim's evidence pack as PDF bytes. Raises ``domain.ClaimNotFound`` for an unknown
    claim. ``now`` is the "generated at" time (UTC; defaults to the clock)."""
    view = claim_review.claim_for_staff(engine, claim_id)
    settings = load_settings(engine)
    store = settings.name or ""
    generated = _utc(now or utcnow())
    removed, signature_removed = retention.removed_photos(engine, claim_id)
    photos = [(p, None if p.id in removed else _photo_bytes(engine, claim_id, p.id))
              for p in view.photos]

    pdf = _Pack(view.claim.reference, settings.timezone)
    pdf.set_creation_date(generated)
    pdf.set_title(strip_controls(f"Evidence pack {view.claim.reference}"))
    pdf.set_author(strip_controls(store))
    pdf.set_lang("en")
    pdf.add_page()

    _title(pdf, view, store, generated)
    _order_and_shipment(pdf, view)
    if view.claim.tracking is not None:
        _tracking(pdf, view.claim.tracking)
    _statement(pdf, view, signature_removed)
    _photos(pdf, photos, removed)
    _conversation(pdf, view)
    _decision(pdf, view)
    _audit_trail(pdf, view)
    return pdf.finish()


# --- the document ---------------------------------------------------------------------------------

class _Pack(FPDF):
    """A4 pages with the claim's footer; every piece of text goes through :meth:`para`."""

    def __init__(self, reference: str, tz: str | None = None):
        super().__init__(orientation="P", unit="mm", format="A4")
        self.reference = reference
        self.tz = tz or "UTC"  # the store's zone: every moment in the pack is shown in it
        self.set_margins(15, 15, 15)
        self.set_auto_page_break(True, margin=18)
        self.unicode = _add_unicode_font(self)
        self.family = "DejaVu" if self.unicode else "Helvetica"
        # fpdf replaces "{nb}" in any text it writes: off for the body (a customer's "{nb}" stays
        # "{nb}"), on while a footer writes "page N of M" and when the document is closed.
        self.alias_nb_pages(None)
        self.style()

    def finish(self) -> bytes:
        self.str_alias_nb_pages = _PAGE_ALIAS  # the last footer is written, then substituted
        return bytes(self.output())

    # text ---------------------------------------------------------------------------------------

    def clean(self, text) -> str:
        """Text the current font can print: no control characters (newlines and tabs kept as
        lines and spaces), a glyph for every character or "?"."""
        s = str(text if text is not None else "").replace("\r\n", "\n").replace("\r", "\n")
        s = "".join(" " if ch == "\t" else ch for ch in s
                    if ch == "\n" or ch == "\t" or unicodedata.category(ch) != "Cc")
        if self.unicode:
            cmap = self.current_font.cmap if self.current_font is not None else {}
            return "".join(ch if ch == "\n" or ord(ch) in cmap else "?" for ch in s)
        return s.translate(_ASCII_SPELLING).encode("latin-1", "replace").decode("latin-1")

    def style(self, size: float = 10, bold: bool = False) -> None:
        self.set_font(self.family, "B" if bold else "", size)

    def para(self, text, *, size: float = 10, bold: bool = False, indent: float = 0,
             height: float | None = None) -> None:
        """One paragraph from the left margin (plus ``indent``), wrapped to the page width; long
        words and URLs are broken rather than overflow."""
        self.style(size, bold)
        body = self.clean(text)
        h = height or size * 0.5
        self.set_x(self.l_margin + indent)
        try:
            self.multi_cell(self.epw - indent, h, body, align="L", markdown=False,
                            wrapmode=WrapMode.WORD,
                            new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        except FPDFException:  # a word wider than the line: break anywhere
            self.set_x(self.l_margin + indent)
            self.multi_cell(self.epw - indent, h, body, align="L", markdown=False,
                            wrapmode=WrapMode.CHAR,
                            new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    def field(self, label: str, value) -> None:
        self.para(f"{label}: {value if value not in (None, '') else '-'}")

    def heading(self, title: str) -> None:
        if self.y > self.page_break_trigger - 25:  # keep a heading with what follows it
            self.add_page()
        self.ln(4)
        self.para(title, size=13, bold=True, height=7)
        self.set_draw_color(160, 160, 160)
        self.line(self.l_margin, self.y, self.w - self.r_margin, self.y)
        self.ln(2)

    def subhead(self, title: str) -> None:
        self.room_for(15)  # not alone at the foot of a page
        self.para(title, bold=True)

    def gap(self, mm: float = 2) -> None:
        self.ln(mm)

    def room_for(self, height: float) -> None:
        if self.y + height > self.page_break_trigger:
            self.add_page()

    # page furniture -----------------------------------------------------------------------------

    def footer(self) -> None:
        saved = self.str_alias_nb_pages
        self.alias_nb_pages(_PAGE_ALIAS)
        try:
            self.set_y(-12)
            self.style(8)
            self.set_text_color(110, 110, 110)
            self.cell(0, 5, self.clean(f"{self.reference} \u00b7 page {self.page_no()} of ")
                      + _PAGE_ALIAS, align="C", markdown=False)
            self.set_text_color(0, 0, 0)
        finally:
            self.str_alias_nb_pages = saved


def _add_unicode_font(pdf: FPDF) -> bool:
    """DejaVu Sans (and its bold, or the regular face again) when the file is there."""
    if not os.path.isfile(FONT_PATH):
        return False
    try:
        pdf.add_font("DejaVu", "", FONT_PATH)
        pdf.add_font("DejaVu", "B", BOLD_FONT_PATH if os.path.isfile(BOLD_FONT_PATH) else FONT_PATH)
    except Exception:  # noqa: BLE001 - an unreadable font file: the core font will do
        pdf.fonts.pop("dejavu", None)
        pdf.fonts.pop("dejavuB", None)
        return False
    return True


# --- sections -------------------------------------------------------------------------------------

def _title(pdf: _Pack, view: claim_review.StaffClaimView, store: str, generated: datetime) -> None:
    c = view.claim
    if store:
        pdf.para(store, size=11, bold=True)
    pdf.para(f"Evidence pack \u2014 claim {c.reference}", size=17, bold=True, height=9)
    pdf.gap(1)
    pdf.field("Generated", _when(generated, pdf.tz))
    status = c.status_label
    if status.lower() != str(c.status).replace("_", " "):
        status += f" ({str(c.status).replace('_', ' ')})"
    pdf.field("Claim status", status)
    pdf.field("Claim filed", _when(c.created_at, pdf.tz))
    if view.held_at is not None:
        pdf.field("On hold since", f"{_when(view.held_at, pdf.tz)} \u2014 {view.hold_reason}")
    if view.disputed:  # the pack is the evidence for the customer's bank
        pdf.field("Payment dispute", view.dispute_summary)


def _order_and_shipment(pdf: _Pack, view: claim_review.StaffClaimView) -> None:
    c = view.claim
    pdf.heading("Order and shipment")
    pdf.field("Order number", view.order_number)
    pdf.field("Customer", view.customer_name)
    pdf.field("Email", view.email)
    pdf.field("Shipping address", view.shipping_address)
    pdf.field("Order date", _when(view.order_created_at, pdf.tz))
    pdf.field("Order total", format_minor(view.order_total_cents, c.currency))
    pdf.field("Shipping protection", "yes" if view.protected else "no")
    if view.refunded_cents:
        pdf.field("Refunded in the shop outside this claim",
                  format_minor(view.refunded_cents, c.currency))
    pdf.field("Shipping method", view.shipping_method)
    pdf.field("Shipment", c.shipment_label)
    pdf.field("Carrier", c.carrier)
    pdf.field("Tracking number", c.tracking_number)
    pdf.field("Shipment status", SHIPMENT_STATUS_LABELS.get(view.shipment_status,
                                                            view.shipment_status))
    pdf.field("Shipped", _when(view.shipped_at, pdf.tz))
    pdf.field("Delivered", _when(view.delivered_at, pdf.tz) if view.delivered_at else "not delivered")
    if view.last_scan_at is not None:
        pdf.field("Last carrier scan", _when(view.last_scan_at, pdf.tz))
    pdf.field("Filing deadline", _day(view.deadline))


def _tracking(pdf: _Pack, t) -> None:
    pdf.heading("Tracking timeline and proof of delivery")
    pdf.field("Tracking number", t.tracking_number)
    pdf.field("Carrier", t.carrier)
    pdf.field("Milestone", t.milestone_label or "unknown")
    pdf.field("Expected delivery", _when(t.expected_delivery_at, pdf.tz) if t.expected_delivery_at
              else "not given")
    pdf.gap()
    pdf.subhead(f"Checkpoints ({len(t.entries)}, newest first, times in {pdf.tz})")
    if not t.entries:
        pdf.para("No checkpoints reported.", indent=4)
    for e in t.entries:
        head = f"{_when(e.at, pdf.tz)} \u00b7 {e.milestone_label}"
        if e.place:
            head += f" \u00b7 {e.place}"
        pdf.para(head, indent=4)
        if e.message:
            pdf.para(e.message, size=9, indent=10)
    pdf.gap()
    pdf.subhead("Proof of delivery")
    if not t.proof:
        pdf.para("No proof of delivery reported.", indent=4)
    else:
        pdf.para(f"Signed by: {t.proof.signed_by or '-'}", indent=4)
        pdf.para(f"Location: {t.proof.location or '-'}", indent=4)
        pdf.para(f"Photo link (as given by the carrier): {t.proof.photo_url or '-'}", indent=4)


def _statement(pdf: _Pack, view: claim_review.StaffClaimView, signature_removed: bool = False
               ) -> None:
    c = view.claim
    pdf.heading("The customer's statement")
    pdf.field("Issue", c.issue_label)
    pdf.field("Resolution asked for", RESOLUTION_LABELS.get(c.desired_resolution,
                                                            c.desired_resolution))
    if c.items:
        pdf.subhead("Items claimed")
        for i in c.items:
            sku = f" (SKU {i.sku})" if i.sku else ""
            pdf.para(f"{i.quantity} \u00d7 {i.name}{sku}: {format_minor(i.amount_cents, c.currency)}",
                     indent=4)
    pdf.field("Amount claimed", format_minor(c.claimed_cents, c.currency))
    pdf.gap()
    pdf.subhead("Description")
    pdf.para(c.description or "(none given)", indent=4)
    pdf.gap()
    pdf.subhead("Signature")
    if signature_removed:
        pdf.para(f"{'Drawn' if c.signature_kind == 'drawn' else 'Typed'} by the customer: "
                 f"{REMOVED}", indent=4)
    elif c.signature_kind == "drawn":
        pdf.para("Drawn by the customer:", indent=4)
        if view.signature_png:
            w, h = _SIGNATURE_BOX_MM
            pdf.room_for(h + 2)
            try:
                pdf.image(io.BytesIO(view.signature_png), x=pdf.l_margin + 4, w=w, h=h,
                          keep_aspect_ratio=True)
            except Exception:  # noqa: BLE001 - whatever the decoder says, list it instead
                pdf.para(NOT_EMBEDDED, indent=4)
        else:
            pdf.para("(no drawing stored)", indent=4)
    else:
        pdf.para(f"Typed name: {c.signature_name or '-'}", indent=4)
        if c.signature_cannot_draw:
            pdf.para("The customer ticked: \u201cI can't draw a signature; my typed name is my "
                     "signature.\u201d", indent=4)


def _photos(pdf: _Pack, photos: list, removed: frozenset[int] | set[int] = frozenset()) -> None:
    pdf.heading("Photos")
    pdf.para(f"Photos: {len(photos)}")
    if not photos:
        pdf.para("No photos were provided.")
    for n, (p, data) in enumerate(photos, 1):
        box_h = _photo_height(pdf.epw, p.width, p.height)
        pdf.room_for(4 * 5 + (box_h if data else 0) + 4)
        pdf.gap(3)
        pdf.para(f"Photo {n}: {p.filename}", bold=True)
        pdf.para(f"Size: {p.width} \u00d7 {p.height} pixels \u00b7 review: {_review(p)}")
        pdf.para(f"SHA-256: {p.sha256}", size=9)
        if p.reused_in:
            pdf.para("Also submitted with: " + ", ".join(p.reused_in), size=9)
        embedded = False
        if data:
            try:
                pdf.image(io.BytesIO(data), x=pdf.l_margin, w=pdf.epw, h=box_h,
                          keep_aspect_ratio=True)
                embedded = True
            except Exception:  # noqa: BLE001 - whatever the decoder says, list it instead
                embedded = False
        if p.id in removed:
            pdf.para(REMOVED)
        elif not embedded:
            pdf.para(NOT_EMBEDDED)


def _conversation(pdf: _Pack, view: claim_review.StaffClaimView) -> None:
    """The conversation with the customer. Staff's internal notes stay out: the pack leaves the
    shop (a carrier, a payment processor); the audit trail still shows that notes were made."""
    pdf.heading("Conversation")
    messages = sorted(view.claim.messages, key=lambda m: _utc(m.created_at))
    if not messages:
        pdf.para("No messages.")
    for m in messages:
        pdf.gap(1)
        who = m.author_name or m.author_kind
        pdf.para(f"{_when(m.created_at, pdf.tz)} \u00b7 {who} ({m.author_kind})", bold=True, size=9)
        pdf.para(m.body, indent=4)


def _decision(pdf: _Pack, view: claim_review.StaffClaimView) -> None:
    c = view.claim
    pdf.heading("Decision")
    if c.resolutions:
        pdf.para(f"{c.status_label}{' (partial)' if c.partial else ''}", bold=True)
        for r in c.resolutions:
            label = RESOLUTION_LABELS.get(r.kind, r.kind)
            if r.kind == ResolutionKind.STORE_CREDIT:
                line = f"{label}: {format_minor(r.amount_cents, c.currency)}"
                if r.bonus_pct:
                    total = credit_with_bonus(r.amount_cents, r.bonus_pct)
                    line += f" + {r.bonus_pct}% bonus = {format_minor(total, c.currency)}"
                line += f" \u00b7 code {r.store_credit_code or '-'}"
            elif r.kind == ResolutionKind.RESHIPMENT:
                line = label
            else:
                line = f"{label}: {format_minor(r.amount_cents, c.currency)}"
            pdf.para(line, indent=4)
    elif c.status == DENIED:
        pdf.para("Denied", bold=True)
        pdf.field("Reason", c.denial_reason or "-")
    else:
        pdf.para(f"No decision yet (status: {c.status_label}).")
    if c.decision_note:
        pdf.field("Decision note", c.decision_note)


def _audit_trail(pdf: _Pack, view: claim_review.StaffClaimView) -> None:
    pdf.heading("Audit trail")
    pdf.para(f"Every recorded event, oldest first ({len(view.events)}).", size=9)
    for e in view.events:  # each line's time is the store's local time (``EventView.line``)
        pdf.para(e.line, size=9)


# --- helpers --------------------------------------------------------------------------------------

def _photo_bytes(engine, claim_id: int, evidence_id: int) -> bytes | None:
    try:
        return claim_review.photo_data(engine, claim_id, evidence_id)
    except ClaimRuleError:  # gone since the view was read: listed without the image
        return None


def _photo_height(width_mm: float, width_px: int, height_px: int) -> float:
    if width_px > 0 and height_px > 0:
        return min(_PHOTO_MAX_HEIGHT_MM, width_mm * height_px / width_px)
    return _PHOTO_MAX_HEIGHT_MM


def _review(p) -> str:
    status = str(p.review_status or "pending")
    return f"{status} ({p.review_note})" if p.review_note else status


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def _when(moment: datetime | None, tz: str) -> str:
    """A moment in the store's zone, its day the store's local day (like every date a person
    reads: ``domain.windows``), so "Shipped" and "Filing deadline" count from the same day."""
    return format_moment(moment, tz) if moment is not None else "-"


def _day(d: date | None) -> str:
    return format_date(d) if d is not None else "-"
