"""Settings → Staff (owner): the accounts, adding one, a member's email notifications, a new
password or (de)activation (``services.accounts``, one call per action)."""
from __future__ import annotations

import streamlit as st

from claims_core.domain.vocabulary import Role
from claims_core.services import accounts
from views import ui

ROLE_LABELS = {Role.OWNER: "Owner (everything)", Role.AGENT: "Agent (work claims)",
               Role.ANALYST: "Analyst (read-only analytics)"}


def show(engine, who) -> None:
    act = ui.settings_act
    users = accounts.list_users(engine)
    names = [u.username for u in users]
    st.dataframe([{"Username": u.username, "Name": u.display_name, "Role": u.role,
                   "Active": u.active, "Locked": u.locked} for u in users], hide_index=True)
    with st.form("add_user", clear_on_submit=True):
        st.markdown("**Add a staff member**")
        u1, u2, u3 = st.columns(3)
        new_name = u1.text_input("Username", key="s_new_user")
        new_display = u2.text_input("Display name", key="s_new_display")
        new_role = u3.selectbox("Role", accounts.ROLES, index=accounts.ROLES.index(Role.AGENT),
                                key="s_new_role", format_func=ROLE_LABELS.get)
        pw = st.text_input(f"Password (at least {accounts.MIN_PASSWORD_LEN} characters)",
                           type="password", key="s_new_pw")
        if st.form_submit_button("Add user"):
            act(lambda: accounts.add_user(engine, new_name, new_role, pw, new_display,
                                          actor=who.actor), f"Added {new_name}.")
    with st.form("notify_user"):
        st.markdown("**Email notifications for a staff member**")
        e1, e2 = st.columns(2)
        target = e1.selectbox("User", names, key="s_notify_user")
        email = e2.text_input("Their email", key="s_notify_email")
        nc1, nc2 = st.columns(2)
        new_claims = nc1.checkbox("A mail for each new claim", key="s_notify_new")
        digest = nc2.checkbox("A daily digest", key="s_notify_digest")
        if st.form_submit_button("Save notifications"):
            act(lambda: accounts.set_notifications(engine, target, email, new_claims, digest,
                                                   actor=who.actor),
                f"Notifications for {target} saved.")
    with st.form("manage_user"):
        st.markdown("**Change a password, or (de)activate**")
        m1, m2 = st.columns(2)
        member = m1.selectbox("User", names, key="s_target_user")
        new_pw = m2.text_input("New password (leave empty to keep)", type="password", key="s_pw2")
        a1, a2, a3 = st.columns(3)
        if a1.form_submit_button("Set password"):
            act(lambda: accounts.change_password(engine, member, new_pw, actor=who.actor),
                f"{member} updated.")
        if a2.form_submit_button("Deactivate"):
            act(lambda: accounts.set_active(engine, member, False, actor=who.actor),
                f"{member} updated.")
        if a3.form_submit_button("Activate"):
            act(lambda: accounts.set_active(engine, member, True, actor=who.actor),
                f"{member} updated.")
