"""Helpers for driving the Streamlit app in Chromium."""
from __future__ import annotations

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}


def settle(page, timeout: int = 30000) -> None:
    """Wait until Streamlit has finished the run the last action started."""
    page.wait_for_timeout(250)
    page.wait_for_function(
        """() => { const w = document.querySelector('[data-testid="stStatusWidget"]');
                   return (!w || !w.innerText.includes('Running'))
                          && !document.querySelector('[data-stale="true"]'); }""", timeout=timeout)
    page.wait_for_timeout(400)  # let the fade-in of re-rendered elements finish


def click_button(page, name: str) -> None:
    page.get_by_role("button", name=name, exact=True).click()
    settle(page)


def choose(page, text: str) -> None:
    page.get_by_text(text).first.click()
    settle(page)


def draw_signature(page) -> None:
    """Drag the mouse across the signature canvas like a person signing."""
    canvas = page.locator("canvas.upper-canvas").first
    if canvas.count() == 0:
        canvas = page.locator("canvas").last
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    x, y = box["x"] + 30, box["y"] + box["height"] * 0.6
    page.mouse.move(x, y)
    page.mouse.down()
    for i in range(1, 25):
        page.mouse.move(x + i * 10, y - 35 * ((-1) ** i) * (0.3 + (i % 5) / 10), steps=3)
    page.mouse.up()
    settle(page)
    page.wait_for_timeout(500)
    settle(page)


def shot(page, path) -> None:
    """A screenshot of the whole page (Streamlit scrolls inside its own container)."""
    height = page.evaluate(
        """() => { const m = document.querySelector('[data-testid="stMain"]') ||
                             document.querySelector('section.main');
                   return m ? m.scrollHeight : document.body.scrollHeight; }""")
    vp = page.viewport_size
    page.set_viewport_size({"width": vp["width"], "height": max(vp["height"], min(int(height) + 40, 6000))})
    page.wait_for_timeout(400)
    page.screenshot(path=str(path), full_page=True)
    page.set_viewport_size(vp)


def set_checkbox(page, label: str, value: bool) -> None:
    box = page.get_by_role("checkbox", name=label, exact=True)
    if box.is_checked() != value:
        box.click(force=True)  # Streamlit draws its own box over the real input
    settle(page)


# Streamlit's own chrome (navigation menu, header, toolbar) is the framework's markup, not ours.
FRAMEWORK = ["[data-testid='stSidebarNav']", "[data-testid='stSidebarNavItems']",
             "[data-testid='stSidebar']", "header", "[data-testid='stToolbar']",
             "[data-testid='stDecoration']", "[data-testid='stTopNavLinkContainer']"]


def assert_accessible(page, where: str, *, streamlit_page: bool = True) -> None:
    """axe-core on the page: no serious or critical violation in the project's own markup."""
    from axe_playwright_python.sync_playwright import Axe

    settle(page)
    if streamlit_page:
        page.wait_for_function(  # the app's own stylesheet is in place (first paint can precede it)
            "() => [...document.querySelectorAll('style')].some(s => s.textContent.includes('claims-badge'))",
            timeout=15000)
    page.wait_for_timeout(300)
    results = Axe().run(page, context={"exclude": [[sel] for sel in FRAMEWORK]})
    bad = [f"{v['id']} ({v['impact']}): {v['nodes'][0]['html'][:120]} "
           f"{(v['nodes'][0].get('any') or [{}])[0].get('message', '')}"
           for v in results.response["violations"] if v["impact"] in ("serious", "critical")]
    assert not bad, f"accessibility problems on {where}:\n" + "\n".join(bad)


def staff_log_in(page, base: str, user: str, password: str, *, check_accessible: bool = False) -> None:
    """Log in as staff the way a person does: the Staff log in link leads to the app's log-in form
    (served by the ``/auth/login`` route, which sets the session cookie), then back to the app."""
    page.goto(base + "/login")  # without a session: sent to the form
    page.locator("form[action='/auth/login']").wait_for(timeout=30000)
    if check_accessible:
        assert_accessible(page, "staff log-in form", streamlit_page=False)
    page.get_by_label("Username").fill(user)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(lambda url: "/auth/login" not in url, timeout=30000)
    settle(page)


def claim_shipment(page, number: int = 1) -> None:
    """On the order page: the "Claim for this shipment" button of shipment ``number`` (1-based,
    counting the shipments that can take a claim)."""
    page.get_by_role("button", name="Claim for this shipment").nth(number - 1).click()
    settle(page)
