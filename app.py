"""Shipping-protection claims portal. Start with: streamlit run app.py

The web process: Streamlit's pages (``navigation.py``: navigation, public pages, staff pages)
plus the routes and middleware Streamlit's websocket can't provide: the webhooks of Shopify,
17TRACK and EasyPost (``/webhooks/...``), the claims API (``/api/v1``, FastAPI), the staff log-in that sets an HttpOnly session cookie, a staff link without a session sent to that log-in, security headers
on every response, and a friendly page for faults instead of a traceback.
"""
import streamlit as st
from starlette.middleware import Middleware

from claims_core.adapters import api, forwarded, inbound_webhooks, jobs
from claims_core.adapters.web import DatabaseFaults, SecurityHeaders, StaffGate, routes
from views.faults import on_script_error
from views.navigation import STAFF_PAGES

forwarded.install()  # X-Forwarded-For/-Proto believed only with CLAIMS_TRUSTED_PROXIES (README)

app = st.App(
    "navigation.py",
    routes=routes() + inbound_webhooks.routes() + [api.mount()],
    middleware=[Middleware(SecurityHeaders), Middleware(DatabaseFaults),
                Middleware(StaffGate, staff_paths=("login",) + tuple(p.url_path for p in STAFF_PAGES))],
    on_script_error=on_script_error,
    lifespan=jobs.lifespan,  # the background jobs (mail, timers, Shopify, webhooks); CLAIMS_BACKGROUND=off: none
)
