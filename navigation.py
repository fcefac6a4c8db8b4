"""Shipping-protection claims portal: the page navigation that ``app.py`` (the entry point: start
with ``streamlit run app.py``) serves. Not named ``streamlit_app.py`` on purpose: a host that opens
that name by default (Streamlit Community Cloud) would serve the pages without app.py's log-in,
API and webhook routes; this way it finds nothing and you point it at app.py.

Public pages for everyone (file a claim, view my claim); staff pages ask for a log-in, then check
the role; the menu lists what the role may open.
"""
import streamlit as st

from views.navigation import STAFF_PAGES, in_menu
from claims_core.domain.messages import N_
from claims_core.services import background
from views.ui import (current_staff, end_staff_session, get_engine, global_style, moment,
                      store_settings, t)

settings = store_settings()
tr = t()  # the public pages' menu speaks the customer's language; staff pages stay English
st.set_page_config(page_title=f"{settings.name} · " + tr(N_("Claims")),
                   page_icon="📦")  # layout: each page its own
global_style(settings)

public = [
    st.Page("views/customer/file_claim.py", title=tr(N_("File a claim")),
            icon=":material/local_shipping:", default=True),
    st.Page("views/customer/view_claim.py", title=tr(N_("View my claim")), icon=":material/search:",
            url_path="my-claim"),
    # what is kept and for how long, how to ask for a copy or erasure: in every page's menu
    st.Page("views/customer/privacy.py", title=tr(N_("Privacy notice")), icon=":material/shield:",
            url_path="privacy"),
]


def log_out():
    end_staff_session()
    st.title("You're logged out", anchor=False)
    st.page_link("views/customer/file_claim.py", label="Back to the claims portal",
                 icon=":material/arrow_back:")


who = current_staff()
login = st.Page("views/staff/login.py", title=tr(N_("Staff log in")), icon=":material/login:",
                url_path="login", visibility="hidden" if who else "visible")

staff = [login]
menu = []
for sp in STAFF_PAGES:  # all registered; the menu lists what this role may open
    shown = in_menu(sp, who.role if who else None)
    staff.append(st.Page(sp.script, title=sp.title, icon=sp.icon, url_path=sp.url_path,
                         visibility="visible" if shown else "hidden"))
    if shown:
        menu.append(staff[-1])
if who is not None:
    staff.append(st.Page(log_out, title=f"Log out ({who.username})", icon=":material/logout:",
                         url_path="logout"))

page = st.navigation({"": public, "Staff": staff}, position="top")
if who is not None and page.url_path not in {p.url_path for p in public}:
    failing = background.mail_failing_since(get_engine())
    if failing is not None:  # staff pages: say so when customers haven't been getting mail
        st.warning(f"Email has been failing since {moment(failing)}: customers are not getting "
                   "their mails. Check the mail server settings (Settings → Background work).",
                   icon=":material/mail:")
if who is not None and page.url_path == "login" and menu:
    # Logged in on the log-in page: go to the first page this role works on.
    st.switch_page(menu[0])
page.run()
