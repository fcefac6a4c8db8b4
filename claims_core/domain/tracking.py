"""Tracking: one shape for every carrier feed, and what a shipment's checkpoints mean.

17TRACK, EasyPost and Shopify's fulfillment events are read (in ``adapters.carrier_feeds``) into
:class:`TrackingUpdate`: checkpoints (time, place, milestone, sub-status, message), the carrier's
expected delivery and, where given, proof of delivery. A shipment's state is *computed* from all the
checkpoints known for its tracking number (:func:`summarise`), so a replayed event changes nothing
and an event that arrives late never winds the state back: the newest checkpoint **time** wins,
not the newest arrival.

Pure: no database, no HTTP.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Iterable

from .messages import Msg, N_
from .text import joined
from .vocabulary import (ISSUE_TYPES, MILESTONE_LABELS, IssueType, Milestone, ShipmentStatus)
from .windows import format_moment, local_date

# Milestone → the coarse shipment status the rest of the product (eligibility, queue, analytics)
# speaks in.
STATUS_OF_MILESTONE = {
    Milestone.INFO_RECEIVED: ShipmentStatus.FULFILLED,
    Milestone.IN_TRANSIT: ShipmentStatus.IN_TRANSIT,
    Milestone.OUT_FOR_DELIVERY: ShipmentStatus.IN_TRANSIT,
    Milestone.AVAILABLE_FOR_PICKUP: ShipmentStatus.IN_TRANSIT,
    Milestone.DELIVERED: ShipmentStatus.DELIVERED,
    Milestone.EXCEPTION: ShipmentStatus.EXCEPTION,
    Milestone.EXPIRED: ShipmentStatus.EXCEPTION,
    Milestone.RETURNED: ShipmentStatus.RETURNED,
}

# Claims a later scan calls into question (Route's rule): the parcel turned up after all.
MOVED_AFTER_FILING = frozenset({IssueType.LOST, IssueType.NOT_RECEIVED})
# Claims an agent weighs against the carrier's proof of delivery.
JUDGED_BY_PROOF = frozenset({IssueType.NOT_RECEIVED, IssueType.STOLEN})


@dataclass(frozen=True)
class Checkpoint:
    at: datetime  # UTC
    milestone: Milestone
    message: str = ""
    place: str = ""
    sub_status: str = ""

    @property
    def key(self) -> str:
        """What makes two reports of a scan the same scan (replays and both feeds agree)."""
        raw = f"{self.at.isoformat()}|{self.milestone}|{self.message.strip().lower()}"
        return hashlib.sha256(raw.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class ProofOfDelivery:
    signed_by: str = ""
    photo_url: str = ""
    location: str = ""  # "Front door", "Parcel locker", or coordinates as the carrier gives them

    def __bool__(self) -> bool:
        return bool(self.signed_by or self.photo_url or self.location)


@dataclass(frozen=True)
class TrackingUpdate:
    """One carrier event, normalised."""

    source: str  # 17track | easypost | shopify | demo
    tracking_number: str  # as the carrier writes it (normalised on storing)
    carrier: str = ""
    checkpoints: tuple[Checkpoint, ...] = ()
    milestone: Milestone | None = None  # the feed's own summary, used when it sends no checkpoint
    expected_delivery: datetime | None = None
    proof: ProofOfDelivery = field(default_factory=ProofOfDelivery)
    stopped: bool = False  # the feed will send no more (17TRACK's TRACKING_STOPPED)
    event_id: str = ""  # the feed's own id for this delivery, when it has one
    as_of: datetime | None = None  # when the feed produced it (orders expected delivery dates)

    @property
    def newest_time(self) -> datetime | None:
        times = [c.at for c in self.checkpoints]
        return max(times) if times else self.as_of


@dataclass(frozen=True)
class TrackingState:
    """What the checkpoints of one tracking number add up to."""

    milestone: Milestone | None
    status: ShipmentStatus | None
    last_scan_at: datetime | None
    delivered_at: datetime | None
    last_place: str = ""


def ordered(checkpoints: Iterable[Checkpoint]) -> list[Checkpoint]:
    """Newest first, as a timeline shows them (ties keep the delivered/terminal one on top)."""
    rank = {m: i for i, m in enumerate(Milestone)}
    return sorted(checkpoints, key=lambda c: (c.at, rank.get(c.milestone, 0)), reverse=True)


def summarise(checkpoints: Iterable[Checkpoint], fallback: Milestone | None = None) -> TrackingState:
    """The shipment's state from every checkpoint known: the newest by time decides."""
    cps = ordered(checkpoints)
    if not cps:
        status = STATUS_OF_MILESTONE.get(fallback) if fallback else None
        return TrackingState(fallback, status, None, None)
    newest = cps[0]
    delivered = [c.at for c in cps if c.milestone == Milestone.DELIVERED]
    # delivered, then a newer "returned" or "exception": the newest wins, but the delivery time
    # is only kept while the parcel counts as delivered
    delivered_at = max(delivered) if delivered and newest.milestone == Milestone.DELIVERED else None
    return TrackingState(newest.milestone, STATUS_OF_MILESTONE[newest.milestone], newest.at,
                         delivered_at, newest.place)




def past_expected_delivery(expected_delivery: datetime | None, now: datetime,
                           tz_name: str | None) -> bool:
    """"Delayed" can be claimed once the carrier's expected delivery day is over. Without an
    expected date (no live tracking) the shipment may be called delayed at any time."""
    if expected_delivery is None:
        return True
    return local_date(now, tz_name) > local_date(expected_delivery, tz_name)


def _stamp(moment: datetime, tz_name: str | None) -> str:
    return format_moment(moment, tz_name)


def hold_reason(issue_type: str, filed_at: datetime, new: Iterable[Checkpoint],
                tz_name: str | None = "UTC") -> str:
    """Why a claim should be put on hold by checkpoints that just arrived, or "" if not.

    - a scan dated after a "lost" or "not received" claim was filed: the parcel moved after all;
    - a delivery dated after a "delayed" claim was filed: it arrived.
    """
    later = [c for c in new if c.at > filed_at]
    if not later:
        return ""
    newest = ordered(later)[0]
    where = f" in {newest.place}" if newest.place else ""
    when = _stamp(newest.at, tz_name)
    label = ISSUE_TYPES[issue_type].label if issue_type in ISSUE_TYPES else issue_type
    if issue_type in MOVED_AFTER_FILING:
        return (f"The carrier scanned this parcel{where} on {when} "
                f"({MILESTONE_LABELS[newest.milestone].lower()}), after this “{label}” claim was "
                "filed. Check the tracking before deciding.")
    if issue_type == IssueType.DELAYED:
        delivered = [c for c in later if c.milestone == Milestone.DELIVERED]
        if delivered:
            d = ordered(delivered)[0]
            where = f" in {d.place}" if d.place else ""
            return (f"The carrier reports this parcel delivered{where} on "
                    f"{_stamp(d.at, tz_name)}, after this “{label}” claim was filed.")
    return ""


def _relative_day(moment: datetime, now: datetime, tz_name: str | None) -> Msg:
    """When a scan was, as the explanation says it: "today", "yesterday" or "on November 3, 2026"."""
    days = (local_date(now, tz_name) - local_date(moment, tz_name)).days
    if days == 0:
        # TRANSLATORS: when the parcel was last scanned, the {when} of "was delivered {when}".
        return Msg(N_("today"))
    if days == 1:
        # TRANSLATORS: when the parcel was last scanned, the {when} of "was delivered {when}".
        return Msg(N_("yesterday"))
    # TRANSLATORS: when the parcel was last scanned, the {when} of "was delivered {when}".
    return Msg.of(N_("on {date}"), date=local_date(moment, tz_name))


def _since_day(moment: datetime, now: datetime, tz_name: str | None) -> Msg:
    """Since when a parcel has waited: "since today", "since yesterday", "since November 3, 2026"."""
    days = (local_date(now, tz_name) - local_date(moment, tz_name)).days
    if days == 0:
        # TRANSLATORS: the {since} of "… pick it up ({since})": how long it has waited.
        return Msg(N_("since today"))
    if days == 1:
        # TRANSLATORS: the {since} of "… pick it up ({since})": how long it has waited.
        return Msg(N_("since yesterday"))
    # TRANSLATORS: the {since} of "… pick it up ({since})": how long it has waited.
    return Msg.of(N_("since {date}"), date=local_date(moment, tz_name))


# The first sentence of an explanation, whole (translators see whole sentences), by where the
# parcel is, and whether the carrier named the place and dated the scan. A place is only known
# from a dated scan.
_SAYS = {
    (Milestone.DELIVERED, True): N_(
        "The carrier says your parcel was delivered in {place} {when}. If you didn't get it, you "
        "can report it as not received or stolen."),
    (Milestone.DELIVERED, False): N_(
        "The carrier says your parcel was delivered {when}. If you didn't get it, you can report "
        "it as not received or stolen."),
    (Milestone.DELIVERED, None): N_(
        "The carrier says your parcel was delivered. If you didn't get it, you can report it as "
        "not received or stolen."),
    (Milestone.RETURNED, True): N_(
        "The carrier is returning your parcel to the store (last scan in {place} {when})."),
    (Milestone.RETURNED, False): N_(
        "The carrier is returning your parcel to the store (last scan {when})."),
    (Milestone.RETURNED, None): N_("The carrier is returning your parcel to the store."),
    (Milestone.AVAILABLE_FOR_PICKUP, True): N_(
        "Your parcel is waiting for you to pick it up in {place} ({since})."),
    (Milestone.AVAILABLE_FOR_PICKUP, False): N_(
        "Your parcel is waiting for you to pick it up ({since})."),
    (Milestone.AVAILABLE_FOR_PICKUP, None): N_("Your parcel is waiting for you to pick it up."),
    (None, True): N_("Your parcel was scanned {when} in {place}."),
    (None, False): N_("Your parcel was scanned {when}."),
    (None, None): N_("Your parcel is on its way."),
}


def explain(state: TrackingState, expected_delivery: datetime | None, shipped_at: datetime,
            now: datetime, lost_wait_days: int, tz_name: str | None) -> Msg:
    """One sentence for the customer: where the parcel is and what they can claim, and when.
    A message (``str()`` of it is the English); its dates are formatted where it is shown."""
    if state.milestone is None:
        lost_from = local_date(shipped_at, tz_name) + timedelta(days=lost_wait_days)
        return Msg.of(N_("We have no scans from the carrier yet. If there is still no news by "
                         "{date}, you can report it lost."), date=lost_from)
    m = state.milestone
    scanned = state.last_scan_at
    # True: place and time known; False: time only; None: neither
    known = None if scanned is None else bool(state.last_place)
    values = {}
    if scanned is not None:
        values = {"when": _relative_day(scanned, now, tz_name),
                  "since": _since_day(scanned, now, tz_name)}
        if state.last_place:
            values["place"] = state.last_place
    if m in (Milestone.DELIVERED, Milestone.RETURNED, Milestone.AVAILABLE_FOR_PICKUP):
        template = _SAYS[(m, known)]
        return Msg.of(template, **{k: v for k, v in values.items() if "{" + k + "}" in template})
    template = _SAYS[(None, known)]
    first = Msg.of(template, **{k: v for k, v in values.items() if "{" + k + "}" in template})
    parts: list[Msg] = [first]
    lost_from = local_date(scanned or shipped_at, tz_name) + timedelta(days=lost_wait_days)
    if expected_delivery is not None:
        day = local_date(expected_delivery, tz_name)
        parts.append(Msg.of(N_("It was expected on {day}, so you can report it delayed."), day=day)
                     if past_expected_delivery(expected_delivery, now, tz_name) else
                     Msg.of(N_("It is expected on {day}; if it's late after that you can report "
                               "it delayed."), day=day))
    if local_date(now, tz_name) < lost_from:
        parts.append(Msg.of(N_("If it hasn't moved by {date} you can report it lost."),
                            date=lost_from))
    else:
        parts.append(Msg(N_("It hasn't moved since, so you can report it lost.")))
    return joined(*parts)
