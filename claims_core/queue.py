"""The staff claims queue: filter, count, sort and page in SQL; export safely.

Nothing here loads the claims table: every query is filtered, limited and indexed
(``ix_claims_status_created``, ``ix_claims_created_at``, ``ix_claims_risk_created``), so a page of
the queue costs the same at 1,000 claims as at 1,000,000.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta, timezone
from typing import Iterator

from sqlalchemy import Engine, Select, and_, func, select

from . import rules, states
from .db import read_session
from .models import Claim, Order, Shipment, StaffUser

TABS = {
    "todo": ("To do", (states.SUBMITTED, states.IN_REVIEW)),
    "waiting": ("Waiting on customer", (states.NEEDS_INFO,)),
    "approved": ("Approved", (states.APPROVED, states.RESOLVED)),
    "denied": ("Denied", (states.DENIED,)),
    "closed": ("Closed", (states.CLOSED,)),
}
SORTS = {
    "oldest": ("Oldest first", (Claim.created_at.asc(), Claim.id.asc())),
    "newest": ("Newest first", (Claim.created_at.desc(), Claim.id.desc())),
    "amount": ("Highest amount", (Claim.claimed_cents.desc(), Claim.id.desc())),
    "risk": ("Highest risk", (Claim.risk_score.desc(), Claim.id.desc())),
}
PAGE_SIZES = (25, 50, 100)
RISK_LEVELS = ("low", "medium", "high")


@dataclass(frozen=True)
class QueueFilter:
    tab: str = "todo"
    issue_types: tuple[str, ...] = ()
    category: str | None = None  # shipping | item
    date_from: date | None = None
    date_to: date | None = None
    carriers: tuple[str, ...] = ()
    resolutions: tuple[str, ...] = ()
    min_cents: int | None = None
    max_cents: int | None = None
    risk_levels: tuple[str, ...] = ()
    text: str = ""
    assignee_id: int | None = None


@dataclass(frozen=True)
class QueueRow:
    id: int
    reference: str
    order_name: str
    email: str
    issue_type: str
    status: str
    desired_resolution: str
    claimed_cents: int
    carrier: str
    tracking_number: str | None
    risk_level: str
    created_at: datetime
    updated_at: datetime
    assignee: str | None

    def age(self, now: datetime) -> timedelta:
        return now - self.created_at

    def waiting_too_long(self, now: datetime, target_hours: int) -> bool:
        """A claim the shop still owes an answer past the store's response target."""
        return self.status in (states.SUBMITTED, states.IN_REVIEW) and \
            now - self.updated_at > timedelta(hours=target_hours)


@dataclass
class QueuePage:
    rows: list[QueueRow]
    total: int
    page: int
    page_size: int
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.page_size))


def _day_start(d: date) -> datetime:
    return datetime.combine(d, time.min, tzinfo=timezone.utc)


def _where(f: QueueFilter, *, with_tab: bool = True) -> list:
    cond = []
    if with_tab and f.tab in TABS:
        cond.append(Claim.status.in_(TABS[f.tab][1]))
    if f.issue_types:
        cond.append(Claim.issue_type.in_(f.issue_types))
    if f.category in (rules.SHIPPING, rules.ITEM):
        cond.append(Claim.category == f.category)
    if f.date_from:
        cond.append(Claim.created_at >= _day_start(f.date_from))
    if f.date_to:
        cond.append(Claim.created_at < _day_start(f.date_to + timedelta(days=1)))
    if f.resolutions:
        cond.append(Claim.desired_resolution.in_(f.resolutions))
    if f.min_cents is not None:
        cond.append(Claim.claimed_cents >= f.min_cents)
    if f.max_cents is not None:
        cond.append(Claim.claimed_cents <= f.max_cents)
    if f.risk_levels:
        cond.append(Claim.risk_level.in_(f.risk_levels))
    if f.assignee_id is not None:
        cond.append(Claim.assignee_id == f.assignee_id)
    if f.carriers:
        cond.append(Claim.carrier.in_(f.carriers))
    return cond


def _search_ids(s, text: str) -> list[int] | None:
    """Claims matching a search box entry: a reference, an email, an order number or a tracking
    number, each an exact match on its own index (None when there is no search)."""
    text = (text or "").strip()
    if not text:
        return None
    number = rules.normalize_order_number(text)
    tracking = rules.normalize_tracking(text)
    ids: set[int] = set()
    ids.update(s.scalars(select(Claim.id).where(Claim.reference == text.upper())))
    ids.update(s.scalars(select(Claim.id).where(Claim.email == rules.normalize_email(text))))
    if number:
        ids.update(s.scalars(select(Claim.id).join(Order, Order.id == Claim.order_id)
                             .where(Order.order_number == number)))
    if tracking:
        ids.update(s.scalars(select(Claim.id).join(Shipment, Shipment.id == Claim.shipment_id)
                             .where(Shipment.tracking_number == tracking)))
    return sorted(ids)


def _conditions(s, f: QueueFilter, *, with_tab: bool = True) -> list:
    cond = _where(f, with_tab=with_tab)
    ids = _search_ids(s, f.text)
    if ids is not None:
        cond.append(Claim.id.in_(ids) if ids else Claim.id == -1)
    return cond


def _rows_query(cond: list) -> Select:
    return (
        select(Claim.id, Claim.reference, Order.name, Claim.email, Claim.issue_type, Claim.status,
               Claim.desired_resolution, Claim.claimed_cents, Shipment.carrier,
               Shipment.tracking_number, Claim.risk_level, Claim.created_at, Claim.updated_at,
               StaffUser.username)
        .join(Order, Order.id == Claim.order_id)
        .join(Shipment, Shipment.id == Claim.shipment_id)
        .outerjoin(StaffUser, StaffUser.id == Claim.assignee_id)
        .where(and_(True, *cond))
    )


def tab_counts(engine: Engine, f: QueueFilter) -> dict[str, int]:
    """How many claims each tab holds under the other filters."""
    with read_session(engine) as s:
        rows = s.execute(
            select(Claim.status, func.count()).where(and_(True, *_conditions(s, f, with_tab=False)))
            .group_by(Claim.status)
        ).all()
    by_status = dict(rows)
    return {tab: sum(by_status.get(st, 0) for st in statuses) for tab, (_l, statuses) in TABS.items()}


def queue_page(engine: Engine, f: QueueFilter, *, sort: str = "oldest", page: int = 1,
               page_size: int = 25, with_counts: bool = True,
               counts: dict[str, int] | None = None) -> QueuePage:
    """One page of the queue. Pass the ``counts`` from ``tab_counts`` (same filters) to save
    counting twice."""
    page_size = page_size if page_size in PAGE_SIZES else PAGE_SIZES[0]
    order_by = SORTS.get(sort, SORTS["oldest"])[1]
    if counts is None and with_counts:
        counts = tab_counts(engine, f)
    with read_session(engine) as s:
        cond = _conditions(s, f)
        total = counts[f.tab] if counts is not None and f.tab in counts else \
            s.scalar(select(func.count()).select_from(Claim).where(and_(True, *cond))) or 0
        pages = max(1, -(-total // page_size))
        page = min(max(1, page), pages)
        rows = s.execute(_rows_query(cond).order_by(*order_by).limit(page_size)
                         .offset((page - 1) * page_size)).all()
    return QueuePage([QueueRow(*r) for r in rows], total, page, page_size, counts or {})


def carriers(engine: Engine) -> list[str]:
    with read_session(engine) as s:
        return [c for c in s.scalars(select(Shipment.carrier).distinct().order_by(Shipment.carrier)) if c]


# --- export -------------------------------------------------------------------------------------

EXPORT_COLUMNS = ["reference", "order", "email", "issue", "status", "desired_resolution",
                  "claimed", "carrier", "tracking_number", "risk", "filed_at_utc", "assignee"]
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")


def safe_cell(value) -> str:
    """A cell a spreadsheet will show as text, never run as a formula."""
    s = "" if value is None else str(value)
    if s.startswith(_FORMULA_START) or s.lstrip().startswith(("=", "+", "-", "@")):
        return "'" + s
    return s


def export_rows(engine: Engine, f: QueueFilter, *, sort: str = "oldest",
                chunk: int = 2000) -> Iterator[list[str]]:
    """All rows matching the filter, streamed in chunks (never the whole table in memory)."""
    order_by = SORTS.get(sort, SORTS["oldest"])[1]
    offset = 0
    while True:
        with read_session(engine) as s:
            rows = s.execute(_rows_query(_conditions(s, f)).order_by(*order_by).limit(chunk)
                             .offset(offset)).all()
        for r in rows:
            q = QueueRow(*r)
            yield [safe_cell(v) for v in (
                q.reference, q.order_name, q.email, rules.ISSUE_TYPES[q.issue_type].label,
                states.STATUS_LABELS[q.status], q.desired_resolution,
                f"{q.claimed_cents / 100:.2f}", q.carrier, q.tracking_number, q.risk_level,
                q.created_at.strftime("%Y-%m-%d %H:%M"), q.assignee)]
        if len(rows) < chunk:
            return
        offset += chunk


def export_csv(engine: Engine, f: QueueFilter, *, sort: str = "oldest") -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(EXPORT_COLUMNS)
    for row in export_rows(engine, f, sort=sort):
        w.writerow(row)
    return ("\ufeff" + buf.getvalue()).encode("utf-8")  # BOM: Excel reads it as UTF-8


def with_tab(f: QueueFilter, tab: str) -> QueueFilter:
    return replace(f, tab=tab)
