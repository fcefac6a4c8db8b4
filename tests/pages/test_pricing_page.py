"""The pricing advisor on the analytics page (AppTest): the table per split and the what-if."""
from __future__ import annotations

from claims_core.services import decisions
from claims_core.services.approvals import ResolutionInput

from tests.pages.test_staff_app import app, everything, fresh_claim  # noqa: F401


def test_the_advisor_shows_segments_and_answers_what_if(app, engine):  # noqa: F811
    _built, r = fresh_claim(engine, "9101")
    decisions.approve(engine, r.claim_id, "staff:a", [ResolutionInput("refund", 2800)])
    at = app("owner", "views/staff/analytics.py")
    assert "Is my protection priced right?" in [s.value for s in at.subheader]
    table = next(d for d in at.dataframe if "Fee revenue ($)" in d.value.columns)
    row = table.value.iloc[0]
    assert row["Segment"] == "All orders" and row["Protected orders"] == 1
    assert row["Claims cost ($)"] == 28.00 and row["Paid claims"] == 1
    assert "200" in row["Note"]  # one order is far below the minimum sample: no recommendation
    assert row["Flat fee for target ($)"] is None or row["Flat fee for target ($)"] != row["Flat fee for target ($)"]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Protected orders"] == "1"
    at.number_input(key="p_fee_flat").set_value(10.0)
    at.slider(key="p_attach").set_value(-40)
    at.run()
    metrics = {m.label: m.value for m in at.metric}
    # 1 order × 0.6 rounds (half up) to 1; $10 on it; the cost per order stays $28
    assert (metrics["Protected orders"], metrics["Fee revenue"], metrics["Claims cost"],
            metrics["Loss ratio"]) == ("1", "$10.00", "$28.00", "2.80")
    at.segmented_control(key="p_split").set_value("value_band")
    at.run()
    table = next(d for d in at.dataframe if "Fee revenue ($)" in d.value.columns)
    assert list(table.value["Segment"]) == ["Under $50", "$50–100", "$100–250", "$250+"]
    assert "Assumptions" in [e.label for e in at.expander]
