"""The app's one clock (``claims_core.infra.db.utcnow()`` reads it).

Test-only injection, read once when this module is imported:

- ``CLAIMS_CLOCK_SHIFT`` — seconds (may be negative, may have decimals) added to the real clock;
- ``CLAIMS_CLOCK_START`` — an instant (``2026-12-07T00:05:00Z``) the clock starts at, then ticks.

A start instant is turned into a shift at import and written back as ``CLAIMS_CLOCK_SHIFT`` (the
start removed), so every subprocess started from this process (``streamlit run``, ``python -m
claims_core demo``) inherits the same shifted clock instead of starting over at the instant.
libfaketime is not used: it breaks subprocesses and the browser.
"""
from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone

SHIFT_ENV = "CLAIMS_CLOCK_SHIFT"
START_ENV = "CLAIMS_CLOCK_START"


def _real_now() -> datetime:
    return datetime.now(timezone.utc)


def parse_instant(text: str) -> datetime:
    """``2026-12-07T00:05:00Z`` (or any ISO 8601 instant; naive means UTC) as aware UTC."""
    moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def shift_to(moment: datetime) -> float:
    """The shift (seconds) that makes the clock read ``moment`` now."""
    return (moment - _real_now()).total_seconds()


def _read_shift(environ=os.environ) -> timedelta:
    start = environ.get(START_ENV, "").strip()
    if start:
        seconds = shift_to(parse_instant(start))
        # children inherit the running clock, not a fresh start at the same instant
        environ[SHIFT_ENV] = repr(seconds)
        environ.pop(START_ENV, None)
        return timedelta(seconds=seconds)
    raw = environ.get(SHIFT_ENV, "").strip()
    if not raw:
        return timedelta(0)
    try:
        return timedelta(seconds=float(raw))
    except ValueError as exc:
        raise ValueError(f"{SHIFT_ENV} must be a number of seconds, not {raw!r}") from exc


_SHIFT = _read_shift()


def shift() -> timedelta:
    """How far the app's clock is from the real one (zero unless a test injected a clock)."""
    return _SHIFT


def set_shift(seconds: float) -> None:
    """Shift this process's clock and every subprocess started afterwards (tests only)."""
    global _SHIFT
    _SHIFT = timedelta(seconds=seconds)
    if seconds:
        os.environ[SHIFT_ENV] = repr(float(seconds))
    else:
        os.environ.pop(SHIFT_ENV, None)
    os.environ.pop(START_ENV, None)


def now() -> datetime:
    """The current instant, timezone-aware UTC."""
    return _real_now() + _SHIFT
