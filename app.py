"""Shipping-protection claims portal. Start with: streamlit run app.py

Public pages for everyone (file a claim, view my claim); staff pages only after login.
"""
import streamlit as st

from pages.ui import store_settings

settings = store_settings()
st.set_page_config(page_title=f"{settings.name} · Claims", page_icon="📦", layout="centered")

public = [
    st.Page("pages/file_claim.py", title="File a claim", icon=":material/local_shipping:",
            default=True),
    st.Page("pages/view_claim.py", title="View my claim", icon=":material/search:",
            url_path="my-claim"),
]

st.navigation(public, position="top").run()
