"""Owner settings: a router. The sections are grouped under a few tabs (a phone shows them
without scrolling far sideways); each section is one module ``views/settings_<section>.py`` with
``show(engine, who)``, which reads its widgets and calls one service per action."""
from __future__ import annotations

import streamlit as st

from views import (settings_api, settings_automation, settings_background, settings_branding,
                   settings_claim_rules, settings_customer_data, settings_email_link,
                   settings_imports, settings_languages, settings_privacy, settings_recoveries,
                   settings_shopify, settings_shopify_requests, settings_staff,
                   settings_unmatched_mail, ui)


def _customer_data(engine, who) -> None:
    settings_customer_data.show(engine, who)  # a customer's data: export and erasure
    settings_shopify_requests.show(engine, who)  # Shopify's data requests and erasures


# (tab, ((section, its page), …)): a tab with one section shows it without a second row of tabs
SECTIONS = (
    ("Claims", (("Claim rules", settings_claim_rules.show), ("Automation", settings_automation.show),
                ("Recoveries", settings_recoveries.show))),
    ("Store", (("Branding", settings_branding.show),
               ("Languages & currency", settings_languages.show))),
    ("Staff", (("Staff", settings_staff.show),)),
    ("Email", (("Email link", settings_email_link.show),
               ("Unmatched mail", settings_unmatched_mail.show))),
    ("Integrations", (("Imports", settings_imports.show), ("Shopify & tracking", settings_shopify.show),
                      ("API & webhooks", settings_api.show),
                      ("Background work", settings_background.show))),
    ("Data", (("Customer data", _customer_data), ("Privacy", settings_privacy.show))),
)

st.set_page_config(layout="wide")
who = ui.require("settings")
engine = ui.get_engine()

st.title("Settings", anchor=False)
flash = st.session_state.pop("settings_flash", None)
if flash:
    st.success(flash)

for (_tab, sections), tab in zip(SECTIONS, st.tabs([name for name, _ in SECTIONS])):
    with tab:
        if len(sections) == 1:
            sections[0][1](engine, who)
            continue
        for (_name, show), sub in zip(sections, st.tabs([name for name, _ in sections])):
            with sub:
                show(engine, who)
