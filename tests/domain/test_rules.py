"""Each shop rule at its edges (pure functions, no database)."""
from datetime import date, datetime, timedelta, timezone

import pytest

from claims_core import domain

UTC = timezone.utc


@pytest.mark.parametrize("raw", ["#1001", "1001", " 1001 ", "  #1001", "# 1001", "＃1001", "1001\n"])
def test_order_number_typed_every_way(raw):
    assert domain.normalize_order_number(raw) == "1001"


def test_order_number_empty():
    assert domain.normalize_order_number("  # ") == ""
    assert domain.normalize_order_number(None) == ""


@pytest.mark.parametrize("raw", ["SAM@Example.com", " sam@example.com ", "SAM@EXAMPLE.COM\t"])
def test_emails_any_case_and_spaces(raw):
    assert domain.emails_match(raw, "sam@example.com")


def test_emails_differ():
    assert not domain.emails_match("sam@example.co", "sam@example.com")
    assert not domain.emails_match("", "sam@example.com")


def test_tracking_normalised():
    assert domain.normalize_tracking(" 1z 999-aa1 ") == "1Z999AA1"


# --- protection ---------------------------------------------------------------------------------

def test_unprotected_order_refused():
    with pytest.raises(domain.NotProtected) as e:
        domain.check_protected(None)
    assert "doesn't include shipping protection" in e.value.message


def test_protection_bought_before_shipping_counts():
    shipped = datetime(2026, 10, 1, 12, tzinfo=UTC)
    domain.check_protection_covers_shipment(shipped - timedelta(days=1), shipped)
    domain.check_protection_covers_shipment(shipped, shipped)  # same moment: still before it left


def test_protection_bought_after_shipment_left_does_not_count():
    shipped = datetime(2026, 10, 1, 12, tzinfo=UTC)
    with pytest.raises(domain.NotProtected) as e:
        domain.check_protection_covers_shipment(shipped + timedelta(seconds=1), shipped)
    assert "after this shipment left" in e.value.message


def test_cancelled_order_refused():
    with pytest.raises(domain.OrderCancelled):
        domain.check_order_not_cancelled(datetime(2026, 1, 1, tzinfo=UTC))
    domain.check_order_not_cancelled(None)


def test_not_shipped():
    with pytest.raises(domain.NotShipped):
        domain.check_has_shipments(0)


# --- filing window ------------------------------------------------------------------------------

SHIPPED = datetime(2026, 10, 1, 18, 0, tzinfo=UTC)


def test_deadline_is_day_45_after_fulfilment():
    assert domain.filing_deadline(SHIPPED, 45) == date(2026, 11, 15)


def test_day_45_open_day_46_closed():
    deadline = domain.filing_deadline(SHIPPED, 45)
    # the very end of day 45 is still open
    domain.check_filing_window(deadline, datetime(2026, 11, 15, 23, 59, 59, tzinfo=UTC))
    with pytest.raises(domain.WindowClosed) as e:
        domain.check_filing_window(deadline, datetime(2026, 11, 16, 0, 0, 0, tzinfo=UTC))
    assert "closed on November 15, 2026" in e.value.message


def test_store_setting_changes_window():
    assert domain.filing_deadline(SHIPPED, 30) == date(2026, 10, 31)
    assert domain.filing_deadline(SHIPPED, 90) == date(2026, 12, 30)


def test_window_counts_in_store_timezone():
    # 02:00 UTC on Oct 2 is still Oct 1 in New York: the window starts on Oct 1 there.
    shipped = datetime(2026, 10, 2, 2, 0, tzinfo=UTC)
    assert domain.filing_deadline(shipped, 45, "UTC") == date(2026, 11, 16)
    assert domain.filing_deadline(shipped, 45, "America/New_York") == date(2026, 11, 15)
    # 03:00 UTC on Nov 16 is still Nov 15 in New York
    domain.check_filing_window(date(2026, 11, 15), datetime(2026, 11, 16, 3, 0, tzinfo=UTC),
                              "America/New_York")


def test_bad_timezone_falls_back_to_utc():
    assert domain.filing_deadline(SHIPPED, 45, "Not/AZone") == date(2026, 11, 15)


def test_exception_extends_but_never_shortens():
    assert domain.filing_deadline(SHIPPED, 45, override=date(2026, 12, 31)) == date(2026, 12, 31)
    assert domain.filing_deadline(SHIPPED, 45, override=date(2026, 10, 5)) == date(2026, 11, 15)


# --- issue types by shipment state --------------------------------------------------------------

NOW = datetime(2026, 11, 21, 12, tzinfo=UTC)


def _avail(status, last_scan_days_ago=None, shipped_days_ago=10, wait=7):
    last = NOW - timedelta(days=last_scan_days_ago) if last_scan_days_ago is not None else None
    return domain.available_issue_types(status, NOW - timedelta(days=shipped_days_ago), last, NOW, wait)


def test_delivered_shipment_issues():
    got = _avail("delivered", 2)
    assert set(got) == {"stolen", "not_received", "damaged", "defective", "wrong_item",
                        "missing_item"}
    assert "lost" not in got and "delayed" not in got and "returned_to_sender" not in got


def test_never_delivered_cannot_claim_not_received():
    for status in ("in_transit", "exception", "returned", "fulfilled"):
        assert "not_received" not in _avail(status, 1)
        assert "stolen" not in _avail(status, 1)


def test_in_transit_issues():
    assert _avail("in_transit", 2) == ["delayed"]
    assert "damaged" not in _avail("in_transit", 2)


def test_lost_needs_seven_days_without_scan():
    assert "lost" not in _avail("in_transit", 6)
    assert "lost" in _avail("in_transit", 7)
    assert "lost" in _avail("exception", 8)


def test_lost_wait_is_a_store_setting():
    assert "lost" not in _avail("in_transit", 7, wait=10)
    assert "lost" in _avail("in_transit", 10, wait=10)


def test_lost_counts_from_shipping_when_no_scan():
    assert "lost" not in _avail("in_transit", None, shipped_days_ago=6)
    assert "lost" in _avail("in_transit", None, shipped_days_ago=7)


def test_returned_only_returned_to_sender():
    assert _avail("returned", 1) == ["returned_to_sender"]


def test_fulfilled_without_tracking_data():
    got = _avail("fulfilled", None, shipped_days_ago=3)
    assert "delayed" in got and "damaged" in got and "lost" not in got
    assert "not_received" not in got


def test_issue_unavailable_has_reason():
    with pytest.raises(domain.IssueNotAvailable) as e:
        domain.check_issue_available("lost", ["delayed"], "in_transit", 7)
    assert "7 days" in e.value.message
    with pytest.raises(domain.IssueNotAvailable) as e:
        domain.check_issue_available("not_received", ["delayed"], "in_transit", 7)
    assert "delivered" in e.value.message
    with pytest.raises(domain.InvalidInput):
        domain.check_issue_available("bogus", ["delayed"], "in_transit", 7)


# --- quantities ---------------------------------------------------------------------------------

NAMES = {1: "Mug", 2: "Tote"}


def test_quantity_at_the_limit():
    assert domain.check_item_quantities({1: 3}, {1: 3, 2: 1}, NAMES) == {1: 3}


def test_quantity_above_the_limit():
    with pytest.raises(domain.QuantityError) as e:
        domain.check_item_quantities({1: 4}, {1: 3, 2: 1}, NAMES)
    assert "at most 3 of “Mug”" in e.value.message


def test_quantity_limit_after_other_claims():
    remaining = domain.remaining_quantity(3, 2)
    assert remaining == 1
    domain.check_item_quantities({1: 1}, {1: remaining}, NAMES)
    with pytest.raises(domain.QuantityError):
        domain.check_item_quantities({1: 2}, {1: remaining}, NAMES)


def test_nothing_more_while_a_claim_on_the_line_is_open():
    assert domain.remaining_quantity(3, 1, open_claim=True) == 0
    assert domain.remaining_quantity(3, 1, open_claim=False) == 2


def test_fully_covered_item_is_already_claimed():
    with pytest.raises(domain.AlreadyClaimed):
        domain.check_item_quantities({1: 1}, {1: domain.remaining_quantity(3, 3)}, NAMES)


@pytest.mark.parametrize("bad", [-1, 1.5, "two", None, True])
def test_quantity_must_be_a_whole_number(bad):
    with pytest.raises(domain.QuantityError):
        domain.check_item_quantities({1: bad}, {1: 3}, NAMES)


def test_quantity_zero_everywhere_means_nothing_chosen():
    with pytest.raises(domain.QuantityError) as e:
        domain.check_item_quantities({1: 0, 2: 0}, {1: 3, 2: 1}, NAMES)
    assert "at least one item" in e.value.message


def test_item_not_in_shipment():
    with pytest.raises(domain.QuantityError):
        domain.check_item_quantities({99: 1}, {1: 3}, NAMES)


# --- photos, comments ---------------------------------------------------------------------------

@pytest.mark.parametrize("issue", ["damaged", "defective", "wrong_item"])
def test_photos_required(issue):
    assert domain.photos_required(issue)
    with pytest.raises(domain.EvidenceRequired):
        domain.check_photo_count(issue, 0, 6)
    domain.check_photo_count(issue, 1, 6)


@pytest.mark.parametrize("issue", ["missing_item", "lost", "stolen", "delayed"])
def test_photos_optional(issue):
    domain.check_photo_count(issue, 0, 6)


def test_too_many_photos():
    domain.check_photo_count("damaged", 6, 6)
    with pytest.raises(domain.EvidenceRequired):
        domain.check_photo_count("damaged", 7, 6)


def test_comment_limit_is_visible():
    assert domain.clean_comment("x" * domain.MAX_COMMENT_CHARS) == "x" * domain.MAX_COMMENT_CHARS
    with pytest.raises(domain.InvalidInput) as e:
        domain.clean_comment("x" * 10_000)
    assert "4,000" in e.value.message and "10,000" in e.value.message


def test_comment_kept_verbatim_but_control_chars_dropped():
    text = "<script>alert(1)</script> **bold** [x](javascript:alert(1)) 📦\x00\x07"
    assert domain.clean_comment(text) == text[:-2]


# --- resolutions --------------------------------------------------------------------------------

def _opts(**kw):
    base = dict(offer_refund=True, offer_reshipment=True, offer_store_credit=True, bonus_pct=10,
                amount_cents=5600, needed_stock={"MUG": 2}, on_hand={"MUG": 2})
    base.update(kw)
    return domain.resolution_options(**base)


def test_all_resolutions_offered():
    opts = _opts()
    assert [o.kind for o in opts] == ["reshipment", "store_credit", "refund"]
    assert all(o.available for o in opts)
    credit = next(o for o in opts if o.kind == "store_credit")
    assert credit.credit_minor == 6160


def test_store_turns_resolutions_off():
    assert [o.kind for o in _opts(offer_refund=False, offer_reshipment=False)] == ["store_credit"]


def test_reshipment_needs_stock():
    opts = _opts(on_hand={"MUG": 1})
    resh = opts[0]
    assert resh.kind == "reshipment" and not resh.available and "stock" in resh.reason
    with pytest.raises(domain.ResolutionUnavailable):
        domain.check_resolution_choice("reshipment", opts)
    assert domain.check_resolution_choice("refund", opts).amount_cents == 5600


def test_resolution_not_offered():
    with pytest.raises(domain.ResolutionUnavailable):
        domain.check_resolution_choice("refund", _opts(offer_refund=False))


def test_resolution_amounts_never_above_paid():
    domain.check_resolution_amounts([("refund", 5600)], 5600)
    domain.check_resolution_amounts([("refund", 2000), ("store_credit", 3600)], 5600)
    with pytest.raises(domain.InvalidInput):
        domain.check_resolution_amounts([("refund", 5601)], 5600)
    with pytest.raises(domain.InvalidInput):
        domain.check_resolution_amounts([("reshipment", 0), ("refund", 1)], 5600)
    with pytest.raises(domain.InvalidInput):
        domain.check_resolution_amounts([("refund", 0)], 5600)


# --- signature ----------------------------------------------------------------------------------

def _sig(**kw):
    base = dict(kind="typed", typed_name="Sam Jones", accurate_confirmed=True,
                order_total_cents=10000, threshold_cents=50000)
    base.update(kw)
    domain.check_signature(**base)


def test_typed_signature_ok():
    _sig()


def test_accuracy_tick_required():
    with pytest.raises(domain.SignatureInvalid):
        _sig(accurate_confirmed=False)


def test_typed_name_must_be_a_name():
    for bad in ("", " ", "x", "12345"):
        with pytest.raises(domain.SignatureInvalid):
            _sig(typed_name=bad)


def test_blank_canvas_is_not_a_signature():
    with pytest.raises(domain.SignatureInvalid):
        _sig(kind="drawn", drawn_ink_pixels=0)
    _sig(kind="drawn", drawn_ink_pixels=500)


def test_drawn_signature_required_above_threshold():
    _sig(order_total_cents=50000)  # at the threshold: typed is fine
    with pytest.raises(domain.SignatureInvalid) as e:
        _sig(order_total_cents=50001)
    assert "draw" in e.value.message
    _sig(kind="drawn", drawn_ink_pixels=500, order_total_cents=50001)


def test_money_format():
    assert domain.format_minor(123456) == "$1,234.56"
    assert domain.format_minor(5, "EUR") == "€0.05"


def test_control_characters_dropped_from_one_line_input():
    assert domain.normalize_order_number("10\x0001") == "1001"
    assert domain.normalize_email("a\x00@b.c") == "a@b.c"
    assert domain.normalize_tracking("1Z\x00\x07") == "1Z"
