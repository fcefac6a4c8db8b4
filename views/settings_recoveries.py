"""Settings → Recoveries (owner): which approved claims open a recovery from the carrier — the
carriers, the issue types, the smallest payout worth filing — and each carrier's rule as the app
applies it (window, liability, documents, source; unconfirmed ones marked). The rules:
``claims_core/domain/carrier_claims.py``; the policy: ``claims_core/services/recoveries.py``."""
from __future__ import annotations

import streamlit as st

from claims_core import domain
from claims_core.domain import carrier_claims
from claims_core.domain.recoveries import RECOVERABLE_ISSUES
from claims_core.services import recoveries
from views import safe_text, ui

CARRIERS = [*carrier_claims.RECOVERY_CARRIERS, carrier_claims.OTHER]


def _carrier_name(key: str) -> str:
    return carrier_claims.RULES[key].name if key in carrier_claims.RULES else "Other carriers"


def show(engine, who) -> None:
    st.caption("An approved lost, stolen, damaged or delivered-but-not-received claim opens a "
               "recovery: the money the carrier (or insurer) may pay back. By default every such "
               "claim does; narrow it here. Empty lists mean all.")
    policy = recoveries.load_policy(engine)
    currency = ui.store_settings().currency
    with st.form("recovery_policy"):
        carriers = st.multiselect("Carriers", CARRIERS, default=sorted(policy.carriers),
                                  format_func=_carrier_name, key="rec_policy_carriers",
                                  placeholder="All carriers")
        issues = st.multiselect("Issue types", list(RECOVERABLE_ISSUES),
                                default=sorted(policy.issue_types),
                                format_func=lambda i: domain.ISSUE_TYPES[i].label,
                                key="rec_policy_issues", placeholder="All four")
        minimum = st.text_input(f"Smallest payout worth filing ({currency})",
                                value=str(domain.decimal_amount(policy.min_minor, currency)),
                                key="rec_policy_min")
        off = st.multiselect("Don't file through EasyPost for", CARRIERS,
                             default=sorted(recoveries.easypost_off(engine)),
                             format_func=_carrier_name, key="rec_policy_easypost_off",
                             help="With EASYPOST_API_KEY set, \"File\" sends a recovery to "
                                  "EasyPost's claims; for these carriers staff file by hand.")
        if st.form_submit_button("Save recoveries", type="primary"):
            try:
                changed = recoveries.save_policy(engine, who.actor, carriers=carriers,
                                                 issue_types=issues, min_minor=minimum,
                                                 easypost_off=off)
            except domain.ClaimRuleError as e:
                st.error(safe_text.inline(e.message))
            else:
                st.session_state["settings_flash"] = "Saved." if changed else "Nothing changed."
                st.rerun()
    st.subheader("The carriers' rules", anchor=False)
    st.caption("As the app applies them when no higher value was declared. A contract, a "
               "declared value or bought insurance changes them: check your own terms. "
               "Unconfirmed: read on a third-party page, not the carrier's.")
    for rule in carrier_claims.RULES.values():
        with st.expander(rule.name):
            for label, w in (("Damage", rule.damage), ("Loss, theft, not received", rule.loss)):
                sure = "" if w.confirmed else " (unconfirmed)"
                st.markdown(f"{label}: within {w.describe()}{sure} — [source]({w.source})")
            liability = ("unknown (per kilogram)" if rule.liability_minor is None else
                         ui.money(rule.liability_minor, rule.liability_currency))
            sure = "" if rule.liability_confirmed else " (unconfirmed)"
            st.markdown(f"Liability: {liability}{sure} — [source]({rule.liability_source})")
            st.markdown("Documents: " + "; ".join(rule.documents))
            if rule.note:
                st.caption(rule.note)
