"""View My Claim: by the claim link's token, or by order number + email."""
from __future__ import annotations

import streamlit as st

from claims_core import domain
from claims_core.services import customer, lookup
from views import safe_text, tracking_panel, ui

st.set_page_config(layout="centered")
engine = ui.get_engine()
settings = ui.store_settings()
ui.branding(settings)




def find_form() -> None:
    st.title("View my claim", anchor=False)
    st.caption("Use the link from your claim confirmation, or find your claims here.")
    with st.form("find_claims"):
        query = st.text_input("Order number or tracking number", placeholder="e.g. #1001")
        email = st.text_input("Email used at checkout", placeholder="you@example.com")
        go = st.form_submit_button("Find my claims", type="primary", width="stretch")
    if go:
        try:
            st.session_state["found_claims"] = lookup.guarded_find_claims(
                engine, query, email, ui.client_address())
        except domain.ClaimRuleError as e:
            st.session_state.pop("found_claims", None)
            st.error(e.message)
    found = st.session_state.get("found_claims")
    if found is not None:
        if not found:
            st.info("There are no claims on this order yet.")
            st.page_link("views/customer/file_claim.py", label="File a claim", icon=":material/add:")
        for c in found:
            with st.container(border=True):
                cols = st.columns([3, 2], vertical_alignment="center")
                cols[0].markdown(f"**{c.reference}** · {c.issue_label}  \n"
                                 f"{c.status_label} · filed {ui.when(c.created_at)}")
                if cols[1].button("Open", key=f"open_{c.reference}", width="stretch"):
                    st.query_params["token"] = c.access_token
                    st.rerun()


def timeline(view: customer.ClaimView) -> None:
    cols = st.columns(len(view.timeline))
    for col, step in zip(cols, view.timeline):
        mark = "●" if step.current else ("✓" if step.done else "○")
        col.markdown(f"**{mark} {step.label}**" if step.done else f":gray[{mark} {step.label}]")
        col.caption(ui.when(step.at) if step.at else "")


def decision(view: customer.ClaimView) -> None:
    if view.status in domain.GRANTED_STATUSES and view.resolutions:
        with st.container(border=True):
            st.markdown("**Decision: approved**")
            for r in view.resolutions:
                if r.kind == "refund":
                    st.markdown(f"Refund of **{ui.money(r.amount_cents, view.currency)}** to your "
                                "original payment method.")
                elif r.kind == "store_credit":
                    total = domain.credit_with_bonus(r.amount_cents, r.bonus_pct)
                    st.markdown(f"Store credit of **{ui.money(total, view.currency)}**. "
                                "Use this code at checkout:")
                    st.code(r.store_credit_code or "", language=None, wrap_lines=True)
                else:
                    st.markdown("A **replacement** of your items is on its way.")
            if view.partial and view.decision_note:
                safe_text.show(view.decision_note, prefix="Why this amount: ")
    elif view.status == domain.DENIED:
        with st.container(border=True):
            st.markdown("**Decision: not approved**")
            safe_text.show(view.denial_reason or "The store couldn't approve this claim.")
            safe_text.show(settings.support_email, prefix="Questions? Reply below or write to ")
    elif view.status == domain.CLOSED:
        st.info("This claim is closed. Reply below if you still need help.")


def conversation(view: customer.ClaimView) -> None:
    st.subheader("Conversation", anchor=False)
    if not view.messages:
        st.caption("No messages yet.")
    for m in view.messages:
        who = "You" if m.author_kind == "customer" else (m.author_name or settings.name)
        with st.chat_message("user" if m.author_kind == "customer" else "assistant",
                             avatar=":material/person:" if m.author_kind == "customer"
                             else ":material/storefront:"):
            safe_text.show(f"{who} · {m.created_at:%b %d, %H:%M} UTC")
            safe_text.show(m.body)


def reply_form(view: customer.ClaimView, token: str) -> None:
    if domain.allows(domain.Action.CUSTOMER_REPLY, view.status):  # the shop awaits a reply
        st.warning("The store is waiting for more information from you. Reply below"
                   + (" and add photos if they asked for them." if view.can_add_photos else "."))
    round_ = st.session_state.setdefault("reply_round", 0)
    with st.form(f"reply_{round_}"):
        body = st.text_area("Your message", height=100, key="reply_body",
                            help=f"Up to {domain.MAX_COMMENT_CHARS:,} characters.")
        files = []
        if view.can_add_photos:
            files = ui.photo_uploader("Add photos (optional)", key=f"reply_photos_{round_}")
        sent = st.form_submit_button("Send", type="primary", width="stretch")
    if sent:
        try:
            customer.add_customer_message(engine, token, body, files)
        except domain.PhotosRejected as e:
            for err in e.errors:
                st.error(safe_text.inline(err.message))  # names the file: inert
            return
        except domain.ClaimRuleError as e:
            st.error(e.message)
            return
        st.session_state["reply_round"] = round_ + 1
        st.session_state["reply_sent"] = True
        st.rerun()
    if st.session_state.pop("reply_sent", False):
        st.success("Message sent.")


def show_claim(token: str) -> None:
    try:
        view = customer.get_claim_for_customer(engine, token)
    except domain.ClaimRuleError as e:
        st.error(e.message)
        st.query_params.clear()
        find_form()
        return
    st.title(f"Claim {view.reference}", anchor=False)
    ui.badge(view.status_label, view.status not in (domain.DENIED, domain.CLOSED))
    st.caption(f"Order {view.order_name} · filed {ui.when(view.created_at)}")
    timeline(view)
    decision(view)
    tracking_panel.show_tracking(view.tracking, key="claim", tz_name=settings.timezone,
                                 explain=False)  # the claim is filed already
    with st.expander("Claim details", expanded=view.status in domain.OPEN_STATUSES):
        st.markdown(f"**{view.issue_label}** · {view.shipment_label}")
        if view.tracking_number:
            safe_text.show(f"{view.carrier} {view.tracking_number}".strip())
        safe_text.show("\n".join(f"• {it.name} × {it.quantity} "
                                  f"({ui.money(it.amount_cents, view.currency)})" for it in view.items))
        st.markdown(f"You asked for: **{domain.RESOLUTION_ASKED.get(view.desired_resolution, '')}**")
        if view.description:
            st.markdown("**Your comments**")
            safe_text.show(view.description)
        if view.signature_kind == domain.SignatureKind.DRAWN:
            safe_text.show("Signed with a drawn signature.")
        else:
            safe_text.show(f"Signed with the typed name “{view.signature_name}”.")
    if view.evidence:
        st.subheader("Photos", anchor=False)
        cols = st.columns(3)
        for i, ev in enumerate(view.evidence):
            with cols[i % 3]:
                st.image(ev.thumbnail, width=150, alt="Photo of the claim")
                safe_text.show(ev.filename)
                if st.button("Full size", key=f"full_{ev.id}", width="stretch"):
                    st.session_state["full_photo"] = ev.id
        full = st.session_state.get("full_photo")
        if full in {e.id for e in view.evidence}:
            st.image(customer.get_evidence_image(engine, token, full), width="stretch",
                     alt="Full-size photo")
    conversation(view)
    reply_form(view, token)


token = st.query_params.get("token")
if token:
    show_claim(token)
else:
    find_form()
