"""Staff log in."""
import streamlit as st

from claims_core import domain
from claims_core.infra.db import utcnow
from claims_core.services import accounts
from views import safe_text, ui

st.set_page_config(layout="centered")
engine = ui.get_engine()
st.title("Staff log in", anchor=False)
if st.session_state.pop("staff_expired", False):
    st.info("Your session expired. Please log in again.")
with st.form("login"):
    username = st.text_input("Username", key="login_user", autocomplete="username")
    password = st.text_input("Password", type="password", key="login_password",
                             autocomplete="current-password")
    submitted = st.form_submit_button("Log in", type="primary", width="stretch")
if submitted:
    try:
        who = accounts.authenticate(engine, username, password)
    except domain.AuthError as e:
        st.error(e.message)
    else:
        now = utcnow()
        st.session_state["staff"] = {"identity": who, "logged_in_at": now, "last_seen_at": now}
        st.session_state["after_login"] = True
        st.rerun()
st.caption("Accounts are created by the owner (Settings → Staff) or with "
           "`python -m claims_core add-user`.")
