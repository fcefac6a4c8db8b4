"""Tracking for demo data, and ``simulate-tracking``: carrier events a new user can watch move.

``history`` makes a plausible scan history for a demo shipment that agrees with its status (a
delivered parcel ends delivered at its delivery time, a stalled one stops where it stalled).
``simulate`` moves parcels that are on their way one step further by posting *signed 17TRACK
webhooks* to a running app, so the events take the same road a real carrier's would.
"""
from __future__ import annotations

import hashlib
import json
import random
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, select

from ..domain.identifiers import normalize_tracking
from ..domain.tracking import Checkpoint, ProofOfDelivery, TrackingUpdate
from ..domain.vocabulary import Milestone, ShipmentStatus
from ..infra.db import read_session, utcnow
from ..infra.models import Order, Shipment
from ..services import tracking
from ..services.unit_of_work import run

ORIGIN = "Louisville, KY, US"
HUBS = ["Indianapolis, IN, US", "Nashville, TN, US", "Memphis, TN, US", "Chicago, IL, US",
        "Dallas, TX, US", "Ontario, CA, US", "Allentown, PA, US"]
M = Milestone


def _dest(order: Order) -> str:
    return ", ".join(p for p in (order.shipping_city, order.shipping_province,
                                 order.shipping_country) if p) or "Destination"


def history(sh: Shipment, order: Order, rng: random.Random, now: datetime) -> TrackingUpdate:
    """Scans for a demo shipment, consistent with its status and times."""
    shipped = sh.shipped_at
    end = min(now, sh.delivered_at or sh.last_scan_at or shipped + timedelta(hours=6))
    span = max(end - shipped, timedelta(minutes=10))
    hubs = rng.sample(HUBS, 2)
    plan = [(0.0, M.INFO_RECEIVED, "Shipping label created", ORIGIN),
            (0.08, M.IN_TRANSIT, "Picked up by carrier", ORIGIN),
            (0.35, M.IN_TRANSIT, "Departed facility", hubs[0]),
            (0.7, M.IN_TRANSIT, "Arrived at facility", hubs[1])]
    status = sh.status
    if status == ShipmentStatus.DELIVERED:
        plan += [(0.9, M.OUT_FOR_DELIVERY, "Out for delivery", _dest(order)),
                 (1.0, M.DELIVERED, rng.choice(["Delivered, front door", "Delivered, in mailbox",
                                                "Delivered, left with neighbour"]), _dest(order))]
    elif status == ShipmentStatus.RETURNED:
        plan += [(0.85, M.EXCEPTION, "Address could not be found", _dest(order)),
                 (1.0, M.RETURNED, "Returned to sender", ORIGIN)]
    elif status == ShipmentStatus.EXCEPTION:
        plan += [(1.0, M.EXCEPTION, "Delayed: weather in the network", hubs[1])]
    else:  # in transit: the last scan is the newest
        plan = [p for p in plan if p[0] <= 0.7]
        plan[-1] = (1.0, plan[-1][1], plan[-1][2], plan[-1][3])
    cps = tuple(Checkpoint(shipped + span * f, m, msg, place) for f, m, msg, place in plan)
    signed = rng.choice(["J. RIVERA", "FRONT DOOR", ""]) if status == ShipmentStatus.DELIVERED else ""
    return TrackingUpdate(
        "demo", sh.tracking_number or "", sh.carrier, cps,
        expected_delivery=shipped + timedelta(days=5),
        proof=ProofOfDelivery(signed_by=signed, location="Front door" if signed else ""))


# --- simulate-tracking: the next step of parcels on their way, as signed 17TRACK pushes ---------

NEXT = {M.INFO_RECEIVED: (M.IN_TRANSIT, "Picked up by carrier"),
        M.IN_TRANSIT: (M.OUT_FOR_DELIVERY, "Out for delivery"),
        M.OUT_FOR_DELIVERY: (M.DELIVERED, "Delivered, front door")}
STAGE_17TRACK = {M.INFO_RECEIVED: "InfoReceived", M.IN_TRANSIT: "Arrival",
                 M.OUT_FOR_DELIVERY: "OutForDelivery", M.DELIVERED: "Delivered"}
STATUS_17TRACK = {M.INFO_RECEIVED: "InfoReceived", M.IN_TRANSIT: "InTransit",
                  M.OUT_FOR_DELIVERY: "OutForDelivery", M.DELIVERED: "Delivered"}


TRACKED_DAYS = 60  # demo shipments this recent get a carrier history


def track_demo_shipments(engine: Engine, now: datetime, seed: int) -> int:
    """Give the recent demo shipments their scan history, as live tracking would have built it."""
    rng = random.Random(seed)
    with read_session(engine) as s:
        rows = s.execute(select(Shipment, Order).join(Order, Order.id == Shipment.order_id)
                         .where(Shipment.shipped_at > now - timedelta(days=TRACKED_DAYS),
                                Shipment.tracking_number.is_not(None))
                         .order_by(Shipment.id)).all()
        updates = [history(sh, order, rng, now) for sh, order in rows]
    run(engine, lambda s: [tracking.record(s, u, now=now) for u in updates])
    return len(updates)


@dataclass(frozen=True)
class Moved:
    tracking_number: str
    milestone: str
    status_code: int


def push_17track(number: str, carrier_name: str, milestone: Milestone, message: str, place: str,
                 at: datetime, eta: datetime | None = None) -> dict:
    """A 17TRACK ``TRACKING_UPDATED`` push with one event, shaped as 17TRACK documents it."""
    stamp = at.strftime("%Y-%m-%dT%H:%M:%SZ")
    event = {"time_iso": stamp, "time_utc": stamp, "description": message, "location": place,
             "stage": STAGE_17TRACK[milestone], "sub_status": f"{STATUS_17TRACK[milestone]}_Other"}
    eta_s = eta.strftime("%Y-%m-%dT%H:%M:%SZ") if eta else None
    return {"event": "TRACKING_UPDATED", "data": {"number": number, "carrier": 100002, "track_info": {
        "latest_status": {"status": STATUS_17TRACK[milestone],
                          "sub_status": f"{STATUS_17TRACK[milestone]}_Other"},
        "latest_event": event,
        "time_metrics": {"estimated_delivery_date": {"from": eta_s, "to": eta_s}},
        "tracking": {"providers": [{"provider": {"key": 100002, "name": carrier_name or "UPS"},
                                    "events": [event]}]}}}}


def sign_17track(body: bytes, key: str) -> str:
    return hashlib.sha256(body + b"/" + key.encode()).hexdigest()


def simulate(engine: Engine, url: str, key: str, *, count: int = 10, rounds: int = 1,
             interval: float = 0.0, seed: int | None = None, post=None) -> list[Moved]:
    """Move up to ``count`` parcels that are on their way one step, ``rounds`` times, by posting
    signed 17TRACK webhooks to the app at ``url``."""
    import httpx

    rng = random.Random(seed)
    post = post or (lambda u, content, headers: httpx.post(u, content=content, headers=headers,
                                                           timeout=10).status_code)
    target = url.rstrip("/") + "/webhooks/17track"
    moved: list[Moved] = []
    for r in range(rounds):
        with read_session(engine) as s:
            rows = s.execute(select(Shipment.tracking_number, Shipment.carrier, Shipment.milestone,
                                    Shipment.status, Order.shipping_city, Order.shipping_province)
                             .join(Order, Order.id == Shipment.order_id)
                             .where(Shipment.tracking_number.is_not(None),
                                    Shipment.status.in_((ShipmentStatus.IN_TRANSIT,
                                                         ShipmentStatus.FULFILLED)))
                             .order_by(Shipment.shipped_at.desc()).limit(count)).all()
        now = utcnow()
        for number, carrier, milestone, status, city, province in rows:
            current = Milestone(milestone) if milestone in set(Milestone) else (
                M.IN_TRANSIT if status == ShipmentStatus.IN_TRANSIT else M.INFO_RECEIVED)
            nxt, message = NEXT.get(current, (M.IN_TRANSIT, "Arrived at facility"))
            place = ", ".join(p for p in (city, province) if p) if nxt != M.IN_TRANSIT \
                else rng.choice(HUBS)
            body = json.dumps(push_17track(normalize_tracking(number), carrier, nxt, message, place,
                                           now, now + timedelta(days=1))).encode()
            status = post(target, body, {"sign": sign_17track(body, key),
                                         "Content-Type": "application/json"})
            moved.append(Moved(number, str(nxt), status))
        if interval and r + 1 < rounds:
            time.sleep(interval)
    return moved
