"""The Shopify Admin GraphQL API client: ``ShopifyAdmin``, the only code that talks to a shop's
Admin API. Write-back (``shopify_write_back``) sends staff decisions through it and the Settings
page's connection check (``shopify_connection``) asks it who the token belongs to.

What it does, one method per write, each with a look-up for an earlier attempt:

* ``create_refund``            -> ``refundCreate`` on the order: one ``REFUND`` transaction whose
  ``parentId`` is a successful ``SALE``/``CAPTURE`` of the order, sent with the
  ``@idempotent(key:)`` directive so a retry with the same key can't refund twice;
  ``find_refund`` finds a refund carrying the claim's marker in its note;
* ``create_gift_card``         -> ``giftCardCreate`` with the app's own code, ``initialAmount`` in the
  claim's currency (attached to the customer found by e-mail when the app may read customers);
  ``find_gift_card`` looks the code up;
* ``create_replacement_order`` -> ``draftOrderCreate`` (zero-priced lines, tagged ``claims-portal``
  and the marker) then ``draftOrderComplete``, which turns it into a real order;
  ``find_replacement_order`` finds the order or open draft carrying the marker;
* ``check_connection``         -> the shop's name, or a ``ShopifyError``.

Amounts go in and come out as integers in the currency's minor units (``domain.money``). Every
failure is a ``ShopifyError`` with a ``code`` (``user_error``, ``throttled``, ``auth``,
``not_found``, ``server``, ``network``, ``bad_response``), whether it is ``retryable``, how long Shopify asked
to wait (``retry_after``, from ``THROTTLED`` and its ``throttleStatus`` or from ``Retry-After``)
and, for ``network``/``server``, whether the write ``may_have_landed`` — then look before writing
again. The write methods also check for themselves where they cheaply can (a refund with exactly
the same note, a gift card with the same code and note, an open draft order with the marker), so a
plain retry does not write twice either, except in the seconds before Shopify's search index has
seen a new draft order.

Field names and shapes follow the Admin GraphQL reference for API version ``DEFAULT_API_VERSION``
(2026-10); a shop pinned to a version before 2026-07 gets a gift card's amount as
``initialValue`` (in the shop's currency) instead of ``initialAmount``.

Access scopes the app needs: ``read_orders`` + ``write_orders`` (transactions, refunds, order
search), ``write_gift_cards`` (+ ``read_gift_cards`` for ``find_gift_card``),
``write_draft_orders`` (+ ``read_draft_orders``); optionally ``read_customers`` +
``write_customers`` to attach a gift card to the customer found by e-mail (without them the card
is simply issued unattached).

The access token is sent only in the ``X-Shopify-Access-Token`` header; it never appears in an
exception, a log line or a ``repr``. Redirects are not followed (a custom domain redirecting to
another host would otherwise receive the token header).
"""
from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Self
from urllib.parse import urlsplit

import httpx

from ..domain.errors import InvalidInput
from ..domain.money import currency_exponent, minor_from_amount

log = logging.getLogger(__name__)

# 2026-10 is the newest stable Admin API version (released 1 Oct 2026; supported until at least
# Oct 2027). refundCreate accepts the @idempotent directive since 2026-01 (mandatory since
# 2026-04), and giftCardCreate takes ``initialAmount`` (a MoneyInput, so the card can be issued in
# the order's currency) since 2026-07; ``initialValue`` is deprecated from then on.
DEFAULT_API_VERSION = "2026-10"

APP_TAG = "claims-portal"
MAX_TAG_LENGTH = 40          # Shopify's limit for one tag
DEFAULT_THROTTLE_WAIT = 2.0  # seconds, when Shopify doesn't say how long

_VERSION_RE = re.compile(r"(\d{4})-(01|04|07|10)|unstable")
_SHOP_HOST_RE = re.compile(r"[a-z0-9][a-z0-9-]*\.myshopify\.com")
_GIFT_CARD_CODE_RE = re.compile(r"[A-Za-z0-9]{8,20}")
_GID_RE = re.compile(r"gid://shopify/([A-Za-z]+)/(\d+)")

# ISO 4217 currencies whose minor unit isn't 2 digits (used when babel isn't installed).


# --- small pure helpers ----------------------------------------------------------------------

def normalize_shop_domain(value: str) -> str:
    """``" HTTPS://My-Shop.myshopify.com/admin "`` -> ``"my-shop.myshopify.com"``.

    Also accepts the bare shop handle (``"my-shop"``) and an admin URL
    (``https://admin.shopify.com/store/my-shop/...``). A custom storefront domain is refused: the
    Admin API lives on the ``.myshopify.com`` domain only."""
    text = (value or "").strip().lower()
    if not text:
        raise ValueError("Enter the shop's .myshopify.com domain.")
    if "://" not in text:
        text = "https://" + text
    parts = urlsplit(text)
    host = (parts.hostname or "").rstrip(".")
    if host == "admin.shopify.com":
        m = re.match(r"/store/([a-z0-9][a-z0-9-]*)", parts.path)
        host = f"{m.group(1)}.myshopify.com" if m else ""
    elif host and "." not in host:
        host += ".myshopify.com"
    if not _SHOP_HOST_RE.fullmatch(host):
        raise ValueError(f"“{value.strip()}” is not a shop's .myshopify.com domain "
                         "(Shopify admin → Settings → Domains shows it).")
    return host


def _gid(kind: str, value: str | int) -> str:
    text = str(value).strip()
    m = _GID_RE.fullmatch(text)
    if m:
        if m.group(1) != kind:
            raise ValueError(f"{text} is not a Shopify {kind} id")
        return text
    if text.isdigit():
        return f"gid://shopify/{kind}/{text}"
    raise ValueError(f"“{text}” is not a Shopify {kind} id")


def order_gid(order_id: str) -> str:
    """``"1234"`` -> ``"gid://shopify/Order/1234"``; an Order gid passes through."""
    return _gid("Order", order_id)


def _numeric_id(gid: str) -> str:
    return gid.rsplit("/", 1)[-1]


def _minor_digits(currency: str) -> int:
    """The app's amounts are minor units by the domain's table; Shopify's decimals agree."""
    return currency_exponent(currency)


def _currency_code(currency: str) -> str:
    code = (currency or "").strip().upper()
    if not re.fullmatch(r"[A-Z]{3}", code):
        raise ValueError(f"“{currency}” is not an ISO 4217 currency code")
    return code


def money_amount(amount_cents: int, currency: str) -> str:
    """Integer minor units as the decimal string Shopify's ``Money``/``Decimal`` take:
    ``(1250, "USD")`` -> ``"12.50"``; ``(1250, "JPY")`` -> ``"1250"`` (for a currency without
    minor units the integer *is* the amount); ``(1250, "KWD")`` -> ``"1.250"``."""
    if isinstance(amount_cents, bool) or not isinstance(amount_cents, int):
        raise TypeError("amount_cents must be an integer")
    digits = _minor_digits(_currency_code(currency))
    if digits == 0:
        return str(amount_cents)
    sign = "-" if amount_cents < 0 else ""
    whole, frac = divmod(abs(amount_cents), 10 ** digits)
    return f"{sign}{whole}.{frac:0{digits}d}"


def _to_minor(amount: Any, currency: str) -> int:
    """Shopify's decimal string ("40.0", "1250.0") back to integer minor units, by the domain's
    one parser (``money.minor_from_amount``: the same rounding and bound as forms and imports)."""
    try:
        return minor_from_amount(amount, currency)
    except InvalidInput as e:
        raise ValueError(f"unexpected amount {amount!r}: {e.message}")


def gift_card_code(code: str) -> str:
    """The app's code as Shopify takes it: spaces and hyphens dropped (``"CREDIT-7K2Q9X4MPA"`` ->
    ``"CREDIT7K2Q9X4MPA"``); Shopify wants 8-20 letters and digits and ignores case."""
    return re.sub(r"[\s-]+", "", code or "")


def _search_value(value: str) -> str:
    """A value quoted for Shopify's search syntax (``tag:"a b"``)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _api_at_least(version: str, wanted: str) -> bool:
    return version == "unstable" or version >= wanted


# --- public types ------------------------------------------------------------------------------

@dataclass(frozen=True)
class ShopifyCredentials:
    shop_domain: str       # normalised to "my-shop.myshopify.com"
    access_token: str = field(repr=False)
    api_version: str = DEFAULT_API_VERSION

    def __post_init__(self):
        object.__setattr__(self, "shop_domain", normalize_shop_domain(self.shop_domain))
        token = (self.access_token or "").strip()
        if not token:
            raise ValueError("The Admin API access token is empty.")
        object.__setattr__(self, "access_token", token)
        version = (self.api_version or "").strip().lower()
        if not _VERSION_RE.fullmatch(version):
            raise ValueError(f"“{self.api_version}” is not a Shopify API version (like 2026-10).")
        object.__setattr__(self, "api_version", version)


class ShopifyError(Exception):
    """A write (or look-up) that didn't go through.

    ``code``: "user_error" (Shopify refused the input: not retryable), "throttled" (cost or rate
    limit: retry after ``retry_after`` seconds), "auth" (401/403/ACCESS_DENIED: token wrong or a
    scope missing: not retryable until fixed), "not_found", "server" (5xx: retryable), "network"
    (timeout / connection: retryable) or "bad_response" (an answer of unexpected shape).

    ``may_have_landed``: the request reached Shopify and the answer was lost or broken (a read
    timeout, a 5xx on a mutation): the write may or may not have happened; use the ``find_*``
    look-ups before writing again. False when the request provably did nothing (refused,
    throttled, never connected). ``details``: Shopify's ``userErrors`` (or GraphQL errors) as given.
    ``request_id``: Shopify's X-Request-Id, for support."""

    RETRYABLE_CODES = frozenset({"throttled", "server", "network"})

    def __init__(self, code: str, message: str, *, retry_after: float | None = None,
                 details: list | None = None, may_have_landed: bool = False,
                 http_status: int | None = None, request_id: str | None = None,
                 retryable: bool | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after = retry_after
        self.retryable = code in self.RETRYABLE_CODES if retryable is None else bool(retryable)
        self.details = list(details or [])
        self.may_have_landed = may_have_landed
        self.http_status = http_status
        self.request_id = request_id

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"

    def __repr__(self) -> str:
        return f"ShopifyError({self.code!r}, {self.message!r}, retry_after={self.retry_after!r})"


@dataclass(frozen=True)
class WriteResult:
    shopify_id: str        # the gid
    name: str = ""         # order name like "#1042" for replacement orders, "" otherwise
    code: str = ""         # gift card code (or the last characters Shopify reveals) for gift cards


# --- GraphQL documents -------------------------------------------------------------------------

SHOP_QUERY = """
query ClaimsPortalShop {
  shop { name myshopifyDomain }
}"""

REFUND_CONTEXT_QUERY = """
query ClaimsPortalRefundContext($id: ID!) {
  order(id: $id) {
    id
    currencyCode
    presentmentCurrencyCode
    refunds(first: 50) { id note }
    transactions(first: 50) {
      id
      gateway
      kind
      status
      parentTransaction { id }
      amountSet {
        shopMoney { amount currencyCode }
        presentmentMoney { amount currencyCode }
      }
    }
  }
}"""

REFUND_CREATE = """
mutation ClaimsPortalRefundCreate($input: RefundInput!, $idempotencyKey: String!) {
  refundCreate(input: $input) @idempotent(key: $idempotencyKey) {
    refund {
      id
      note
      totalRefundedSet { presentmentMoney { amount currencyCode } }
    }
    userErrors { field message }
  }
}"""

ORDER_REFUNDS_QUERY = """
query ClaimsPortalOrderRefunds($id: ID!) {
  order(id: $id) {
    id
    refunds(first: 50) { id note createdAt }
  }
}"""

CUSTOMER_BY_EMAIL_QUERY = """
query ClaimsPortalCustomerByEmail($query: String!) {
  customers(first: 1, query: $query) { nodes { id email } }
}"""

GIFT_CARD_CREATE = """
mutation ClaimsPortalGiftCardCreate($input: GiftCardCreateInput!) {
  giftCardCreate(input: $input) {
    giftCard {
      id
      maskedCode
      lastCharacters
      note
      initialValue { amount currencyCode }
    }
    giftCardCode
    userErrors { field code message }
  }
}"""

GIFT_CARD_SEARCH_QUERY = """
query ClaimsPortalGiftCardSearch($query: String!) {
  giftCards(first: 10, query: $query) {
    nodes { id maskedCode lastCharacters note }
  }
}"""

DRAFT_ORDER_CREATE = """
mutation ClaimsPortalDraftOrderCreate($input: DraftOrderInput!) {
  draftOrderCreate(input: $input) {
    draftOrder { id name status }
    userErrors { field message }
  }
}"""

DRAFT_ORDER_COMPLETE = """
mutation ClaimsPortalDraftOrderComplete($id: ID!) {
  draftOrderComplete(id: $id) {
    draftOrder {
      id
      status
      order { id name }
    }
    userErrors { field message }
  }
}"""

DRAFT_ORDER_SEARCH_QUERY = """
query ClaimsPortalDraftOrderSearch($query: String!) {
  draftOrders(first: 5, query: $query) {
    nodes { id name status tags order { id name } }
  }
}"""

ORDER_SEARCH_QUERY = """
query ClaimsPortalOrderSearch($query: String!) {
  orders(first: 5, query: $query) {
    nodes { id name tags }
  }
}"""

_ADDRESS_KEYS = {
    "first_name": "firstName", "firstname": "firstName", "firstName": "firstName",
    "last_name": "lastName", "lastname": "lastName", "lastName": "lastName",
    "name": "_name", "company": "company",
    "address1": "address1", "address_1": "address1", "line1": "address1",
    "address2": "address2", "address_2": "address2", "line2": "address2",
    "city": "city", "zip": "zip", "postal_code": "zip", "postcode": "zip", "postalCode": "zip",
    "province_code": "provinceCode", "provinceCode": "provinceCode", "province": "province",
    "state": "province",
    "country_code": "countryCode", "countryCode": "countryCode", "country": "country",
    "phone": "phone",
}


def _mailing_address(address: Mapping[str, Any]) -> dict:
    """The app's address dict (snake_case or Shopify's camelCase) as a ``MailingAddressInput``."""
    out: dict[str, str] = {}
    for key, value in address.items():
        target = _ADDRESS_KEYS.get(key)
        text = "" if value is None else str(value).strip()
        if target and text and target not in out:
            out[target] = text
    full_name = out.pop("_name", "")
    if full_name and "firstName" not in out and "lastName" not in out:
        first, _, last = full_name.rpartition(" ")
        out.update({"firstName": first, "lastName": last} if first else {"lastName": last})
    # A code given as "province"/"country" goes to the *Code field; a full name ("Ontario",
    # "Canada") stays in the plain field, which Shopify resolves itself.
    if "country" in out and re.fullmatch(r"[A-Za-z]{2}", out["country"]):
        out.setdefault("countryCode", out.pop("country"))
    if "province" in out and re.fullmatch(r"[A-Za-z0-9]{1,3}", out["province"]):
        out.setdefault("provinceCode", out.pop("province"))
    if "countryCode" in out:
        out.pop("country", None)
    if "provinceCode" in out:
        out.pop("province", None)
    for key in ("countryCode", "provinceCode"):
        if key in out:
            out[key] = out[key].upper()
    return out


# --- the client --------------------------------------------------------------------------------

_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout,
             httpx.UnsupportedProtocol, httpx.ProxyError)


class ShopifyAdmin:
    """One shop's Admin GraphQL API (one httpx.Client, which threads may share). Every call is a
    single attempt: retrying, with the ``find_*`` look-ups first when ``may_have_landed``, is the
    caller's (the outbox's) job. Close it, or use ``with``, when done."""

    def __init__(self, creds: ShopifyCredentials, *, base_url: str | None = None,
                 transport: httpx.BaseTransport | None = None, timeout: float = 10.0):
        self.creds = creds
        self.endpoint = base_url or (
            f"https://{creds.shop_domain}/admin/api/{creds.api_version}/graphql.json")
        self._token = creds.access_token
        self._client = httpx.Client(
            transport=transport, timeout=httpx.Timeout(timeout), follow_redirects=False,
            headers={"X-Shopify-Access-Token": creds.access_token,
                     "Content-Type": "application/json", "Accept": "application/json",
                     "User-Agent": "claims-portal"})

    def __repr__(self) -> str:
        return f"ShopifyAdmin({self.creds.shop_domain!r}, api_version={self.creds.api_version!r})"

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- transport and error mapping ------------------------------------------------------------

    def _error(self, code: str, message: str, **kw) -> ShopifyError:
        if self._token and self._token in message:   # belt and braces: never leak the token
            message = message.replace(self._token, "[redacted]")
        return ShopifyError(code, message, **kw)

    def _graphql(self, operation: str, document: str, variables: dict | None = None, *,
                 mutation: bool = False) -> dict:
        """POST one operation; returns ``data`` or raises ShopifyError."""
        body = {"query": document, "operationName": operation, "variables": variables or {}}
        try:
            resp = self._client.post(self.endpoint, json=body)
        except httpx.TimeoutException as exc:
            raise self._error("network", f"Shopify didn't answer in time ({type(exc).__name__}).",
                              may_have_landed=mutation and not isinstance(exc, _NOT_SENT))
        except httpx.TransportError as exc:
            raise self._error("network", f"Couldn't reach Shopify ({type(exc).__name__}).",
                              may_have_landed=mutation and not isinstance(exc, _NOT_SENT))
        status = resp.status_code
        request_id = resp.headers.get("x-request-id")
        log.info("shopify %s %s -> HTTP %s (request %s)", self.creds.shop_domain, operation,
                 status, request_id)
        kw = {"http_status": status, "request_id": request_id}
        if status == 429:
            raise self._error("throttled", "Shopify's rate limit was reached.",
                              retry_after=_retry_after_header(resp.headers.get("retry-after")), **kw)
        if status in (401, 403):
            raise self._error("auth", f"Shopify refused the access token (HTTP {status}): "
                              f"{_error_text(resp)}", **kw)
        if status == 404:
            raise self._error("not_found", "No Admin API at this shop domain and API version "
                              "(HTTP 404).", **kw)
        if 300 <= status < 400:
            raise self._error("not_found", f"The shop domain redirects elsewhere (HTTP {status}); "
                              "use the shop's .myshopify.com domain.", **kw)
        if status >= 500:
            raise self._error("server", f"Shopify had a server error (HTTP {status}).",
                              may_have_landed=mutation, **kw)
        if status != 200:
            raise self._error("bad_response", f"Unexpected HTTP {status} from Shopify: "
                              f"{_error_text(resp)}", **kw)
        try:
            payload = resp.json()
        except ValueError:
            raise self._error("bad_response", "Shopify's answer isn't JSON.",
                              may_have_landed=mutation, **kw)
        if not isinstance(payload, dict):
            raise self._error("bad_response", "Shopify's answer isn't a JSON object.",
                              may_have_landed=mutation, **kw)
        errors = payload.get("errors")
        if errors:
            raise self._graphql_errors(errors, payload.get("extensions"), mutation, kw)
        data = payload.get("data")
        if not isinstance(data, dict):
            raise self._error("bad_response", "Shopify's answer has no data.",
                              may_have_landed=mutation, **kw)
        return data

    def _graphql_errors(self, errors, extensions, mutation: bool, kw: dict) -> ShopifyError:
        if not isinstance(errors, list):
            return self._error("bad_response", f"Shopify error: {str(errors)[:300]}",
                               details=[errors], may_have_landed=mutation, **kw)
        codes = [((e or {}).get("extensions") or {}).get("code") for e in errors
                 if isinstance(e, dict)]
        message = "; ".join(str(e.get("message", e)) if isinstance(e, dict) else str(e)
                            for e in errors)[:500] or "Shopify error"
        if "THROTTLED" in codes:
            cost = (extensions or {}).get("cost") or _first_cost(errors)
            return self._error("throttled", "Shopify's query cost limit was reached.",
                               retry_after=_retry_after_cost(cost), details=errors, **kw)
        if "ACCESS_DENIED" in codes:
            return self._error("auth", f"Access denied (is a scope missing?): {message}",
                               details=errors, **kw)
        if "IDEMPOTENCY_CONCURRENT_REQUEST" in codes:
            return self._error("throttled", "The earlier request with this idempotency key is "
                               "still running; retry with the same key shortly.",
                               retry_after=DEFAULT_THROTTLE_WAIT, details=errors,
                               may_have_landed=True, **kw)
        if "IDEMPOTENCY_KEY_PARAMETER_MISMATCH" in codes or \
                "IDEMPOTENCY_PREVIOUS_ATTEMPT_FAILED" in codes:
            return self._error("user_error", message, details=errors, **kw)
        if "NOT_FOUND" in codes:
            return self._error("not_found", message, details=errors, **kw)
        if "INTERNAL_SERVER_ERROR" in codes:
            return self._error("server", message, details=errors, may_have_landed=mutation, **kw)
        return self._error("bad_response", message, details=errors, **kw)

    def _payload(self, data: dict, field_name: str) -> dict:
        payload = data.get(field_name)
        if not isinstance(payload, dict):
            raise self._error("bad_response", f"Shopify's answer has no {field_name} payload.",
                              may_have_landed=True)
        user_errors = payload.get("userErrors") or []
        if user_errors:
            codes = {e.get("code") for e in user_errors if isinstance(e, dict)}
            text = "; ".join(str(e.get("message", e)) if isinstance(e, dict) else str(e)
                             for e in user_errors)
            if "IDEMPOTENCY_CONCURRENT_REQUEST" in codes:
                raise self._error("throttled", text, retry_after=DEFAULT_THROTTLE_WAIT,
                                  details=user_errors, may_have_landed=True)
            raise self._error("user_error", text, details=user_errors)
        return payload

    def _refuse(self, message: str, field_path: list[str] | None = None) -> ShopifyError:
        """Input this module refuses before asking Shopify (what Shopify would refuse too)."""
        return self._error("user_error", message,
                           details=[{"field": field_path or [], "message": message}])

    # --- connection ---------------------------------------------------------------------------

    def check_connection(self) -> str:
        """The shop's name; raises ShopifyError (``auth`` for a wrong token)."""
        shop = self._graphql("ClaimsPortalShop", SHOP_QUERY).get("shop")
        if not isinstance(shop, dict) or not shop.get("name"):
            raise self._error("bad_response", "Shopify's answer has no shop.")
        return str(shop["name"])

    # --- refunds --------------------------------------------------------------------------------

    def create_refund(self, *, order_id: str, amount_cents: int, currency: str, note: str,
                      idempotency_key: str, notify: bool = False) -> WriteResult:
        """Refund ``amount_cents`` (minor units of ``currency``, the order's presentment
        currency) to the order's original payment. Reuse the same ``idempotency_key`` when
        retrying the same refund: Shopify then returns the first result instead of refunding
        again. A refund already on the order with exactly this ``note`` is returned as is."""
        try:
            gid = order_gid(order_id)
            currency = _currency_code(currency)
            amount = money_amount(amount_cents, currency)
        except (TypeError, ValueError) as exc:
            raise self._refuse(str(exc))
        if amount_cents <= 0:
            raise self._refuse("A refund must be more than zero.", ["amount"])
        key = (idempotency_key or "").strip()
        if not key or len(key) > 255:
            raise self._refuse("An idempotency key (up to 255 characters) is required.")

        order = self._graphql("ClaimsPortalRefundContext", REFUND_CONTEXT_QUERY,
                              {"id": gid}).get("order")
        if not isinstance(order, dict):
            raise self._error("not_found", f"Order {_numeric_id(gid)} isn't in this shop.")
        wanted_note = (note or "").strip()
        if wanted_note:
            for refund in order.get("refunds") or []:
                if (refund.get("note") or "").strip() == wanted_note and refund.get("id"):
                    log.info("shopify refund for %s already on the order: %s", gid, refund["id"])
                    return WriteResult(shopify_id=refund["id"])
        order_currency = order.get("presentmentCurrencyCode") or order.get("currencyCode")
        if order_currency and order_currency != currency:
            raise self._refuse(f"The order was paid in {order_currency}, not {currency}.",
                               ["currency"])
        try:
            parent = _pick_parent_transaction(order.get("transactions") or [], amount_cents,
                                              currency)
        except ValueError as exc:
            raise self._error("bad_response", f"Unexpected transaction in Shopify's answer: {exc}")
        if isinstance(parent, str):
            raise self._refuse(parent, ["transactions"])

        variables = {
            "input": {
                "orderId": gid,
                "note": note,
                "notify": bool(notify),
                "currency": currency,
                "transactions": [{
                    "orderId": gid,
                    "parentId": parent["id"],
                    "gateway": parent["gateway"],
                    "kind": "REFUND",
                    "amount": amount,
                }],
            },
            "idempotencyKey": key,
        }
        data = self._graphql("ClaimsPortalRefundCreate", REFUND_CREATE, variables, mutation=True)
        refund = self._payload(data, "refundCreate").get("refund")
        if not isinstance(refund, dict) or not refund.get("id"):
            raise self._error("bad_response", "Shopify didn't return the refund.",
                              may_have_landed=True)
        return WriteResult(shopify_id=refund["id"])

    def find_refund(self, order_id: str, marker: str) -> str | None:
        """The id of a refund on the order whose note contains ``marker``, or None."""
        marker = (marker or "").strip()
        if not marker:
            raise self._refuse("A marker is required to find a refund.")
        try:
            gid = order_gid(order_id)
        except (TypeError, ValueError) as exc:
            raise self._refuse(str(exc))
        order = self._graphql("ClaimsPortalOrderRefunds", ORDER_REFUNDS_QUERY,
                              {"id": gid}).get("order")
        if not isinstance(order, dict):
            raise self._error("not_found", f"Order {_numeric_id(gid)} isn't in this shop.")
        for refund in order.get("refunds") or []:
            if marker in (refund.get("note") or "") and refund.get("id"):
                return refund["id"]
        return None

    # --- store credit ---------------------------------------------------------------------------

    def create_gift_card(self, *, amount_cents: int, currency: str, code: str, note: str,
                         customer_email: str = "") -> WriteResult:
        """Issue a gift card worth ``amount_cents`` of ``currency`` with the app's ``code``
        (8-20 letters and digits once spaces and hyphens are dropped; show the customer the
        returned ``WriteResult.code``, Shopify's spelling of it). With ``customer_email`` the card is attached to that customer
        when the shop has one (needs read/write_customers; skipped without them). If the code is
        already taken by a card carrying the same note, that card is returned (an earlier
        attempt landed)."""
        try:
            currency = _currency_code(currency)
            amount = money_amount(amount_cents, currency)
        except (TypeError, ValueError) as exc:
            raise self._refuse(str(exc))
        if amount_cents <= 0:
            raise self._refuse("Store credit must be more than zero.", ["initialAmount"])
        code = gift_card_code(code)
        if not _GIFT_CARD_CODE_RE.fullmatch(code):
            raise self._refuse("A gift card code must be 8 to 20 letters and digits.", ["code"])

        gift_input: dict[str, Any] = {"code": code, "note": note}
        if _api_at_least(self.creds.api_version, "2026-07"):
            gift_input["initialAmount"] = {"amount": amount, "currencyCode": currency}
        else:   # older versions: a Decimal in the shop's currency
            gift_input["initialValue"] = amount
        customer_id = self._customer_id(customer_email) if customer_email.strip() else None
        if customer_id:
            gift_input["customerId"] = customer_id

        data = self._graphql("ClaimsPortalGiftCardCreate", GIFT_CARD_CREATE,
                             {"input": gift_input}, mutation=True)
        try:
            payload = self._payload(data, "giftCardCreate")
        except ShopifyError as exc:
            if exc.code == "user_error" and any(
                    isinstance(e, dict) and e.get("code") == "TAKEN" for e in exc.details):
                earlier = self._gift_card_by_code(code)
                if earlier and (earlier.get("note") or "").strip() == (note or "").strip():
                    return WriteResult(shopify_id=earlier["id"],
                                       code=earlier.get("maskedCode") or code)
            raise
        card = payload.get("giftCard")
        if not isinstance(card, dict) or not card.get("id"):
            raise self._error("bad_response", "Shopify didn't return the gift card.",
                              may_have_landed=True)
        shown = payload.get("giftCardCode") or card.get("maskedCode") or card.get("lastCharacters")
        return WriteResult(shopify_id=card["id"], code=shown or "")

    def _customer_id(self, email: str) -> str | None:
        email = email.strip()
        try:
            data = self._graphql("ClaimsPortalCustomerByEmail", CUSTOMER_BY_EMAIL_QUERY,
                                 {"query": f"email:{_search_value(email)}"})
        except ShopifyError as exc:
            if exc.code == "auth":      # no read_customers scope: issue the card unattached
                log.info("shopify customer look-up not allowed; gift card issued unattached")
                return None
            raise
        for node in ((data.get("customers") or {}).get("nodes") or []):
            if (node.get("email") or "").strip().lower() == email.lower():
                return node.get("id")
        return None

    def _gift_card_by_code(self, code: str) -> dict | None:
        code = gift_card_code(code)
        data = self._graphql("ClaimsPortalGiftCardSearch", GIFT_CARD_SEARCH_QUERY,
                             {"query": _search_value(code)})
        tail = code[-4:].lower()
        for node in ((data.get("giftCards") or {}).get("nodes") or []):
            if (node.get("lastCharacters") or "").lower() == tail and node.get("id"):
                return node
        return None

    def find_gift_card(self, code: str) -> str | None:
        """The id of the gift card with this code, or None. (The giftCards search matches codes
        in its default field; the result is checked against the last four characters, the part
        of a code Shopify reveals.)"""
        if len(gift_card_code(code)) < 4:
            raise self._refuse("A code is required to find a gift card.")
        card = self._gift_card_by_code(code)
        return card["id"] if card else None

    # --- reshipments ----------------------------------------------------------------------------

    def create_replacement_order(self, *, order_id: str, lines: list[dict], email: str, note: str,
                                 marker: str, shipping_address: dict | None = None
                                 ) -> WriteResult:
        """A zero-priced order for the replacement items: a draft order (tags ``claims-portal``
        and ``marker``; ``marker`` also in the note) completed into an order. Lines with a
        ``variant_id`` use the variant with a 100 % line discount (so stock and fulfilment work);
        others become custom lines at 0.00. An open draft left by an earlier attempt with the same
        marker is completed instead of creating another."""
        try:
            original = order_gid(order_id)
        except (TypeError, ValueError) as exc:
            raise self._refuse(str(exc))
        marker = (marker or "").strip()
        if not marker or len(marker) > MAX_TAG_LENGTH or "," in marker:
            raise self._refuse(f"The marker must be 1-{MAX_TAG_LENGTH} characters without commas "
                               "(it is used as a tag).", ["tags"])
        if not lines:
            raise self._refuse("A replacement needs at least one line.", ["lineItems"])
        line_items = [self._draft_line(line, marker, i) for i, line in enumerate(lines)]

        earlier = self._draft_with_marker(marker)
        if earlier:
            order = earlier.get("order")
            if earlier.get("status") == "COMPLETED" and isinstance(order, dict) and order.get("id"):
                return WriteResult(shopify_id=order["id"], name=order.get("name") or "")
            if earlier.get("status") != "COMPLETED":
                log.info("shopify: completing draft %s left by an earlier attempt", earlier["id"])
                return self._complete_draft(earlier["id"])

        text = (note or "").strip()
        if marker not in text:
            text = f"{text}\n{marker}".strip()
        text = f"{text}\nReplacement for order {_numeric_id(original)}"
        draft_input: dict[str, Any] = {
            "lineItems": line_items,
            "note": text,
            "tags": [APP_TAG, marker],
        }
        if (email or "").strip():
            draft_input["email"] = email.strip()
        if shipping_address:
            address = _mailing_address(shipping_address)
            if address:
                draft_input["shippingAddress"] = address

        data = self._graphql("ClaimsPortalDraftOrderCreate", DRAFT_ORDER_CREATE,
                             {"input": draft_input}, mutation=True)
        draft = self._payload(data, "draftOrderCreate").get("draftOrder")
        if not isinstance(draft, dict) or not draft.get("id"):
            raise self._error("bad_response", "Shopify didn't return the draft order.",
                              may_have_landed=True)
        return self._complete_draft(draft["id"])

    def _draft_line(self, line: Mapping[str, Any], marker: str, index: int) -> dict:
        quantity = line.get("quantity")
        if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 1:
            raise self._refuse(f"Line {index + 1}: the quantity must be a whole number of at "
                               "least 1.", ["lineItems", str(index), "quantity"])
        variant = line.get("variant_id")
        if variant not in (None, ""):
            try:
                variant_gid = _gid("ProductVariant", variant)
            except ValueError as exc:
                raise self._refuse(f"Line {index + 1}: {exc}",
                                   ["lineItems", str(index), "variantId"])
            return {"variantId": variant_gid, "quantity": quantity,
                    "appliedDiscount": {"valueType": "PERCENTAGE", "value": 100.0,
                                        "title": "Claim replacement", "description": marker}}
        sku = str(line.get("sku") or "").strip()
        title = str(line.get("title") or "").strip() or sku
        if not title:
            raise self._refuse(f"Line {index + 1} needs a title or a variant.",
                               ["lineItems", str(index), "title"])
        item = {"title": title, "quantity": quantity, "originalUnitPrice": "0.00",
                "requiresShipping": True, "taxable": False}
        if sku:
            item["sku"] = sku
        return item

    def _complete_draft(self, draft_id: str) -> WriteResult:
        # paymentPending is deprecated (2025-10+) and defaults to false: a zero total is paid.
        data = self._graphql("ClaimsPortalDraftOrderComplete", DRAFT_ORDER_COMPLETE,
                             {"id": draft_id}, mutation=True)
        try:
            payload = self._payload(data, "draftOrderComplete")
        except ShopifyError as exc:
            exc.message = f"{exc.message} (draft order {draft_id} was created but not completed)"
            exc.args = (exc.message,)
            raise
        order = (payload.get("draftOrder") or {}).get("order")
        if not isinstance(order, dict) or not order.get("id"):
            raise self._error("bad_response", "Shopify completed the draft order but returned no "
                              "order.", may_have_landed=True)
        return WriteResult(shopify_id=order["id"], name=order.get("name") or "")

    def _marker_query(self, marker: str) -> str:
        return f"tag:{_search_value(APP_TAG)} AND tag:{_search_value(marker)}"

    def _draft_with_marker(self, marker: str) -> dict | None:
        data = self._graphql("ClaimsPortalDraftOrderSearch", DRAFT_ORDER_SEARCH_QUERY,
                             {"query": self._marker_query(marker)})
        for node in ((data.get("draftOrders") or {}).get("nodes") or []):
            if _has_tag(node, marker) and node.get("id"):
                return node
        return None

    def find_replacement_order(self, marker: str) -> WriteResult | None:
        """The replacement order tagged ``claims-portal`` and ``marker`` (found among orders, or
        as the order of a completed draft carrying the marker), or None."""
        marker = (marker or "").strip()
        if not marker:
            raise self._refuse("A marker is required to find a replacement order.")
        data = self._graphql("ClaimsPortalOrderSearch", ORDER_SEARCH_QUERY,
                             {"query": self._marker_query(marker)})
        for node in ((data.get("orders") or {}).get("nodes") or []):
            if _has_tag(node, marker) and node.get("id"):
                return WriteResult(shopify_id=node["id"], name=node.get("name") or "")
        draft = self._draft_with_marker(marker)
        order = (draft or {}).get("order")
        if isinstance(order, dict) and order.get("id"):
            return WriteResult(shopify_id=order["id"], name=order.get("name") or "")
        return None


# --- module helpers ------------------------------------------------------------------------------

def _has_tag(node: Mapping[str, Any], marker: str) -> bool:
    tags = node.get("tags") or []
    if isinstance(tags, str):
        tags = tags.split(",")
    return any(str(t).strip().lower() == marker.lower() for t in tags)


def _pick_parent_transaction(transactions: list[dict], amount_cents: int,
                             currency: str) -> dict | str:
    """The successful SALE/CAPTURE that can take the whole refund (what it took minus what was
    already refunded against it), preferring a card over a gift card, then the largest; or a
    message saying why none can."""
    def minor(txn: dict) -> int:
        money = (txn.get("amountSet") or {}).get("presentmentMoney") or \
            (txn.get("amountSet") or {}).get("shopMoney") or {}
        return _to_minor(money.get("amount", "0"), currency)

    refunded: dict[str, int] = {}
    for txn in transactions:
        if txn.get("kind") == "REFUND" and txn.get("status") == "SUCCESS":
            parent = (txn.get("parentTransaction") or {}).get("id")
            if parent:
                refunded[parent] = refunded.get(parent, 0) + minor(txn)
    candidates = []
    for txn in transactions:
        if txn.get("kind") in ("SALE", "CAPTURE") and txn.get("status") == "SUCCESS" \
                and txn.get("id") and txn.get("gateway"):
            candidates.append((minor(txn) - refunded.get(txn["id"], 0), txn))
    if not candidates:
        return "The order has no successful payment to refund."
    fitting = [(left, txn) for left, txn in candidates if left >= amount_cents]
    if not fitting:
        most = max(left for left, _ in candidates)
        return (f"No single payment on the order can take a refund of "
                f"{money_amount(amount_cents, currency)} {currency} "
                f"(at most {money_amount(max(most, 0), currency)} {currency}).")
    fitting.sort(key=lambda pair: (pair[1].get("gateway") == "gift_card", -pair[0]))
    return fitting[0][1]


def _first_cost(errors: list) -> dict | None:
    for e in errors:
        cost = ((e or {}).get("extensions") or {}).get("cost") if isinstance(e, dict) else None
        if cost:
            return cost
    return None


def _retry_after_cost(cost: Mapping[str, Any] | None) -> float:
    """Seconds until the bucket holds the requested cost again:
    (requestedQueryCost - currentlyAvailable) / restoreRate."""
    try:
        status = cost["throttleStatus"]
        rate = float(status["restoreRate"])
        needed = float(cost["requestedQueryCost"]) - float(status["currentlyAvailable"])
    except (TypeError, KeyError, ValueError):
        return DEFAULT_THROTTLE_WAIT
    if rate <= 0:
        return DEFAULT_THROTTLE_WAIT
    return round(needed / rate, 3) if needed > 0 else 1.0


def _retry_after_header(value: str | None) -> float:
    if not value:
        return DEFAULT_THROTTLE_WAIT
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return DEFAULT_THROTTLE_WAIT
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - datetime.now(UTC)).total_seconds(), 0.0)


def _error_text(resp: httpx.Response) -> str:
    try:
        body = resp.json()
    except ValueError:
        return resp.text[:200].strip() or "(no details)"
    errors = body.get("errors") if isinstance(body, dict) else body
    if isinstance(errors, list):
        errors = "; ".join(str(e.get("message", e)) if isinstance(e, dict) else str(e)
                           for e in errors)
    return str(errors)[:300]
