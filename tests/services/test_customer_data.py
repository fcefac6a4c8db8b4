"""A customer's personal data (issue #24): the one map of where it lives, export, erasure."""
from __future__ import annotations

import hashlib
import io
import json
import zipfile
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import JSON, LargeBinary, String, func, select, text, update
from sqlalchemy.exc import DBAPIError

from claims_core import domain
from claims_core.adapters import inbound_webhooks, outbound_webhooks
from claims_core.domain.errors import ErrorCode
from claims_core.infra import migrate, personal_data, rollups
from claims_core.infra.db import make_engine, read_session, utcnow, write_session
from claims_core.infra.models import (
    Base, Claim, CustomerErasure, Event, EventNote, Evidence, InboundMail, Order, OutboxMessage,
    Tracking, WebhookDelivery,
)
from claims_core.services import (analytics, claim_review, customer, customer_data, decisions,
                                  drafts)
from claims_core.services import settings as store_settings

from tests.support.factories import claim_request, jpeg_bytes, make_order
from tests.adapters.test_live_feeds import SHOPIFY_SECRET, post_shopify, shopify_order  # noqa: F401
from tests.adapters.test_live_feeds import client, secrets_set  # noqa: F401  (fixtures)
from tests.pages.test_staff_app import app  # noqa: F401  (the staff AppTest fixture)

EMAIL = "sam.jones@example.com"
NAME = "Sam Jones"
PHONE = "+1 555 010 7788"
STREET = "42 Wallaby Way"


# --- the map ------------------------------------------------------------------------------------

def test_every_text_bytes_and_json_column_of_every_table_is_classified():
    missing = [f"{t.name}.{c.name}" for t in Base.metadata.sorted_tables for c in t.columns
               if isinstance(c.type, (String, LargeBinary, JSON))
               and personal_data.classification(t.name, c.name) is None]
    assert not missing, f"classify these in claims_core/infra/personal_data.py: {missing}"
    columns = {(t.name, c.name) for t in Base.metadata.sorted_tables for c in t.columns}
    personal = {(p.table, p.column) for p in personal_data.PERSONAL}
    not_personal = {(t, c) for t, cols in personal_data.NOT_PERSONAL.items() for c in cols}
    assert personal & not_personal == set(), "classified both ways"
    named = personal | not_personal
    assert named <= columns, f"the map names columns that don't exist: {named - columns}"


def test_erasure_changes_no_column_the_analytics_roll_ups_read():
    read = rollups.read_columns()
    touched = [(p.table, p.column) for p in personal_data.places()
               if p.column in read.get(p.table, ())]
    assert touched == []


def test_a_new_unclassified_column_is_caught(monkeypatch):
    monkeypatch.setitem(personal_data.NOT_PERSONAL, "orders",
                        {k: v for k, v in personal_data.NOT_PERSONAL["orders"].items()
                         if k != "shipping_method"})
    assert personal_data.classification("orders", "shipping_method") is None


# --- building a customer with everything --------------------------------------------------------

def _customer(engine, client, *, number="1001"):
    """A customer with claims, photos, a drawn signature, messages both ways, a staff note that
    names them, a Shopify webhook, an outbound webhook delivery, a draft, inbound mail and a
    carrier's proof of delivery."""
    webhook_endpoints_allow(engine)
    outbound_webhooks.add_endpoint(engine, "http://127.0.0.1:9/hook",
                                   list(domain.webhook_targets.EVENT_TYPES), "owner:o",
                                   resolver=lambda _h: ["127.0.0.1"])
    body = shopify_order(number="5001", order_id=991001, email=EMAIL.upper())
    body.update(phone=PHONE, browser_ip="203.0.113.9",
                customer={"id": 7001, "email": EMAIL, "first_name": "Sam", "last_name": "Jones",
                          "phone": PHONE},
                billing_address={"name": NAME, "address1": STREET, "city": "Sydney",
                                 "zip": "2000", "country_code": "AU", "phone": PHONE})
    body["shipping_address"].update(name=NAME, address1=STREET)
    assert post_shopify(client, "orders/create", body, webhook_id="wh-sam").status_code == 200
    inbound_webhooks.apply_pending_receipts(engine)

    built = make_order(engine, number, EMAIL, base=utcnow())
    with write_session(engine) as s:
        s.execute(update(Order).where(Order.id == built.order_id).values(
            shipping_address1=STREET, shipping_city="Sydney", shipping_zip="2000",
            shipping_province="NSW", shipping_country="AU"))
        s.add(Tracking(tracking_number=f"TRK{number}X0", carrier="UPS", pod_signed_by=NAME,
                       pod_location=f"Front door, {STREET}"))
    raw_photo = jpeg_bytes(seed=7)
    r = customer.file_claim(engine, claim_request(
        built, key=f"k{number}", photos=[("sam-box.jpg", raw_photo)],
        description=f"Crushed. Call me on {PHONE}, {NAME}."))
    decisions.request_info(engine, r.claim_id, "staff:ana", "Ana",
                           f"Hi {NAME}, could you send one more photo?")
    customer.add_customer_message(engine, r.access_token, f"Here you go. {NAME}, {STREET}",
                                  [("more.jpg", jpeg_bytes(seed=9))])
    decisions.staff_message(engine, r.claim_id, "staff:ana", "Ana",
                            f"Spoke to Sam Jones on {PHONE}; lives at {STREET}, "
                            f"mail {EMAIL}", internal=True)
    with read_session(engine) as s:
        eid = s.scalars(select(Evidence.id).where(Evidence.claim_id == r.claim_id)).first()
    claim_review.review_photo(engine, r.claim_id, eid, "staff:ana", "accepted",
                              note=f"Matches what {NAME} described")
    with write_session(engine) as s:
        s.add(InboundMail(message_id=f"<m{number}@mail.example>", from_addr=EMAIL,
                          subject=f"From {NAME}", status="unmatched", reason="no_match",
                          body_text=f"My phone is {PHONE}", raw=raw_photo))
    other = make_order(engine, str(int(number) + 1), EMAIL, base=utcnow(), tracking_prefix="D")
    drafts.save_draft(engine, other.order_id, EMAIL, {"description": f"{NAME} at {STREET}"})
    decisions.deny(engine, r.claim_id, "staff:ana", next(iter(domain.DENIAL_LABELS)),
                   f"Denied; told {NAME} by phone")
    with read_session(engine) as s:
        photos = [(e.data, e.sha256) for e in s.scalars(
            select(Evidence).where(Evidence.claim_id == r.claim_id))]
    return r, built, raw_photo, photos


def webhook_endpoints_allow(engine):
    from claims_core.services import webhook_endpoints
    webhook_endpoints.allow_private_targets(engine, True, "owner:o")


def _every_value(engine) -> list[tuple[str, str, object]]:
    out = []
    with read_session(engine) as s:
        for t in Base.metadata.sorted_tables:
            for row in s.execute(select(t)).mappings():
                for col, value in row.items():
                    if value is not None:
                        out.append((t.name, col, value))
    return out


def _found(values, needles: list[bytes]) -> list[tuple[str, str, bytes]]:
    hits = []
    for table, col, v in values:
        blob = v if isinstance(v, bytes) else str(v).encode()
        for n in needles:
            if n.lower() in blob.lower():
                hits.append((table, col, n))
    return hits


def _figures(engine):
    wide = analytics.AnalyticsFilter(date(2020, 1, 1), date(2030, 1, 1))
    ops = analytics.operations(engine, wide)
    with read_session(engine) as s:
        tables = {t.name: sorted(tuple(r) for r in s.execute(select(t)))
                  for t in (*(r.table for r in rollups.ROLLUPS),)}
    return (analytics.claim_rates(engine, wide).to_dict(), repr(ops),
            analytics.breakdown(engine, wide, "carrier").to_dict(), tables)


@pytest.fixture
def shop(engine, client, secrets_set):  # noqa: F811
    return _customer(engine, client)


def test_erasure_leaves_no_trace_of_the_customer_anywhere(engine, shop, db_url):
    r, built, raw_photo, photos = shop
    before = _figures(engine)
    needles = [EMAIL.encode(), NAME.encode(), b"Jones", PHONE.encode(), b"555 010 7788",
               STREET.encode(), b"203.0.113.9", raw_photo[100:400],
               *(d[200:500] for d, _sha in photos), *(sha.encode() for _d, sha in photos),
               hashlib.sha256(raw_photo).hexdigest().encode()]
    assert _found(_every_value(engine), [EMAIL.encode()]), "the test data must hold the email"
    assert _found(_every_value(engine), [PHONE.encode()])

    report = customer_data.erase_customer(engine, EMAIL.upper(), actor="staff:owner",
                                          request_ref="REQ-1")
    assert report.claims == 1 and report.orders == 3  # two made here, one from Shopify
    hits = _found(_every_value(engine), needles)
    assert hits == [], hits
    if db_url.startswith("sqlite:///"):  # every file the app wrote beside the database
        folder = Path(db_url.removeprefix("sqlite:///")).parent
        engine.dispose()
        for f in folder.iterdir():
            if f.is_file():
                data = f.read_bytes()
                assert not [n for n in needles if n in data], f.name
    # what stays: the claim's reference, dates, issue, amounts, decision, carrier, country
    with read_session(engine) as s:
        c = s.get(Claim, r.claim_id)
        assert (c.reference, c.status, c.issue_type, c.carrier) == (r.reference, "denied",
                                                                    "damaged", "UPS")
        assert c.claimed_cents == r.claimed_cents and c.order.shipping_country == "AU"
        assert c.description == personal_data.ERASED and c.signature_png is None
        ev = s.scalars(select(Evidence).where(Evidence.claim_id == c.id)).all()
        assert {e.data for e in ev} == {personal_data.placeholder_jpeg()}
        assert {e.phash for e in ev} == {""}  # the store didn't ask to keep fingerprints
        rec = s.scalars(select(CustomerErasure)).one()
        assert (rec.actor, rec.request_ref, rec.claims) == ("staff:owner", "REQ-1", 1)
        assert rec.rows == report.rows > 0 and json.loads(rec.counts)["evidence"] == 2
        assert s.scalars(select(Event).where(Event.action == "customer_erased")).one()
        mails = s.scalars(select(OutboxMessage)).all()
        assert mails and all(m.status != "pending" for m in mails
                             if m.to_addr == personal_data.ERASED)
        assert s.scalars(select(WebhookDelivery)).all()
        assert all(d.payload == personal_data.ERASED_DOCUMENT
                   for d in s.scalars(select(WebhookDelivery)))
    assert _figures(engine) == before  # every analytics figure is the same


def test_an_open_claim_blocks_erasure_until_decided_and_the_customer_then_starts_fresh(engine):
    built = make_order(engine, "3001", EMAIL, base=utcnow())
    r = customer.file_claim(engine, claim_request(built, key="open-1"))
    with pytest.raises(customer_data.OpenClaims) as e:
        customer_data.erase_customer(engine, EMAIL, actor="staff:owner")
    assert e.value.code == ErrorCode.ERASURE_OPEN_CLAIM and r.reference in e.value.message
    with read_session(engine) as s:
        assert s.scalar(select(Claim.email).where(Claim.id == r.claim_id)) == EMAIL
        assert s.scalar(select(func.count()).select_from(CustomerErasure)) == 0
    decisions.close(engine, r.claim_id, "staff:owner")
    customer_data.erase_customer(engine, EMAIL, actor="staff:owner")
    with read_session(engine) as s:
        assert s.scalar(select(func.count()).select_from(Order).where(Order.email == EMAIL)) == 0
    # the same person files again: a fresh start, nothing of the erased claim matches
    again = make_order(engine, "3002", EMAIL, base=utcnow(), tracking_prefix="N")
    r2 = customer.file_claim(engine, claim_request(again, key="open-2"))
    view = claim_review.claim_for_staff(engine, r2.claim_id)
    assert not [sig for sig in view.signals if "email" in sig.label.lower()]
    data = json.loads(zipfile.ZipFile(io.BytesIO(
        customer_data.export_customer(engine, EMAIL))).read("data.json"))
    assert [c["reference"] for c in data["claims"]] == [r2.reference]


def test_erasure_can_be_limited_to_some_orders(engine):
    a = make_order(engine, "4001", EMAIL, base=utcnow())
    b = make_order(engine, "4002", EMAIL, base=utcnow(), tracking_prefix="B")
    customer_data.erase_customer(engine, EMAIL, actor="shopify", order_numbers=["#4001"])
    with read_session(engine) as s:
        assert s.get(Order, a.order_id).email == personal_data.ERASED
        assert s.get(Order, b.order_id).email == EMAIL
        assert s.scalars(select(CustomerErasure.scope)).one() == "orders"


def test_kept_photo_fingerprints_when_the_owner_turns_it_on(engine):
    store_settings.update_settings(engine, "staff:owner", {"keep_photo_hashes": True})
    built = make_order(engine, "4101", EMAIL, base=utcnow())
    r = customer.file_claim(engine, claim_request(built, key="ph"))
    decisions.close(engine, r.claim_id, "staff:owner")
    with read_session(engine) as s:
        ph = s.scalars(select(Evidence.phash).where(Evidence.claim_id == r.claim_id)).one()
    customer_data.erase_customer(engine, EMAIL, actor="staff:owner")
    with read_session(engine) as s:
        e = s.scalars(select(Evidence).where(Evidence.claim_id == r.claim_id)).one()
        assert (e.phash, e.sha256) == (ph, "") and ph


def test_erase_all_customers_for_a_shop_redact(engine):
    for n, mail in (("4201", "a@example.com"), ("4202", "b@example.com")):
        make_order(engine, n, mail, base=utcnow(), tracking_prefix=f"S{n}")
    reports = customer_data.erase_all_customers(engine, actor="shopify", request_ref="shop/redact")
    assert len(reports) == 2
    with read_session(engine) as s:
        assert set(s.scalars(select(Order.email))) == {personal_data.ERASED}


# --- export -------------------------------------------------------------------------------------

def test_export_holds_the_data_photos_signature_and_a_readme_in_the_customers_language(
        engine, shop):
    r, built, _raw, photos = shop
    with write_session(engine) as s:
        s.execute(update(Claim).where(Claim.id == r.claim_id).values(language="de"))
    z = zipfile.ZipFile(io.BytesIO(customer_data.export_customer(engine, " Sam.Jones@Example.com")))
    names = set(z.namelist())
    assert {"README.txt", "data.json", f"signatures/{r.reference}.png"} <= names
    photo_files = sorted(n for n in names if n.startswith("photos/"))
    assert [z.read(n) for n in photo_files] == [d for d, _sha in photos]
    data = json.loads(z.read("data.json"))
    claim = data["claims"][0]
    assert claim["reference"] == r.reference and claim["statement"]["description"].startswith(
        "Crushed")
    assert claim["items"] and claim["decisions"][0]["outcome"] == "denied"
    assert [m["from"] for m in claim["conversation"]] == ["staff", "customer"]
    assert any(NAME in n["body"] for n in claim["staff_notes"])
    assert any(n.get("about") == "note" for n in claim["staff_notes"])  # the photo review's
    assert {o["order"] for o in data["orders"]} >= {"#1001", "#1002", "#5001"}
    assert data["drafts"] and data["emails_to_you"] and data["emails_from_you"]
    assert "Dieses Archiv" in z.read("README.txt").decode()
    z2 = zipfile.ZipFile(io.BytesIO(customer_data.export_customer(
        engine, EMAIL, include_staff_notes=False)))
    assert "staff_notes" not in json.loads(z2.read("data.json"))["claims"][0]


def test_export_of_nobody_is_a_not_found(engine):
    with pytest.raises(customer_data.CustomerNotFound) as e:
        customer_data.export_customer(engine, "nobody@example.com")
    assert e.value.code == ErrorCode.CUSTOMER_NOT_FOUND


# --- the event log --------------------------------------------------------------------------------

def test_staff_free_text_goes_beside_the_event_log_not_into_it(engine):
    built = make_order(engine, "4301", EMAIL, base=utcnow())
    r = customer.file_claim(engine, claim_request(built, key="ev"))
    decisions.close(engine, r.claim_id, "staff:owner")
    with read_session(engine) as s:
        eid = s.scalars(select(Evidence.id).where(Evidence.claim_id == r.claim_id)).first()
    claim_review.review_photo(engine, r.claim_id, eid, "staff:a", "rejected", note=f"{NAME}'s box")
    claim_review.grant_exception(engine, built.order_id, "staff:a", utcnow().date() + timedelta(3),
                                 f"{NAME} was abroad")
    with read_session(engine) as s:
        assert not [e for e in s.scalars(select(Event.details)) if NAME in e]
        assert {n.field for n in s.scalars(select(EventNote))} == {"note", "reason"}
    view = claim_review.claim_for_staff(engine, r.claim_id)
    assert [e.details["note"] for e in view.events if e.action == "photo_reviewed"] == [
        f"{NAME}'s box"]


def test_migration_0022_moves_free_text_out_of_existing_events(fresh_db_url):
    eng = make_engine(fresh_db_url)
    try:
        migrate.upgrade(eng, "0021")
        with eng.begin() as c:
            c.execute(text("INSERT INTO events (actor, at, action, details) VALUES "
                           "('staff:a', '2026-11-01 10:00:00.000000', 'window_exception', :d)"),
                      {"d": json.dumps({"from": None, "to": "2026-12-01",
                                        "reason": f"{NAME} asked"})})
        migrate.upgrade(eng, "0022")
        with eng.connect() as c:
            details = json.loads(c.execute(text("SELECT details FROM events")).scalar_one())
            note = c.execute(text("SELECT field, body FROM event_notes")).one()
        assert details == {"from": None, "to": "2026-12-01"}
        assert tuple(note) == ("reason", f"{NAME} asked")
        with pytest.raises(DBAPIError):  # the log is append-only again
            with eng.begin() as c:
                c.execute(text("UPDATE events SET actor = 'x'"))
    finally:
        eng.dispose()


# --- the doors: API, command line, settings page ----------------------------------------------------

def test_api_exports_and_erases_with_a_write_key(db_url, engine, monkeypatch):
    from starlette.applications import Starlette
    from starlette.testclient import TestClient

    from claims_core.adapters import api, web
    from claims_core.services import api_keys
    monkeypatch.setenv("DATABASE_URL", db_url)
    _v, write = api_keys.create_key(engine, "helpdesk", "write", "staff:owner")
    _v, read = api_keys.create_key(engine, "dash", "read", "staff:owner")
    built = make_order(engine, "4401", EMAIL, base=utcnow())
    r = customer.file_claim(engine, claim_request(built, key="api"))
    try:
        with TestClient(Starlette(routes=[api.mount()]), base_url="http://portal.test") as c:
            h = {"Authorization": f"Bearer {write}"}
            assert c.post("/api/v1/customers/export", json={"email": EMAIL},
                          headers={"Authorization": f"Bearer {read}"}).status_code == 403
            got = c.post("/api/v1/customers/export", json={"email": EMAIL}, headers=h)
            assert got.status_code == 200 and got.headers["content-type"] == "application/zip"
            assert "data.json" in zipfile.ZipFile(io.BytesIO(got.content)).namelist()
            assert c.post("/api/v1/customers/export", json={"email": "no@example.com"},
                          headers=h).json()["code"] == "customer_not_found"
            refused = c.post("/api/v1/customers/erase", json={"email": EMAIL}, headers=h)
            assert (refused.status_code, refused.json()["code"]) == (409, "erasure_open_claim")
            decisions.close(engine, r.claim_id, "staff:owner")
            done = c.post("/api/v1/customers/erase", json={"email": EMAIL, "request_ref": "T-9"},
                          headers=h)
            assert done.status_code == 200 and done.json()["claims"] == 1
    finally:
        web._engine_for.cache_clear()
    with read_session(engine) as s:
        assert s.scalars(select(CustomerErasure.request_ref)).one() == "T-9"
        assert s.get(Order, built.order_id).email == personal_data.ERASED


def test_command_line_export_and_erase(db_url, engine, monkeypatch, tmp_path, capsys):
    from claims_core import cli
    monkeypatch.setenv("DATABASE_URL", db_url)
    built = make_order(engine, "4501", EMAIL, base=utcnow())
    out = tmp_path / "sam.zip"
    assert cli.main(["customer", "export", EMAIL, "--out", str(out)]) == 0
    assert "data.json" in zipfile.ZipFile(out).namelist()
    assert cli.main(["customer", "erase", EMAIL]) == 2  # no --yes: nothing done
    with read_session(engine) as s:
        assert s.get(Order, built.order_id).email == EMAIL
    assert cli.main(["customer", "erase", EMAIL, "--yes", "--ref", "mail-3"]) == 0
    with read_session(engine) as s:
        assert s.get(Order, built.order_id).email == personal_data.ERASED


def test_the_settings_tab_exports_and_erases_after_confirmation(engine, app):  # noqa: F811
    built = make_order(engine, "4601", EMAIL, base=utcnow())
    at = app("owner", "views/staff/settings.py")
    at.text_input(key="cd_email").input(EMAIL).run()
    at.button(key="cd_export").click().run()
    assert not at.exception and not at.error
    assert at.session_state["cd_zip"][:2] == b"PK"
    assert at.button(key="cd_erase").disabled  # not without the confirmation
    at.checkbox(key="cd_sure").check().run()
    at.button(key="cd_erase").click().run()
    assert not at.exception
    with read_session(engine) as s:
        assert s.get(Order, built.order_id).email == personal_data.ERASED
