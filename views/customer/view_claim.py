"""View My Claim: by the claim link's token, or by order number + email."""
from __future__ import annotations

import streamlit as st

from claims_core import domain
from claims_core.domain.messages import Amount
from claims_core.services import claim_views, customer, lookup
from views import safe_text, tracking_panel, ui

st.set_page_config(layout="centered")
engine = ui.get_engine()
settings = ui.store_settings()
ui.branding(settings)
ui.language_picker()
t = ui.t()


def _day(d) -> str:
    """A date as the customer's locale writes it ("Nov 29, 2026" in English)."""
    return t.date(d, fmt="medium") if d else "—"


def _photo_error(err) -> str:
    """One rejected file, in the customer's language; it names the file, so it's made inert."""
    msg = getattr(err, "msg", None)  # a catalog message: "{filename}: {reason}"
    return safe_text.inline(t(msg) if msg is not None else err.message)


def find_form() -> None:
    st.title(t("View my claim"), anchor=False)
    st.caption(t("Use the link from your claim confirmation, or find your claims here."))
    with st.form("find_claims"):
        query = st.text_input(t("Order number or tracking number"), placeholder=t("e.g. #1001"))
        email = st.text_input(t("Email used at checkout"), placeholder=t("you@example.com"))
        go = st.form_submit_button(t("Find my claims"), type="primary", width="stretch")
    if go:
        try:
            st.session_state["found_claims"] = lookup.guarded_find_claims(
                engine, query, email, ui.client_address())
        except domain.ClaimRuleError as e:
            st.session_state.pop("found_claims", None)
            st.error(t(e.msg))
    found = st.session_state.get("found_claims")
    if found is not None:
        if not found:
            st.info(t("There are no claims on this order yet."))
            st.page_link("views/customer/file_claim.py", label=t("File a claim"),
                         icon=":material/add:", query_params={"lang": ui.lang()})
        for c in found:
            with st.container(border=True):
                cols = st.columns([3, 2], vertical_alignment="center")
                issue = t(c.issue_label)
                filed = t("{status} · filed {date}", status=t(c.status_label),
                          date=_day(c.created_at))
                cols[0].markdown(f"**{c.reference}** · {issue}  \n{filed}")
                if cols[1].button(t("Open"), key=f"open_{c.reference}", width="stretch"):
                    st.query_params["token"] = c.access_token
                    st.rerun()


def timeline(view: claim_views.ClaimView) -> None:
    cols = st.columns(len(view.timeline))
    for col, step in zip(cols, view.timeline):
        mark = "●" if step.current else ("✓" if step.done else "○")
        label = t(step.label)
        col.markdown(f"**{mark} {label}**" if step.done else f":gray[{mark} {label}]")
        col.caption(_day(step.at) if step.at else "")


def decision(view: claim_views.ClaimView) -> None:
    if view.status in domain.GRANTED_STATUSES and view.resolutions:
        with st.container(border=True):
            heading = t("Decision: approved")
            st.markdown(f"**{heading}**")
            for r in view.resolutions:
                if r.kind == domain.ResolutionKind.REFUND:
                    st.markdown(t("Refund of **{amount}** to your original payment method.",
                                  amount=Amount(r.amount_cents, view.currency)))
                elif r.kind == domain.ResolutionKind.STORE_CREDIT:
                    total = domain.credit_with_bonus(r.amount_cents, r.bonus_pct)
                    st.markdown(t("Store credit of **{amount}**. Use this code at checkout:",
                                  amount=Amount(total, view.currency)))
                    st.code(r.store_credit_code or "", language=None, wrap_lines=True)
                else:
                    st.markdown(t("A **replacement** of your items is on its way."))
            if view.partial and view.decision_note:
                safe_text.show(view.decision_note, prefix=t("Why this amount:") + " ")
    elif view.status == domain.DENIED:
        with st.container(border=True):
            heading = t("Decision: not approved")
            st.markdown(f"**{heading}**")
            safe_text.show(t(view.denial_reason) if view.denial_reason
                           else t("The store couldn't approve this claim."))
            safe_text.show(settings.support_email,
                           prefix=t("Questions? Reply below or write to") + " ")
    elif view.status == domain.CLOSED:
        st.info(t("This claim is closed. Reply below if you still need help."))


def conversation(view: claim_views.ClaimView) -> None:
    st.subheader(t("Conversation"), anchor=False)
    if not view.messages:
        st.caption(t("No messages yet."))
    for m in view.messages:
        who = t("You") if m.author_kind == "customer" else (m.author_name or settings.name)
        with st.chat_message("user" if m.author_kind == "customer" else "assistant",
                             avatar=":material/person:" if m.author_kind == "customer"
                             else ":material/storefront:"):
            safe_text.show(t("{author} · {time}", author=who,  # the store's local time
                             time=tracking_panel.moment(t, m.created_at, t.tz, day="MMMd")))
            safe_text.show(m.body)


def reply_form(view: claim_views.ClaimView, token: str) -> None:
    if domain.allows(domain.Action.CUSTOMER_REPLY, view.status):  # the shop awaits a reply
        if view.can_add_photos:
            st.warning(t("The store is waiting for more information from you. Reply below and "
                         "add photos if they asked for them."))
        else:
            st.warning(t("The store is waiting for more information from you. Reply below."))
    round_ = st.session_state.setdefault("reply_round", 0)
    with st.form(f"reply_{round_}"):
        body = st.text_area(t("Your message"), height=100, key="reply_body",
                            help=t("Up to {count} characters.", count=domain.MAX_COMMENT_CHARS))
        files = []
        if view.can_add_photos:
            files = ui.photo_uploader(t("Add photos (optional)"), key=f"reply_photos_{round_}")
        sent = st.form_submit_button(t("Send"), type="primary", width="stretch")
    if sent:
        try:
            customer.add_customer_message(engine, token, body, files)
        except domain.PhotosRejected as e:
            for err in e.errors:
                st.error(_photo_error(err))  # names the file: inert
            return
        except domain.ClaimRuleError as e:
            st.error(t(e.msg))
            return
        st.session_state["reply_round"] = round_ + 1
        st.session_state["reply_sent"] = True
        st.rerun()
    if st.session_state.pop("reply_sent", False):
        st.success(t("Message sent."))


def show_claim(token: str) -> None:
    try:
        view = claim_views.get_claim_for_customer(engine, token)
    except domain.ClaimRuleError as e:
        st.error(t(e.msg))
        lang = st.query_params.get("lang")
        st.query_params.clear()
        if lang:  # the customer's language stays
            st.query_params["lang"] = lang
        find_form()
        return
    st.title(t("Claim {reference}", reference=view.reference), anchor=False)
    ui.badge(t(view.status_label), view.status not in (domain.DENIED, domain.CLOSED))
    st.caption(t("Order {order} · filed {date}", order=safe_text.inline(view.order_name),
                 date=_day(view.created_at)))
    timeline(view)
    decision(view)
    tracking_panel.show_tracking(view.tracking, key="claim", tz_name=settings.timezone,
                                 explain=False, t=t)  # the claim is filed already
    with st.expander(t("Claim details"), expanded=view.status in domain.OPEN_STATUSES):
        issue, shipment = t(view.issue_label), t(view.shipment_label)
        st.markdown(f"**{issue}** · {shipment}")
        if view.tracking_number:
            safe_text.show(f"{view.carrier} {view.tracking_number}".strip())
        safe_text.show("\n".join(
            "• " + t("{name} × {quantity} ({amount})", name=it.name, quantity=it.quantity,
                     amount=Amount(it.amount_cents, view.currency))
            for it in view.items))
        asked = domain.RESOLUTION_ASKED.get(view.desired_resolution, "")
        st.markdown(t("You asked for: **{resolution}**", resolution=t(asked) if asked else ""))
        if view.description:
            heading = t("Your comments")
            st.markdown(f"**{heading}**")
            safe_text.show(view.description)
        if view.signature_kind == domain.SignatureKind.DRAWN:
            safe_text.show(t("Signed with a drawn signature."))
        else:
            safe_text.show(t("Signed with the typed name “{name}”.", name=view.signature_name))
    if view.evidence:
        st.subheader(t("Photos"), anchor=False)
        cols = st.columns(3)
        for i, ev in enumerate(view.evidence):
            with cols[i % 3]:
                if ev.thumbnail:
                    st.image(ev.thumbnail, width=150, alt=t("Photo of the claim"))
                else:  # emptied under the store's retention policy
                    st.caption(t("Photo removed under the retention policy."))
                safe_text.show(ev.filename)
                if ev.thumbnail and st.button(t("Full size"), key=f"full_{ev.id}", width="stretch"):
                    st.session_state["full_photo"] = ev.id
        full = st.session_state.get("full_photo")
        if full in {e.id for e in view.evidence}:
            st.image(claim_views.get_evidence_image(engine, token, full), width="stretch",
                     alt=t("Full-size photo"))
    note = ui.store_text(settings, "support_note", ui.lang())
    if note:  # the store's own words (opening hours…), in the customer's language if written
        safe_text.show(note)
    conversation(view)
    reply_form(view, token)


token = st.query_params.get("token")
if token:
    show_claim(token)
else:
    find_form()
ui.privacy_link()
