"""Carrier feeds: 17TRACK, EasyPost and Shopify webhook bodies read into TrackingUpdate.

Pure parsing, no database: these tests use no fixture from conftest.
"""
from __future__ import annotations

import copy
import json
import random
from datetime import datetime, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from claims_core.adapters.carrier_feeds import (
    MAX_CARRIER,
    MAX_MESSAGE,
    MAX_PLACE,
    MAX_SUB_STATUS,
    MAX_TRACKING_NUMBER,
    FeedError,
    milestone_17track,
    milestone_easypost,
    parse_17track,
    parse_easypost,
    parse_shopify_fulfillment,
)
from claims_core.domain.tracking import Checkpoint, TrackingUpdate, summarise
from claims_core.domain.vocabulary import Milestone, ShipmentStatus

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "webhooks"
UTC = timezone.utc
M = Milestone


def load(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def one(updates: list[TrackingUpdate]) -> TrackingUpdate:
    assert len(updates) == 1
    return updates[0]


def events_17(payload: dict) -> list:
    return payload["data"]["track_info"]["tracking"]["providers"][0]["events"]


def assert_well_formed(updates) -> None:
    """What every parser promises, whatever it was fed."""
    assert isinstance(updates, list)
    for u in updates:
        assert isinstance(u, TrackingUpdate)
        assert u.source in {"17track", "easypost", "shopify"}
        assert isinstance(u.tracking_number, str) and 0 < len(u.tracking_number) <= MAX_TRACKING_NUMBER
        assert u.tracking_number == u.tracking_number.strip()
        assert isinstance(u.carrier, str) and len(u.carrier) <= MAX_CARRIER
        assert u.milestone is None or isinstance(u.milestone, Milestone)
        for moment in (u.expected_delivery, u.as_of):
            assert moment is None or moment.tzinfo is UTC
        keys = [c.key for c in u.checkpoints]
        assert len(keys) == len(set(keys)), "duplicate checkpoints"
        times = [c.at for c in u.checkpoints]
        assert times == sorted(times, reverse=True), "checkpoints must be newest first"
        for c in u.checkpoints:
            assert isinstance(c, Checkpoint)
            assert c.at.tzinfo is UTC
            assert isinstance(c.milestone, Milestone)
            assert len(c.message) <= MAX_MESSAGE and len(c.place) <= MAX_PLACE
            assert len(c.sub_status) <= MAX_SUB_STATUS
            for text in (c.message, c.place, c.sub_status):
                assert text == text.strip() and "\n" not in text and "\x00" not in text
                text.encode("utf-8")  # storable: no lone surrogates
        for text in (u.tracking_number, u.carrier, u.event_id, u.proof.signed_by):
            text.encode("utf-8")


# ---------------------------------------------------------------------------------------------
# 17TRACK
# ---------------------------------------------------------------------------------------------

def test_17track_in_transit_fixture():
    u = one(parse_17track(load("17track_updated.json")))
    assert_well_formed([u])
    assert (u.source, u.tracking_number, u.carrier) == ("17track", "1Z999AA10000000101", "UPS")
    assert u.milestone == M.IN_TRANSIT
    assert not u.stopped and u.event_id == "" and not u.proof
    # estimated_delivery_date.to "2026-03-05T20:00:00-06:00", in UTC
    assert u.expected_delivery == utc(2026, 3, 6, 2, 0)
    assert u.as_of == utc(2026, 3, 4, 12, 30, 41)  # the provider's latest_sync_time
    # latest_event repeats the newest event: still five checkpoints, newest first
    assert [(c.at, c.milestone, c.place) for c in u.checkpoints] == [
        (utc(2026, 3, 4, 12, 12), M.IN_TRANSIT, "Memphis, TN, US"),
        (utc(2026, 3, 4, 3, 40), M.IN_TRANSIT, "Nashville, TN, US"),
        (utc(2026, 3, 3, 15, 15), M.IN_TRANSIT, "Nashville, TN, US"),
        (utc(2026, 3, 2, 23, 30), M.IN_TRANSIT, "Louisville, KY, US"),
        (utc(2026, 3, 2, 15, 5), M.INFO_RECEIVED, "US"),
    ]
    newest = u.checkpoints[0]
    assert newest.message == "Arrived at Facility"
    # no stage, no sub_status: the newest event takes the latest status (and its sub-status)
    assert newest.sub_status == "InTransit_Other"
    assert u.checkpoints[3].sub_status == "InTransit_PickedUp"
    assert u.newest_time == utc(2026, 3, 4, 12, 12)


def test_17track_delivered_fixture():
    u = one(parse_17track(load("17track_delivered.json")))
    assert_well_formed([u])
    assert u.tracking_number == "1Z999AA10000000102"
    assert u.milestone == M.DELIVERED
    assert u.expected_delivery is None  # from/to are null once delivered
    assert not u.proof  # 17TRACK's push carries no signer, photo or delivery location
    assert [c.milestone for c in u.checkpoints] == [
        M.DELIVERED, M.OUT_FOR_DELIVERY, M.IN_TRANSIT, M.IN_TRANSIT, M.IN_TRANSIT,
        M.INFO_RECEIVED]
    delivered = u.checkpoints[0]
    assert (delivered.at, delivered.message, delivered.place, delivered.sub_status) == (
        utc(2026, 3, 5, 20, 37), "DELIVERED", "MEMPHIS, TN, US", "Delivered_Other")
    state = summarise(u.checkpoints)
    assert state.status == ShipmentStatus.DELIVERED
    assert state.delivered_at == utc(2026, 3, 5, 20, 37)
    assert state.last_place == "MEMPHIS, TN, US"


def test_17track_stopped_fixture():
    u = one(parse_17track(load("17track_stopped.json")))
    assert_well_formed([u])
    assert u.stopped is True
    assert (u.tracking_number, u.carrier) == ("1Z999AA10000000102", "UPS")
    assert u.checkpoints == () and u.milestone is None and u.as_of is None


@pytest.mark.parametrize("status, sub_status, expected", [
    ("NotFound", "NotFound_Other", None),
    ("NotFound", "NotFound_InvalidCode", None),
    ("InfoReceived", "InfoReceived", M.INFO_RECEIVED),
    ("InTransit", "InTransit_PickedUp", M.IN_TRANSIT),
    ("InTransit", "InTransit_CustomsProcessing", M.IN_TRANSIT),
    ("Expired", "Expired_Other", M.EXPIRED),
    ("AvailableForPickup", "AvailableForPickup_Other", M.AVAILABLE_FOR_PICKUP),
    ("OutForDelivery", "OutForDelivery_Other", M.OUT_FOR_DELIVERY),
    ("DeliveryFailure", "DeliveryFailure_NoBody", M.EXCEPTION),
    ("DeliveryFailure", "DeliveryFailure_InvalidAddress", M.EXCEPTION),
    ("Delivered", "Delivered_Other", M.DELIVERED),
    ("Exception", "Exception_Other", M.EXCEPTION),
    ("Exception", "Exception_Lost", M.EXCEPTION),
    ("Exception", "Exception_Returning", M.RETURNED),
    ("Exception", "Exception_Returned", M.RETURNED),
    (None, "Delivered_Other", M.DELIVERED),  # no main status: the sub-status's prefix decides
    ("Bogus", None, None),
    (["InTransit"], {"x": 1}, None),  # wrong types never raise
])
def test_17track_status_table(status, sub_status, expected):
    assert milestone_17track(status, sub_status) == expected
    payload = load("17track_updated.json")
    payload["data"]["track_info"]["latest_status"] = {"status": status, "sub_status": sub_status}
    u = one(parse_17track(payload))
    assert u.milestone == expected
    # the newest event has neither stage nor sub_status: it takes the latest status
    assert u.checkpoints[0].milestone == (expected or M.IN_TRANSIT)


@pytest.mark.parametrize("stage, sub_status, expected", [
    ("InfoReceived", None, M.INFO_RECEIVED),
    ("PickedUp", None, M.IN_TRANSIT),
    ("Departure", None, M.IN_TRANSIT),
    ("Arrival", None, M.IN_TRANSIT),
    ("AvailableForPickup", None, M.AVAILABLE_FOR_PICKUP),
    ("OutForDelivery", None, M.OUT_FOR_DELIVERY),
    ("Delivered", None, M.DELIVERED),
    ("Returning", None, M.RETURNED),
    ("Returned", None, M.RETURNED),
    ("Failure", None, M.EXCEPTION),
    (None, "DeliveryFailure_Rejected", M.EXCEPTION),
    (None, "Exception_Returning", M.RETURNED),
    (None, "AvailableForPickup_Other", M.AVAILABLE_FOR_PICKUP),
    ("Arrival", "Exception_Delayed", M.EXCEPTION),  # the more specific of the two wins
    ("Returning", "InTransit_Other", M.RETURNED),
    (None, None, M.IN_TRANSIT),  # neither, and not the newest event
    ("Teleported", "NotFound_Other", M.IN_TRANSIT),  # unknown words count as neither
])
def test_17track_event_stage_and_sub_status(stage, sub_status, expected):
    payload = load("17track_delivered.json")
    event = events_17(payload)[2]  # "Arrived at Facility", not the newest
    event["stage"], event["sub_status"] = stage, sub_status
    u = one(parse_17track(payload))
    cp = next(c for c in u.checkpoints if c.at == utc(2026, 3, 5, 10, 50))
    assert cp.milestone == expected
    assert cp.sub_status == (sub_status or stage or "")


def test_17track_newest_unclassified_event_takes_latest_status():
    payload = load("17track_delivered.json")
    for event in events_17(payload)[:1] + [payload["data"]["track_info"]["latest_event"]]:
        event["stage"] = event["sub_status"] = None
    u = one(parse_17track(payload))
    assert u.checkpoints[0].milestone == M.DELIVERED
    assert u.checkpoints[0].sub_status == "Delivered_Other"
    # ... unless 17TRACK knows nothing (NotFound): then it is in transit like the others
    payload["data"]["track_info"]["latest_status"]["status"] = "NotFound"
    payload["data"]["track_info"]["latest_status"]["sub_status"] = "NotFound_Other"
    u = one(parse_17track(payload))
    assert u.milestone is None
    assert u.checkpoints[0].milestone == M.IN_TRANSIT


def test_17track_events_out_of_order_give_the_same_checkpoints():
    expected = one(parse_17track(load("17track_delivered.json")))
    rng = random.Random(7)
    for _ in range(5):
        payload = load("17track_delivered.json")
        rng.shuffle(events_17(payload))
        assert one(parse_17track(payload)) == expected


def test_17track_duplicate_events_are_one_checkpoint():
    payload = load("17track_updated.json")
    events = events_17(payload)
    events.extend(copy.deepcopy(events))  # every scan twice ...
    payload["data"]["track_info"]["tracking"]["providers"].append(
        copy.deepcopy(payload["data"]["track_info"]["tracking"]["providers"][0]))  # ... and again
    u = one(parse_17track(payload))
    assert len(u.checkpoints) == 5
    assert u == one(parse_17track(load("17track_updated.json")))


def test_17track_empty_events_keep_the_latest_status():
    payload = load("17track_delivered.json")
    events_17(payload).clear()
    del payload["data"]["track_info"]["latest_event"]
    u = one(parse_17track(payload))
    assert u.checkpoints == ()
    assert u.milestone == M.DELIVERED
    assert summarise(u.checkpoints, fallback=u.milestone).status == ShipmentStatus.DELIVERED


def test_17track_junk_events_are_skipped(caplog):
    payload = load("17track_updated.json")
    events = events_17(payload)
    events.insert(1, {"time_utc": "yesterday-ish", "time_iso": "soon", "description": "junk"})
    events.insert(2, "not an event")
    events.insert(3, {"time_utc": None, "time_iso": None, "description": "no time at all"})
    events.insert(4, {"time_utc": "0001-01-01T00:00:00Z", "description": "placeholder time"})
    events.insert(5, None)
    u = one(parse_17track(payload))
    assert len(u.checkpoints) == 5
    assert "junk" not in {c.message for c in u.checkpoints}
    assert "skipped 5 unreadable event(s)" in caplog.text


def test_17track_event_times_from_time_iso_and_time_raw():
    payload = load("17track_updated.json")
    events = events_17(payload)
    events[1]["time_utc"] = None  # time_iso "2026-03-03T21:40:00-06:00"
    events[2]["time_utc"] = events[2]["time_iso"] = None  # time_raw 09:15 at -06:00
    events[3]["time_utc"] = "not a time"  # falls back to time_iso
    events[4]["time_utc"] = None
    events[4]["time_iso"] = "2026-03-02T15:05:00"  # no offset: read as UTC
    u = one(parse_17track(payload))
    assert [c.at for c in u.checkpoints] == [
        utc(2026, 3, 4, 12, 12), utc(2026, 3, 4, 3, 40), utc(2026, 3, 3, 15, 15),
        utc(2026, 3, 2, 23, 30), utc(2026, 3, 2, 15, 5)]


def test_17track_places_from_address_or_location():
    payload = load("17track_updated.json")
    events = events_17(payload)
    events[1]["address"] = None  # location string "Nashville, TN, US"
    events[2]["address"] = {"city": "Jackson", "state": None, "country": "US"}
    events[3]["address"] = {"city": None, "state": "KY", "country": "US"}
    events[3]["location"] = None
    events[4]["location"] = ""
    events[4]["address"] = "nowhere"
    u = one(parse_17track(payload))
    assert [c.place for c in u.checkpoints] == [
        "Memphis, TN, US", "Nashville, TN, US", "Jackson, US", "KY, US", ""]


@pytest.mark.parametrize("code, providers, expected", [
    (100002, None, "UPS"),
    (100003, None, "FedEx"),
    (21051, None, "USPS"),
    (100001, None, "DHL Express"),
    ("100003", None, "FedEx"),  # a code sent as text
    (190271, None, "190271"),  # unknown: the raw code, as text
    (190271, [{"provider": {"key": 190271, "name": "Cainiao"}, "events": []}], "Cainiao"),
    (None, None, ""),
    (0, None, ""),
    (True, None, ""),
    ("²", None, ""),
    ({"key": 100002}, None, ""),
])
def test_17track_carrier(code, providers, expected):
    payload = load("17track_updated.json")
    payload["data"]["carrier"] = code
    if providers is not None:
        payload["data"]["track_info"]["tracking"]["providers"] = providers
    assert one(parse_17track(payload)).carrier == expected


def test_17track_expected_delivery_variants():
    payload = load("17track_updated.json")
    estimate = payload["data"]["track_info"]["time_metrics"]["estimated_delivery_date"]
    estimate["to"] = None  # falls back to "from": 2026-03-05T09:00:00-06:00
    assert one(parse_17track(payload)).expected_delivery == utc(2026, 3, 5, 15, 0)
    estimate["from"] = "2026-03-07"  # a bare date: noon UTC, the same day in every US zone
    assert one(parse_17track(payload)).expected_delivery == utc(2026, 3, 7, 12, 0)
    payload["data"]["track_info"]["time_metrics"] = None
    assert one(parse_17track(payload)).expected_delivery is None


def test_17track_untrusted_types_and_long_strings():
    payload = load("17track_updated.json")
    payload["data"]["number"] = "  " + "9" * 300 + "  "
    events = events_17(payload)
    events[0]["description"] = "Arrived\n\tat  Facility\x00 " + "x" * 2000
    events[0]["location"] = None
    events[0]["address"] = {"city": "M" * 500, "state": 47, "country": ["US"]}
    events[1]["description"] = 12345
    events[1]["sub_status"] = "InTransit_" + "y" * 200
    events[2]["description"] = None
    events[3]["description"] = {"text": "Origin Scan"}
    events[4]["description"] = 3.5
    payload["data"]["track_info"]["latest_event"] = ["not", "an", "event"]
    u = one(parse_17track(payload))
    assert_well_formed([u])
    assert u.tracking_number == "9" * MAX_TRACKING_NUMBER
    newest = u.checkpoints[0]
    assert newest.message.startswith("Arrived at Facility xxx")
    assert len(newest.message) == MAX_MESSAGE
    assert newest.place == "M" * MAX_PLACE
    assert [c.message for c in u.checkpoints[1:]] == ["12345", "", "", "3.5"]
    assert u.checkpoints[1].sub_status == ("InTransit_" + "y" * 200)[:MAX_SUB_STATUS]


def test_times_at_the_edge_of_the_calendar_are_unreadable():
    payload = load("17track_updated.json")
    events = events_17(payload)
    events[1]["time_utc"] = "0001-01-01T00:00:00+05:00"  # before year 1 in UTC
    events[1]["time_iso"] = events[1]["time_raw"] = None
    events[2]["time_utc"] = "9999-12-31T23:00:00-05:00"  # after year 9999 in UTC
    events[2]["time_iso"] = events[2]["time_raw"] = None
    assert len(one(parse_17track(payload)).checkpoints) == 3
    payload = load("easypost_tracker_updated.json")
    payload["result"]["updated_at"] = "0001-01-01T00:00:00+05:00"
    assert _reason(parse_easypost, payload) == "EasyPost: result.updated_at is not a readable time"


def test_lone_surrogates_and_controls_are_dropped():
    payload = load("easypost_delivered.json")
    payload["result"]["signed_by"] = "DANA\ud800 WHITFIELD\x07"
    payload["result"]["tracking_details"][4]["message"] = "Delivered,\udfff\r\nLeft\x1b with Individual"
    u = one(parse_easypost(payload))
    assert u.proof.signed_by == "DANA WHITFIELD"
    assert u.checkpoints[0].message == "Delivered, Left with Individual"
    assert_well_formed([u])


def test_17track_tracking_number_may_be_a_number():
    payload = load("17track_stopped.json")
    payload["data"]["number"] = 940010000000000000
    assert one(parse_17track(payload)).tracking_number == "940010000000000000"


def _reason(parse, payload) -> str:
    with pytest.raises(FeedError) as caught:
        parse(payload)
    assert isinstance(caught.value, ValueError)
    assert caught.value.reason == str(caught.value)
    return caught.value.reason


def _17track_without(*path):
    payload = load("17track_updated.json")
    node = payload
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]
    return payload


@pytest.mark.parametrize("payload, reason", [
    (["a", "list"], "17TRACK: the body is not a JSON object"),
    ({"event": "TRACKING_UPDATED"}, "17TRACK: 'data' is missing or not an object"),
    ({"event": "TRACKING_UPDATED", "data": "1Z999"}, "17TRACK: 'data' is missing or not an object"),
    (_17track_without("data", "number"), "17TRACK: 'data.number' (the tracking number) is missing"),
    ({"event": "TRACKING_STOPPED", "data": {"number": "   "}},
     "17TRACK: 'data.number' (the tracking number) is missing"),
    ({"event": "TRACKING_STOPPED", "data": {"number": 1.5e20}},
     "17TRACK: 'data.number' (the tracking number) is missing"),
    ({"event": "TRACKING_PAUSED", "data": {"number": "1Z"}}, "17TRACK: unsupported event 'TRACKING_PAUSED'"),
    ({"data": {"number": "1Z"}}, "17TRACK: 'event' is missing"),
    (_17track_without("data", "track_info"), "17TRACK: 'data.track_info' is missing or not an object"),
])
def test_17track_feed_errors(payload, reason):
    assert _reason(parse_17track, payload) == reason


def test_17track_unreadable_top_level_times_are_feed_errors():
    payload = load("17track_updated.json")
    payload["data"]["track_info"]["time_metrics"]["estimated_delivery_date"]["to"] = "next Tuesday"
    assert _reason(parse_17track, payload) == (
        "17TRACK: estimated_delivery_date.to is not a readable date")
    payload = load("17track_updated.json")
    payload["data"]["track_info"]["tracking"]["providers"][0]["latest_sync_time"] = 1772627441
    assert _reason(parse_17track, payload) == (
        "17TRACK: provider latest_sync_time is not a readable time")


# ---------------------------------------------------------------------------------------------
# EasyPost
# ---------------------------------------------------------------------------------------------

def test_easypost_in_transit_fixture():
    u = one(parse_easypost(load("easypost_tracker_updated.json")))
    assert_well_formed([u])
    assert (u.source, u.tracking_number, u.carrier) == ("easypost", "9400100000000000000201", "USPS")
    assert u.milestone == M.IN_TRANSIT
    assert u.event_id == "evt_5f3b2a7c9d1e4f6a8b0c2d4e6f8a0b1c"
    assert u.as_of == utc(2026, 3, 4, 4, 41, 12)
    # est_delivery_date "2026-03-06T00:00:00Z" is a date: kept as noon UTC that day
    assert u.expected_delivery == utc(2026, 3, 6, 12, 0)
    assert not u.proof and not u.stopped
    assert [(c.at, c.milestone, c.place, c.sub_status) for c in u.checkpoints] == [
        (utc(2026, 3, 4, 4, 35), M.IN_TRANSIT, "MEMPHIS, TN, US", "arrived_at_facility"),
        (utc(2026, 3, 3, 9, 20), M.IN_TRANSIT, "NASHVILLE, TN, US", "departed_facility"),
        (utc(2026, 3, 2, 23, 47), M.IN_TRANSIT, "LOUISVILLE, KY, US", "received_at_origin_facility"),
        (utc(2026, 3, 2, 16, 11), M.INFO_RECEIVED, "LOUISVILLE, KY, US", "label_created"),
    ]
    assert u.checkpoints[0].message == "Arrived at USPS Regional Facility"


def test_easypost_delivered_fixture():
    u = one(parse_easypost(load("easypost_delivered.json")))
    assert_well_formed([u])
    assert u.tracking_number == "9400100000000000000202"
    assert u.milestone == M.DELIVERED
    assert u.proof.signed_by == "DANA WHITFIELD"
    assert (u.proof.photo_url, u.proof.location) == ("", "")  # EasyPost documents neither
    assert bool(u.proof)
    assert u.event_id == "evt_9a8b7c6d5e4f4a3b2c1d0e9f8a7b6c5d"
    # carrier_detail.est_delivery_date_local "2026-03-05" wins over est_delivery_date
    assert u.expected_delivery == utc(2026, 3, 5, 12, 0)
    delivered = u.checkpoints[0]
    assert (delivered.at, delivered.milestone, delivered.place, delivered.message) == (
        utc(2026, 3, 5, 19, 52), M.DELIVERED, "MEMPHIS, TN, US", "Delivered, Left with Individual")
    assert [c.milestone for c in u.checkpoints] == [
        M.DELIVERED, M.OUT_FOR_DELIVERY, M.IN_TRANSIT, M.IN_TRANSIT, M.INFO_RECEIVED]
    assert summarise(u.checkpoints).delivered_at == utc(2026, 3, 5, 19, 52)


@pytest.mark.parametrize("status, detail, expected", [
    ("unknown", None, None),
    ("pre_transit", "label_created", M.INFO_RECEIVED),
    ("in_transit", "arrived_at_facility", M.IN_TRANSIT),
    ("out_for_delivery", "out_for_delivery", M.OUT_FOR_DELIVERY),
    ("delivered", "arrived_at_destination", M.DELIVERED),
    ("available_for_pickup", "arrived_at_pickup_location", M.AVAILABLE_FOR_PICKUP),
    ("return_to_sender", "return", M.RETURNED),
    ("in_transit", "return", M.RETURNED),  # on its way back
    ("failure", "lost", M.EXCEPTION),
    ("failure", "delivery_exception", M.EXCEPTION),
    ("cancelled", "cancelled", M.EXCEPTION),
    ("error", None, None),
    ("IN_TRANSIT", None, M.IN_TRANSIT),
    (None, None, None),
    (17, [], None),
])
def test_easypost_status_table(status, detail, expected):
    assert milestone_easypost(status, detail) == expected
    payload = load("easypost_tracker_updated.json")
    payload["result"]["status"], payload["result"]["status_detail"] = status, detail
    assert one(parse_easypost(payload)).milestone == expected


def test_easypost_unclassified_scans():
    payload = load("easypost_delivered.json")
    details = payload["result"]["tracking_details"]
    details[2]["status"] = "unknown"  # an older scan EasyPost couldn't classify: in transit
    details[4]["status"] = None  # the newest: takes the tracker's status (delivered)
    details[4]["status_detail"] = None
    u = one(parse_easypost(payload))
    assert u.checkpoints[0].milestone == M.DELIVERED
    assert u.checkpoints[0].sub_status == "arrived_at_destination"
    assert u.checkpoints[2].milestone == M.IN_TRANSIT
    assert u.checkpoints[2].sub_status == "arrived_at_facility"


def test_easypost_out_of_order_and_duplicate_details():
    expected = one(parse_easypost(load("easypost_delivered.json")))
    payload = load("easypost_delivered.json")
    details = payload["result"]["tracking_details"]
    details.reverse()
    details.extend(copy.deepcopy(details[:2]))
    details[0]["datetime"] = "2026-03-05T19:52:00Z"  # the same scan, written in UTC
    assert one(parse_easypost(payload)) == expected


def test_easypost_junk_details_are_skipped():
    payload = load("easypost_tracker_updated.json")
    details = payload["result"]["tracking_details"]
    details.insert(0, {"message": "no time", "status": "in_transit"})
    details.insert(2, {"message": "bad time", "datetime": "2026-13-45T99:00:00Z"})
    details.insert(3, 42)
    u = one(parse_easypost(payload))
    assert len(u.checkpoints) == 4
    payload["result"]["tracking_details"] = []
    u = one(parse_easypost(payload))
    assert u.checkpoints == () and u.milestone == M.IN_TRANSIT
    payload["result"]["tracking_details"] = None
    assert one(parse_easypost(payload)).checkpoints == ()


def test_easypost_message_falls_back_to_description_and_places_from_parts():
    payload = load("easypost_tracker_updated.json")
    details = payload["result"]["tracking_details"]
    details[3]["message"] = None
    details[3]["description"] = "Arrived at hub"
    details[3]["tracking_location"] = {"city": None, "state": "TN", "country": None, "zip": "38118"}
    details[2]["tracking_location"] = None
    u = one(parse_easypost(payload))
    assert (u.checkpoints[0].message, u.checkpoints[0].place) == ("Arrived at hub", "TN")
    assert u.checkpoints[1].place == ""


def test_easypost_tracker_created_and_other_events():
    payload = load("easypost_tracker_updated.json")
    payload["description"] = "tracker.created"
    assert one(parse_easypost(payload)).tracking_number == "9400100000000000000201"
    # the same webhook URL receives every EasyPost event: others are ignored, not refused
    payload["description"] = "batch.updated"
    assert parse_easypost(payload) == []


def test_easypost_expected_delivery_with_a_time_is_kept():
    payload = load("easypost_tracker_updated.json")
    payload["result"]["est_delivery_date"] = "2026-03-06T20:00:00-06:00"
    assert one(parse_easypost(payload)).expected_delivery == utc(2026, 3, 7, 2, 0)
    payload["result"]["est_delivery_date"] = None
    assert one(parse_easypost(payload)).expected_delivery is None


def _easypost(mutate):
    payload = load("easypost_tracker_updated.json")
    mutate(payload)
    return payload


@pytest.mark.parametrize("payload, reason", [
    ("tracker.updated", "EasyPost: the body is not a JSON object"),
    (_easypost(lambda p: p.pop("description")), "EasyPost: 'description' (the event type) is missing"),
    (_easypost(lambda p: p.update(description=None)),
     "EasyPost: 'description' (the event type) is missing"),
    (_easypost(lambda p: p.pop("result")), "EasyPost: 'result' is missing or not a Tracker object"),
    (_easypost(lambda p: p.update(result=[])), "EasyPost: 'result' is missing or not a Tracker object"),
    (_easypost(lambda p: p["result"].update(object="Shipment")),
     "EasyPost: 'result' is not a Tracker object"),
    (_easypost(lambda p: p["result"].pop("tracking_code")),
     "EasyPost: 'result.tracking_code' (the tracking number) is missing"),
    (_easypost(lambda p: p["result"].update(updated_at="2026-03-04 at noon")),
     "EasyPost: result.updated_at is not a readable time"),
    (_easypost(lambda p: p["result"].update(est_delivery_date="soon")),
     "EasyPost: est_delivery_date is not a readable date"),
    (_easypost(lambda p: p["result"]["carrier_detail"].update(est_delivery_date_local=20260306)),
     "EasyPost: carrier_detail.est_delivery_date_local is not a readable date"),
])
def test_easypost_feed_errors(payload, reason):
    assert _reason(parse_easypost, payload) == reason


# ---------------------------------------------------------------------------------------------
# Shopify
# ---------------------------------------------------------------------------------------------

def test_shopify_fulfillment_create_fixture():
    updates = parse_shopify_fulfillment(load("shopify_fulfillment_create.json"))
    assert_well_formed(updates)
    assert [u.tracking_number for u in updates] == ["1Z999AA10000000301", "1Z999AA10000000302"]
    for u in updates:
        assert (u.source, u.carrier) == ("shopify", "UPS")
        assert u.checkpoints == ()  # shipment_status is null: no scan to report
        assert u.milestone == M.INFO_RECEIVED
        assert u.as_of == utc(2026, 3, 2, 14, 14, 28)
        assert u.expected_delivery is None and not u.proof and not u.stopped


def test_shopify_fulfillment_update_delivered_fixture():
    updates = parse_shopify_fulfillment(load("shopify_fulfillment_update_delivered.json"),
                                        event_id="98880550-7158-44d4-b7cd-2c97c8a091b5")
    assert_well_formed(updates)
    assert len(updates) == 2
    for u in updates:
        assert u.milestone == M.DELIVERED
        assert u.event_id == "98880550-7158-44d4-b7cd-2c97c8a091b5"
        (cp,) = u.checkpoints
        assert (cp.at, cp.milestone, cp.message, cp.sub_status, cp.place) == (
            utc(2026, 3, 5, 21, 41, 9), M.DELIVERED, "Delivered", "delivered", "")


@pytest.mark.parametrize("shipment_status, expected", [
    ("label_printed", M.INFO_RECEIVED),
    ("label_purchased", M.INFO_RECEIVED),
    ("confirmed", M.INFO_RECEIVED),
    ("carrier_picked_up", M.IN_TRANSIT),
    ("in_transit", M.IN_TRANSIT),
    ("delayed", M.IN_TRANSIT),
    ("out_for_delivery", M.OUT_FOR_DELIVERY),
    ("ready_for_pickup", M.AVAILABLE_FOR_PICKUP),
    ("attempted_delivery", M.EXCEPTION),
    ("failure", M.EXCEPTION),
    ("delivered", M.DELIVERED),
    ("picked_up", M.DELIVERED),
])
def test_shopify_shipment_status_table(shipment_status, expected):
    payload = load("shopify_fulfillment_update_delivered.json")
    payload["shipment_status"] = shipment_status
    for u in parse_shopify_fulfillment(payload):
        assert u.milestone == expected
        assert [(c.at, c.milestone, c.sub_status) for c in u.checkpoints] == [
            (utc(2026, 3, 5, 21, 41, 9), expected, shipment_status)]


@pytest.mark.parametrize("shipment_status", [None, "", "label_voided", 7, ["delivered"]])
def test_shopify_without_a_known_shipment_status(shipment_status):
    payload = load("shopify_fulfillment_update_delivered.json")
    payload["shipment_status"] = shipment_status
    for u in parse_shopify_fulfillment(payload):
        assert u.checkpoints == () and u.milestone == M.INFO_RECEIVED


def test_shopify_tracking_numbers():
    payload = load("shopify_fulfillment_update_delivered.json")
    payload["tracking_numbers"] = ["1Z999AA10000000302", " 1Z999AA10000000302 ", None, 94001,
                                   {"number": "x"}, ""]
    assert [u.tracking_number for u in parse_shopify_fulfillment(payload)] == [
        "1Z999AA10000000302", "94001", "1Z999AA10000000301"]
    payload["tracking_numbers"] = None  # only the legacy single field
    assert [u.tracking_number for u in parse_shopify_fulfillment(payload)] == [
        "1Z999AA10000000301"]
    # marked fulfilled without tracking: nothing to track, and not worth a Shopify retry
    payload["tracking_number"] = None
    payload["tracking_numbers"] = []
    assert parse_shopify_fulfillment(payload) == []
    payload["updated_at"] = payload["created_at"] = None  # even with no time to read
    assert parse_shopify_fulfillment(payload) == []


def test_shopify_rest_response_shape_is_unwrapped():
    payload = {"fulfillment": load("shopify_fulfillment_update_delivered.json")}
    assert len(parse_shopify_fulfillment(payload)) == 2


@pytest.mark.parametrize("status", ["cancelled", "error", "failure"])
def test_shopify_dead_fulfillment_stops_tracking(status):
    payload = load("shopify_fulfillment_update_delivered.json")
    payload["status"] = status
    for u in parse_shopify_fulfillment(payload):
        assert u.stopped and u.checkpoints == () and u.milestone is None
        assert u.as_of == utc(2026, 3, 5, 21, 41, 9)


def test_shopify_times():
    payload = load("shopify_fulfillment_update_delivered.json")
    payload["updated_at"] = None  # falls back to created_at
    (cp,) = parse_shopify_fulfillment(payload)[0].checkpoints
    assert cp.at == utc(2026, 3, 2, 14, 14, 27)
    payload["created_at"] = None
    assert _reason(parse_shopify_fulfillment, payload) == (
        "Shopify: 'updated_at' is missing, so the shipment status has no time")
    payload["updated_at"] = "05/03/2026 16:41"
    assert _reason(parse_shopify_fulfillment, payload) == (
        "Shopify: 'updated_at' is not a readable time")
    assert _reason(parse_shopify_fulfillment, "{}") == "Shopify: the body is not a JSON object"


def test_shopify_untrusted_types():
    payload = load("shopify_fulfillment_update_delivered.json")
    payload["tracking_company"] = "United Parcel Service " * 10
    payload["status"] = ["cancelled"]
    updates = parse_shopify_fulfillment(payload, event_id=None)
    assert_well_formed(updates)
    assert updates[0].carrier == ("United Parcel Service " * 10)[:MAX_CARRIER].rstrip()
    assert not updates[0].stopped and updates[0].event_id == ""


# ---------------------------------------------------------------------------------------------
# Fixtures share one scheme the integrator can reuse
# ---------------------------------------------------------------------------------------------

def test_fixture_catalogue():
    newest = {
        "17track_updated.json": ("1Z999AA10000000101", utc(2026, 3, 4, 12, 12)),
        "17track_delivered.json": ("1Z999AA10000000102", utc(2026, 3, 5, 20, 37)),
        "17track_stopped.json": ("1Z999AA10000000102", None),
        "easypost_tracker_updated.json": ("9400100000000000000201", utc(2026, 3, 4, 4, 35)),
        "easypost_delivered.json": ("9400100000000000000202", utc(2026, 3, 5, 19, 52)),
        "shopify_fulfillment_create.json": ("1Z999AA10000000301", None),
        "shopify_fulfillment_update_delivered.json": ("1Z999AA10000000301",
                                                      utc(2026, 3, 5, 21, 41, 9)),
    }
    assert {p.name for p in FIXTURES.glob("*.json")} == set(newest)
    parsers = {"17track": parse_17track, "easypost": parse_easypost,
               "shopify": parse_shopify_fulfillment}
    for name, (number, newest_scan) in newest.items():
        first = parsers[name.split("_")[0]](load(name))[0]
        assert first.tracking_number == number
        assert (first.checkpoints[0].at if first.checkpoints else None) == newest_scan


# ---------------------------------------------------------------------------------------------
# Property tests: nothing but FeedError, whatever arrives
# ---------------------------------------------------------------------------------------------

KNOWN_KEYS = ["event", "data", "number", "carrier", "track_info", "latest_status", "status",
              "sub_status", "latest_event", "tracking", "providers", "provider", "key", "name",
              "events", "time_iso", "time_utc", "time_raw", "date", "time", "timezone",
              "description", "location", "stage", "address", "city", "state", "country",
              "time_metrics", "estimated_delivery_date", "from", "to", "latest_sync_time",
              "object", "id", "result", "tracking_code", "status_detail", "tracking_details",
              "datetime", "message", "tracking_location", "carrier_detail",
              "est_delivery_date", "est_delivery_date_local", "signed_by", "updated_at",
              "created_at", "tracking_number", "tracking_numbers", "tracking_company",
              "shipment_status", "fulfillment"]
KNOWN_WORDS = ["TRACKING_UPDATED", "TRACKING_STOPPED", "tracker.updated", "tracker.created",
               "Tracker", "Event", "Delivered", "Exception_Returning", "InTransit", "NotFound",
               "delivered", "return", "cancelled", "in_transit", "PickedUp",
               "2026-03-04T12:12:00Z", "2026-03-04T06:12:00-06:00", "2026-03-05", "0001-01-01",
               "9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+05:00", "2026-03-04T25:00:00Z",
               "-06:00", "1Z999AA10000000101", "", " ", "\ud800", "\x00\n\t"]

json_scalars = (st.none() | st.booleans() | st.integers() | st.integers(min_value=10**4300)
                | st.floats() | st.text(max_size=40) | st.sampled_from(KNOWN_WORDS))
json_values = st.recursive(
    json_scalars,
    lambda children: (st.lists(children, max_size=6)
                      | st.dictionaries(st.sampled_from(KNOWN_KEYS) | st.text(max_size=8),
                                        children, max_size=6)),
    max_leaves=40)

PARSERS = [parse_17track, parse_easypost, parse_shopify_fulfillment]


def _survives(parse, payload) -> None:
    try:
        updates = parse(payload)
    except FeedError as error:
        assert isinstance(error.reason, str) and error.reason
        return
    assert_well_formed(updates)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payload=json_values)
def test_arbitrary_json_raises_only_feed_error(payload):
    for parse in PARSERS:
        _survives(parse, payload)


@settings(max_examples=200, deadline=None)
@given(event=st.sampled_from(["TRACKING_UPDATED", "TRACKING_STOPPED"]), data=json_values)
def test_arbitrary_17track_data_raises_only_feed_error(event, data):
    _survives(parse_17track, {"event": event, "data": data})


@settings(max_examples=200, deadline=None)
@given(description=st.sampled_from(["tracker.updated", "tracker.created"]), result=json_values)
def test_arbitrary_easypost_result_raises_only_feed_error(description, result):
    _survives(parse_easypost, {"object": "Event", "id": "evt_x", "description": description,
                               "result": result})


def _paths(node, path=()):
    """Every (parent, key) in a JSON document."""
    if isinstance(node, dict):
        items = node.items()
    elif isinstance(node, list):
        items = enumerate(node)
    else:
        return
    for key, child in items:
        yield node, key
        yield from _paths(child, path + (key,))


@st.composite
def mutated(draw, name):
    doc = load(name)
    for _ in range(draw(st.integers(min_value=1, max_value=6))):
        spots = list(_paths(doc))
        if not spots:
            break
        parent, key = draw(st.sampled_from(spots))
        if draw(st.booleans()):
            del parent[key]  # drop it
        else:
            parent[key] = draw(json_values)  # replace it with anything
    return doc


FIXTURE_PARSERS = [
    ("17track_updated.json", parse_17track),
    ("17track_delivered.json", parse_17track),
    ("17track_stopped.json", parse_17track),
    ("easypost_tracker_updated.json", parse_easypost),
    ("easypost_delivered.json", parse_easypost),
    ("shopify_fulfillment_create.json", parse_shopify_fulfillment),
    ("shopify_fulfillment_update_delivered.json", parse_shopify_fulfillment),
]


@pytest.mark.parametrize("name, parse", FIXTURE_PARSERS, ids=[n for n, _ in FIXTURE_PARSERS])
def test_mutated_fixtures_raise_only_feed_error(name, parse):
    @settings(max_examples=150, deadline=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(doc=mutated(name))
    def check(doc):
        _survives(parse, doc)

    check()
