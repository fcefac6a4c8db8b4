"""Staff file a claim on a customer's behalf (phone or email request), through the same domain."""
from __future__ import annotations

import uuid
from datetime import timedelta

import streamlit as st

from claims_core import domain
from claims_core.infra.db import utcnow
from claims_core.services import claim_review, customer, drafts, order_views
from views import safe_text, ui

st.set_page_config(layout="centered")
who = ui.require("work_claims")
engine = ui.get_engine()
settings = ui.store_settings()

st.title("New claim for a customer", anchor=False)
st.caption("For a customer who asked by phone or email. The same rules apply as on the portal.")

with st.form("staff_find"):
    query = st.text_input("Order number or tracking number", key="sn_query")
    if st.form_submit_button("Find order", type="primary"):
        try:
            st.session_state["sn_order"] = claim_review.find_order_for_staff(engine, query).id
            st.session_state["sn_key"] = uuid.uuid4().hex
            st.session_state.pop("sn_photos", None)
        except domain.ClaimRuleError as e:
            st.error(safe_text.inline(e.message))
            st.session_state.pop("sn_order", None)

order_id = st.session_state.get("sn_order")
if order_id is None:
    st.stop()
email = claim_review.order_email(engine, order_id)
view = order_views.get_order_for_customer(engine, order_id, email)
st.subheader(f"Order {safe_text.inline(view.name)} · {safe_text.inline(view.customer_name or email)}", anchor=False)
ui.badge("Protected" if view.protected else "Not protected", view.protected)

if not view.claimable:
    st.warning(safe_text.inline(view.reason))
    if view.window_closed:
        with st.form("exception"):
            st.markdown("**Give this order more time**")
            until = st.date_input("New last day to file", value=domain.local_date(utcnow(), settings.timezone)
                                  + timedelta(days=14),
                                  key="sn_until")
            why = st.text_input("Reason (kept in the log)", key="sn_why")
            if st.form_submit_button("Grant exception"):
                try:
                    claim_review.grant_exception(engine, order_id, who.actor, until, why)
                except domain.ClaimRuleError as e:
                    st.error(safe_text.inline(e.message))
                else:
                    st.rerun()
    st.stop()

ships = view.claimable_shipments
sid = st.selectbox("Shipment", [s.id for s in ships], key="sn_ship",
                   format_func=lambda i: str(next(s for s in ships if s.id == i).label) + " · " +
                   ", ".join(f"{it.name} × {it.carried}" for it in next(s for s in ships if s.id == i).items))
ship = next(s for s in ships if s.id == sid)
issue = st.selectbox("What went wrong", list(ship.issue_types), key="sn_issue",
                     format_func=lambda t: domain.ISSUE_TYPES[t].label)
items: dict[int, int] = {}
if domain.ISSUE_TYPES[issue].category == domain.ITEM:
    for it in ship.remaining_items:
        items[it.shipment_item_id] = st.number_input(f"{safe_text.inline(it.name)} (up to {it.remaining})", 0,
                                                     it.remaining, 0, key=f"sn_qty_{it.shipment_item_id}")
files = ui.photo_uploader("Photos the customer sent", key="sn_upload", customer=False)
if files:
    st.session_state["sn_photos"], errs = drafts.add_photos(
        st.session_state.get("sn_photos", []), files, max_photos=settings.max_photos,
        max_bytes=settings.max_photo_bytes)
    for e in errs:
        safe_text.show(e)
photos = [drafts.photo_from_json(p) for p in st.session_state.get("sn_photos", [])]
if photos:
    safe_text.show(", ".join(p.filename for p in photos))
description = st.text_area("What the customer told you", key="sn_desc", height=90)
options = order_views.resolution_choices(engine, ship.id, items, issue)
avail = [o.kind for o in options if o.available]
resolution = st.selectbox("Resolution the customer asked for", avail, key="sn_res",
                          format_func=domain.RESOLUTION_LABELS.get)
name = st.text_input("Customer's full name (signs on their behalf)", value=view.customer_name,
                     key="sn_name")
confirmed = st.checkbox("The customer confirmed the information is accurate", key="sn_ok")
if st.button("File claim", type="primary", key="sn_submit"):
    req = customer.ClaimRequest(
        idempotency_key=st.session_state["sn_key"], order_id=order_id, email=email,
        shipment_id=ship.id, issue_type=issue, items=items, description=description,
        desired_resolution=resolution or "", signature_kind="typed", signature_name=name,
        accurate_confirmed=confirmed, filed_by=who.actor,
        # the customer's emails in the store's language (staff pages speak English)
        language=getattr(settings, "default_language", None) or "en")
    try:
        receipt = customer.file_claim(engine, req, processed=photos)
    except domain.ClaimRuleError as e:
        st.error(safe_text.inline(e.message))
    else:
        for k in ("sn_order", "sn_photos"):
            st.session_state.pop(k, None)
        st.switch_page("views/staff/claim.py", query_params={"id": receipt.claim_id})
