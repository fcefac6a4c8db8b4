"""Recoveries: the money the shop can claim back from carriers and insurers, soonest deadline
first (overdue ones flagged), filtered by carrier and state. Select a row to open its claim."""
from __future__ import annotations

import streamlit as st

from claims_core import domain
from claims_core.domain import carrier_claims
from claims_core.domain.recoveries import STATE_LABELS, STATES
from claims_core.services import recoveries
from views import ui

st.set_page_config(layout="wide")
who = ui.require("work_claims")
engine = ui.get_engine()
settings = ui.store_settings()

st.title("Recoveries", anchor=False)
st.caption("What approved lost, stolen and damaged claims can get back from the carrier (up to "
           "its liability) or the insurer. Each carrier takes claims only until its deadline: "
           "file before it (the owner is emailed 7 days and 1 day before), or the recovery is "
           "written off.")
CARRIERS = [*carrier_claims.RECOVERY_CARRIERS, carrier_claims.OTHER]
f1, f2 = st.columns(2)
carriers = f1.multiselect("Carrier", CARRIERS, key="rec_carriers",
                          format_func=lambda k: carrier_claims.RULES[k].name
                          if k in carrier_claims.RULES else "Other carriers")
states = f2.multiselect("State", list(STATES), key="rec_states", format_func=STATE_LABELS.get,
                        placeholder="Open ones")
rows = recoveries.list_recoveries(engine, carriers=carriers, states=states)
if not rows:
    st.info("No recoveries match these filters." if carriers or states else
            "Nothing to recover right now.")
    st.stop()
# one currency: numbers in a money column (sortable); several: each amount written with its own
currencies = {r.currency for r in rows}
one_currency = next(iter(currencies)) if len(currencies) == 1 else None


def amount(minor: int, currency: str):
    return domain.decimal_amount(minor, currency) if one_currency else ui.money(minor, currency)


event = st.dataframe([{
    "Due": "Overdue" if r.overdue else "",
    "Deadline": ui.day(r.deadline, settings.timezone) if r.deadline else "no rule",
    "Days left": r.days_left,
    "Claim": r.reference,
    "Carrier": r.carrier or "—",
    "Issue": r.issue_label,
    "State": r.state_label,
    "Claimable": amount(r.claimable_minor, r.currency),
    "Recovered": amount(r.recovered_minor, r.currency),
    "Carrier's claim": r.carrier_claim_number or r.easypost_claim_id or "",
} for r in rows], hide_index=True, on_select="rerun", selection_mode="single-row", key="rec_table",
    column_config={"Due": st.column_config.TextColumn(
        "Due", width="small", help="Overdue: still to file after the carrier's deadline"),
        **({"Claimable": ui.money_column(one_currency), "Recovered": ui.money_column(one_currency)}
           if one_currency else {})})
st.caption(f"{len(rows)} recoveries · select a row to open its claim. Deadlines are counted on "
           "the store's calendar; a rule marked unconfirmed on the claim page could only be read "
           "on a third-party page.")
chosen = event.selection.rows if event and event.selection else []
if chosen:
    st.switch_page("views/staff/claim.py", query_params={"id": rows[chosen[0]].claim_id})
