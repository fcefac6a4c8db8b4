"""The signed order link: a link in the shop's own emails that opens the customer's order in the
portal without the look-up (issue #28).

The link is ``<portal>/?order=<ORDER>&email=<EMAIL>&sig=<SIG>`` where

- ``ORDER`` is the order number as :func:`identifiers.normalize_order_number` writes it: the
  leading ``#`` and every space removed, upper case (``#5001`` → ``5001``);
- ``EMAIL`` is the checkout email as :func:`identifiers.normalize_email` writes it: trimmed,
  lower case;
- ``SIG`` is the lower-case hex HMAC-SHA256 of the UTF-8 string ``ORDER|EMAIL`` (the two joined
  by a vertical bar) under the store's link secret as the key (UTF-8 of the secret as shown).

That is exactly what Shopify Liquid's ``hmac_sha256`` filter computes (``'Polyjuice' |
hmac_sha256: 'Polina'`` is the hex HMAC-SHA256 of ``Polyjuice`` keyed with ``Polina``), and
Liquid's ``remove: '#' | strip | upcase`` and ``strip | downcase`` give the same ``ORDER`` and
``EMAIL`` for Shopify's order names and emails, so a notification template can build the link
itself (:func:`liquid_snippet`). The portal normalises what the link carries the same way before
checking, so ``order=%235001`` and ``email=Jamie@…`` still match; any other order or email does
not. Signatures are compared in constant time. Rotating the secret invalidates every link made
with the old one."""
from __future__ import annotations

import hashlib
import hmac
import re
import secrets as _secrets
from dataclasses import dataclass
from urllib.parse import urlencode

from .identifiers import normalize_email, normalize_order_number

PARAM_ORDER, PARAM_EMAIL, PARAM_SIG = "order", "email", "sig"
SEPARATOR = "|"
SECRET_PLACEHOLDER = "PASTE-YOUR-SECRET-HERE"
_HEX64 = re.compile(r"[0-9a-f]{64}")


def new_secret() -> str:
    """A fresh link secret: 48 hex characters (safe inside a Liquid string, no quoting needed)."""
    return _secrets.token_hex(24)


def signed_string(order: str | None, email: str | None) -> str:
    """What is signed: ``ORDER|EMAIL``, both normalised."""
    return f"{normalize_order_number(order)}{SEPARATOR}{normalize_email(email)}"


def sign(secret: str, order: str | None, email: str | None) -> str:
    """Lower-case hex HMAC-SHA256 of :func:`signed_string` keyed with ``secret``."""
    return hmac.new(secret.encode("utf-8"), signed_string(order, email).encode("utf-8"),
                    hashlib.sha256).hexdigest()


def verify(secret: str | None, order: str | None, email: str | None, sig: str | None) -> bool:
    """True when ``sig`` is this order and email's signature under ``secret`` (constant time).
    No secret, no order, no email or a signature of the wrong shape never verify."""
    if not secret or not normalize_order_number(order) or not normalize_email(email):
        return False
    given = (sig or "").strip().lower()
    expected = sign(secret, order, email)
    # compare_digest on equal-length inputs; a malformed signature is compared against itself
    # padded so the time taken doesn't depend on how wrong it is
    ok_shape = bool(_HEX64.fullmatch(given))
    return hmac.compare_digest(given if ok_shape else "0" * 64, expected) and ok_shape


@dataclass(frozen=True)
class LinkParams:
    order: str
    email: str
    sig: str

    @property
    def signed(self) -> bool:
        return bool(self.sig)


def read_params(params) -> LinkParams | None:
    """The link's parameters from a page's query string (any mapping), or None when it carries no
    order. Values are cut to sane lengths (a link is never trusted for size)."""
    order = str(params.get(PARAM_ORDER) or "")[:100]
    if not order.strip():
        return None
    return LinkParams(order, str(params.get(PARAM_EMAIL) or "")[:254],
                      str(params.get(PARAM_SIG) or "")[:128])


def query(secret: str, order: str, email: str) -> str:
    """The query string of an order's signed link (``order=5001&email=…&sig=…``)."""
    return urlencode({PARAM_ORDER: normalize_order_number(order),
                      PARAM_EMAIL: normalize_email(email),
                      PARAM_SIG: sign(secret, order, email)})


def link(portal_url: str, secret: str, order: str, email: str) -> str:
    """The full link: the portal's address (``https://claims.example.com``) and the query."""
    return f"{portal_url.rstrip('/')}/?{query(secret, order, email)}"


def liquid_snippet(portal_url: str, secret: str = SECRET_PLACEHOLDER, *,
                   label: str = "Track your order or report a problem") -> str:
    """A block for Shopify's *Shipping confirmation* template that builds the same link (the
    same ``ORDER|EMAIL`` string, signed by Liquid's ``hmac_sha256``) and shows it as a button."""
    base = portal_url.rstrip("/")
    return (
        "{%- assign claims_order = order.name | remove: '#' | strip | upcase -%}\n"
        "{%- assign claims_email = order.email | strip | downcase -%}\n"
        "{%- assign claims_sig = claims_order | append: '|' | append: claims_email"
        f" | hmac_sha256: '{secret}' -%}}\n"
        f'<a href="{base}/?order={{{{ claims_order | url_encode }}}}'
        "&email={{ claims_email | url_encode }}&sig={{ claims_sig }}\"\n"
        '   style="display:inline-block;padding:12px 20px;border-radius:6px;background:#2563eb;'
        f'color:#ffffff;text-decoration:none">{label}</a>'
    )


def html_button(link_url: str, *, label: str = "Track your order or report a problem") -> str:
    """A plain HTML button for another platform's email template (its link computed elsewhere,
    by the platform's own HMAC-SHA256 of ``ORDER|EMAIL``)."""
    return (f'<a href="{link_url}" style="display:inline-block;padding:12px 20px;border-radius:6px;'
            f'background:#2563eb;color:#ffffff;text-decoration:none">{label}</a>')
