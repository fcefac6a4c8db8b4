"""Windows and deadlines, in the store's calendar: the filing window, the wait before "lost",
the response target, reminders and auto-closing, draft retention."""
from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .errors import WindowClosed
from .messages import Msg, N_

DRAFT_DAYS = 7  # a customer's unfinished claim (and its photos) is kept this long


def store_zone(tz_name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(tz_name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def local_date(moment: datetime, tz_name: str | None) -> date:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(store_zone(tz_name)).date()


def day_start(day: date, tz_name: str | None) -> datetime:
    """The first instant (aware UTC) of the store's local day ``day``: a store-day period
    ``[date_from, date_to]`` is the moments from ``day_start(date_from)`` up to (not including)
    ``day_start(date_to + 1 day)``, exactly the moments whose ``local_date`` falls in it (a
    midnight skipped by a DST change starts the day at the change)."""
    return datetime.combine(day, time.min, tzinfo=store_zone(tz_name)).astimezone(timezone.utc)


def local_day(value: date | datetime, tz_name: str | None) -> date:
    """The day a person reads for ``value``: a moment (datetime) becomes the store's local day; a
    day (date) is already one. Every date shown to a person (pages, emails, PDFs, file names)
    goes through here, so a shipment's day and its deadline (counted from the same local day)
    always agree, at any hour."""
    if isinstance(value, datetime):
        return local_date(value, tz_name)
    return value


def format_date(value: date | datetime, tz_name: str | None = None) -> str:
    """A day in English ("November 27, 2026"), for staff pages, PDFs and logs. A moment needs the
    store's time zone (its local day is shown). Words for a customer carry the value itself
    (``Msg.of(..., deadline=d)``), formatted in their locale and the store's zone when shown
    (``infra.i18n.Translator.date``, the same day)."""
    if isinstance(value, datetime) and tz_name is None:
        raise TypeError("format_date: a moment needs the store's time zone (tz_name)")
    d = local_day(value, tz_name)
    return f"{d:%B} {d.day}, {d.year}"


def format_moment(moment: datetime, tz_name: str | None) -> str:
    """A moment in English in the store's zone ("November 27, 2026 at 14:05 EST"), for staff pages
    and PDFs: its day is the same local day ``format_date`` shows."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    t = moment.astimezone(store_zone(tz_name))
    return f"{format_date(t.date())} at {t:%H:%M} {t.tzname()}"


def filing_deadline(shipped_at: datetime, window_days: int, tz_name: str | None = "UTC",
                    override: date | None = None) -> date:
    """Last day (store's calendar) a claim can be filed for a shipment.

    Day 0 is the day the shipment was fulfilled; the default window of 45 days means day 45 is the
    last day. A staff exception for the order can only move the deadline later.
    """
    deadline = local_date(shipped_at, tz_name) + timedelta(days=window_days)
    if override is not None and override > deadline:
        deadline = override
    return deadline


def within_window(deadline: date, now: datetime, tz_name: str | None = "UTC") -> bool:
    return local_date(now, tz_name) <= deadline


def check_filing_window(deadline: date, now: datetime, tz_name: str | None = "UTC") -> None:
    if not within_window(deadline, now, tz_name):
        raise WindowClosed(Msg.of(
            N_("The window to file a claim for this shipment closed on {deadline}. "
               "Please contact the store directly."), deadline=deadline))


def days_without_scan(shipped_at: datetime, last_scan_at: datetime | None, now: datetime) -> int:
    base = last_scan_at or shipped_at
    return max(0, (now - base).days)


def tracking_stalled(shipped_at: datetime, last_scan_at: datetime | None, now: datetime,
                     lost_wait_days: int) -> bool:
    """Tracking hasn't moved for the store's wait period: the package may be claimed as lost."""
    return days_without_scan(shipped_at, last_scan_at, now) >= lost_wait_days


def past_response_target(updated_at: datetime, now: datetime, target_hours: int) -> bool:
    """The shop has owed an answer for longer than its response target."""
    return now - updated_at > timedelta(hours=target_hours)


def response_overdue_before(now: datetime, target_hours: int) -> datetime:
    """Claims last touched before this moment are past the response target (for queries)."""
    return now - timedelta(hours=target_hours)


def waiting_step(asked_at: datetime, now: datetime, reminder_after_days: int,
                 close_after_days: int) -> str | None:
    """What a claim waiting on the customer since ``asked_at`` is due: "close", "remind" or None."""
    if now - asked_at >= timedelta(days=close_after_days):
        return "close"
    if now - asked_at >= timedelta(days=reminder_after_days):
        return "remind"
    return None


def digest_day(now: datetime, tz_name: str | None, hour: int) -> date | None:
    """The store's day whose staff digest is due at ``now``: from ``hour`` o'clock of the store's
    local day on (the owner's hour), else None. One digest per local day: the day is its key."""
    if now.tzinfo is None:
        now = now.replace(tzinfo=timezone.utc)
    t = now.astimezone(store_zone(tz_name))
    return t.date() if t.hour >= hour else None


SESSION_IDLE = timedelta(hours=2)  # a staff session ends after this long unused ...
SESSION_MAX = timedelta(hours=12)  # ... or this long after log-in, whatever happens


def session_over(started_at: datetime, last_seen_at: datetime, now: datetime) -> bool:
    """A staff session ends after 2 idle hours, or 12 hours after log-in whatever happens."""
    return now - last_seen_at > SESSION_IDLE or now - started_at >= SESSION_MAX


def draft_expires_at(now: datetime, days: int = DRAFT_DAYS) -> datetime:
    """When a draft saved at ``now`` expires (``days``: the store's retention setting)."""
    return now + timedelta(days=days)


# Delivering what the outbox holds (emails, writes to Shopify): how often and how long to try.
DELIVERY_MAX_ATTEMPTS = 8  # then the item is marked failed, for staff to see
DELIVERY_LEASE = timedelta(minutes=5)  # a sender's hold on an item; a crashed sender's lapses


def retry_backoff(attempts: int) -> timedelta:
    """The wait after the ``attempts``-th failed try: 1, 2, 4 … minutes, at most 6 hours."""
    return timedelta(minutes=min(360, 2 ** max(0, attempts - 1)))
