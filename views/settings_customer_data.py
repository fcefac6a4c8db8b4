"""Settings → Customer data (owner): export everything kept about one customer as a ZIP, or erase
it. The rules are in ``claims_core/services/customer_data.py``; where personal data lives, in
``claims_core/infra/personal_data.py``."""
from __future__ import annotations

import streamlit as st

from claims_core import domain
from claims_core.services import customer_data
from claims_core.services import settings as store_settings
from views import safe_text, ui


def show(engine, who) -> None:
    st.caption("Everything the portal keeps about one customer: their orders, claims, photos, "
               "signatures, messages and the emails between you. Find them by the email they "
               "used (and their Shopify customer id, if you have it).")
    email = st.text_input("Customer email", key="cd_email")
    cid = st.text_input("Shopify customer id (optional)", key="cd_cid")
    notes = st.checkbox("Include internal staff notes about the customer", value=True,
                        key="cd_notes")
    ex, er = st.columns(2)
    if ex.button("Prepare export", key="cd_export"):
        try:
            st.session_state["cd_zip"] = customer_data.export_customer(
                engine, email, shopify_customer_id=cid.strip() or None, include_staff_notes=notes)
        except domain.ClaimRuleError as e:
            st.error(safe_text.inline(e.message))
    if st.session_state.get("cd_zip"):
        st.download_button("Download the customer's data (ZIP)", st.session_state["cd_zip"],
                           file_name="customer-data.zip", mime="application/zip",
                           key="cd_download")
    with er.popover("Erase…"):
        st.warning("Erasing replaces the customer's name, email, address, messages, photos and "
                   "signatures with “[erased]” everywhere. It can't be undone. Claims keep their "
                   "reference, dates, issue, amounts, decision, carrier and country.")
        ref = st.text_input("Request reference (optional)", key="cd_ref")
        sure = st.checkbox("I understand: erase this customer's data", key="cd_sure")
        if st.button("Erase", type="primary", key="cd_erase", disabled=not sure):
            try:
                r = customer_data.erase_customer(engine, email, actor=who.actor, request_ref=ref,
                                                 shopify_customer_id=cid.strip() or None)
            except domain.ClaimRuleError as e:
                st.error(safe_text.inline(e.message))
            else:
                st.session_state.pop("cd_zip", None)
                st.session_state["settings_flash"] = (
                    f"Erased: {r.orders} orders, {r.claims} claims, {r.rows} rows changed.")
                st.rerun()
    keep = st.toggle("Keep photo fingerprints after an erasure (fraud checks)",
                     value=bool(ui.store_settings().keep_photo_hashes), key="cd_keep_hashes",
                     help="A perceptual hash of each erased photo is kept to recognise the same "
                          "picture in a later claim. Off: nothing of the photos is kept.")
    if keep != bool(ui.store_settings().keep_photo_hashes):
        try:
            store_settings.update_settings(engine, who.actor, {"keep_photo_hashes": keep})
        except domain.ClaimRuleError as e:
            st.error(safe_text.inline(e.message))
        else:
            st.session_state["settings_flash"] = "Saved."
            st.rerun()
    done = customer_data.erasures(engine, limit=20)
    if done:
        st.subheader("Erasures", anchor=False)
        for row in done:
            st.text(f"{ui.when(row['at'])} · {row['actor']} · {row['request_ref'] or '—'} · "
                    f"{row['orders']} orders, {row['claims']} claims, {row['rows']} rows")
