"""A shipment's "Track your shipment" timeline (order page, View My Claim, staff claim page).

Phone-first, like the tracking pages of 17TRACK and AfterShip: where the parcel is now in large
type, a four-step progress line, the expected delivery, one sentence on what the customer can
claim and when, then the carrier's scans newest first (three shown, the rest one tap away).
Everything the carrier wrote (messages, places, the name that signed) is shown as plain text.
"""
from __future__ import annotations

import html

import streamlit as st

from claims_core.domain.tracking import ProofOfDelivery
from claims_core.domain.vocabulary import MILESTONE_LABELS, MILESTONE_PATH, Milestone
from claims_core.domain.windows import store_zone
from claims_core.services.tracking import ShipmentTracking
from views import safe_text, ui

SHOWN = 3
_TONE = {Milestone.DELIVERED: "ok", Milestone.EXCEPTION: "bad", Milestone.RETURNED: "bad",
         Milestone.EXPIRED: "warn", Milestone.AVAILABLE_FOR_PICKUP: "warn"}


def _local(dt, tz_name: str) -> str:
    t = dt.astimezone(store_zone(tz_name))
    return f"{t:%a} {t:%b} {t.day}, {t:%H:%M}"


def _stepper(step: int, milestone: str | None) -> None:
    """The progress line: app-owned words only (never carrier text)."""
    off_path = milestone is not None and step < 0
    cells = []
    for i, m in enumerate(MILESTONE_PATH):
        state = "done" if i <= step else "todo"
        if i == step:
            state = "now"
        cells.append(f"<li class='trk-{state}'><span></span>{html.escape(MILESTONE_LABELS[m])}</li>")
    warn = " trk-off" if off_path else ""
    st.html(
        "<style>.trk{display:flex;list-style:none;margin:.2rem 0 .4rem !important;padding:0 !important;gap:.25rem}"
        ".trk li{flex:1;font-size:.72rem;line-height:1.15;color:#6b7280;text-align:center;"
        "position:relative;padding-top:1.1rem;overflow-wrap:anywhere}"
        ".trk li span{position:absolute;top:.2rem;left:0;right:0;height:.45rem;border-radius:.25rem;"
        "background:#e5e7eb}.trk li.trk-done span,.trk li.trk-now span{background:var(--claims-accent,#2563eb)}"
        ".trk li.trk-now{color:#111827;font-weight:600}.trk-off li span{background:#fca5a5}</style>"
        f"<ol class='trk{warn}' aria-label='Delivery progress'>{''.join(cells)}</ol>")


def show_tracking(t: ShipmentTracking | None, *, key: str, tz_name: str = "UTC",
                  heading: str = "Track your shipment", explain: bool = True) -> None:
    """The timeline of one shipment. ``key`` keeps the widgets of two shipments apart;
    ``explain`` adds the sentence that tells a customer what they can claim, and when."""
    if t is None:
        return
    with st.container(border=True, key=f"tracking_{key}"):
        st.markdown(f"**{heading}**")
        if t.milestone:
            ui.badge(t.milestone_label, _TONE.get(t.milestone, True))
        else:
            st.caption("No scans from the carrier yet.")
        _stepper(t.step, t.milestone)
        if t.expected_delivery_at and t.milestone != Milestone.DELIVERED:
            st.caption(f"Expected delivery: {_local(t.expected_delivery_at, tz_name).rsplit(',', 1)[0]}")
        if t.stopped:
            st.caption("The carrier has stopped sending updates for this parcel.")
        if t.explanation and explain:
            safe_text.show(t.explanation)
        if not t.entries:
            return
        _entries(t.entries[:SHOWN], tz_name)
        rest = t.entries[SHOWN:]
        if rest:
            with st.expander(f"All {len(t.entries)} updates", expanded=False):
                _entries(rest, tz_name)


def _entries(entries, tz_name: str) -> None:
    for e in entries:
        where = f" · {e.place}" if e.place else ""
        st.caption(f"{_local(e.at, tz_name)} · {e.milestone_label}{safe_text.inline(where)}")
        if e.message:
            safe_text.show(e.message)


def show_proof(proof: ProofOfDelivery, delivered_at, tz_name: str = "UTC") -> None:
    """Proof of delivery, as the carrier gives it (staff claim page)."""
    with st.container(border=True, key="proof_of_delivery"):
        st.markdown("**Proof of delivery**")
        if not proof:
            st.caption("The carrier gave no proof of delivery (no signature, photo or location).")
            return
        if delivered_at:
            st.caption(f"Delivered {_local(delivered_at, tz_name)}")
        if proof.signed_by:
            safe_text.show(proof.signed_by, prefix="Signed by: ")
        if proof.location:
            safe_text.show(proof.location, prefix="Left at: ")
        if proof.photo_url:
            if proof.photo_url.startswith("https://"):
                st.link_button("Open the carrier's delivery photo", proof.photo_url)
            safe_text.show(proof.photo_url, prefix="Photo: ")
