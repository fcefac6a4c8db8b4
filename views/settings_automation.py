"""Settings → Automation (owner): the auto-approve rules, tried in order when a claim is filed;
switch one on or off, add one (``services.auto_approval``). What a rule matches is
``claims_core/domain/auto_approval.py``."""
from __future__ import annotations

import streamlit as st

from claims_core import domain
from claims_core.domain.auto_approval import GRANTABLE, RuleSpec
from claims_core.services import auto_approval
from views import safe_text, ui


def _describe(spec: RuleSpec, active: bool, currency: str) -> str:
    issues = ", ".join(domain.ISSUE_TYPES[t].label for t in spec.issue_types) or "any issue"
    grants = ", ".join(domain.RESOLUTION_LABELS[x].lower() for x in spec.resolutions)
    quiet = f" · no claim in {spec.quiet_months} months" if spec.quiet_months else ""
    return (f"**{safe_text.inline(spec.name)}** · under {ui.money(spec.max_cents, currency)} · "
            f"{issues} · grants {grants}{quiet}" + ("" if active else " · *off*"))


def show(engine, who) -> None:
    currency = ui.store_settings().currency
    st.markdown("**Auto-approve rules**, tried in order when a claim is filed. A claim is approved "
                "with the customer's choice when it is under the amount, of a covered issue type, "
                "has photos where the issue needs them, and its email filed no other claim in the "
                "quiet period. Staff can undo an automatic approval from the claim.")
    for rid, active, spec in auto_approval.list_rules(engine):
        r1, r2 = st.columns([4, 1], vertical_alignment="center")
        r1.markdown(_describe(spec, active, currency))
        if r2.button("Turn off" if active else "Turn on", key=f"rule_{rid}", width="stretch"):
            ui.settings_act(lambda rid=rid, active=active: auto_approval.set_rule_active(
                engine, who.actor, rid, not active), "Rule saved.")
    with st.form("new_rule", clear_on_submit=True):
        st.markdown("**New rule**")
        n1, n2, n3 = st.columns(3)
        name = n1.text_input("Name", key="r_name")
        under = ui.amount_input(n2, "Approve claims under", currency,
                                domain.minor_from_amount(50, currency),
                                auto_approval.MAX_AMOUNT_MINOR, key="r_max")
        fewest, most = auto_approval.QUIET_MONTHS
        quiet = n3.number_input("No other claim from the email in (months, 0 = don't check)",
                                min_value=fewest, max_value=most, value=12, key="r_quiet")
        types = st.multiselect("Issue types (none = any)", list(domain.ISSUE_TYPES), key="r_types",
                               format_func=lambda t: domain.ISSUE_TYPES[t].label)
        grants = st.multiselect("Resolutions it grants", list(GRANTABLE), default=list(GRANTABLE),
                                key="r_res", format_func=domain.RESOLUTION_LABELS.get)
        photos = st.checkbox("Require photos where the issue needs them", True, key="r_photos")
        if st.form_submit_button("Add rule"):
            ui.settings_act(lambda: auto_approval.save_rule(engine, who.actor, RuleSpec(
                name, under, tuple(types), tuple(grants), photos, int(quiet) or None)),
                f"Rule “{name}” added.")
