"""Imports: a Shopify admin orders export, a shipments CSV, a stock CSV.

Each import parses and validates the whole file first (``preview``), then writes every valid
order in one transaction. A bad row skips its whole order (an order is never half-written) and is
reported with its line number and the reason. Importing the same file again updates, never
duplicates.

This module only reads the files: rows become the domain's snapshots (``domain/orders.py``) or
row errors, and ``services/order_sync.py`` writes them — the same service, unit of work and events
(``ORDER_SYNCED``) as Shopify's webhooks and the API. Cells are read by ``domain.text``
(``read_text``, ``read_time``), amounts by ``domain.money.minor_from_amount``.

Shipments CSV (one row per shipment and SKU)::

    order,tracking_number,carrier,shipped_at,delivered_at,status,last_scan_at,sku,quantity
    #1002,1Z999AA10123456784,UPS,2026-11-10 18:33,2026-11-13 12:00,delivered,2026-11-13 12:00,TR2-NV-10,1

``status`` is one of fulfilled, in_transit, delivered, returned, exception. Times are ISO-like
(``2026-11-10 18:33``, optionally with seconds and a ``-0500`` or ``Z`` offset; no offset means UTC).

Stock CSV::

    sku,on_hand
    TR2-NV-10,14
"""
from __future__ import annotations

import csv
import io
import re
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Callable

from sqlalchemy import Engine

from .. import domain
from ..domain import money
from ..domain.orders import (LineSnapshot, OrderDataError, OrderSnapshot, ShipmentSnapshot,
                             ShippedItem, check_shipment, risk_level)
from ..domain.orders import protection_matcher as _protection_matcher
from ..domain.text import UnreadableTime, read_text, read_time
from ..services import order_sync
from ..services.settings import load_settings

MAX_IMPORT_BYTES = 50 * 1024 * 1024
MAX_CELL_CHARS = 10_000  # every column the importers keep is far shorter


class ImportFileError(Exception):
    """The file as a whole can't be imported (nothing was written)."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class RowError:
    line: int  # line number in the file (the header is line 1)
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


@dataclass
class ImportReport:
    kind: str
    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped_rows: list[RowError] = field(default_factory=list)
    written: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.skipped_rows

    def summary(self) -> str:
        s = (f"{self.kind}: {self.rows} rows read, {self.created} created, {self.updated} updated, "
             f"{self.unchanged} unchanged, {len(self.skipped_rows)} rows skipped")
        return s + ("" if self.written else " (preview only, nothing written)")


# --- parsing helpers ----------------------------------------------------------------------------

def _decode(data: bytes | str) -> str:
    if isinstance(data, str):
        return data.lstrip("\ufeff")
    if len(data) > MAX_IMPORT_BYTES:
        raise ImportFileError(f"The file is larger than {MAX_IMPORT_BYTES // 1048576} MB.")
    if b"\x00" in data[:4096]:
        raise ImportFileError("This doesn't look like a CSV file (it contains binary data).")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            return data.decode("cp1252")
        except UnicodeDecodeError:
            raise ImportFileError("The file isn't UTF-8 text. Export it again as CSV (UTF-8).")


def _rows(data: bytes | str, required: list[str], kind: str):
    """Yield (line_number, row dict) with headers matched case-insensitively."""
    text = _decode(data)
    if not text.strip():
        raise ImportFileError("The file is empty.")
    if "\x00" in text:
        raise ImportFileError("This doesn't look like a CSV file (it contains binary data).")
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except csv.Error as e:
        raise ImportFileError(f"The file isn't a readable CSV: {e}.")
    keys = [h.strip().lower() for h in header]
    missing = [r for r in required if r.lower() not in keys]
    if missing:
        raise ImportFileError(
            f"This isn't a {kind} file: the header is missing {', '.join(missing)}. "
            f"Found: {', '.join(h for h in header[:8] if h) or 'nothing'}."
        )
    line = reader.line_num
    while True:
        start = line + 1
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            yield start, None, f"unreadable CSV ({e})"
            return
        line = reader.line_num
        if not any(v.strip() for v in values):
            continue
        if len(values) > len(keys):
            extra = values[len(keys):]
            if any(v.strip() for v in extra):
                yield start, None, f"{len(values)} columns but the header has {len(keys)}"
                continue
        row = {k: (read_text(values[i], MAX_CELL_CHARS, keep_lines=True) if i < len(values) else "")
               for i, k in enumerate(keys)}
        yield start, row, None


def parse_money(raw: str, what: str, currency: str = "USD") -> int:
    """An amount cell ("1,234.50", "$12", "EUR 9.99") in the currency's minor units, read by the
    domain's one parser (``money.minor_from_amount``); a blank cell is zero. ``ValueError``
    names the column."""
    if not (raw or "").strip():
        return 0
    try:
        return money.minor_from_amount(raw, currency)
    except domain.InvalidInput as e:
        raise ValueError(f"{what}: {e.message}")


def parse_int(raw: str, what: str, *, minimum: int = 0) -> int:
    s = (raw or "").strip()
    if not re.fullmatch(r"-?\d+", s):
        raise ValueError(f"{what} “{raw}” is not a whole number")
    n = int(s)
    if n < minimum:
        raise ValueError(f"{what} must be at least {minimum}")
    if n > 1_000_000:
        raise ValueError(f"{what} “{raw}” is too large")
    return n


def parse_time(raw: str, what: str) -> datetime | None:
    s = (raw or "").strip()
    if not s:
        return None
    try:
        return read_time(s)
    except UnreadableTime:
        raise ValueError(f"{what} “{raw}” is not a date and time (expected e.g. "
                         "2026-11-10 18:33:00 -0500)") from None


def _truthy(raw: str, default: bool = True) -> bool:
    s = (raw or "").strip().lower()
    if not s:
        return default
    return s in ("true", "yes", "y", "1")


# --- Shopify orders export ----------------------------------------------------------------------

ORDER_REQUIRED = ["Name", "Email", "Created at", "Lineitem quantity", "Lineitem name",
                  "Lineitem price"]


@dataclass
class _ParsedOrder:
    """One order's rows while the file is read (its first row gives the order's fields)."""

    number: str
    first_line: int
    fields: dict = field(default_factory=dict)
    lines: list[LineSnapshot] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)

    def snapshot(self) -> OrderSnapshot:
        return OrderSnapshot(number=self.number, lines=tuple(self.lines), source="import",
                             line=self.first_line, **self.fields)


def protection_matcher(pattern: str) -> Callable[[str, str], bool]:
    try:
        return _protection_matcher(pattern)
    except ValueError as e:
        raise ImportFileError(str(e)) from None


def parse_orders_export(data: bytes | str, protection_pattern: str) -> tuple[list[OrderSnapshot], ImportReport]:
    is_protection = protection_matcher(protection_pattern)
    report = ImportReport("orders")
    orders: "OrderedDict[str, _ParsedOrder]" = OrderedDict()
    for line, row, problem in _rows(data, ORDER_REQUIRED, "Shopify orders export"):
        report.rows += 1
        if problem:
            report.skipped_rows.append(RowError(line, problem))
            continue
        number = domain.normalize_order_number(row.get("name", ""))
        if not number:
            report.skipped_rows.append(RowError(line, "no order number in the Name column"))
            continue
        if len(number) > 60:
            report.skipped_rows.append(RowError(line, "the order number is too long"))
            continue
        po = orders.get(number)
        if po is None:
            po = orders[number] = _ParsedOrder(number, line)
            try:
                po.fields = _order_fields(row)
            except ValueError as e:
                po.errors.append(RowError(line, str(e)))
        try:
            lq = parse_int(row.get("lineitem quantity", ""), "Lineitem quantity", minimum=1)
            currency = po.fields.get("currency", "USD")  # the order's first row says it
            price = parse_money(row.get("lineitem price", ""), "Lineitem price", currency)
            discount = parse_money(row.get("lineitem discount", ""), "Lineitem discount", currency)
            name = row.get("lineitem name", "")
            if not name:
                raise ValueError("the line item has no name")
            sku = row.get("lineitem sku", "")[:100]
            po.lines.append(LineSnapshot(
                sku=sku, name=name[:300], quantity=lq, unit_price_minor=price,
                discount_minor=min(discount, price * lq),
                requires_shipping=_truthy(row.get("lineitem requires shipping", "")),
                fulfilled=row.get("lineitem fulfillment status", "").lower() == "fulfilled",
                is_protection=is_protection(name, sku), line=line,
            ))
        except ValueError as e:
            po.errors.append(RowError(line, str(e)))
    good = []
    for po in orders.values():
        if po.errors:
            report.skipped_rows.extend(po.errors)
            report.notes.append(f"Order #{po.number} was not imported: fix the lines above.")
        else:
            good.append(po.snapshot())
    report.skipped_rows.sort(key=lambda e: e.line)
    return good, report


def _order_fields(row: dict) -> dict:
    email = domain.normalize_email(row.get("email", ""))
    if not email or "@" not in email:
        raise ValueError("the order's first row has no customer email")
    created = parse_time(row.get("created at", ""), "Created at")
    if created is None:
        raise ValueError("the order's first row has no Created at")
    currency = (row.get("currency", "") or "USD")[:3].upper()
    return {
        "name": row.get("name", "").strip()[:64],
        "email": email[:254],
        "customer_name": (row.get("shipping name") or row.get("billing name") or "")[:200],
        "created_at": created,
        "financial_status": row.get("financial status", "")[:32] or "paid",
        "fulfillment_status": row.get("fulfillment status", "")[:32] or "unfulfilled",
        "fulfilled_at": parse_time(row.get("fulfilled at", ""), "Fulfilled at"),
        "cancelled_at": parse_time(row.get("cancelled at", ""), "Cancelled at"),
        "currency": currency,
        "subtotal_minor": parse_money(row.get("subtotal", ""), "Subtotal", currency),
        "shipping_minor": parse_money(row.get("shipping", ""), "Shipping", currency),
        "tax_minor": parse_money(row.get("taxes", ""), "Taxes", currency),
        "total_minor": parse_money(row.get("total", ""), "Total", currency),
        "shipping_method": row.get("shipping method", "")[:100],
        "shipping_address1": row.get("shipping address1", "")[:200],
        "shipping_city": row.get("shipping city", "")[:100],
        "shipping_zip": row.get("shipping zip", "")[:20],
        "shipping_province": row.get("shipping province", "")[:100],
        "shipping_country": row.get("shipping country", "")[:2].upper(),
        "external_id": row.get("id", "")[:64] or None,
        "risk_level": risk_level(row.get("risk level", "")),
        "refunded_total_minor": parse_money(row.get("refunded amount", ""), "Refunded Amount",
                                            currency),
    }


def import_orders(engine: Engine, data: bytes | str, *, preview: bool = False,
                  protection_pattern: str | None = None, actor: str = "import",
                  progress: Callable[[float], None] | None = None) -> ImportReport:
    """Import (or with ``preview=True`` only check) a Shopify orders export."""
    if protection_pattern is None:
        protection_pattern = load_settings(engine).protection_pattern
    parsed, report = parse_orders_export(data, protection_pattern)
    counts = order_sync.import_orders(engine, parsed, preview=preview, actor=actor,
                                      progress=progress)
    report.created, report.updated, report.unchanged = counts.created, counts.updated, counts.unchanged
    report.written = not preview
    if progress:
        progress(1.0)
    return report


# --- shipments ----------------------------------------------------------------------------------

SHIPMENT_REQUIRED = ["order", "tracking_number", "shipped_at", "sku", "quantity"]


def parse_shipments(data: bytes | str) -> tuple[list[ShipmentSnapshot], ImportReport]:
    """The shipments CSV as one snapshot per order and tracking number (its rows' items)."""
    report = ImportReport("shipments")
    groups: "OrderedDict[tuple[str, str], dict]" = OrderedDict()
    for line, row, problem in _rows(data, SHIPMENT_REQUIRED, "shipments"):
        report.rows += 1
        if problem:
            report.skipped_rows.append(RowError(line, problem))
            continue
        try:
            number = domain.normalize_order_number(row.get("order", ""))
            if not number:
                raise ValueError("no order number")
            shipped = parse_time(row.get("shipped_at", ""), "shipped_at")
            if shipped is None:
                raise ValueError("no shipped_at")
            snap = ShipmentSnapshot(
                order_number=number, tracking_number=domain.normalize_tracking(
                    row.get("tracking_number", "")),
                shipped_at=shipped, items=(), source="import",
                carrier=row.get("carrier", "")[:64],
                status=(row.get("status", "") or "in_transit").lower().replace(" ", "_"),
                delivered_at=parse_time(row.get("delivered_at", ""), "delivered_at"),
                last_scan_at=parse_time(row.get("last_scan_at", ""), "last_scan_at"), line=line)
            check_shipment(snap)
            g = groups.setdefault((number, snap.tracking_number), {"snap": snap, "items": []})
            sku = row.get("sku", "")
            if not sku:
                raise ValueError("no SKU")
            g["items"].append(ShippedItem(sku, parse_int(row.get("quantity", ""), "quantity",
                                                         minimum=1), line))
        except (ValueError, OrderDataError) as e:
            report.skipped_rows.append(RowError(line, str(e)))
    snaps = [replace(g["snap"], items=tuple(g["items"])) for g in groups.values()]
    return snaps, report


def import_shipments(engine: Engine, data: bytes | str, *, preview: bool = False,
                     actor: str = "import") -> ImportReport:
    snaps, report = parse_shipments(data)
    counts = order_sync.import_shipments(engine, snaps, preview=preview, actor=actor)
    report.created, report.updated, report.unchanged = counts.created, counts.updated, counts.unchanged
    report.skipped_rows.extend(RowError(e.line, e.reason) for e in counts.errors)
    report.skipped_rows.sort(key=lambda e: e.line)
    report.written = not preview
    return report


# --- stock --------------------------------------------------------------------------------------

def import_stock(engine: Engine, data: bytes | str, *, preview: bool = False) -> ImportReport:
    report = ImportReport("stock")
    values: dict[str, int] = {}
    for line, row, problem in _rows(data, ["sku", "on_hand"], "stock"):
        report.rows += 1
        if problem:
            report.skipped_rows.append(RowError(line, problem))
            continue
        sku = row.get("sku", "")[:100]
        try:
            if not sku:
                raise ValueError("no SKU")
            values[sku] = parse_int(row.get("on_hand", ""), "on_hand", minimum=0)
        except ValueError as e:
            report.skipped_rows.append(RowError(line, str(e)))
    counts = order_sync.set_stock(engine, values, preview=preview)
    report.created, report.updated, report.unchanged = counts.created, counts.updated, counts.unchanged
    report.written = not preview
    return report
