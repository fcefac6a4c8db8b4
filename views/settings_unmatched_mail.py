"""Settings → Unmatched mail: customers' emails that couldn't be tied to a claim (no reply address
and a sender who isn't the claim's, a forged reply address). Staff attach one to a claim by its
reference — it becomes the customer's reply there — or discard it. The rules are in
``claims_core/domain/email_replies.py``; reading the mailbox in ``adapters/inbound_mail.py``."""
from __future__ import annotations

import streamlit as st

from claims_core.adapters import inbound_mail
from claims_core.services import inbound_mail as inbound_service
from views import safe_text, ui

REASONS = {"forged_token": "the reply address was altered (its signature doesn't match)",
           "no_match": "no claim's reply address, and not from a claim's email in reply to our mail"}


def show(engine, who) -> None:
    st.caption("Email that reached the claims mailbox but couldn't be tied to a claim. Attach it "
               "to a claim (it becomes the customer's reply there, with its photos) or discard it. "
               "Auto-replies, bounces and our own mail are ignored without showing here.")
    rows = inbound_service.list_unmatched(engine)
    if not rows:
        st.info("No unmatched mail.")
        return
    tz = ui.store_tz()  # times in the store's zone
    for m in rows:
        label = f"{ui.moment(m.received_at, tz)} · {safe_text.inline(m.from_addr)} · " \
                f"{safe_text.inline(m.subject) or '(no subject)'}"
        with st.expander(label):
            st.caption(f"Not attached: {REASONS.get(m.reason, m.reason)}.")
            safe_text.show(m.body_text or "(no text)")
            ref = st.text_input("Claim reference", key=f"unmatched_ref_{m.id}",
                                placeholder="CLM-XXXXXX")
            attach, discard = st.columns(2)
            if attach.button("Attach to claim", key=f"unmatched_attach_{m.id}", type="primary"):
                _act(lambda: inbound_mail.attach_unmatched(engine, m.id, ref, who.actor),
                     f"Attached to {safe_text.inline(ref.strip().upper())}.")
            if discard.button("Discard", key=f"unmatched_discard_{m.id}"):
                _act(lambda: inbound_service.discard_unmatched(engine, m.id, who.actor),
                     "Discarded.")


_act = ui.settings_act
