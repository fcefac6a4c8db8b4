"""Settings → Shopify & tracking → Live feeds: what the background job couldn't apply (webhook
receipts with their last error, a retry each) and the tracking numbers 17TRACK refused to
register (with its reason). Nothing received is ever dropped silently: it shows here."""
from __future__ import annotations

import streamlit as st

from claims_core.services import track17_registration, webhook_receipts
from views import ui


def show(engine) -> None:
    pending, failed, rows = webhook_receipts.receipts_needing_attention(engine)
    c1, c2 = st.columns(2)
    c1.metric("Webhooks waiting to be applied", pending,
              help="Acknowledged at once, applied in the background within seconds.")
    c2.metric("Webhooks that couldn't be applied", failed)
    if rows:
        st.dataframe([{"#": r.id, "From": r.source, "Topic": r.topic, "Received": ui.moment(r.received_at),
                       "Status": "failed" if r.status == "failed" else "retrying",
                       "Tries": r.attempts, "Last error": r.last_error} for r in rows],
                     hide_index=True, width="stretch")
        retryable = [r.id for r in rows if r.status == "failed"]
        if retryable:
            pick = st.selectbox("Webhook to apply again", retryable, key="feeds_receipt_pick")
            if st.button("Apply it again", key="feeds_receipt_retry"):
                if webhook_receipts.retry_receipt(engine, pick):
                    st.session_state["settings_flash"] = "The webhook will be applied again."
                st.rerun()

    st.markdown("**17TRACK registration**")
    if not track17_registration.enabled():
        st.caption("Set TRACK17_API_KEY (the 17TRACK API key) in the server's environment or "
                   ".streamlit/secrets.toml: every new tracking number is then registered with "
                   "17TRACK by itself, so its updates arrive here.")
        return
    counts, refused = track17_registration.needing_attention(engine)
    r1, r2, r3 = st.columns(3)
    r1.metric("Registered", counts.get("registered", 0))
    r2.metric("Waiting to be sent", counts.get("pending", 0) + counts.get("sending", 0))
    r3.metric("Refused or failing", counts.get("rejected", 0) + counts.get("failed", 0))
    if refused:
        st.dataframe([{"Tracking number": r.tracking_number, "Status": r.status,
                       "17TRACK's reason": r.reason, "Code": r.code, "Tries": r.attempts}
                      for r in refused], hide_index=True, width="stretch")
