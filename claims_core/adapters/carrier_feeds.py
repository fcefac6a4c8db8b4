"""Carrier feeds: 17TRACK, EasyPost and Shopify fulfillment webhooks, read into one shape.

Each ``parse_*`` function takes a webhook body (already JSON-decoded) and returns a list of
:class:`~claims_core.domain.tracking.TrackingUpdate`. Nothing here touches the database or the
network; signatures (17TRACK ``sign``, EasyPost ``X-Hmac-Signature``, Shopify
``X-Shopify-Hmac-Sha256``) are checked by the caller before the body reaches these functions.

Shapes modelled (from each provider's documented examples):

- **17TRACK Tracking API v2.2 / v2.4 push** (``https://api.17track.net/en/doc?version=v2.4``,
  "notification status & content"): ``{"event": "TRACKING_UPDATED" | "TRACKING_STOPPED",
  "data": {"number", "carrier", "param", "tag", "track_info": {"latest_status": {status,
  sub_status, sub_status_descr}, "latest_event", "time_metrics": {"estimated_delivery_date":
  {source, from, to}}, "milestone", "misc_info", "tracking": {"providers": [{"provider": {key,
  name, ...}, "latest_sync_time", "events": [{time_iso, time_utc, time_raw, description,
  location, stage, sub_status, address}]}]}}}}``. The 9 main statuses and 30 sub-statuses are
  those of v2.2 (unchanged in v2.4). The push carries **no proof of delivery** (no signer, photo
  or delivery location field): ``proof`` is always empty for 17TRACK.
- **EasyPost API v2 Event / Tracker** (docs.easypost.com "Tracker", "Webhooks Guide"; the
  ``tracking-webhook.json`` example of the Tracking Guide): ``{"object": "Event", "id": "evt_…",
  "description": "tracker.updated" | "tracker.created", "result": {Tracker}}``, Tracker with
  ``tracking_code, carrier, status, status_detail, signed_by, est_delivery_date, updated_at,
  tracking_details[] {datetime, message, description, status, status_detail,
  tracking_location {city, state, country, zip}}, carrier_detail {est_delivery_date_local, …}``.
  Proof of delivery: ``signed_by`` only (the Tracker documents no delivery photo or location).
- **Shopify Admin REST Fulfillment** (2024-10 … 2025-10; the ``fulfillments/create`` and
  ``fulfillments/update`` webhook body is the Fulfillment resource): ``id, order_id, status,
  shipment_status, tracking_company, tracking_number, tracking_numbers, tracking_url(s),
  created_at, updated_at, line_items``. Shopify gives no scan history, no expected delivery and
  no proof of delivery.

Rules every parser follows:

- Every time is timezone-aware UTC. A time without an offset is read as UTC. A time outside
  1990–2099 counts as unreadable (carriers send ``0001-01-01`` placeholders).
- An expected delivery that is only a *date* (``2026-03-06``, or EasyPost's midnight-UTC
  ``2026-03-06T00:00:00Z``) is kept as **noon UTC** of that day, so the store's local calendar
  day (``domain.windows.local_date``) is that same day from UTC-11 to UTC+11.
- Strings are trimmed, control characters become spaces, runs of whitespace become one space,
  and lengths are capped (message 500, place 200, sub-status 64, carrier 64, tracking number 64).
  Numbers where a string is expected are written out; anything else (null, lists, objects,
  booleans) reads as empty.
- A missing required part raises :class:`FeedError` (its ``reason`` goes into the 400 response
  and the log). One unreadable event inside a list is skipped and logged, never fatal.
- Events may come in any order and more than once; checkpoints come back newest first
  (``domain.tracking.ordered``), one per (time, message).
"""
from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, time, timedelta, timezone
from typing import Any

from ..domain.text import UnreadableTime, read_text, read_time
from ..domain.tracking import Checkpoint, ProofOfDelivery, TrackingUpdate, ordered
from ..domain.vocabulary import Milestone

log = logging.getLogger(__name__)

MAX_MESSAGE = 500
MAX_PLACE = 200
MAX_SUB_STATUS = 64
MAX_CARRIER = 64
MAX_TRACKING_NUMBER = 64
MAX_EVENT_ID = 64
MAX_SIGNED_BY = 200

SOURCE_17TRACK = "17track"
SOURCE_EASYPOST = "easypost"
SOURCE_SHOPIFY = "shopify"

M = Milestone


class FeedError(ValueError):
    """The payload isn't the shape we expect; ``reason`` is a short human-readable reason (goes
    into a 400 response and the log)."""

    reason: str

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


# --------------------------------------------------------------------------------------------
# Reading untrusted values: text and times through ``domain.text``, the one reader of both
# --------------------------------------------------------------------------------------------

_text = read_text  # a one-line string from whatever the payload holds there ("" for no text)
_Unreadable = UnreadableTime


def _identifier(value: Any, cap: int) -> str:
    """A tracking number or id: text or a whole number, never a float (it would lose digits)."""
    if isinstance(value, float):
        return ""
    return _text(value, cap)


def _get(obj: Any, *keys: str) -> Any:
    """``obj[k1][k2]…`` or None as soon as a level isn't an object."""
    for key in keys:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def _items(value: Any) -> list[Any]:
    """The items of a list (empty when it isn't one); the caller checks each item's type."""
    return list(value) if isinstance(value, list) else []


def _key(value: Any) -> str:
    """A vocabulary word (status, stage) in lower case, for looking up in a table."""
    return _text(value, 64).lower()


def _parse_local(value: Any) -> datetime:
    """An ISO-8601 time in its own offset (naive → UTC); raises _Unreadable."""
    return read_time(value, keep_offset=True)


def _parse_time(value: Any) -> datetime:
    return _parse_local(value).astimezone(timezone.utc)


def _is_blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _required_time(value: Any, where: str) -> datetime | None:
    """A top-level time: None when absent, FeedError when present but unreadable."""
    if _is_blank(value):
        return None
    try:
        return _parse_time(value)
    except _Unreadable:
        raise FeedError(f"{where} is not a readable time") from None


def _expected_delivery(value: Any, where: str) -> datetime | None:
    """A carrier's delivery estimate; a bare date (or midnight UTC) becomes noon UTC that day."""
    if _is_blank(value):
        return None
    try:
        local = _parse_local(value)
    except _Unreadable:
        raise FeedError(f"{where} is not a readable date") from None
    if local.utcoffset() == timedelta(0) and local.time() == time(0, 0):
        return datetime.combine(local.date(), time(12, 0), tzinfo=timezone.utc)
    return local.astimezone(timezone.utc)


def _place(*parts: Any) -> str:
    """ "City, ST, CC" from whichever parts exist."""
    out: list[str] = []
    for part in parts:
        text = _text(part, MAX_PLACE)
        if text and (not out or out[-1].lower() != text.lower()):
            out.append(text)
    return ", ".join(out)[:MAX_PLACE].rstrip(", ")


# --------------------------------------------------------------------------------------------
# Scans → checkpoints (shared by 17TRACK and EasyPost)
# --------------------------------------------------------------------------------------------

@dataclass
class _Scan:
    at: datetime
    message: str
    place: str
    sub_status: str
    milestone: Milestone | None  # None: the feed didn't classify this scan


def _checkpoints(scans: Iterable[_Scan], newest_takes: Milestone | None,
                 newest_sub_status: str = "") -> tuple[Checkpoint, ...]:
    """One checkpoint per (time, message), newest first.

    A scan the feed didn't classify counts as in transit, except the newest, which takes the
    feed's own current status (``newest_takes``) when it has one.
    """
    merged: dict[tuple[datetime, str], _Scan] = {}
    for scan in scans:
        key = (scan.at, scan.message.casefold())
        seen = merged.get(key)
        if seen is None:
            merged[key] = scan
            continue
        # the same scan twice (a replay, or latest_event repeating the list): keep what each knew
        if seen.milestone is None and scan.milestone is not None:
            seen.milestone, seen.sub_status = scan.milestone, scan.sub_status or seen.sub_status
        seen.place = seen.place or scan.place
        seen.sub_status = seen.sub_status or scan.sub_status
    if not merged:
        return ()
    newest = max(at for at, _ in merged)
    checkpoints = []
    for scan in merged.values():
        milestone, sub_status = scan.milestone, scan.sub_status
        if milestone is None:
            if scan.at == newest and newest_takes is not None:
                milestone, sub_status = newest_takes, sub_status or newest_sub_status
            else:
                milestone = M.IN_TRANSIT
        checkpoints.append(Checkpoint(at=scan.at, milestone=milestone, message=scan.message,
                                      place=scan.place, sub_status=sub_status))
    return tuple(ordered(checkpoints))


def _log_skipped(source: str, number: str, skipped: int) -> None:
    if skipped:
        log.warning("%s %s: skipped %d unreadable event(s)", source, number, skipped)


# --------------------------------------------------------------------------------------------
# 17TRACK
# --------------------------------------------------------------------------------------------

# 17TRACK carrier codes (res.17track.net/asset/carrier/info/apicarrier.all.json), the common ones.
CARRIERS_17TRACK: dict[int, str] = {
    21051: "USPS",
    100001: "DHL Express",
    100002: "UPS",
    100003: "FedEx",
    3011: "China Post",
    7041: "DHL Paket",
}

# latest_status.status (the 9 main statuses) → milestone; NotFound means "no information".
STATUS_17TRACK: dict[str, Milestone | None] = {
    "notfound": None,
    "inforeceived": M.INFO_RECEIVED,
    "intransit": M.IN_TRANSIT,
    "expired": M.EXPIRED,
    "availableforpickup": M.AVAILABLE_FOR_PICKUP,
    "outfordelivery": M.OUT_FOR_DELIVERY,
    "deliveryfailure": M.EXCEPTION,
    "delivered": M.DELIVERED,
    "exception": M.EXCEPTION,
}
# Sub-statuses that say more than their main status.
RETURN_SUB_STATUSES_17TRACK = frozenset({"exception_returning", "exception_returned"})
# An event's ``stage`` (the key stages of track_info.milestone, plus the main statuses).
STAGE_17TRACK: dict[str, Milestone] = {
    "inforeceived": M.INFO_RECEIVED,
    "pickedup": M.IN_TRANSIT,
    "departure": M.IN_TRANSIT,
    "arrival": M.IN_TRANSIT,
    "intransit": M.IN_TRANSIT,
    "availableforpickup": M.AVAILABLE_FOR_PICKUP,
    "outfordelivery": M.OUT_FOR_DELIVERY,
    "delivered": M.DELIVERED,
    "returning": M.RETURNED,
    "returned": M.RETURNED,
    "failure": M.EXCEPTION,
    "deliveryfailure": M.EXCEPTION,
    "exception": M.EXCEPTION,
    "expired": M.EXPIRED,
}
_GENERIC = frozenset({M.INFO_RECEIVED, M.IN_TRANSIT})
_CARRIER_CODE = re.compile(r"[0-9]{1,12}")


def milestone_17track(status: Any, sub_status: Any = None) -> Milestone | None:
    """17TRACK's status / sub-status (e.g. ``Exception`` / ``Exception_Returning``) → milestone.

    Without a main status the sub-status's prefix (``Delivered_Other`` → Delivered) decides.
    """
    sub = _key(sub_status)
    if sub in RETURN_SUB_STATUSES_17TRACK:
        return M.RETURNED
    main = _key(status)
    if main in STATUS_17TRACK:
        return STATUS_17TRACK[main]
    return STATUS_17TRACK.get(sub.split("_", 1)[0])


def _event_milestone_17track(stage: Any, sub_status: Any) -> Milestone | None:
    """The more specific of what the event's stage and sub-status say (None if neither)."""
    by_stage = STAGE_17TRACK.get(_key(stage))
    by_sub = milestone_17track(None, sub_status)
    if by_stage is None or by_sub is None:
        return by_stage or by_sub
    if by_stage in _GENERIC and by_sub not in _GENERIC:
        return by_sub
    return by_stage


def _carrier_17track(data: dict, providers: list[dict]) -> str:
    raw = data.get("carrier")
    code: int | None = None
    if isinstance(raw, int) and not isinstance(raw, bool):
        code = raw
    elif isinstance(raw, str) and _CARRIER_CODE.fullmatch(raw.strip()):
        code = int(raw.strip())
    if code in CARRIERS_17TRACK:
        return CARRIERS_17TRACK[code]
    if code:
        for provider in providers:
            info = provider.get("provider")
            if isinstance(info, dict) and info.get("key") == code:
                name = _text(info.get("name"), MAX_CARRIER)
                if name:
                    return name
        return _text(code, MAX_CARRIER)
    return ""


def _time_17track(event: dict) -> datetime:
    """An event's time: ``time_utc``, else ``time_iso``, else ``time_raw`` (date, time, zone)."""
    for key in ("time_utc", "time_iso"):
        if not _is_blank(event.get(key)):
            try:
                return _parse_time(event.get(key))
            except _Unreadable:
                pass
    raw = event.get("time_raw")
    if isinstance(raw, dict) and isinstance(raw.get("date"), str):
        stamp = raw["date"].strip()
        if isinstance(raw.get("time"), str) and raw["time"].strip():
            stamp += "T" + raw["time"].strip()
            zone = raw.get("timezone")
            if isinstance(zone, str) and zone.strip():
                stamp += zone.strip()
        return _parse_time(stamp)
    raise _Unreadable


def _scan_17track(event: Any) -> _Scan:
    if not isinstance(event, dict):
        raise _Unreadable
    at = _time_17track(event)
    address = event.get("address")
    place = ""
    if isinstance(address, dict) and _text(address.get("city"), MAX_PLACE):
        place = _place(address.get("city"), address.get("state"), address.get("country"))
    place = place or _text(event.get("location"), MAX_PLACE)
    if not place and isinstance(address, dict):
        place = _place(address.get("state"), address.get("country"))
    stage, sub_status = event.get("stage"), event.get("sub_status")
    return _Scan(at=at,
                 message=_text(event.get("description"), MAX_MESSAGE),
                 place=place,
                 sub_status=_text(sub_status, MAX_SUB_STATUS) or _text(stage, MAX_SUB_STATUS),
                 milestone=_event_milestone_17track(stage, sub_status))


def parse_17track(payload: dict) -> list[TrackingUpdate]:
    """A 17TRACK push (``TRACKING_UPDATED`` or ``TRACKING_STOPPED``) → one update."""
    if not isinstance(payload, dict):
        raise FeedError("17TRACK: the body is not a JSON object")
    event = _text(payload.get("event"), 64)
    data = payload.get("data")
    if not isinstance(data, dict):
        raise FeedError("17TRACK: 'data' is missing or not an object")
    number = _identifier(data.get("number"), MAX_TRACKING_NUMBER)
    if not number:
        raise FeedError("17TRACK: 'data.number' (the tracking number) is missing")
    kind = event.upper()
    track_info = data.get("track_info")
    providers = [p for p in _items(_get(track_info, "tracking", "providers"))
                 if isinstance(p, dict)]
    carrier = _carrier_17track(data, providers)

    if kind == "TRACKING_STOPPED":
        return [TrackingUpdate(source=SOURCE_17TRACK, tracking_number=number, carrier=carrier,
                               stopped=True)]
    if kind != "TRACKING_UPDATED":
        raise FeedError(f"17TRACK: unsupported event {event!r}" if event
                        else "17TRACK: 'event' is missing")
    if not isinstance(track_info, dict):
        raise FeedError("17TRACK: 'data.track_info' is missing or not an object")

    latest = track_info.get("latest_status")
    latest_status = _get(latest, "status")
    latest_sub = _get(latest, "sub_status")
    milestone = milestone_17track(latest_status, latest_sub)

    raw_events: list[Any] = []
    for provider in providers:
        raw_events.extend(_items(provider.get("events")))
    if isinstance(track_info.get("latest_event"), dict):
        raw_events.append(track_info["latest_event"])  # usually a repeat of the newest event
    scans, skipped = [], 0
    for raw in raw_events:
        try:
            scans.append(_scan_17track(raw))
        except _Unreadable:
            skipped += 1
    _log_skipped("17TRACK", number, skipped)

    estimate = _get(track_info, "time_metrics", "estimated_delivery_date")
    expected = (_expected_delivery(_get(estimate, "to"), "17TRACK: estimated_delivery_date.to")
                or _expected_delivery(_get(estimate, "from"),
                                      "17TRACK: estimated_delivery_date.from"))
    synced = [t for t in (_required_time(p.get("latest_sync_time"),
                                         "17TRACK: provider latest_sync_time")
                          for p in providers) if t is not None]
    return [TrackingUpdate(
        source=SOURCE_17TRACK,
        tracking_number=number,
        carrier=carrier,
        checkpoints=_checkpoints(scans, milestone, _text(latest_sub, MAX_SUB_STATUS)),
        milestone=milestone,
        expected_delivery=expected,
        as_of=max(synced) if synced else None,
    )]


# --------------------------------------------------------------------------------------------
# EasyPost
# --------------------------------------------------------------------------------------------

# Tracker.status / TrackingDetail.status → milestone. ``unknown`` and ``error`` say nothing about
# the parcel (error: EasyPost couldn't read the carrier), so they give no milestone.
STATUS_EASYPOST: dict[str, Milestone | None] = {
    "unknown": None,
    "pre_transit": M.INFO_RECEIVED,
    "in_transit": M.IN_TRANSIT,
    "out_for_delivery": M.OUT_FOR_DELIVERY,
    "delivered": M.DELIVERED,
    "available_for_pickup": M.AVAILABLE_FOR_PICKUP,
    "return_to_sender": M.RETURNED,
    "failure": M.EXCEPTION,
    "cancelled": M.EXCEPTION,
    "error": None,
}
TRACKER_EVENTS_EASYPOST = frozenset({"tracker.updated", "tracker.created"})


def milestone_easypost(status: Any, status_detail: Any = None) -> Milestone | None:
    """EasyPost status (refined by status_detail ``return``: on its way back) → milestone."""
    main = _key(status)
    if _key(status_detail) == "return" and main not in ("delivered", "return_to_sender"):
        return M.RETURNED
    return STATUS_EASYPOST.get(main)


def _scan_easypost(detail: Any) -> _Scan:
    if not isinstance(detail, dict):
        raise _Unreadable
    at = _parse_time(detail.get("datetime"))
    where = detail.get("tracking_location")
    place = _place(*(_get(where, k) for k in ("city", "state", "country")))
    return _Scan(at=at,
                 message=(_text(detail.get("message"), MAX_MESSAGE)
                          or _text(detail.get("description"), MAX_MESSAGE)),
                 place=place,
                 sub_status=(_text(detail.get("status_detail"), MAX_SUB_STATUS)
                             or _text(detail.get("status"), MAX_SUB_STATUS)),
                 milestone=milestone_easypost(detail.get("status"), detail.get("status_detail")))


def parse_easypost(payload: dict) -> list[TrackingUpdate]:
    """An EasyPost ``tracker.created`` / ``tracker.updated`` Event → one update.

    An EasyPost webhook receives every event of the account (batches, refunds, …); those that
    aren't about a tracker give an empty list, not an error, so EasyPost doesn't retry them.
    """
    if not isinstance(payload, dict):
        raise FeedError("EasyPost: the body is not a JSON object")
    description = _text(payload.get("description"), 64)
    if not description:
        raise FeedError("EasyPost: 'description' (the event type) is missing")
    if description.lower() not in TRACKER_EVENTS_EASYPOST:
        return []
    tracker = payload.get("result")
    if not isinstance(tracker, dict):
        raise FeedError("EasyPost: 'result' is missing or not a Tracker object")
    kind = tracker.get("object")
    if kind is not None and _text(kind, 64) != "Tracker":
        raise FeedError("EasyPost: 'result' is not a Tracker object")
    number = _identifier(tracker.get("tracking_code"), MAX_TRACKING_NUMBER)
    if not number:
        raise FeedError("EasyPost: 'result.tracking_code' (the tracking number) is missing")

    status, status_detail = tracker.get("status"), tracker.get("status_detail")
    milestone = milestone_easypost(status, status_detail)
    scans, skipped = [], 0
    for detail in _items(tracker.get("tracking_details")):
        try:
            scans.append(_scan_easypost(detail))
        except _Unreadable:
            skipped += 1
    _log_skipped("EasyPost", number, skipped)

    # the carrier's local delivery date is the better estimate when it is given
    expected = (_expected_delivery(_get(tracker, "carrier_detail", "est_delivery_date_local"),
                                   "EasyPost: carrier_detail.est_delivery_date_local")
                or _expected_delivery(tracker.get("est_delivery_date"),
                                      "EasyPost: est_delivery_date"))
    newest_sub = _text(status_detail, MAX_SUB_STATUS) or _text(status, MAX_SUB_STATUS)
    return [TrackingUpdate(
        source=SOURCE_EASYPOST,
        tracking_number=number,
        carrier=_text(tracker.get("carrier"), MAX_CARRIER),
        checkpoints=_checkpoints(scans, milestone, newest_sub),
        milestone=milestone,
        expected_delivery=expected,
        proof=ProofOfDelivery(signed_by=_text(tracker.get("signed_by"), MAX_SIGNED_BY)),
        event_id=_identifier(payload.get("id"), MAX_EVENT_ID),
        as_of=_required_time(tracker.get("updated_at"), "EasyPost: result.updated_at"),
    )]


# --------------------------------------------------------------------------------------------
# Shopify
# --------------------------------------------------------------------------------------------

# Fulfillment.shipment_status → milestone (REST values, plus carrier_picked_up, delayed and
# picked_up, which newer API versions add). A failed attempt counts as a delivery problem, as
# 17TRACK's DeliveryFailure does; "delayed" is still moving.
SHIPMENT_STATUS_SHOPIFY: dict[str, Milestone] = {
    "label_printed": M.INFO_RECEIVED,
    "label_purchased": M.INFO_RECEIVED,
    "confirmed": M.INFO_RECEIVED,
    "carrier_picked_up": M.IN_TRANSIT,
    "in_transit": M.IN_TRANSIT,
    "delayed": M.IN_TRANSIT,
    "out_for_delivery": M.OUT_FOR_DELIVERY,
    "ready_for_pickup": M.AVAILABLE_FOR_PICKUP,
    "attempted_delivery": M.EXCEPTION,
    "failure": M.EXCEPTION,
    "delivered": M.DELIVERED,
    "picked_up": M.DELIVERED,
}
# Shopify's own words for them (FulfillmentDisplayStatus), used as the checkpoint's message.
SHIPMENT_STATUS_LABELS_SHOPIFY = {
    "label_printed": "Label printed",
    "label_purchased": "Label purchased",
    "confirmed": "Confirmed",
    "carrier_picked_up": "Picked up by carrier",
    "in_transit": "In transit",
    "delayed": "Delayed",
    "out_for_delivery": "Out for delivery",
    "ready_for_pickup": "Ready for pickup",
    "attempted_delivery": "Attempted delivery",
    "failure": "Failure",
    "delivered": "Delivered",
    "picked_up": "Picked up",
}
# Fulfillment.status values that mean nothing was (or will be) shipped under these numbers.
DEAD_FULFILLMENT_STATUSES = frozenset({"cancelled", "error", "failure"})


def shopify_tracking_numbers(fulfillment: dict) -> list[str]:
    numbers: list[str] = []
    candidates = _items(fulfillment.get("tracking_numbers")) + [fulfillment.get("tracking_number")]
    for raw in candidates:
        number = _identifier(raw, MAX_TRACKING_NUMBER)
        if number and number not in numbers:
            numbers.append(number)
    return numbers


def parse_shopify_fulfillment(payload: dict, *, event_id: str = "") -> list[TrackingUpdate]:
    """A ``fulfillments/create`` / ``fulfillments/update`` body → one update per tracking number.

    Shopify sends no scan history: a known ``shipment_status`` becomes one checkpoint at
    ``updated_at``; without one there is no checkpoint and the milestone is "label created".
    A fulfillment without tracking numbers (e.g. marked fulfilled by hand) gives an empty list:
    it is valid, and a 400 would only make Shopify retry it. A cancelled (or failed) fulfillment
    gives ``stopped`` updates with no checkpoint. ``event_id`` is Shopify's
    ``X-Shopify-Event-Id`` header, when the caller has it (the body carries no event id).
    """
    if not isinstance(payload, dict):
        raise FeedError("Shopify: the body is not a JSON object")
    fulfillment = payload
    if "id" not in payload and isinstance(payload.get("fulfillment"), dict):
        fulfillment = payload["fulfillment"]  # the REST response shape, {"fulfillment": {...}}
    numbers = shopify_tracking_numbers(fulfillment)
    if not numbers:
        return []
    carrier = _text(fulfillment.get("tracking_company"), MAX_CARRIER)
    updated = _required_time(fulfillment.get("updated_at"), "Shopify: 'updated_at'")
    created = _required_time(fulfillment.get("created_at"), "Shopify: 'created_at'")
    as_of = updated or created
    event_id = _text(event_id, MAX_EVENT_ID)

    if _key(fulfillment.get("status")) in DEAD_FULFILLMENT_STATUSES:
        return [TrackingUpdate(source=SOURCE_SHOPIFY, tracking_number=n, carrier=carrier,
                               stopped=True, event_id=event_id, as_of=as_of) for n in numbers]

    shipment_status = _key(fulfillment.get("shipment_status"))
    milestone = SHIPMENT_STATUS_SHOPIFY.get(shipment_status)
    checkpoints: tuple[Checkpoint, ...] = ()
    if milestone is None:
        milestone = M.INFO_RECEIVED  # a fulfillment exists: at least the label was made
    else:
        if as_of is None:
            raise FeedError("Shopify: 'updated_at' is missing, so the shipment status has no time")
        checkpoints = (Checkpoint(at=as_of, milestone=milestone,
                                  message=SHIPMENT_STATUS_LABELS_SHOPIFY[shipment_status],
                                  sub_status=shipment_status),)
    return [TrackingUpdate(source=SOURCE_SHOPIFY, tracking_number=n, carrier=carrier,
                           checkpoints=checkpoints, milestone=milestone, event_id=event_id,
                           as_of=as_of) for n in numbers]


__all__ = [
    "CARRIERS_17TRACK",
    "SHIPMENT_STATUS_SHOPIFY",
    "STAGE_17TRACK",
    "STATUS_17TRACK",
    "STATUS_EASYPOST",
    "FeedError",
    "milestone_17track",
    "milestone_easypost",
    "parse_17track",
    "parse_easypost",
    "parse_shopify_fulfillment",
]
