"""The staff pages, and which of them each role's menu lists.

Every staff page is always registered with ``st.navigation`` (a bookmark, a reload or a link in a
notification email lands on it; reached without a session it shows the log-in form, then itself);
the menu lists only the pages the role may open. Each page checks the role again itself.
"""
from __future__ import annotations

from dataclasses import dataclass

from claims_core.domain import can


@dataclass(frozen=True)
class StaffPage:
    script: str
    title: str
    icon: str
    url_path: str
    permission: str
    listed: bool = True  # in the menu (the claim page is opened from the queue)


STAFF_PAGES = (
    StaffPage("views/staff/queue.py", "Claims queue", ":material/inbox:", "queue", "work_claims"),
    StaffPage("views/staff/claim.py", "Claim", ":material/assignment:", "claim", "work_claims",
              listed=False),
    StaffPage("views/staff/new_claim.py", "New claim for a customer", ":material/add_call:",
              "new-claim", "work_claims"),
    StaffPage("views/staff/recoveries.py", "Recoveries", ":material/currency_exchange:",
              "recoveries", "work_claims"),
    StaffPage("views/staff/analytics.py", "Analytics", ":material/monitoring:", "analytics",
              "analytics"),
    StaffPage("views/staff/settings.py", "Settings", ":material/settings:", "settings", "settings"),
    StaffPage("views/staff/outbox.py", "Outbox", ":material/outbox:", "outbox", "settings"),
)


def in_menu(page: StaffPage, role: str | None) -> bool:
    return page.listed and role is not None and can(role, page.permission)


def menu_titles(role: str | None) -> list[str]:
    """The staff pages a role's menu lists, in order."""
    return [p.title for p in STAFF_PAGES if in_menu(p, role)]
