"""One claim, for staff: the facts, the photos, the risk, the conversation, and the decision."""
from __future__ import annotations

import streamlit as st

from claims_core import domain
from claims_core.domain import Action
from claims_core.infra.db import utcnow
from claims_core.adapters import evidence_pack, shopify_write_back
from claims_core.services import claim_review, decisions
from claims_core.services.shopify_write_back import WRITE_STATUS
from claims_core.services.approvals import ResolutionInput
from claims_core.infra import i18n

STAFF_WORDS = i18n.translator("en")  # staff pages are in English, whatever the browser asks
from views import recovery_panel, safe_text, tracking_panel, ui

st.set_page_config(layout="wide")
who = ui.require("work_claims")
engine = ui.get_engine()
settings = ui.store_settings()

DENIAL_LABELS = domain.DENIAL_LABELS

try:
    claim_id = int(st.query_params.get("id", ""))
except ValueError:
    claim_id = None
if claim_id is None:
    st.info("Open a claim from the queue.")
    st.page_link("views/staff/queue.py", label="Claims queue", icon=":material/inbox:")
    st.stop()

try:
    view = claim_review.claim_for_staff(engine, claim_id)
except domain.ClaimRuleError as e:
    st.error(e.message)
    st.stop()
c = view.claim
version_key = f"claim_version_{claim_id}"
seen_version = st.session_state.get(version_key, c.version)  # what this agent last looked at
# Actions in this run carry the version the agent was looking at: if it changed, they fail.
version = seen_version if seen_version is not None else c.version


def act(fn, success: str) -> None:
    """Run one staff action; on success reload, on a stale view say so and show the new state."""
    try:
        fn()
    except domain.StaleClaim as e:
        st.session_state[version_key] = None
        st.session_state["flash"] = ("error", e.message)
        st.rerun()
    except domain.ClaimRuleError as e:
        st.error(safe_text.inline(e.message))
        return
    st.session_state.pop(version_key, None)
    st.session_state["flash"] = ("success", success)
    st.rerun()


# --- header -------------------------------------------------------------------------------------
st.page_link("views/staff/queue.py", label="Back to the queue", icon=":material/arrow_back:")
st.title(f"Claim {c.reference}", anchor=False)
b1, b2, _rest = st.columns([1, 1, 5])
with b1:
    ui.badge(c.status_label, c.status not in (domain.DENIED, domain.CLOSED))
with b2:
    ui.badge(f"Risk: {view.risk_level} ({view.risk_score})",
             {"low": True, "medium": "warn", "high": "bad"}[view.risk_level])
flash = st.session_state.pop("flash", None)
if flash:
    (st.success if flash[0] == "success" else st.error)(flash[1])
elif seen_version is not None and seen_version != c.version:
    st.warning(f"{domain.StaleClaim().message} It is now: {c.status_label}.")
if view.held_at:
    st.warning(f"**On hold** since {ui.when(view.held_at, settings.timezone)}: "
               f"{safe_text.inline(view.hold_reason)} "
               "Approving waits until the hold is released.", icon=":material/pause_circle:")
if view.paying_twice:
    st.error(f"**Chargeback: the shop may be paying twice.** This claim is approved, and "
             f"{safe_text.inline(view.dispute_summary)} If the bank gives the customer the money back, the claim's "
             "payout is paid twice.", icon=":material/report:")
elif view.dispute_held_at:
    st.warning(f"**On hold for a chargeback** since "
               f"{ui.when(view.dispute_held_at, settings.timezone)}: "
               f"{safe_text.inline(view.dispute_hold_reason)} Approving waits until the dispute "
               "closes or the owner releases the hold.", icon=":material/gavel:")
elif view.dispute_open:
    st.warning(f"**Chargeback:** {safe_text.inline(view.dispute_summary)}", icon=":material/gavel:")
now = utcnow()
st.caption(f"Filed {ui.when(c.created_at, settings.timezone)} "
           f"({ui.age_text(now - c.created_at)} ago) by "
           f"{'the customer' if view.filed_by == 'customer' else view.filed_by} · "
           f"assigned to {view.assignee or 'nobody'} · "
           f"the customer reads **{i18n.language_name(view.language)}**")
st.download_button("Evidence pack (PDF)", data=lambda: evidence_pack.build(engine, claim_id),
                   file_name=evidence_pack.filename(c.reference), mime=evidence_pack.MIME_TYPE,
                   icon=":material/picture_as_pdf:", on_click="ignore", key="evidence_pack",
                   help="Order, tracking and proof of delivery, the customer's statement and "
                        "signature, the photos with their hashes, the conversation, the decision "
                        "and the audit trail: for a carrier claim or a chargeback.")
if view.disputed:
    with st.container(border=True, key="dispute_evidence"):
        st.markdown("**Evidence for the dispute**")
        due = (f" Evidence is due by {ui.when(view.dispute_evidence_due_at, settings.timezone)}."
               if view.dispute_evidence_due_at else "")
        amount = (f" Disputed: {ui.money(view.dispute_amount_minor, c.currency)}."
                  if view.dispute_amount_minor is not None else "")
        st.caption(safe_text.inline(view.dispute_summary) + amount + due + " Upload the evidence pack to the "
                   "dispute in Shopify (Orders → the order → Respond to the dispute).")
        st.download_button("Evidence for the dispute (PDF)",
                           data=lambda: evidence_pack.build(engine, claim_id),
                           file_name=evidence_pack.filename(c.reference),
                           mime=evidence_pack.MIME_TYPE, icon=":material/gavel:",
                           on_click="ignore", key="dispute_evidence_pack")

left, right = st.columns([3, 2], gap="large")

# --- facts --------------------------------------------------------------------------------------
with left:
    with st.container(border=True):
        st.markdown(f"**{c.issue_label}** ({c.category} issue) · asks for "
                    f"**{domain.RESOLUTION_LABELS[c.desired_resolution]}** · "
                    f"claimed {ui.money(c.claimed_cents, c.currency)}")
        f1, f2 = st.columns(2)
        with f1:
            safe_text.show(f"Order {view.order_number} · {ui.money(view.order_total_cents, c.currency)}")
            safe_text.show(f"{view.customer_name}\n{view.email}\n{view.shipping_address}")
            safe_text.show(f"Placed {ui.when(view.order_created_at, settings.timezone)} · "
                           f"{view.shipping_method or '—'} · "
                           + ("protected" if view.protected else "NOT protected"))
            if view.refunded_cents:
                st.caption(f"Refunded in Shopify: {ui.money(view.refunded_cents, c.currency)}")
        with f2:
            st.markdown(f"**{c.shipment_label}**")
            safe_text.show(c.carrier or "carrier unknown")
            if c.tracking_number:
                st.code(c.tracking_number, language=None, wrap_lines=True)
            tz = settings.timezone  # the shipped day and the window's last day: both local days
            st.caption(f"Status: {view.shipment_status} · shipped {ui.when(view.shipped_at, tz)} · "
                       f"delivered {ui.when(view.delivered_at, tz)} · last scan "
                       f"{ui.when(view.last_scan_at, tz)} · window until {ui.day(view.deadline, tz)}")
        st.dataframe(
            [{"Item": i.name, "SKU": i.sku, "Qty": i.quantity,
              "Paid each": float(domain.decimal_amount(i.unit_cents, c.currency)),
              "Claimed": float(domain.decimal_amount(i.amount_cents, c.currency))} for i in view.items],
            hide_index=True,
            column_config={"Paid each": ui.money_column(c.currency),
                           "Claimed": ui.money_column(c.currency)},
        )
        statement, evidence = st.columns(2) if view.proof_matters else (st.container(), None)
        with statement:
            st.markdown("**Customer's statement**")
            safe_text.show(c.description or "(none)")
            st.markdown("**Signature**")
            if view.signature_png:
                st.image(view.signature_png, width=260, alt="The customer's drawn signature")
            else:
                safe_text.show(c.signature_name, prefix="Typed: ")
                if c.signature_cannot_draw:
                    st.caption("Typed because the customer can't draw a signature (they said so).")
        if evidence is not None:
            with evidence:
                tracking_panel.show_proof(c.tracking.proof if c.tracking else domain.ProofOfDelivery(),
                                          view.delivered_at, settings.timezone, t=STAFF_WORDS)
    tracking_panel.show_tracking(c.tracking, key="claim", tz_name=settings.timezone,
                                 heading="Carrier tracking", explain=False, t=STAFF_WORDS)

    # --- photos ---------------------------------------------------------------------------------
    st.subheader(f"Photos ({len(view.photos)})", anchor=False)
    if not view.photos:
        st.caption("No photos.")
    cols = st.columns(3)
    for i, ph in enumerate(view.photos):
        with cols[i % 3].container(border=True):
            if ph.thumbnail:
                st.image(ph.thumbnail, width="stretch", alt="Photo from the customer")
            else:  # emptied by the retention job (Settings → Privacy)
                st.caption("Photo removed under the retention policy.")
            safe_text.show(f"{ph.filename} · {ph.width}×{ph.height}")
            if ph.reused_in:
                st.warning("Also used in " + ", ".join(ph.reused_in))
            safe_text.show(f"Review: {ph.review_status}" + (f" — {ph.review_note}" if ph.review_note else ""))
            if ph.thumbnail and st.button("Full size", key=f"full_{ph.id}", width="stretch"):
                st.session_state["full_photo"] = ph.id
            with st.form(f"review_{ph.id}", border=False):
                verdict = st.radio("Verdict", ["accepted", "rejected"], horizontal=True,
                                   key=f"verdict_{ph.id}", label_visibility="collapsed",
                                   index=["accepted", "rejected"].index(ph.review_status)
                                   if ph.review_status in ("accepted", "rejected") else None,
                                   format_func=str.capitalize)
                note = st.text_input("Note", key=f"note_{ph.id}", value=ph.review_note,
                                     placeholder="Note (required to reject)")
                if st.form_submit_button("Save review", width="stretch"):
                    act(lambda: claim_review.review_photo(engine, claim_id, ph.id, who.actor,
                                                   verdict or "pending", note),
                        f"Photo marked {verdict}.")
    full = st.session_state.get("full_photo")
    if full in {p.id for p in view.photos}:
        st.image(claim_review.photo_data(engine, claim_id, full), width="stretch", alt="Full-size photo",
                 caption="Full size")
        if st.button("Close full size", key="close_full"):
            st.session_state.pop("full_photo")
            st.rerun()

    # --- conversation ---------------------------------------------------------------------------
    st.subheader("Conversation with the customer", anchor=False)
    if not c.messages:
        st.caption("No messages yet.")
    for m in c.messages:
        with st.chat_message("user" if m.author_kind == "customer" else "assistant"):
            safe_text.show(f"{'Customer' if m.author_kind == 'customer' else m.author_name} · "
                           f"{ui.moment(m.created_at, settings.timezone)}")
            safe_text.show(m.body)
    with st.form("reply", clear_on_submit=True):
        body = st.text_area(f"Message to the customer (write in {i18n.language_name(view.language)}: "
                            "their claim page and emails are in it)", key="staff_reply", height=90)
        if st.form_submit_button("Send to customer"):
            act(lambda: decisions.staff_message(engine, claim_id, who.actor,
                                                who.display_name or who.username, body),
                "Message sent.")

# --- actions ------------------------------------------------------------------------------------
with right:
    st.subheader("Decide", anchor=False)
    if view.dispute_held_at and domain.can(who.role, "release_dispute_hold"):
        with st.form("release_dispute_hold"):
            st.markdown("**Release the chargeback hold**")
            st.caption("The order is disputed with the customer's bank: approving now may mean "
                       "paying twice. Release the hold only if you have decided to pay anyway.")
            dispute_note = st.text_input("Note (optional)", key="dispute_hold_note")
            if st.form_submit_button("Release chargeback hold", width="stretch"):
                act(lambda: decisions.release_dispute_hold(
                    engine, claim_id, who.actor, who.role, dispute_note,
                    expected_version=version), "Chargeback hold released.")
    elif view.dispute_held_at:
        st.caption("On hold for a chargeback: only the owner can release it.")
    if view.held_at:
        with st.form("release_hold"):
            st.markdown("**Release the hold**")
            st.caption("Approving waits until you have checked the tracking and released the "
                       "hold. Denying or asking the customer is possible now.")
            hold_note = st.text_input("Note (optional)", key="hold_note")
            if st.form_submit_button("Release hold", width="stretch"):
                act(lambda: decisions.release_hold(engine, claim_id, who.actor, hold_note,
                                                   expected_version=version), "Hold released.")
    if Action.APPROVE in view.actions:
        with st.form("approve"):
            st.markdown("**Approve**")
            use_refund = st.checkbox("Refund", value=c.desired_resolution == domain.ResolutionKind.REFUND,
                                     key="ap_refund")
            refund = ui.amount_input(st, "Refund amount", c.currency, c.claimed_cents,
                                     c.claimed_cents, key="ap_refund_amt")
            use_credit = st.checkbox("Store credit", value=c.desired_resolution == domain.ResolutionKind.STORE_CREDIT,
                                     key="ap_credit")
            credit = ui.amount_input(st, "Store credit amount", c.currency, c.claimed_cents,
                                     c.claimed_cents, key="ap_credit_amt")
            bonus = st.number_input("Store-credit bonus (%)", min_value=0,
                                    max_value=view.bonus_cap_pct,
                                    value=view.bonus_default_pct, key="ap_bonus",
                                    help="Up to the store's bonus (Settings).")
            use_reship = st.checkbox("Reship the items (takes them from stock)",
                                     value=c.desired_resolution == domain.ResolutionKind.RESHIPMENT,
                                     key="ap_reship")
            st.caption(f"Paid for the claimed items: {ui.money(c.claimed_cents, c.currency)}. For a split, tick "
                       "refund and store credit and make the amounts add up to at most that.")
            note = st.text_input("Note to the customer (required for a partial amount)",
                                 key="ap_note")
            if st.form_submit_button("Approve", type="primary", width="stretch"):
                def approve():
                    chosen = []
                    if use_refund:
                        chosen.append(ResolutionInput(domain.ResolutionKind.REFUND, refund))
                    if use_credit:
                        chosen.append(ResolutionInput(
                            domain.ResolutionKind.STORE_CREDIT, credit, int(bonus)))
                    if use_reship:
                        chosen.append(ResolutionInput(domain.ResolutionKind.RESHIPMENT))
                    decisions.approve(engine, claim_id, who.actor, chosen,
                                      expected_version=version, note=note)
                act(approve, "Claim approved.")
    if Action.DENY in view.actions:
        with st.form("deny"):
            st.markdown("**Deny**")
            reason = st.selectbox("Reason", list(DENIAL_LABELS), format_func=DENIAL_LABELS.get,
                                  key="deny_reason")
            why = st.text_area("Explanation for the customer", key="deny_note", height=70)
            if st.form_submit_button("Deny", width="stretch"):
                act(lambda: decisions.deny(engine, claim_id, who.actor, reason, why,
                                           expected_version=version), "Claim denied.")
    if Action.REQUEST_INFO in view.actions:
        with st.form("ask"):
            st.markdown("**Ask the customer for more information**")
            ask = st.text_area("What do you need?", key="ask_body", height=70,
                               placeholder="e.g. a photo of the shipping label")
            if st.form_submit_button("Request information", width="stretch"):
                act(lambda: decisions.request_info(engine, claim_id, who.actor,
                                                   who.display_name or who.username, ask,
                                                   expected_version=version),
                    "Asked the customer; the claim is waiting on them.")
    b1, b2 = st.columns(2)
    if Action.START_REVIEW in view.actions and b1.button("Start review", width="stretch", key="start_review"):
        act(lambda: decisions.start_review(engine, claim_id, who.actor, expected_version=version),
            "Review started.")
    if Action.RESOLVE in view.actions and b1.button("Mark resolved", width="stretch",
                                                     key="mark_resolved"):
        act(lambda: decisions.mark_resolved(engine, claim_id, who.actor, expected_version=version),
            "Marked resolved.")
    if Action.REOPEN in view.actions and b1.button("Reopen", width="stretch",
                                                               key="reopen"):
        act(lambda: decisions.reopen(engine, claim_id, who.actor, expected_version=version),
            "Claim reopened.")
    if Action.CLOSE in view.actions and b2.button("Close", width="stretch", key="close"):
        act(lambda: decisions.close(engine, claim_id, who.actor, expected_version=version),
            "Claim closed.")
    if Action.UNDO_APPROVAL in view.actions:
        with st.form("undo"):
            auto = next((e.actor for e in reversed(view.events)
                         if e.action == domain.AuditAction.APPROVED), "")
            st.markdown("**Undo this approval**")
            if auto.startswith("rule:"):
                safe_text.show(auto, prefix="Made by ")
            undo_why = st.text_input("Why", key="undo_why")
            if st.form_submit_button("Undo approval"):
                act(lambda: decisions.undo_approval(engine, claim_id, who.actor, undo_why,
                                                    expected_version=version),
                    "Approval undone; the claim is back in review.")
    if c.resolutions:
        st.markdown("**Resolution**")
        for r in c.resolutions:
            extra = (f" + {r.bonus_pct}% bonus · code `{r.store_credit_code}`"
                     if r.kind == domain.ResolutionKind.STORE_CREDIT else "")
            st.markdown(f"- {domain.RESOLUTION_LABELS[r.kind]}: {ui.money(r.amount_cents, c.currency)}{extra}")
    if view.writes:
        st.markdown("**In Shopify**")
        for w in view.writes:
            with st.container(border=True, key=f"write_{w.id}"):
                ui.badge(f"{w.label}: {WRITE_STATUS[w.status]}",
                         {"done": True, "failed": "bad", "pending": "warn", "sending": "warn"}
                         .get(w.status, False))
                if w.shopify_id:
                    safe_text.show(w.shopify_id, prefix="Shopify id: ")
                if w.status == "pending" and w.attempts:
                    st.caption(f"Tried {w.attempts}×; next try "
                               f"{ui.moment(w.next_attempt_at, settings.timezone)}")
                if w.last_error:
                    safe_text.show(w.last_error, prefix="Shopify said: ")
                if w.can_retry and st.button("Retry", key=f"retry_write_{w.id}", width="stretch"):
                    act(lambda: shopify_write_back.retry_now(engine, w.id, who.actor),
                        "Sent to Shopify again.")

    recovery_panel.show(engine, who, claim_id, settings, act)  # the carrier claim, if any

    st.subheader("Assign", anchor=False)
    people = claim_review.assignable_staff(engine)
    ids = [None] + [pid for pid, _n in people]
    names = dict(people)
    a1, a2 = st.columns([3, 1], vertical_alignment="bottom")
    pick = a1.selectbox("Assigned to", ids, index=ids.index(view.assignee_id) if view.assignee_id in ids else 0,
                        format_func=lambda i: "Nobody" if i is None else names[i], key="assignee")
    if a2.button("Save", key="assign_save", width="stretch") and pick != view.assignee_id:
        act(lambda: claim_review.assign(engine, claim_id, who.actor, pick, expected_version=version),
            "Assignment saved.")

    st.subheader("Risk signals", anchor=False)
    if not view.signals:
        st.caption("Nothing unusual.")
    for sig in view.signals:
        safe_text.show(f"• {sig.label}: {sig.detail} (+{sig.weight})")

    st.subheader("Internal notes", anchor=False)
    st.caption("Only staff see these.")
    for n in view.internal_notes:
        safe_text.show(f"{n.author_name} · {ui.moment(n.created_at, settings.timezone)}")
        safe_text.show(n.body)
    with st.form("note", clear_on_submit=True):
        note_body = st.text_area("Add a note", key="note_body", height=70,
                                 label_visibility="collapsed", placeholder="Add an internal note")
        if st.form_submit_button("Save note"):
            act(lambda: decisions.staff_message(engine, claim_id, who.actor,
                                                who.display_name or who.username, note_body,
                                                internal=True), "Note saved.")

    st.subheader("Timeline", anchor=False)
    safe_text.show("\n".join(ev.line for ev in reversed(view.events)))

st.session_state[version_key] = c.version
