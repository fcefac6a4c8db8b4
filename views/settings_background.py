"""Settings → Background work (owner): each background job's last run and result, what is queued
and what failed (email, Shopify writes, webhook deliveries) with a retry for each failed one,
and whether SMTP, IMAP and 17TRACK are configured. The jobs are ``claims_core/adapters/jobs.py``."""
from __future__ import annotations

import streamlit as st

from claims_core.adapters import jobs, shopify_write_back
from claims_core.services import background, webhook_endpoints
from views import ui


_retry = ui.settings_act


def _failed_table(items, what: str) -> None:
    tz = ui.store_tz()  # times in the store's zone
    st.dataframe([{"#": i.id, what: i.what, "About": i.detail, "Tries": i.attempts,
                   "Queued": ui.moment(i.at, tz), "Last error": i.last_error} for i in items],
                 hide_index=True, width="stretch")


def show(engine, who) -> None:
    view = background.overview(engine)
    runs = background.job_runs(engine)

    st.subheader("Where the work runs", anchor=False)
    if view.background_in_app:
        st.caption("The web app runs the background jobs itself (CLAIMS_BACKGROUND is on). Any "
                   "number of app instances, workers and cron ticks may run them at once.")
    else:
        st.caption("CLAIMS_BACKGROUND=off: this web app runs no jobs. Run "
                   "`python -m claims_core worker` (or `tick` every minute from cron).")
    c1, c2, c3 = st.columns(3)
    with c1:
        ui.badge("SMTP configured" if view.smtp_configured else "SMTP not configured",
                 view.smtp_configured)
    with c2:
        ui.badge("IMAP configured" if view.imap_configured else "IMAP not configured",
                 view.imap_configured)
    with c3:
        ui.badge("17TRACK configured" if view.track17_configured else "17TRACK not configured",
                 view.track17_configured)

    st.subheader("Jobs", anchor=False)
    rows = []
    tz = ui.store_tz()  # times in the store's zone
    for job in jobs.JOBS:
        r = runs.get(job.name)
        rows.append({"Job": job.name, "Every": f"{job.every:g} s",
                     "Last run": ui.moment(r.last_finished_at, tz) if r else "never",
                     "Last success": ui.moment(r.last_success_at, tz) if r else "—",
                     "Result": (r.last_result if r else ""), "Last error": (r.last_error if r else ""),
                     "Runs": r.runs if r else 0, "Failures": r.failures if r else 0})
    st.dataframe(rows, hide_index=True, width="stretch")

    st.subheader("Queued and failed", anchor=False)
    m1, m2, m3 = st.columns(3)
    m1.metric("Emails queued", view.mail_queued, help=f"{view.mail_failed} failed")
    m2.metric("Shopify writes queued", view.shopify_queued, help=f"{view.shopify_failed} failed")
    m3.metric("Webhook deliveries queued", view.webhooks_queued, help=f"{view.webhooks_failed} failed")

    st.markdown(f"**Failed emails** ({view.mail_failed})")
    if view.failed_mail:
        _failed_table(view.failed_mail, "To")
        pick = st.selectbox("Email to send again", [i.id for i in view.failed_mail], key="bg_mail_pick")
        if st.button("Send this email again", key="bg_mail_retry"):
            _retry(lambda: background.retry_mail(engine, pick, who.actor), "The email is queued again.")
    st.markdown(f"**Failed Shopify writes** ({view.shopify_failed})")
    if view.failed_shopify:
        _failed_table(view.failed_shopify, "Write")
        pick = st.selectbox("Write to retry", [i.id for i in view.failed_shopify], key="bg_shop_pick")
        if st.button("Retry this write", key="bg_shop_retry"):
            _retry(lambda: shopify_write_back.retry_now(engine, pick, who.actor),
                   "The write was sent to Shopify again.")
    st.markdown(f"**Failed webhook deliveries** ({view.webhooks_failed})")
    if view.failed_webhooks:
        _failed_table(view.failed_webhooks, "Endpoint")
        pick = st.selectbox("Delivery to send again", [i.id for i in view.failed_webhooks],
                            key="bg_hook_pick")
        if st.button("Send this delivery again", key="bg_hook_retry"):
            _retry(lambda: webhook_endpoints.replay(engine, pick, who.actor),
                   "The delivery is queued again.")
