"""Owner settings: claim rules, branding, staff accounts, imports."""
from __future__ import annotations

import streamlit as st

from claims_core import domain
from claims_core.adapters import importer, outbound_webhooks, shop_connection
from claims_core.domain.auto_approval import GRANTABLE, RuleSpec
from claims_core.services import accounts, api_keys, auto_approval, shop_sync, webhook_endpoints
from claims_core.domain.webhook_targets import EVENT_TYPES
from claims_core.infra import i18n
from claims_core.services import settings as store_settings
from views import safe_text, settings_background, settings_email_link, settings_live_feeds, ui
from views import settings_customer_data, settings_unmatched_mail
from views import settings_privacy, settings_recoveries, settings_shopify_requests

st.set_page_config(layout="wide")
who = ui.require("settings")
engine = ui.get_engine()
settings = ui.store_settings()

st.title("Settings", anchor=False)
flash = st.session_state.pop("settings_flash", None)
if flash:
    st.success(flash)

rules_tab, auto_tab, brand_tab, lang_tab, staff_tab, import_tab, shopify_tab, api_tab, link_tab, bg_tab, mail_tab, data_tab, privacy_tab, recoveries_tab = st.tabs(
    ["Claim rules", "Automation", "Branding", "Languages & currency", "Staff", "Imports",
     "Shopify & tracking", "API & webhooks", "Email link", "Background work", "Unmatched mail",
     "Customer data", "Privacy", "Recoveries"])
with recoveries_tab:  # which approved claims open a carrier claim: its own module
    settings_recoveries.show(engine, who)
with data_tab:  # a customer's personal data: export and erasure, its own module
    settings_customer_data.show(engine, who)
    settings_shopify_requests.show(engine, who)  # Shopify's data requests and erasures
with privacy_tab:  # retention periods and the privacy notice: its own module
    settings_privacy.show(engine, who)
with mail_tab:  # customers' emails not tied to a claim: its own module
    settings_unmatched_mail.show(engine, who)
with link_tab:  # the signed order link for the shop's emails: its own module
    settings_email_link.show(engine, who)
with bg_tab:  # the background jobs, queues and retries: its own module
    settings_background.show(engine, who)


act = ui.settings_act  # one owner action: refused with why, or done and shown again


def save(changes: dict, what: str) -> None:
    act(lambda: store_settings.update_settings(engine, who.actor, changes),
        lambda changed: f"{what} saved." if changed else "Nothing changed.")


with rules_tab:
    with st.form("rules_form"):
        c1, c2, c3 = st.columns(3)
        window = c1.number_input("Filing window (days after fulfilment)", 1, 3650,
                                 settings.filing_window_days, key="s_window")
        lost = c2.number_input("Days without a tracking scan before “lost”", 0, 365,
                               settings.lost_wait_days, key="s_lost")
        target = c3.number_input("Response target (hours)", 1, 720, settings.response_target_hours,
                                 key="s_target")
        st.markdown("**Resolutions offered to customers**")
        r1, r2, r3, r4 = st.columns(4)
        refund = r1.checkbox("Refund", settings.offer_refund, key="s_refund")
        reship = r2.checkbox("Reshipment", settings.offer_reshipment, key="s_reship")
        credit = r3.checkbox("Store credit", settings.offer_store_credit, key="s_credit")
        bonus = r4.number_input("Store-credit bonus (%)", 0, 100, settings.store_credit_bonus_pct,
                                key="s_bonus")
        p1, p2, p3 = st.columns(3)
        photos = p1.number_input("Photos per claim", 1, 20, settings.max_photos, key="s_photos")
        photo_mb = p2.number_input("Photo size limit (MB)", 1, 20,
                                   settings.max_photo_bytes // domain.MEGABYTE, key="s_photo_mb")
        threshold_cents = ui.amount_input(
            p3, "Drawn signature required above order value", settings.currency,
            settings.signature_threshold_cents, store_settings.RANGES["signature_threshold_cents"][1],
            key="s_threshold", step=50.0)
        pattern = st.text_input("Protection line in imports (pattern on the line's name or SKU)",
                                settings.protection_pattern, key="s_pattern")
        w1, w2, w3 = st.columns(3)
        remind = w1.number_input("Remind a customer we're waiting on after (days)", 1, 60,
                                 settings.reminder_after_days, key="s_remind")
        close_days = w2.number_input("…and close the claim after (days)", 2, 120,
                                     settings.close_after_days, key="s_close")
        digest_hour = w3.number_input("Daily digest to staff at (hour, store time)", 0, 23,
                                      settings.digest_hour, key="s_digest_hour")
        l1, l2 = st.columns(2)
        misses = l1.number_input("Order lookups: misses allowed", 3, 100, settings.lookup_max_misses,
                                 key="s_misses")
        minutes = l2.number_input("…within (minutes)", 1, 1440, settings.lookup_window_minutes,
                                  key="s_minutes")
        st.markdown("**Pricing advisor** (Analytics → Is my protection priced right?)")
        a1, a2, a3, a4 = st.columns(4)
        target_lr = a1.number_input("Target loss ratio (%)", 1, 200, settings.target_loss_ratio_pct,
                                    key="s_target_lr", help="Claims cost as a share of protection "
                                    "fees you aim for; the rest pays for handling and margin.")
        credit_cost = a2.number_input("Store credit costs you (% of face value)", 0, 100,
                                      settings.credit_cost_pct, key="s_credit_cost")
        reship_cost = a3.number_input("Cost of goods (% of item price)", 0, 100,
                                      settings.reship_cost_pct, key="s_reship_cost")
        reship_ship_cents = ui.amount_input(
            a4, "Shipping a replacement", settings.currency, settings.reship_shipping_cents,
            store_settings.RANGES["reship_shipping_cents"][1], key="s_reship_ship")
        if st.form_submit_button("Save claim rules", type="primary"):
            save({"filing_window_days": int(window), "lost_wait_days": int(lost),
                  "response_target_hours": int(target), "offer_refund": refund,
                  "offer_reshipment": reship, "offer_store_credit": credit,
                  "store_credit_bonus_pct": int(bonus), "max_photos": int(photos),
                  "max_photo_bytes": int(photo_mb) * domain.MEGABYTE,
                  "signature_threshold_cents": threshold_cents, "protection_pattern": pattern,
                  "lookup_max_misses": int(misses), "lookup_window_minutes": int(minutes),
                  "reminder_after_days": int(remind), "close_after_days": int(close_days),
                  "digest_hour": int(digest_hour),
                  "target_loss_ratio_pct": int(target_lr), "credit_cost_pct": int(credit_cost),
                  "reship_cost_pct": int(reship_cost),
                  "reship_shipping_cents": reship_ship_cents},
                 "Claim rules")

with auto_tab:
    st.markdown("**Auto-approve rules**, tried in order when a claim is filed. A claim is approved "
                "with the customer's choice when it is under the amount, of a covered issue type, "
                "has photos where the issue needs them, and its email filed no other claim in the "
                "quiet period. Staff can undo an automatic approval from the claim.")
    for rid, active, spec in auto_approval.list_rules(engine):
        r1, r2 = st.columns([4, 1], vertical_alignment="center")
        r1.markdown(f"**{safe_text.inline(spec.name)}** · under {ui.money(spec.max_cents, settings.currency)} · "
                    f"{', '.join(domain.ISSUE_TYPES[t].label for t in spec.issue_types) or 'any issue'} · "
                    f"grants {', '.join(domain.RESOLUTION_LABELS[x].lower() for x in spec.resolutions)}"
                    + (f" · no claim in {spec.quiet_months} months" if spec.quiet_months else "")
                    + ("" if active else " · *off*"))
        if r2.button("Turn off" if active else "Turn on", key=f"rule_{rid}", width="stretch"):
            auto_approval.set_rule_active(engine, who.actor, rid, not active)
            st.rerun()
    with st.form("new_rule", clear_on_submit=True):
        st.markdown("**New rule**")
        n1, n2, n3 = st.columns(3)
        rname = n1.text_input("Name", key="r_name")
        rmax = n2.number_input(f"Approve claims under ({settings.currency})", 1.0, 100_000_000.0,
                               50.0, key="r_max")
        rquiet = n3.number_input("No other claim from the email in (months, 0 = don't check)",
                                 0, 120, 12, key="r_quiet")
        rtypes = st.multiselect("Issue types (none = any)", list(domain.ISSUE_TYPES), key="r_types",
                                format_func=lambda t: domain.ISSUE_TYPES[t].label)
        rres = st.multiselect("Resolutions it grants", list(GRANTABLE),
                              default=list(GRANTABLE), key="r_res",
                              format_func=domain.RESOLUTION_LABELS.get)
        rphotos = st.checkbox("Require photos where the issue needs them", True, key="r_photos")
        if st.form_submit_button("Add rule"):
            act(lambda: auto_approval.save_rule(engine, who.actor, RuleSpec(
                rname, domain.minor_from_amount(rmax, settings.currency), tuple(rtypes), tuple(rres), rphotos,
                int(rquiet) or None)), f"Rule “{rname}” added.")

with brand_tab:
    with st.form("brand_form"):
        name = st.text_input("Store name", settings.name, key="s_name")
        b1, b2, b3 = st.columns(3)
        color = b1.color_picker("Accent colour", settings.accent_color, key="s_color")
        support = b2.text_input("Support email", settings.support_email, key="s_support")
        tz = b3.text_input("Time zone", settings.timezone, key="s_tz",
                           help="IANA name, e.g. America/New_York. Filing deadlines count in it.")
        intro = st.text_area("Portal intro text", settings.intro_text, key="s_intro")
        if st.form_submit_button("Save branding", type="primary"):
            save({"name": name, "accent_color": color, "support_email": support, "timezone": tz,
                  "intro_text": intro}, "Branding")
    st.markdown("**Logo**")
    if settings.logo_png:
        st.image(settings.logo_png, width=96, alt="Current logo")
    logo = ui.file_picker("Upload a logo (PNG, JPEG or WebP, under 1 MB)",
                          ["png", "jpg", "jpeg", "webp"], key="s_logo")
    l1, l2 = st.columns(2)
    if l1.button("Use this logo", disabled=logo is None, key="s_logo_save"):
        act(lambda: store_settings.set_logo(engine, who.actor, logo[1]), "Logo saved.")
    if settings.logo_png and l2.button("Remove logo", key="s_logo_rm"):
        store_settings.set_logo(engine, who.actor, None)
        st.rerun()

with lang_tab:
    st.caption("Customers read the portal and their emails in English, Spanish, French or German: "
               "the language of their browser, or the one they pick on the page (and the claim "
               "keeps it for every later email). Your own texts can be written in each language; "
               "a language without them shows the default language's.")
    with st.form("language_form"):
        g1, g2 = st.columns(2)
        codes = list(i18n.LANGUAGES)
        default_lang = g1.selectbox("Default language", codes,
                                    index=codes.index(settings.default_language
                                                      if settings.default_language in codes else "en"),
                                    format_func=i18n.LANGUAGES.get, key="s_default_lang",
                                    help="For a browser that asks for a language the portal doesn't speak.")
        currency = g2.text_input("Store currency (ISO 4217)", settings.currency, max_chars=3,
                                 key="s_currency", help="USD, EUR, GBP, JPY… Amounts are kept in its "
                                 "own smallest unit (cents; yen have none). Changing it doesn't "
                                 "convert amounts already recorded.")
        if st.form_submit_button("Save language and currency", type="primary"):
            save({"default_language": default_lang, "currency": currency}, "Language and currency")
    texts = store_settings.texts_of(settings)
    edit_lang = st.radio("Your texts in", codes, horizontal=True, format_func=i18n.LANGUAGES.get,
                         key="s_texts_lang")
    mine = texts.get(edit_lang, {})
    with st.form(f"texts_{edit_lang}"):
        intro_t = st.text_area("Portal intro", mine.get("intro", ""), key=f"s_intro_{edit_lang}",
                               help="Shown above the order look-up.")
        policy_t = st.text_area("Protection policy", mine.get("policy", ""),
                                key=f"s_policy_{edit_lang}", help="Shown on the order page, "
                                "before a customer starts a claim.")
        note_t = st.text_area("Support note", mine.get("support_note", ""),
                              key=f"s_note_{edit_lang}", help="Shown when a claim is filed and on "
                              "the claim page, e.g. opening hours.")
        if st.form_submit_button(f"Save {i18n.LANGUAGES[edit_lang]} texts"):
            act(lambda: store_settings.save_store_texts(engine, who.actor, edit_lang, {
                "intro": intro_t, "policy": policy_t, "support_note": note_t}),
                lambda changed: f"{i18n.LANGUAGES[edit_lang]} texts saved." if changed
                else "Nothing changed.")

with staff_tab:
    users = accounts.list_users(engine)
    st.dataframe([{"Username": u.username, "Name": u.display_name, "Role": u.role,
                   "Active": u.active, "Locked": u.locked} for u in users], hide_index=True)
    with st.form("add_user", clear_on_submit=True):
        st.markdown("**Add a staff member**")
        u1, u2, u3 = st.columns(3)
        new_name = u1.text_input("Username", key="s_new_user")
        new_display = u2.text_input("Display name", key="s_new_display")
        new_role = u3.selectbox("Role", accounts.ROLES, index=1, key="s_new_role",
                                format_func=lambda r: {"owner": "Owner (everything)",
                                                       "agent": "Agent (work claims)",
                                                       "analyst": "Analyst (read-only analytics)"}[r])
        pw = st.text_input("Password (at least 10 characters)", type="password", key="s_new_pw")
        if st.form_submit_button("Add user"):
            act(lambda: accounts.add_user(engine, new_name, new_role, pw, new_display, actor=who.actor),
                f"Added {new_name}.")
    with st.form("notify_user"):
        st.markdown("**Email notifications for a staff member**")
        e1, e2 = st.columns(2)
        ntarget = e1.selectbox("User", [u.username for u in users], key="s_notify_user")
        nemail = e2.text_input("Their email", key="s_notify_email")
        nc1, nc2 = st.columns(2)
        new_claims = nc1.checkbox("A mail for each new claim", key="s_notify_new")
        digest = nc2.checkbox("A daily digest", key="s_notify_digest")
        if st.form_submit_button("Save notifications"):
            act(lambda: accounts.set_notifications(engine, ntarget, nemail, new_claims, digest,
                                               actor=who.actor),
                f"Notifications for {ntarget} saved.")
    with st.form("manage_user"):
        st.markdown("**Change a password, or (de)activate**")
        m1, m2 = st.columns(2)
        target = m1.selectbox("User", [u.username for u in users], key="s_target_user")
        new_pw = m2.text_input("New password (leave empty to keep)", type="password", key="s_pw2")
        a1, a2, a3 = st.columns(3)
        do_pw = a1.form_submit_button("Set password")
        do_off = a2.form_submit_button("Deactivate")
        do_on = a3.form_submit_button("Activate")
        if do_pw or do_off or do_on:
            act(lambda: accounts.change_password(engine, target, new_pw, actor=who.actor) if do_pw
                else accounts.set_active(engine, target, bool(do_on), actor=who.actor),
                f"{target} updated.")

with import_tab:
    kinds = {"orders": ("Shopify orders export", importer.import_orders),
             "shipments": ("Shipments CSV", importer.import_shipments),
             "stock": ("Stock CSV (sku,on_hand)", importer.import_stock)}
    kind = st.radio("What are you importing?", list(kinds), horizontal=True, key="s_import_kind",
                    format_func=lambda k: kinds[k][0])
    upload = ui.file_picker("CSV file", ["csv"], key=f"s_import_{kind}")
    if upload is not None:
        upload_name, data = upload
        fn = kinds[kind][1]
        try:
            preview = fn(engine, data, preview=True)
        except importer.ImportFileError as e:
            st.error(f"{upload_name}: {e.message} Nothing was imported.")
        else:
            st.markdown(f"**Preview:** {preview.summary()}")
            if preview.skipped_rows:
                st.warning(f"{len(preview.skipped_rows)} rows will be skipped:")
                st.dataframe([{"Line": e.line, "Problem": e.reason} for e in preview.skipped_rows],
                             hide_index=True)
            for note in preview.notes:
                st.caption(note)
            if st.button(f"Import {upload_name}", type="primary", key="s_import_go"):
                bar = st.progress(0.0, text="Importing…")
                kwargs = {"progress": lambda x: bar.progress(x, text="Importing…")} \
                    if kind == "orders" else {}
                try:
                    report = fn(engine, data, **kwargs)
                except importer.ImportFileError as e:
                    st.error(e.message)
                else:
                    bar.progress(1.0, text="Done")
                    st.success(report.summary())
                    if report.skipped_rows:
                        st.download_button(
                            "Download the skipped rows", domain.write_csv(
                                ["line", "reason"],
                                [(e.line, e.reason) for e in report.skipped_rows]),
                            file_name="skipped-rows.csv", mime="text/csv", key="s_import_err")

def save_shopify(remove: bool = False) -> None:
    """The Shopify form's callback: the typed token is taken out of the page's state at once,
    whatever happens, so it is never sent back to the browser."""
    token = st.session_state.get("shopify_token", "")
    st.session_state["shopify_token"] = ""
    try:
        shop_sync.save_connection(engine, who.actor, st.session_state.get("shopify_domain", ""),
                                  None if remove else token, remove_token=remove)
    except domain.ClaimRuleError as e:
        st.session_state["shopify_error"] = e.message
        return
    st.session_state["settings_flash"] = ("Token removed: decisions stay in the portal." if remove
                                          else "Shopify connection saved.")


with shopify_tab:
    conn = shop_sync.connection(engine)
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
        c1.form_submit_button("Save", type="primary", width="stretch", on_click=save_shopify)
        if conn.token_configured:
            c2.form_submit_button("Remove the token", width="stretch", on_click=save_shopify,
                                  args=(True,))
    shopify_error = st.session_state.pop("shopify_error", None)
    if shopify_error:
        st.error(safe_text.inline(shopify_error))
    if conn.active and st.button("Check the connection", key="shopify_check"):
        ok, message = shop_connection.check(engine)
        (st.success if ok else st.error)(safe_text.inline(message))
    failed = shop_sync.failed_writes(engine)
    if failed:
        st.warning(f"{len(failed)} decisions didn't reach Shopify. Open the claim to see why and "
                   "retry.")
        for ref, cid, w in failed[:20]:
            st.page_link("views/staff/claim.py", label=f"{ref} · {w.label}",
                         query_params={"id": str(cid)}, icon=":material/error:")

    st.subheader("Live feeds (webhooks)", anchor=False)
    st.caption("Point Shopify, 17TRACK and EasyPost at these addresses. Each is switched on by its "
               "secret in the server's environment or .streamlit/secrets.toml.")
    for path, secret_name, what in shop_connection.FEEDS:
        on = shop_connection.feed_configured(secret_name)
        st.markdown(f"**{what}** · `{ui.app_url(path)}`")
        ui.badge(f"{secret_name}: {'set' if on else 'not set'}", on)
    settings_live_feeds.show(engine)  # receipts not applied; numbers 17TRACK refused


def create_api_key() -> None:
    """Callback: the new key is kept for this one page run, to be copied, then forgotten."""
    try:
        view, raw = api_keys.create_key(engine, st.session_state.get("api_key_name", ""),
                                        st.session_state.get("api_key_scope", "read"), who.actor)
    except domain.ClaimRuleError as e:
        st.session_state["api_error"] = e.message
        return
    st.session_state["api_key_name"] = ""
    st.session_state["new_api_key"] = (view.prefix, raw)


with api_tab:
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
        k2.selectbox("Scope", ["read", "write"], key="api_key_scope")
        st.form_submit_button("Make a key", type="primary", on_click=create_api_key)
    api_error = st.session_state.pop("api_error", None)
    if api_error:
        st.error(safe_text.inline(api_error))
    keys = api_keys.list_keys(engine)
    if keys:
        tz = ui.store_tz()  # times in the store's zone
        st.dataframe([{"Key": k.prefix, "Used by": k.name, "Scope": k.scope,
                       "Made": ui.when(k.created_at, tz),
                       "Last used": ui.moment(k.last_used_at, tz) if k.last_used_at
                       else "never", "State": "revoked" if k.revoked_at else "active"}
                      for k in keys], hide_index=True)
        live = [k for k in keys if k.active]
        if live:
            r1, r2 = st.columns([3, 1], vertical_alignment="bottom")
            pick = r1.selectbox("Revoke a key", live, key="api_revoke_pick",
                                format_func=lambda k: f"{k.prefix} · {k.name}")
            if r2.button("Revoke", key="api_revoke", width="stretch"):
                act(lambda: api_keys.revoke(engine, pick.id, who.actor), f"{pick.prefix} revoked.")

    st.subheader("Webhooks", anchor=False)
    st.caption("The portal tells your tools when claims change: each delivery is signed per "
               "Standard Webhooks with the endpoint's secret, retried with backoff, and an "
               "endpoint that keeps failing is switched off (owners are emailed).")
    allow = webhook_endpoints.private_targets_allowed(engine)
    allow_new = st.toggle("Allow private and local addresses (a local integration only)",
                          value=allow, key="wh_allow_private")
    if allow_new != allow:
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
    if log:
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
