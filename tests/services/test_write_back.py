"""Write-back to Shopify, end to end: a decision queues its writes in its own transaction, the
sender (``tick``) sends them to a local fake Shopify that checks the GraphQL documents and
variables and answers with Shopify's documented shapes (including ``userErrors`` and a THROTTLED
cost error), failures are visible with their reason and retried, and nothing is written twice."""
from __future__ import annotations

import json
from datetime import timedelta

import pytest
from pytest_httpserver import HTTPServer
from sqlalchemy import select, update
from werkzeug import Request, Response

from claims_core import domain
from claims_core.adapters import scheduler, shopify_write_back
from claims_core.infra.db import read_session, write_session
from claims_core.infra.models import Claim, Event, Order, ShopifyWrite, StoreSecret
from claims_core.services import claim_review, customer, decisions, shopify_connection
from claims_core.services import shopify_write_back as write_back_service
from claims_core.services.approvals import ResolutionInput

from tests.conftest import NOW
from tests.support.factories import claim_request, make_order

TOKEN = "shpat_" + "0123456789abcdef" * 2
ORDER_GID = "gid://shopify/Order/555001"


class FakeShopify:
    """Enough of the Admin GraphQL API for the portal's writes, with a script of failures."""

    def __init__(self):
        self.calls: list[tuple[str, dict]] = []
        self.refunds: list[dict] = []
        self.gift_cards: list[dict] = []
        self.orders: list[dict] = []
        self.fail_next: list[dict] = []  # canned answers to the next mutation(s)

    def __call__(self, request: Request) -> Response:
        assert request.headers.get("X-Shopify-Access-Token") == TOKEN
        body = json.loads(request.data)
        op, variables, query = body["operationName"], body["variables"], body["query"]
        assert op in query  # the document names the operation it runs
        self.calls.append((op, variables))
        if op.endswith(("Create", "Complete")) and self.fail_next:
            return self._json(self.fail_next.pop(0))
        handler = getattr(self, "op_" + op.removeprefix("ClaimsPortal"), None)
        assert handler is not None, f"unexpected operation {op}"
        return self._json({"data": handler(variables)})

    @staticmethod
    def _json(payload: dict) -> Response:
        return Response(json.dumps(payload), content_type="application/json")

    def op_RefundContext(self, v):
        assert v["id"] == ORDER_GID
        return {"order": {"id": ORDER_GID, "currencyCode": "USD", "presentmentCurrencyCode": "USD",
                          "refunds": [{"id": r["id"], "note": r["note"]} for r in self.refunds],
                          "transactions": [{
                              "id": "gid://shopify/OrderTransaction/9001", "gateway": "shopify_payments",
                              "kind": "SALE", "status": "SUCCESS", "parentTransaction": None,
                              "amountSet": {"shopMoney": {"amount": "200.00", "currencyCode": "USD"},
                                            "presentmentMoney": {"amount": "200.00",
                                                                 "currencyCode": "USD"}}}]}}

    def op_OrderRefunds(self, v):
        return {"order": {"id": v["id"], "refunds": [
            {"id": r["id"], "note": r["note"], "createdAt": "2026-11-21T15:00:00Z"} for r in self.refunds]}}

    def op_RefundCreate(self, v):
        rid = f"gid://shopify/Refund/{700 + len(self.refunds)}"
        self.refunds.append({"id": rid, "note": v["input"]["note"], "input": v["input"]})
        return {"refundCreate": {"refund": {"id": rid, "note": v["input"]["note"], "totalRefundedSet": {
            "presentmentMoney": {"amount": v["input"]["transactions"][0]["amount"],
                                 "currencyCode": "USD"}}}, "userErrors": []}}

    def op_CustomerByEmail(self, v):
        return {"customers": {"nodes": []}}

    def op_GiftCardCreate(self, v):
        gid = f"gid://shopify/GiftCard/{800 + len(self.gift_cards)}"
        code = v["input"]["code"]
        self.gift_cards.append({"id": gid, **v["input"]})
        return {"giftCardCreate": {"giftCard": {"id": gid, "maskedCode": "•••• " + code[-4:],
                                                "lastCharacters": code[-4:], "note": v["input"]["note"],
                                                "initialValue": {"amount": "1.00", "currencyCode": "USD"}},
                                   "giftCardCode": code, "userErrors": []}}

    def op_GiftCardSearch(self, v):
        return {"giftCards": {"nodes": []}}

    def op_DraftOrderCreate(self, v):
        self.orders.append(v["input"])
        return {"draftOrderCreate": {"draftOrder": {"id": "gid://shopify/DraftOrder/31", "name": "#D31",
                                                    "status": "OPEN"}, "userErrors": []}}

    def op_DraftOrderComplete(self, v):
        return {"draftOrderComplete": {"draftOrder": {
            "id": v["id"], "status": "COMPLETED",
            "order": {"id": "gid://shopify/Order/555999", "name": "#2099"}}, "userErrors": []}}

    def op_DraftOrderSearch(self, v):
        return {"draftOrders": {"nodes": []}}

    def op_OrderSearch(self, v):
        return {"orders": {"nodes": []}}

    def ops(self) -> list[str]:
        return [op.removeprefix("ClaimsPortal") for op, _v in self.calls]


@pytest.fixture
def shopify(httpserver: HTTPServer, monkeypatch):
    fake = FakeShopify()
    httpserver.expect_request("/graphql", method="POST").respond_with_handler(fake)
    monkeypatch.setenv("CLAIMS_SHOPIFY_BASE_URL", httpserver.url_for("/graphql"))
    return fake


def connect(engine):
    shopify_connection.save_connection(engine, "owner:olga", "test-shop", TOKEN)


def shopify_claim(engine, number="5001", issue="lost", resolution="refund"):
    built = make_order(engine, number, created=NOW - timedelta(days=25), shipments=[dict(
        status="in_transit", shipped=NOW - timedelta(days=20), last_scan=NOW - timedelta(days=15),
        items=[("MUG", 3), ("TOTE", 1)])], stock={"MUG": 10, "TOTE": 10})
    with write_session(engine) as s:
        s.execute(update(Order).where(Order.id == built.order_id).values(external_id="555001"))
    receipt = customer.file_claim(engine, claim_request(built, key=f"k{number}", issue=issue,
                                                        resolution=resolution), now=NOW)
    with read_session(engine) as s:
        return s.scalars(select(Claim).where(Claim.reference == receipt.reference)).one()


def writes(engine) -> list[ShopifyWrite]:
    with read_session(engine) as s:
        return list(s.scalars(select(ShopifyWrite).order_by(ShopifyWrite.id)))


def test_without_a_connection_decisions_stay_in_the_app(engine, shopify):
    claim = shopify_claim(engine)
    decisions.approve(engine, claim.id, "agent:a", [ResolutionInput("refund", claim.claimed_cents)], now=NOW)
    assert writes(engine) == []
    assert shopify_write_back.send_pending(engine) == {"done": 0, "retry": 0, "failed": 0}
    assert shopify.calls == []


def test_the_token_is_stored_never_shown_and_the_domain_is_checked(engine):
    connect(engine)
    conn = shopify_connection.connection(engine)
    assert conn.active and conn.shop_domain == "test-shop.myshopify.com"
    assert TOKEN not in repr(conn)
    with read_session(engine) as s:
        ev = s.scalars(select(Event).where(Event.action == "settings_changed")).all()[-1]
        assert TOKEN not in ev.details and "shopify_admin_token" in ev.details
    with pytest.raises(domain.ClaimRuleError):
        shopify_connection.save_connection(engine, "owner:olga", "https://evil.example.com/x")
    shopify_connection.save_connection(engine, "owner:olga", "test-shop", remove_token=True)
    assert not shopify_connection.connection(engine).active
    with read_session(engine) as s:
        assert s.get(StoreSecret, "shopify_admin_token") is None


def test_a_refund_lands_in_shopify_once(engine, shopify):
    connect(engine)
    claim = shopify_claim(engine)
    decisions.approve(engine, claim.id, "agent:a", [ResolutionInput("refund", claim.claimed_cents)], now=NOW)
    [w] = writes(engine)
    assert (w.kind, w.status) == ("refund", "pending")  # queued with the approval
    out = scheduler.tick(engine, now=NOW + timedelta(minutes=1)).shopify
    assert out == {"done": 1, "retry": 0, "failed": 0}
    assert shopify.ops() == ["RefundContext", "RefundCreate"]
    sent = shopify.refunds[0]["input"]
    assert sent["orderId"] == ORDER_GID and sent["notify"] is False
    assert sent["transactions"] == [{"orderId": ORDER_GID, "parentId": "gid://shopify/OrderTransaction/9001",
                                     "gateway": "shopify_payments", "kind": "REFUND",
                                     "amount": f"{claim.claimed_cents / 100:.2f}"}]
    assert claim.reference in sent["note"]
    [w] = writes(engine)
    assert (w.status, w.shopify_id, w.attempts) == ("done", "gid://shopify/Refund/700", 1)
    view = claim_review.claim_for_staff(engine, claim.id)
    assert [(x.kind, x.status, x.shopify_id) for x in view.writes] == [
        ("refund", "done", "gid://shopify/Refund/700")]
    # the sender runs again (another minute, another process): nothing is refunded twice
    shopify_write_back.send_pending(engine, now=NOW + timedelta(minutes=2))
    assert len(shopify.refunds) == 1 and len(shopify.calls) == 2


def test_a_refusal_is_shown_with_shopifys_reason_and_can_be_retried(engine, shopify):
    connect(engine)
    claim = shopify_claim(engine)
    decisions.approve(engine, claim.id, "agent:a", [ResolutionInput("refund", claim.claimed_cents)], now=NOW)
    shopify.fail_next.append({"data": {"refundCreate": {"refund": None, "userErrors": [
        {"field": ["transactions", "0", "amount"], "message": "Amount exceeds the refundable amount"}]}}})
    out = shopify_write_back.send_pending(engine, now=NOW)
    assert out["failed"] == 1
    [w] = writes(engine)
    assert w.status == "failed" and "Amount exceeds the refundable amount" in w.last_error
    view = claim_review.claim_for_staff(engine, claim.id)
    assert view.writes[0].can_retry
    with read_session(engine) as s:
        assert "write_back_failed" in s.scalars(select(Event.action).where(Event.claim_id == claim.id)).all()
    # the agent retries (the button): sent again straight away, and it lands
    shopify_write_back.retry_now(engine, w.id, "agent:a")
    [w] = writes(engine)
    assert w.status == "done" and len(shopify.refunds) == 1
    keys = [v["idempotencyKey"] for op, v in shopify.calls if op.endswith("RefundCreate")]
    assert len(keys) == 2 and keys[0] != keys[1]  # Shopify refuses a failed attempt's key again
    with pytest.raises(domain.ClaimRuleError):
        write_back_service.retry(engine, w.id, "agent:a")  # only a failed write can be retried


def test_a_throttled_call_waits_for_shopify_and_then_lands(engine, shopify):
    connect(engine)
    claim = shopify_claim(engine)
    decisions.approve(engine, claim.id, "agent:a", [ResolutionInput("refund", claim.claimed_cents)], now=NOW)
    shopify.fail_next.append({"errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}],
                              "extensions": {"cost": {"requestedQueryCost": 10, "throttleStatus": {
                                  "maximumAvailable": 2000.0, "currentlyAvailable": 0,
                                  "restoreRate": 100.0}}}})
    assert shopify_write_back.send_pending(engine, now=NOW)["retry"] == 1
    [w] = writes(engine)
    assert w.status == "pending" and "throttled" in w.last_error
    assert timedelta(0) < w.next_attempt_at - NOW <= timedelta(seconds=5)
    assert shopify_write_back.send_pending(engine, now=NOW)["done"] == 0  # not due yet
    assert shopify_write_back.send_pending(engine, now=NOW + timedelta(seconds=5))["done"] == 1
    assert len(shopify.refunds) == 1
    # the retry first asked whether the throttled try had landed after all
    assert "OrderRefunds" in shopify.ops() or shopify.ops().count("RefundContext") == 2


def test_store_credit_becomes_a_gift_card_with_the_customers_code(engine, shopify):
    connect(engine)
    claim = shopify_claim(engine, "5002", resolution="store_credit")
    [code] = decisions.approve(engine, claim.id, "agent:a",
                               [ResolutionInput("store_credit", claim.claimed_cents)], now=NOW)
    shopify_write_back.send_pending(engine, now=NOW)
    [card] = shopify.gift_cards
    assert card["code"] == code and code.isalnum()
    amount = card.get("initialAmount", {}).get("amount") or card.get("initialValue")
    assert amount == f"{claim.claimed_cents / 100:.2f}"
    assert writes(engine)[0].shopify_id == "gid://shopify/GiftCard/800"


def test_a_reshipment_becomes_a_zero_priced_order(engine, shopify):
    connect(engine)
    claim = shopify_claim(engine, "5003", resolution="reshipment")
    decisions.approve(engine, claim.id, "agent:a", [ResolutionInput("reshipment")], now=NOW)
    shopify_write_back.send_pending(engine, now=NOW)
    assert shopify.ops()[-2:] == ["DraftOrderCreate", "DraftOrderComplete"]
    [draft] = shopify.orders
    quantities = sorted(li["quantity"] for li in draft["lineItems"])
    assert quantities == [1, 3]
    for li in draft["lineItems"]:
        assert li.get("originalUnitPrice") in ("0.00", None) or li.get("appliedDiscount")
    assert claim.reference in draft["note"] and "claims-portal" in draft["tags"]
    assert draft["email"] == claim.email
    [w] = writes(engine)
    assert (w.kind, w.status, w.shopify_id) == ("order", "done", "gid://shopify/Order/555999")


def test_undoing_an_approval_cancels_what_hasnt_been_sent(engine, shopify):
    connect(engine)
    claim = shopify_claim(engine, "5004", resolution="store_credit")
    decisions.approve(engine, claim.id, "agent:a", [ResolutionInput("store_credit", claim.claimed_cents)], now=NOW)
    decisions.undo_approval(engine, claim.id, "agent:a", "wrong claim", now=NOW)
    assert [w.status for w in writes(engine)] == ["cancelled"]
    shopify_write_back.send_pending(engine, now=NOW)
    assert shopify.calls == []


def test_an_order_without_a_shopify_id_fails_with_a_reason(engine, shopify):
    connect(engine)
    claim = shopify_claim(engine, "5005")
    with write_session(engine) as s:
        s.execute(update(Order).where(Order.id == claim.order_id).values(external_id=None))
    decisions.approve(engine, claim.id, "agent:a", [ResolutionInput("refund", claim.claimed_cents)], now=NOW)
    shopify_write_back.send_pending(engine, now=NOW)
    [w] = writes(engine)
    assert w.status == "failed" and "no Shopify id" in w.last_error and shopify.calls == []


# --- found in review ---------------------------------------------------------------------------

def test_an_approval_that_reached_shopify_cant_be_undone_and_paid_again(engine, shopify):
    connect(engine)
    claim = shopify_claim(engine, "5101")
    decisions.approve(engine, claim.id, "agent:a", [ResolutionInput("refund", claim.claimed_cents)],
                      now=NOW)
    assert domain.Action.UNDO_APPROVAL in claim_review.claim_for_staff(engine, claim.id).actions
    shopify_write_back.send_pending(engine, now=NOW)
    assert domain.Action.UNDO_APPROVAL not in claim_review.claim_for_staff(engine, claim.id).actions
    with pytest.raises(domain.ClaimRuleError) as e:
        decisions.undo_approval(engine, claim.id, "agent:a", "oops", now=NOW)
    assert e.value.code == domain.ErrorCode.ILLEGAL_TRANSITION
    assert len(shopify.refunds) == 1


def test_amounts_reach_shopify_in_the_currencys_own_units(engine, shopify):
    connect(engine)
    claim = shopify_claim(engine, "5102", resolution="store_credit")
    with write_session(engine) as s:
        s.execute(update(Order).where(Order.id == claim.order_id).values(currency="JPY"))
    decisions.approve(engine, claim.id, "agent:a",
                      [ResolutionInput("store_credit", 11850)], note="part", now=NOW)
    shopify_write_back.send_pending(engine, now=NOW)
    [card] = shopify.gift_cards
    amount = card.get("initialAmount", {}).get("amount") or card.get("initialValue")
    assert amount == "11850"  # amounts are the currency's own minor units: yen have no decimals


def test_a_retry_sends_only_that_write(engine, shopify):
    connect(engine)
    first, second = shopify_claim(engine, "5103"), shopify_claim(engine, "5104")
    for c in (first, second):
        decisions.approve(engine, c.id, "agent:a", [ResolutionInput("refund", c.claimed_cents)],
                          now=NOW)
    with write_session(engine) as s:
        s.execute(update(ShopifyWrite).values(status="failed", attempts=1, last_error="x"))
    [w1, w2] = writes(engine)
    shopify_write_back.retry_now(engine, w1.id, "agent:a")
    assert [w.status for w in writes(engine)] == ["done", "failed"] and len(shopify.refunds) == 1
