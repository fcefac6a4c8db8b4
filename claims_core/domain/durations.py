"""How long things took (first response, decision), as the analytics figures report them.

Durations are whole seconds, kept in buckets so that a million claims fold into a small roll-up
table and any period's percentiles come from summed counts:

- up to a day: quarter-hours;
- up to a week: hours;
- up to 30 days: six hours;
- beyond: days.

A duration is reported as its bucket's upper edge ("answered within 2.25 h"), and a percentile is
the nearest rank (the smallest bucket edge at or below which at least p of the durations fall).
The SQL that buckets durations in the database is built from ``DURATION_STEPS``.
"""
from __future__ import annotations

import math
from typing import Iterable

# (up to and including this many seconds, bucket width in seconds); the last has no limit
DURATION_STEPS: tuple[tuple[int | None, int], ...] = (
    (86_400, 900),
    (7 * 86_400, 3_600),
    (30 * 86_400, 21_600),
    (None, 86_400),
)


def duration_bucket(seconds: int) -> int:
    """The upper edge, in seconds, of the bucket a duration falls in (0 for none or negative)."""
    if seconds <= 0:
        return 0
    for limit, width in DURATION_STEPS:
        if limit is None or seconds <= limit:
            return -(-seconds // width) * width
    raise AssertionError("the last step is open-ended")  # pragma: no cover


def nearest_rank(counts: Iterable[tuple[int, int]], p: float) -> int | None:
    """The p-th percentile (0 < p ≤ 1) of durations given as (bucket edge, how many) pairs, by
    the nearest-rank method; None when there are none."""
    pairs = sorted((edge, n) for edge, n in counts if n > 0)
    total = sum(n for _e, n in pairs)
    if not total:
        return None
    rank = max(1, math.ceil(p * total))
    seen = 0
    for edge, n in pairs:
        seen += n
        if seen >= rank:
            return edge
    return pairs[-1][0]  # pragma: no cover - rank <= total


def hours(seconds: int | None) -> float | None:
    return None if seconds is None else seconds / 3600
