"""Settings → API & webhooks (owner): REST API keys (made, shown once, revoked:
``services.api_keys``) and the outbound webhook endpoints with their recent deliveries (added
through ``adapters.outbound_webhooks``, which checks the address; switched, replayed:
``services.webhook_endpoints``)."""
from __future__ import annotations

import streamlit as st

from claims_core import domain
from claims_core.adapters import outbound_webhooks
from claims_core.domain.webhook_targets import EVENT_TYPES
from claims_core.services import api_keys, webhook_endpoints
from views import safe_text, ui


def _create_key(engine, who) -> None:
    """Callback: the new key is kept for this one page run, to be copied, then forgotten."""
    try:
        view, raw = api_keys.create_key(engine, st.session_state.get("api_key_name", ""),
                                        st.session_state.get("api_key_scope", "read"), who.actor)
    except domain.ClaimRuleError as e:
        st.session_state["api_error"] = e.message
        return
    st.session_state["api_key_name"] = ""
    st.session_state["new_api_key"] = (view.prefix, raw)


def show(engine, who) -> None:
    _keys(engine, who)
    _webhooks(engine, who)


def _keys(engine, who) -> None:
    st.subheader("API keys", anchor=False)
    st.caption("For a help desk, accounting or carrier-claim tool: the REST API at "
               f"{ui.app_url('/api/v1/docs')} (docs/api.md). A read key can list and read claims; "
               "a write key can also file, decide and upload orders.")
    new_key = st.session_state.pop("new_api_key", None)
    if new_key:
        st.success(f"Key {new_key[0]} made. Copy it now: it is not shown again.")
        st.code(new_key[1], language=None)
    with st.form("api_key_form", border=True):
        k1, k2 = st.columns([3, 1])
        k1.text_input("What will use it", key="api_key_name", placeholder="e.g. Gorgias help desk")
        k2.selectbox("Scope", list(api_keys.SCOPES), key="api_key_scope")
        st.form_submit_button("Make a key", type="primary", on_click=_create_key,
                              args=(engine, who))
    api_error = st.session_state.pop("api_error", None)
    if api_error:
        st.error(safe_text.inline(api_error))
    keys = api_keys.list_keys(engine)
    if not keys:
        return
    tz = ui.store_tz()  # times in the store's zone
    st.dataframe([{"Key": k.prefix, "Used by": k.name, "Scope": k.scope,
                   "Made": ui.when(k.created_at, tz),
                   "Last used": ui.moment(k.last_used_at, tz) if k.last_used_at else "never",
                   "State": "revoked" if k.revoked_at else "active"}
                  for k in keys], hide_index=True)
    live = [k for k in keys if k.active]
    if live:
        r1, r2 = st.columns([3, 1], vertical_alignment="bottom")
        pick = r1.selectbox("Revoke a key", live, key="api_revoke_pick",
                            format_func=lambda k: f"{k.prefix} · {k.name}")
        if r2.button("Revoke", key="api_revoke", width="stretch"):
            ui.settings_act(lambda: api_keys.revoke(engine, pick.id, who.actor),
                            f"{pick.prefix} revoked.")


def _webhooks(engine, who) -> None:
    act = ui.settings_act
    st.subheader("Webhooks", anchor=False)
    st.caption("The portal tells your tools when claims change: each delivery is signed per "
               "Standard Webhooks with the endpoint's secret, retried with backoff, and an "
               "endpoint that keeps failing is switched off (owners are emailed).")
    allow = webhook_endpoints.private_targets_allowed(engine)
    allow_new = st.toggle("Allow private and local addresses (a local integration only)",
                          value=allow, key="wh_allow_private")
    if allow_new != allow:  # the switch was flipped
        act(lambda: webhook_endpoints.allow_private_targets(engine, allow_new, who.actor),
            "Saved.")
    with st.form("webhook_form", clear_on_submit=True):
        url = st.text_input("Endpoint address", placeholder="https://hooks.example.com/claims",
                            key="wh_url")
        events = st.multiselect("Events", list(EVENT_TYPES), default=list(EVENT_TYPES),
                                key="wh_events")
        note = st.text_input("Description (optional)", key="wh_note")
        if st.form_submit_button("Add endpoint", type="primary"):
            act(lambda: outbound_webhooks.add_endpoint(engine, url, events, who.actor,
                                                       description=note),
                "Endpoint added; copy its signing secret below into the receiving tool.")
    for ep in webhook_endpoints.list_endpoints(engine):
        with st.container(border=True, key=f"endpoint_{ep.id}"):
            safe_text.show(ep.url)
            ui.badge("active" if ep.active else "off", ep.active)
            st.caption("Events: " + ", ".join(ep.events))
            if ep.description:
                safe_text.show(ep.description)
            if ep.disabled_reason:
                safe_text.show(ep.disabled_reason)
            with st.expander("Signing secret"):
                st.code(ep.secret, language=None)
            if st.button("Switch off" if ep.active else "Switch on", key=f"endpoint_toggle_{ep.id}"):
                act(lambda ep=ep: webhook_endpoints.set_active(engine, ep.id, not ep.active,
                                                               who.actor), "Endpoint saved.")
    log = webhook_endpoints.deliveries(engine, limit=50)
    if not log:
        return
    st.markdown("**Recent deliveries**")
    tz = ui.store_tz()  # times in the store's zone
    st.dataframe([{"#": d.id, "Event": d.event_type, "Endpoint": d.endpoint_id,
                   "Status": d.status, "Tries": d.attempts, "HTTP": d.last_status_code,
                   "Error": d.last_error, "Queued": ui.moment(d.created_at, tz)}
                  for d in log], hide_index=True)
    p1, p2 = st.columns([3, 1], vertical_alignment="bottom")
    again = p1.selectbox("Send a delivery again", log, key="wh_replay_pick",
                         format_func=lambda d: f"#{d.id} · {d.event_type} · {d.status}")
    if p2.button("Replay", key="wh_replay", width="stretch"):
        act(lambda: webhook_endpoints.replay(engine, again.id, who.actor),
            f"Delivery #{again.id} queued again.")
