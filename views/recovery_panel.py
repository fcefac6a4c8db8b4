"""The staff claim page's recovery panel: the carrier claim for this claim's shipment (what can be
claimed, by when, under which carrier rule and from which source), the packet to download, and
the steps the action table offers now: file (by hand: the carrier's claim number), record the
carrier's decision and what was paid, write off."""
from __future__ import annotations

import streamlit as st

from claims_core.adapters import recovery_packet
from claims_core.domain import can
from claims_core.domain.money import decimal_amount
from claims_core.domain.recoveries import STATE_LABELS, RecoveryAction as RA, RecoveryState
from claims_core.services import recoveries
from views import safe_text, ui

OUTCOMES = [RecoveryState.APPROVED, RecoveryState.PARTLY_APPROVED, RecoveryState.REJECTED]


def show(engine, who, claim_id: int, settings, act) -> None:
    """``act(fn, success)``: the claim page's runner (reload on success, the error otherwise)."""
    items = recoveries.for_claim(engine, claim_id)
    if not items:
        return
    st.subheader("Carrier claim (recovery)", anchor=False)
    for r, events in items:
        with st.container(border=True, key=f"recovery_{r.id}"):
            ui.badge(r.state_label, r.state not in (RecoveryState.REJECTED,
                                                    RecoveryState.WRITTEN_OFF,
                                                    RecoveryState.CANCELLED))
            st.markdown(f"**{ui.money(r.claimable_minor, r.currency)}** can be claimed "
                        f"(paid out {ui.money(r.paid_out_minor, r.currency)}) · carrier "
                        f"{safe_text.inline(r.carrier or 'unknown')}")
            if r.insured_minor is not None:
                st.caption(f"Insured for {ui.money(r.insured_minor, r.currency)}: the insurer pays "
                           "up to that (instead of the carrier's liability).")
            elif r.liability_minor is not None:
                st.caption(f"Capped by the carrier's liability, "
                           f"{ui.money(r.liability_minor, r.currency)}, unless you enter the "
                           "insured value.")
            if r.deadline is not None and r.days_left is not None:
                text = (f"File by **{ui.day(r.deadline, settings.timezone)}** "
                        f"({r.days_left} days left)")
                (st.error if r.overdue else st.warning if r.days_left <= 7 else st.caption)(
                    text + (" — the deadline has passed" if r.overdue else ""))
            elif r.deadline is None:
                st.caption("No filing rule for this carrier: check its own terms.")
            if r.rule is not None:
                _rule(r.rule)
            if r.carrier_claim_number or r.easypost_claim_id:
                safe_text.show(f"Carrier's claim: {r.carrier_claim_number or r.easypost_claim_id}")
            if r.approved_minor is not None:
                st.caption(f"Approved {ui.money(r.approved_minor, r.currency)} · recovered "
                           f"{ui.money(r.recovered_minor, r.currency)}")
            if r.carrier_message:
                safe_text.show(r.carrier_message, prefix="The carrier said: ")
            st.download_button(
                "Claim packet (ZIP)", key=f"rec_packet_{r.id}", on_click="ignore",
                data=lambda: recovery_packet.packet_zip(engine, claim_id)[1],
                file_name=recovery_packet.packet_filename(r.reference),
                mime=recovery_packet.ZIP_MIME, icon=":material/folder_zip:",
                help="The evidence pack and a commercial invoice / proof of value (PDF).")
            _steps(engine, who, r, act)
            with st.expander(f"History ({len(events)})"):
                for e in events:
                    safe_text.show(f"{ui.moment(e.at, settings.timezone)} · {e.actor} · "
                                   f"{e.action.replace('_', ' ')} → "
                                   f"{STATE_LABELS.get(e.to_state, e.to_state or '')}")


def _rule(rule) -> None:
    sure = "" if rule.window_confirmed else " (unconfirmed: read on a third-party page)"
    st.caption(f"{rule.name}: claims within {rule.window}{sure} — [source]({rule.window_source})")
    sure = "" if rule.liability_confirmed else " (unconfirmed)"
    st.caption(f"Liability: {rule.liability}{sure} — [source]({rule.liability_source})")
    st.caption("Documents: " + "; ".join(rule.documents))
    if rule.note:
        st.caption(rule.note)


def _insured(engine, who, r, act) -> None:
    with st.form(f"rec_insured_{r.id}", clear_on_submit=False):
        value = st.text_input(
            "Insured value (empty: not insured)", key=f"rec_insured_value_{r.id}",
            value="" if r.insured_minor is None else str(decimal_amount(r.insured_minor, r.currency)),
            help="What the parcel was insured for (EasyPost or the carrier's own insurance). "
                 "It caps what is claimed instead of the carrier's liability.")
        if st.form_submit_button("Save the insured value"):
            act(lambda: recoveries.set_insured_value(engine, r.id, who.actor, value),
                "Insured value saved.")


def _steps(engine, who, r, act) -> None:
    if r.cancel_status in ("pending", "sending"):
        st.info("Cancelling the claim at EasyPost (the background work sends it within a "
                "minute).")
    if r.cancel_error:
        safe_text.show(r.cancel_error, prefix="EasyPost refused to cancel the claim: ")
    if r.can_set_insured:
        _insured(engine, who, r, act)
    if r.filing_status in ("pending", "sending"):
        st.info("On its way to EasyPost (the background work sends it within a minute).")
    if r.filing_error:
        safe_text.show(r.filing_error, prefix="EasyPost refused the claim: ")
    if r.can_file_easypost and r.filing_status not in ("pending", "sending") and st.button(
            "File through EasyPost", key=f"rec_easypost_{r.id}", type="primary",
            help="Sends the claim and its packet to EasyPost (POST /v2/claims)."):
        act(lambda: recoveries.request_filing(engine, r.id, who.actor), "Filing with EasyPost.")
    if RA.FILE in r.actions:
        with st.form(f"rec_file_{r.id}", clear_on_submit=True):
            number = st.text_input("The carrier's claim number", key=f"rec_number_{r.id}",
                                   help="File on the carrier's site, then record its number.")
            if st.form_submit_button("Record as filed", type="primary"):
                act(lambda: recoveries.file_by_hand(engine, r.id, who.actor, number),
                    "Recovery filed.")
    if RA.APPROVE in r.actions:
        with st.form(f"rec_decision_{r.id}", clear_on_submit=True):
            outcome = st.selectbox("The carrier's decision", OUTCOMES, format_func=STATE_LABELS.get,
                                   key=f"rec_outcome_{r.id}")
            approved = st.text_input("Amount approved (empty: all that was claimed)",
                                     key=f"rec_approved_{r.id}")
            paid = st.text_input("Amount paid to the shop (empty: not paid yet)",
                                 key=f"rec_paid_{r.id}")
            if st.form_submit_button("Record the decision"):
                act(lambda: recoveries.record_decision(engine, r.id, who.actor, outcome,
                                                       approved_minor=approved, paid_minor=paid),
                    "Decision recorded.")
    if RA.RECORD_PAYMENT in r.actions:
        with st.form(f"rec_pay_{r.id}", clear_on_submit=True):
            paid = st.text_input("Amount paid to the shop", key=f"rec_paid_only_{r.id}")
            if st.form_submit_button("Record the payment"):
                act(lambda: recoveries.record_payment(engine, r.id, who.actor, paid),
                    "Payment recorded.")
    if RA.NEEDS_ACTION in r.actions and st.button("The carrier needs something",
                                                 key=f"rec_needs_{r.id}"):
        act(lambda: recoveries.needs_action(engine, r.id, who.actor), "Marked: needs action.")
    if RA.CANCEL in r.actions and st.button(
            "Cancel the recovery", key=f"rec_cancel_{r.id}",
            help="Nothing to claim after all (the parcel turned up, filed by mistake). A claim "
                 "filed through EasyPost is cancelled there too."):
        act(lambda: recoveries.cancel(engine, r.id, who.actor), "Recovery cancelled.")
    if RA.WRITE_OFF in r.actions and can(who.role, "write_off_recoveries") and st.button(
            "Write off", key=f"rec_writeoff_{r.id}", help="Give up on this money."):
        act(lambda: recoveries.write_off(engine, r.id, who.actor, role=who.role), "Written off.")
