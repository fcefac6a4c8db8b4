"""The Shopify connection as the Settings page checks it (without ever showing a secret): whether
Shopify accepts the stored token, and which live-feed webhook secrets are set. (Connecting and
disconnecting are ``services/shopify_connection.py``.)"""
from __future__ import annotations

from sqlalchemy import Engine

from ..infra import config
from ..services import shopify_connection
from .shopify_admin import ShopifyError
from .shopify_write_back import default_admin

FEEDS = (("/webhooks/shopify", "SHOPIFY_WEBHOOK_SECRET", "Shopify (orders, fulfillments, refunds)"),
         ("/webhooks/17track", "TRACK17_WEBHOOK_KEY", "17TRACK"),
         ("/webhooks/easypost", "EASYPOST_WEBHOOK_SECRET", "EasyPost"))


def feed_configured(secret_name: str) -> bool:
    return bool(config.secret(secret_name))


def check(engine: Engine) -> tuple[bool, str]:
    """Ask Shopify who we are with the stored token: (ok, what to tell the owner)."""
    creds = shopify_connection.credentials(engine)
    if creds is None:
        return False, "Enter the shop domain and a token first."
    try:
        with default_admin(*creds) as admin:
            name = admin.check_connection()
    except ShopifyError as e:
        return False, f"Shopify refused: {e.message}"
    return True, f"Connected to {name}."
