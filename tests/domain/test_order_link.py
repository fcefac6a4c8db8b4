"""The signed order link (issue #28): the rule (domain/order_link.py), the Liquid snippet rendered
by a real Liquid engine, the portal's side (lookup.open_order_link: signed, unsigned, tampered,
rotated), the owner's side (show once, rotate, test link) and the link in the app's own mails."""
from __future__ import annotations

import hashlib
import hmac
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from liquid import Environment
from sqlalchemy import func, select

from claims_core import domain
from claims_core.domain import order_link
from claims_core.infra.db import read_session, write_session
from claims_core.infra.models import (Claim, LookupAttempt, OutboxMessage, StaffUser, StoreSettings)
from claims_core.services import customer, lookup, order_links

from tests.support.factories import claim_request, make_order
from tests.pages.test_staff_app import app  # noqa: F401 - the staff AppTest fixture

PORTAL = "https://claims.example.com"


def shopify_hmac_sha256(value, key):
    """Shopify's ``hmac_sha256`` Liquid filter as documented (shopify.dev/docs/api/liquid/filters/
    hmac_sha256): the input string HMAC-SHA256'd with the filter's argument as the key, as
    lower-case hex."""
    return hmac.new(str(key).encode("utf-8"), str(value).encode("utf-8"),
                    hashlib.sha256).hexdigest()


@pytest.fixture
def liquid():
    env = Environment()
    env.filters["hmac_sha256"] = shopify_hmac_sha256
    return env


def test_the_filter_stand_in_gives_shopifys_documented_output(liquid):
    out = liquid.from_string("{%- assign p = 'Polyjuice' | hmac_sha256: 'Polina' -%}{{ p }}").render()
    assert out == "8e0d5d65cff1242a4af66c8f4a32854fd5fb80edcc8aabe9b302b29c7c71dc20"


def _href(rendered: str) -> str:
    return rendered.split('href="', 1)[1].split('"', 1)[0]


@pytest.mark.parametrize("name, email", [
    ("#5001", "jamie.rivera@example.com"),
    ("#1042", " Casey.Nguyen+orders@Example.COM "),
    ("SHOP-77", "o'brien@example.ie"),
])
def test_the_liquid_snippet_builds_the_apps_link(liquid, name, email):
    secret = order_link.new_secret()
    rendered = liquid.from_string(order_link.liquid_snippet(PORTAL, secret)).render(
        order={"name": name, "email": email})
    href = _href(rendered)
    assert href == order_link.link(PORTAL, secret, name, email)
    q = {k: v[0] for k, v in parse_qs(urlsplit(href).query).items()}
    assert order_link.verify(secret, q["order"], q["email"], q["sig"])
    # the same string, the same filter: what is signed is ORDER|EMAIL, normalised
    expected = shopify_hmac_sha256(
        f"{domain.normalize_order_number(name)}|{domain.normalize_email(email)}", secret)
    assert q["sig"] == expected


def test_what_the_signature_binds():
    secret = order_link.new_secret()
    sig = order_link.sign(secret, "#5001", "jamie@example.com")
    assert order_link.verify(secret, "5001", " JAMIE@example.com", sig)  # any spelling of both
    assert order_link.verify(secret, "#5001", "jamie@example.com", sig.upper())
    assert not order_link.verify(secret, "5002", "jamie@example.com", sig)  # another order
    assert not order_link.verify(secret, "5001", "jamie2@example.com", sig)  # another email
    assert not order_link.verify(order_link.new_secret(), "5001", "jamie@example.com", sig)
    assert not order_link.verify(secret, "5001", "jamie@example.com", "")
    assert not order_link.verify(secret, "5001", "jamie@example.com", sig[:-1])
    assert not order_link.verify(secret, "5001", "jamie@example.com", "zz" * 32)
    assert not order_link.verify("", "5001", "jamie@example.com", sig)  # no secret: nothing opens
    assert not order_link.verify(secret, "", "", order_link.sign(secret, "", ""))


def test_read_params_cuts_and_ignores():
    assert order_link.read_params({}) is None
    assert order_link.read_params({"order": "  "}) is None
    p = order_link.read_params({"order": "5" * 500, "email": "e" * 500, "sig": "a" * 500})
    assert len(p.order) == 100 and len(p.email) == 254 and len(p.sig) == 128


def _secret(engine) -> str:
    with write_session(engine) as s:
        row = s.get(StoreSettings, 1)
        if not row.order_link_secret:
            row.order_link_secret = order_link.new_secret()
        return row.order_link_secret


def _misses(engine) -> int:
    with read_session(engine) as s:
        return s.scalar(select(func.count()).select_from(LookupAttempt))


def test_a_signed_link_opens_the_order_without_counting(engine, now):
    built = make_order(engine, "5001", "jamie@example.com")
    sig = order_link.sign(_secret(engine), "#5001", "jamie@example.com")
    view = lookup.open_order_link(engine, "5001", "Jamie@Example.com", sig, "1.2.3.4", now=now)
    assert view is not None and view.id == built.order_id and view.claimable
    assert _misses(engine) == 0


def test_unsigned_tampered_and_rotated_links_only_count_as_a_try(engine, now):
    make_order(engine, "5001", "jamie@example.com")
    make_order(engine, "5002", "other@example.com")
    secret = _secret(engine)
    good = order_link.sign(secret, "5001", "jamie@example.com")
    assert lookup.open_order_link(engine, "5001", "jamie@example.com", "", "1.2.3.4", now=now) is None
    assert lookup.open_order_link(engine, "5002", "jamie@example.com", good, "1.2.3.4", now=now) is None
    assert lookup.open_order_link(engine, "5001", "x@example.com", good, "1.2.3.4", now=now) is None
    # an order that doesn't exist answers exactly like one that does
    assert lookup.open_order_link(engine, "9999", "jamie@example.com", "", "1.2.3.4", now=now) is None
    assert _misses(engine) == 4 * 2  # per order number and per client, as a typed miss
    order_links.rotate_secret(engine, "staff:owner", now=now)
    assert lookup.open_order_link(engine, "5001", "jamie@example.com", good, "5.6.7.8", now=now) is None


def test_the_throttle_refuses_link_tries_too(engine, now):
    make_order(engine, "5001", "jamie@example.com")
    with write_session(engine) as s:
        s.get(StoreSettings, 1).lookup_max_misses = 3
    for _ in range(3):
        lookup.open_order_link(engine, "5001", "jamie@example.com", "bad", "1.2.3.4", now=now)
    with pytest.raises(domain.TooManyAttempts) as e:
        lookup.open_order_link(engine, "5001", "jamie@example.com", "bad", "1.2.3.4", now=now)
    assert e.value.code == domain.ErrorCode.TOO_MANY_ATTEMPTS


def test_a_signed_link_past_the_window_says_why(engine, now):
    make_order(engine, "5003", "morgan@example.com", created=now - timedelta(days=90),
               shipments=[dict(status="delivered", shipped=now - timedelta(days=80),
                               delivered=now - timedelta(days=77),
                               items=[("MUG", 3), ("TOTE", 1)])])
    sig = order_link.sign(_secret(engine), "5003", "morgan@example.com")
    view = lookup.open_order_link(engine, "5003", "morgan@example.com", sig, None, now=now)
    assert view is not None and not view.claimable and view.window_closed


def test_the_owner_sees_the_secret_once_and_rotation_replaces_it(engine, now):
    first = order_links.secret_for_owner(engine, "staff:owner")
    assert first.secret and not first.shown_before
    again = order_links.secret_for_owner(engine, "staff:owner")
    assert again.secret is None and again.shown_before
    assert order_links.status(engine).shown_before
    rotated = order_links.rotate_secret(engine, "staff:owner", now=now)
    assert rotated.secret and rotated.secret != first.secret and rotated.rotated_at == now
    with read_session(engine) as s:
        assert s.get(StoreSettings, 1).order_link_secret == rotated.secret


def test_send_me_a_test_link_mails_the_owner_through_the_outbox(engine, now):
    make_order(engine, "5001", "jamie@example.com")
    with write_session(engine) as s:
        s.add(StaffUser(username="owner", display_name="Owner", role="owner", password_hash="x",
                        email="boss@example.com"))
    with read_session(engine) as s:
        owner_id = s.scalars(select(StaffUser.id).where(StaffUser.username == "owner")).one()
    assert order_links.send_test_link(engine, owner_id, "#5001", now=now) == "boss@example.com"
    with read_session(engine) as s:
        mail = s.scalars(select(OutboxMessage).where(OutboxMessage.kind == "order_link_test")).one()
        secret = s.get(StoreSettings, 1).order_link_secret
    assert mail.to_addr == "boss@example.com"
    link = next(w for w in mail.body_text.split() if w.startswith("http"))
    q = {k: v[0] for k, v in parse_qs(urlsplit(link).query).items()}
    assert q["order"] == "5001" and order_link.verify(secret, q["order"], q["email"], q["sig"])
    with pytest.raises(domain.OrderNotFound):
        order_links.send_test_link(engine, owner_id, "#424242", now=now)


def test_the_apps_own_customer_mails_carry_the_order_link(engine, now):
    built = make_order(engine, "5001", "jamie@example.com")
    customer.file_claim(engine, claim_request(built), now=now)
    with read_session(engine) as s:
        claim = s.scalars(select(Claim)).one()
        mail = s.scalars(select(OutboxMessage).where(OutboxMessage.claim_id == claim.id,
                                                     OutboxMessage.kind == "claim_received")).one()
        secret = s.get(StoreSettings, 1).order_link_secret
    assert secret  # made on first need
    links = [w for w in mail.body_text.split() if "?order=" in w]
    assert len(links) == 1 and "?order=" in mail.body_html
    q = {k: v[0] for k, v in parse_qs(urlsplit(links[0]).query).items()}
    assert order_link.verify(secret, q["order"], q["email"], q["sig"]) and q["lang"] == "en"
    view = lookup.open_order_link(engine, q["order"], q["email"], q["sig"], None, now=now)
    assert view is not None and view.id == built.order_id


def test_the_readme_shows_the_snippet_the_settings_page_gives():
    from pathlib import Path
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert order_link.liquid_snippet(PORTAL) in readme


def test_the_email_link_tab(app, engine):  # noqa: F811
    """Settings → Email link under AppTest: the secret shown once with the snippet that carries
    it, rotation (the old secret no longer signs), and the test link through the outbox."""
    with write_session(engine) as s:
        s.get(StaffUser, accounts_owner_id(s)).email = "boss@example.com"
    make_order(engine, "5001", "jamie@example.com")
    at = app("owner", "views/staff/settings.py")
    at.button(key="email_link_show").click().run()
    assert not at.exception, at.exception
    codes = [c.value for c in at.code]
    secret = codes[0]
    with read_session(engine) as s:
        assert s.get(StoreSettings, 1).order_link_secret == secret
    assert order_link.liquid_snippet(order_links.status(engine).portal_url, secret) in codes
    at.button(key="email_link_rotate").click().run()
    new = at.code[0].value
    assert new != secret and "stops opening orders" in "\n".join(m.value for m in at.markdown)
    with read_session(engine) as s:
        assert s.get(StoreSettings, 1).order_link_secret == new
    at.text_input(key="email_link_order").input("#5001")
    next(b for b in at.button if b.label == "Send me a test link").click().run()
    assert not at.exception and any("on its way" in x.value for x in at.success)
    with read_session(engine) as s:
        mail = s.scalars(select(OutboxMessage).where(OutboxMessage.kind == "order_link_test")).one()
    assert mail.to_addr == "boss@example.com" and "sig=" in mail.body_text
    # a new session (another visit) doesn't show the secret again
    again = app("owner", "views/staff/settings.py")
    assert not [c for c in again.code if c.value == new]
    assert any("shown once already" in i.value for i in again.info)


def accounts_owner_id(s):
    return s.scalars(select(StaffUser.id).where(StaffUser.role == "owner")).first()
