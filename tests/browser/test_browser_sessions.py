"""Staff sessions in a real browser: a log-in survives reloads and new tabs, a bookmark lands after
the log-in, deactivation ends an open tab at once, and log-out ends the session and its cookie."""
from __future__ import annotations

import pytest

from claims_core.infra.db import make_engine
from claims_core.services import accounts

from tests.support.browser import DESKTOP, settle, staff_log_in

pytestmark = pytest.mark.browser
AGENT = ("session-agent", "session agent password 7")


def _agent(live_app) -> None:
    engine = make_engine(live_app["db_url"])
    try:
        try:
            accounts.add_user(engine, AGENT[0], "agent", AGENT[1])
        except accounts.AuthError:
            accounts.set_active(engine, AGENT[0], True, actor="test")
    finally:
        engine.dispose()


def _heading(page) -> str:
    page.get_by_role("heading").first.wait_for(timeout=30000)
    return page.get_by_role("heading").first.inner_text()


def test_a_session_survives_reloads_and_tabs_and_ends_on_deactivation(live_app, browser):
    _agent(live_app)
    base = live_app["url"]
    ctx = browser.new_context(viewport=DESKTOP)
    page = ctx.new_page()
    page.goto(base + "/queue")  # a bookmark: the log-in first, then the queue itself
    page.locator("form[action='/auth/login']").wait_for(timeout=30000)
    page.get_by_label("Username").fill(AGENT[0])
    page.get_by_label("Password").fill(AGENT[1])
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{base}/queue", timeout=30000)
    settle(page)
    assert _heading(page) == "Claims queue"
    [cookie] = [c for c in ctx.cookies() if c["name"] == "claims_staff"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"

    page.reload()
    settle(page)
    assert _heading(page) == "Claims queue"  # a reload keeps the session
    other = ctx.new_page()
    other.goto(base + "/new-claim")
    settle(other)
    assert _heading(other) == "New claim for a customer"  # so does a new tab

    engine = make_engine(live_app["db_url"])
    try:
        accounts.set_active(engine, AGENT[0], False, actor="staff:browser-owner")
    finally:
        engine.dispose()
    # the open tab, without a reload: its next action finds the session gone
    page.get_by_text("Waiting on customer").first.click()  # a tab of the queue: a new run
    settle(page)
    page.get_by_text("Staff log in").first.wait_for(timeout=30000)
    assert page.get_by_role("heading", name="Claims queue").count() == 0
    ctx.close()


def test_log_out_ends_the_session_and_clears_the_cookie(live_app, browser):
    _agent(live_app)
    base = live_app["url"]
    ctx = browser.new_context(viewport=DESKTOP)
    page = ctx.new_page()
    staff_log_in(page, base, *AGENT)
    assert _heading(page) == "Claims queue"
    other = ctx.new_page()
    other.goto(base + "/queue")
    settle(other)
    logout_calls = []  # the page's own request to the log-out route: a same-origin POST
    page.on("request", lambda r: logout_calls.append((r.method, r.headers.get("origin")))
            if "/auth/logout" in r.url else None)
    page.locator("header").get_by_text("Staff", exact=True).first.click()
    page.get_by_text(f"Log out ({AGENT[0]})").first.click()
    page.get_by_text("You're logged out").wait_for(timeout=30000)
    page.wait_for_function("() => !document.cookie.includes('claims_staff')")  # HttpOnly anyway
    for _ in range(20):  # the page's request to the log-out route clears the cookie
        if not [c for c in ctx.cookies() if c["name"] == "claims_staff"]:
            break
        page.wait_for_timeout(250)
    assert not [c for c in ctx.cookies() if c["name"] == "claims_staff"]
    assert logout_calls and all(m == "POST" for m, _o in logout_calls), logout_calls
    other.reload()  # the other tab is logged out too
    other.locator("form[action='/auth/login']").wait_for(timeout=30000)
    ctx.close()
