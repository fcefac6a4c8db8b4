"""Filters that live in the URL, so a view can be shared or bookmarked (queue, analytics).

``seed`` fills a widget's state from the URL on the page's first run in a session (values the
app doesn't know are dropped, never an error); ``publish`` writes the current filters back,
leaving out the ones at their default so the URL stays short.
"""
from __future__ import annotations

from datetime import date
from typing import Any, Callable, Iterable

import streamlit as st

Parse = Callable[[str], Any]


def as_list(allowed: Iterable[str] | None = None) -> Parse:
    known = set(allowed) if allowed is not None else None
    return lambda raw: [v for v in (x.strip() for x in raw.split(",")) if v
                        and (known is None or v in known)]


def as_choice(allowed: Iterable[Any]) -> Parse:
    options = {str(o): o for o in allowed}
    return lambda raw: options.get(raw, None)


def as_date(raw: str) -> date | None:
    try:
        return date.fromisoformat(raw)
    except ValueError:
        return None


MAX_AMOUNT = 10_000_000  # a money filter above this is no amount a shop has


def as_number(raw: str) -> float | None:
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if 0 <= value <= MAX_AMOUNT else None  # NaN and infinity fail this too


def as_date_range(raw: str) -> tuple[date, date] | None:
    """``2026-01-01..2026-03-31`` (one date: that day), or None unless it makes sense."""
    parts = [as_date(x) for x in raw.split("..")]
    if not 1 <= len(parts) <= 2 or not all(parts):
        return None
    start, end = parts[0], parts[-1]
    if start > end or start.year < 2000 or end.year > 2100:
        return None
    return start, end


def as_bool(raw: str) -> bool:
    return raw.lower() in ("1", "true", "yes", "on")


def seed(fields: dict[str, tuple[str, Parse]]) -> None:
    """``{widget key: (URL parameter, parser)}``: on the first run of the page in this session,
    a parameter present in the URL sets its widget (when the value makes sense)."""
    marker = f"_url_seeded_{'|'.join(sorted(fields))}"
    if st.session_state.get(marker):
        return
    st.session_state[marker] = True
    params = st.query_params
    for key, (param, parse) in fields.items():
        raw = params.get(param)
        if raw is None or key in st.session_state:
            continue
        value = parse(raw)
        if value is None or value == []:
            continue
        st.session_state[key] = value


def publish(values: dict[str, Any], keep: Iterable[str] = ()) -> None:
    """Write the filters into the URL (``None``, empty and ``False`` values are left out);
    parameters named in ``keep`` (e.g. a page's own ``id``) are kept as they are."""
    wanted: dict[str, str] = {}
    for param, value in values.items():
        if value is None or value is False or value == "" or value == [] or value == ():
            continue
        if isinstance(value, (list, tuple)):
            wanted[param] = ",".join(str(v) for v in value)
        elif value is True:
            wanted[param] = "1"
        elif isinstance(value, float) and value.is_integer():
            wanted[param] = str(int(value))
        else:
            wanted[param] = str(value)
    current = {k: st.query_params.get(k) for k in st.query_params}
    kept = {k: v for k, v in current.items() if k in set(keep)}
    if current != {**kept, **wanted}:
        st.query_params.clear()
        st.query_params.update({**kept, **wanted})


def selected(event, field: int = 0) -> list[str]:
    """The values a chart selection picked (each point's ``customdata[field]``), for a
    drill-down; [] when nothing is selected."""
    points = (((event or {}).get("selection") or {}).get("points") or []) \
        if isinstance(event, dict) else getattr(getattr(event, "selection", None), "points", []) or []
    out = []
    for p in points:
        data = p.get("customdata") if isinstance(p, dict) else None
        if isinstance(data, (list, tuple)) and len(data) > field and data[field] not in out:
            out.append(str(data[field]))
    return out
