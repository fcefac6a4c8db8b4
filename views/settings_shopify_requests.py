"""Settings → Customer data → Shopify requests: the compliance requests Shopify sent (data
requests, erasures), each with its 30-day deadline and status; a prepared data request is
downloaded here. Carried out by ``claims_core/services/privacy_requests.py``."""
from __future__ import annotations

import streamlit as st

from claims_core.services import privacy_requests
from views import safe_text, ui

STATUS = {"pending": "to do", "waiting": "waiting", "done": "done", "failed": "failed"}


def show(engine, who) -> None:
    rows = privacy_requests.list_requests(engine)
    st.subheader("Shopify requests", anchor=False)
    if not rows:
        st.caption("No customer data requests or erasures from Shopify yet.")
        return
    st.caption("Shopify's customer data requests and erasures (its privacy webhooks). A data "
               "request is exported for you to download and send on; an erasure of a customer "
               "with an open claim waits until the claim is decided. Shopify expects each done "
               "within 30 days.")
    for r in rows:
        label = (f"#{r.id} · {r.label} · {STATUS.get(r.status, r.status)} · received "
                 f"{ui.day(r.received_at)} · due {ui.day(r.due_at)}")
        with st.expander(label, expanded=r.status in ("waiting", "failed") or r.export_ready):
            if r.email:
                safe_text.show(r.email, prefix="Customer: ")
            if r.detail:
                safe_text.show(r.detail)
            if r.last_error:
                st.error(safe_text.inline(r.last_error))
            if r.export_ready:
                key = f"privacy_zip_{r.id}"
                if st.button("Prepare the download", key=f"privacy_prep_{r.id}"):
                    got = privacy_requests.download_export(engine, r.id, who.actor)
                    if got is not None:
                        st.session_state[key] = got
                if key in st.session_state:
                    name, data = st.session_state[key]
                    st.download_button("Download the customer's data (ZIP)", data, file_name=name,
                                       mime="application/zip", key=f"privacy_dl_{r.id}")
