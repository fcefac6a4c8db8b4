"""The Shopify connection, as user actions: the owner connects the store (its myshopify.com
domain and an Admin API access token, stored and never shown again) or disconnects it; the
write-back sender reads the credentials. ``adapters/shopify_connection.py`` asks Shopify whether
the token works."""
from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from ..domain.errors import ErrorCode, InvalidInput
from ..domain.vocabulary import AuditAction
from ..infra.db import read_session
from ..infra.models import StoreSecret, ensure_settings_row, settings_row
from .events import record_event
from .shopify_write_back_queue import TOKEN_SECRET
from .unit_of_work import transactional

_DOMAIN = re.compile(r"^[a-z0-9][a-z0-9-]*\.myshopify\.com$")


@dataclass(frozen=True)
class Connection:
    shop_domain: str
    token_configured: bool

    @property
    def active(self) -> bool:
        return bool(self.shop_domain and self.token_configured)


def normalize_shop_domain(raw: str) -> str:
    d = (raw or "").strip().lower()
    d = re.sub(r"^https?://", "", d).split("/")[0]
    if d and "." not in d:
        d += ".myshopify.com"
    return d


def connection(engine: Engine) -> Connection:
    with read_session(engine) as s:
        return Connection(settings_row(s).shopify_shop_domain,
                          s.get(StoreSecret, TOKEN_SECRET) is not None)


def credentials(engine: Engine) -> tuple[str, str] | None:
    """(shop domain, token) for the sender; None when write-back is off."""
    with read_session(engine) as s:
        domain = settings_row(s).shopify_shop_domain
        secret = s.get(StoreSecret, TOKEN_SECRET)
        return (domain, secret.value) if domain and secret is not None else None


@transactional
def save_connection(s: Session, actor: str, shop_domain: str, token: str | None = None, *,
                    remove_token: bool = False) -> Connection:
    """Set the shop domain; store a new token when one is given (it is never shown again)."""
    domain = normalize_shop_domain(shop_domain)
    if domain and not _DOMAIN.match(domain):
        raise InvalidInput("Enter the shop's myshopify.com domain, e.g. my-shop.myshopify.com.",
                           ErrorCode.SHOP_CONNECTION_INVALID)
    row = ensure_settings_row(s)
    changed = []
    if row.shopify_shop_domain != domain:
        row.shopify_shop_domain = domain
        changed.append("shopify_shop_domain")
    token = (token or "").strip()
    if token:
        if len(token) < 20 or any(c.isspace() for c in token):
            raise InvalidInput("That doesn't look like an Admin API access token (it starts with "
                               "shpat_ and has no spaces).", ErrorCode.SHOP_CONNECTION_INVALID)
        secret = s.get(StoreSecret, TOKEN_SECRET)
        if secret is None:
            s.add(StoreSecret(name=TOKEN_SECRET, value=token))
        else:
            secret.value = token
        changed.append("shopify_admin_token")
    elif remove_token:
        secret = s.get(StoreSecret, TOKEN_SECRET)
        if secret is not None:
            s.delete(secret)
            changed.append("shopify_admin_token removed")
    if changed:
        record_event(s, actor=actor, action=AuditAction.SETTINGS_CHANGED,
                     details={"changed": changed})  # names only, never the token
    s.flush()
    return Connection(row.shopify_shop_domain, s.get(StoreSecret, TOKEN_SECRET) is not None)
