"""The one CSV writer for every export.

A cell a spreadsheet would run as a formula (starting ``=``, ``+``, ``-``, ``@``, a tab or a line
break, also after leading spaces) is written with a leading apostrophe, so it shows as text.
"""
from __future__ import annotations

import csv
import io
import math
from typing import Any, Iterable, Sequence

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")


def safe_cell(value: Any) -> str:
    """A cell a spreadsheet will show as text, never run as a formula (empty for None / NaN)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    s = str(value)
    if s.startswith(_FORMULA_START) or s.lstrip().startswith(("=", "+", "-", "@")):
        return "'" + s
    return s


def write_csv(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> bytes:
    """A UTF-8 CSV file (with a BOM, so Excel reads it as UTF-8), every cell made safe."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow([safe_cell(h) for h in header])
    for row in rows:
        w.writerow([safe_cell(v) for v in row])
    return ("\ufeff" + buf.getvalue()).encode("utf-8")
