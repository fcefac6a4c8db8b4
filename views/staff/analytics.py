"""Analytics for owners and analysts: claim rates, trends, breakdowns, money, operations."""
from __future__ import annotations


import pandas as pd
import plotly.express as px
import streamlit as st

from claims_core import domain
from claims_core.domain.csv_safe import write_csv
from claims_core.infra import config
from claims_core.domain import pricing as pricing_rules
from claims_core.services import analytics, claim_queue, pricing
from views import safe_text, ui, url_filters

st.set_page_config(layout="wide")
who = ui.require("analytics")
engine = ui.get_engine()

st.title("Analytics", anchor=False)

DEFAULT = analytics.last_days(engine, 180)  # ends today, the store's local day
CUR = ui.store_settings().currency  # the store's currency: every amount here is in it
UNIT = 10 ** domain.currency_exponent(CUR)  # minor units per unit (100 cents; 1 for yen)
SYM = "$" if CUR == "USD" else CUR


version = analytics.data_version(engine)  # moves with every change a figure can see


@st.cache_data(show_spinner=False, max_entries=16)
def destinations(url: str, data_version) -> list[str]:
    """The countries to filter by, read again only when the data has changed."""
    return analytics.countries(engine)


carrier_list = claim_queue.carriers(engine)
country_list = destinations(config.database_url(), version)
# The filters live in the URL, so a view can be shared.
url_filters.seed({
    "a_period_url": ("period", url_filters.as_date_range),
    "a_issue": ("issue", url_filters.as_list(domain.ISSUE_TYPES)),
    "a_carrier": ("carrier", url_filters.as_list(carrier_list)),
    "a_country": ("country", url_filters.as_list(country_list)),
    "a_grain_url": ("by", url_filters.as_choice(analytics.GRAINS)),
})
c1, c2, c3, c5, c4 = st.columns([2, 2, 2, 2, 1])
period = c1.date_input("Period (shipments fulfilled / claims filed)",
                       value=st.session_state.get("a_period_url",
                                                  (DEFAULT.date_from, DEFAULT.date_to)),
                       key="a_period", format="YYYY-MM-DD",
                       help=f"The store's days, in its time zone ({ui.store_settings().timezone}).")
issue_types = c2.multiselect("Issue type", list(domain.ISSUE_TYPES), key="a_issue",
                             format_func=lambda t: domain.ISSUE_TYPES[t].label,
                             placeholder="All issue types")
carriers = c3.multiselect("Carrier", carrier_list, key="a_carrier",
                          placeholder="All carriers")
countries = c5.multiselect("Destination", country_list, key="a_country",
                           placeholder="All destinations")
grain = c4.radio("Trend by", analytics.GRAINS, key="a_grain", format_func=str.capitalize,
                 index=analytics.GRAINS.index(st.session_state.get("a_grain_url", "month")))
if not isinstance(period, (tuple, list)) or len(period) != 2:
    st.info("Choose the end of the period.")
    st.stop()
if period[0] > period[1]:
    st.error("The period's start is after its end.")
    st.stop()
flt = analytics.AnalyticsFilter(period[0], period[1], tuple(issue_types), tuple(carriers),
                                tuple(countries))
url_filters.publish({"period": f"{period[0]}..{period[1]}", "issue": issue_types,
                     "carrier": carriers, "country": countries, "by": grain})
refresh = st.session_state.pop("a_refresh", False)
notice = st.empty()  # filled in at the end if some figures are older than the data


@st.cache_resource(show_spinner=False)
def figure_store(url: str) -> analytics.FigureStore:
    """The figures computed so far, one store per database, shared by every session of this
    server (building Plotly figures costs more than the SQL at small sizes, so charts are kept
    with their data)."""
    return analytics.FigureStore()


def compute(name: str, arg: str | None):
    data = {"rates": lambda: analytics.claim_rates(engine, flt),
            "trend": lambda: analytics.rate_trend(engine, flt, arg),
            "outcomes": lambda: analytics.outcomes_trend(engine, flt, arg),
            "breakdown": lambda: analytics.breakdown(engine, flt, arg),
            "money": lambda: analytics.money_by_month(engine, flt),
            "recoveries": lambda: analytics.recoveries_by_carrier(engine, flt),
            "ops": lambda: analytics.operations(engine, flt),
            "pricing": lambda: pricing.report(
                engine, flt.date_from, flt.date_to, arg[0],
                pricing.assumptions(engine, count_recoveries=arg[1]))}[name]()
    return data, FIGURES[name](data, arg) if name in FIGURES else None


stale: list[analytics.Computed] = []


def computing(name: str, arg: str | None):
    with st.spinner("Working out the figures…", show_time=True):
        return compute(name, arg)


def get(name, arg=None):
    entry, is_stale = figure_store(config.database_url()).get(
        (name, flt, arg), version, lambda: computing(name, arg), refresh=refresh)
    if is_stale:
        stale.append(entry)
    return entry.value


def _style(fig):
    fig.update_layout(margin=dict(l=10, r=10, t=30, b=10), legend_title_text="", height=380,
                      legend=dict(orientation="h", yanchor="top", y=-0.18, x=0))
    return fig


def _rates_fig(rates, _arg):
    if not len(rates) or not int(rates["protected_shipments"].iloc[0]):
        return None
    fig = px.bar(rates, x="per_100_shipments", y="issue", orientation="h", color="category",
                 text="claims", custom_data=["issue_type"], labels={"per_100_shipments": "claims per 100 protected shipments",
                                        "issue": "", "category": ""},
                 category_orders={"issue": list(rates["issue"])},
                 color_discrete_map={"shipping": "#0f766e", "item": "#f59e0b"})
    fig.update_traces(texttemplate="%{text} claims", textposition="outside", cliponaxis=False)
    return _style(fig)


def _trend_fig(trend, _grain):
    if trend.empty or not trend["claims"].any():
        return None
    return _style(px.line(trend, x="period", y="per_100_shipments", color="issue", markers=True,
                          labels={"per_100_shipments": "per 100 shipments", "period": ""}))


def _outcomes_fig(outcomes, _grain):
    if outcomes.empty:
        return None
    long = outcomes.melt(id_vars="period", var_name="outcome", value_name="claims")
    return _style(px.bar(long, x="period", y="claims", color="outcome", barmode="group",
                         labels={"period": ""},
                         color_discrete_map={"filed": "#64748b", "approved": "#16a34a",
                                             "denied": "#dc2626"}))


def _breakdown_fig(df, key):
    if df.empty:
        return None
    label = df.columns[0] if key != "sku" else "Product"
    rate_col = "per_100_units" if key == "sku" else "per_100_shipments"
    count_col = "units_claimed" if key == "sku" else "claims"
    df = df.assign(drill=df[label],  # the raw name, for a drill-down to the queue
                   **{label: df[label].map(safe_text.chart_label)})  # names come from files
    fig = px.bar(df.head(15), x=rate_col, y=label, orientation="h", text=count_col,
                 custom_data=["drill"],
                 labels={rate_col: "per 100 units" if key == "sku" else "per 100 shipments", label: ""})
    fig.update_traces(marker_color="#0f766e", texttemplate="%{text}", textposition="outside",
                      cliponaxis=False)
    fig.update_yaxes(categoryorder="total ascending")
    return _style(fig)


def _money_fig(money, _arg):
    if money.empty:
        return None
    dollars = money.assign(**{c: money[c] / UNIT for c in
                              ("refunds", "store_credit", "reshipments", "protection_fees")})
    long = dollars.melt(id_vars="month", value_vars=["refunds", "store_credit", "reshipments"],
                        var_name="paid out as", value_name="dollars")
    fig = px.bar(long, x="month", y="dollars", color="paid out as",
                 labels={"month": "", "dollars": SYM},
                 color_discrete_map={"refunds": "#dc2626", "store_credit": "#f59e0b",
                                     "reshipments": "#6366f1"})
    fig.add_scatter(x=dollars["month"], y=dollars["protection_fees"], mode="lines+markers",
                    name="protection fees", line=dict(color="#0f766e", width=3))
    return _style(fig)


FIGURES = {"rates": _rates_fig, "trend": _trend_fig, "outcomes": _outcomes_fig,
           "breakdown": _breakdown_fig, "money": _money_fig}


def csv_bytes(df: pd.DataFrame) -> bytes:
    return write_csv(list(df.columns), df.itertuples(index=False))


def table_and_download(df: pd.DataFrame, name: str) -> None:
    with st.expander("Table"):
        st.dataframe(df, hide_index=True, width="stretch")
    st.download_button("Download CSV", csv_bytes(df), file_name=f"{name}-{flt.date_from}-{flt.date_to}.csv",
                       mime="text/csv", key=f"dl_{name}", icon=":material/download:", on_click="ignore")


def chart(fig, key: str, drill: str | None = None) -> None:
    """A chart (keyed: two tabs can draw identical figures). With ``drill`` (a queue filter),
    clicking a bar opens the claims queue filtered to it, with this page's other filters."""
    event = st.plotly_chart(fig, width="stretch", config={"displayModeBar": False},
                            key=f"chart_{key}", on_select="rerun" if drill else "ignore",
                            selection_mode="points")
    picked = url_filters.selected(event) if drill else []
    if picked:
        params = {"issue": ",".join(issue_types), "carrier": ",".join(carriers), drill: ",".join(picked)}
        st.switch_page("views/staff/queue.py", query_params={k: v for k, v in params.items() if v})


# --- claim rate by issue type -------------------------------------------------------------------
rates, rates_fig = get("rates")
top = analytics.headline(rates)
ops, _ = get("ops")
m1, m2, m3, m4, m5 = st.columns(5)
m1.metric("Protected shipments", f"{top.protected_shipments:,}")
m2.metric("Claims on them", f"{top.claims:,}")
m3.metric("Claims per 100 shipments", "—" if top.claims_per_100 is None else f"{top.claims_per_100:.2f}")
m4.metric("Approval rate", "—" if ops.approval_rate is None else f"{100 * ops.approval_rate:.0f}%")
m5.metric("Waiting on customers", f"{ops.waiting_on_customer:,}")

st.subheader("Claim rate by issue type", anchor=False)
st.caption("Claims per 100 **protected shipments fulfilled in the period** (and per 100 protected "
           f"orders: {top.protected_orders:,}, each counted once, with its first protected shipment). A claim counts in the period its shipment left, whenever it was "
           "filed. The number of claims is shown on each bar.")
if rates_fig is None:
    st.info("No protected shipments were fulfilled in this period.")
else:
    chart(rates_fig, "rates", drill="issue")
    st.caption("Click a bar to open those claims in the queue.")
table_and_download(rates, "claim-rates")

# --- trends -------------------------------------------------------------------------------------
st.subheader(f"Trends by {grain}", anchor=False)
t1, t2 = st.columns(2)
with t1:
    trend, trend_fig = get("trend", grain)
    st.caption("Claim rate per issue type (claims per 100 protected shipments that left that "
               f"{grain}).")
    if trend_fig is None:
        st.info("No claims in this period.")
    else:
        chart(trend_fig, "trend")
    table_and_download(trend, f"rate-trend-{grain}")
with t2:
    outcomes, outcomes_fig = get("outcomes", grain)
    st.caption(f"Claims filed, approved and denied per {grain} (decisions counted when made).")
    if outcomes_fig is None:
        st.info("No claims filed or decided in this period.")
    else:
        chart(outcomes_fig, "outcomes")
    table_and_download(outcomes, f"outcomes-{grain}")

# --- breakdowns ---------------------------------------------------------------------------------
st.subheader("Where claims come from", anchor=False)
tabs = st.tabs(["Carrier", "Product", "Destination", "Shipping method"])
for tab, key in zip(tabs, ["carrier", "sku", "region", "method"]):
    with tab:
        df, fig = get("breakdown", key)
        if fig is None:
            st.info("No protected shipments in this period.")
            continue
        chart(fig, f"by_{key}", drill="carrier" if key == "carrier" else None)
        table_and_download(df, f"by-{key}")

# --- money --------------------------------------------------------------------------------------
st.subheader("What claims cost against what protection brought in", anchor=False)
money, money_fig = get("money")
if money_fig is None:
    st.info("No protection fees or resolutions in this period.")
else:
    totals = analytics.money_totals(money)
    k1, k2, k3 = st.columns(3)
    k1.metric("Protection fees collected", ui.money(totals.fees_cents, CUR))
    k2.metric("Paid out (refunds, credit, reshipments)", ui.money(totals.paid_cents, CUR))
    k3.metric("Loss ratio", "—" if totals.loss_ratio is None else f"{totals.loss_ratio:.2f}")
    chart(money_fig, "money")
    st.caption("Loss ratio per month = paid out ÷ protection fees collected that month. With a "
               "carrier filter, an order's fee counts under the carrier of its first shipment.")
table_and_download(money, "money-by-month")

# --- money that came back (recoveries) ----------------------------------------------------------
st.subheader("Money that came back from the carriers", anchor=False)
recov, _ = get("recoveries")
net = analytics.net_cost(money, recov)
r1, r2, r3, r4 = st.columns(4)
r1.metric("Gross paid out", ui.money(net.paid_cents, CUR))
r2.metric("Recovered", ui.money(net.recovered_cents, CUR))
r3.metric("Net cost", ui.money(net.net_cents, CUR))
r4.metric("Lost to missed deadlines", ui.money(net.lost_deadline_cents, CUR),
          f"{net.lost_deadline:,} written off", delta_color="off")
st.caption("Recoveries count in the period they were opened (when the claim was approved), under "
           "the parcel's carrier; a recovery whose approval was undone counts nothing. Net cost = "
           "paid out − recovered. Recovery rate = recovered ÷ paid out on the claims that opened a "
           "recovery. Lost to missed deadlines = what could have been claimed on recoveries "
           "written off because the carrier's deadline passed before they were filed.")
if len(recov):
    st.dataframe(pd.DataFrame({
        "Carrier": recov["carrier"], "Recoveries": recov["recoveries"],
        f"Paid out ({SYM})": recov["paid_out"] / UNIT, f"Recovered ({SYM})": recov["recovered"] / UNIT,
        "Recovery rate": recov["recovery_rate"], "Filed": recov["filed"],
        "Rejected": recov["rejected"], "Written off": recov["written_off"],
        "Missed deadline": recov["lost_deadline"],
        f"Lost to deadline ({SYM})": recov["lost_deadline_cents"] / UNIT}),
        hide_index=True, width="stretch", column_config={
            f"Paid out ({SYM})": ui.money_column(CUR), f"Recovered ({SYM})": ui.money_column(CUR),
            f"Lost to deadline ({SYM})": ui.money_column(CUR),
            "Recovery rate": st.column_config.NumberColumn(format="percent")})
    st.download_button("Download CSV", csv_bytes(recov),
                       file_name=f"recoveries-by-carrier-{flt.date_from}-{flt.date_to}.csv",
                       mime="text/csv", key="dl_recoveries", icon=":material/download:",
                       on_click="ignore")
else:
    st.info("No recoveries opened in this period.")

# --- operations ---------------------------------------------------------------------------------
st.subheader("Operations", anchor=False)
o1, o2, o3, o4 = st.columns(4)
fmt = lambda h: "—" if h is None else (f"{h:.2f}".rstrip("0").rstrip(".") + " h" if h < 48  # noqa: E731
                                        else f"{h / 24:.1f} days")
o1.metric("First response, median", fmt(ops.first_response_median_h))
o2.metric("First response, 90th percentile", fmt(ops.first_response_p90_h))
o3.metric("Decision, median", fmt(ops.decision_median_h))
o4.metric("Decision, 90th percentile", fmt(ops.decision_p90_h))
st.caption(f"Claims filed in the period: {ops.decided:,} decided ({ops.approved:,} approved, "
           f"{ops.denied:,} denied); {ops.waiting_on_customer:,} waiting on the customer. "
           "Times are “within”: to the quarter-hour up to a day, then to the hour up to a week; "
           "half the claims were answered (or decided) within the median.")
table_and_download(ops.as_frame(), "operations")


# --- pricing advisor ------------------------------------------------------------------------------
st.subheader("Is my protection priced right?", anchor=False)
assume = pricing.assumptions(engine)
st.caption(f"Orders placed in the period with protection (not cancelled), their fees, and what "
           f"their claims cost you, against a target loss ratio of "
           f"{assume.target_loss_ratio:.0%}. The issue, carrier and destination filters above don't apply "
           "here; choose a split instead. Recent orders' claims are still coming in: a period "
           "whose filing windows have closed gives the truest figure.")
SPLITS = {"all": "All orders", "carrier": "By carrier", "region": "By destination",
          "value_band": "By order value"}
split = st.segmented_control("Split", list(SPLITS), default="all", format_func=SPLITS.get,
                             key="p_split", required=True, label_visibility="collapsed") or "all"
count_recoveries = st.checkbox(
    "Count recoveries (price on the net cost: what the carriers paid back is taken off)",
    key="p_recoveries")
assume = pricing.assumptions(engine, count_recoveries=count_recoveries)
segments, _ = get("pricing", (split, count_recoveries))  # kept with the other figures (assumptions are settings:
# changing them records an event, so the figures are worked out again)
advice = [a for _i, a in segments]
price_rows = pd.DataFrame([{
    "Segment": a.label, "Protected orders": a.protected_orders,
    f"Fee revenue ({SYM})": a.fee_revenue_cents / UNIT, "Paid claims": a.paid_claims,
    f"Claims cost ({SYM})": a.claims_cost_cents / UNIT,
    "Loss ratio": None if a.loss_ratio is None else round(a.loss_ratio, 3),
    f"Flat fee for target ({SYM})": None if a.flat_fee_cents is None else a.flat_fee_cents / UNIT,
    f"Flat fee range ({SYM})": "" if a.flat_fee_range_cents is None else
    f"{a.flat_fee_range_cents[0] / UNIT:.{domain.currency_exponent(CUR)}f}–"
    f"{a.flat_fee_range_cents[1] / UNIT:.{domain.currency_exponent(CUR)}f}",
    "% of order value for target": a.percent_fee,
    "% range": "" if a.percent_fee_range is None else
    f"{a.percent_fee_range[0]:.2f}–{a.percent_fee_range[1]:.2f}",
    "Note": a.reason} for a in advice])
dollars = ui.money_column(CUR)
st.dataframe(price_rows, hide_index=True, width="stretch", column_config={
    f"Fee revenue ({SYM})": dollars, f"Claims cost ({SYM})": dollars,
    f"Flat fee for target ({SYM})": dollars,
    "Loss ratio": st.column_config.NumberColumn(format="%.2f"),
    "% of order value for target": st.column_config.NumberColumn(format="%.2f%%")})
st.download_button("Download CSV", csv_bytes(price_rows),
                   file_name=f"pricing-{split}-{flt.date_from}-{flt.date_to}.csv", mime="text/csv",
                   key="dl_pricing", icon=":material/download:", on_click="ignore")
with st.expander("What if I changed the fee?", expanded=True):
    inputs, _advice = st.selectbox("Segment", segments, format_func=lambda ia: ia[0].label,
                                   key="p_pick")
    w1, w2, w3 = st.columns(3)
    kind = w1.radio("New fee", ["flat", "percent"], horizontal=True, key="p_kind",
                    format_func={"flat": f"Flat ({SYM} per order)", "percent": "% of order value"}.get)
    current = inputs.average_fee_cents / UNIT if inputs.protected_orders else 0.0
    fee = w2.number_input("Fee", min_value=0.0, value=round(current, 2) if kind == "flat" else 3.0,
                          step=0.25, key=f"p_fee_{kind}")
    attach = w3.slider("Customers buying protection (change)", -50, 50, 0, format="%d%%",
                       key="p_attach")
    try:
        projected = pricing_rules.what_if(
            inputs, assume, flat_fee_cents=domain.minor_from_amount(fee, CUR) if kind == "flat" else None,
            percent_fee=fee if kind == "percent" else None, attach_change=attach / 100)
    except domain.ClaimRuleError as e:
        st.error(safe_text.inline(e.message))
    else:
        p1, p2, p3, p4 = st.columns(4)
        p1.metric("Protected orders", f"{projected.protected_orders:,}",
                  f"{projected.protected_orders - inputs.protected_orders:+,}")
        p2.metric("Fee revenue", ui.money(projected.revenue_cents, CUR),
                  ui.money(projected.revenue_cents - inputs.fee_revenue_cents, CUR))
        p3.metric("Claims cost", ui.money(projected.claims_cost_cents, CUR))
        p4.metric("Loss ratio", "—" if projected.loss_ratio is None else f"{projected.loss_ratio:.2f}")
with st.expander("Assumptions"):
    st.markdown(
        f"- **Claims cost** = refunds + store credit (bonus included) × {assume.credit_cost_ratio:.0%}"
        f" (what credit costs you) + reshipped items' price × {assume.reship_cost_ratio:.0%} (cost "
        f"of goods) + {ui.money(assume.reship_shipping_cents, CUR)} postage per reshipment. Only "
        "decisions standing now count (an undone approval doesn't)."
        + (" **Count recoveries** is ticked: what the carriers paid back on these claims is taken "
           "off (never below zero)." if assume.count_recoveries else "") + "\n"
        "- **Loss ratio** = claims cost ÷ protection fees collected.\n"
        f"- **Fee for the target** = claims cost ÷ {assume.target_loss_ratio:.0%} ÷ protected "
        "orders (flat, rounded up to 5¢), or ÷ their total order value (percent, rounded up to "
        "0.01 %).\n"
        f"- **Range**: the number of paid claims is treated as Poisson; the exact "
        f"{assume.confidence:.0%} interval on it (average cost per claim held fixed) gives the "
        "low and high fee.\n"
        f"- **Not enough data** below {assume.min_orders} protected orders or {assume.min_claims} "
        "paid claims in a segment.\n"
        "- **What if**: claims cost per protected order stays as it is; protected orders change "
        "with the share of customers who buy protection.\n\n"
        "The owner sets the target and the costs in Settings → Claim rules.")


def update_figures() -> None:
    st.session_state["a_refresh"] = True


if stale:
    oldest = min(stale, key=lambda e: e.computed_at)
    with notice.container(border=True):
        c1, c2 = st.columns([3, 1], vertical_alignment="center")
        c1.caption(f"Some figures are from {ui.moment(oldest.computed_at)}: claims have changed "
                   f"since. Working them out again takes about {sum(e.seconds for e in stale):.0f} s.")
        c2.button("Update figures", key="a_update", on_click=update_figures, width="stretch")
