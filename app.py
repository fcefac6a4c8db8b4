"""Shipping-protection claims portal. Start with: streamlit run app.py

Public pages for everyone (file a claim, view my claim); staff pages only after login, by role.
"""
import streamlit as st

from claims_core.domain import can
from views.ui import current_staff, global_style, store_settings

settings = store_settings()
st.set_page_config(page_title=f"{settings.name} · Claims", page_icon="📦")  # layout: each page its own
global_style(settings)

public = [
    st.Page("views/customer/file_claim.py", title="File a claim", icon=":material/local_shipping:",
            default=True),
    st.Page("views/customer/view_claim.py", title="View my claim", icon=":material/search:",
            url_path="my-claim"),
]


def log_out():
    st.session_state.pop("staff", None)
    st.switch_page("views/customer/file_claim.py")


who = current_staff()
login = st.Page("views/staff/login.py", title="Staff log in", icon=":material/login:",
                url_path="login", visibility="hidden" if who else "visible")
staff = [login]
if who is not None:
    if can(who.role, "work_claims"):
        staff += [
            st.Page("views/staff/queue.py", title="Claims queue", icon=":material/inbox:",
                    url_path="queue"),
            st.Page("views/staff/claim.py", title="Claim", icon=":material/assignment:",
                    url_path="claim", visibility="hidden"),
            st.Page("views/staff/new_claim.py", title="New claim for a customer",
                    icon=":material/add_call:", url_path="new-claim"),
        ]
    if can(who.role, "analytics"):
        staff.append(st.Page("views/staff/analytics.py", title="Analytics", icon=":material/monitoring:",
                             url_path="analytics"))
    if can(who.role, "settings"):
        staff.append(st.Page("views/staff/settings.py", title="Settings",
                             icon=":material/settings:", url_path="settings"))
        staff.append(st.Page("views/staff/outbox.py", title="Outbox", icon=":material/outbox:",
                             url_path="outbox"))
    staff.append(st.Page(log_out, title=f"Log out ({who.username})", icon=":material/logout:",
                         url_path="logout"))

page = st.navigation({"": public, "Staff": staff}, position="top")
if who is not None and (page.url_path == "login" or st.session_state.pop("after_login", False)):
    # Just logged in (or back on the login page): go to the first page this role works on.
    home = next((p for p in staff[1:] if p.url_path not in ("claim", "logout")), None)
    if home is not None:
        st.switch_page(home)
page.run()
