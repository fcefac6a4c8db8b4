"""The privacy notice: what the portal keeps about a customer, for how long (the store's retention
settings), and how to ask for a copy or erasure. The store's own text replaces it when written
(Settings → Privacy). Linked from every public page and every customer email."""
from __future__ import annotations

import streamlit as st

from claims_core.domain import privacy
from claims_core.services import privacy_notice
from views import safe_text, ui

st.set_page_config(layout="centered")
settings = ui.store_settings()
t = ui.t()

ui.branding(settings)
ui.language_picker()
st.title(t(privacy.NOTICE_TITLE), anchor=False)
for paragraph in privacy_notice.paragraphs(settings, t):
    safe_text.show(paragraph)  # the store's own text is shown as plain text
