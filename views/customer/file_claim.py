"""File a claim: find the order, say what went wrong, choose a resolution, check and sign.

Built for a phone: a shipment is chosen by its own button, tapping what went wrong moves on, the
first resolution the store offers is already chosen, and the claim is signed on the page that
shows it (a damaged item with two photos and a drawn signature takes 12 taps and entries; 9 from
the signed order link in the shop's emails, which opens the order without the look-up)."""
from __future__ import annotations

import html
import json
import uuid

import streamlit as st

from claims_core import domain
from claims_core.domain import order_link
from claims_core.domain.messages import N_, Amount, Msg
from claims_core.services import customer, drafts, lookup, order_views
from views import safe_text, tracking_panel, ui

st.set_page_config(layout="centered")
engine = ui.get_engine()
settings = ui.store_settings()
t = ui.t()  # the customer's language: every word on this page goes through it

STEPS = ["lookup", "order", "issue", "details", "resolution", "review", "done"]
PROGRESS = {"issue": 1, "details": 2, "resolution": 3, "review": 4}
STEP_NAMES = [N_("What went wrong"), N_("Details"), N_("Resolution"), N_("Check and sign")]
STATUS_WORDS = domain.SHIPMENT_STATUS_LABELS


def flow() -> dict:
    return st.session_state.setdefault("claim_flow", {"step": "lookup"})


def reset() -> None:
    st.session_state["claim_flow"] = {"step": "lookup"}
    st.session_state.pop("uploader_round", None)


# Moving between steps happens in on_click callbacks: Streamlit runs a callback before the script,
# so one click is one script run (a button followed by st.rerun() would be two). Callbacks read
# widget values from st.session_state, which holds what the customer had typed at the click.

def go(step: str) -> None:
    """Move the wizard to ``step`` (saving the draft). Use as a button's on_click."""
    f = flow()
    if f.get("step") == "review":  # leaving the signing page: keep how they were signing
        f.update(signature_mode=st.session_state.get("sign_mode", f.get("signature_mode", "drawn")),
                 typed_name=st.session_state.get("typed_name", f.get("typed_name", "")))
    f["step"] = step
    if f.get("order_id") and step not in ("lookup", "done"):
        drafts.save_draft(engine, f["order_id"], f["email"], _draft_data(f))


def jump(step: str) -> None:
    """Move to ``step`` from inside a script run (a step that can't be shown)."""
    go(step)
    st.rerun()


def refuse(message: str | Msg) -> None:
    """Stay on this step and tell the customer what to fix (shown by show_refusal). ``message``
    is a catalog message (``N_("…")`` or a domain error's ``msg``): translated when shown."""
    flow()["refusal"] = message


def show_refusal() -> None:
    message = flow().pop("refusal", None)
    if message:
        st.error(safe_text.inline(t(message)))  # refusals can quote a product's name


def _draft_data(f: dict) -> dict:
    return {k: v for k, v in f.items()
            if k not in ("offer_draft", "receipt", "processed_files", "refusal")}



def order_view() -> order_views.OrderView:
    f = flow()
    looked_up = st.session_state.pop("looked_up_order", None)  # built by the click just now
    if looked_up is not None and looked_up.id == f.get("order_id"):
        return looked_up
    return order_views.get_order_for_customer(engine, f["order_id"], f["email"])


def steps_header(step: str) -> None:
    if step in PROGRESS:
        n = PROGRESS[step]
        st.progress(n / len(STEP_NAMES), text=t("Step {n} of {total} · {name}", n=n,
                                                 total=len(STEP_NAMES), name=t(STEP_NAMES[n - 1])))


def shipment_label(s: order_views.ShipmentView) -> str:
    what = ", ".join(f"{i.name} × {i.carried}" for i in s.items)
    bits = [t(s.label), s.carrier or t("Carrier not known"), t(STATUS_WORDS.get(s.status, s.status))]
    return " · ".join(bits) + f" — {what}"


# --- steps --------------------------------------------------------------------------------------

def step_lookup() -> None:
    st.title(t("File a claim"), anchor=False)
    intro = ui.store_text(settings, "intro", ui.lang())
    if intro:
        safe_text.show(intro)
    with st.form("lookup", border=True):
        st.text_input(t("Order number or tracking number"), placeholder=t("e.g. #1001"),
                      key="lookup_query")
        st.caption(t("You'll find it in your order confirmation or shipping confirmation email."))
        st.text_input(t("Email used at checkout"), placeholder=t("you@example.com"),
                      key="lookup_email")
        st.form_submit_button(t("Find my order"), type="primary", width="stretch", on_click=look_up)
    show_refusal()


def look_up() -> None:
    query = st.session_state.get("lookup_query", "")
    email = st.session_state.get("lookup_email", "")
    if not query.strip() or not email.strip():
        refuse(N_("Enter your order number (or tracking number) and your email."))
        return
    try:
        view = lookup.guarded_lookup(engine, query, email, ui.client_address())
    except domain.ClaimRuleError as e:
        refuse(e.msg)
        return
    opened(view, email)


def opened(view: order_views.OrderView, email: str) -> None:
    """The order was found (typed, or by a signed link): show it, offering the saved draft."""
    st.session_state["claim_flow"] = {"step": "order", "order_id": view.id,
                                      "email": email.strip(), "idem_key": uuid.uuid4().hex}
    st.session_state["looked_up_order"] = view  # the order page this run shows needn't ask again
    draft = drafts.load_draft(engine, view.id, email)
    if draft and draft.data.get("step") not in (None, "lookup", "order"):
        flow()["offer_draft"] = draft.data


def open_link() -> None:
    """The signed order link from a shop email (``?order=…&email=…&sig=…``, domain/order_link.py):
    a valid one opens the order as the look-up would; otherwise the look-up form comes prefilled
    (and the try counts against the look-up limit). The link's words leave the address bar so a
    reload doesn't repeat it; ``lang`` stays."""
    params = order_link.read_params(st.query_params)
    if params is None:
        return
    for name in (order_link.PARAM_ORDER, order_link.PARAM_EMAIL, order_link.PARAM_SIG):
        st.query_params.pop(name, None)
    reset()
    st.session_state["lookup_query"] = params.order
    st.session_state["lookup_email"] = params.email
    try:
        view = lookup.open_order_link(engine, params.order, params.email, params.sig,
                                      ui.client_address())
    except domain.ClaimRuleError as e:
        refuse(e.msg)
        return
    if view is not None:
        opened(view, params.email)


def step_order() -> None:
    """The order: its header, then (first, so a phone shows them without scrolling) each
    shipment with what it carries, where it is, its own deadline and its button; then where each
    parcel is (carrier, tracking), the items and the claims."""
    f = flow()
    view = order_view()
    st.title(t("Order {name}", name=safe_text.inline(view.name)), anchor=False)
    placed = t("Placed {date} · {total}", date=view.created_at,
               total=Amount(view.total_cents, view.currency))
    st.html(f"<span class='claims-badge {'ok' if view.protected else 'no'}'>"  # badge, then date
            f"{html.escape(t('Protected') if view.protected else t('Not protected'))}</span> "
            f"<span style='color:#4b5563;font-size:0.875rem'>{html.escape(placed)}</span>")

    if f.get("offer_draft"):
        with st.container(border=True):
            st.markdown(t("**Continue where you left off?** You started a claim for this order."))
            c1, c2 = st.columns(2)
            c1.button(t("Continue my claim"), type="primary", width="stretch", key="continue_draft",
                      on_click=continue_draft)
            c2.button(t("Start over"), width="stretch", key="start_over", on_click=start_over)

    if not view.claimable:  # why not, first: the rest of the page is only facts
        st.warning(safe_text.inline(t(view.reason)))
        safe_text.show(t("Questions? Contact the store at {email}", email=view.support_email))
    st.subheader(t.plural("Shipment", "Shipments", len(view.shipments)), anchor=False)
    if not view.shipments:
        st.caption(t("Not shipped yet."))
    for s in view.shipments:
        with st.container(border=True, gap="small", key=f"shipment_{s.id}"):
            what = ", ".join(f"{i.name} × {i.carried}" for i in s.items)
            st.markdown("**" + t(s.label) + "** · " + safe_text.inline(what))  # shop's words: inert
            status = t(STATUS_WORDS.get(s.status, s.status))
            if s.tracking is not None and s.tracking.milestone:
                status = t(s.tracking.milestone_label)
            if s.delivered_at:
                line = t("{status} · shipped {shipped} · delivered {delivered}", status=status,
                         shipped=s.shipped_at, delivered=s.delivered_at)
            else:
                line = t("{status} · shipped {shipped}", status=status, shipped=s.shipped_at)
            if s.claimable:
                st.caption(line + "  \n" + t("You can claim until {date}.", date=s.deadline))
                # each button names its shipment: a screen reader lists them apart
                st.button(t("Claim for this shipment") + " · " + t(s.label), type="primary",
                          width="stretch", key=f"start_claim_{s.id}", on_click=start_claim,
                          args=(s.id,))
            else:
                st.caption(line)
                if view.claimable:
                    safe_text.show(t("No claim possible: {reason}", reason=t(s.reason)))

    for s in view.shipments:  # where each parcel is: below the choices, it doesn't push them down
        carrier = s.carrier or t("Carrier not known")
        where = (t("{carrier} · tracking {number}", carrier=carrier, number=s.tracking_number)
                 if s.tracking_number else carrier)
        st.markdown("**" + t(s.label) + "** · " + safe_text.inline(where))
        tracking_panel.show_tracking(s.tracking, key=f"ship_{s.id}", tz_name=settings.timezone)

    st.subheader(t("Items"), anchor=False)
    safe_text.show("\n".join(f"• {item.name} × {item.quantity}" for item in view.items))
    policy = ui.store_text(settings, "policy", ui.lang())
    if policy:  # the store's own words, in the customer's language when written in it
        safe_text.show(policy)

    if view.claims:
        st.subheader(t("Claims on this order"), anchor=False)
        for c in view.claims:
            cols = st.columns([3, 2, 2], vertical_alignment="center")
            cols[0].markdown(f"**{c.reference}** · " + t(c.issue_label))
            cols[1].markdown(t(c.status_label))
            cols[2].page_link("views/customer/view_claim.py", label=t("View"),
                              icon=":material/open_in_new:",
                              query_params={"token": c.access_token, "lang": ui.lang()})

    st.button(t("Look up a different order"), width="stretch", key="another_order", on_click=reset)


def continue_draft() -> None:
    f = flow()
    saved = f.pop("offer_draft", None) or {}
    saved.pop("offer_draft", None)
    f.update(saved)
    f.setdefault("idem_key", uuid.uuid4().hex)


def start_over() -> None:
    f = flow()
    f.pop("offer_draft", None)
    drafts.discard_draft(engine, f["order_id"], f["email"])


def start_claim(shipment_id: int) -> None:
    f = flow()
    if f.get("shipment_id") != shipment_id:
        f.update(items={}, issue_type=None, category=None)
    f["shipment_id"] = shipment_id
    go("issue")


def _ship(view, f):
    return next((s for s in view.claimable_shipments if s.id == f.get("shipment_id")), None)


def step_issue() -> None:
    f = flow()
    view = order_view()
    ship = _ship(view, f)
    if ship is None:
        jump("order")
    steps_header("issue")
    st.title(t("What went wrong?"), anchor=False)
    safe_text.show(shipment_label(ship))
    if ship.tracking is not None and ship.tracking.explanation:
        with st.container(border=True, key="tracking_explanation"):
            safe_text.show(t(ship.tracking.explanation))  # why these choices, from live tracking
    options = list(ship.issue_types)  # delivery problems first, then item problems
    st.radio(
        t("Tap what describes it best"), options,
        index=options.index(f["issue_type"]) if f.get("issue_type") in options else None,
        format_func=lambda k: t(domain.ISSUE_TYPES[k].label) + " — " + t(domain.ISSUE_TYPES[k].help),
        key="issue", on_change=issue_chosen,  # a tap moves on
    )
    show_refusal()
    c1, c2 = st.columns(2)
    c1.button(t("Back"), width="stretch", key="back", on_click=go, args=("order",))
    c2.button(t("Continue"), type="primary", width="stretch", key="continue",
              on_click=issue_chosen)


def issue_chosen() -> None:
    f = flow()
    issue = st.session_state.get("issue")
    if issue not in domain.ISSUE_TYPES:
        refuse(N_("Choose what went wrong to continue."))
        return
    f.update(issue_type=issue, category=domain.ISSUE_TYPES[issue].category)
    go("details")


def _photos(f: dict) -> list:
    return [drafts.photo_from_json(p) for p in f.get("photos", [])]


def photo_picker(f: dict, required: bool) -> None:
    label = t("Photos (required)") if required else t("Photos (optional)")
    st.markdown("**" + label + "**")
    st.caption(t.plural("Show the problem and the packaging. Up to {n} photo: JPEG, PNG, WebP or "
                        "HEIC, {mb} MB each.",
                        "Show the problem and the packaging. Up to {n} photos: JPEG, PNG, WebP or "
                        "HEIC, {mb} MB each.",
                        settings.max_photos, mb=settings.max_photo_bytes // domain.MEGABYTE))
    round_ = st.session_state.setdefault("uploader_round", 0)
    files = ui.photo_uploader(label, key=f"photos_{round_}", collapsed=True)
    if files:
        f["photos"], errors = drafts.add_photos(f.get("photos", []), files,
                                                max_photos=settings.max_photos,
                                                max_bytes=settings.max_photo_bytes)
        st.session_state["photo_errors"] = errors
        st.session_state["uploader_round"] = round_ + 1  # empty the picker: the photos are kept
        drafts.save_draft(engine, f["order_id"], f["email"], _draft_data(f))
        st.rerun()
    for err in st.session_state.get("photo_errors", []):
        st.error(safe_text.inline(t(err)))  # names the file: inert
    photos = _photos(f)
    if photos:
        cols = st.columns(3)
        for i, p in enumerate(photos):
            with cols[i % 3]:
                st.image(p.thumbnail, width=150, alt=t("Photo you added"))
                safe_text.show(p.filename)
                if st.button(t("Remove"), key=f"rm_{p.sha256}", width="stretch"):
                    f["photos"] = [x for x in f["photos"] if x["sha256"] != p.sha256]
                    st.session_state["photo_errors"] = []
                    st.rerun()


def step_details() -> None:
    f = flow()
    view = order_view()
    ship = next((s for s in view.shipments if s.id == f.get("shipment_id")), None)
    if ship is None or not f.get("issue_type"):
        jump("issue")
    issue = domain.ISSUE_TYPES[f["issue_type"]]
    steps_header("details")
    st.title(t(issue.label), anchor=False)
    items: dict[int, int] = {}
    if issue.category == domain.ITEM:
        st.markdown(t("**Which items, and how many?**"))
        saved = {int(k): v for k, v in f.get("items", {}).items()}
        for it in ship.items:
            if it.remaining == 0:
                safe_text.show(t("{name}: already covered by another claim.", name=it.name))
                continue
            items[it.shipment_item_id] = st.number_input(
                t("{name} (up to {n})", name=safe_text.inline(it.name), n=it.remaining),
                min_value=0, max_value=it.remaining,
                value=min(saved.get(it.shipment_item_id, 0), it.remaining), step=1,
                key=f"qty_{it.shipment_item_id}",
            )
        photo_picker(f, domain.photos_required(f["issue_type"]))
        prompt = t("Anything else we should know? (optional)")
    else:
        everything = ", ".join(f"{i.name} × {i.remaining}" for i in ship.remaining_items)
        safe_text.show(t("This claim covers everything in the shipment: {items}", items=everything))
        photo_picker(f, False)
        prompt = t("Tell us what happened: where was it meant to be left, when did tracking last "
                   "move, have you checked with neighbours?")
    description = st.text_area(prompt, value=f.get("description", ""), height=120,
                               key="description")
    if description:
        st.caption(t("Up to {max} characters · {n} so far.", max=domain.MAX_COMMENT_CHARS,
                     n=len(description)))
    else:
        st.caption(t("Up to {max} characters.", max=domain.MAX_COMMENT_CHARS))
    show_refusal()
    c1, c2 = st.columns(2)
    c1.button(t("Back"), width="stretch", key="back", on_click=details_done,
              args=(ship.id, list(items), False))
    c2.button(t("Continue"), type="primary", width="stretch", key="continue", on_click=details_done,
              args=(ship.id, list(items), True))


def details_done(shipment_id: int, item_ids: list[int], forward: bool) -> None:
    """Keep what was typed; going forward, check it first."""
    f = flow()
    items = {sid: int(st.session_state.get(f"qty_{sid}") or 0) for sid in item_ids}
    description = st.session_state.get("description", "")
    f["description"] = description
    f["items"] = {str(k): v for k, v in items.items()}
    if not forward:
        go("issue")
        return
    try:
        checked = customer.check_claim_details(
            engine, f["order_id"], f["email"], shipment_id, f["issue_type"], items,
            len(f.get("photos", [])), description)
    except domain.ClaimRuleError as e:
        refuse(e.msg)
        return
    f["items"] = {str(k): v for k, v in checked.items.items()}
    go("resolution")


def _items(f: dict) -> dict[int, int]:
    return {int(k): int(v) for k, v in f.get("items", {}).items()}


def resolution_text(o: domain.ResolutionOption, currency: str) -> str:
    if o.kind == domain.ResolutionKind.REFUND:
        return t("Refund of {amount} to your original payment method",
                 amount=Amount(o.amount_cents, currency))
    if o.kind == domain.ResolutionKind.STORE_CREDIT:
        if o.bonus_pct:
            return t("Store credit of {amount} (includes a {pct}% bonus), as a discount code",
                     amount=Amount(o.credit_minor, currency), pct=o.bonus_pct)
        return t("Store credit of {amount}, as a discount code",
                 amount=Amount(o.credit_minor, currency))
    return t("Send a replacement of the same items")


def step_resolution() -> None:
    f = flow()
    view = order_view()
    steps_header("resolution")
    st.title(t("How would you like it resolved?"), anchor=False)
    options = order_views.resolution_choices(engine, f["shipment_id"], _items(f), f["issue_type"])
    available = [o for o in options if o.available]
    for o in options:
        if not o.available:
            safe_text.show(t(o.label) + " — " + t(o.reason))
    if not available:
        st.warning(t("The store isn't offering any resolution online right now. Please contact "
                     "{email}.", email=safe_text.inline(view.support_email)))
        return
    kinds = [o.kind for o in available]
    st.radio(t("Your preference"), kinds,  # the store's first offer is chosen to start with
                      index=kinds.index(f["resolution"]) if f.get("resolution") in kinds else 0,
                      format_func=lambda k: resolution_text(
                          next(o for o in available if o.kind == k), view.currency),
                      key="resolution")
    st.caption(t("The store's team reviews every claim and makes the final decision."))
    show_refusal()
    c1, c2 = st.columns(2)
    c1.button(t("Back"), width="stretch", key="back", on_click=go, args=("details",))
    c2.button(t("Continue"), type="primary", width="stretch", key="continue",
              on_click=resolution_chosen, args=(kinds,))


def resolution_chosen(kinds: list[str]) -> None:
    choice = st.session_state.get("resolution")
    if choice not in kinds:
        refuse(N_("Choose how you'd like it resolved."))
        return
    flow()["resolution"] = choice
    go("review")


def step_review() -> None:
    f = flow()
    view = order_view()
    ship = next((s for s in view.shipments if s.id == f.get("shipment_id")), None)
    if ship is None:
        jump("issue")
    steps_header("review")
    st.title(t("Check and sign your claim"), anchor=False)
    issue = domain.ISSUE_TYPES[f["issue_type"]]
    options = {o.kind: o for o in order_views.resolution_choices(engine, ship.id, _items(f),
                                                               f["issue_type"])}

    def section(title: str, back: str, key: str):
        c1, c2 = st.columns([4, 1], vertical_alignment="center")
        c1.markdown(f"**{title}**")
        c2.button(t("Change"), key=f"change_{key}", width="stretch", on_click=go, args=(back,))

    with st.container(border=True):
        section(t("What went wrong"), "issue", "issue")
        safe_text.show(f"{t(issue.label)} · {view.name} · {shipment_label(ship)}")
    with st.container(border=True):
        section(t("Items and details"), "details", "details")
        if issue.category == domain.ITEM:
            names = {i.shipment_item_id: i.name for i in ship.items}
            safe_text.show("\n".join(f"• {names.get(sid, '?')} × {q}"
                                      for sid, q in _items(f).items()))
        else:
            st.caption(t("Everything in the shipment"))
        photos = _photos(f)
        if photos:
            cols = st.columns(4)
            for i, p in enumerate(photos):
                cols[i % 4].image(p.thumbnail, width=110, alt=t("Photo you added"))
        if f.get("description"):
            safe_text.show(f["description"])
    with st.container(border=True):
        section(t("Resolution"), "resolution", "resolution")
        opt = options.get(f.get("resolution"))
        st.markdown(resolution_text(opt, view.currency) if opt else t("Not chosen yet"))
    sign(f, view)


PAD_NAME_SCRIPT = """<script>(() => {
  // The drawing pad (streamlit-drawable-canvas) draws on canvas elements inside its own shadow
  // root, with no name: give the canvas the pad's name in the customer's language, so a screen
  // reader says what it is (the typed signature is the way to sign without drawing).
  // (No angle brackets in here: the HTML sanitiser drops a script that has any.)
  const state = window.__claimsPad || (window.__claimsPad = {});
  state.name = NAME;
  if (state.started) { state.apply(); return; }
  state.started = true;
  state.watched = new WeakSet();
  const label = (root) => {
    const canvases = [...root.querySelectorAll('canvas')];
    if (!canvases.length) return;
    const pad = canvases.find(c => c.classList.contains('upper-canvas')) || canvases[canvases.length - 1];
    canvases.forEach(c => {
      if (c === pad) {
        if (c.getAttribute('aria-label') !== state.name) c.setAttribute('aria-label', state.name);
        if (c.getAttribute('role') !== 'img') c.setAttribute('role', 'img');
        c.removeAttribute('aria-hidden');
      } else if (c.getAttribute('aria-hidden') !== 'true') {
        c.setAttribute('aria-hidden', 'true');
      }
    });
  };
  state.apply = () => {
    document.querySelectorAll('*').forEach(host => {
      const root = host.shadowRoot;
      if (!root) return;
      label(root);
      if (!state.watched.has(root)) {  // its canvas may come later
        state.watched.add(root);
        new MutationObserver(() => label(root)).observe(root, {subtree: true, childList: true});
      }
    });
    document.querySelectorAll('.dc-root').forEach(el => label(el));
  };
  new MutationObserver(() => state.apply()).observe(document.body, {subtree: true, childList: true});
  let ticks = 0;
  const tick = setInterval(() => { state.apply(); if (++ticks === 40) clearInterval(tick); }, 500);
  state.apply();
})();</script>"""


def name_the_pad(name: str) -> None:
    """Name the drawing pad for screen readers (the component gives it no name)."""
    st.html(PAD_NAME_SCRIPT.replace("NAME", json.dumps(name)), unsafe_allow_javascript=True)


def sign(f: dict, view) -> None:
    """Signing, on the page that shows what is signed. Drawing is offered first; typing the name
    always too, and above the store's threshold with the "I can't draw" statement (WCAG 2.5.7:
    drawing is a dragging movement, and a single-pointer or keyboard way must exist)."""
    st.subheader(t("Sign"), anchor=False)
    modes = domain.signature_modes(view.total_cents, settings.signature_threshold_cents)
    needs_statement = domain.typed_needs_cannot_draw(view.total_cents,
                                                     settings.signature_threshold_cents)
    mode_labels = {"drawn": t("Draw my signature"), "typed": t("Type my full name")}
    saved_mode = f.get("signature_mode", "drawn")
    mode = st.radio(t("How would you like to sign?"), modes, horizontal=True,
                    format_func=mode_labels.get,
                    index=modes.index(saved_mode) if saved_mode in modes else 0, key="sign_mode")
    if needs_statement:
        st.caption(t("For an order of this value, please draw your signature, or tick the box "
                     "saying you can't draw one."))
    png, name, cannot_draw = None, "", False
    if mode == "drawn":
        png = ui.signature_pad(key="signature")
        name_the_pad(t("Signature pad: draw your signature with your finger or mouse"))
        st.caption(t("Sign in the box above with your finger or mouse."))
    else:
        name = st.text_input(t("Full name"), value=f.get("typed_name", ""), max_chars=200,
                             key="typed_name")
        if needs_statement:
            cannot_draw = st.checkbox(t(domain.CANNOT_DRAW_STATEMENT), key="cannot_draw")
    accurate = st.checkbox(t(domain.ACCURACY_STATEMENT), key="accurate")
    c1, c2 = st.columns(2)
    c1.button(t("Back"), width="stretch", key="back", on_click=go, args=("resolution",))
    if c2.button(t("Submit claim"), type="primary", width="stretch", key="submit"):
        f.update(signature_mode=mode, typed_name=name)
        req = customer.ClaimRequest(
            idempotency_key=f["idem_key"], order_id=f["order_id"], email=f["email"],
            shipment_id=f["shipment_id"], issue_type=f["issue_type"], items=_items(f),
            description=f.get("description", ""), desired_resolution=f.get("resolution", ""),
            signature_kind=mode, signature_png=png, signature_name=name,
            signature_cannot_draw=cannot_draw, accurate_confirmed=accurate, language=ui.lang(),
        )
        try:
            receipt = customer.file_claim(engine, req, processed=_photos(f))
        except domain.ClaimRuleError as e:
            st.error(safe_text.inline(t(e.msg)))
            return
        f["receipt"] = {"reference": receipt.reference, "token": receipt.access_token}
        f["step"] = "done"
        st.rerun()


def claim_link(token: str) -> str:
    """The claim's own link, in the language the claim was filed in."""
    return ui.app_url(f"my-claim?token={token}&lang={ui.lang()}")


def step_done() -> None:
    f = flow()
    receipt = f["receipt"]
    st.title(t("Claim received"), anchor=False)
    st.success(t("Your claim reference is {reference}.", reference=receipt["reference"]))
    next_steps = [
        t("The store's team reviews your claim, usually within 2 business days."),
        t("If they need anything else, they'll ask you on your claim page."),
        t("You'll see their decision there too."),
    ]
    st.markdown("**" + t("What happens next") + "**\n\n"
                + "\n".join(f"{i}. {line}" for i, line in enumerate(next_steps, start=1)))
    st.link_button(t("View my claim"), claim_link(receipt["token"]), type="primary",
                   width="stretch")
    st.caption(t("Keep this link to check your claim later, from any device:"))
    st.code(claim_link(receipt["token"]), language=None, wrap_lines=True)
    note = ui.store_text(settings, "support_note", ui.lang())
    if note:
        safe_text.show(note)
    st.button(t("File another claim"), width="stretch", key="file_another", on_click=reset)


ui.branding(settings)
ui.language_picker()
open_link()
step = flow().get("step", "lookup")
if step == "sign":  # a draft saved when signing had a page of its own
    step = "review"
if step not in STEPS:
    step = "lookup"
try:
    {"lookup": step_lookup, "order": step_order, "issue": step_issue, "details": step_details,
     "resolution": step_resolution, "review": step_review,
     "done": step_done}[step]()
except domain.OrderNotFound:
    reset()
    st.error(t("Please look up your order again."))
ui.privacy_link()
