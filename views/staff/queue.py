"""Claims queue: tabs shaped like the work, filters, sorting, SQL paging, CSV export."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from claims_core import domain
from claims_core.infra import config
from claims_core.infra.db import utcnow
from claims_core.services import claim_queue
from views import ui, url_filters

st.set_page_config(layout="wide")
who = ui.require("work_claims")
engine = ui.get_engine()
settings = ui.store_settings()

st.title("Claims queue", anchor=False)


@st.cache_data(ttl=600, show_spinner=False)
def carrier_options(url: str) -> list[str]:
    return claim_queue.carriers(engine)


# Filters live in the URL (a shared link or a drill-down from Analytics opens this same view).
url_filters.seed({
    "q_text": ("q", str),
    "q_cat": ("category", url_filters.as_choice([domain.SHIPPING, domain.ITEM])),
    "q_issue": ("issue", url_filters.as_list(domain.ISSUE_TYPES)),
    "q_carrier": ("carrier", url_filters.as_list(carrier_options(config.database_url()))),
    "q_res": ("resolution", url_filters.as_list(domain.RESOLUTION_LABELS)),
    "q_dates_url": ("filed", url_filters.as_date_range),  # passed as the widgets' first value (below)
    "q_min": ("min", url_filters.as_number),
    "q_max": ("max", url_filters.as_number),
    "q_risk": ("risk", url_filters.as_list(claim_queue.RISK_LEVELS)),
    "q_hold": ("hold", url_filters.as_bool),
    "q_tab_url": ("tab", url_filters.as_choice(claim_queue.TABS)),
    "q_sort": ("sort", url_filters.as_choice(claim_queue.SORTS)),
})
search = st.text_input("Search", placeholder="Claim reference, order number, email or tracking number",
                       key="q_text", label_visibility="collapsed")
with st.expander("Filters", expanded=any(st.session_state.get(k) for k in (
        "q_cat", "q_issue", "q_carrier", "q_res", "q_dates_url", "q_min", "q_max", "q_risk", "q_hold"))):
    c1, c2, c3, c4 = st.columns(4)
    category = c1.selectbox("Shipping or item", [None, domain.SHIPPING, domain.ITEM], key="q_cat",
                            format_func=lambda c: {None: "Both", domain.SHIPPING: "Shipping issues",
                                                   domain.ITEM: "Item issues"}[c])
    issue_types = c2.multiselect("Issue type", list(domain.ISSUE_TYPES), key="q_issue",
                                 format_func=lambda t: domain.ISSUE_TYPES[t].label)
    carriers = c3.multiselect("Carrier", carrier_options(config.database_url()), key="q_carrier")
    resolutions = c4.multiselect("Resolution asked", list(domain.RESOLUTION_LABELS), key="q_res",
                                 format_func=domain.RESOLUTION_LABELS.get)
    c5, c6, c7, c8 = st.columns(4)
    dates = c5.date_input("Filed between", value=st.session_state.get("q_dates_url", ()),
                          key="q_dates", format="YYYY-MM-DD")
    min_amount = c6.number_input(f"Amount from ({settings.currency})", min_value=0.0, value=None,
                                 step=10.0, key="q_min")
    max_amount = c7.number_input(f"Amount up to ({settings.currency})", min_value=0.0, value=None,
                                 step=10.0, key="q_max")
    risk = c8.multiselect("Risk", list(claim_queue.RISK_LEVELS), key="q_risk",
                          format_func=str.capitalize)
    on_hold = st.checkbox("Only claims on hold (the carrier's tracking changed after filing)",
                          key="q_hold")


def _minor(amount):
    if amount is None:
        return None
    try:
        return domain.minor_from_amount(amount, settings.currency)
    except domain.InvalidInput as e:  # above any amount the store can hold: no filter
        st.warning(e.message)
        return None


dates = dates or ()
d_from = dates[0] if len(dates) >= 1 else None
d_to = dates[1] if len(dates) == 2 else None
base = claim_queue.QueueFilter(
    tab="todo", issue_types=tuple(issue_types), category=category, date_from=d_from,
    date_to=d_to, carriers=tuple(carriers), resolutions=tuple(resolutions),
    min_cents=_minor(min_amount), max_cents=_minor(max_amount), risk_levels=tuple(risk),
    text=search, on_hold=on_hold,
)
if base.min_cents is not None and base.max_cents is not None and base.min_cents > base.max_cents:
    st.error("“Amount from” is above “Amount up to”: swap them to see results.")

counts = claim_queue.tab_counts(engine, base)
tab = st.segmented_control(
    "Claims", list(claim_queue.TABS), key="q_tab", required=True,
    default=st.session_state.get("q_tab_url", "todo"),
    format_func=lambda t: f"{claim_queue.TABS[t][0]} ({claim_queue.count_label(counts.get(t, 0))})",
    label_visibility="collapsed",
)
flt = claim_queue.with_tab(base, tab or "todo")
c1, c2, c3 = st.columns([2, 1, 1])
sort = c1.selectbox("Sort", list(claim_queue.SORTS), key="q_sort",
                    format_func=lambda k: claim_queue.SORTS[k][0], label_visibility="collapsed")
size = c2.selectbox("Rows per page", claim_queue.PAGE_SIZES, key="q_size",
                    format_func=lambda n: f"{n} per page", label_visibility="collapsed")
url_filters.publish({
    "q": search.strip(), "category": category, "issue": issue_types, "carrier": carriers,
    "resolution": resolutions, "filed": "..".join(str(d) for d in dates) if dates else None,
    "min": min_amount, "max": max_amount, "risk": risk, "hold": on_hold,
    "tab": None if tab in (None, "todo") else tab,
    "sort": None if sort == next(iter(claim_queue.SORTS)) else sort})
signature = (flt, sort, size)
if st.session_state.get("q_signature") != signature:  # new filters: back to page 1
    st.session_state["q_signature"] = signature
    st.session_state["q_page"] = 1
page = claim_queue.queue_page(engine, flt, sort=sort, page=st.session_state.get("q_page", 1),
                        page_size=size, counts=counts)
c3.download_button(
    "Export CSV", data=lambda: claim_queue.export_csv(engine, flt, sort=sort), icon=":material/download:",
    file_name=f"claims-{tab}-{domain.local_date(utcnow(), settings.timezone):%Y%m%d}.csv",
    mime="text/csv", width="stretch",
    on_click="ignore", key="q_export",
)

now = utcnow()
if not page.rows:
    filtered = claim_queue.with_tab(base, "todo") != claim_queue.QueueFilter()
    st.info("No claims match these filters." if filtered else "Nothing here right now.")
else:
    df = pd.DataFrame([{
        "Due": "Overdue" if r.waiting_too_long(now, settings.response_target_hours) else "",
        "Claim": r.reference,
        "Order": r.order_name,
        "Email": r.email,
        "Issue": domain.ISSUE_TYPES[r.issue_type].label,
        "Status": r.status_label,
        "Chargeback": r.chargeback,
        "Asked": domain.RESOLUTION_LABELS[r.desired_resolution],
        "Amount": domain.decimal_amount(r.claimed_cents, settings.currency),
        "Carrier": r.carrier,
        "Risk": r.risk_level.capitalize(),
        "Age": ui.age_text(r.age(now)),
        "Assigned": r.assignee or "",
    } for r in page.rows])
    event = st.dataframe(
        df, hide_index=True, on_select="rerun", selection_mode="single-row", key="q_table",
        column_config={
            "Due": st.column_config.TextColumn(
                "Due", width="small",
                help=f"Overdue: waiting on the shop for more than {settings.response_target_hours} h"),
            "Amount": ui.money_column(settings.currency, "Amount"),
            "Chargeback": st.column_config.TextColumn(
                "Chargeback", width="small",
                help="The customer disputed the payment with their bank. Paying twice?: the "
                     "claim was approved already; On hold: approving waits for the dispute"),
        },
    )
    st.caption(f"Select a row to open the claim. Overdue = waiting on the shop for more than "
               f"{settings.response_target_hours} hours.")
    chosen = event.selection.rows if event and event.selection else []
    if chosen:
        st.switch_page("views/staff/claim.py", query_params={"id": page.rows[chosen[0]].id})


def turn_to(n: int) -> None:
    st.session_state["q_page"] = n  # a button callback: the click is one script run


p1, p2, p3 = st.columns([1, 2, 1])
p1.button("Previous", disabled=not page.has_previous, width="stretch", key="q_prev",
          on_click=turn_to, args=(page.page - 1,))
of_pages = f" of {page.pages:,}" if page.pages else ""
p2.markdown(f"<div style='text-align:center'>Page {page.page:,}{of_pages} · "
            f"{claim_queue.count_label(page.total)} claims</div>", unsafe_allow_html=True)
p3.button("Next", disabled=not page.has_next, width="stretch", key="q_next",
          on_click=turn_to, args=(page.page + 1,))
