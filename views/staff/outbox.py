"""Outbox: the emails the portal sends, and what happened to them (the whole story when no SMTP
server is configured)."""
import streamlit as st

from claims_core.adapters.mailer import smtp_from_env
from claims_core.services.notifications import list_outbox
from views import safe_text, ui

st.set_page_config(layout="wide")
who = ui.require("settings")
engine = ui.get_engine()

st.title("Outbox", anchor=False)
cfg = smtp_from_env()
if cfg is None:
    st.info("No SMTP server is configured (CLAIMS_SMTP_HOST), so nothing is sent: the messages the "
            "portal would send are listed here. See the README to connect a mail server.")
else:
    st.caption(f"Sending through {cfg.host}:{cfg.port} as {cfg.sender}. "
               "The background jobs deliver the queue within seconds (or `python -m claims_core "
               "worker` / `tick`); Settings → Background work shows how it goes.")
rows = list_outbox(engine)
if not rows:
    st.caption("No messages yet.")
    st.stop()
tz = ui.store_tz()  # times in the store's zone
st.dataframe([{"To": r.to_addr, "Subject": r.subject, "Status": r.status, "Tries": r.attempts,
               "Queued": ui.moment(r.created_at, tz), "Last error": r.last_error}
              for r in rows], hide_index=True, width="stretch")
pick = st.selectbox("Read a message", [r.id for r in rows], key="ob_pick",
                    format_func=lambda i: next(f"{r.to_addr} · {r.subject}" for r in rows if r.id == i))
if pick is not None:
    safe_text.show(next(r.body_text for r in rows if r.id == pick))
