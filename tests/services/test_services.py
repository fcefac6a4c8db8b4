"""Services: lookup, what is claimable, filing (atomic, idempotent), coming back, messages."""
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from claims_core import domain
from claims_core.infra.db import write_session
from claims_core.infra.models import (
    Claim,
    ClaimItem,
    Event,
    Evidence,
    Order,
    StoreSettings,
)
from claims_core.services import claim_views, customer, decisions, order_views
from claims_core.services import settings as store_settings

from tests.conftest import NOW
from tests.support.factories import claim_request, jpeg_bytes, make_order, signature_png


def _count(engine, model):
    with write_session(engine) as s:
        return s.scalar(select(func.count()).select_from(model))


# --- lookup -------------------------------------------------------------------------------------

@pytest.mark.parametrize("typed", ["#1001", "1001", " 1001 ", "# 1001"])
@pytest.mark.parametrize("email", ["sam@example.com", "SAM@EXAMPLE.COM", "  Sam@Example.com "])
def test_lookup_by_order_number_typed_every_way(engine, now, typed, email):
    make_order(engine)
    view = order_views._lookup_order(engine, typed, email, now=now)
    assert view.name == "#1001" and view.protected and view.claimable


def test_lookup_by_tracking_number(engine, now):
    built = make_order(engine, tracking_prefix="1Z")
    view = order_views._lookup_order(engine, " 1z1001x0 ", "sam@example.com", now=now)
    assert view.id == built.order_id


def test_wrong_number_and_wrong_email_give_the_same_answer(engine, now):
    make_order(engine)
    make_order(engine, "1002", "other@example.com", tracking_prefix="ZZ")
    messages = set()
    for query, email in [("9999", "sam@example.com"), ("1001", "wrong@example.com"),
                         ("1001", ""), ("", "sam@example.com"),
                         ("ZZ1002X0", "sam@example.com")]:  # another order's tracking number
        with pytest.raises(domain.OrderNotFound) as e:
            order_views._lookup_order(engine, query, email, now=now)
        messages.add(e.value.message)
    assert messages == {domain.LOOKUP_FAILED}


def test_order_view_lists_items_shipments_deadline(engine, now):
    make_order(engine)
    view = order_views._lookup_order(engine, "1001", "sam@example.com", now=now)
    assert [i.name for i in view.items] == ["Hand-thrown Mug", "Canvas Tote"]  # no protection line
    assert len(view.shipments) == 1
    assert view.shipments[0].deadline == (NOW - timedelta(days=10)).date() + timedelta(days=45)
    assert {i.sku: i.remaining for i in view.shipments[0].items} == {"MUG": 3, "TOTE": 1}


def test_unprotected_order_says_why(engine, now):
    make_order(engine, protected=False)
    view = order_views._lookup_order(engine, "1001", "sam@example.com", now=now)
    assert not view.claimable and "shipping protection" in str(view.reason)
    assert view.support_email


def test_late_protection_not_claimable(engine, now):
    make_order(engine, protection_at=NOW - timedelta(days=9))  # shipped 10 days ago
    view = order_views._lookup_order(engine, "1001", "sam@example.com", now=now)
    assert not view.claimable and "after this shipment left" in str(view.reason)


def test_window_closed_says_when(engine, now):
    make_order(engine, created=NOW - timedelta(days=60),
               shipments=[dict(status="delivered", shipped=NOW - timedelta(days=46),
                               delivered=NOW - timedelta(days=44), items=[("MUG", 3)])])
    view = order_views._lookup_order(engine, "1001", "sam@example.com", now=now)
    assert not view.claimable
    closed = (NOW - timedelta(days=46)).date() + timedelta(days=45)
    assert f"closed on {domain.format_date(closed)}" in str(view.reason)


def test_day_45_still_open(engine, now):
    make_order(engine, created=NOW - timedelta(days=60),
               shipments=[dict(status="delivered", shipped=NOW - timedelta(days=45),
                               delivered=NOW - timedelta(days=44), items=[("MUG", 3)])])
    assert order_views._lookup_order(engine, "1001", "sam@example.com", now=now).claimable


def test_staff_exception_reopens_window(engine, now):
    built = make_order(engine, created=NOW - timedelta(days=80),
                       shipments=[dict(status="delivered", shipped=NOW - timedelta(days=70),
                                       delivered=NOW - timedelta(days=68), items=[("MUG", 3)])])
    with write_session(engine) as s:
        s.get(Order, built.order_id).claim_deadline_override = NOW.date() + timedelta(days=3)
    view = order_views._lookup_order(engine, "1001", "sam@example.com", now=now)
    assert view.claimable and view.shipments[0].deadline == NOW.date() + timedelta(days=3)


def test_store_window_setting(engine, now):
    make_order(engine)  # shipped 10 days ago
    with write_session(engine) as s:
        s.get(StoreSettings, 1).filing_window_days = 9
    assert not order_views._lookup_order(engine, "1001", "sam@example.com", now=now).claimable


def test_not_shipped_yet(engine, now):
    make_order(engine, shipments=[])
    view = order_views._lookup_order(engine, "1001", "sam@example.com", now=now)
    assert not view.claimable and "hasn't shipped" in str(view.reason)


def test_cancelled_not_claimable(engine, now):
    make_order(engine, cancelled=True)
    view = order_views._lookup_order(engine, "1001", "sam@example.com", now=now)
    assert not view.claimable and "cancelled" in str(view.reason)


def _two_shipments(engine):
    return make_order(engine, shipments=[
        dict(status="delivered", shipped=NOW - timedelta(days=10), delivered=NOW - timedelta(days=8),
             items=[("MUG", 3)]),
        dict(status="in_transit", shipped=NOW - timedelta(days=10), last_scan=NOW - timedelta(days=8),
             items=[("TOTE", 1)]),
    ])


def test_claimable_shipments_each_with_their_issues(engine, now):
    built = _two_shipments(engine)
    ships = order_views.get_order_for_customer(engine, built.order_id, "SAM@example.com",
                                            now=now).claimable_shipments
    assert [s.id for s in ships] == built.shipment_ids
    assert "damaged" in ships[0].issue_types and "lost" not in ships[0].issue_types
    assert ships[1].issue_types == ("delayed", "lost")


# --- filing -------------------------------------------------------------------------------------

def test_file_item_claim_commits_everything(engine, now):
    built = make_order(engine)
    receipt = customer.file_claim(engine, claim_request(built), now=now)
    assert receipt.created and receipt.reference.startswith("CLM-") and len(receipt.reference) == 10
    assert len(receipt.access_token) >= 40 and receipt.access_token != receipt.reference
    assert receipt.claimed_cents == 2800
    with write_session(engine) as s:
        claim = s.get(Claim, receipt.claim_id)
        assert claim.status == "submitted" and claim.signature_png and claim.signed_at == NOW
        assert [(ci.quantity, ci.unit_cents) for ci in claim.items] == [(1, 2800)]
        assert len(claim.evidence) == 1 and claim.evidence[0].phash
        ev = s.scalars(select(Event).where(Event.claim_id == claim.id)).all()
        assert [(e.action, e.to_status) for e in ev] == [("claim_filed", "submitted")]


def test_shipping_claim_covers_whole_shipment(engine, now):
    built = _two_shipments(engine)
    req = claim_request(built, shipment=1, issue="lost", resolution="store_credit",
                        signature="typed")
    receipt = customer.file_claim(engine, req, now=now)
    assert receipt.claimed_cents == 3450
    view = order_views._lookup_order(engine, "1001", "sam@example.com", now=now)
    assert not view.shipments[1].claimable and "already covered" in str(view.shipments[1].reason)
    assert view.shipments[0].claimable and view.claimable


def test_issue_not_available_for_shipment_state(engine, now):
    built = _two_shipments(engine)
    with pytest.raises(domain.IssueNotAvailable):
        customer.file_claim(engine, claim_request(built, shipment=1, issue="not_received"), now=now)


def test_same_idempotency_key_twice_returns_first_claim(engine, now):
    built = make_order(engine)
    first = customer.file_claim(engine, claim_request(built, key="abc"), now=now)
    again = customer.file_claim(engine, claim_request(built, key="abc", description="changed"), now=now)
    assert again.claim_id == first.claim_id and again.reference == first.reference
    assert again.access_token == first.access_token and not again.created
    assert _count(engine, Claim) == 1 and _count(engine, Event) == 1


def test_quantity_limit_counts_other_claims(engine, now):
    built = make_order(engine)
    mug = built.items[(0, "MUG")]
    r1 = customer.file_claim(engine, claim_request(built, key="k1", items={mug: 2}), now=now)
    decisions.approve(engine, r1.claim_id, "staff:t", [decisions.ResolutionInput("refund", 5600)],
                      now=now)
    with pytest.raises(domain.QuantityError, match="at most 1"):
        customer.file_claim(engine, claim_request(built, key="k2", items={mug: 2}), now=now)
    customer.file_claim(engine, claim_request(built, key="k3", items={mug: 1}), now=now)
    with pytest.raises(domain.AlreadyClaimed):
        customer.file_claim(engine, claim_request(built, key="k4", items={mug: 1}), now=now)


def test_denied_claim_frees_its_items(engine, now):
    built = make_order(engine)
    mug = built.items[(0, "MUG")]
    r1 = customer.file_claim(engine, claim_request(built, key="k1", items={mug: 3}), now=now)
    decisions.deny(engine, r1.claim_id, "staff:t", "insufficient_evidence", now=now)
    customer.file_claim(engine, claim_request(built, key="k2", items={mug: 3}), now=now)
    # and the denied one can't be reopened now: its items are in another open claim
    with pytest.raises(domain.AlreadyClaimed):
        decisions.reopen(engine, r1.claim_id, "staff:t", now=now)


def test_second_open_claim_on_same_item(engine, now):
    built = make_order(engine)
    mug = built.items[(0, "MUG")]
    customer.file_claim(engine, claim_request(built, key="k1", items={mug: 1}), now=now)
    with pytest.raises(domain.AlreadyClaimed):
        customer.file_claim(engine, claim_request(built, key="k2", items={mug: 1}), now=now)


def test_one_open_claim_per_item_is_a_database_constraint(engine, now):
    built = make_order(engine)
    mug = built.items[(0, "MUG")]
    r1 = customer.file_claim(engine, claim_request(built, key="k1", items={mug: 1}), now=now)
    with pytest.raises(IntegrityError):
        with write_session(engine) as s:
            s.add(ClaimItem(claim_id=r1.claim_id, shipment_item_id=mug, quantity=1,
                            unit_cents=2800, is_open=True))
    with write_session(engine) as s:  # a closed one beside it is fine
        s.add(ClaimItem(claim_id=r1.claim_id, shipment_item_id=mug, quantity=1, unit_cents=2800,
                        is_open=False))


def test_unique_keys_are_database_constraints(engine, now):
    built = make_order(engine)
    r1 = customer.file_claim(engine, claim_request(built, key="k1"), now=now)
    for column in ("idempotency_key", "reference", "access_token"):
        with pytest.raises(IntegrityError):
            with write_session(engine) as s:
                src = s.get(Claim, r1.claim_id)
                clone = {c.key: getattr(src, c.key) for c in Claim.__table__.columns
                         if c.key not in ("id",)}
                for other in ("idempotency_key", "reference", "access_token"):
                    if other != column:
                        clone[other] = clone[other] + "-x"
                s.add(Claim(**clone))


def test_crash_mid_filing_leaves_nothing(engine, now, monkeypatch):
    built = make_order(engine)
    real = customer.record_event

    def boom(*a, **kw):
        real(*a, **kw)
        raise RuntimeError("crash after photos and items were written")

    monkeypatch.setattr(customer, "record_event", boom)
    with pytest.raises(RuntimeError):
        customer.file_claim(engine, claim_request(built), now=now)
    for model in (Claim, ClaimItem, Evidence, Event):
        assert _count(engine, model) == 0


def test_window_closing_while_filling_in(engine, now):
    make_order(engine, created=NOW - timedelta(days=50),
               shipments=[dict(status="delivered", shipped=NOW - timedelta(days=45),
                               delivered=NOW - timedelta(days=44), items=[("MUG", 3), ("TOTE", 1)])])
    built = order_views._lookup_order(engine, "1001", "sam@example.com", now=now)
    assert built.claimable
    from tests.support.factories import Built
    b = Built(built.id, "1001", "sam@example.com", [built.shipments[0].id],
              {(0, "MUG"): built.shipments[0].items[0].shipment_item_id})
    with pytest.raises(domain.WindowClosed):
        customer.file_claim(engine, claim_request(b), now=NOW + timedelta(days=1))
    assert _count(engine, Claim) == 0


def test_photos_required_for_damage(engine, now):
    built = make_order(engine)
    with pytest.raises(domain.EvidenceRequired):
        customer.file_claim(engine, claim_request(built, photos=[]), now=now)


def test_bad_photo_names_the_file_and_stores_nothing(engine, now):
    built = make_order(engine)
    photos = [("good.jpg", jpeg_bytes()), ("invoice.jpg", b"%PDF-1.7 not an image")]
    with pytest.raises(domain.PhotosRejected) as e:
        customer.file_claim(engine, claim_request(built, photos=photos), now=now)
    assert [err.filename for err in e.value.errors] == ["invoice.jpg"]
    assert "invoice.jpg" in e.value.message
    assert _count(engine, Evidence) == 0 and _count(engine, Claim) == 0


def test_blank_signature_refused(engine, now):
    built = make_order(engine)
    req = claim_request(built)
    req.signature_png = signature_png(blank=True)
    with pytest.raises(domain.SignatureInvalid):
        customer.file_claim(engine, req, now=now)


def test_drawn_signature_required_above_threshold(engine, now):
    built = make_order(engine, total_cents=60000)
    with pytest.raises(domain.SignatureInvalid):
        customer.file_claim(engine, claim_request(built, signature="typed"), now=now)
    assert customer.file_claim(engine, claim_request(built), now=now).created


def test_resolution_must_be_offered(engine, now):
    built = make_order(engine, stock={"MUG": 0})
    with pytest.raises(domain.ResolutionUnavailable, match="stock"):
        customer.file_claim(engine, claim_request(built, resolution="reshipment"), now=now)
    with write_session(engine) as s:
        s.get(StoreSettings, 1).offer_refund = False
    with pytest.raises(domain.ResolutionUnavailable):
        customer.file_claim(engine, claim_request(built, resolution="refund"), now=now)


def test_resolution_choices_show_amounts(engine, now):
    built = make_order(engine, stock={"MUG": 5})
    with write_session(engine) as s:
        s.get(StoreSettings, 1).store_credit_bonus_pct = 10
    opts = order_views.resolution_choices(engine, built.shipment_ids[0], {built.items[(0, "MUG")]: 2},
                                       "damaged")
    by = {o.kind: o for o in opts}
    assert by["refund"].amount_cents == 5600 and by["store_credit"].credit_minor == 6160
    assert by["reshipment"].available


def test_long_comment_refused_with_limit(engine, now):
    built = make_order(engine)
    with pytest.raises(domain.InvalidInput, match="4,000"):
        customer.file_claim(engine, claim_request(built, description="x" * 10_000), now=now)


def test_comment_stored_verbatim(engine, now):
    built = make_order(engine)
    hostile = "<b>hi</b> [link](javascript:alert(1)) ![img](http://x/y.png) 😀"
    r = customer.file_claim(engine, claim_request(built, description=hostile), now=now)
    assert claim_views.get_claim_for_customer(engine, r.access_token).description == hostile


# --- coming back --------------------------------------------------------------------------------

def test_fetch_claim_by_token_and_by_order_email(engine, now):
    built = make_order(engine)
    r = customer.file_claim(engine, claim_request(built), now=now)
    view = claim_views.get_claim_for_customer(engine, r.access_token)
    assert view.reference == r.reference and view.status_label == "Received"
    assert [i.quantity for i in view.items] == [1] and len(view.evidence) == 1
    found = order_views._find_claims_for_customer(engine, "#1001", "SAM@example.com")
    assert [c.reference for c in found] == [r.reference]
    with pytest.raises(domain.ClaimNotFound):
        claim_views.get_claim_for_customer(engine, "x" * 43)
    with pytest.raises(domain.OrderNotFound):
        order_views._find_claims_for_customer(engine, "1001", "nope@example.com")


def test_customer_reply_puts_claim_back_in_review(engine, now):
    built = make_order(engine)
    r = customer.file_claim(engine, claim_request(built), now=now)
    decisions.request_info(engine, r.claim_id, "staff:t", "Jordan", "A photo of the label please",
                           now=now)
    assert claim_views.get_claim_for_customer(engine, r.access_token).status == "needs_info"
    view = customer.add_customer_message(engine, r.access_token, "Here it is",
                                         [("label.png", jpeg_bytes(seed=7))],
                                         now=now + timedelta(hours=1))
    assert view.status == "in_review" and len(view.evidence) == 2
    assert [m.author_kind for m in view.messages] == ["staff", "customer"]
    steps = [s.label for s in view.timeline]
    assert steps[:3] == ["Received", "In review", "Waiting for you"]


def test_customer_photos_only_while_shop_waits(engine, now):
    built = make_order(engine)
    r = customer.file_claim(engine, claim_request(built), now=now)
    with pytest.raises(domain.InvalidInput):
        customer.add_customer_message(engine, r.access_token, "more", [("x.jpg", jpeg_bytes())])
    view = customer.add_customer_message(engine, r.access_token, "Any news?")
    assert view.status == "submitted" and view.messages[-1].body == "Any news?"


def test_internal_notes_hidden_from_customer(engine, now):
    built = make_order(engine)
    r = customer.file_claim(engine, claim_request(built), now=now)
    decisions.staff_message(engine, r.claim_id, "staff:t", "Jordan", "looks fishy", internal=True)
    assert claim_views.get_claim_for_customer(engine, r.access_token).messages == ()


def test_decision_visible_to_customer(engine, now):
    built = make_order(engine)
    r = customer.file_claim(engine, claim_request(built, resolution="store_credit"), now=now)
    store_settings.update_settings(engine, "test", {"store_credit_bonus_pct": 10})  # the store allows it
    codes = decisions.approve(engine, r.claim_id, "staff:t",
                              [decisions.ResolutionInput("store_credit", 2800, 10)], now=now)
    view = claim_views.get_claim_for_customer(engine, r.access_token)
    assert view.status == "approved" and view.resolutions[0].store_credit_code == codes[0]
    r2 = customer.file_claim(engine, claim_request(built, key="k2", items={built.items[(0, "TOTE")]: 1}),
                             now=now)
    decisions.deny(engine, r2.claim_id, "staff:t", "other", "Outside our policy.", now=now)
    denied = claim_views.get_claim_for_customer(engine, r2.access_token)
    assert denied.status == "denied" and "Outside our policy." in str(denied.denial_reason)
    assert denied.resolutions == ()


def test_stale_decision_refused(engine, now):
    built = make_order(engine)
    r = customer.file_claim(engine, claim_request(built), now=now)
    seen = claim_views.get_claim_for_customer(engine, r.access_token).version
    decisions.deny(engine, r.claim_id, "staff:a", "insufficient_evidence", expected_version=seen)
    with pytest.raises(domain.StaleClaim):
        decisions.approve(engine, r.claim_id, "staff:b", [decisions.ResolutionInput("refund", 100)],
                          expected_version=seen)


def test_reshipment_decrements_stock(engine, now):
    built = make_order(engine, stock={"MUG": 2})
    r = customer.file_claim(engine, claim_request(built, resolution="reshipment"), now=now)
    decisions.approve(engine, r.claim_id, "staff:t", [decisions.ResolutionInput("reshipment")])
    from claims_core.infra.models import Shipment, Stock
    with write_session(engine) as s:
        assert s.get(Stock, "MUG").on_hand == 1
        repl = s.scalars(select(Shipment).where(Shipment.is_replacement)).one()
        assert [(si.quantity) for si in repl.items] == [1]
