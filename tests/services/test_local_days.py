"""Analytics counts the store's local days (issue 26, point 1: one clock, one time zone).

A claim filed at 02:00 UTC in a New York store was filed on the evening before, in the store: the
roll-ups, every figure, the period filters and the page's "today" say so, on SQLite (a Python SQL
function, ``infra.db.sqlite_local_day``) and PostgreSQL (``AT TIME ZONE``) alike; a change of the
store's zone moves the roll-ups with it, and upgrading across 0027 recomputes them.
"""
from __future__ import annotations

import contextlib
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import literal, select

from claims_core.domain.errors import ErrorCode, InvalidInput
from claims_core.domain.windows import day_start, local_date
from claims_core.infra import clock, rollups
from claims_core.infra.db import UTCDateTime, read_session, sqlite_local_day, write_session
from claims_core.infra.migrate import upgrade
from claims_core.infra.models import ROLLUP_CLAIMS, ROLLUP_SHIPMENTS, StoreSettings
from claims_core.services import analytics, analytics_rows, customer, settings

from tests.support.factories import claim_request, make_order

NY = "America/New_York"
FILED = datetime(2026, 12, 7, 2, 0, tzinfo=timezone.utc)  # 21:00 on December 6 in New York
SHIPPED = datetime(2026, 12, 2, 3, 30, tzinfo=timezone.utc)  # 22:30 on December 1 in New York
STAFF = "staff:1"


def _set_zone(engine, tz: str) -> None:
    settings.update_settings(engine, STAFF, {"timezone": tz})


def _file_at_2am_utc(engine) -> int:
    b = make_order(engine, "9101", created=SHIPPED - timedelta(days=1),
                   shipments=[dict(status="delivered", carrier="UPS", shipped=SHIPPED,
                                   delivered=SHIPPED + timedelta(days=2), items=[("MUG", 1)])])
    return customer.file_claim(engine, claim_request(b), now=FILED).claim_id


def _claims_rollup(engine) -> dict[date, int]:
    t = ROLLUP_CLAIMS
    with read_session(engine) as s:
        return {d: int(n) for d, n in s.execute(select(t.c.day, t.c.filed)) if n}


def _filed_on(engine, day: date) -> int:
    f = analytics.AnalyticsFilter(day, day)
    out = analytics.outcomes_trend(engine, f, "week")
    rows = analytics_rows.outcomes_trend(engine, f, "week")
    assert out.equals(rows)
    return int(out["filed"].sum()) if len(out) else 0


def test_a_claim_filed_at_2am_utc_counts_on_the_new_york_stores_previous_day(engine):
    _set_zone(engine, NY)
    _file_at_2am_utc(engine)
    assert _claims_rollup(engine) == {date(2026, 12, 6): 1}
    assert _filed_on(engine, date(2026, 12, 6)) == 1
    assert _filed_on(engine, date(2026, 12, 7)) == 0
    # the shipment left on December 1 in the store: its cohort (claim rate) is that day's
    t = ROLLUP_SHIPMENTS
    with read_session(engine) as s:
        assert set(s.scalars(select(t.c.day).where(t.c.shipments > 0))) == {date(2026, 12, 1)}
    rates = analytics.claim_rates(engine, analytics.AnalyticsFilter(date(2026, 12, 1), date(2026, 12, 1)))
    assert int(rates["claims"].sum()) == 1 and int(rates["protected_shipments"].iloc[0]) == 1
    assert analytics_rows.differences(engine, [analytics.AnalyticsFilter(d, d) for d in (
        date(2026, 12, 1), date(2026, 12, 2), date(2026, 12, 6), date(2026, 12, 7))]) == []


def test_changing_the_store_zone_moves_the_rollups_in_the_same_call(engine):
    _file_at_2am_utc(engine)  # a UTC store: the claim counts on December 7
    assert _claims_rollup(engine) == {date(2026, 12, 7): 1}
    _set_zone(engine, NY)
    assert _claims_rollup(engine) == {date(2026, 12, 6): 1}
    assert _filed_on(engine, date(2026, 12, 6)) == 1
    _set_zone(engine, "Asia/Tokyo")  # 11:00 on December 7
    assert _claims_rollup(engine) == {date(2026, 12, 7): 1}
    assert analytics_rows.differences(engine, [analytics.AnalyticsFilter(date(2026, 12, 6),
                                                                         date(2026, 12, 7))]) == []


def test_a_zone_nobody_knows_is_refused_and_moves_nothing(engine):
    _file_at_2am_utc(engine)
    with pytest.raises(InvalidInput) as e:
        _set_zone(engine, "Mars/Olympus_Mons")
    assert e.value.code == ErrorCode.SETTING_INVALID
    assert _claims_rollup(engine) == {date(2026, 12, 7): 1}


def test_upgrading_across_0027_recounts_the_days_in_the_stores_zone(db_url):
    """A database from before 0027 counted UTC days: upgrading recomputes them in local days."""
    from alembic import command

    from claims_core.infra import migrate
    from claims_core.infra.db import make_engine
    engine = make_engine(db_url)
    _file_at_2am_utc(engine)
    with write_session(engine) as s:  # the zone as an older version saved it: no rebuild
        s.get(StoreSettings, 1).timezone = NY
    assert _claims_rollup(engine) == {date(2026, 12, 7): 1}
    cfg = migrate.alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0026")
    upgrade(engine)
    assert _claims_rollup(engine) == {date(2026, 12, 6): 1}
    engine.dispose()


# --- the one rule in SQL, both databases ---------------------------------------------------------

MOMENTS = [
    ("2026-12-07 02:00:00", NY), ("2026-12-07 05:00:00", NY), ("2026-12-07 04:59:59.999999", NY),
    # DST starts (02:00 EST → 03:00 EDT = 07:00 UTC) and ends (02:00 EDT → 01:00 EST = 06:00 UTC)
    ("2026-03-08 04:59:59", NY), ("2026-03-08 05:00:00", NY), ("2026-03-09 03:59:59", NY),
    ("2026-03-09 04:00:00", NY), ("2026-11-01 03:59:59", NY), ("2026-11-01 04:00:00", NY),
    ("2026-11-02 04:59:59", NY), ("2026-11-02 05:00:00", NY),
    # half-hour and quarter-hour offsets: the day turns inside a UTC hour
    ("2026-12-06 18:29:59", "Asia/Kolkata"), ("2026-12-06 18:30:00", "Asia/Kolkata"),
    ("2026-12-06 18:14:59", "Asia/Kathmandu"), ("2026-12-06 18:15:00", "Asia/Kathmandu"),
    ("2026-12-06 10:59:59", "Pacific/Auckland"), ("2026-12-06 11:00:00", "Pacific/Auckland"),
    ("2026-12-06 23:59:59", "UTC"), ("2026-12-07 00:00:00", "UTC"),
]


@pytest.mark.parametrize("moment,tz", MOMENTS)
def test_the_sql_local_day_is_the_domains(moment, tz, engine):
    at = datetime.fromisoformat(moment).replace(tzinfo=timezone.utc)
    expected = local_date(at, tz)
    with read_session(engine) as s:
        got = s.scalar(select(rollups.day_of(engine.dialect.name, literal(at, UTCDateTime()),
                                             literal(tz))))
    assert got == expected, (moment, tz)
    # the period bounds agree: the moment is in its local day's [start, next start)
    assert day_start(expected, tz) <= at < day_start(expected + timedelta(days=1), tz)


def test_the_sqlite_function_reads_what_sqlite_may_hold():
    assert sqlite_local_day("2026-12-07 02:00:00.000000", NY) == "2026-12-06"
    assert sqlite_local_day("2026-12-07T02:00:00", NY) == "2026-12-06"
    assert sqlite_local_day("2026-12-07 02:00", NY) == "2026-12-06"
    assert sqlite_local_day("2026-12-07 02:00:00+00:00", NY) == "2026-12-06"
    assert sqlite_local_day("2026-12-07 02:00:00Z", NY) == "2026-12-06"
    assert sqlite_local_day("2026-12-06 21:00:00-05:00", "UTC") == "2026-12-07"
    assert sqlite_local_day("2026-12-07 02:00:00", None) == "2026-12-07"
    assert sqlite_local_day(None, NY) is None
    assert sqlite_local_day("not a date", NY) is None
    assert sqlite_local_day("2026-13-45 99:00:00", NY) is None


# --- "today" and the page's period ----------------------------------------------------------------

@contextlib.contextmanager
def clock_at(moment: datetime):
    old = clock.shift().total_seconds()
    clock.set_shift(clock.shift_to(moment))
    try:
        yield
    finally:
        clock.set_shift(old)


def test_today_is_the_stores_day_by_the_one_clock(engine):
    _set_zone(engine, NY)
    with clock_at(datetime(2026, 12, 7, 0, 5, tzinfo=timezone.utc)):  # 19:05 on the 6th in NY
        assert analytics.store_today(engine) == date(2026, 12, 6)
        f = analytics.last_days(engine, 30)
        assert (f.date_from, f.date_to) == (date(2026, 11, 6), date(2026, 12, 6))
        assert f.bounds(NY) == (datetime(2026, 11, 6, 5, tzinfo=timezone.utc),
                                datetime(2026, 12, 7, 5, tzinfo=timezone.utc))
    with clock_at(datetime(2026, 12, 7, 4, 30, tzinfo=timezone.utc)):  # 23:30 on the 6th in NY
        assert analytics.store_today(engine) == date(2026, 12, 6)
    with clock_at(datetime(2026, 12, 7, 5, 0, tzinfo=timezone.utc)):  # midnight in NY
        assert analytics.store_today(engine) == date(2026, 12, 7)


APP = str(Path(__file__).resolve().parents[2] / "navigation.py")


def test_the_pages_default_period_ends_on_the_stores_today(db_url, engine, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from claims_core.services import accounts, staff_sessions
    from views import ui
    _set_zone(engine, NY)
    monkeypatch.setenv("DATABASE_URL", db_url)
    who = accounts.add_user(engine, "ana", "analyst", "a long password")
    with clock_at(datetime(2026, 12, 7, 0, 5, tzinfo=timezone.utc)):  # 19:05 on the 6th in NY
        token = staff_sessions.start(engine, who)
        monkeypatch.setattr(ui, "staff_cookie", lambda: token)
        at = AppTest.from_file(APP, default_timeout=90)
        at.run()
        at.switch_page("views/staff/analytics.py").run()
        assert not at.exception
        assert tuple(at.date_input(key="a_period").value) == (date(2026, 6, 9), date(2026, 12, 6))


def test_the_queues_filed_between_counts_the_stores_days(engine):
    from claims_core.services import claim_queue
    _set_zone(engine, NY)
    claim_id = _file_at_2am_utc(engine)

    def filed_between(first: date, last: date) -> list[int]:
        page = claim_queue.queue_page(engine, claim_queue.QueueFilter(tab="todo", date_from=first,
                                                                      date_to=last))
        return [r.id for r in page.rows]
    assert filed_between(date(2026, 12, 6), date(2026, 12, 6)) == [claim_id]
    assert filed_between(date(2026, 12, 7), date(2026, 12, 7)) == []


def test_the_database_is_asked_whether_it_knows_a_zone(engine):
    """PostgreSQL converts with its own zone database: a zone it lacks is refused before it is
    saved (it would fail every write touching an order); the transaction goes on after asking."""
    with write_session(engine) as s:
        assert rollups.zone_known(s, NY)
        assert rollups.zone_known(s, "Mars/Olympus_Mons") == (engine.dialect.name != "postgresql")
        assert s.get(StoreSettings, 1).timezone == "UTC"
