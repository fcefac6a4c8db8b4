"""Imports: a Shopify admin orders export, a shipments CSV, a stock CSV.

Each import parses and validates the whole file first (``preview``), then writes every valid
order in one transaction. A bad row skips its whole order (an order is never half-written) and is
reported with its line number and the reason. Importing the same file again updates, never
duplicates.

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
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable

from sqlalchemy import Engine, select
from sqlalchemy.orm import selectinload

from .. import domain
from ..domain import money
from ..domain.resolutions import SHOP_MARKER
from ..services.settings import load_settings
from ..infra.db import import_session, utcnow
from ..infra.models import ClaimItem, LineItem, Order, OrderRefund, Shipment, ShipmentItem, Stock
from ..services import track17_registration, tracking
from . import carrier_feeds

MAX_IMPORT_BYTES = 50 * 1024 * 1024


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
        row = {k: (values[i].strip() if i < len(values) else "") for i, k in enumerate(keys)}
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


_TIME_FORMATS = ("%Y-%m-%d %H:%M:%S %z", "%Y-%m-%d %H:%M %z", "%Y-%m-%dT%H:%M:%S%z",
                 "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M",
                 "%Y-%m-%d")


def parse_time(raw: str, what: str) -> datetime | None:
    s = (raw or "").strip()
    if not s:
        return None
    s2 = s[:-1] + "+0000" if s.endswith("Z") else s
    for fmt in _TIME_FORMATS:
        try:
            dt = datetime.strptime(s2, fmt)
        except ValueError:
            continue
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=timezone.utc)
        return dt.astimezone(timezone.utc)
    raise ValueError(f"{what} “{raw}” is not a date and time (expected e.g. 2026-11-10 18:33:00 -0500)")


def _truthy(raw: str, default: bool = True) -> bool:
    s = (raw or "").strip().lower()
    if not s:
        return default
    return s in ("true", "yes", "y", "1")


# --- Shopify orders export ----------------------------------------------------------------------

ORDER_REQUIRED = ["Name", "Email", "Created at", "Lineitem quantity", "Lineitem name",
                  "Lineitem price"]


@dataclass
class _ParsedLine:
    line: int
    sku: str
    name: str
    quantity: int
    unit_price_cents: int
    discount_cents: int
    requires_shipping: bool
    fulfilled: bool
    is_protection: bool


@dataclass
class _ParsedOrder:
    number: str
    first_line: int
    fields: dict = field(default_factory=dict)
    lines: list[_ParsedLine] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)


def protection_matcher(pattern: str) -> Callable[[str, str], bool]:
    try:
        rx = re.compile(pattern, re.IGNORECASE)
    except re.error as e:
        raise ImportFileError(f"The protection line pattern “{pattern}” is not valid: {e}.")
    return lambda name, sku: bool(rx.search(name or "") or rx.search(sku or ""))


def parse_orders_export(data: bytes | str, protection_pattern: str) -> tuple[list[_ParsedOrder], ImportReport]:
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
            po.lines.append(_ParsedLine(
                line=line, sku=sku, name=name[:300], quantity=lq, unit_price_cents=price,
                discount_cents=min(discount, price * lq),
                requires_shipping=_truthy(row.get("lineitem requires shipping", "")),
                fulfilled=row.get("lineitem fulfillment status", "").lower() == "fulfilled",
                is_protection=is_protection(name, sku),
            ))
        except ValueError as e:
            po.errors.append(RowError(line, str(e)))
    good = []
    for po in orders.values():
        if po.errors:
            report.skipped_rows.extend(po.errors)
            report.notes.append(f"Order #{po.number} was not imported: fix the lines above.")
        else:
            good.append(po)
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
        "subtotal_cents": parse_money(row.get("subtotal", ""), "Subtotal", currency),
        "shipping_cents": parse_money(row.get("shipping", ""), "Shipping", currency),
        "tax_cents": parse_money(row.get("taxes", ""), "Taxes", currency),
        "total_cents": parse_money(row.get("total", ""), "Total", currency),
        "shipping_method": row.get("shipping method", "")[:100],
        "shipping_address1": row.get("shipping address1", "")[:200],
        "shipping_city": row.get("shipping city", "")[:100],
        "shipping_zip": row.get("shipping zip", "")[:20],
        "shipping_province": row.get("shipping province", "")[:100],
        "shipping_country": row.get("shipping country", "")[:2].upper(),
        "external_id": row.get("id", "")[:64] or None,
        "risk_level": risk_level(row.get("risk level", "")),
        "refunded_export_cents": parse_money(row.get("refunded amount", ""), "Refunded Amount",
                                             currency),
    }


RISK_LEVELS = ("low", "medium", "high")
# Shopify's newer order risk "recommendation" says the same in other words.
_RISK_WORDS = {"accept": "low", "investigate": "medium", "cancel": "high"}


def risk_level(raw) -> str:
    """Shopify's fraud analysis of an order as "low", "medium", "high", or "" when unknown."""
    s = str(raw or "").strip().lower()
    s = _RISK_WORDS.get(s, s)
    return s if s in RISK_LEVELS else ""


def import_orders(engine: Engine, data: bytes | str, *, preview: bool = False,
                  protection_pattern: str | None = None,
                  progress: Callable[[float], None] | None = None) -> ImportReport:
    """Import (or with ``preview=True`` only check) a Shopify orders export."""
    if protection_pattern is None:
        protection_pattern = load_settings(engine).protection_pattern
    parsed, report = parse_orders_export(data, protection_pattern)
    now = utcnow()
    with import_session(engine, preview) as s:
        existing = {
            o.order_number: o for o in s.scalars(
                select(Order).where(Order.order_number.in_([p.number for p in parsed]))
                .options(selectinload(Order.line_items),
                         selectinload(Order.shipments).selectinload(Shipment.items))
            )
        } if parsed else {}
        for i, po in enumerate(parsed):
            order = existing.get(po.number)
            changed = _upsert_order(s, order, po, now)
            if order is None:
                report.created += 1
            elif changed:
                report.updated += 1
            else:
                report.unchanged += 1
            if progress and i % 50 == 0:
                progress(i / max(1, len(parsed)))
        s.flush()
        report.written = not preview
    if progress:
        progress(1.0)
    return report


def _upsert_order(s, order: Order | None, po: _ParsedOrder, now: datetime) -> bool:
    """Create or update one order from either source (the CSV export or a Shopify webhook)."""
    f = dict(po.fields)
    fulfilled_at = f.pop("fulfilled_at")
    refunds = f.pop("refunds", None)  # {refund id: cents}, from a webhook
    refunded_export = f.pop("refunded_export_cents", None)  # the export's total
    protection = [ln for ln in po.lines if ln.is_protection]
    f["protection_fee_cents"] = sum(ln.unit_price_cents * ln.quantity - ln.discount_cents
                                    for ln in protection)
    # Protection in the export was bought at checkout, with the order.
    f["protection_purchased_at"] = f["created_at"] if protection else None
    changed = False
    if order is None:
        order = Order(order_number=po.number, source="import", **f)
        s.add(order)
        changed = True
    else:
        if order.protection_purchased_at and protection:
            f["protection_purchased_at"] = order.protection_purchased_at  # keep the known time
        for k, v in f.items():
            if getattr(order, k) != v:
                setattr(order, k, v)
                changed = True
    by_pos = {li.position: li for li in order.line_items}
    for pos, ln in enumerate(po.lines, start=1):
        vals = dict(sku=ln.sku, name=ln.name, quantity=ln.quantity,
                    unit_price_cents=ln.unit_price_cents, discount_cents=ln.discount_cents,
                    requires_shipping=ln.requires_shipping, is_protection=ln.is_protection)
        li = by_pos.get(pos)
        if li is None:
            order.line_items.append(LineItem(position=pos, **vals))
            changed = True
        else:
            for k, v in vals.items():
                if getattr(li, k) != v:
                    setattr(li, k, v)
                    changed = True
    s.flush()
    if refunds is not None or refunded_export is not None:
        changed |= record_refunds(s, order, refunds or {}, refunded_export)
    if fulfilled_at is not None and not order.shipments:
        # No shipments file for this order (yet): one shipment from the export's "Fulfilled at".
        items = [ShipmentItem(line_item_id=li.id, quantity=li.quantity)
                 for li, ln in zip(order.line_items, po.lines)
                 if not li.is_protection and li.requires_shipping and li.quantity > 0
                 and (ln.fulfilled or po.fields["fulfillment_status"] == "fulfilled")]
        if items:
            order.shipments.append(Shipment(status="fulfilled", shipped_at=fulfilled_at,
                                            source="export", items=items))
            changed = True
    return changed


def record_refunds(s, order: Order, refunds: dict[str, int], export_total: int | None = None) -> bool:
    """Shopify refunds on ``order``, by refund id (replays and both sources agree). The export only
    has a total, kept as the row "export"; the order's refunded amount is the larger of that total
    and the sum of the refunds known one by one."""
    have = {r.external_id: r for r in s.scalars(select(OrderRefund).where(
        OrderRefund.order_id == order.id))}
    wanted = dict(refunds)
    if export_total is not None:
        wanted["export"] = export_total
    for ext, cents in wanted.items():
        row = have.get(ext)
        if row is None:
            row = have[ext] = OrderRefund(order_id=order.id, external_id=ext[:64], amount_cents=cents)
            s.add(row)
        else:
            row.amount_cents = cents
    total = max(have["export"].amount_cents if "export" in have else 0,
                sum(r.amount_cents for k, r in have.items() if k != "export"))
    if order.refunded_cents != total:
        order.refunded_cents = total
        return True
    return False


# --- shipments ----------------------------------------------------------------------------------

SHIPMENT_REQUIRED = ["order", "tracking_number", "shipped_at", "sku", "quantity"]


def import_shipments(engine: Engine, data: bytes | str, *, preview: bool = False) -> ImportReport:
    report = ImportReport("shipments")
    groups: "OrderedDict[tuple[str, str], dict]" = OrderedDict()
    for line, row, problem in _rows(data, SHIPMENT_REQUIRED, "shipments"):
        report.rows += 1
        if problem:
            report.skipped_rows.append(RowError(line, problem))
            continue
        try:
            number = domain.normalize_order_number(row.get("order", ""))
            tracking = domain.normalize_tracking(row.get("tracking_number", ""))
            if not number:
                raise ValueError("no order number")
            if not tracking:
                raise ValueError("no tracking number")
            status = (row.get("status", "") or "in_transit").lower().replace(" ", "_")
            if status not in domain.SHIPMENT_STATUSES:
                raise ValueError(f"status “{row.get('status')}” is not one of "
                                 f"{', '.join(domain.SHIPMENT_STATUSES)}")
            shipped = parse_time(row.get("shipped_at", ""), "shipped_at")
            if shipped is None:
                raise ValueError("no shipped_at")
            delivered = parse_time(row.get("delivered_at", ""), "delivered_at")
            if status == "delivered" and delivered is None:
                raise ValueError("status is delivered but delivered_at is empty")
            if delivered is not None and delivered < shipped:
                raise ValueError("delivered_at is before shipped_at")
            g = groups.setdefault((number, tracking), {
                "line": line, "number": number, "tracking": tracking,
                "carrier": row.get("carrier", "")[:64], "status": status, "shipped_at": shipped,
                "delivered_at": delivered,
                "last_scan_at": parse_time(row.get("last_scan_at", ""), "last_scan_at"),
                "items": [], "errors": [],
            })
            sku = row.get("sku", "")
            if not sku:
                raise ValueError("no SKU")
            g["items"].append((line, sku, parse_int(row.get("quantity", ""), "quantity", minimum=1)))
        except ValueError as e:
            report.skipped_rows.append(RowError(line, str(e)))
    with import_session(engine, preview) as s:
        numbers = {g["number"] for g in groups.values()}
        orders = {o.order_number: o for o in s.scalars(
            select(Order).where(Order.order_number.in_(list(numbers)))
            .options(selectinload(Order.line_items),
                     selectinload(Order.shipments).selectinload(Shipment.items))
        )} if numbers else {}
        for g in groups.values():
            err = _apply_shipment(s, orders.get(g["number"]), g, report)
            if err:
                report.skipped_rows.append(err)
        report.skipped_rows.sort(key=lambda e: e.line)
        s.flush()
        report.written = not preview
    return report


def _apply_shipment(s, order: Order | None, g: dict, report: ImportReport) -> RowError | None:
    if order is None:
        return RowError(g["line"], f"order #{g['number']} is not in the portal; import the orders first")
    by_sku: dict[str, LineItem] = {}
    for li in order.line_items:
        if not li.is_protection:
            by_sku.setdefault(li.sku, li)
    wanted: dict[int, int] = {}
    for line, sku, qty in g["items"]:
        li = by_sku.get(sku)
        if li is None:
            return RowError(line, f"order #{g['number']} has no item with SKU {sku}")
        wanted[li.id] = wanted.get(li.id, 0) + qty
    current = next((sh for sh in order.shipments if sh.tracking_number == g["tracking"]), None)
    # Quantities across this order's shipments may not exceed what was ordered.
    for li_id, qty in wanted.items():
        li = next(li for li in order.line_items if li.id == li_id)
        elsewhere = sum(si.quantity for sh in order.shipments if sh is not current
                        and sh.source != "export" and not sh.is_replacement
                        for si in sh.items if si.line_item_id == li_id)
        if elsewhere + qty > li.quantity:
            return RowError(g["line"], f"shipments of order #{g['number']} would carry "
                                       f"{elsewhere + qty} of {li.sku or li.name}, but only "
                                       f"{li.quantity} were ordered")
    derived = [sh for sh in order.shipments if sh.source == "export"]
    for sh in derived:  # the shipments file replaces the stand-in made from "Fulfilled at"
        if _has_claims(s, sh):
            return RowError(g["line"], f"order #{g['number']} already has a claim on its shipment; "
                                       "its shipments can't be replaced")
    for sh in derived:
        order.shipments.remove(sh)
        s.delete(sh)
    s.flush()
    fields = dict(carrier=g["carrier"], status=g["status"], shipped_at=g["shipped_at"],
                  delivered_at=g["delivered_at"], last_scan_at=g["last_scan_at"])
    if tracking.is_live(s, g["tracking"]):  # a carrier feed reports it: its news outranks a file
        for k in ("status", "delivered_at", "last_scan_at"):
            fields.pop(k)
    if current is None:
        order.shipments.append(Shipment(
            tracking_number=g["tracking"], source=g.get("source", "import"),
            external_id=g.get("external_id"),
            items=[ShipmentItem(line_item_id=k, quantity=v) for k, v in wanted.items()], **fields))
        s.flush()
        tracking.apply_to_shipments(s, g["tracking"])  # carrier events that arrived first
        track17_registration.queue(s, g["tracking"], g["carrier"])  # with a 17TRACK API key
        report.created += 1
        return None
    changed = False
    for k, v in fields.items():
        if getattr(current, k) != v:
            setattr(current, k, v)
            changed = True
    have = {si.line_item_id: si for si in current.items}
    for li_id, qty in wanted.items():
        si = have.get(li_id)
        if si is None:
            current.items.append(ShipmentItem(line_item_id=li_id, quantity=qty))
            changed = True
        elif si.quantity != qty:
            si.quantity = qty
            changed = True
    if g.get("external_id") and current.external_id != g["external_id"]:
        current.external_id = g["external_id"]
    if changed:
        report.updated += 1
    else:
        report.unchanged += 1
    return None


def _has_claims(s, sh: Shipment) -> bool:
    ids = [si.id for si in sh.items]
    return bool(ids) and s.scalars(
        select(ClaimItem.id).where(ClaimItem.shipment_item_id.in_(ids)).limit(1)
    ).first() is not None


# --- stock --------------------------------------------------------------------------------------

def import_stock(engine: Engine, data: bytes | str, *, preview: bool = False) -> ImportReport:
    report = ImportReport("stock")
    values: dict[str, tuple[int, int]] = {}
    for line, row, problem in _rows(data, ["sku", "on_hand"], "stock"):
        report.rows += 1
        if problem:
            report.skipped_rows.append(RowError(line, problem))
            continue
        sku = row.get("sku", "")[:100]
        try:
            if not sku:
                raise ValueError("no SKU")
            values[sku] = (line, parse_int(row.get("on_hand", ""), "on_hand", minimum=0))
        except ValueError as e:
            report.skipped_rows.append(RowError(line, str(e)))
    with import_session(engine, preview) as s:
        have = {st.sku: st for st in s.scalars(select(Stock).where(Stock.sku.in_(list(values))))} \
            if values else {}
        for sku, (_line, qty) in values.items():
            st = have.get(sku)
            if st is None:
                s.add(Stock(sku=sku, on_hand=qty))
                report.created += 1
            elif st.on_hand != qty:
                st.on_hand = qty
                report.updated += 1
            else:
                report.unchanged += 1
        s.flush()
        report.written = not preview
    return report


# --- the same orders and shipments from Shopify's webhooks (JSON) --------------------------------

class PayloadError(ValueError):
    """A webhook body that isn't the shape Shopify documents (``str(e)`` says what is wrong)."""


def _text(value, limit: int) -> str:
    return value.strip()[:limit] if isinstance(value, str) else ("" if value is None else str(value)[:limit])


def _money(value, what: str, currency: str = "USD") -> int:
    if isinstance(value, dict):  # a MoneyBag: {"shop_money": {"amount": "1.00", ...}}
        value = (value.get("shop_money") or {}).get("amount")
    if value is None or value == "":
        return 0
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise PayloadError(f"{what} is not an amount")
    try:
        return parse_money(str(value), what, currency)
    except ValueError as e:
        raise PayloadError(str(e))


def _time(value, what: str) -> datetime | None:
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise PayloadError(f"{what} is not a date and time")
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise PayloadError(f"{what} “{value[:40]}” is not an ISO 8601 date and time")
    return (dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)).astimezone(timezone.utc)


def _refunds_of(items, currency: str = "USD") -> dict[str, int]:
    """{refund id: cents} from Shopify refund objects (successful refund transactions only),
    leaving out the refunds this portal's write-back made (a claim's own refund is not money
    "refunded outside the claim")."""
    out: dict[str, int] = {}
    for r in items if isinstance(items, list) else []:
        if not isinstance(r, dict) or r.get("id") is None:
            continue
        if SHOP_MARKER.search(str(r.get("note") or "")):
            continue
        cents = sum(_money(t.get("amount"), "Refund amount", currency)
                    for t in (r.get("transactions") or []) if isinstance(t, dict)
                    and t.get("kind") == "refund" and t.get("status") in ("success", None))
        out[_text(r["id"], 64)] = cents
    return out


def parse_shopify_order(payload: dict, protection_pattern: str) -> _ParsedOrder:
    """A Shopify order (the body of ``orders/create``, ``orders/updated``, ``orders/cancelled``)
    read into the same shape as one order of the CSV export."""
    if not isinstance(payload, dict):
        raise PayloadError("the body is not a JSON object")
    number = domain.normalize_order_number(_text(payload.get("name") or payload.get("order_number"), 64))
    if not number:
        raise PayloadError("the order has no name or order_number")
    customer = payload.get("customer") if isinstance(payload.get("customer"), dict) else {}
    email = domain.normalize_email(_text(payload.get("email") or payload.get("contact_email")
                                         or customer.get("email"), 254))
    if "@" not in email:
        raise PayloadError(f"order {number} has no customer email")
    created = _time(payload.get("created_at"), "created_at")
    if created is None:
        raise PayloadError(f"order {number} has no created_at")
    ship = payload.get("shipping_address") if isinstance(payload.get("shipping_address"), dict) else {}
    shipping_lines = [x for x in payload.get("shipping_lines") or [] if isinstance(x, dict)]
    name = _text(ship.get("name"), 200) or " ".join(
        p for p in (_text(customer.get("first_name"), 100), _text(customer.get("last_name"), 100)) if p)
    risk = payload.get("risk_level") or payload.get("riskLevel") or (
        (payload.get("risk") or {}).get("recommendation") if isinstance(payload.get("risk"), dict) else "")
    po = _ParsedOrder(number, 0)
    currency = (_text(payload.get("currency"), 3) or "USD").upper()
    po.fields = {
        "name": _text(payload.get("name"), 64) or f"#{number}",
        "email": email,
        "customer_name": name,
        "created_at": created,
        "financial_status": _text(payload.get("financial_status"), 32) or "pending",
        "fulfillment_status": _text(payload.get("fulfillment_status"), 32) or "unfulfilled",
        "fulfilled_at": None,  # shipments come from fulfillments
        "cancelled_at": _time(payload.get("cancelled_at"), "cancelled_at"),
        "currency": currency,
        "subtotal_cents": _money(payload.get("subtotal_price"), "subtotal_price", currency),
        "shipping_cents": (_money(payload["total_shipping_price_set"], "total_shipping_price_set",
                                  currency)
                           if payload.get("total_shipping_price_set") else
                           sum(_money(x.get("price"), "shipping price", currency)
                               for x in shipping_lines)),
        "tax_cents": _money(payload.get("total_tax"), "total_tax", currency),
        "total_cents": _money(payload.get("total_price"), "total_price", currency),
        "shipping_method": _text(shipping_lines[0].get("title"), 100) if shipping_lines else "",
        "shipping_address1": _text(ship.get("address1"), 200),
        "shipping_city": _text(ship.get("city"), 100),
        "shipping_zip": _text(ship.get("zip"), 20),
        "shipping_province": _text(ship.get("province_code") or ship.get("province"), 100),
        "shipping_country": _text(ship.get("country_code"), 2).upper(),
        "external_id": _text(payload.get("id"), 64) or None,
        "risk_level": risk_level(risk),
        "refunds": _refunds_of(payload.get("refunds"), currency),
        "source_updated_at": _time(payload.get("updated_at"), "updated_at"),
    }
    is_protection = protection_matcher(protection_pattern)
    items = payload.get("line_items")
    if not isinstance(items, list) or not items:
        raise PayloadError(f"order {number} has no line_items")
    for i, li in enumerate(items, start=1):
        if not isinstance(li, dict):
            raise PayloadError(f"line item {i} of order {number} is not an object")
        title = _text(li.get("name") or li.get("title"), 300)
        sku = _text(li.get("sku"), 100)
        qty = li.get("quantity")
        if isinstance(qty, bool) or not isinstance(qty, int) or qty < 0:
            raise PayloadError(f"line item {i} of order {number} has no whole quantity")
        if not title:
            raise PayloadError(f"line item {i} of order {number} has no name")
        price = _money(li.get("price"), "price", currency)
        discount = _money(li.get("total_discount"), "total_discount", currency)
        po.lines.append(_ParsedLine(
            line=i, sku=sku, name=title, quantity=qty, unit_price_cents=price,
            discount_cents=min(discount, price * qty),
            requires_shipping=li.get("requires_shipping") is not False,
            fulfilled=li.get("fulfillment_status") == "fulfilled",
            is_protection=is_protection(title, sku)))
    return po


def upsert_shopify_order(s, payload: dict, protection_pattern: str,
                         now: datetime) -> tuple[Order, bool | None]:
    """Create or update the order of a Shopify order webhook: the CSV importer's own upsert.
    Returns (order, created); created is None when the payload is older than what is stored
    (Shopify doesn't promise order of delivery) and nothing was changed."""
    po = parse_shopify_order(payload, protection_pattern)
    order = s.scalars(select(Order).where(Order.order_number == po.number)
                      .options(selectinload(Order.line_items),
                               selectinload(Order.shipments).selectinload(Shipment.items))).first()
    created = order is None
    changed_at = po.fields.pop("source_updated_at")
    if order is not None and order.source_updated_at and changed_at \
            and changed_at < order.source_updated_at:
        return order, None  # an older update arriving late: what is stored is newer
    _upsert_order(s, order, po, now)
    s.flush()
    order = s.scalars(select(Order).where(Order.order_number == po.number)).one()
    if changed_at:
        order.source_updated_at = changed_at
    if created:
        order.source = "shopify"
    return order, created


def order_by_shopify_id(s, shopify_order_id) -> Order | None:
    ext = _text(shopify_order_id, 64)
    if not ext:
        return None
    return s.scalars(select(Order).where(Order.external_id == ext)
                     .options(selectinload(Order.line_items),
                              selectinload(Order.shipments).selectinload(Shipment.items))).first()


def apply_shopify_fulfillment(s, order: Order, payload: dict) -> str:
    """A Shopify fulfillment (``fulfillments/create``/``update``) as a shipment of ``order``,
    through the shipments importer's own rules. Returns "" or why nothing was written."""
    numbers = carrier_feeds.shopify_tracking_numbers(payload)
    tracking_number = domain.normalize_tracking(numbers[0]) if numbers else ""
    if not tracking_number:
        return "the fulfillment has no tracking number yet"
    if payload.get("status") in carrier_feeds.DEAD_FULFILLMENT_STATUSES:
        return f"the fulfillment is {payload.get('status')}"
    shipped = _time(payload.get("created_at"), "created_at")
    if shipped is None:
        raise PayloadError("the fulfillment has no created_at")
    by_id = next((sh for sh in order.shipments
                  if payload.get("id") is not None and sh.external_id == _text(payload.get("id"), 64)),
                 None)
    if by_id is not None and by_id.tracking_number != tracking_number:
        if _has_claims(s, by_id):
            return (f"the fulfillment's tracking number changed to {tracking_number}, but its "
                    "shipment already has a claim: change it in the portal")
        by_id.tracking_number = tracking_number  # a corrected tracking number
        track17_registration.queue(s, tracking_number, by_id.carrier)
        s.flush()
    names = {li.name: li.sku for li in order.line_items}
    items = []
    for i, li in enumerate(payload.get("line_items") or [], start=1):
        if not isinstance(li, dict):
            raise PayloadError(f"line item {i} of the fulfillment is not an object")
        sku = _text(li.get("sku"), 100) or names.get(_text(li.get("name") or li.get("title"), 300), "")
        qty = li.get("quantity")
        if isinstance(qty, bool) or not isinstance(qty, int) or qty < 1:
            raise PayloadError(f"line item {i} of the fulfillment has no whole quantity")
        items.append((i, sku, qty))
    items = [it for it in items if not any(li.is_protection and li.sku == it[1] for li in order.line_items)]
    if not items:
        return "the fulfillment carries no shippable items"
    existing = next((sh for sh in order.shipments if sh.tracking_number == tracking_number), None)
    g = {"line": 1, "number": order.order_number, "tracking": tracking_number,
         "carrier": _text(payload.get("tracking_company"), 64),
         "status": existing.status if existing else "fulfilled", "shipped_at": shipped,
         "delivered_at": existing.delivered_at if existing else None,
         "last_scan_at": existing.last_scan_at if existing else None,
         "items": items, "source": "shopify", "external_id": _text(payload.get("id"), 64) or None}
    err = _apply_shipment(s, order, g, ImportReport("shipments"))
    if err is not None:
        raise PayloadError(err.reason)
    return ""


def apply_shopify_refund(s, order: Order, payload: dict) -> None:
    """A Shopify refund (``refunds/create``) on ``order``."""
    if payload.get("id") is None:
        raise PayloadError("the refund has no id")
    known = {r.external_id: r.amount_cents for r in s.scalars(
        select(OrderRefund).where(OrderRefund.order_id == order.id, OrderRefund.external_id != "export"))}
    known.update(_refunds_of([payload], order.currency))
    record_refunds(s, order, known)


# --- the same orders from the REST API (PUT /api/v1/orders/{number}) -------------------------------

def upsert_api_order(s, number: str, data: dict, now: datetime) -> tuple[Order, bool, int]:
    """An order and its shipments as the API sends them (already type-checked), through the
    importers' own upserts. Returns (order, created, shipments in the request)."""
    normalized = domain.normalize_order_number(number)
    if not normalized or len(normalized) > 60:
        raise PayloadError("the order number is empty or too long")
    email = domain.normalize_email(data["email"])
    if "@" not in email:
        raise PayloadError("email is not an email address")
    po = _ParsedOrder(normalized, 0)
    lines = data["line_items"]
    address = data.get("shipping_address") or {}
    po.fields = {
        "name": f"#{normalized}", "email": email[:254],
        "customer_name": (data.get("customer_name") or "")[:200],
        "created_at": data["created_at"], "financial_status": "paid",
        "fulfillment_status": "fulfilled" if data.get("shipments") else "unfulfilled",
        "fulfilled_at": None, "cancelled_at": data.get("cancelled_at"),
        "currency": (data.get("currency") or "USD")[:3].upper(),
        "subtotal_cents": sum(li["unit_price_cents"] * li["quantity"] for li in lines),
        "shipping_cents": 0, "tax_cents": 0, "total_cents": data["total_cents"],
        "shipping_method": "",
        "shipping_address1": (address.get("address1") or "")[:200],
        "shipping_city": (address.get("city") or "")[:100],
        "shipping_zip": (address.get("zip") or "")[:20],
        "shipping_province": (address.get("province") or "")[:100],
        "shipping_country": (address.get("country_code") or "")[:2].upper(),
        "external_id": None, "risk_level": "",
    }
    for i, li in enumerate(lines, start=1):
        po.lines.append(_ParsedLine(line=i, sku=li["sku"][:100], name=li["name"][:300],
                                    quantity=li["quantity"], unit_price_cents=li["unit_price_cents"],
                                    discount_cents=0, requires_shipping=True, fulfilled=False,
                                    is_protection=False))
    if data.get("protection_fee_cents"):
        po.lines.append(_ParsedLine(line=len(lines) + 1, sku="SHIP-PROTECT", name="Shipping Protection",
                                    quantity=1, unit_price_cents=data["protection_fee_cents"],
                                    discount_cents=0, requires_shipping=False, fulfilled=False,
                                    is_protection=True))
    order = s.scalars(select(Order).where(Order.order_number == normalized)
                      .options(selectinload(Order.line_items),
                               selectinload(Order.shipments).selectinload(Shipment.items))).first()
    created = order is None
    _upsert_order(s, order, po, now)
    s.flush()
    order = s.scalars(select(Order).where(Order.order_number == normalized)
                      .options(selectinload(Order.line_items),
                               selectinload(Order.shipments).selectinload(Shipment.items))).one()
    if created:
        order.source = "api"
    shipments = data.get("shipments") or []
    for i, sh in enumerate(shipments, start=1):
        tracking_number = domain.normalize_tracking(sh["tracking_number"])
        if not tracking_number:
            raise PayloadError(f"shipment {i} has no tracking number")
        g = {"line": i, "number": normalized, "tracking": tracking_number,
             "carrier": (sh.get("carrier") or "")[:64], "status": sh.get("status") or "in_transit",
             "shipped_at": sh["shipped_at"], "delivered_at": sh.get("delivered_at"),
             "last_scan_at": sh.get("delivered_at"),
             "items": [(i, it["sku"], it["quantity"]) for it in sh["items"]], "source": "api"}
        if g["status"] not in domain.SHIPMENT_STATUSES:
            raise PayloadError(f"shipment {i}: status is one of {', '.join(domain.SHIPMENT_STATUSES)}")
        if g["status"] == "delivered" and g["delivered_at"] is None:
            raise PayloadError(f"shipment {i}: a delivered shipment needs delivered_at")
        err = _apply_shipment(s, order, g, ImportReport("shipments"))
        if err is not None:
            raise PayloadError(f"shipment {i}: {err.reason}")
    return order, created, len(shipments)
