"""The packet a carrier (or insurer) claim needs: the evidence pack that exists for the claim
(``evidence_pack.py``) and a commercial invoice / proof of value generated from the order, both
PDF (fpdf2), bundled in one ZIP for the staff's download.

``invoice_pdf(engine, claim_id)``: the seller (the store), the buyer and the shipping address, the
order number and date, the claimed items with quantity, unit price and amount, the amount the shop
paid out on the claim, the carrier and tracking number.
"""
from __future__ import annotations

import io
import re
import zipfile
from datetime import datetime

from ..domain.money import format_minor
from ..infra.db import utcnow
from ..services import claim_review
from ..services.settings import load_settings
from . import evidence_pack

ZIP_MIME = "application/zip"


def _safe(reference: str) -> str:
    return re.sub(r"[^A-Za-z0-9-]", "", reference or "") or "claim"


def invoice_filename(reference: str) -> str:
    return f"invoice-{_safe(reference)}.pdf"


def packet_filename(reference: str) -> str:
    return f"recovery-{_safe(reference)}.zip"


def invoice_pdf(engine, claim_id: int, *, now: datetime | None = None) -> bytes:
    """The commercial invoice / proof of value for the claimed goods, as PDF bytes."""
    view = claim_review.claim_for_staff(engine, claim_id)
    settings = load_settings(engine)
    c = view.claim
    pdf = evidence_pack._Pack(c.reference, settings.timezone)
    generated = now or utcnow()
    pdf.set_creation_date(generated)
    pdf.set_title(f"Commercial invoice {c.reference}")
    pdf.add_page()
    pdf.para(settings.name or "", size=11, bold=True)
    pdf.para(f"Commercial invoice / proof of value \u2014 order {view.order_number}", size=16,
             bold=True, height=9)
    pdf.gap(1)
    pdf.field("Claim", c.reference)
    pdf.field("Issued", evidence_pack._when(generated, pdf.tz))
    pdf.field("Seller", f"{settings.name} \u00b7 {settings.support_email}")
    pdf.field("Buyer", view.customer_name)
    pdf.field("Ship to", view.shipping_address)
    pdf.field("Order date", evidence_pack._when(view.order_created_at, pdf.tz))
    pdf.field("Carrier", c.carrier)
    pdf.field("Tracking number", c.tracking_number)
    pdf.field("Shipped", evidence_pack._when(view.shipped_at, pdf.tz))
    pdf.heading("Goods in this claim")
    total = 0
    for i in view.items:
        sku = f" (SKU {i.sku})" if i.sku else ""
        pdf.para(f"{i.quantity} \u00d7 {i.name}{sku} at {format_minor(i.unit_cents, c.currency)}"
                 f" = {format_minor(i.amount_cents, c.currency)}", indent=4)
        total += i.amount_cents
    if not view.items:
        pdf.para("The whole shipment (no single items were claimed).", indent=4)
        total = c.claimed_cents
    pdf.gap()
    pdf.field("Value of the goods claimed", format_minor(total, c.currency))
    paid = sum(r.amount_cents for r in c.resolutions)
    pdf.field("Paid out to the customer by the shop", format_minor(paid, c.currency))
    pdf.field("Order total", format_minor(view.order_total_cents, c.currency))
    pdf.gap()
    pdf.para("Prices are what the customer paid, after discounts.", size=9)
    return pdf.finish()


def packet_zip(engine, claim_id: int, *, now: datetime | None = None) -> tuple[str, bytes]:
    """(file name, ZIP bytes) with the evidence pack and the invoice."""
    view = claim_review.claim_for_staff(engine, claim_id)
    ref = view.claim.reference
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(evidence_pack.filename(ref), evidence_pack.build(engine, claim_id, now=now))
        z.writestr(invoice_filename(ref), invoice_pdf(engine, claim_id, now=now))
    return packet_filename(ref), buf.getvalue()
