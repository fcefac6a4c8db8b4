"""Settings → Shopify & tracking (owner): the Shopify connection that writes decisions back
(``services.shopify_connection``), a check of it (``adapters.shopify_connection``), the writes
that didn't reach Shopify, and the live feeds' addresses with what they couldn't apply
(``views/settings_live_feeds.py``)."""
from __future__ import annotations

import streamlit as st

from claims_core import domain
from claims_core.adapters import shopify_connection as shop_check
from claims_core.services import shopify_connection, shopify_write_back
from views import safe_text, settings_live_feeds, ui


def _save(engine, who, remove: bool, done: str) -> None:
    """The Shopify form's callback: the typed token is taken out of the page's state at once,
    whatever happens, so it is never sent back to the browser."""
    token = st.session_state.get("shopify_token", "")
    st.session_state["shopify_token"] = ""
    try:
        shopify_connection.save_connection(engine, who.actor,
                                           st.session_state.get("shopify_domain", ""),
                                           None if remove else token, remove_token=remove)
    except domain.ClaimRuleError as e:
        st.session_state["shopify_error"] = e.message
        return
    st.session_state["settings_flash"] = done


def show(engine, who) -> None:
    conn = shopify_connection.connection(engine)
    st.subheader("Write decisions back to Shopify", anchor=False)
    st.caption("With a shop domain and an Admin API access token (a custom app with write_orders, "
               "write_gift_cards and write_draft_orders), approved refunds become Shopify refunds, "
               "store credit becomes a gift card with the customer's code, and a reshipment a "
               "zero-priced order. Without them, decisions stay in the portal.")
    ui.badge("Connected" if conn.active else "Not connected", conn.active)
    with st.form("shopify_form"):
        st.text_input("Shop domain", value=conn.shop_domain, placeholder="my-shop.myshopify.com",
                      key="shopify_domain")
        st.text_input("Admin API access token", type="password", key="shopify_token",
                      placeholder="configured · leave empty to keep it" if conn.token_configured
                      else "shpat_…")
        c1, c2 = st.columns(2)
        c1.form_submit_button("Save", type="primary", width="stretch", on_click=_save,
                              args=(engine, who, False, "Shopify connection saved."))
        if conn.token_configured:
            c2.form_submit_button("Remove the token", width="stretch", on_click=_save,
                                  args=(engine, who, True,
                                        "Token removed: decisions stay in the portal."))
    shopify_error = st.session_state.pop("shopify_error", None)
    if shopify_error:
        st.error(safe_text.inline(shopify_error))
    if conn.active and st.button("Check the connection", key="shopify_check"):
        ok, message = shop_check.check(engine)
        (st.success if ok else st.error)(safe_text.inline(message))
    failed = shopify_write_back.failed_writes(engine)
    if failed:
        st.warning(f"{len(failed)} decisions didn't reach Shopify. Open the claim to see why and "
                   "retry.")
        for ref, cid, w in failed[:20]:
            st.page_link("views/staff/claim.py", label=f"{ref} · {w.label}",
                         query_params={"id": str(cid)}, icon=":material/error:")

    st.subheader("Live feeds (webhooks)", anchor=False)
    st.caption("Point Shopify, 17TRACK and EasyPost at these addresses. Each is switched on by its "
               "secret in the server's environment or .streamlit/secrets.toml.")
    for path, secret_name, what in shop_check.FEEDS:
        on = shop_check.feed_configured(secret_name)
        st.markdown(f"**{what}** · `{ui.app_url(path)}`")
        ui.badge(f"{secret_name}: {'set' if on else 'not set'}", on)
    settings_live_feeds.show(engine)  # receipts not applied; numbers 17TRACK refused
