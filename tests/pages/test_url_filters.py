"""Filters in the URL: the queue opens a shared or drilled-down view as its link says, and keeps
its URL in step with the filters; unknown values in a link are dropped, never an error."""
from __future__ import annotations

from tests.pages.test_staff_app import app, fresh_claim  # noqa: F401


def test_the_queue_opens_the_view_its_link_describes(app, engine):  # noqa: F811
    fresh_claim(engine, "9201", issue="damaged")
    fresh_claim(engine, "9202", issue="missing_item")
    at = app("agent", "views/staff/queue.py", issue="damaged,bogus", carrier="UPS,Nowhere Post",
             tab="todo", min="5", hold="0", filed="2020-01-01..2030-12-31")
    assert not at.exception and not at.warning, [w.value for w in at.warning]
    assert at.multiselect(key="q_issue").value == ["damaged"]
    assert at.multiselect(key="q_carrier").value == ["UPS"]
    assert at.number_input(key="q_min").value == 5.0
    table = at.dataframe[0].value
    assert list(table["Issue"]) == ["Damaged"]
    assert at.query_params["issue"] == "damaged" and at.query_params["carrier"] == "UPS"
    at.multiselect(key="q_issue").set_value(["damaged", "missing_item"])
    at.run()
    assert at.query_params["issue"] == "damaged,missing_item"
    assert len(at.dataframe[0].value) == 2


def test_a_link_with_nonsense_is_the_plain_queue(app, engine):  # noqa: F811
    fresh_claim(engine, "9301")
    at = app("agent", "views/staff/queue.py", issue="x", tab="nope", min="-3", filed="yesterday",
             sort="sideways")
    assert not at.exception
    assert at.multiselect(key="q_issue").value == [] and at.number_input(key="q_min").value is None
    assert len(at.dataframe[0].value) == 1


def test_a_link_opens_its_tab(app, engine):  # noqa: F811
    fresh_claim(engine, "9401")
    at = app("agent", "views/staff/queue.py", tab="approved")
    assert at.segmented_control(key="q_tab").value == "approved"
    assert not at.dataframe  # nothing approved yet


def test_analytics_keeps_its_filters_in_the_url(app, engine):  # noqa: F811
    at = app("owner", "views/staff/analytics.py", period="2026-01-01..2026-03-31", issue="lost",
             by="week")
    assert not at.exception, at.exception
    assert at.date_input(key="a_period").value == (__import__("datetime").date(2026, 1, 1),
                                                   __import__("datetime").date(2026, 3, 31))
    assert at.multiselect(key="a_issue").value == ["lost"] and at.radio(key="a_grain").value == "week"
    assert at.query_params["period"] == "2026-01-01..2026-03-31"


def test_a_chart_selection_names_what_to_drill_into():
    from views.url_filters import selected
    event = {"selection": {"points": [{"customdata": ["lost"]}, {"customdata": ["lost"]},
                                      {"customdata": ["stolen", 3]}, {"x": 1}]}}
    assert selected(event) == ["lost", "stolen"]
    assert selected({}) == [] and selected(None) == [] and selected({"selection": {}}) == []


def test_links_with_impossible_values_never_crash_a_page(app, engine):  # noqa: F811
    fresh_claim(engine, "9501")
    for query in ({"filed": "2026-01-01..2026-02-01..2026-03-01"}, {"max": "1e20"},
                  {"min": "1e300"}, {"min": "nan"}, {"filed": "2026-05-01..2026-01-01"}):
        at = app("agent", "views/staff/queue.py", **query)
        assert not at.exception, (query, at.exception)
    at = app("owner", "views/staff/analytics.py", period="9999-12-30..9999-12-31")
    assert not at.exception, at.exception
