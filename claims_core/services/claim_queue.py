"""The staff claims queue: filter, count, sort and page in SQL; export safely.

Nothing here loads the claims table. A page reads claim ids in index order (one index per sort order
within a status) and stops after one page; tab counts stop at ``COUNT_CAP`` ("1,000+", the way
large inboxes show them) on an index that holds every filtered column, so the queue costs about the
same at 1,000 claims as at 1,000,000.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Iterator

from sqlalchemy import Engine, Select, and_, func, literal, select, text, tuple_, union_all

from .. import domain
from ..domain import disputes
from ..domain.csv_safe import write_csv
from ..domain.windows import day_start, past_response_target
from ..infra.db import read_session
from ..infra.models import Claim, Order, Shipment, StaffUser, settings_row

TABS = {
    "todo": ("To do", (domain.SUBMITTED, domain.IN_REVIEW)),
    "waiting": ("Waiting on customer", (domain.NEEDS_INFO,)),
    "approved": ("Approved", (domain.APPROVED, domain.RESOLVED)),
    "denied": ("Denied", (domain.DENIED,)),
    "closed": ("Closed", (domain.CLOSED,)),
}
SORTS = {  # label, the column sorted on, descending?
    "oldest": ("Oldest first", "created_at", False),
    "newest": ("Newest first", "created_at", True),
    "amount": ("Highest amount", "claimed_cents", True),
    "risk": ("Highest risk", "risk_score", True),
}
# the index that reads each sort's column in order within a status
SORT_INDEXES = {"created_at": "ix_claims_status_created", "claimed_cents": "ix_claims_status_amount",
                "risk_score": "ix_claims_status_risk"}
PAGE_SIZES = (25, 50, 100)
COUNT_CAP = 1_000  # counts stop here and read "1,000+"
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
    on_hold: bool = False  # only claims live tracking put on hold


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
    held_at: datetime | None = None
    dispute_status: str = ""  # the order's dispute (chargeback): domain/disputes.py
    dispute_held_at: datetime | None = None

    @property
    def chargeback(self) -> str:
        """The queue's chargeback flag: an approved claim whose order is disputed (the shop may
        pay twice), a claim held for the dispute, or "" when the order has no open dispute."""
        if disputes.paying_twice(self.status in domain.GRANTED_STATUSES, self.dispute_status):
            return "Paying twice?"
        if self.dispute_held_at is not None:
            return "On hold"
        return "Open" if disputes.is_open(self.dispute_status) else ""

    @property
    def status_label(self) -> str:
        label = domain.STATUS_LABELS[self.status]
        return f"{label} · on hold" if self.held_at else label

    def age(self, now: datetime) -> timedelta:
        return now - self.created_at

    def waiting_too_long(self, now: datetime, target_hours: int) -> bool:
        """A claim the shop still owes an answer past the store's response target."""
        return self.status in domain.AWAITING_SHOP and \
            past_response_target(self.updated_at, now, target_hours)


@dataclass
class QueuePage:
    rows: list[QueueRow]
    total: int  # may be COUNT_CAP + 1, meaning "more than COUNT_CAP"
    page: int
    page_size: int
    counts: dict[str, int] = field(default_factory=dict)
    has_next: bool = False

    @property
    def total_is_exact(self) -> bool:
        return self.total <= COUNT_CAP

    @property
    def pages(self) -> int | None:
        """How many pages, or None when the count was capped."""
        return max(1, -(-self.total // self.page_size)) if self.total_is_exact else None

    @property
    def has_previous(self) -> bool:
        return self.page > 1


def count_label(n: int) -> str:
    """A tab count as staff read it: exact up to the cap, then "1,000+"."""
    return f"{COUNT_CAP:,}+" if n > COUNT_CAP else f"{n:,}"


def _where(f: QueueFilter, *, with_tab: bool = True, tz_name: str | None = "UTC") -> list:
    """The filters as SQL; "filed between" counts the store's days (``tz_name``)."""
    cond = []
    if with_tab and f.tab in TABS:
        cond.append(Claim.status.in_(TABS[f.tab][1]))
    if f.issue_types:
        cond.append(Claim.issue_type.in_(f.issue_types))
    if f.category in (domain.SHIPPING, domain.ITEM):
        cond.append(Claim.category == f.category)
    if f.date_from:
        cond.append(Claim.created_at >= day_start(f.date_from, tz_name))
    if f.date_to:
        cond.append(Claim.created_at < day_start(f.date_to + timedelta(days=1), tz_name))
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
    if f.on_hold:
        cond.append(Claim.held_at.is_not(None))
    return cond


def _search_ids(s, text: str) -> list[int] | None:
    """Claims matching a search box entry: a reference, an email, an order number or a tracking
    number, each an exact match on its own index (None when there is no search)."""
    text = (text or "").strip()
    if not text:
        return None
    number = domain.normalize_order_number(text)
    tracking = domain.normalize_tracking(text)
    ids: set[int] = set()
    ids.update(s.scalars(select(Claim.id).where(Claim.reference == text.upper())))
    ids.update(s.scalars(select(Claim.id).where(Claim.email == domain.normalize_email(text))))
    if number:
        ids.update(s.scalars(select(Claim.id).join(Order, Order.id == Claim.order_id)
                             .where(Order.order_number == number)))
    if tracking:
        ids.update(s.scalars(select(Claim.id).join(Shipment, Shipment.id == Claim.shipment_id)
                             .where(Shipment.tracking_number == tracking)))
    return sorted(ids)


def _conditions(s, f: QueueFilter, *, with_tab: bool = True) -> list:
    cond = _where(f, with_tab=with_tab,
                  tz_name=settings_row(s).timezone if f.date_from or f.date_to else "UTC")
    ids = _search_ids(s, f.text)
    if ids is not None:
        cond.append(Claim.id.in_(ids) if ids else Claim.id == -1)
    return cond


def filter_conditions(s, f: QueueFilter) -> list:
    """The queue's filters (and search) as SQL conditions, for other readers of claims (the API)."""
    return _conditions(s, f)


def _rows_query(cond: list) -> Select:
    return (
        select(Claim.id, Claim.reference, Order.name, Claim.email, Claim.issue_type, Claim.status,
               Claim.desired_resolution, Claim.claimed_cents, Shipment.carrier,
               Shipment.tracking_number, Claim.risk_level, Claim.created_at, Claim.updated_at,
               StaffUser.username, Claim.held_at, Order.dispute_status, Claim.dispute_held_at)
        .join(Order, Order.id == Claim.order_id)
        .join(Shipment, Shipment.id == Claim.shipment_id)
        .outerjoin(StaffUser, StaffUser.id == Claim.assignee_id)
        .where(and_(True, *cond))
    )


def _sort(sort: str, table=Claim.__table__) -> tuple[list, object, bool]:
    """ORDER BY for a sort (ties broken by id, so paging is stable), its column, descending?"""
    _label, name, descending = SORTS.get(sort, SORTS["oldest"])
    column, ident = table.c[name], table.c.id
    order = [column.desc(), ident.desc()] if descending else [column.asc(), ident.asc()]
    return order, column, descending


def tab_counts(engine: Engine, f: QueueFilter) -> dict[str, int]:
    """How many claims each tab holds under the other filters, counted up to ``COUNT_CAP + 1``
    (one statement; each tab stops reading after the cap)."""
    with read_session(engine) as s:
        cond = _conditions(s, f, with_tab=False)
        parts = []
        for tab, (_label, statuses) in TABS.items():
            capped = (select(literal(1).label("one")).select_from(Claim)
                      .where(Claim.status.in_(statuses), *cond).limit(COUNT_CAP + 1).subquery())
            parts.append(select(literal(tab).label("tab"), func.count().label("n")).select_from(capped))
        return {tab: n for tab, n in s.execute(union_all(*parts)).all()}


def queue_page(engine: Engine, f: QueueFilter, *, sort: str = "oldest", page: int = 1,
               page_size: int = 25, with_counts: bool = True,
               counts: dict[str, int] | None = None) -> QueuePage:
    """One page of the queue. Pass the ``counts`` from ``tab_counts`` (same filters) to save
    counting twice.

    The page's claim ids come first, from the claims table alone in index order (a join before
    the sort would touch every matching row); the page's 25-100 rows are then joined."""
    page_size = page_size if page_size in PAGE_SIZES else PAGE_SIZES[0]
    if counts is None and with_counts:
        counts = tab_counts(engine, f)
    with read_session(engine) as s:
        cond = _conditions(s, f)
        if counts is not None and f.tab in counts:
            total = counts[f.tab]
        else:
            capped = select(Claim.id).where(*cond).limit(COUNT_CAP + 1).subquery()
            total = s.scalar(select(func.count()).select_from(capped)) or 0
        if total <= COUNT_CAP:
            page = min(page, max(1, -(-total // page_size)))
        page = max(1, page)
        offset = (page - 1) * page_size
        if total == 0:
            ids = []
        elif total <= COUNT_CAP:
            # few matches: find them the cheapest way (as the count did), then sort those
            few = (select(Claim.id, Claim.created_at, Claim.claimed_cents, Claim.risk_score)
                   .where(*cond).limit(COUNT_CAP + 1).subquery())
            ids = list(s.scalars(select(few.c.id).order_by(*_sort(sort, few)[0])
                                 .limit(page_size + 1).offset(offset)))
        else:
            # many matches: read them in the sort's index order and stop after one page. SQLite's
            # planner would rather seek the filters on ix_claims_queue and sort every match, which
            # costs more the more claims match; the hint keeps a page at the price of a page.
            order, column, _desc = _sort(sort)
            ids = list(s.scalars(select(Claim.id).where(*cond).order_by(*order)
                                 .with_hint(Claim, f"INDEXED BY {SORT_INDEXES[column.name]}", "sqlite")
                                 .limit(page_size + 1).offset(offset)))
        has_next = len(ids) > page_size
        ids = ids[:page_size]
        rows = s.execute(_rows_query([Claim.id.in_(ids)]).order_by(*_sort(sort)[0])).all() \
            if ids else []
    return QueuePage([QueueRow(*r) for r in rows], total, page, page_size, counts or {}, has_next)


# Each carrier once, skipping through ix_shipments_carrier: one index probe per carrier instead of
# reading every shipment (a "loose index scan"; neither SQLite nor PostgreSQL does it by itself).
_CARRIERS = text(
    "WITH RECURSIVE c(name) AS ("
    " SELECT min(carrier) FROM shipments WHERE carrier > ''"
    " UNION ALL"
    " SELECT (SELECT min(carrier) FROM shipments WHERE carrier > c.name) FROM c WHERE c.name IS NOT NULL"
    ") SELECT name FROM c WHERE name IS NOT NULL"
)


def carriers(engine: Engine) -> list[str]:
    """Every carrier that shipped something, in order."""
    with read_session(engine) as s:
        return list(s.scalars(_CARRIERS))


# --- export -------------------------------------------------------------------------------------

EXPORT_COLUMNS = ["reference", "order", "email", "issue", "status", "desired_resolution",
                  "claimed", "carrier", "tracking_number", "risk", "filed_at_utc", "assignee"]


def export_rows(engine: Engine, f: QueueFilter, *, sort: str = "oldest",
                chunk: int = 2000) -> Iterator[list[str]]:
    """All rows matching the filter, streamed in chunks (never the whole table in memory). Each
    chunk starts after the last one's sort key (keyset paging), so chunk 500 costs what chunk 1
    does."""
    order_by, column, descending = _sort(sort)
    last = None
    while True:
        with read_session(engine) as s:
            cond = _conditions(s, f)
            if last is not None:
                key = tuple_(column, Claim.id)
                cond.append(key < last if descending else key > last)
            keys = s.execute(select(column, Claim.id).where(*cond).order_by(*order_by)
                             .limit(chunk)).all()
            rows = s.execute(_rows_query([Claim.id.in_([k[1] for k in keys])])
                             .order_by(*order_by)).all() if keys else []
        for r in rows:
            q = QueueRow(*r)
            yield [v for v in (
                q.reference, q.order_name, q.email, domain.ISSUE_TYPES[q.issue_type].label,
                domain.STATUS_LABELS[q.status], q.desired_resolution,
                domain.decimal_amount(q.claimed_cents), q.carrier, q.tracking_number, q.risk_level,
                q.created_at.strftime("%Y-%m-%d %H:%M"), q.assignee)]
        if len(keys) < chunk:
            return
        last = tuple(keys[-1])


def export_csv(engine: Engine, f: QueueFilter, *, sort: str = "oldest") -> bytes:
    return write_csv(EXPORT_COLUMNS, export_rows(engine, f, sort=sort))


def with_tab(f: QueueFilter, tab: str) -> QueueFilter:
    return replace(f, tab=tab)
