"""The pages' one layout helper: the engine, branding, money and dates, badges, file pickers, the
signature pad, the staff session. Customer text goes through ``safe_text``.

Nothing here decides anything about claims; that is claims_core's job.
"""
from __future__ import annotations

import html
import json
import re

import streamlit as st

from claims_core import domain
from claims_core.domain import can, format_minor, format_date, format_moment
from claims_core.domain.identifiers import client_address as domain_client_address
from claims_core.domain.messages import N_
from claims_core.infra import config, i18n, migrate
from claims_core.infra.db import make_engine
from claims_core.adapters import db_state
from claims_core.adapters.web import LOGOUT_IN_PAGE, login_url
from claims_core.services import staff_sessions
from claims_core.services.settings import load_settings
from views import safe_text


class SchemaNotReady(RuntimeError):
    pass


def get_engine():
    """One engine per process (per database URL). The web process never migrates: the start
    command (``python -m claims_core init`` / ``demo``) does, before the server starts."""
    engine = _engine_for(config.database_url())
    if not _schema_ready(engine):
        st.error(db_state.words(db_state.DbState.NOT_SET_UP))
        st.stop()
    return engine


def cached_engine():
    """The same engine without the set-up check (the fault page asks the database's state)."""
    return _engine_for(config.database_url())


@st.cache_resource(show_spinner=False)
def _engine_for(url: str):
    engine = make_engine(url)
    _ENGINES.append(engine)
    return engine


def _schema_ready(engine) -> bool:
    key = f"schema_ready:{engine.url}"
    if not st.session_state.get(key):
        st.session_state[key] = migrate.is_up_to_date(engine)
    return st.session_state[key]


_ENGINES: list = []


def release_engines() -> None:
    """Close every cached engine's connections (tests switch databases; a server never does)."""
    _engine_for.clear()
    while _ENGINES:
        _ENGINES.pop().dispose()


def client_address() -> str | None:
    """The customer's address for lookup throttling (``X-Forwarded-For`` only as far as the
    operator's trusted proxies reach: ``CLAIMS_TRUSTED_PROXIES``)."""
    headers = st.context.headers or {}
    forwarded = headers.get("X-Forwarded-For") if hasattr(headers, "get") else None
    ip = st.context.ip_address
    return domain_client_address(ip if isinstance(ip, str) else None,
                                 forwarded if isinstance(forwarded, str) else None,
                                 config.trusted_proxies())


def store_settings():
    return load_settings(get_engine())


def app_url(path: str) -> str:
    """An absolute link to one of the app's pages or routes (behind a base path too)."""
    url = st.context.url or ""
    base = (st.get_option("server.baseUrlPath") or "").strip("/")
    prefix = "/".join(x for x in (base, path.lstrip("/")) if x)
    if "://" not in url:
        return "/" + prefix
    scheme, rest = url.split("://", 1)
    host = rest.split("/", 1)[0].split("?", 1)[0]
    return f"{scheme}://{host}/{prefix}"


def money(minor: int, currency: str = "USD") -> str:
    """An amount for staff pages (English). Customer pages use ``t().money``."""
    return format_minor(minor, currency)


def amount_input(where, label: str, currency: str, value_minor: int, max_minor: int, *,
                 key: str, step: float = 1.0) -> int:
    """A staff money field in the currency's units ("Refund amount (JPY)", no decimals for yen);
    returns minor units."""
    from claims_core.domain import minor_from_amount, currency_exponent  # noqa: PLC0415
    exp = currency_exponent(currency)
    top = max_minor / 10 ** exp
    shown = where.number_input(f"{label} ({currency})", min_value=0.0, max_value=float(top),
                               value=min(value_minor, max_minor) / 10 ** exp, step=step,
                               format=f"%.{exp}f", key=key)
    return minor_from_amount(shown, currency)


def money_column(currency: str, label: str | None = None):
    """A table column of amounts (``domain.decimal_amount``) with the currency's decimals."""
    from claims_core.domain import currency_exponent  # noqa: PLC0415
    return st.column_config.NumberColumn(label, format=f"%.{currency_exponent(currency)}f {currency}")


# --- the customer's language ------------------------------------------------------------------------

def lang() -> str:
    """The language this public page speaks: ``?lang=`` (the picker sets it), then the browser's
    preference, then the store's default language (``i18n.negotiate``)."""
    headers = st.context.headers or {}
    accept = headers.get("Accept-Language") if hasattr(headers, "get") else None
    locale = st.context.locale
    asked = st.query_params.get("lang") or st.session_state.get("customer_lang")
    code = i18n.negotiate(asked, locale if isinstance(locale, str) else None,
                          accept if isinstance(accept, str) else None,
                          lambda: getattr(store_settings(), "default_language", None))
    if asked and code == i18n.supported(asked):  # kept for the session: links drop ?lang=
        st.session_state["customer_lang"] = code
    return code


def t() -> i18n.Translator:
    """Messages, money and dates in the customer's language (``t("Find my order")``,
    ``t("Refund of {amount}", amount=Amount(1250, "EUR"))``, ``t.money(1250, "EUR")``)."""
    code = lang()
    locale = st.context.locale
    return i18n.translator(code, i18n.region_of(code, locale if isinstance(locale, str) else None),
                           store_tz())


def language_picker() -> None:
    """A small language menu at the top of a public page; the choice goes into the URL (so a
    shared link keeps it) and the claim remembers it for its emails."""
    current = lang()
    if current not in i18n.LANGUAGES:  # the pseudo-language of the tests: no menu
        return
    codes = list(i18n.LANGUAGES)

    def chosen() -> None:
        st.query_params["lang"] = st.session_state["language_picker"]

    _left, right = st.columns([3, 1])
    right.selectbox(t()("Language"), codes, index=codes.index(current), key="language_picker",
                    format_func=i18n.LANGUAGES.get, label_visibility="collapsed", on_change=chosen)


def store_text(settings, field: str, lang_code: str) -> str:
    """One of the store's own texts (portal intro, policy, support note) in the customer's
    language, else in the store's default language."""
    from claims_core.services.settings import store_text as _store_text  # noqa: PLC0415
    return _store_text(settings, field, lang_code)


def privacy_link() -> None:
    """The link to the privacy notice, at the foot of every public page (also in the menu)."""
    st.page_link("views/customer/privacy.py", label=t()("Privacy notice"), icon=":material/shield:")


def store_tz() -> str:
    """The store's time zone: every date a person reads is the store's local day."""
    return getattr(store_settings(), "timezone", None) or "UTC"


def day(d, tz: str | None = None) -> str:
    """A day (or a moment's store-local day) for staff pages, as ``domain.format_date`` writes it.
    ``tz``: the store's zone when the page has its settings at hand (else they are read)."""
    return format_date(d, tz or store_tz()) if d else "—"


def when(dt, tz: str | None = None) -> str:
    """A moment's day in the store's zone (the same day its deadlines count from)."""
    return format_date(dt, tz or store_tz()) if dt else "—"


def moment(dt, tz: str | None = None) -> str:
    """A moment with its time, in the store's zone ("December 6, 2026 at 21:06 EST")."""
    return format_moment(dt, tz or store_tz()) if dt else "—"


_HEX = re.compile(r"#[0-9a-fA-F]{6}")


def global_style(settings) -> None:
    """The store's accent colour and the few styles every page uses (badges)."""
    accent = settings.accent_color if _HEX.fullmatch(settings.accent_color or "") else "#2563eb"
    st.html(
        "<style>"
        f":root {{ --claims-accent: {accent}; }}"
        ".stButton button[kind='primary'], .stFormSubmitButton button[kind='primaryFormSubmit'] "
        f"{{ background-color: {accent}; border-color: {accent}; }}"
        ".claims-badge { display:inline-block; padding:2px 10px; border-radius:999px; "
        "font-size:0.85rem; font-weight:600; }"
        ".claims-badge.ok { background:#dcfce7; color:#166534; }"
        ".claims-badge.no { background:#f1f5f9; color:#334155; }"
        # Streamlit's default caption grey is below 4.5:1 contrast on white: darken it.
        "[data-testid='stCaptionContainer'], [data-testid='stCaptionContainer'] p "
        "{ color:#4b5563 !important; opacity:1 !important; }"
        ".claims-badge.warn { background:#fef3c7; color:#92400e; }"
        ".claims-badge.bad { background:#fee2e2; color:#991b1b; }"
        ".claims-pad-gap { height: 2.2rem; }"
        # "Press Enter to apply" hints speak of a keyboard a phone doesn't have
        "@media (pointer: coarse), (max-width: 640px) { "
        "[data-testid='InputInstructions'] { display: none !important; } }"
        ".claims-login { display:block; text-align:center; padding:0.6rem; border-radius:0.5rem; "
        f"background:{accent}; color:#fff !important; text-decoration:none; font-weight:600; }}"
        "</style>"
    )


def branding(settings) -> None:
    """The store's logo and name at the top of public pages."""
    cols = st.columns([1, 5], vertical_alignment="center") if settings.logo_png else None
    if cols:
        cols[0].image(settings.logo_png, width=64, alt=f"{settings.name} logo")
        cols[1].markdown(f"### {safe_text.inline(settings.name)}")
    else:
        st.markdown(f"### {safe_text.inline(settings.name)}")


def badge(label: str, ok: bool | str) -> None:
    """A small pill. ``ok`` is True (green), False (grey), or a tone: "warn" / "bad"."""
    tone = ok if isinstance(ok, str) else ("ok" if ok else "no")
    st.html(f"<span class='claims-badge {tone}'>{html.escape(label)}</span>")


PHOTO_TYPES = ["jpg", "jpeg", "png", "webp", "heic", "heif"]


def photo_uploader(label: str, key: str, *, collapsed: bool = False,
                   customer: bool = True) -> list[tuple[str, bytes]]:
    """A multi-file photo picker; returns (filename, bytes) for each file chosen.

    Behind this one function so AppTest tests (where uploads can't be driven) can feed files.
    The accepted types only filter the picker: claims_core checks every file by decoding it.
    """
    files = st.file_uploader(label, type=PHOTO_TYPES, accept_multiple_files=True, key=key,
                             label_visibility="collapsed" if collapsed else "visible")
    if customer:  # staff pages keep Streamlit's own (English) words
        _uploader_in_language()
    return [(f.name, f.getvalue()) for f in files or []]


def _css_string(text: str) -> str:
    return '"' + "".join(ch if ch.isalnum() or ch in " .,:;!?¡¿'()-" else f"\\{ord(ch):06x}"
                         for ch in text) + '"'


def _uploader_in_language() -> None:
    """Streamlit's upload widget has its own English words ("Upload", "200MB per file • JPG"):
    its button says the catalog's word instead, and the size hint is left to the page's own
    caption (in the customer's language)."""
    label = t()(N_("Add photos"))
    st.html("<style>[data-testid='stFileUploaderDropzoneInstructions']{display:none}"
            # the framework's word stays in the button for screen readers (font-size 0), the
            # catalog's is what people see
            "[data-testid='stFileUploaderDropzone'] button [data-testid='stMarkdownContainer'] p"
            "{font-size:0;margin:0}"
            "[data-testid='stFileUploaderDropzone'] button [data-testid='stMarkdownContainer']::after"
            f"{{content:{_css_string(label)}}}</style>")


def file_picker(label: str, types: list[str], key: str) -> tuple[str, bytes] | None:
    """One file (name, bytes), or None; behind a function for the same reason as above."""
    f = st.file_uploader(label, type=types, key=key)
    return (f.name, f.getvalue()) if f is not None else None


def signature_pad(key: str) -> bytes | None:
    """A drawing canvas; returns the drawn signature as PNG bytes, or None if nothing was drawn.

    Kept behind this one function so tests can stand in for the canvas (it can't be drawn on
    under AppTest) and feed signature bytes.
    """
    from streamlit_drawable_canvas import st_canvas

    # The pad's toolbar (undo, clear) floats 2.65rem above it on hover: keep that space empty so
    # it never covers the words above the box.
    st.html("<div class='claims-pad-gap' aria-hidden='true'></div>")
    result = st_canvas(
        stroke_width=3, stroke_color="#111827", background_color="#ffffff", height=160,
        width=330, drawing_mode="freedraw", return_image_data=True, key=key,
    )
    if not result.json_data or not result.json_data.get("objects"):
        return None
    return result.image_bytes


# --- staff sessions -----------------------------------------------------------------------------

def staff_cookie() -> str | None:
    """The staff session cookie this browser sent (set by the ``/auth/login`` route).

    Behind this one function so AppTest tests, which can't send cookies, can stand in for it."""
    cookies = st.context.cookies or {}
    value = cookies.get(staff_sessions.COOKIE) if hasattr(cookies, "get") else None
    return value if isinstance(value, str) else None


def current_staff():
    """The signed-in staff member (an accounts.StaffIdentity), or None. The session row is
    checked on every run: log-out, expiry, deactivation or a password change end it at once."""
    token = staff_cookie()
    if not token:
        return None
    who = staff_sessions.resolve(get_engine(), token)
    if who is None:
        st.session_state["staff_session_ended"] = True
    return who


def end_staff_session() -> None:
    """Log-out: the session row goes now; the page's own POST to the log-out route (same origin,
    so it passes the route's Origin check; the route takes no GET) clears the cookie too."""
    staff_sessions.end(get_engine(), staff_cookie())
    base = (st.get_option("server.baseUrlPath") or "").strip("/")
    url = "/" + "/".join(x for x in (base, LOGOUT_IN_PAGE.lstrip("/")) if x)
    target = json.dumps(url).replace("<", "\\u003c")  # a JS string that can't end the script
    st.html(f"<script>fetch({target}, {{method: 'POST', credentials: 'same-origin'}})</script>",
            unsafe_allow_javascript=True)


def here() -> str:
    """This page's path and query, for coming back after log-in."""
    url = st.context.url or ""
    path = "/" + url.split("://", 1)[-1].partition("/")[2] if "://" in url else "/"
    return path or "/"


def require(permission: str):
    """Stop the page unless the signed-in staff member may do this."""
    who = current_staff()
    if who is None:
        with st.columns([1, 2, 1])[1]:  # a narrow box, also on the wide staff pages
            login_prompt(here())
        st.stop()
    if not can(who.role, permission):
        st.error("Your role doesn't give access to this page.")
        st.stop()
    return who


def login_prompt(next_path: str) -> None:
    """The way to the staff log-in (a plain form served by the app, which sets the session
    cookie and comes back to ``next_path``)."""
    st.title("Staff log in", anchor=False)
    if st.session_state.pop("staff_session_ended", False):
        st.info("Your session ended. Please log in again.")
    # A link in this tab (st.link_button would open a new one): the form, then back here.
    st.html(f'<a class="claims-login" href="{html.escape(app_url(login_url(next_path)), quote=True)}"'
            ' target="_self">Log in</a>')
    st.caption("Accounts are created by the owner (Settings → Staff) or with "
               "`python -m claims_core add-user`.")


def age_text(delta) -> str:
    hours = int(delta.total_seconds() // 3600)
    if hours < 1:
        return f"{max(0, int(delta.total_seconds() // 60))} min"
    if hours < 48:
        return f"{hours} h"
    return f"{hours // 24} d"


def settings_act(action, done) -> None:
    """Run one owner action on Settings (any tab): show why it was refused, or say it was done
    (``done``: the message, or a function of the action's result) and show the page again."""
    try:
        result = action()
    except domain.ClaimRuleError as e:  # includes domain.AuthError
        st.error(safe_text.inline(e.message))
        return
    st.session_state["settings_flash"] = done(result) if callable(done) else done
    st.rerun()
