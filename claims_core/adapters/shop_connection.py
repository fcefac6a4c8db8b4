"""What the Settings page shows about the live feeds and the Shopify connection (without ever
showing a secret): which webhook secrets are set, and whether Shopify accepts the token."""
from __future__ import annotations

from sqlalchemy import Engine

from ..infra import config
from ..services import shop_sync
from .shopify_admin import ShopifyError
from .shopify_writeback import default_admin

FEEDS = (("/webhooks/shopify", "SHOPIFY_WEBHOOK_SECRET", "Shopify (orders, fulfillments, refunds)"),
         ("/webhooks/17track", "TRACK17_WEBHOOK_KEY", "17TRACK"),
         ("/webhooks/easypost", "EASYPOST_WEBHOOK_SECRET", "EasyPost"))


def feed_configured(secret_name: str) -> bool:
    return bool(config.secret(secret_name))


def check(engine: Engine) -> tuple[bool, str]:
    """Ask Shopify who we are with the stored token: (ok, what to tell the owner)."""
    creds = shop_sync.credentials(engine)
    if creds is None:
        return False, "Enter the shop domain and a token first."
    try:
        with default_admin(*creds) as admin:
            name = admin.check_connection()
    except ShopifyError as e:
        return False, f"Shopify refused: {e.message}"
    return True, f"Connected to {name}."
