"""The Shopify Admin write-back adapter against a fake Admin GraphQL endpoint (pytest-httpserver).

The fake records every request (headers and parsed JSON body) and answers per GraphQL operation
with the response shapes of Shopify's Admin GraphQL reference (2026-10); the tests then assert on
the documents and variables that were actually sent.
"""
from __future__ import annotations

import json
import re
import threading

import httpx
import pytest
from pytest_httpserver import HTTPServer
from werkzeug.wrappers import Request, Response

from claims_core.adapters.shopify_admin import (
    DEFAULT_API_VERSION,
    ShopifyAdmin,
    ShopifyCredentials,
    ShopifyError,
    WriteResult,
    money_amount,
    normalize_shop_domain,
    order_gid,
)

TOKEN = "shpat_0123456789abcdef0123456789abcdef"
PATH = f"/admin/api/{DEFAULT_API_VERSION}/graphql.json"
ORDER = "gid://shopify/Order/820982911946154508"


class FakeShopify:
    """Answers by ``operationName``; each queued answer is used once, the last one repeats."""

    def __init__(self):
        self.requests: list[dict] = []
        self.answers: dict[str, list] = {}

    def on(self, operation: str, body=None, status: int = 200, headers: dict | None = None,
           raw: str | None = None):
        self.answers.setdefault(operation, []).append((status, body, headers or {}, raw))
        return self

    def __call__(self, request: Request) -> Response:
        payload = json.loads(request.get_data())
        self.requests.append({"headers": dict(request.headers), "body": payload,
                              "path": request.path})
        operation = payload.get("operationName")
        queue = self.answers.get(operation)
        if not queue:
            return Response(json.dumps({"errors": [{"message": f"no fake for {operation}"}]}),
                            status=500, content_type="application/json")
        status, body, headers, raw = queue.pop(0) if len(queue) > 1 else queue[0]
        text = raw if raw is not None else json.dumps(body)
        return Response(text, status=status, headers=headers, content_type="application/json")

    # helpers for assertions
    def operations(self) -> list[str]:
        return [r["body"]["operationName"] for r in self.requests]

    def sent(self, operation: str) -> dict:
        matches = [r["body"] for r in self.requests if r["body"]["operationName"] == operation]
        assert matches, f"{operation} was not sent; sent: {self.operations()}"
        return matches[-1]


def _cost(requested=10, available=990.0):
    return {"cost": {"requestedQueryCost": requested, "actualQueryCost": requested,
                     "throttleStatus": {"maximumAvailable": 2000.0,
                                        "currentlyAvailable": available, "restoreRate": 100.0}}}


def ok(data: dict) -> dict:
    return {"data": data, "extensions": _cost()}


@pytest.fixture
def fake(httpserver: HTTPServer):
    fake = FakeShopify()
    httpserver.expect_request(PATH, method="POST").respond_with_handler(fake)
    return fake


@pytest.fixture
def admin(httpserver: HTTPServer, fake):
    creds = ShopifyCredentials("  https://Claims-Test.myshopify.com/admin  ", TOKEN)
    client = ShopifyAdmin(creds, base_url=httpserver.url_for(PATH), timeout=5.0)
    yield client
    client.close()


def money(amount: str, currency: str = "USD") -> dict:
    return {"shopMoney": {"amount": amount, "currencyCode": currency},
            "presentmentMoney": {"amount": amount, "currencyCode": currency}}


def txn(id_: int, kind: str, amount: str, *, gateway="shopify_payments", status="SUCCESS",
        parent: int | None = None) -> dict:
    return {"id": f"gid://shopify/OrderTransaction/{id_}", "gateway": gateway, "kind": kind,
            "status": status,
            "parentTransaction": {"id": f"gid://shopify/OrderTransaction/{parent}"}
            if parent else None,
            "amountSet": money(amount)}


def refund_context(transactions, refunds=()) -> dict:
    return ok({"order": {"id": ORDER, "currencyCode": "USD", "presentmentCurrencyCode": "USD",
                         "refunds": list(refunds), "transactions": transactions}})


# --- refunds -------------------------------------------------------------------------------------

def test_refund_looks_up_the_capture_and_refunds_against_it_with_an_idempotency_key(admin, fake):
    fake.on("ClaimsPortalRefundContext", refund_context([
        txn(1001, "AUTHORIZATION", "40.00"),
        txn(1002, "CAPTURE", "40.00", parent=1001),
        txn(1003, "SALE", "10.00", gateway="gift_card"),
        txn(1004, "REFUND", "5.00", parent=1002),
        txn(1005, "SALE", "99.00", status="FAILURE"),
    ]))
    fake.on("ClaimsPortalRefundCreate", ok({"refundCreate": {
        "refund": {"id": "gid://shopify/Refund/555", "note": "CLM-1042 r7",
                   "totalRefundedSet": {"presentmentMoney": {"amount": "12.5",
                                                             "currencyCode": "USD"}}},
        "userErrors": []}}))

    result = admin.create_refund(order_id="820982911946154508", amount_cents=1250,
                                 currency="usd", note="CLM-1042 r7",
                                 idempotency_key="3f1c2a4e-claim-1042-r7")

    assert result == WriteResult(shopify_id="gid://shopify/Refund/555")
    assert fake.operations() == ["ClaimsPortalRefundContext", "ClaimsPortalRefundCreate"]
    lookup = fake.sent("ClaimsPortalRefundContext")
    assert lookup["variables"] == {"id": ORDER}
    assert re.search(r"order\(id: \$id\)", lookup["query"])
    assert "transactions(first:" in lookup["query"] and "amountSet" in lookup["query"]

    sent = fake.sent("ClaimsPortalRefundCreate")
    assert "refundCreate(input: $input) @idempotent(key: $idempotencyKey)" in sent["query"]
    assert sent["variables"] == {
        "input": {
            "orderId": ORDER,
            "note": "CLM-1042 r7",
            "notify": False,
            "currency": "USD",
            "transactions": [{
                "orderId": ORDER,
                "parentId": "gid://shopify/OrderTransaction/1002",   # the capture, not the auth
                "gateway": "shopify_payments",
                "kind": "REFUND",
                "amount": "12.50",
            }],
        },
        "idempotencyKey": "3f1c2a4e-claim-1042-r7",
    }
    for request in fake.requests:
        assert request["headers"]["X-Shopify-Access-Token"] == TOKEN
        assert request["path"] == PATH


def test_refund_already_on_the_order_with_the_same_note_is_not_sent_again(admin, fake):
    fake.on("ClaimsPortalRefundContext", refund_context(
        [txn(1002, "CAPTURE", "40.00")],
        refunds=[{"id": "gid://shopify/Refund/9", "note": "other"},
                 {"id": "gid://shopify/Refund/10", "note": "CLM-1042 r7"}]))

    result = admin.create_refund(order_id=ORDER, amount_cents=1250, currency="USD",
                                 note="CLM-1042 r7", idempotency_key="k-1")

    assert result.shopify_id == "gid://shopify/Refund/10"
    assert fake.operations() == ["ClaimsPortalRefundContext"]


def test_refund_user_errors_are_a_non_retryable_user_error_with_the_details(admin, fake):
    fake.on("ClaimsPortalRefundContext", refund_context([txn(1002, "CAPTURE", "40.00")]))
    user_errors = [{"field": ["transactions", "0", "amount"],
                    "message": "Amount cannot be greater than the refundable amount"},
                   {"field": None, "message": "Refund could not be processed"}]
    fake.on("ClaimsPortalRefundCreate",
            ok({"refundCreate": {"refund": None, "userErrors": user_errors}}))

    with pytest.raises(ShopifyError) as caught:
        admin.create_refund(order_id=ORDER, amount_cents=1250, currency="USD", note="n",
                            idempotency_key="k-2")

    err = caught.value
    assert err.code == "user_error"
    assert err.retryable is False
    assert err.details == user_errors
    assert err.message == ("Amount cannot be greater than the refundable amount; "
                           "Refund could not be processed")


def test_refund_larger_than_any_single_payment_is_refused_before_writing(admin, fake):
    fake.on("ClaimsPortalRefundContext", refund_context([
        txn(1002, "CAPTURE", "40.00"), txn(1004, "REFUND", "35.00", parent=1002)]))

    with pytest.raises(ShopifyError) as caught:
        admin.create_refund(order_id=ORDER, amount_cents=1000, currency="USD", note="n",
                            idempotency_key="k-3")

    assert caught.value.code == "user_error"
    assert "at most 5.00 USD" in caught.value.message
    assert fake.operations() == ["ClaimsPortalRefundContext"]


def test_refund_in_another_currency_than_the_order_is_refused(admin, fake):
    fake.on("ClaimsPortalRefundContext", refund_context([txn(1002, "CAPTURE", "40.00")]))

    with pytest.raises(ShopifyError) as caught:
        admin.create_refund(order_id=ORDER, amount_cents=1000, currency="EUR", note="n",
                            idempotency_key="k-4")

    assert caught.value.code == "user_error"
    assert "USD" in caught.value.message
    assert fake.operations() == ["ClaimsPortalRefundContext"]


def test_refund_of_a_missing_order_is_not_found(admin, fake):
    fake.on("ClaimsPortalRefundContext", ok({"order": None}))

    with pytest.raises(ShopifyError) as caught:
        admin.create_refund(order_id="42", amount_cents=100, currency="USD", note="n",
                            idempotency_key="k-5")

    assert caught.value.code == "not_found"
    assert fake.sent("ClaimsPortalRefundContext")["variables"] == {"id": "gid://shopify/Order/42"}


def test_find_refund_by_marker_in_the_note(admin, fake):
    fake.on("ClaimsPortalOrderRefunds", ok({"order": {"id": ORDER, "refunds": [
        {"id": "gid://shopify/Refund/1", "note": "Refund for CLM-1000 r1",
         "createdAt": "2026-11-20T10:00:00Z"},
        {"id": "gid://shopify/Refund/2", "note": "Claim CLM-1042 resolution r7",
         "createdAt": "2026-11-21T10:00:00Z"},
        {"id": "gid://shopify/Refund/3", "note": None, "createdAt": "2026-11-22T10:00:00Z"},
    ]}}))

    assert admin.find_refund("820982911946154508", "CLM-1042 resolution r7") == \
        "gid://shopify/Refund/2"
    assert admin.find_refund(ORDER, "CLM-9999") is None
    assert fake.sent("ClaimsPortalOrderRefunds")["variables"] == {"id": ORDER}


# --- errors --------------------------------------------------------------------------------------

def test_throttled_cost_error_computes_retry_after_from_throttle_status(admin, fake):
    fake.on("ClaimsPortalOrderRefunds", {
        "errors": [{"message": "Throttled",
                    "extensions": {"code": "THROTTLED",
                                   "documentation": "https://shopify.dev/api/usage/rate-limits"}}],
        "extensions": {"cost": {"requestedQueryCost": 752, "actualQueryCost": None,
                                "throttleStatus": {"maximumAvailable": 1000.0,
                                                   "currentlyAvailable": 666,
                                                   "restoreRate": 50.0}}}})

    with pytest.raises(ShopifyError) as caught:
        admin.find_refund(ORDER, "CLM-1")

    err = caught.value
    assert err.code == "throttled"
    assert err.retryable is True
    assert err.retry_after == pytest.approx((752 - 666) / 50.0)   # 1.72 s
    assert err.may_have_landed is False


def test_throttled_without_cost_information_waits_two_seconds(admin, fake):
    fake.on("ClaimsPortalShop", {"errors": [{"message": "Throttled",
                                             "extensions": {"code": "THROTTLED"}}]})

    with pytest.raises(ShopifyError) as caught:
        admin.check_connection()

    assert (caught.value.code, caught.value.retry_after) == ("throttled", 2.0)


def test_http_429_uses_the_retry_after_header(admin, fake):
    fake.on("ClaimsPortalShop", {"errors": "Exceeded 2 calls per second for api client."},
            status=429, headers={"Retry-After": "4.0"})

    with pytest.raises(ShopifyError) as caught:
        admin.check_connection()

    assert caught.value.code == "throttled"
    assert caught.value.retry_after == 4.0
    assert caught.value.http_status == 429


def test_401_is_auth_and_the_token_appears_nowhere(admin, fake):
    fake.on("ClaimsPortalShop", {"errors": "[API] Invalid API key or access token "
                                           "(unrecognized login or wrong password)"}, status=401)

    with pytest.raises(ShopifyError) as caught:
        admin.check_connection()

    err = caught.value
    assert err.code == "auth"
    assert err.retryable is False
    assert "Invalid API key" in err.message
    for text in (str(err), repr(err), err.message, repr(err.details), repr(admin),
                 repr(admin.creds)):
        assert TOKEN not in text
    assert fake.requests[0]["headers"]["X-Shopify-Access-Token"] == TOKEN


def test_a_token_echoed_back_by_shopify_is_redacted(admin, fake):
    fake.on("ClaimsPortalShop", {"errors": f"[API] Invalid access token {TOKEN}"}, status=401)

    with pytest.raises(ShopifyError) as caught:
        admin.check_connection()

    assert caught.value.code == "auth"
    assert TOKEN not in str(caught.value)
    assert "[redacted]" in caught.value.message


def test_access_denied_graphql_error_is_auth(admin, fake):
    fake.on("ClaimsPortalGiftCardCreate", {"errors": [{
        "message": "Access denied for giftCardCreate field. Required access: `write_gift_cards` "
                   "access scope.",
        "extensions": {"code": "ACCESS_DENIED"}}], "data": {"giftCardCreate": None}})

    with pytest.raises(ShopifyError) as caught:
        admin.create_gift_card(amount_cents=500, currency="USD", code="CLAIM7K2Q9X4M", note="n")

    assert caught.value.code == "auth"
    assert "write_gift_cards" in caught.value.message


def test_5xx_on_a_write_is_retryable_and_may_have_landed(admin, fake):
    fake.on("ClaimsPortalGiftCardCreate", raw="<html>Bad gateway</html>", status=502)

    with pytest.raises(ShopifyError) as caught:
        admin.create_gift_card(amount_cents=500, currency="USD", code="CLAIM7K2Q9X4M", note="n")

    err = caught.value
    assert (err.code, err.retryable, err.may_have_landed, err.http_status) == \
        ("server", True, True, 502)


def test_a_timeout_after_sending_is_a_network_error_that_may_have_landed(httpserver):
    release = threading.Event()

    def slow(request: Request) -> Response:
        release.wait(3)
        return Response(json.dumps(ok({"shop": {"name": "late"}})),
                        content_type="application/json")

    httpserver.expect_request(PATH, method="POST").respond_with_handler(slow)
    creds = ShopifyCredentials("claims-test", TOKEN)
    try:
        with ShopifyAdmin(creds, base_url=httpserver.url_for(PATH), timeout=0.2) as admin, \
                pytest.raises(ShopifyError) as caught:
            admin.create_gift_card(amount_cents=500, currency="USD", code="CLAIM7K2Q9X4M",
                                   note="n")
    finally:
        release.set()

    err = caught.value
    assert (err.code, err.retryable, err.may_have_landed) == ("network", True, True)
    assert TOKEN not in str(err)


def test_a_connection_that_never_opened_did_not_land():
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    creds = ShopifyCredentials("claims-test.myshopify.com", TOKEN)
    with ShopifyAdmin(creds, transport=httpx.MockTransport(refuse)) as admin, \
            pytest.raises(ShopifyError) as caught:
        admin.create_gift_card(amount_cents=500, currency="USD", code="CLAIM7K2Q9X4M", note="n")

    assert (caught.value.code, caught.value.retryable, caught.value.may_have_landed) == \
        ("network", True, False)


def test_an_answer_that_is_not_json_is_a_bad_response(admin, fake):
    fake.on("ClaimsPortalShop", raw="not json at all")

    with pytest.raises(ShopifyError) as caught:
        admin.check_connection()

    assert (caught.value.code, caught.value.retryable) == ("bad_response", False)


def test_check_connection_returns_the_shop_name(admin, fake):
    fake.on("ClaimsPortalShop", ok({"shop": {"name": "Claims Test Shop",
                                             "myshopifyDomain": "claims-test.myshopify.com"}}))

    assert admin.check_connection() == "Claims Test Shop"
    assert "shop { name myshopifyDomain }" in fake.sent("ClaimsPortalShop")["query"]


# --- gift cards ----------------------------------------------------------------------------------

def gift_card_created(code="CLAIM7K2Q9X4M", amount="25.0"):
    return ok({"giftCardCreate": {
        "giftCard": {"id": "gid://shopify/GiftCard/777", "maskedCode": "•••• •••• •••• X4M",
                     "lastCharacters": code[-4:], "note": "CLM-1042 r8",
                     "initialValue": {"amount": amount, "currencyCode": "USD"}},
        "giftCardCode": code.lower(),
        "userErrors": []}})


def test_gift_card_passes_the_code_and_amount_and_returns_shopifys_code(admin, fake):
    fake.on("ClaimsPortalGiftCardCreate", gift_card_created())

    result = admin.create_gift_card(amount_cents=2500, currency="USD", code="CLAIM7K2Q9X4M",
                                    note="CLM-1042 r8")

    assert result == WriteResult(shopify_id="gid://shopify/GiftCard/777", code="claim7k2q9x4m")
    assert fake.operations() == ["ClaimsPortalGiftCardCreate"]     # no customer look-up
    sent = fake.sent("ClaimsPortalGiftCardCreate")
    assert "giftCardCreate(input: $input)" in sent["query"]
    assert "giftCardCode" in sent["query"]
    assert sent["variables"] == {"input": {
        "code": "CLAIM7K2Q9X4M",
        "note": "CLM-1042 r8",
        "initialAmount": {"amount": "25.00", "currencyCode": "USD"},
    }}


def test_gift_card_in_yen_is_issued_in_whole_yen(admin, fake):
    fake.on("ClaimsPortalGiftCardCreate", gift_card_created())

    admin.create_gift_card(amount_cents=3000, currency="JPY", code="CLAIM7K2Q9X4M", note="n")

    assert fake.sent("ClaimsPortalGiftCardCreate")["variables"]["input"]["initialAmount"] == \
        {"amount": "3000", "currencyCode": "JPY"}


def test_gift_card_is_attached_to_the_customer_found_by_email(admin, fake):
    fake.on("ClaimsPortalCustomerByEmail", ok({"customers": {"nodes": [
        {"id": "gid://shopify/Customer/544365967", "email": "Ana@Example.com"}]}}))
    fake.on("ClaimsPortalGiftCardCreate", gift_card_created())

    admin.create_gift_card(amount_cents=2500, currency="USD", code="CLAIM7K2Q9X4M",
                           note="CLM-1042 r8", customer_email="ana@example.com")

    assert fake.sent("ClaimsPortalCustomerByEmail")["variables"] == \
        {"query": 'email:"ana@example.com"'}
    assert fake.sent("ClaimsPortalGiftCardCreate")["variables"]["input"]["customerId"] == \
        "gid://shopify/Customer/544365967"


def test_gift_card_without_customer_scope_is_issued_unattached(admin, fake):
    fake.on("ClaimsPortalCustomerByEmail", {"errors": [{
        "message": "Access denied for customers field.", "extensions": {"code": "ACCESS_DENIED"}}]})
    fake.on("ClaimsPortalGiftCardCreate", gift_card_created())

    result = admin.create_gift_card(amount_cents=2500, currency="USD", code="CLAIM7K2Q9X4M",
                                    note="n", customer_email="ana@example.com")

    assert result.shopify_id == "gid://shopify/GiftCard/777"
    assert "customerId" not in fake.sent("ClaimsPortalGiftCardCreate")["variables"]["input"]


def test_gift_card_code_taken_by_our_earlier_attempt_returns_that_card(admin, fake):
    fake.on("ClaimsPortalGiftCardCreate", ok({"giftCardCreate": {
        "giftCard": None, "giftCardCode": None,
        "userErrors": [{"field": ["input", "code"], "code": "TAKEN",
                        "message": "Code has already been taken"}]}}))
    fake.on("ClaimsPortalGiftCardSearch", ok({"giftCards": {"nodes": [
        {"id": "gid://shopify/GiftCard/777", "maskedCode": "•••• •••• •••• x4m",
         "lastCharacters": "Q9X4M"[-4:], "note": "CLM-1042 r8"}]}}))

    result = admin.create_gift_card(amount_cents=2500, currency="USD", code="CLAIM7K2Q9X4M",
                                    note="CLM-1042 r8")

    assert result.shopify_id == "gid://shopify/GiftCard/777"
    assert fake.sent("ClaimsPortalGiftCardSearch")["variables"] == {"query": '"CLAIM7K2Q9X4M"'}


def test_gift_card_code_taken_by_another_card_is_a_user_error(admin, fake):
    fake.on("ClaimsPortalGiftCardCreate", ok({"giftCardCreate": {
        "giftCard": None, "giftCardCode": None,
        "userErrors": [{"field": ["input", "code"], "code": "TAKEN",
                        "message": "Code has already been taken"}]}}))
    fake.on("ClaimsPortalGiftCardSearch", ok({"giftCards": {"nodes": [
        {"id": "gid://shopify/GiftCard/1", "maskedCode": "•••• x4m", "lastCharacters": "9X4M",
         "note": "someone else's card"}]}}))

    with pytest.raises(ShopifyError) as caught:
        admin.create_gift_card(amount_cents=2500, currency="USD", code="CLAIM7K2Q9X4M",
                               note="CLM-1042 r8")

    assert caught.value.code == "user_error"
    assert caught.value.details[0]["code"] == "TAKEN"


def test_gift_card_code_with_hyphens_is_sent_as_letters_and_digits(admin, fake):
    fake.on("ClaimsPortalGiftCardCreate", gift_card_created("CREDIT7K2Q9X4MPA"))

    result = admin.create_gift_card(amount_cents=2500, currency="USD", code="CREDIT-7K2Q9X4MPA",
                                    note="n")

    assert fake.sent("ClaimsPortalGiftCardCreate")["variables"]["input"]["code"] == \
        "CREDIT7K2Q9X4MPA"
    assert result.code == "credit7k2q9x4mpa"          # what Shopify reports, to show the customer


@pytest.mark.parametrize("code", ["SHORT1", "SHORT-12", "x" * 21, "", "CLAIM_7K2Q9X4M",
                                  "CRÉDIT7K2Q9X"])
def test_gift_card_code_shopify_would_refuse_is_refused_without_a_request(admin, fake, code):
    with pytest.raises(ShopifyError) as caught:
        admin.create_gift_card(amount_cents=2500, currency="USD", code=code, note="n")

    assert caught.value.code == "user_error"
    assert fake.requests == []


def test_find_gift_card_by_code(admin, fake):
    fake.on("ClaimsPortalGiftCardSearch", ok({"giftCards": {"nodes": [
        {"id": "gid://shopify/GiftCard/5", "maskedCode": "•••• aaaa", "lastCharacters": "aaaa",
         "note": None},
        {"id": "gid://shopify/GiftCard/777", "maskedCode": "•••• x4m", "lastCharacters": "9x4m",
         "note": None}]}}))

    assert admin.find_gift_card("CLAIM-7K2Q-9X4M") == "gid://shopify/GiftCard/777"
    sent = fake.sent("ClaimsPortalGiftCardSearch")
    assert "giftCards(first: 10, query: $query)" in sent["query"]
    assert sent["variables"] == {"query": '"CLAIM7K2Q9X4M"'}


def test_find_gift_card_none(admin, fake):
    fake.on("ClaimsPortalGiftCardSearch", ok({"giftCards": {"nodes": []}}))

    assert admin.find_gift_card("CLAIM7K2Q9X4M") is None


# --- replacement orders --------------------------------------------------------------------------

MARKER = "CLM-1042-r9"


def no_drafts():
    return ok({"draftOrders": {"nodes": []}})


def draft_created():
    return ok({"draftOrderCreate": {
        "draftOrder": {"id": "gid://shopify/DraftOrder/276395349", "name": "#D12",
                       "status": "OPEN"},
        "userErrors": []}})


def draft_completed():
    return ok({"draftOrderComplete": {
        "draftOrder": {"id": "gid://shopify/DraftOrder/276395349", "status": "COMPLETED",
                       "order": {"id": "gid://shopify/Order/1073459980", "name": "#1042"}},
        "userErrors": []}})


def test_replacement_order_is_a_zero_priced_draft_completed_into_an_order(admin, fake):
    fake.on("ClaimsPortalDraftOrderSearch", no_drafts())
    fake.on("ClaimsPortalDraftOrderCreate", draft_created())
    fake.on("ClaimsPortalDraftOrderComplete", draft_completed())

    result = admin.create_replacement_order(
        order_id="820982911946154508",
        lines=[{"title": "Mug", "sku": "MUG-1", "quantity": 2, "variant_id": "43729076"},
               {"title": "Gift wrap", "sku": "", "quantity": 1, "variant_id": None}],
        email="ana@example.com", note="Replacement for claim CLM-1042", marker=MARKER,
        shipping_address={"first_name": "Ana", "last_name": "Lima", "address1": "1 Main St",
                          "city": "Ottawa", "province_code": "on", "zip": "K1A 0B1",
                          "country_code": "ca", "phone": ""})

    assert result == WriteResult(shopify_id="gid://shopify/Order/1073459980", name="#1042")
    assert fake.operations() == ["ClaimsPortalDraftOrderSearch", "ClaimsPortalDraftOrderCreate",
                                 "ClaimsPortalDraftOrderComplete"]
    assert fake.sent("ClaimsPortalDraftOrderSearch")["variables"] == \
        {"query": f'tag:"claims-portal" AND tag:"{MARKER}"'}

    sent = fake.sent("ClaimsPortalDraftOrderCreate")
    assert "draftOrderCreate(input: $input)" in sent["query"]
    draft = sent["variables"]["input"]
    assert draft["lineItems"] == [
        {"variantId": "gid://shopify/ProductVariant/43729076", "quantity": 2,
         "appliedDiscount": {"valueType": "PERCENTAGE", "value": 100.0,
                             "title": "Claim replacement", "description": MARKER}},
        {"title": "Gift wrap", "quantity": 1, "originalUnitPrice": "0.00",
         "requiresShipping": True, "taxable": False},
    ]
    assert draft["tags"] == ["claims-portal", MARKER]
    assert draft["email"] == "ana@example.com"
    assert MARKER in draft["note"] and "Replacement for claim CLM-1042" in draft["note"]
    assert "820982911946154508" in draft["note"]
    assert draft["shippingAddress"] == {
        "firstName": "Ana", "lastName": "Lima", "address1": "1 Main St", "city": "Ottawa",
        "provinceCode": "ON", "zip": "K1A 0B1", "countryCode": "CA"}

    complete = fake.sent("ClaimsPortalDraftOrderComplete")
    assert complete["variables"] == {"id": "gid://shopify/DraftOrder/276395349"}
    assert "draftOrderComplete(id: $id)" in complete["query"]
    assert "order { id name }" in complete["query"]


@pytest.mark.parametrize("given, expected", [
    ({"name": "Ana Lima", "line1": "1 Main St", "state": "ON", "country": "ca",
      "postal_code": "K1A 0B1"},
     {"firstName": "Ana", "lastName": "Lima", "address1": "1 Main St", "provinceCode": "ON",
      "countryCode": "CA", "zip": "K1A 0B1"}),
    ({"address1": "1 Main St", "province": "Ontario", "country": "Canada", "city": ""},
     {"address1": "1 Main St", "province": "Ontario", "country": "Canada"}),
])
def test_shipping_address_keys_become_mailing_address_input(admin, fake, given, expected):
    fake.on("ClaimsPortalDraftOrderSearch", no_drafts())
    fake.on("ClaimsPortalDraftOrderCreate", draft_created())
    fake.on("ClaimsPortalDraftOrderComplete", draft_completed())

    admin.create_replacement_order(order_id=ORDER, email="", note="", marker=MARKER,
                                   lines=[{"title": "Mug", "quantity": 1}],
                                   shipping_address=given)

    assert fake.sent("ClaimsPortalDraftOrderCreate")["variables"]["input"]["shippingAddress"] \
        == expected


def test_custom_lines_are_zero_priced_with_their_sku(admin, fake):
    fake.on("ClaimsPortalDraftOrderSearch", no_drafts())
    fake.on("ClaimsPortalDraftOrderCreate", draft_created())
    fake.on("ClaimsPortalDraftOrderComplete", draft_completed())

    admin.create_replacement_order(order_id=ORDER, email="", note="", marker=MARKER,
                                   lines=[{"title": "Lamp shade", "sku": "LS-9", "quantity": 3}])

    draft = fake.sent("ClaimsPortalDraftOrderCreate")["variables"]["input"]
    assert draft["lineItems"] == [{"title": "Lamp shade", "quantity": 3,
                                   "originalUnitPrice": "0.00", "requiresShipping": True,
                                   "taxable": False, "sku": "LS-9"}]
    assert "email" not in draft and "shippingAddress" not in draft
    assert draft["note"].startswith(MARKER)


def test_an_open_draft_left_by_an_earlier_attempt_is_completed_not_duplicated(admin, fake):
    fake.on("ClaimsPortalDraftOrderSearch", ok({"draftOrders": {"nodes": [
        {"id": "gid://shopify/DraftOrder/276395349", "name": "#D12", "status": "OPEN",
         "tags": ["claims-portal", MARKER], "order": None}]}}))
    fake.on("ClaimsPortalDraftOrderComplete", draft_completed())

    result = admin.create_replacement_order(order_id=ORDER, email="", note="n", marker=MARKER,
                                            lines=[{"title": "Mug", "quantity": 1}])

    assert result.name == "#1042"
    assert fake.operations() == ["ClaimsPortalDraftOrderSearch", "ClaimsPortalDraftOrderComplete"]


def test_draft_complete_user_error_names_the_draft(admin, fake):
    fake.on("ClaimsPortalDraftOrderSearch", no_drafts())
    fake.on("ClaimsPortalDraftOrderCreate", draft_created())
    fake.on("ClaimsPortalDraftOrderComplete", ok({"draftOrderComplete": {
        "draftOrder": None,
        "userErrors": [{"field": None, "message": "Mug is out of stock"}]}}))

    with pytest.raises(ShopifyError) as caught:
        admin.create_replacement_order(order_id=ORDER, email="", note="n", marker=MARKER,
                                       lines=[{"title": "Mug", "quantity": 1,
                                               "variant_id": "43729076"}])

    assert caught.value.code == "user_error"
    assert "Mug is out of stock" in str(caught.value)
    assert "gid://shopify/DraftOrder/276395349" in str(caught.value)


@pytest.mark.parametrize("lines, marker", [
    ([], MARKER),
    ([{"title": "Mug", "quantity": 0}], MARKER),
    ([{"title": "", "sku": "", "quantity": 1}], MARKER),
    ([{"title": "Mug", "quantity": 1}], "x" * 41),
    ([{"title": "Mug", "quantity": 1}], "a,b"),
])
def test_replacement_input_shopify_would_refuse_is_refused_without_a_request(admin, fake, lines,
                                                                             marker):
    with pytest.raises(ShopifyError) as caught:
        admin.create_replacement_order(order_id=ORDER, lines=lines, email="", note="",
                                       marker=marker)

    assert caught.value.code == "user_error"
    assert fake.requests == []


def test_find_replacement_order_by_tags(admin, fake):
    fake.on("ClaimsPortalOrderSearch", ok({"orders": {"nodes": [
        {"id": "gid://shopify/Order/1073459980", "name": "#1042",
         "tags": ["claims-portal", MARKER]}]}}))

    assert admin.find_replacement_order(MARKER) == \
        WriteResult(shopify_id="gid://shopify/Order/1073459980", name="#1042")
    sent = fake.sent("ClaimsPortalOrderSearch")
    assert sent["variables"] == {"query": f'tag:"claims-portal" AND tag:"{MARKER}"'}
    assert "orders(first: 5, query: $query)" in sent["query"]


def test_find_replacement_order_falls_back_to_a_completed_draft_then_none(admin, fake):
    fake.on("ClaimsPortalOrderSearch", ok({"orders": {"nodes": []}}))
    fake.on("ClaimsPortalDraftOrderSearch", ok({"draftOrders": {"nodes": [
        {"id": "gid://shopify/DraftOrder/1", "name": "#D1", "status": "COMPLETED",
         "tags": ["claims-portal", MARKER],
         "order": {"id": "gid://shopify/Order/5", "name": "#1001"}}]}}))
    fake.on("ClaimsPortalDraftOrderSearch", no_drafts())

    assert admin.find_replacement_order(MARKER) == \
        WriteResult(shopify_id="gid://shopify/Order/5", name="#1001")
    assert admin.find_replacement_order(MARKER) is None


def test_find_replacement_order_ignores_orders_without_the_exact_tag(admin, fake):
    fake.on("ClaimsPortalOrderSearch", ok({"orders": {"nodes": [
        {"id": "gid://shopify/Order/9", "name": "#9", "tags": ["claims-portal", "CLM-1042-r90"]}]}}))
    fake.on("ClaimsPortalDraftOrderSearch", no_drafts())

    assert admin.find_replacement_order(MARKER) is None


def test_shopify_error_retryable_follows_the_code_unless_overridden():
    assert ShopifyError("server", "x").retryable is True
    assert ShopifyError("user_error", "x").retryable is False
    err = ShopifyError("not_found", "order has no Shopify id", retryable=False)
    assert (err.code, err.message, err.retryable, str(err)) == \
        ("not_found", "order has no Shopify id", False, "not_found: order has no Shopify id")


# --- pure helpers --------------------------------------------------------------------------------

@pytest.mark.parametrize("cents, currency, expected", [
    (1250, "USD", "12.50"),
    (5, "EUR", "0.05"),
    (100000, "eur", "1000.00"),
    (1250, "JPY", "1250"),
    (0, "JPY", "0"),
    (990, "KRW", "990"),
    (1234, "KWD", "1.234"),
    (-1250, "USD", "-12.50"),
])
def test_money_amount(cents, currency, expected):
    assert money_amount(cents, currency) == expected


@pytest.mark.parametrize("bad", [(12.5, "USD"), (True, "USD"), (100, "US"), (100, "")])
def test_money_amount_refuses_non_integers_and_bad_currencies(bad):
    with pytest.raises((TypeError, ValueError)):
        money_amount(*bad)


def test_order_gid():
    assert order_gid("1234") == "gid://shopify/Order/1234"
    assert order_gid(" 1234 ") == "gid://shopify/Order/1234"
    assert order_gid("gid://shopify/Order/1234") == "gid://shopify/Order/1234"
    for bad in ("#1042", "", "gid://shopify/DraftOrder/1", "12a"):
        with pytest.raises(ValueError):
            order_gid(bad)


@pytest.mark.parametrize("raw", [
    "my-shop.myshopify.com",
    "  My-Shop.MyShopify.com  ",
    "https://my-shop.myshopify.com/",
    "HTTPS://MY-SHOP.myshopify.com/admin/orders?x=1",
    "http://my-shop.myshopify.com:443/admin",
    "my-shop",
    "https://admin.shopify.com/store/my-shop/orders",
])
def test_shop_domain_normalisation(raw):
    assert normalize_shop_domain(raw) == "my-shop.myshopify.com"
    assert ShopifyCredentials(raw, TOKEN).shop_domain == "my-shop.myshopify.com"


@pytest.mark.parametrize("raw", ["", "   ", "shop.example.com", "https://evil.com/x.myshopify.com",
                                 "my shop.myshopify.com"])
def test_shop_domain_that_is_not_a_myshopify_domain_is_refused(raw):
    with pytest.raises(ValueError):
        normalize_shop_domain(raw)


def test_credentials_default_endpoint_and_hidden_token():
    creds = ShopifyCredentials("my-shop", f"  {TOKEN}\n")
    assert creds.access_token == TOKEN
    assert creds.api_version == DEFAULT_API_VERSION == "2026-10"
    assert TOKEN not in repr(creds)
    with ShopifyAdmin(creds) as admin:
        assert admin.endpoint == "https://my-shop.myshopify.com/admin/api/2026-10/graphql.json"
    with pytest.raises(ValueError):
        ShopifyCredentials("my-shop", "   ")
    with pytest.raises(ValueError):
        ShopifyCredentials("my-shop", TOKEN, api_version="2026-13")


def test_older_api_version_sends_initial_value_instead_of_initial_amount(httpserver, fake):
    path = "/admin/api/2026-04/graphql.json"
    httpserver.expect_request(path, method="POST").respond_with_handler(fake)
    fake.on("ClaimsPortalGiftCardCreate", gift_card_created())
    creds = ShopifyCredentials("my-shop", TOKEN, api_version="2026-04")
    with ShopifyAdmin(creds, base_url=httpserver.url_for(path)) as admin:
        admin.create_gift_card(amount_cents=2500, currency="USD", code="CLAIM7K2Q9X4M", note="n")

    gift_input = fake.sent("ClaimsPortalGiftCardCreate")["variables"]["input"]
    assert gift_input["initialValue"] == "25.00"
    assert "initialAmount" not in gift_input
