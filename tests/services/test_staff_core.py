"""Staff side in claims_core: accounts, the queue, decisions, photo review, risk, settings."""
import csv
import io
import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from claims_core import domain
from claims_core.infra.db import write_session
from claims_core.infra.models import Claim, Event, Resolution, StaffUser, StoreSettings
from claims_core.services import (
    accounts,
    claim_queue,
    claim_review,
    claim_views,
    customer,
    decisions,
    order_views,
)
from claims_core.services import settings as store_settings

from tests.conftest import NOW
from tests.support.factories import claim_request, jpeg_bytes, make_order

# --- accounts -----------------------------------------------------------------------------------


def test_passwords_are_argon2id_and_login_works(engine):
    accounts.add_user(engine, "Alice", "agent", "a long password")
    with write_session(engine) as s:
        h = s.scalars(select(StaffUser.password_hash)).one()
    assert h.startswith("$argon2id$") and "a long password" not in h
    who = accounts.authenticate(engine, " ALICE ", "a long password")
    assert (who.username, who.role, who.actor) == ("alice", "agent", "staff:alice")


def test_wrong_user_and_wrong_password_same_answer(engine):
    accounts.add_user(engine, "alice", "agent", "a long password")
    msgs = set()
    for user, pw in [("alice", "nope nope nope"), ("bob", "a long password")]:
        with pytest.raises(accounts.AuthError) as e:
            accounts.authenticate(engine, user, pw)
        msgs.add(e.value.message)
    assert msgs == {accounts.LOGIN_FAILED}


def test_a_locked_account_answers_like_a_wrong_password(engine):
    """The lock-out message used to say "this account is locked", telling a stranger the username
    exists. Now a locked real user, an unknown user and a wrong password read the same."""
    accounts.add_user(engine, "alice", "agent", "a long password")
    for _ in range(accounts.MAX_FAILED_LOGINS):
        with pytest.raises(accounts.AuthError):
            accounts.authenticate(engine, "alice", "wrong password", now=NOW)
    answers = set()
    for user, pw in [("alice", "a long password"), ("nobody", "a long password"),
                     ("alice", "still wrong")]:
        with pytest.raises(accounts.AuthError) as e:
            accounts.authenticate(engine, user, pw, now=NOW + timedelta(minutes=1))
        answers.add(e.value.message)
    assert answers == {accounts.LOGIN_FAILED}


def test_password_is_checked_outside_any_write_transaction(engine, monkeypatch):
    """Argon2 takes a while; inside BEGIN IMMEDIATE it held SQLite's write lock all that time,
    and a login flood made customers' filings fail with "database is locked"."""
    from sqlalchemy import event

    accounts.add_user(engine, "alice", "agent", "a long password")
    open_writes, seen = set(), []

    def begun(conn):
        if not conn.get_execution_options().get("claims_readonly"):
            open_writes.add(id(conn))

    def ended(conn):
        open_writes.discard(id(conn))

    event.listen(engine, "begin", begun)
    event.listen(engine, "commit", ended)
    event.listen(engine, "rollback", ended)
    real_hasher = accounts._hasher

    class Watching:
        def verify(self, stored, password):
            seen.append(len(open_writes))
            return real_hasher.verify(stored, password)

        def __getattr__(self, name):
            return getattr(real_hasher, name)

    monkeypatch.setattr(accounts, "_hasher", Watching())
    accounts.authenticate(engine, "alice", "a long password")
    with pytest.raises(accounts.AuthError):
        accounts.authenticate(engine, "alice", "wrong")
    assert seen == [0, 0]  # no write transaction open while the hash was checked


def test_lockout_then_unlock_by_itself(engine):
    accounts.add_user(engine, "alice", "agent", "a long password")
    for _ in range(accounts.MAX_FAILED_LOGINS):
        with pytest.raises(accounts.AuthError):
            accounts.authenticate(engine, "alice", "wrong password", now=NOW)
    with pytest.raises(accounts.AuthError):  # locked: the right password doesn't open it yet
        accounts.authenticate(engine, "alice", "a long password", now=NOW + timedelta(minutes=1))
    # not locked out for good: after the lockout period the right password works again
    who = accounts.authenticate(engine, "alice", "a long password", now=NOW + accounts.LOCKOUT + timedelta(seconds=1))
    assert who.username == "alice"
    with write_session(engine) as s:
        assert s.scalar(select(func.count()).select_from(Event).where(Event.action == "user_locked")) == 1


def test_sessions_expire():
    from claims_core.domain import windows

    start = NOW
    assert not windows.session_over(start, start + timedelta(hours=1), start + timedelta(hours=2))
    assert windows.session_over(start, start, start + windows.SESSION_IDLE + timedelta(seconds=1))
    assert windows.session_over(start, start + timedelta(hours=12), start + timedelta(hours=12, seconds=1))


def test_roles():
    assert accounts.can("owner", "settings") and not accounts.can("agent", "settings")
    assert accounts.can("agent", "work_claims") and not accounts.can("analyst", "work_claims")
    assert accounts.can("analyst", "analytics") and not accounts.can("agent", "analytics")


def test_last_owner_cannot_be_deactivated(engine):
    accounts.add_user(engine, "boss", "owner", "a long password")
    with pytest.raises(accounts.AuthError, match="last active owner"):
        accounts.set_active(engine, "boss", False, actor="staff:boss")
    accounts.set_active(engine, "boss", True, actor="staff:boss")


# --- the queue ----------------------------------------------------------------------------------

@pytest.fixture
def claims_set(engine):
    """Six claims across states, issue types, carriers, amounts."""
    made = {}
    specs = [  # number, carrier, issue, resolution, status
        ("2001", "UPS", "damaged", "refund", "submitted"),
        ("2002", "USPS", "lost", "store_credit", "in_review"),
        ("2003", "FedEx", "missing_item", "refund", "needs_info"),
        ("2004", "UPS", "wrong_item", "store_credit", "approved"),
        ("2005", "DHL", "stolen", "refund", "denied"),
        ("2006", "UPS", "defective", "refund", "closed"),
    ]
    for i, (num, carrier, issue, res, status) in enumerate(specs):
        shipped = NOW - timedelta(days=20 + i)
        if issue == "lost":
            ships = [dict(status="in_transit", shipped=shipped, last_scan=shipped, carrier=carrier,
                          items=[("MUG", 3), ("TOTE", 1)])]
        else:
            ships = [dict(status="delivered", shipped=shipped, delivered=shipped + timedelta(days=2),
                          carrier=carrier, items=[("MUG", 3), ("TOTE", 1)])]
        built = make_order(engine, num, f"c{num}@example.com", shipments=ships,
                           tracking_prefix=f"T{num}", created=shipped - timedelta(days=1))
        items = None if issue in ("lost", "stolen") else {built.items[(0, "MUG")]: 1 + i % 3}
        r = customer.file_claim(engine, claim_request(built, key=f"q{num}", issue=issue, items=items,
                                                      resolution=res),
                                now=NOW - timedelta(days=5 - i % 5, hours=i))
        if status != "submitted":
            decisions.start_review(engine, r.claim_id, "staff:t", now=NOW)
        if status == "needs_info":
            decisions.request_info(engine, r.claim_id, "staff:t", "T", "photo please", now=NOW)
        elif status == "approved":
            decisions.approve(engine, r.claim_id, "staff:t",
                              [decisions.ResolutionInput("store_credit", r.claimed_cents)], now=NOW)
        elif status == "denied":
            decisions.deny(engine, r.claim_id, "staff:t", "delivered_confirmed", now=NOW)
        elif status == "closed":
            decisions.close(engine, r.claim_id, "staff:t", now=NOW)
        made[num] = r
    return made


def refs(page):
    return sorted(r.order_name for r in page.rows)


def test_tabs_and_counts(engine, claims_set):
    counts = claim_queue.tab_counts(engine, claim_queue.QueueFilter())
    assert counts == {"todo": 2, "waiting": 1, "approved": 1, "denied": 1, "closed": 1}
    assert refs(claim_queue.queue_page(engine, claim_queue.QueueFilter(tab="todo"))) == ["#2001", "#2002"]
    assert refs(claim_queue.queue_page(engine, claim_queue.QueueFilter(tab="waiting"))) == ["#2003"]


@pytest.mark.parametrize("flt,expected", [
    (dict(tab="todo", issue_types=("lost",)), ["#2002"]),
    (dict(tab="todo", category="item"), ["#2001"]),
    (dict(tab="approved", carriers=("UPS",)), ["#2004"]),
    (dict(tab="todo", carriers=("UPS", "USPS")), ["#2001", "#2002"]),
    (dict(tab="todo", resolutions=("store_credit",)), ["#2002"]),
    (dict(tab="todo", min_cents=3000), ["#2002"]),
    (dict(tab="todo", max_cents=2800), ["#2001"]),
    (dict(tab="todo", risk_levels=("high",)), []),
    (dict(tab="todo", text="#2002"), ["#2002"]),
    (dict(tab="todo", text="C2001@EXAMPLE.COM "), ["#2001"]),
    (dict(tab="todo", text=" t2002-2002x0 "), ["#2002"]),
])
def test_each_filter(engine, claims_set, flt, expected):
    assert refs(claim_queue.queue_page(engine, claim_queue.QueueFilter(**flt))) == expected


def test_search_by_reference(engine, claims_set):
    ref = claims_set["2003"].reference
    page = claim_queue.queue_page(engine, claim_queue.QueueFilter(tab="waiting", text=ref.lower()))
    assert [r.reference for r in page.rows] == [ref]


def test_date_range(engine, claims_set):
    with write_session(engine) as s:
        created = {c.order.name: c.created_at for c in s.scalars(select(Claim))}
    day = created["#2001"].date()
    page = claim_queue.queue_page(engine, claim_queue.QueueFilter(tab="todo", date_from=day, date_to=day))
    assert refs(page) == ["#2001"]


def test_sorting_and_paging(engine, claims_set):
    f = claim_queue.QueueFilter(tab="todo")
    oldest = [r.order_name for r in claim_queue.queue_page(engine, f, sort="oldest").rows]
    newest = [r.order_name for r in claim_queue.queue_page(engine, f, sort="newest").rows]
    assert oldest == list(reversed(newest))
    amount = [r.claimed_cents for r in claim_queue.queue_page(engine, f, sort="amount").rows]
    assert amount == sorted(amount, reverse=True)
    for n in range(30):  # more claims for paging
        b = make_order(engine, f"P{n}", f"p{n}@example.com", tracking_prefix=f"PG{n}")
        customer.file_claim(engine, claim_request(b, key=f"page{n}", issue="missing_item", photos=[]),
                            now=NOW)
    p1 = claim_queue.queue_page(engine, f, page=1, page_size=25)
    p2 = claim_queue.queue_page(engine, f, page=2, page_size=25)
    assert (p1.total, p1.pages, len(p1.rows), len(p2.rows)) == (32, 2, 25, 7)
    assert not {r.id for r in p1.rows} & {r.id for r in p2.rows}
    assert claim_queue.queue_page(engine, f, page=99, page_size=25).page == 2


def test_waiting_too_long(engine, claims_set):
    row = claim_queue.queue_page(engine, claim_queue.QueueFilter(tab="todo"), sort="oldest").rows[0]
    assert row.waiting_too_long(row.updated_at + timedelta(hours=49), 48)
    assert not row.waiting_too_long(row.updated_at + timedelta(hours=47), 48)


def test_export_is_spreadsheet_safe(engine):
    built = make_order(engine, email="=cmd|'/c calc'!a1@example.com")
    customer.file_claim(engine, claim_request(built), now=NOW)
    data = claim_queue.export_csv(engine, claim_queue.QueueFilter(tab="todo")).decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(data)))
    assert rows[0] == claim_queue.EXPORT_COLUMNS and len(rows) == 2
    assert rows[1][2] == "'=cmd|'/c calc'!a1@example.com"
    for bad in ("=1+1", "+1", "-1", "@SUM(A1)", "\t=x"):
        assert domain.safe_cell(bad).startswith("'")
    assert domain.safe_cell("plain") == "plain"


# --- decisions ----------------------------------------------------------------------------------

@pytest.fixture
def one_claim(engine):
    built = make_order(engine, stock={"MUG": 1})
    r = customer.file_claim(engine, claim_request(built, items={built.items[(0, "MUG")]: 2}), now=NOW)
    return built, r


def test_refund_above_paid_refused(engine, one_claim):
    _b, r = one_claim
    with pytest.raises(domain.InvalidInput, match="more than"):
        decisions.approve(engine, r.claim_id, "staff:t", [decisions.ResolutionInput("refund", 5601)])
    with pytest.raises(domain.InvalidInput):
        decisions.approve(engine, r.claim_id, "staff:t", [
            decisions.ResolutionInput("refund", 3000), decisions.ResolutionInput("store_credit", 2601)])
    with write_session(engine) as s:
        assert s.get(Claim, r.claim_id).status == "submitted"
        assert s.scalar(select(func.count()).select_from(Resolution)) == 0


def test_partial_split(engine, one_claim):
    _b, r = one_claim
    store_settings.update_settings(engine, "test", {"store_credit_bonus_pct": 10})  # the store allows it
    codes = decisions.approve(engine, r.claim_id, "staff:t", [
        decisions.ResolutionInput("refund", 2000), decisions.ResolutionInput("store_credit", 3600, 10)])
    view = claim_views.get_claim_for_customer(engine, r.access_token)
    assert [(x.kind, x.amount_cents) for x in view.resolutions] == [("refund", 2000), ("store_credit", 3600)]
    assert view.resolutions[1].store_credit_code == codes[0]


def test_approving_a_denied_claim_is_illegal(engine, one_claim):
    _b, r = one_claim
    decisions.deny(engine, r.claim_id, "staff:t", "insufficient_evidence")
    with pytest.raises(domain.IllegalTransition):
        decisions.approve(engine, r.claim_id, "staff:t", [decisions.ResolutionInput("refund", 100)])
    with pytest.raises(domain.IllegalTransition):
        decisions.deny(engine, r.claim_id, "staff:t", "duplicate")
    decisions.reopen(engine, r.claim_id, "staff:t")
    decisions.approve(engine, r.claim_id, "staff:t", [decisions.ResolutionInput("refund", 100)],
                      note="A goodwill amount.")


def test_deny_needs_a_reason(engine, one_claim):
    _b, r = one_claim
    with pytest.raises(domain.InvalidInput):
        decisions.deny(engine, r.claim_id, "staff:t", "bogus")
    with pytest.raises(domain.InvalidInput):
        decisions.deny(engine, r.claim_id, "staff:t", "other", "")


def test_reshipment_checks_stock(engine, one_claim):
    _b, r = one_claim  # two mugs claimed, one in stock
    with pytest.raises(domain.ResolutionUnavailable, match="MUG"):
        decisions.approve(engine, r.claim_id, "staff:t", [decisions.ResolutionInput("reshipment")])


def test_store_credit_codes_unique(engine):
    codes = set()
    for i in range(20):
        b = make_order(engine, f"S{i}", f"s{i}@example.com", tracking_prefix=f"SC{i}")
        r = customer.file_claim(engine, claim_request(b, key=f"sc{i}"), now=NOW)
        codes.update(decisions.approve(engine, r.claim_id, "staff:t",
                                       [decisions.ResolutionInput("store_credit", 2800)]))
    assert len(codes) == 20
    with write_session(engine) as s:
        first = s.scalars(select(Resolution)).first()
        s.add(Resolution(claim_id=first.claim_id, decision_id=first.decision_id, kind="store_credit",
                         amount_cents=1, store_credit_code=first.store_credit_code))
        with pytest.raises(Exception):
            s.flush()
        s.rollback()


def test_two_agents_deciding_at_once(engine, one_claim):
    """Both looked at version N; exactly one decision lands, the other is told it changed."""
    _b, r = one_claim
    with write_session(engine) as s:
        seen = s.get(Claim, r.claim_id).version
    barrier = threading.Barrier(2)
    results = {}

    def agent(name, fn):
        barrier.wait()
        try:
            fn()
            results[name] = "ok"
        except domain.StaleClaim:
            results[name] = "stale"
        except domain.IllegalTransition:
            results[name] = "illegal"

    t1 = threading.Thread(target=agent, args=("a", lambda: decisions.approve(
        engine, r.claim_id, "staff:a", [decisions.ResolutionInput("refund", 5600)],
        expected_version=seen)))
    t2 = threading.Thread(target=agent, args=("b", lambda: decisions.approve(
        engine, r.claim_id, "staff:b", [decisions.ResolutionInput("refund", 5600)],
        expected_version=seen)))
    t1.start(), t2.start()
    t1.join(), t2.join()
    assert sorted(results.values()) == ["ok", "stale"]
    with write_session(engine) as s:
        assert s.scalar(select(func.count()).select_from(Resolution)) == 1
        assert s.scalar(select(func.count()).select_from(Event)
                        .where(Event.claim_id == r.claim_id, Event.action == "approved")) == 1


# --- photo review, risk, assignment, exceptions -------------------------------------------------

def test_photo_review_and_reuse_flag(engine):
    photo = jpeg_bytes(seed=3)
    b1 = make_order(engine, "R1", "r1@example.com", tracking_prefix="R1")
    b2 = make_order(engine, "R2", "r2@example.com", tracking_prefix="R2")
    r1 = customer.file_claim(engine, claim_request(b1, key="r1", photos=[("a.jpg", photo)]), now=NOW)
    r2 = customer.file_claim(engine, claim_request(b2, key="r2", photos=[("same.jpg", photo)]),
                             now=NOW + timedelta(hours=1))
    v = claim_review.claim_for_staff(engine, r2.claim_id)
    assert v.photos[0].reused_in == (r1.reference,)
    assert any(s.label == "Photos used in another claim" for s in v.signals)
    with write_session(engine) as s:
        assert s.get(Claim, r2.claim_id).risk_level in ("medium", "high")
    with pytest.raises(domain.InvalidInput):
        claim_review.review_photo(engine, r2.claim_id, v.photos[0].id, "staff:t", "rejected", "")
    claim_review.review_photo(engine, r2.claim_id, v.photos[0].id, "staff:t", "rejected", "Same as CLM in R1")
    v = claim_review.claim_for_staff(engine, r2.claim_id)
    assert (v.photos[0].review_status, v.photos[0].review_note) == ("rejected", "Same as CLM in R1")
    assert v.events[-1].action == "photo_reviewed"


def test_risk_prior_claims_and_soon_after_delivery(engine):
    b = make_order(engine, "K1", "k@example.com", tracking_prefix="K1")
    r1 = customer.file_claim(engine, claim_request(b, key="k1", items={b.items[(0, "MUG")]: 1}), now=NOW)
    r2 = customer.file_claim(engine, claim_request(b, key="k2", items={b.items[(0, "TOTE")]: 1}),
                             now=NOW + timedelta(minutes=5))
    v = claim_review.claim_for_staff(engine, r2.claim_id)
    labels = {s.label: s.detail for s in v.signals}
    assert labels["Earlier claims from this email"].startswith("1 (")
    fast = make_order(engine, "K2", "fast@example.com", tracking_prefix="K2", shipments=[
        dict(status="delivered", shipped=NOW - timedelta(days=2), delivered=NOW - timedelta(minutes=30),
             items=[("MUG", 3)])])
    r3 = customer.file_claim(engine, claim_request(fast, key="k3", issue="not_received"), now=NOW)
    assert "Filed very soon after delivery" in {s.label for s in claim_review.claim_for_staff(engine, r3.claim_id).signals}
    assert r1.claim_id != r2.claim_id


def test_assign_only_to_workers(engine, one_claim):
    _b, r = one_claim
    agent = accounts.add_user(engine, "ann", "agent", "a long password")
    analyst = accounts.add_user(engine, "ray", "analyst", "a long password")
    claim_review.assign(engine, r.claim_id, "staff:boss", agent.id)
    assert claim_review.claim_for_staff(engine, r.claim_id).assignee == "ann"
    with pytest.raises(domain.InvalidInput):
        claim_review.assign(engine, r.claim_id, "staff:boss", analyst.id)


def test_window_exception(engine):
    b = make_order(engine, created=NOW - timedelta(days=80), shipments=[
        dict(status="delivered", shipped=NOW - timedelta(days=70), delivered=NOW - timedelta(days=68),
             items=[("MUG", 3)])])
    assert not order_views._lookup_order(engine, "1001", b.email, now=NOW).claimable
    with pytest.raises(domain.InvalidInput):
        claim_review.grant_exception(engine, b.order_id, "staff:t", NOW.date() + timedelta(days=5), "", now=NOW)
    claim_review.grant_exception(engine, b.order_id, "staff:t", NOW.date() + timedelta(days=5),
                          "Customer was travelling", now=NOW)
    assert order_views._lookup_order(engine, "1001", b.email, now=NOW).claimable


def test_staff_files_on_behalf_through_the_same_rules(engine):
    b = make_order(engine, total_cents=90_000)  # above the drawn-signature threshold
    req = claim_request(b, signature="typed", filed_by="staff:ann")
    r = customer.file_claim(engine, req, now=NOW)
    with write_session(engine) as s:
        c = s.get(Claim, r.claim_id)
        assert c.filed_by == "staff:ann" and c.signature_kind == "typed"
    with pytest.raises(domain.AlreadyClaimed):  # same rules: the mug line already has an open claim
        customer.file_claim(engine, claim_request(b, key="again", signature="typed",
                                                  filed_by="staff:ann"), now=NOW)


# --- settings -----------------------------------------------------------------------------------

def test_settings_validated_and_logged(engine):
    changed = store_settings.update_settings(engine, "staff:boss", {"filing_window_days": 30,
                                                            "accent_color": "#112233"})
    assert sorted(changed) == ["accent_color", "filing_window_days"]
    with write_session(engine) as s:
        assert s.get(StoreSettings, 1).filing_window_days == 30
        ev = s.scalars(select(Event).where(Event.action == "settings_changed")).one()
        assert '"filing_window_days": 45' in ev.details and '"filing_window_days": 30' in ev.details
    for bad in ({"filing_window_days": 0}, {"accent_color": "red"}, {"support_email": "nope"},
                {"protection_pattern": "("}, {"timezone": "Mars/Base"},
                {"offer_refund": False, "offer_reshipment": False, "offer_store_credit": False}):
        with pytest.raises(domain.InvalidInput):
            store_settings.update_settings(engine, "staff:boss", bad)


def test_the_claim_view_offers_undo_only_when_the_approval_can_be_undone(engine):
    """The staff page shows the actions the claim view lists: an approval with a replacement
    shipped offers no undo (and the service refuses one), a refund offers it."""
    b = make_order(engine, "U1", "u1@example.com", stock={"MUG": 10, "TOTE": 10}, tracking_prefix="U1")
    r = customer.file_claim(engine, claim_request(b, key="u1"), now=NOW)
    decisions.approve(engine, r.claim_id, "staff:t", [decisions.ResolutionInput("reshipment")])
    assert domain.Action.UNDO_APPROVAL not in claim_review.claim_for_staff(engine, r.claim_id).actions
    with pytest.raises(domain.InvalidInput):
        decisions.undo_approval(engine, r.claim_id, "staff:t", "changed my mind")
    b2 = make_order(engine, "U2", "u2@example.com", tracking_prefix="U2")
    r2 = customer.file_claim(engine, claim_request(b2, key="u2"), now=NOW)
    decisions.approve(engine, r2.claim_id, "staff:t", [decisions.ResolutionInput("refund", 100)],
                      note="A goodwill amount.")
    assert domain.Action.UNDO_APPROVAL in claim_review.claim_for_staff(engine, r2.claim_id).actions


def test_a_stranger_can_not_keep_the_owner_locked_out(engine):
    """Failures count per username and client: a stranger's five wrong passwords lock that
    stranger out of "owner", not the owner working from their own machine."""
    accounts.add_user(engine, "owner", "owner", "a long password")
    waits = []
    for _ in range(accounts.MAX_FAILED_LOGINS + 2):
        with pytest.raises(accounts.AuthError):
            accounts.authenticate(engine, "owner", "guess guess", client="203.0.113.66", now=NOW,
                                  sleep=waits.append)
    # each try past the third waited longer, up to the cap
    assert waits == sorted(waits) and waits[0] > 0 and max(waits) <= accounts.MAX_DELAY_SECONDS
    with pytest.raises(accounts.AuthError):  # the stranger, even with the right password now
        accounts.authenticate(engine, "owner", "a long password", client="203.0.113.66", now=NOW,
                              sleep=lambda s: None)
    who = accounts.authenticate(engine, "owner", "a long password", client="198.51.100.4", now=NOW)
    assert who.username == "owner"
    assert [u.locked for u in accounts.list_users(engine, now=NOW)] == [True]


@pytest.mark.parametrize("password", ["password123456", "qwertyuiopas", "alice-alice-alice"])
def test_a_guessable_password_is_refused_with_advice(engine, password):
    with pytest.raises(accounts.AuthError) as e:
        accounts.add_user(engine, "alice", "agent", password)
    assert e.value.code == domain.ErrorCode.ACCOUNT_RULE
