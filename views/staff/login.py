"""Staff log in."""
import streamlit as st

from views import ui

st.set_page_config(layout="centered")
ui.login_form()
