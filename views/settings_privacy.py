"""Settings → Privacy (owner): how long personal data is kept (the daily ``retention`` job removes
what is older, with what the next run will remove shown from the job's own queries), and the
privacy notice customers read, per language. Bounds and defaults: ``claims_core/domain/privacy.py``;
the removal: ``claims_core/services/retention.py``."""
from __future__ import annotations

import streamlit as st

from claims_core import domain
from claims_core.domain import privacy
from claims_core.infra import i18n
from claims_core.services import privacy_notice, retention
from views import safe_text, ui

DUE_LABELS = {"photos": ("photo", "photos"), "signatures": ("signature", "signatures"),
              "webhook_payloads": ("stored webhook payload", "stored webhook payloads"),
              "outbox_bodies": ("email body", "email bodies"), "drafts": ("draft", "drafts"),
              "unmatched_mail": ("unmatched or ignored email", "unmatched or ignored emails"),
              "exports": ("prepared data export", "prepared data exports")}


def show(engine, who) -> None:
    st.caption("How long the portal keeps personal data. Once a day the background work removes "
               "what is older (a claim's record — reference, dates, amounts, decision — stays, "
               "and the analytics figures don't change).")
    policy = retention.load_policy(engine)
    with st.form("privacy_retention"):
        values = {}
        for rule in privacy.RETENTION_RULES:
            values[rule.setting] = st.number_input(
                f"{rule.label} ({rule.unit})", min_value=rule.low, max_value=rule.high,
                value=int(policy[rule.setting]), step=1, key=f"privacy_{rule.setting}")
        if st.form_submit_button("Save retention", type="primary"):
            try:
                changed = retention.save_policy(engine, who.actor, {k: int(v) for k, v in values.items()})
            except domain.ClaimRuleError as e:
                st.error(safe_text.inline(e.message))
            else:
                st.session_state["settings_flash"] = "Saved." if changed else "Nothing changed."
                st.rerun()
    due = retention.due_counts(engine)
    if due.total:
        st.info("The next run will remove: " + ", ".join(
            f"{n:,} {DUE_LABELS[k][n != 1]}" for k, n in due.as_dict().items() if n) + ".")
    else:
        st.caption("The next run has nothing to remove.")

    st.subheader("Privacy notice", anchor=False)
    st.caption("Customers read it from every page of the portal and every email: what is kept, "
               "for how long (the periods above) and how to ask for a copy or erasure (your "
               "support email). Write your own to replace it in a language; leave it empty to "
               "use the portal's.")
    codes = list(i18n.LANGUAGES)
    lang = st.selectbox("Language", codes, format_func=i18n.LANGUAGES.get, key="privacy_lang")
    settings = ui.store_settings()
    with st.expander("The portal's notice in this language"):
        for p in privacy_notice.paragraphs_default(settings, i18n.translator(lang)):
            safe_text.show(p)
    with st.form(f"privacy_notice_{lang}"):
        text = st.text_area("Your own notice (paragraphs separated by an empty line)",
                            value=privacy_notice.texts_of(settings).get(lang, ""), height=200,
                            key=f"privacy_text_{lang}")
        if st.form_submit_button("Save notice"):
            try:
                privacy_notice.save_own_text(engine, who.actor, lang, text)
            except domain.ClaimRuleError as e:
                st.error(safe_text.inline(e.message))
            else:
                st.session_state["settings_flash"] = "Saved."
                st.rerun()
