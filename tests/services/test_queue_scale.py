"""The queue at scale: capped counts, paging by index order, keyset export, and a proof (by counting
SQLite's work, not the clock) that a queue page reads a page, not the claims table."""
from __future__ import annotations

import pytest
from sqlalchemy import event, func, select, update

from claims_core.adapters import bulk
from claims_core.infra.db import read_session, write_session
from claims_core.infra.models import Claim
from claims_core.services import claim_queue

from tests.conftest import NOW, ON_POSTGRES

Q = claim_queue.QueueFilter
FILTERED = dict(issue_types=("damaged", "lost", "stolen", "defective"), carriers=("UPS", "USPS", "FedEx"))


@pytest.fixture
def many(engine):
    bulk.fill(engine, 240, now=NOW, with_photos=0)
    # ties on every sort key, so the order must fall back on the id
    with write_session(engine) as s:
        ids = s.scalars(select(Claim.id).order_by(Claim.id).limit(40)).all()
        s.execute(update(Claim).where(Claim.id.in_(ids)).values(created_at=NOW, risk_score=30))
    return engine


def expected_ids(engine, f: Q, sort: str) -> list[int]:
    """The queue's order computed the slow, obvious way: every claim in Python."""
    _label, column, descending = claim_queue.SORTS[sort]
    statuses = claim_queue.TABS[f.tab][1]
    with read_session(engine) as s:
        claims = s.scalars(select(Claim)).all()
    keep = [c for c in claims if c.status in statuses
            and (not f.issue_types or c.issue_type in f.issue_types)
            and (not f.carriers or c.carrier in f.carriers)]
    keep.sort(key=lambda c: (getattr(c, column), c.id), reverse=descending)
    return [c.id for c in keep]


def all_pages(engine, f: Q, sort: str, size: int = 25) -> list[int]:
    ids, page = [], 1
    while True:
        p = claim_queue.queue_page(engine, f, sort=sort, page=page, page_size=size)
        ids += [r.id for r in p.rows]
        if not p.has_next:
            return ids
        page += 1


@pytest.mark.parametrize("sort", list(claim_queue.SORTS))
@pytest.mark.parametrize("cap", [10_000, 20], ids=["few-matches-path", "many-matches-path"])
def test_every_page_in_order_on_both_paths(many, monkeypatch, sort, cap):
    monkeypatch.setattr(claim_queue, "COUNT_CAP", cap)
    for f in (Q(tab="approved"), Q(tab="approved", **FILTERED)):
        got = all_pages(many, f, sort)
        assert got == expected_ids(many, f, sort)
        assert len(got) == len(set(got)) > 25  # more than one page, nothing twice


def test_counts_stop_at_the_cap(many, monkeypatch):
    monkeypatch.setattr(claim_queue, "COUNT_CAP", 30)
    with read_session(many) as s:
        exact = dict(s.execute(select(Claim.status, func.count()).group_by(Claim.status)).all())
    counts = claim_queue.tab_counts(many, Q())
    for tab, (_label, statuses) in claim_queue.TABS.items():
        n = sum(exact.get(st, 0) for st in statuses)
        assert counts[tab] == min(n, 31), tab
    assert counts["approved"] == 31 and claim_queue.count_label(counts["approved"]) == "30+"
    assert claim_queue.count_label(7) == "7"
    page = claim_queue.queue_page(many, Q(tab="approved"), counts=counts)
    assert (page.total_is_exact, page.pages, page.has_previous, page.has_next) == (False, None, False, True)
    small = claim_queue.queue_page(many, Q(tab="closed"))
    assert small.total_is_exact and small.pages == -(-small.total // 25)


def test_a_page_past_the_end_comes_back_to_the_last(many):
    f = Q(tab="approved", **FILTERED)
    p = claim_queue.queue_page(many, f, page=999, page_size=25)
    assert p.page == p.pages and p.rows and not p.has_next


@pytest.mark.parametrize("sort", list(claim_queue.SORTS))
def test_export_chunks_follow_on_without_gaps_or_repeats(many, sort):
    f = Q(tab="approved")
    refs = [row[0] for row in claim_queue.export_rows(many, f, sort=sort, chunk=7)]
    with read_session(many) as s:
        by_id = dict(s.execute(select(Claim.id, Claim.reference)).all())
    assert refs == [by_id[i] for i in expected_ids(many, f, sort)]


def test_export_amounts_are_exact(many):
    rows = list(claim_queue.export_rows(many, Q(tab="approved"), sort="amount"))
    with read_session(many) as s:
        cents = dict(s.execute(select(Claim.reference, Claim.claimed_cents)).all())
    for row in rows:
        whole, frac = str(row[6]).split(".")
        assert int(whole) * 100 + int(frac) == cents[row[0]] and len(frac) == 2


def test_carriers_each_once_in_order(many):
    assert claim_queue.carriers(many) == ["Canada Post", "DHL Express", "FedEx", "UPS", "USPS"]


# --- a page reads a page: SQLite's own count of the work it did, at two sizes --------------------

VIEWS = {
    "default": (Q(), "oldest"),
    "three filters": (Q(issue_types=("damaged", "lost", "stolen"), carriers=("UPS", "USPS"),
                        resolutions=("refund", "store_credit")), "oldest"),
    "approved, newest": (Q(tab="approved"), "newest"),
    "highest amount": (Q(), "amount"),
    "highest risk": (Q(tab="approved"), "risk"),
    "search": (Q(tab="approved", text="CLM-000010"), "oldest"),
}


def sqlite_steps(engine, fn) -> int:
    """How many virtual-machine steps SQLite ran for ``fn`` (counted in units of 100)."""
    steps = [0]

    def count():
        steps[0] += 1
        return 0

    def on_checkout(dbapi_conn, _record, _proxy):
        dbapi_conn.set_progress_handler(count, 100)

    def on_checkin(dbapi_conn, _record):
        dbapi_conn.set_progress_handler(None, 0)

    event.listen(engine, "checkout", on_checkout)
    event.listen(engine, "checkin", on_checkin)
    try:
        fn()
    finally:
        event.remove(engine, "checkout", on_checkout)
        event.remove(engine, "checkin", on_checkin)
    return steps[0]


@pytest.mark.skipif(ON_POSTGRES, reason="counts SQLite's virtual-machine steps")
def test_a_queue_page_costs_the_same_at_twice_the_claims(engine, monkeypatch):
    monkeypatch.setattr(claim_queue, "COUNT_CAP", 50)  # counts are capped at both sizes

    def view(f, sort):
        def run():
            counts = claim_queue.tab_counts(engine, f)
            claim_queue.queue_page(engine, f, sort=sort, counts=counts)
        return run

    bulk.fill(engine, 4000, now=NOW, with_photos=0)
    small = {name: sqlite_steps(engine, view(*v)) for name, v in VIEWS.items()}
    bulk.fill(engine, 4000, now=NOW, with_photos=0, seed=8)
    large = {name: sqlite_steps(engine, view(*v)) for name, v in VIEWS.items()}
    with read_session(engine) as s:
        assert s.scalar(select(func.count()).select_from(Claim)) == 8000
    for name in VIEWS:
        assert large[name] <= small[name] * 1.25 + 20, (name, small[name], large[name])
    # for scale: the naive way (read every claim, then filter) costs far more at this size already
    scan = sqlite_steps(engine, lambda: _every_claim(engine))
    assert scan > 5 * max(large.values()), (scan, large)


def _every_claim(engine) -> int:
    with read_session(engine) as s:
        return len(s.execute(select(Claim.__table__)).all())


@pytest.mark.skipif(ON_POSTGRES, reason="counts SQLite's virtual-machine steps")
def test_a_claim_page_costs_the_same_at_twice_the_claims(engine):
    """The staff claim page's risk signals (earlier claims, same address, store average, reused
    photos) use indexes: every bulk order is in one zip code, so a zip-only index would not do."""
    from claims_core.services import claim_review

    bulk.fill(engine, 3000, now=NOW, with_photos=5)
    with read_session(engine) as s:
        claim_id = s.scalar(select(func.min(Claim.id)))
    small = sqlite_steps(engine, lambda: claim_review.claim_for_staff(engine, claim_id))
    bulk.fill(engine, 3000, now=NOW, with_photos=5, seed=8)
    large = sqlite_steps(engine, lambda: claim_review.claim_for_staff(engine, claim_id))
    assert large <= small * 1.25 + 20, (small, large)
