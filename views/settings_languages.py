"""Settings → Languages & currency (owner): the default language and the store's currency, and
the store's own texts (intro, policy, support note) in each language the portal speaks
(``services.settings.update_settings`` / ``save_store_texts``)."""
from __future__ import annotations

import streamlit as st

from claims_core.infra import i18n
from claims_core.services import settings as store_settings
from views import settings_form as form
from views import ui


def show(engine, who) -> None:
    settings = ui.store_settings()
    st.caption("Customers read the portal and their emails in English, Spanish, French or German: "
               "the language of their browser, or the one they pick on the page (and the claim "
               "keeps it for every later email). Your own texts can be written in each language; "
               "a language without them shows the default language's.")
    codes = list(i18n.LANGUAGES)
    with st.form("language_form"):
        g1, g2 = st.columns(2)
        default_lang = g1.selectbox(
            "Default language", codes, index=codes.index(settings.default_language if settings.default_language in codes
                              else i18n.DEFAULT),
            format_func=i18n.LANGUAGES.get, key="s_default_lang",
            help="For a browser that asks for a language the portal doesn't speak.")
        currency = g2.text_input("Store currency (ISO 4217)", settings.currency, max_chars=3,
                                 key="s_currency", help="USD, EUR, GBP, JPY… Amounts are kept in its "
                                 "own smallest unit (cents; yen have none). Changing it doesn't "
                                 "convert amounts already recorded.")
        if st.form_submit_button("Save language and currency", type="primary"):
            form.save(engine, who, {"default_language": default_lang, "currency": currency},
                      "Language and currency")
    texts = store_settings.texts_of(settings)
    edit_lang = st.radio("Your texts in", codes, horizontal=True, format_func=i18n.LANGUAGES.get,
                         key="s_texts_lang")
    mine = texts.get(edit_lang, {})
    language = i18n.LANGUAGES[edit_lang]
    with st.form(f"texts_{edit_lang}"):
        intro = st.text_area("Portal intro", mine.get("intro", ""), key=f"s_intro_{edit_lang}",
                             help="Shown above the order look-up.")
        policy = st.text_area("Protection policy", mine.get("policy", ""),
                              key=f"s_policy_{edit_lang}", help="Shown on the order page, "
                              "before a customer starts a claim.")
        note = st.text_area("Support note", mine.get("support_note", ""),
                            key=f"s_note_{edit_lang}", help="Shown when a claim is filed and on "
                            "the claim page, e.g. opening hours.")
        if st.form_submit_button(f"Save {language} texts"):
            ui.settings_act(lambda: store_settings.save_store_texts(
                engine, who.actor, edit_lang, {"intro": intro, "policy": policy,
                                               "support_note": note}),
                lambda changed: f"{language} texts saved." if changed else "Nothing changed.")
