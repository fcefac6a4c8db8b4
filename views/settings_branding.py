"""Settings → Branding (owner): the store's name, accent colour, support email, time zone, the
portal's intro text and the logo (``services.settings``)."""
from __future__ import annotations

import streamlit as st

from claims_core import domain
from claims_core.services import settings as store_settings
from views import settings_form as form
from views import ui

LOGO_TYPES = ["png", "jpg", "jpeg", "webp"]


def show(engine, who) -> None:
    settings = ui.store_settings()
    with st.form("brand_form"):
        name = st.text_input("Store name", settings.name, key="s_name")
        b1, b2, b3 = st.columns(3)
        color = b1.color_picker("Accent colour", settings.accent_color, key="s_color")
        support = b2.text_input("Support email", settings.support_email, key="s_support")
        tz = b3.text_input("Time zone", settings.timezone, key="s_tz",
                           help="IANA name, e.g. America/New_York. Filing deadlines count in it.")
        intro = st.text_area("Portal intro text", settings.intro_text, key="s_intro")
        if st.form_submit_button("Save branding", type="primary"):
            form.save(engine, who, {"name": name, "accent_color": color, "support_email": support,
                                    "timezone": tz, "intro_text": intro}, "Branding")
    st.markdown("**Logo**")
    if settings.logo_png:
        st.image(settings.logo_png, width=96, alt="Current logo")
    logo = ui.file_picker(f"Upload a logo (PNG, JPEG or WebP, under "
                          f"{store_settings.MAX_LOGO_BYTES // domain.MEGABYTE} MB)",
                          LOGO_TYPES, key="s_logo")
    l1, l2 = st.columns(2)
    if l1.button("Use this logo", disabled=logo is None, key="s_logo_save"):
        ui.settings_act(lambda: store_settings.set_logo(engine, who.actor, logo[1]), "Logo saved.")
    if settings.logo_png and l2.button("Remove logo", key="s_logo_rm"):
        ui.settings_act(lambda: store_settings.set_logo(engine, who.actor, None), "Logo removed.")
