"""View My Claim: by the claim link's token, or by order number + email."""
from __future__ import annotations

import streamlit as st

from claims_core import portal, rules, services
from pages import ui

st.set_page_config(layout="centered")
engine = ui.get_engine()
settings = ui.store_settings()
ui.branding(settings)

RESOLUTION_WORDS = {"refund": "Refund", "store_credit": "Store credit",
                    "reshipment": "Replacement shipment"}



def find_form() -> None:
    st.title("View my claim", anchor=False)
    st.caption("Use the link from your claim confirmation, or find your claims here.")
    with st.form("find_claims"):
        query = st.text_input("Order number or tracking number", placeholder="e.g. #1001")
        email = st.text_input("Email used at checkout", placeholder="you@example.com")
        go = st.form_submit_button("Find my claims", type="primary", width="stretch")
    if go:
        try:
            st.session_state["found_claims"] = portal.guarded_find_claims(
                engine, query, email, ui.client_address())
        except rules.ClaimRuleError as e:
            st.session_state.pop("found_claims", None)
            st.error(e.message)
    found = st.session_state.get("found_claims")
    if found is not None:
        if not found:
            st.info("There are no claims on this order yet.")
            st.page_link("pages/file_claim.py", label="File a claim", icon=":material/add:")
        for c in found:
            with st.container(border=True):
                cols = st.columns([3, 2], vertical_alignment="center")
                cols[0].markdown(f"**{c.reference}** · {c.issue_label}  \n"
                                 f"{c.status_label} · filed {ui.when(c.created_at)}")
                if cols[1].button("Open", key=f"open_{c.reference}", width="stretch"):
                    st.query_params["token"] = c.access_token
                    st.rerun()


def timeline(view: services.ClaimView) -> None:
    cols = st.columns(len(view.timeline))
    for col, step in zip(cols, view.timeline):
        mark = "●" if step.current else ("✓" if step.done else "○")
        col.markdown(f"**{mark} {step.label}**" if step.done else f":gray[{mark} {step.label}]")
        col.caption(ui.when(step.at) if step.at else "")


def decision(view: services.ClaimView) -> None:
    if view.status in ("approved", "resolved") and view.resolutions:
        with st.container(border=True):
            st.markdown("**Decision: approved**")
            for r in view.resolutions:
                if r.kind == "refund":
                    st.markdown(f"Refund of **{ui.money(r.amount_cents, view.currency)}** to your "
                                "original payment method.")
                elif r.kind == "store_credit":
                    total = r.amount_cents + (r.amount_cents * r.bonus_pct + 50) // 100
                    st.markdown(f"Store credit of **{ui.money(total, view.currency)}**. "
                                "Use this code at checkout:")
                    st.code(r.store_credit_code or "", language=None, wrap_lines=True)
                else:
                    st.markdown("A **replacement** of your items is on its way.")
    elif view.status == "denied":
        with st.container(border=True):
            st.markdown("**Decision: not approved**")
            ui.plain(view.denial_reason or "The store couldn't approve this claim.")
            st.caption(f"Questions? Reply below or write to {settings.support_email}.")
    elif view.status == "closed":
        st.info("This claim is closed. Reply below if you still need help.")


def conversation(view: services.ClaimView) -> None:
    st.subheader("Conversation", anchor=False)
    if not view.messages:
        st.caption("No messages yet.")
    for m in view.messages:
        who = "You" if m.author_kind == "customer" else (m.author_name or settings.name)
        with st.chat_message("user" if m.author_kind == "customer" else "assistant",
                             avatar=":material/person:" if m.author_kind == "customer"
                             else ":material/storefront:"):
            st.caption(f"{who} · {m.created_at:%b %d, %H:%M} UTC")
            ui.plain(m.body)


def reply_form(view: services.ClaimView, token: str) -> None:
    if view.status == "needs_info":
        st.warning("The store is waiting for more information from you. Reply below"
                   + (" and add photos if they asked for them." if view.can_add_photos else "."))
    round_ = st.session_state.setdefault("reply_round", 0)
    with st.form(f"reply_{round_}"):
        body = st.text_area("Your message", height=100, key="reply_body",
                            help=f"Up to {rules.MAX_COMMENT_CHARS:,} characters.")
        files = []
        if view.can_add_photos:
            files = ui.photo_uploader("Add photos (optional)", key=f"reply_photos_{round_}")
        sent = st.form_submit_button("Send", type="primary", width="stretch")
    if sent:
        try:
            services.add_customer_message(engine, token, body,
                                          files)
        except services.PhotosRejected as e:
            for err in e.errors:
                st.error(err.message)
            return
        except rules.ClaimRuleError as e:
            st.error(e.message)
            return
        st.session_state["reply_round"] = round_ + 1
        st.session_state["reply_sent"] = True
        st.rerun()
    if st.session_state.pop("reply_sent", False):
        st.success("Message sent.")


def show_claim(token: str) -> None:
    try:
        view = services.get_claim_for_customer(engine, token)
    except rules.ClaimRuleError as e:
        st.error(e.message)
        st.query_params.clear()
        find_form()
        return
    st.title(f"Claim {view.reference}", anchor=False)
    ui.badge(view.status_label, view.status not in ("denied", "closed"))
    st.caption(f"Order {view.order_name} · filed {ui.when(view.created_at)}")
    timeline(view)
    decision(view)
    with st.expander("Claim details", expanded=view.status in ("submitted", "in_review", "needs_info")):
        st.markdown(f"**{view.issue_label}** · {view.shipment_label}"
                    + (f" · {ui.escape_md(view.carrier)} `{view.tracking_number}`"
                       if view.tracking_number else ""))
        for it in view.items:
            st.markdown(f"- {ui.escape_md(it.name)} × {it.quantity} "
                        f"({ui.money(it.amount_cents, view.currency)})")
        st.markdown(f"You asked for: **{RESOLUTION_WORDS.get(view.desired_resolution, '')}**")
        if view.description:
            st.markdown("**Your comments**")
            ui.plain(view.description)
        signed = "drawn signature" if view.signature_kind == "drawn" else \
            f"typed name “{view.signature_name}”"
        st.caption(f"Signed with a {signed}.")
    if view.evidence:
        st.subheader("Photos", anchor=False)
        cols = st.columns(3)
        for i, ev in enumerate(view.evidence):
            with cols[i % 3]:
                st.image(ev.thumbnail, caption=ev.filename, width=150, alt=f"Photo {ev.filename}")
                if st.button("Full size", key=f"full_{ev.id}", width="stretch"):
                    st.session_state["full_photo"] = ev.id
        full = st.session_state.get("full_photo")
        if full in {e.id for e in view.evidence}:
            st.image(services.get_evidence_image(engine, token, full), width="stretch",
                     alt="Full-size photo")
    conversation(view)
    reply_form(view, token)


token = st.query_params.get("token")
if token:
    show_claim(token)
else:
    find_form()
