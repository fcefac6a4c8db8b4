"""Settings → Claim rules (owner): the filing window, the resolutions offered, photos, the drawn
signature threshold, the protection line, reminders and the digest, the look-up throttle and the
pricing advisor's costs. One form, one save (``services.settings.update_settings``); every bound
is the service's (``views/settings_form.py``)."""
from __future__ import annotations

import streamlit as st

from claims_core import domain
from views import settings_form as form
from views import ui


def show(engine, who) -> None:
    settings = ui.store_settings()
    with st.form("rules_form"):
        c1, c2, c3 = st.columns(3)
        window = form.number(c1, "Filing window (days after fulfilment)", "filing_window_days",
                             settings.filing_window_days, key="s_window")
        lost = form.number(c2, "Days without a tracking scan before “lost”", "lost_wait_days",
                           settings.lost_wait_days, key="s_lost")
        target = form.number(c3, "Response target (hours)", "response_target_hours",
                             settings.response_target_hours, key="s_target")
        st.markdown("**Resolutions offered to customers**")
        r1, r2, r3, r4 = st.columns(4)
        refund = r1.checkbox("Refund", settings.offer_refund, key="s_refund")
        reship = r2.checkbox("Reshipment", settings.offer_reshipment, key="s_reship")
        credit = r3.checkbox("Store credit", settings.offer_store_credit, key="s_credit")
        bonus = form.number(r4, "Store-credit bonus (%)", "store_credit_bonus_pct",
                            settings.store_credit_bonus_pct, key="s_bonus")
        p1, p2, p3 = st.columns(3)
        photos = form.number(p1, "Photos per claim", "max_photos", settings.max_photos,
                             key="s_photos")
        photo_bytes = form.number(p2, "Photo size limit (MB)", "max_photo_bytes",
                                  settings.max_photo_bytes, unit=domain.MEGABYTE, key="s_photo_mb")
        threshold = form.amount(p3, "Drawn signature required above order value",
                                "signature_threshold_cents", settings.currency,
                                settings.signature_threshold_cents, key="s_threshold", step=50.0)
        pattern = st.text_input("Protection line in imports (pattern on the line's name or SKU)",
                                settings.protection_pattern, key="s_pattern")
        w1, w2, w3 = st.columns(3)
        remind = form.number(w1, "Remind a customer we're waiting on after (days)",
                             "reminder_after_days", settings.reminder_after_days, key="s_remind")
        close_days = form.number(w2, "…and close the claim after (days)", "close_after_days",
                                 settings.close_after_days, key="s_close")
        digest_hour = form.number(w3, "Daily digest to staff at (hour, store time)", "digest_hour",
                                  settings.digest_hour, key="s_digest_hour")
        l1, l2 = st.columns(2)
        misses = form.number(l1, "Order lookups: misses allowed", "lookup_max_misses",
                             settings.lookup_max_misses, key="s_misses")
        minutes = form.number(l2, "…within (minutes)", "lookup_window_minutes",
                              settings.lookup_window_minutes, key="s_minutes")
        st.markdown("**Pricing advisor** (Analytics → Is my protection priced right?)")
        a1, a2, a3, a4 = st.columns(4)
        target_lr = form.number(a1, "Target loss ratio (%)", "target_loss_ratio_pct",
                                settings.target_loss_ratio_pct, key="s_target_lr",
                                help="Claims cost as a share of protection fees you aim for; the "
                                     "rest pays for handling and margin.")
        credit_cost = form.number(a2, "Store credit costs you (% of face value)", "credit_cost_pct",
                                  settings.credit_cost_pct, key="s_credit_cost")
        reship_cost = form.number(a3, "Cost of goods (% of item price)", "reship_cost_pct",
                                  settings.reship_cost_pct, key="s_reship_cost")
        reship_shipping = form.amount(a4, "Shipping a replacement", "reship_shipping_cents",
                                      settings.currency, settings.reship_shipping_cents,
                                      key="s_reship_ship")
        if st.form_submit_button("Save claim rules", type="primary"):
            form.save(engine, who, {
                "filing_window_days": window, "lost_wait_days": lost,
                "response_target_hours": target, "offer_refund": refund,
                "offer_reshipment": reship, "offer_store_credit": credit,
                "store_credit_bonus_pct": bonus, "max_photos": photos,
                "max_photo_bytes": photo_bytes, "signature_threshold_cents": threshold,
                "protection_pattern": pattern, "lookup_max_misses": misses,
                "lookup_window_minutes": minutes, "reminder_after_days": remind,
                "close_after_days": close_days, "digest_hour": digest_hour,
                "target_loss_ratio_pct": target_lr, "credit_cost_pct": credit_cost,
                "reship_cost_pct": reship_cost, "reship_shipping_cents": reship_shipping,
            }, "Claim rules")
