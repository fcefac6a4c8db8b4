"""Holes found by probing, closed (see the trust issue): who the client is for the throttle."""
from claims_core.domain.identifiers import client_address
from claims_core.infra import config


def test_forwarded_for_is_ignored_unless_the_operator_trusts_proxies():
    # a visitor who writes the header himself, straight to the app: one address however he spoofs
    assert client_address("203.0.113.9", "1.2.3.4", 0) == "203.0.113.9"
    assert client_address("203.0.113.9", "5.6.7.8, 9.9.9.9", 0) == "203.0.113.9"


def test_one_trusted_proxy_gives_the_address_it_saw():
    # the proxy (10.0.0.2) appended the client's address to whatever the client sent
    assert client_address("10.0.0.2", "1.2.3.4, 198.51.100.7", 1) == "198.51.100.7"
    assert client_address("10.0.0.2", "198.51.100.7", 1) == "198.51.100.7"
    # two proxies: the address the outer one saw
    assert client_address("10.0.0.3", "6.6.6.6, 198.51.100.7, 10.0.0.2", 2) == "198.51.100.7"


def test_more_trusted_proxies_than_hops_falls_back_to_the_first_hop():
    assert client_address("10.0.0.2", "198.51.100.7", 5) == "198.51.100.7"
    assert client_address("10.0.0.2", None, 1) == "10.0.0.2"


def test_the_setting_reads_a_whole_number(monkeypatch):
    monkeypatch.delenv("CLAIMS_TRUSTED_PROXIES", raising=False)
    assert config.trusted_proxies() == 0
    monkeypatch.setenv("CLAIMS_TRUSTED_PROXIES", "2")
    assert config.trusted_proxies() == 2
    monkeypatch.setenv("CLAIMS_TRUSTED_PROXIES", "two")
    assert config.trusted_proxies() == 0  # a typo trusts no header: stricter, never looser


# --- money and messages -------------------------------------------------------------------------

def test_a_partial_refund_needs_the_reason_and_the_customer_sees_it(engine):
    import pytest
    from sqlalchemy import select

    from claims_core import domain
    from claims_core.infra.db import read_session
    from claims_core.infra.models import OutboxMessage
    from claims_core.services import claim_views, customer, decisions

    from tests.conftest import NOW
    from tests.support.factories import claim_request, make_order

    built = make_order(engine)
    r = customer.file_claim(engine, claim_request(built), now=NOW)  # one mug: $28.00
    partial = [decisions.ResolutionInput("refund", 1500)]
    with pytest.raises(domain.ClaimRuleError) as refused:
        decisions.approve(engine, r.claim_id, "staff:t", partial, now=NOW)
    assert refused.value.code == domain.ErrorCode.TEXT_REQUIRED
    decisions.approve(engine, r.claim_id, "staff:t", partial, now=NOW,
                      note="One mug arrived intact in the second box.")
    view = claim_views.get_claim_for_customer(engine, r.access_token)
    assert view.partial and view.decision_note == "One mug arrived intact in the second box."
    with read_session(engine) as s:
        mail = s.scalars(select(OutboxMessage).where(OutboxMessage.kind == "decision")).one()
    assert "One mug arrived intact in the second box." in mail.body_text


def test_a_full_refund_needs_no_reason(engine):
    from claims_core.services import claim_views, customer, decisions

    from tests.conftest import NOW
    from tests.support.factories import claim_request, make_order

    built = make_order(engine)
    r = customer.file_claim(engine, claim_request(built), now=NOW)
    decisions.approve(engine, r.claim_id, "staff:t", [decisions.ResolutionInput("refund", 2800)],
                      now=NOW)
    assert not claim_views.get_claim_for_customer(engine, r.access_token).partial


def _decision_mails(engine, claim_id):
    from sqlalchemy import select

    from claims_core.infra.db import read_session
    from claims_core.infra.models import OutboxMessage

    with read_session(engine) as s:
        return [(m.kind, m.status) for m in s.scalars(
            select(OutboxMessage).where(OutboxMessage.claim_id == claim_id,
                                        OutboxMessage.kind.like("decision%"))
            .order_by(OutboxMessage.id))]


def test_undo_and_approve_again_keeps_the_credit_code_and_one_message(engine):
    from sqlalchemy import select, update

    from claims_core.infra.db import read_session, write_session
    from claims_core.infra.models import OutboxMessage, Resolution
    from claims_core.services import customer, decisions
    from claims_core.services import settings as store_settings

    from tests.conftest import NOW
    from tests.support.factories import claim_request, make_order

    store_settings.update_settings(engine, "test", {"store_credit_bonus_pct": 10})
    built = make_order(engine)
    r = customer.file_claim(engine, claim_request(built, resolution="store_credit"), now=NOW)
    credit = [decisions.ResolutionInput("store_credit", 2800, 10)]
    [first] = decisions.approve(engine, r.claim_id, "staff:t", credit, now=NOW)
    decisions.undo_approval(engine, r.claim_id, "staff:t", "checking the photo", now=NOW)
    [again] = decisions.approve(engine, r.claim_id, "staff:t", credit, now=NOW)
    assert again == first  # no second code for the same claim
    # the first decision mail hadn't gone out yet: withdrawn, one decision mail stands
    assert _decision_mails(engine, r.claim_id) == [("decision", "withdrawn"), ("decision", "pending")]

    # once a decision mail has gone out, a changed decision says so
    with write_session(engine) as s:
        s.execute(update(OutboxMessage).where(OutboxMessage.claim_id == r.claim_id,
                                              OutboxMessage.status == "pending")
                  .values(status="sent"))
    decisions.undo_approval(engine, r.claim_id, "staff:t", "wrong amount", now=NOW)
    [third] = decisions.approve(engine, r.claim_id, "staff:t",
                                [decisions.ResolutionInput("store_credit", 2000, 10)], now=NOW,
                                note="The box held one damaged mug, the other was fine.")
    assert third == first
    assert _decision_mails(engine, r.claim_id)[-1] == ("decision_updated", "pending")
    with read_session(engine) as s:
        live = s.scalars(select(Resolution).where(Resolution.claim_id == r.claim_id,
                                                  Resolution.voided_at.is_(None))).all()
        assert [(x.store_credit_code, x.amount_cents) for x in live] == [(first, 2000)]


def test_thirty_wrong_lookups_at_once_are_held_to_the_limit(engine, monkeypatch):
    """Counting and booking a try happen in one transaction before the look-up: thirty at once
    on one order (from thirty addresses) can't all be evaluated (they all were)."""
    import threading

    from claims_core import domain
    from claims_core.services import lookup, order_views
    from claims_core.services import settings as store_settings

    from tests.support.factories import make_order

    built = make_order(engine)
    store_settings.update_settings(engine, "test", {"lookup_max_misses": 5})
    evaluated = []
    real = order_views._lookup_order

    def counted(*a, **kw):
        evaluated.append(1)
        return real(*a, **kw)

    monkeypatch.setattr(order_views, "_lookup_order", counted)
    outcomes, start = [], threading.Barrier(30)

    def one(i):
        start.wait()
        try:
            lookup.guarded_lookup(engine, built.number, "not.them@example.com", f"198.51.100.{i}",
                                  sleep=lambda s: None)
        except domain.ClaimRuleError as e:
            outcomes.append(e.code)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(30)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(evaluated) == 5
    assert outcomes.count(domain.ErrorCode.ORDER_NOT_FOUND) == 5
    assert outcomes.count(domain.ErrorCode.TOO_MANY_ATTEMPTS) == 25


def test_only_a_few_photos_decode_at_once(monkeypatch):
    """A burst of big uploads waits its turn: never more than MAX_CONCURRENT_DECODES decodes at
    once (4 sessions × 6 photos of 50 MP peaked at 2.5 GB when every one decoded at once)."""
    import threading
    import time

    from claims_core.infra import photos

    from tests.support.factories import jpeg_bytes

    active, peak, lock = [0], [0], threading.Lock()
    real = photos._decode_and_clean

    def watched(*a, **kw):
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.05)
        try:
            return real(*a, **kw)
        finally:
            with lock:
                active[0] -= 1

    monkeypatch.setattr(photos, "_decode_and_clean", watched)
    raw = jpeg_bytes()
    threads = [threading.Thread(target=photos.process_photo, args=(raw, f"p{i}.jpg"))
               for i in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert 1 <= peak[0] <= photos.MAX_CONCURRENT_DECODES
