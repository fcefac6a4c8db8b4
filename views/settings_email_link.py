"""Settings → Email link: the signed order link for the shop's own emails (issue #28).

The owner sees the secret once (or again after rotating it), a ready-to-paste block for Shopify's
*Shipping confirmation* template, a plain HTML button for other platforms, and can send
themselves a test link. The rule is ``claims_core.domain.order_link``."""
from __future__ import annotations

import streamlit as st

from claims_core import domain
from claims_core.domain import order_link
from claims_core.services import order_links
from views import safe_text, ui

SHOWN_KEY = "email_link_secret"  # the secret, kept for this session only after it was shown


def show(engine, who) -> None:
    st.markdown(
        "A **Track your order** button in your shipping email can open the customer's order in "
        "the claims portal directly, without typing the order number and email. The link carries "
        "the order number, the email and a signature only your store can make: "
        "`/?order=5001&email=jamie%40example.com&sig=…`, where `sig` is the hex HMAC-SHA256 of "
        "`ORDER|EMAIL` (order number without `#` and spaces, upper case; email trimmed, lower "
        "case) keyed with the secret below — what Liquid's `hmac_sha256` filter computes. A link "
        "for another order, or with another email, doesn't open anything: it only fills in the "
        "look-up form.")
    shown = st.session_state.get(SHOWN_KEY)
    if shown is None:
        status = order_links_status(engine)
        if status.shown_before:
            st.info("The secret was shown once already and isn't shown again. If you no longer "
                    "have it, rotate it to get a new one (and paste the new snippet)."
                    + (f" Last rotated {ui.when(status.rotated_at)}." if status.rotated_at else ""))
        elif st.button("Show the secret and the snippet", type="primary", key="email_link_show"):
            _reveal(engine, who)
    if shown is not None:
        st.warning("Copy the secret now: it is shown only this once. Anyone with it can make "
                   "links that open your customers' orders.")
        st.code(shown["secret"], language=None)
        portal = shown["portal_url"]
        st.markdown("**Shopify** · Settings → Notifications → Customer notifications → "
                    "*Shipping confirmation* → Edit code. Paste this where the button should be:")
        st.code(order_link.liquid_snippet(portal, shown["secret"]), language="liquid",
                wrap_lines=True)
        st.markdown("**Another platform** · compute `sig` = HMAC-SHA256 (hex, lower case) of "
                    "`ORDER|EMAIL` with the secret, and put this button in the email:")
        st.code(order_link.html_button(
            f"{portal}/?order={{ORDER}}&email={{EMAIL_URL_ENCODED}}&sig={{SIG}}"),
            language="html", wrap_lines=True)
    st.divider()
    st.markdown("**Rotate the secret** · makes a new one. Every link made with the old secret — "
                "in emails already sent, and the app's own emails — stops opening orders at once "
                "(it only fills in the look-up form); paste the new snippet into your templates.")
    if st.button("Rotate the secret", key="email_link_rotate"):
        try:
            secret = order_links.rotate_secret(engine, who.actor)
        except domain.ClaimRuleError as e:
            st.error(safe_text.inline(e.message))
        else:
            _keep(secret)
            st.rerun()
    st.divider()
    st.markdown("**Send me a test link** · an email to you (through the outbox) with the link of "
                "an order, to open on your phone.")
    with st.form("email_link_test", border=False):
        number = st.text_input("Order number (empty: the newest order)", key="email_link_order")
        if st.form_submit_button("Send me a test link"):
            try:
                to = order_links.send_test_link(engine, who.id, number)
            except domain.ClaimRuleError as e:
                st.error(safe_text.inline(e.message))
            else:
                st.success(f"A test link is on its way to {safe_text.inline(to)} (see Outbox).")


def order_links_status(engine) -> order_links.LinkSecret:
    return order_links.status(engine)


def _reveal(engine, who) -> None:
    try:
        secret = order_links.secret_for_owner(engine, who.actor)
    except domain.ClaimRuleError as e:
        st.error(safe_text.inline(e.message))
        return
    if secret.secret:
        _keep(secret)
    st.rerun()


def _keep(secret: order_links.LinkSecret) -> None:
    st.session_state[SHOWN_KEY] = {"secret": secret.secret, "portal_url": secret.portal_url}
