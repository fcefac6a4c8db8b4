"""Staff log in: the way to the log-in form (the app's ``/auth/login`` sets the session cookie)."""
import streamlit as st

from views import ui

st.set_page_config(layout="centered")
ui.login_prompt("/login")
