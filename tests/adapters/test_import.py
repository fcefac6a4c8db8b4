"""Importing the Shopify orders export, shipments and stock."""
import csv
from pathlib import Path

import pytest
from sqlalchemy import func, select

from claims_core.adapters import importer
from claims_core.infra.db import write_session
from claims_core.infra.models import LineItem, Order, Shipment, ShipmentItem, Stock
from claims_core.services import order_views

from tests.conftest import NOW

# A small Shopify orders export kept with the tests, so a fresh clone of the repo alone passes.
SAMPLE = Path(__file__).resolve().parents[1] / "fixtures" / "shopify_orders_export.csv"


def counts(engine):
    with write_session(engine) as s:
        c = lambda q: s.scalar(q)  # noqa: E731
        return {
            "orders": c(select(func.count()).select_from(Order)),
            "protected": c(select(func.count()).select_from(Order)
                           .where(Order.protection_purchased_at.is_not(None))),
            "line_items": c(select(func.count()).select_from(LineItem)),
            "shipments": c(select(func.count()).select_from(Shipment)),
            "claimable_lines": c(
                select(func.count()).select_from(ShipmentItem)
                .join(Shipment, Shipment.id == ShipmentItem.shipment_id)
                .join(Order, Order.id == Shipment.order_id)
                .join(LineItem, LineItem.id == ShipmentItem.line_item_id)
                .where(Order.protection_purchased_at.is_not(None), Order.cancelled_at.is_(None),
                       LineItem.is_protection.is_(False))),
            "claimable_units": c(
                select(func.coalesce(func.sum(ShipmentItem.quantity), 0))
                .join(Shipment, Shipment.id == ShipmentItem.shipment_id)
                .join(Order, Order.id == Shipment.order_id)
                .where(Order.protection_purchased_at.is_not(None), Order.cancelled_at.is_(None))),
        }


def expected_from_sample():
    """The same figures worked out straight from the CSV, independently of the importer."""
    rows = list(csv.DictReader(SAMPLE.open(encoding="utf-8-sig", newline="")))
    orders, protected, claimable_lines, claimable_units = {}, set(), 0, 0
    for r in rows:
        orders.setdefault(r["Name"], r)
        if "protect" in r["Lineitem name"].lower() or r["Lineitem sku"] == "SHIP-PROTECT":
            protected.add(r["Name"])
    for r in rows:
        first = orders[r["Name"]]
        if (r["Name"] in protected and first["Fulfilled at"] and not first["Cancelled at"]
                and r["Lineitem requires shipping"] == "true"
                and r["Lineitem fulfillment status"] == "fulfilled"
                and r["Lineitem sku"] != "SHIP-PROTECT"):
            claimable_lines += 1
            claimable_units += int(r["Lineitem quantity"])
    return len(orders), len(protected), claimable_lines, claimable_units, len(rows)


def test_sample_import_figures(engine):
    report = importer.import_orders(engine, SAMPLE.read_bytes())
    assert report.ok and report.rows == 59 and report.created == 25
    got = counts(engine)
    n_orders, n_protected, n_lines, n_units, n_rows = expected_from_sample()
    assert (got["orders"], got["protected"]) == (n_orders, n_protected) == (25, 17)
    assert (got["claimable_lines"], got["claimable_units"]) == (n_lines, n_units) == (22, 47)
    assert got["line_items"] == n_rows == 59
    # every fulfilled order with something to ship gets one from "Fulfilled at" (23 fulfilled;
    # #1019 and #1021 hold only gift cards)
    assert got["shipments"] == 21


def test_sample_details(engine, now):
    importer.import_orders(engine, SAMPLE.read_bytes())
    with write_session(engine) as s:
        o = s.scalars(select(Order).where(Order.order_number == "1002")).one()
        assert o.email == "o'brien.1002@example.com" and o.customer_name == "O'Brien, Pat"
        assert o.total_cents == 15007 and o.protection_fee_cents == 195
        assert o.shipments[0].shipped_at.isoformat() == "2026-11-10T23:33:00+00:00"  # -0500 → UTC
        gift = s.scalars(select(LineItem).where(LineItem.sku == "GIFT-50")).first()
        assert not gift.requires_shipping
        unfulfilled = s.scalars(select(Order).where(Order.order_number == "1001")).one()
        assert unfulfilled.shipments == []
    view = order_views._lookup_order(engine, "#1001", "SAM.1001@EXAMPLE.COM", now=NOW)
    assert view.protected and not view.claimable and "hasn't shipped" in str(view.reason)
    assert not order_views._lookup_order(engine, "1005", "maría.1005@example.com", now=NOW).protected


def test_reimport_changes_no_counts(engine):
    importer.import_orders(engine, SAMPLE.read_bytes())
    before = counts(engine)
    report = importer.import_orders(engine, SAMPLE.read_bytes())
    assert counts(engine) == before
    assert (report.created, report.updated, report.unchanged) == (0, 0, 25)


def test_reimport_updates_changed_fields(engine):
    importer.import_orders(engine, SAMPLE.read_bytes())
    text = SAMPLE.read_text(encoding="utf-8").replace("sam.1001@example.com", "sam.new@example.com")
    report = importer.import_orders(engine, text.encode())
    assert report.updated == 1 and counts(engine)["orders"] == 25
    with write_session(engine) as s:
        assert s.scalars(select(Order.email).where(Order.order_number == "1001")).one() == \
            "sam.new@example.com"


def test_preview_writes_nothing(engine):
    report = importer.import_orders(engine, SAMPLE.read_bytes(), preview=True)
    assert report.created == 25 and not report.written
    assert counts(engine)["orders"] == 0


HEADER = ("Name,Email,Financial Status,Fulfillment Status,Fulfilled at,Currency,Total,Created at,"
          "Lineitem quantity,Lineitem name,Lineitem price,Lineitem sku,Lineitem requires shipping,"
          "Lineitem fulfillment status,Cancelled at,Notes\n")


def test_bom_and_quoted_newlines(engine):
    body = (HEADER +
            '#2001,a@example.com,paid,fulfilled,2026-11-01 10:00:00 -0500,USD,50.00,'
            '2026-10-31 10:00:00 -0500,1,"Mug,\nlarge",45.00,MUG,true,fulfilled,,"note\nwith lines"\n'
            '#2001,,,,,,,,1,Shipping Protection,5.00,SHIP-PROTECT,false,fulfilled,,\n')
    report = importer.import_orders(engine, ("\ufeff" + body).encode("utf-8"))
    assert report.ok, report.skipped_rows
    with write_session(engine) as s:
        o = s.scalars(select(Order)).one()
        assert o.order_number == "2001" and o.is_protected
        assert [li.name for li in o.line_items] == ["Mug,\nlarge", "Shipping Protection"]


def test_malformed_rows_reported_with_line_and_reason(engine):
    body = (HEADER +
            "#3001,a@example.com,paid,fulfilled,2026-11-01 10:00,USD,50.00,2026-10-31 10:00,"
            "two,Mug,45.00,MUG,true,fulfilled,,\n"  # line 2: bad quantity
            "#3001,,,,,,,,1,Shipping Protection,5.00,SHIP-PROTECT,false,fulfilled,,\n"  # line 3
            "#3002,,paid,fulfilled,2026-11-01 10:00,USD,50.00,2026-10-31 10:00,"
            "1,Mug,45.00,MUG,true,fulfilled,,\n"  # line 4: no email on the first row
            "#3003,c@example.com,paid,fulfilled,yesterday,USD,50.00,2026-10-31 10:00,"
            "1,Mug,45.00,MUG,true,fulfilled,,\n"  # line 5: bad date
            "#3004,d@example.com,paid,fulfilled,2026-11-01 10:00,USD,50.00,2026-10-31 10:00,"
            "1,Mug,abc,MUG,true,fulfilled,,\n"  # line 6: bad price
            ",e@example.com,paid,fulfilled,2026-11-01 10:00,USD,50.00,2026-10-31 10:00,"
            "1,Mug,4.00,MUG,true,fulfilled,,\n"  # line 7: no order number
            "#3005,f@example.com,paid,fulfilled,2026-11-01 10:00,USD,50.00,2026-10-31 10:00,"
            "1,Mug,45.00,MUG,true,fulfilled,,\n")  # line 8: fine
    report = importer.import_orders(engine, body.encode())
    lines = {e.line: e.reason for e in report.skipped_rows}
    assert set(lines) == {2, 4, 5, 6, 7}
    assert "Lineitem quantity" in lines[2] and "email" in lines[4]
    assert "Fulfilled at" in lines[5] and "Lineitem price" in lines[6] and "order number" in lines[7]
    assert any("#3001" in n for n in report.notes)
    with write_session(engine) as s:  # the order with a bad line is not half-written
        assert s.scalars(select(Order.order_number)).all() == ["3005"]
        assert s.scalar(select(func.count()).select_from(LineItem)) == 1


def test_cancelled_orders_cannot_be_claimed(engine):
    body = (HEADER +
            "#4001,a@example.com,refunded,fulfilled,2026-11-10 10:00,USD,50.00,2026-11-09 10:00,"
            "1,Mug,45.00,MUG,true,fulfilled,2026-11-09 12:00,\n"
            "#4001,,,,,,,,1,Shipping Protection,5.00,SHIP-PROTECT,false,fulfilled,,\n")
    importer.import_orders(engine, body.encode())
    view = order_views._lookup_order(engine, "4001", "a@example.com", now=NOW)
    assert not view.claimable and "cancelled" in str(view.reason)


def test_protection_pattern_is_configurable(engine):
    body = (HEADER +
            "#5001,a@example.com,paid,fulfilled,2026-11-10 10:00,USD,50.00,2026-11-09 10:00,"
            "1,Mug,45.00,MUG,true,fulfilled,,\n"
            "#5001,,,,,,,,1,Colis Garanti,5.00,GARANTIE,false,fulfilled,,\n")
    importer.import_orders(engine, body.encode())
    with write_session(engine) as s:
        assert not s.scalars(select(Order)).one().is_protected
    importer.import_orders(engine, body.encode(), protection_pattern=r"garant")
    with write_session(engine) as s:
        o = s.scalars(select(Order)).one()
        assert o.is_protected and o.protection_fee_cents == 500
        assert [li.is_protection for li in o.line_items] == [False, True]


@pytest.mark.parametrize("data,msg", [
    (b"", "empty"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00", "binary"),
    (b"sku,on_hand\nA,1\n", "header is missing"),
])
def test_whole_file_errors(engine, data, msg):
    with pytest.raises(importer.ImportFileError, match=msg):
        importer.import_orders(engine, data)
    assert counts(engine)["orders"] == 0


def test_shipments_csv(engine, now):
    importer.import_orders(engine, SAMPLE.read_bytes())
    body = ("order,tracking_number,carrier,shipped_at,delivered_at,status,last_scan_at,sku,quantity\n"
            "#1003,1Z111,UPS,2026-11-10 10:00,2026-11-12 10:00,delivered,2026-11-12 10:00,TOTE-CNV,3\n"
            "#1003,9400222,USPS,2026-11-11 10:00,,in_transit,2026-11-11 12:00,SOCK-CH-M,3\n"
            "#1003,9400333,USPS,2026-11-11 10:00,,in_transit,,SOCK-CH-M,1\n"  # too many socks
            "#9999,1Z999,UPS,2026-11-10 10:00,,in_transit,,MUG,1\n"  # unknown order
            "#1002,1Z222,UPS,2026-11-10 10:00,,flying,,TR2-NV-10,1\n"  # bad status
            "#1002,1Z333,UPS,2026-11-10 10:00,,in_transit,,NOPE,1\n")  # unknown SKU
    report = importer.import_shipments(engine, body.encode())
    assert report.created == 2
    assert {e.line for e in report.skipped_rows} == {4, 5, 6, 7}
    view = order_views._lookup_order(engine, "1Z111", "zoë.1003@example.com", now=NOW)
    assert [s.tracking_number for s in view.shipments] == ["1Z111", "9400222"]  # replaced the stand-in
    assert "damaged" in view.shipments[0].issue_types
    assert view.shipments[1].issue_types == ("delayed", "lost")
    again = importer.import_shipments(engine, body.encode())
    assert again.created == 0 and again.unchanged == 2
    with write_session(engine) as s:
        assert s.scalar(select(func.count()).select_from(Shipment)
                        .join(Order).where(Order.order_number == "1003")) == 2


def test_stock_csv(engine):
    report = importer.import_stock(engine, b"sku,on_hand\nMUG,4\nTOTE,x\n,3\nLAMP,0\n")
    assert report.created == 2 and [e.line for e in report.skipped_rows] == [3, 4]
    importer.import_stock(engine, b"sku,on_hand\nMUG,7\n")
    with write_session(engine) as s:
        assert s.get(Stock, "MUG").on_hand == 7 and s.get(Stock, "LAMP").on_hand == 0
