"""A shipment's "Track your shipment" timeline (order page, View My Claim, staff claim page).

Phone-first, like the tracking pages of 17TRACK and AfterShip: where the parcel is now in large
type, a four-step progress line, the expected delivery, one sentence on what the customer can
claim and when, then the carrier's scans newest first (three shown, the rest one tap away).
Everything the carrier wrote (messages, places, the name that signed) is shown as plain text.
"""
from __future__ import annotations

import html

import streamlit as st
from babel.dates import format_skeleton, format_time, get_datetime_format

from claims_core.domain.tracking import ProofOfDelivery
from claims_core.domain.vocabulary import MILESTONE_LABELS, MILESTONE_PATH, Milestone
from claims_core.domain.windows import store_zone
from claims_core.infra import i18n
from claims_core.services.tracking import ShipmentTracking
from views import safe_text, ui

SHOWN = 3
_TONE = {Milestone.DELIVERED: "ok", Milestone.EXCEPTION: "bad", Milestone.RETURNED: "bad",
         Milestone.EXPIRED: "warn", Milestone.AVAILABLE_FOR_PICKUP: "warn"}


def moment(t: i18n.Translator, dt, tz_name: str | None = "UTC", *, day: str = "MMMEd",
           clock: bool = True) -> str:
    """A moment as the reader's locale writes it, in the store's time zone: "Sun, Nov 29, 2:05 PM"
    (en-US), "dim. 29 nov., 14:05" (fr). ``day`` is the CLDR skeleton of the date part;
    ``clock=False`` leaves the time out."""
    zone = store_zone(tz_name)
    date_part = format_skeleton(day, dt, tzinfo=zone, locale=t.locale)
    if not clock:
        return date_part
    time_part = format_time(dt, "short", tzinfo=zone, locale=t.locale)
    pattern = str(get_datetime_format("medium", locale=t.locale))
    return pattern.replace("{1}", date_part).replace("{0}", time_part)


def _stepper(t: i18n.Translator, step: int, milestone: str | None) -> None:
    """The progress line: app-owned words only (never carrier text)."""
    off_path = milestone is not None and step < 0
    cells = []
    for i, m in enumerate(MILESTONE_PATH):
        state = "done" if i <= step else "todo"
        if i == step:
            state = "now"
        cells.append(f"<li class='trk-{state}'><span></span>{html.escape(t(MILESTONE_LABELS[m]))}</li>")
    warn = " trk-off" if off_path else ""
    label = html.escape(t("Delivery progress"), quote=True)
    st.html(
        "<style>.trk{display:flex;list-style:none;margin:.2rem 0 .4rem !important;padding:0 !important;gap:.25rem}"
        ".trk li{flex:1;font-size:.72rem;line-height:1.15;color:#6b7280;text-align:center;"
        "position:relative;padding-top:1.1rem;overflow-wrap:anywhere}"
        ".trk li span{position:absolute;top:.2rem;left:0;right:0;height:.45rem;border-radius:.25rem;"
        "background:#e5e7eb}.trk li.trk-done span,.trk li.trk-now span{background:var(--claims-accent,#2563eb)}"
        ".trk li.trk-now{color:#111827;font-weight:600}.trk-off li span{background:#fca5a5}</style>"
        f"<ol class='trk{warn}' aria-label='{label}'>{''.join(cells)}</ol>")


def show_tracking(track: ShipmentTracking | None, *, key: str, tz_name: str = "UTC",
                  heading: str | None = None, explain: bool = True,
                  t: i18n.Translator | None = None) -> None:
    """The timeline of one shipment. ``key`` keeps the widgets of two shipments apart;
    ``explain`` adds the sentence that tells a customer what they can claim, and when.
    ``heading`` (already in the reader's language) defaults to "Track your shipment"; ``t`` is
    the page's translator (``ui.t()`` if not given)."""
    if track is None:
        return
    t = t or ui.t()
    with st.container(border=True, key=f"tracking_{key}"):
        title = heading or t("Track your shipment")
        st.markdown(f"**{title}**")
        if track.milestone:
            ui.badge(t(track.milestone_label), _TONE.get(track.milestone, True))
        else:
            st.caption(t("No scans from the carrier yet."))
        _stepper(t, track.step, track.milestone)
        if track.expected_delivery_at and track.milestone != Milestone.DELIVERED:
            st.caption(t("Expected delivery: {date}",
                         date=moment(t, track.expected_delivery_at, tz_name, clock=False)))
        if track.stopped:
            st.caption(t("The carrier has stopped sending updates for this parcel."))
        if track.explanation and explain:
            safe_text.show(t(track.explanation))
        if not track.entries:
            return
        _entries(t, track.entries[:SHOWN], tz_name)
        rest = track.entries[SHOWN:]
        if rest:
            with st.expander(t.plural("One update", "All {n} updates", len(track.entries)),
                             expanded=False):
                _entries(t, rest, tz_name)


def _entries(t: i18n.Translator, entries, tz_name: str) -> None:
    for e in entries:
        when = moment(t, e.at, tz_name)
        label = t(e.milestone_label)
        where = safe_text.inline(f" · {e.place}") if e.place else ""  # the carrier's words: inert
        st.caption(f"{when} · {label}{where}")
        if e.message:
            safe_text.show(e.message)


def show_proof(proof: ProofOfDelivery, delivered_at, tz_name: str = "UTC",
               t: i18n.Translator | None = None) -> None:
    """Proof of delivery, as the carrier gives it (staff claim page)."""
    t = t or ui.t()
    with st.container(border=True, key="proof_of_delivery"):
        heading = t("Proof of delivery")
        st.markdown(f"**{heading}**")
        if not proof:
            st.caption(t("The carrier gave no proof of delivery (no signature, photo or location)."))
            return
        if delivered_at:
            st.caption(t("Delivered {time}", time=moment(t, delivered_at, tz_name)))
        if proof.signed_by:
            safe_text.show(proof.signed_by, prefix=t("Signed by:") + " ")
        if proof.location:
            safe_text.show(proof.location, prefix=t("Left at:") + " ")
        if proof.photo_url:
            if proof.photo_url.startswith("https://"):
                st.link_button(t("Open the carrier's delivery photo"), proof.photo_url)
            safe_text.show(proof.photo_url, prefix=t("Photo:") + " ")
